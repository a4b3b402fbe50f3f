"""`hub seals …`: the electronic seals (电子印章) in `<home>/seals/` — list them, import a real one,
trust a root, make the sandbox's test CA and seals, verify a sealed PDF (docs/seals.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.catalog import load_catalog
from hub.cli.common import console, echo, fail, home_of, print_json
from hub.crypto import CryptoError
from hub.seals import store
from hub.seals.importing import SealImportError, import_seal, trust_root
from hub.settings import load_settings

app = typer.Typer(help="电子印章: seals, their certificates, the test CA.", no_args_is_help=True)


def _root(ctx: typer.Context) -> tuple[Path, object]:
    settings = load_settings(home_of(ctx))
    return settings.home / "seals", settings


def seal_rows(root: Path) -> list[dict]:
    """What `hub seals list` shows: never the key, only its id."""
    rows = []
    for authority in store.authorities(root):
        try:
            seal = store.load_seal_from(root, authority)
        except Exception as e:  # a broken folder is listed with why, not hidden
            rows.append({"authority": authority, "problem": f"{type(e).__name__}: {e}"})
            continue
        rows.append(
            {
                "authority": authority,
                "holder": seal.name,
                "type": seal.kind,
                "algorithm": seal.algorithm,
                "subject": store.dn(seal.cert.subject),
                "issuer": store.dn(seal.cert.issuer),
                "valid_until": seal.valid_until.isoformat(),
                "test": seal.test,
                "key_id": seal.key.key_id,
            }
        )
    return rows


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
) -> None:
    """Every seal: authority, holder, algorithm, certificate subject and issuer, valid until,
    test CA or not, key id (never the key)."""
    root, _settings = _root(ctx)
    rows = seal_rows(root)
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("没有印章 (no seals): hub seals test-ca (sandbox) or hub seals import")
        return
    table = Table("authority", "holder", "algorithm", "subject", "issuer", "valid until", "test CA", "key id")
    for r in rows:
        if "problem" in r:
            table.add_row(r["authority"], "—", "—", r["problem"], "", "", "", "")
            continue
        table.add_row(
            r["authority"],
            f"{r['holder']} ({r['type']})",
            r["algorithm"],
            r["subject"],
            r["issuer"],
            r["valid_until"][:10],
            "测试 test" if r["test"] else "no",
            r["key_id"][:16],
        )
    console().print(table)


@app.command("test-ca")
def test_ca(
    ctx: typer.Context,
    algorithm: Annotated[
        str | None,
        typer.Option(help="ecdsa-p256, rsa-2048, rsa-3072 or sm2 (default: crypto.signature when it can seal)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="A new test CA, and every test seal issued again")] = False,
) -> None:
    """Make the sandbox's test CA and a test seal for the hub and each department that has none
    (imported seals are never touched). Not for production: import real seals."""
    root, settings = _root(ctx)
    alg = algorithm or store.seal_algorithm(settings.crypto.signature)
    try:
        made = store.make_test_seals(
            root,
            settings.county.name,
            store.holders(settings.county.name, load_catalog(settings.config_dir)),
            alg,
            force=force,
        )
    except CryptoError as e:
        fail(str(e), 2)
    echo(f"测试CA ({alg}): {root / store.TEST_CA}")
    echo(f"已制作测试印章 (test seals made): {', '.join(made) or '—'}")


@app.command("import")
def import_(
    ctx: typer.Context,
    authority: Annotated[str, typer.Argument(help="Department code, or 'hub' for the hub's own seal")],
    p12: Annotated[Path | None, typer.Option("--p12", help="PKCS#12 file with the key, certificate and chain")] = None,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="File holding the PKCS#12 password")
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="PEM private key (PKCS#8 or SEC1)")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="PEM certificate")] = None,
    chain: Annotated[Path | None, typer.Option("--chain", help="PEM CA certificates up to the root")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="The seal image (PNG, transparent background)")] = None,
    kind: Annotated[str, typer.Option("--type", help="The seal's type, e.g. 行政审批专用章")] = store.DEFAULT_TYPE,
    holder: Annotated[
        str | None, typer.Option("--holder", help="Name on the seal (default: the certificate's CN)")
    ] = None,
) -> None:
    """Import a real seal: the key must match the certificate, the certificate be valid now and
    allowed to sign, and chain to a root in seals/trust (`hub seals trust ROOT.pem`)."""
    root, _settings = _root(ctx)
    try:
        name = import_seal(
            root, authority, p12=p12, password_file=password_file, key_file=key, cert_file=cert,
            chain_file=chain, image_file=image, kind=kind, holder=holder,
        )  # fmt: skip
    except SealImportError as e:
        fail(str(e), 2)
    echo(f"已导入印章 (seal imported): {authority} — {name}")


@app.command("trust")
def trust(
    ctx: typer.Context,
    pem: Annotated[Path, typer.Argument(help="A CA certificate (PEM) seals and timestamps may chain to")],
) -> None:
    """Trust a root CA (or a timestamp authority's certificate): verifications accept seals that
    chain to it."""
    root, _settings = _root(ctx)
    try:
        names = trust_root(root, pem)
    except SealImportError as e:
        fail(str(e), 2)
    echo(f"已信任 (trusted): {', '.join(names)}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A sealed PDF")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of lines")] = False,
) -> None:
    """Check every seal in a PDF: signer, holder, algorithm, signing and timestamp time,
    integrity, trust and coverage. Exit 1 when any seal fails, or there is none."""
    from hub.context import Hub
    from hub.seals import verify_pdf

    try:
        data = file.read_bytes()
    except OSError as e:
        fail(f"{file}: cannot read ({e.strerror})", 2)
    hub = Hub.open(home_of(ctx))
    try:
        checks = verify_pdf(hub, data)
    finally:
        hub.close()
    if as_json:
        print_json([{**c.__dict__, "ok": c.ok} for c in checks])
    else:
        if not checks:
            echo(f"{file}: 无印章 (no seal)")
        for c in checks:
            verdict = "有效 valid" if c.ok else "无效 INVALID"
            echo(f"{c.field}: {verdict} — {c.holder} [{c.algorithm}, PAdES {c.level}]")
            echo(f"  signed at {c.signed_at.isoformat() if c.signed_at else '—'}"
                 + (f"; timestamp {c.timestamp_at.isoformat()}" if c.timestamp_at else ""))  # fmt: skip
            echo(f"  issuer {c.issuer}; authority {c.authority or '—'}")
            for p in c.problems:
                echo(f"  problem: {p}")
    if not checks or not all(c.ok for c in checks):
        raise typer.Exit(1)
