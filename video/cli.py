"""`hub evidence …` and `hub signing …`: check, export and expire the evidence of remote signing
sessions. Needs no aiortc: verifying is hashing and one signature check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table
from sqlalchemy import select

from hub import signing
from hub.cli.common import ActorName, console, fail, make_actor, open_hub, print_json
from hub.context import Hub
from hub.lifecycle import Role
from hub.signing_key import key_id, load_public_key, public_pem, signing_key
from hub.storage.tables import SigningSession
from video import evidence, integrity
from video.sessions import recover

evidence_app = typer.Typer(help="Evidence of remote signing sessions: verify, export, purge.", no_args_is_help=True)
signing_app = typer.Typer(help="Remote signing sessions (远程面签).", no_args_is_help=True)


def _session(hub: Hub, session_id: str) -> SigningSession:
    with hub.sessions() as session:
        found = session.scalars(select(SigningSession).where(SigningSession.id.startswith(session_id))).all()
    if len(found) != 1:
        fail(f"{'no' if not found else 'more than one'} signing session {session_id}", 2)
    return found[0]


def _public_key(hub: Hub, given: Path | None):
    if given is not None:
        return load_public_key(given.read_bytes())
    return signing_key(hub).public_key()


@evidence_app.command("verify")
def verify(
    ctx: typer.Context,
    session_id: Annotated[
        str | None, typer.Argument(help="Session id (or its first characters), or an exported folder")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option(help="PEM public key to check with (default: the hub's own; required for a folder)")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every sealed session of the hub (a summary, then the failures)")
    ] = False,
) -> None:
    """Check the manifest's signature and key, every file's hash, the event chain, and (for a
    session of this hub) that it is the manifest the hub recorded; exit 1 naming the first
    mismatch. With --all: every session whose evidence was sealed."""
    if all_ == (session_id is not None):
        fail("give a session id or folder, or --all (one of them)", 2)
    if all_:
        _verify_all(ctx, public_key)
        return
    assert session_id is not None
    folder = Path(session_id)
    expected = None
    if folder.is_dir():
        if public_key is None:  # the copy inside a folder proves nothing: whoever forged it put it there
            fail(
                "give the hub's public key with --public-key (from /api/v1/signing/public-key), not the folder's copy",
                2,
            )
        key = load_public_key(public_key.read_bytes())
    else:
        hub = open_hub(ctx)
        s = _session(hub, session_id)
        if s.purged_at is not None:
            fail(f"session {s.id}: its recordings were deleted on {s.purged_at:%Y-%m-%d} (retention)", 1)
        folder, key = signing.folder_of(hub, s), _public_key(hub, public_key)
        expected = {"session": s.id, "manifest_sha256": s.manifest_sha256 or ""}
    verdict = evidence.verify_folder(folder, key, expected=expected)
    if not verdict.ok:
        for problem in verdict.problems:
            typer.echo(f"FAIL {problem}", err=True)
        raise SystemExit(1)
    m = verdict.manifest or {}
    typer.echo(
        f"OK {m.get('session')} ({m.get('outcome')}): {m.get('key', {}).get('algorithm', 'Ed25519')} signature "
        f"by key {key_id(key)[:16]}…, {verdict.checked} files ({m.get('hash_alg', 'sha256')}), "
        f"{m.get('events', {}).get('count')} events"
    )


def _verify_all(ctx: typer.Context, public_key: Path | None, show: int = 20) -> None:
    hub = open_hub(ctx)

    def key():
        key_file = hub.settings.signing_key_file.path
        if public_key is None and not key_file.is_file():
            # signing_key would make a new key here, and every package would then fail as
            # "sealed with another key": say what is missing instead (a restored home has none)
            fail(
                f"签名密钥不存在 (no signing key at {key_file}): install the hub's key, "
                "or check with its public key: --public-key HUB.pem",
                2,
            )
        return _public_key(hub, public_key)

    report = integrity.verify_all(hub, key)
    table = Table("面签证据 evidence", "数量 sessions", title="证据核验 evidence packages")
    for label, n in (
        ("已核验 checked", report.sealed),
        ("通过 ok", report.ok),
        ("失败 failed", len(report.failures)),
        ("进行中 open", report.open),
        ("未封存 ended, not sealed", report.unsealed),
        ("已按期删除 purged (retention)", report.purged),
    ):
        table.add_row(label, str(n))
    console().print(table)
    typer.echo(f"{report.files} evidence file(s) hashed")
    for f in report.failures[:show]:
        for problem in f.problems:
            typer.echo(f"FAIL {f.session} ({f.number}): {problem}", err=True)
    if len(report.failures) > show:
        typer.echo(f"… and {len(report.failures) - show} more session(s) failed", err=True)
    if report.failures:
        raise SystemExit(1)


@evidence_app.command("export")
def export(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Session id (or its first characters)")],
    destination: Annotated[Path, typer.Argument(help="An empty or new folder")],
) -> None:
    """A self-contained copy of a session's evidence, with the public key, SHA256SUMS, a README
    and verify_evidence.py: anyone can check it without the hub."""
    hub = open_hub(ctx)
    s = _session(hub, session_id)
    folder = signing.folder_of(hub, s)
    if not (folder / evidence.MANIFEST).exists():
        fail(f"session {s.id} is not sealed yet ({s.state})")
    out = evidence.export(folder, destination, public_pem(signing_key(hub)))
    typer.echo(f"{out}: {s.number}, {s.state}; check with: python3 {out / 'verify_evidence.py'} {out}")


@evidence_app.command("timestamp")
def timestamp_cmd(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Session id (or its first characters)")],
) -> None:
    """Ask the RFC 3161 timestamp authority (signing.tsa_url) for a sealed session's
    manifest.tsr again — when it could not be reached at sealing time, or its answer was
    refused (it must time-stamp the manifest's signature with the nonce sent)."""
    hub = open_hub(ctx)
    s = _session(hub, session_id)
    url = hub.settings.signing.tsa_url
    if not url:
        fail("signing.tsa_url is not set: no timestamp authority to ask", 2)
    folder = signing.folder_of(hub, s)
    if s.purged_at is not None or not (folder / evidence.MANIFEST).exists():
        fail(f"session {s.id}: no sealed evidence to time-stamp ({s.state})")
    from video import timestamps  # asn1crypto, httpx: only for hubs with a TSA

    try:
        kept = timestamps.timestamp(folder, url)
    except (timestamps.TimestampRefused, httpx.HTTPError) as exc:
        fail(f"session {s.id}: no RFC 3161 timestamp ({exc})")
    typer.echo(f"{kept}: time-stamped by {url}")


@evidence_app.command("purge")
def purge(ctx: typer.Context, actor: ActorName = None) -> None:
    """Delete recordings past their retention (sealed: signing.retention_years, aborted:
    signing.aborted_retention_days); every deletion is written to the audit log."""
    hub = open_hub(ctx)
    done = signing.purge(hub, make_actor(actor, Role.system, None, None))
    typer.echo(f"{len(done)} session(s) past retention deleted" + "".join(f"\n  {d}" for d in done))


@evidence_app.command("public-key")
def public_key_cmd(ctx: typer.Context) -> None:
    """Print the hub's evidence public key (PEM; its algorithm is in it), as /api/v1/signing/public-key serves it."""
    typer.echo(public_pem(signing_key(open_hub(ctx))).decode(), nl=False)


@signing_app.command("list")
def list_sessions(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every signing session with its state and retention."""
    hub = open_hub(ctx)
    with hub.sessions() as session:
        rows = list(session.scalars(select(SigningSession).order_by(SigningSession.created_at)))
    out = [
        {
            "id": s.id,
            "application": s.number,
            "item": s.item_code,
            "state": s.state,
            "step": s.step,
            "started": s.created_at.isoformat(timespec="seconds"),
            "ended": s.ended_at.isoformat(timespec="seconds") if s.ended_at else None,
            "reason": s.end_reason,
            "retain_until": s.retain_until.isoformat() if s.retain_until else None,
            "purged": s.purged_at is not None,
        }
        for s in rows
    ]
    if as_json:
        print_json(out)
        return
    table = console()
    for r in out:
        table.print(
            f"{r['id'][:8]}  {r['application']}  {r['item']}  {r['state']}/{r['step']}  {r['started']}"
            + (f"  {r['reason']}" if r["reason"] else "")
        )


@signing_app.command("recover")
def recover_cmd(ctx: typer.Context) -> None:
    """Abort sessions a stopped process left open and seal their partial recordings (`hub serve`
    does this when it starts)."""
    done = recover(open_hub(ctx))
    typer.echo(f"{len(done)} interrupted session(s) aborted and sealed" + "".join(f"\n  {d}" for d in done))
