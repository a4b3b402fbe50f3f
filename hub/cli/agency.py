"""`hub agents` (the 代办员 roster) and `hub agency` (tasks, the project ledger, figures). Thin:
the rules are in hub.agency; this parses, calls and prints through DataConsole."""

from __future__ import annotations

import getpass
from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from hub.agency import figures, projects, roster, tasks
from hub.applications import Actor
from hub.cli.common import console, open_hub, print_json
from hub.ids import mask_id
from hub.lifecycle import Role

agents_app = typer.Typer(help="The agent roster (代办员): add, list, change, deactivate.", no_args_is_help=True)
agency_app = typer.Typer(help="帮代办: agency tasks, the project ledger (项目台账), figures.", no_args_is_help=True)


def _cli_actor(role: Role = Role.system) -> Actor:
    return Actor(name=f"cli:{getpass.getuser()}"[:100], role=role)


@agents_app.command("add")
def agents_add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="A login of role agent (hub users add … --role agent --desk …)")],
    name: Annotated[str, typer.Option("--name", help="姓名 as on the ID card")],
    id_number: Annotated[str, typer.Option("--id-number", help="公民身份号码 (signs the 委托书)")],
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    desk: Annotated[
        list[str] | None, typer.Option("--desk", help="A desk served (repeat); default: the home desk")
    ] = None,
    township: Annotated[
        list[str] | None, typer.Option("--township", help="A township served, 9-digit division code (repeat)")
    ] = None,
) -> None:
    """Put an agent on the roster: the same rules as the ops page (hub.agency.roster)."""
    hub = open_hub(ctx)
    a = roster.add(
        hub, _cli_actor(), username, name=name, id_number=id_number, phone=phone, desks=desk, townships=township
    )
    typer.echo(f"added {a.username}: desks {','.join(a.desks) or '-'}; townships {','.join(a.townships) or '-'}")


@agents_app.command("change")
def agents_change(
    ctx: typer.Context,
    username: str,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    desk: Annotated[list[str] | None, typer.Option("--desk", help="Replace the desks served (repeat)")] = None,
    township: Annotated[list[str] | None, typer.Option("--township", help="Replace the townships (repeat)")] = None,
    activate: Annotated[bool, typer.Option("--activate", help="Active again")] = False,
) -> None:
    """Change what an agent serves or its phone; --activate puts a deactivated agent back."""
    hub = open_hub(ctx)
    a = roster.update(
        hub, _cli_actor(), username, phone=phone, desks=desk, townships=township, active=True if activate else None
    )
    typer.echo(f"{a.username}: desks {','.join(a.desks) or '-'}; townships {','.join(a.townships) or '-'}")


@agents_app.command("deactivate")
def agents_deactivate(ctx: typer.Context, username: str) -> None:
    """Off duty: takes no more tasks, keeps those it holds."""
    a = roster.deactivate(open_hub(ctx), _cli_actor(), username)
    typer.echo(f"{a.username}: {'active' if a.active else 'inactive'}")


@agents_app.command("list")
def agents_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON (ID numbers masked)")] = False
) -> None:
    """The roster, ID numbers masked."""
    rows = roster.roster(open_hub(ctx))
    if as_json:
        print_json(
            [
                {
                    "username": a.username,
                    "name": a.name,
                    "id_number": mask_id(a.id_number),
                    "home_desk": a.home_desk,
                    "desks": a.desks,
                    "townships": a.townships,
                    "active": a.active,
                }
                for a in rows
            ]
        )
        return
    table = Table("username", "name", "ID number", "home desk", "desks", "townships", "state")
    for a in rows:
        table.add_row(
            a.username,
            a.name,
            mask_id(a.id_number),
            a.home_desk or "",
            ",".join(a.desks),
            ",".join(roster.township_name(t) for t in a.townships),
            "active" if a.active else "inactive",
        )
    console().print(table)


@agency_app.command("tasks")
def agency_tasks(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option("--state", help="open, taken, visiting, done, cancelled")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Agency tasks, newest first (ID numbers masked)."""
    hub = open_hub(ctx)
    rows = tasks.listing(hub, tasks.Who(_cli_actor(Role.supervisor)), state=state)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "state", "item", "resident", "ID number", "township / desk", "agent", "opened")
    for t in rows:
        table.add_row(
            str(t["id"]),
            t["state_zh"],
            t["title"],
            t["resident_name"],
            t["resident_id"],
            t["township_name"] or t["desk"] or "",
            t["agent"] or "",
            t["created_at"][:16],
        )
    console().print(table)


@agency_app.command("projects")
def agency_projects(
    ctx: typer.Context,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only projects with an overdue step")] = False,
) -> None:
    """The project ledger with each project's overdue steps."""
    hub = open_hub(ctx)
    out = console()
    for lg in projects.ledgers(hub, tasks.Who(_cli_actor(Role.supervisor)), overdue_only=overdue):
        p = lg.project
        out.print(
            f"#{p.id} {p.name} · {p.company_name} {p.credit_code} · {p.investment_wan} 万元 · {lg.agent_name or '-'}"
        )
        for s in lg.overdue:
            what = s["name"] if s["kind"] == "milestone" else f"{s['number']} {s['title']}"
            out.print(f"    overdue since {s['due_date']}: {what}")


@agency_app.command("figures")
def agency_figures(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="YYYY-MM-DD (county day)")],
    end: Annotated[str | None, typer.Option("--end", help="YYYY-MM-DD; default: start")] = None,
) -> None:
    """Visits, tasks opened and done, applications from tasks, by the county's day."""
    hub = open_hub(ctx)
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end or start)
    except ValueError:
        raise typer.BadParameter("dates as YYYY-MM-DD") from None
    with hub.sessions() as session:
        print_json({"start": first.isoformat(), "end": last.isoformat(), **figures.counts(session, first, last)})
