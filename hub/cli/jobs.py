"""`hub run` (the jobs, as Airflow will schedule them) and `hub outbox` (deliveries for ops)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub import outbox as outbox_rows
from hub.cli.common import console, echo, open_hub, print_json
from hub.jobs.deadlines import sweep_deadlines
from hub.jobs.dispatch import dispatch
from hub.jobs.exchange import exchange
from hub.jobs.housekeeping import housekeeping
from hub.jobs.ingest import ingest
from hub.jobs.reminders import reminders
from hub.jobs.report import daily_report
from hub.jobs.sync import sync
from hub.ops import outbox_page, run_job

run_app = typer.Typer(help="Run a job once (the same functions Airflow schedules).", no_args_is_help=True)
outbox_app = typer.Typer(help="Deliveries owed to department systems: list, retry dead letters.", no_args_is_help=True)

ConnectionOpt = Annotated[str | None, typer.Option("--connection", help="Only this connection")]


@run_app.command("dispatch")
def run_dispatch(ctx: typer.Context, connection: ConnectionOpt = None) -> None:
    """Deliver accepted parts to their departments' systems."""
    hub = open_hub(ctx)
    with _progress("派件 dispatch") as advance:
        summary = run_job(hub, dispatch, connection=connection, progress=advance)
    typer.echo(summary.line())


@run_app.command("ingest")
def run_ingest(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", help="The intake source (a connection with an intake section)")],
) -> None:
    """Take complete intake batches from a bank outlet's or enclave window's system."""
    hub = open_hub(ctx)
    with _progress("受理批次 ingest") as advance:
        summary = run_job(hub, ingest, source, target=source, progress=advance)
    typer.echo(summary.line())
    if summary.errors:
        raise typer.Exit(1)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A live counter on a terminal; nothing when output goes to a file or a scheduler's log."""
    if not sys.stdout.isatty():
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)


@run_app.command("deadlines")
def run_deadlines(
    ctx: typer.Context, show: Annotated[bool, typer.Option("--list", help="List every open alert")] = False
) -> None:
    """Record yellow/red cards that changed since the last sweep; list what supervisors chase."""
    summary = run_job(open_hub(ctx), sweep_deadlines)
    if show and summary.alerts:
        table = Table("办件 application", "alert", "due", "message")
        for a in summary.alerts:
            table.add_row(a.number, a.kind, str(a.due_date or ""), a.message)
        console().print(table)
    typer.echo(summary.line())


@run_app.command("housekeeping")
def run_housekeeping(ctx: typer.Context) -> None:
    """Remove material files no application refers to and abandoned uploads; delete recordings of
    signing sessions past their retention (audited). Daily, with the report."""
    typer.echo(run_job(open_hub(ctx), housekeeping).line())


@run_app.command("reminders")
def run_reminders(ctx: typer.Context) -> None:
    """Record the reminder of each booking of the next working day, once (预约提醒). Daily."""
    typer.echo(run_job(open_hub(ctx), reminders).line())


@run_app.command("documents")
def run_documents(
    ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many")] = 500
) -> None:
    """Seal and store the notices events made owed (收件凭证, 受理通知书, 决定书 …) that nobody
    opened yet. Every few minutes."""
    from hub.jobs.documents import documents

    result = run_job(open_hub(ctx), documents, limit=limit)
    typer.echo(result.line())
    if result.errors:
        raise typer.Exit(1)


@run_app.command("report")
def run_report(
    ctx: typer.Context,
    day: Annotated[str | None, typer.Option("--day", help="YYYY-MM-DD (default: yesterday, county time)")] = None,
) -> None:
    """Write the day's figures (received, completed, rates; the service channels' counts) to
    reports/daily-DAY.json, .csv and -service.csv."""
    hub = open_hub(ctx)
    try:
        when = date.fromisoformat(day) if day else hub.today() - timedelta(days=1)
    except ValueError:
        raise typer.BadParameter(f"日期格式应为 YYYY-MM-DD (not a date): {day}", param_hint="--day") from None
    typer.echo(run_job(hub, daily_report, when).line())


@run_app.command("exchange")
def run_exchange(
    ctx: typer.Context, partner: Annotated[str | None, typer.Option("--partner", help="Only this partner")] = None
) -> None:
    """Send partner hubs what they are owed (跨省通办): applications, status, results, withdrawals."""
    summary = run_job(open_hub(ctx), exchange, partner=partner)
    echo(summary.line())
    if summary.errors:
        raise typer.Exit(1)


@run_app.command("sync")
def run_sync(ctx: typer.Context, connection: ConnectionOpt = None) -> None:
    """Bring departments' statuses, decisions and result documents back."""
    hub = open_hub(ctx)
    with _progress("状态回流 sync") as advance:
        summary = run_job(hub, sync, connection=connection, progress=advance)
    typer.echo(summary.line())
    if summary.errors:
        raise typer.Exit(1)


@outbox_app.command("list")
def list_(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="pending, delivered, dead or cancelled")] = None,
    connection: ConnectionOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows per page")] = 200,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip (the next page: --offset LIMIT)")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Outbox rows with attempts and the last error (dead letters first), a page at a time;
    says how many match in all, so no row is silently left out."""
    rows, total = outbox_page(open_hub(ctx), state, connection, limit=limit, offset=offset)
    if as_json:
        print_json({"items": rows, "total": total, "limit": limit, "offset": offset})
        return
    table = Table("id", "办件 application", "item", "connection", "state", "attempts", "remote", "last error")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["application"],
            r["item"],
            r["connection"],
            r["state"],
            str(r["attempts"]),
            f"{r['remote_id'] or ''} {r['remote_status'] or ''}",
            r["last_error"] or "",
        )
    console().print(table)
    shown = f"{offset + 1}–{offset + len(rows)}" if rows else "0"
    more = f"; next page: --offset {offset + len(rows)}" if offset + len(rows) < total else ""
    echo(f"{shown} of {total}{more}")


@outbox_app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Outbox row ids")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead letter")] = False,
) -> None:
    """Put dead letters back in line for the next dispatch."""
    if not ids and not all_dead:
        raise typer.BadParameter("give row ids or --all-dead", param_hint="IDS")
    hub = open_hub(ctx)
    with hub.transaction() as session:
        n = outbox_rows.retry(session, hub.now(), ids=ids, all_dead=all_dead)
    typer.echo(f"{n} row(s) back in line")
