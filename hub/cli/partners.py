"""`hub partners …`: our exchange identity (keygen, identity), the partner hubs (list, check),
their item lists (sync-catalogue), the message log (log, verify-log) and dead letters (retry).
`hub run exchange` sends what partners are owed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub import partner_outbox
from hub.cli.common import console, echo, fail, open_hub, print_json
from hub.errors import HubError
from hub.exchange import catalogue, log, overview
from hub.exchange.identity import us, verification_keys
from hub.hashchain import canonical
from hub.jobs.exchange import sync_catalogues
from hub.partners import keys
from hub.partners.config import Partner, cross_check
from hub.settings import load_settings

app = typer.Typer(help="跨省通办: partner hubs, our exchange key, item lists, the message log.", no_args_is_help=True)
PartnerOpt = Annotated[str | None, typer.Option("--partner", help="Only this partner (its file name)")]


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    rotate: Annotated[bool, typer.Option(help="Replace an existing key (the old one is kept aside)")] = False,
) -> None:
    """Make our exchange signing key (of `crypto.signature`: Ed25519 unless set, SM2 for 密评; mode 0600). Give partners the public half:
    `hub partners identity`. After --rotate, partners list the new key and keep the old one with
    `valid_until` until messages signed with it are delivered."""
    from hub.cli.common import home_of
    from hub.context import utcnow

    settings = load_settings(home_of(ctx))
    key, retired = keys.generate(
        settings.exchange_key_file.path, rotate=rotate, now=utcnow(), algorithm=settings.crypto.signature
    )
    echo(f"交换密钥 key: {settings.exchange_key_file.path} ({key.algorithm}, id {keys.public_key_id(key)})")
    if retired:
        echo(f"旧密钥已移至 old key kept at: {retired}")


@app.command("identity")
def identity(ctx: typer.Context) -> None:
    """What a partner pastes into its partners/NAME.yaml about us: hub id, divisions, public key."""
    hub = open_hub(ctx)
    try:
        me = us(hub)
    except HubError as exc:
        fail(str(exc))
    typer.echo(
        f"# {hub.settings.exchange.name or hub.settings.county.name} — for the partner's partners/{me.hub_id}.yaml"
    )
    typer.echo(f"name: {json.dumps(hub.settings.exchange.name or hub.settings.county.name, ensure_ascii=False)}")
    typer.echo(f"region: {json.dumps(hub.settings.county.name, ensure_ascii=False)}")
    typer.echo(f"hub_id: {me.hub_id}")
    typer.echo(f"url: {json.dumps(hub.settings.public_url or 'https://…', ensure_ascii=False)}  # where it reaches us")
    typer.echo(f'divisions: ["{hub.settings.county.division}"]')
    typer.echo("keys:")
    typer.echo(f"  - id: {me.key_id}")
    typer.echo(f"    public_key: {keys.public_b64(me.key)}")
    if me.key.algorithm != keys.ALGORITHM:  # read from the key itself; said for the partner's operator
        typer.echo(f"    # {me.key.algorithm}")


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Partners with backlog, dead letters, last messages and their item list's version."""
    rows = overview.partners(open_hub(ctx))
    if as_json:
        print_json(rows)
        return
    table = Table("partner", "name", "url", "backlog", "dead", "last sent", "last received", "list", "problems")
    for r in rows:
        table.add_row(
            r["name"],
            r["display"],
            r["url"],
            str(r["backlog"]),
            str(r["dead"]),
            r["last_sent"] or "—",
            r["last_received"] or "—",
            r["catalogue_version"] or "—",
            "; ".join(r["problems"]),
        )
    console().print(table)


@app.command("check")
def check(ctx: typer.Context, partner: PartnerOpt = None) -> None:
    """Each partner: its file, our key, the items it accepts from us, its TLS trust; then a signed
    ping both ways (its answer must be signed with a key we hold for it). Non-zero if any fails."""
    hub = open_hub(ctx)
    bad = False
    for name, problems in sorted(hub.partners.problems.items()):
        if partner and name != partner:
            continue
        bad = True
        for p in problems:
            echo(f"FAIL {name}: {p}")
    for name, p in sorted(hub.partners.by_name.items()):
        if partner and name != partner:
            continue
        for problem in config_problems(hub, p):
            bad = True
            echo(f"FAIL {name}: {problem}")
        try:
            got = catalogue.ask(hub, p, "ping", {})
            if got.refused:
                raise HubError(got.refused)
            echo(f"OK   {name}: {p.spec.url} 应答已验签 (answered, signature verified)")
        except HubError as exc:
            bad = True
            echo(f"FAIL {name}: {exc}")
    if bad:
        raise typer.Exit(1)


def config_problems(hub, p: Partner) -> list[str]:
    """Our exchange key, then what `hub doctor` checks of the file (one rule: `cross_check`)."""
    out = []
    try:
        us(hub)
    except HubError as exc:
        out.append(str(exc))
    return out + cross_check(p, catalog=hub.local_catalog or hub.catalog, resolve=hub.settings.path)


@app.command("sync-catalogue")
def sync_catalogue(ctx: typer.Context, partner: PartnerOpt = None) -> None:
    """Fetch each partner's cross-region item list (跨域通办目录清单): the items our desks may
    collect for it. Signed, versioned, kept as received."""
    from hub.ops import run_job

    summary = run_job(open_hub(ctx), sync_catalogues, partner=partner)
    echo(summary.line())
    if summary.failed:
        raise typer.Exit(1)


@app.command("items")
def items(ctx: typer.Context, partner: PartnerOpt = None) -> None:
    """The partners' items our desks may collect now (from the lists last synced)."""
    hub = open_hub(ctx)
    table = Table("code", "item", "region", "modes")
    for code, item in sorted(hub.catalog.items.items()):
        if item.partner and (not partner or item.partner == partner):
            table.add_row(code, item.title, item.region or "", ", ".join(item.cross_region))
    console().print(table)
    for code, (zh, en) in sorted(hub.catalog.unavailable.items()):
        echo(f"unavailable {code}: {zh} ({en})")


@app.command("log")
def log_(
    ctx: typer.Context,
    partner: PartnerOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write the whole log (JSON lines) for verify-log --file")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The message log, newest first (what, whose, verdict; bodies are not printed)."""
    hub = open_hub(ctx)
    if export is not None:
        n = 0
        with hub.sessions() as session, export.open("w", encoding="utf-8") as out:
            end = log.last_seq(session)
            for e in log.entries(session):
                if e.seq > end:
                    break  # written after the counter was read: the next export has it
                out.write(canonical(log.export_row(e)) + "\n")
                n += 1
            out.write(canonical({log.TRAILER: end}) + "\n")
        echo(f"{n} entries written to {export}")
        return
    rows, total = overview.log_page(hub, partner=partner, limit=limit, offset=offset)
    if as_json:
        print_json({"items": rows, "total": total})
        return
    table = Table("#", "at (UTC)", "dir", "partner", "kind", "verdict", "signer", "message")
    for r in rows:
        table.add_row(
            str(r["seq"]),
            r["at"],
            r["direction"],
            r["partner"],
            r["kind"] or "",
            r["verdict"],
            r["signer"] or "—",
            r["message_id"] or "",
        )
    console().print(table)
    echo(f"{len(rows)} of {total}")


@app.command("verify-log")
def verify_log(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option("--file", help="An exported log (hub partners log --export); default: the database")
    ] = None,
) -> None:
    """Check the message log offline: the hash chain, and every signature with our public keys
    (this one and retired ones beside it) and the partners' (rotated keys included)."""
    hub = open_hub(ctx)
    known = verification_keys(hub)
    if file is not None:
        try:
            lines = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            fail(f"{file}: {exc}")
        trailer = lines.pop() if lines and log.TRAILER in lines[-1] else None
        if trailer is None:
            echo(f"FAIL {file}: 缺少结尾行 (no {log.TRAILER} line: the export was cut short)")
            raise typer.Exit(1)
        report = log.verify(lines, known, last_seq=int(trailer[log.TRAILER]))
    else:
        with hub.sessions() as session:
            end = log.last_seq(session)
            report = log.verify((e for e in log.entries(session) if e.seq <= end), known, last_seq=end)
    for problem in report.problems:
        echo(f"FAIL {problem}")
    echo(
        f"{report.entries} entries, {report.signatures_checked} signatures verified, "
        f"{report.not_checked} refused unsigned/unknown (kept, not verifiable)"
    )
    if not report.ok:
        raise typer.Exit(1)
    echo("消息日志校验通过 (message log verified)")


@app.command("outbox")
def outbox(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="pending, delivered, dead or cancelled")] = None,
    partner: PartnerOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Messages owed to partners (dead letters first) with attempts and the last error; the ids
    are what `hub partners retry` takes."""
    rows, total = overview.outbox_page(open_hub(ctx), state=state, partner=partner, limit=limit, offset=offset)
    if as_json:
        print_json({"items": rows, "total": total, "limit": limit, "offset": offset})
        return
    table = Table("id", "partner", "kind", "办件 application", "state", "attempts", "next (UTC)", "last error")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["partner"],
            r["kind"],
            r["application"],
            r["state"],
            str(r["attempts"]),
            r["next_attempt_at"] or "",
            r["last_error"] or "",
        )
    console().print(table)
    echo(f"{len(rows)} of {total}")


@app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Dead message ids (hub partners list shows counts)")] = None,
    partner: PartnerOpt = None,
) -> None:
    """Put dead-lettered messages back in line (after the cause was fixed)."""
    hub = open_hub(ctx)
    with hub.transaction() as session:
        n = partner_outbox.retry(session, hub.now(), ids=ids, partner=partner)
    echo(f"{n} message(s) back in line")
