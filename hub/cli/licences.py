"""`hub licences`: the licence library (电子证照) — list, show, verify a file, revoke, and export
the signed status list for offline verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from hub.applications import licences as issued
from hub.cli.common import (
    ActorName,
    DepartmentOpt,
    DeskOpt,
    RoleOpt,
    WriteRoleOpt,
    console,
    echo,
    fail,
    make_actor,
    open_hub,
    print_json,
)
from hub.ids import mask_id
from hub.licences import manage, status_list, verify_licence
from hub.licences.verify import verify_file
from hub.lifecycle import Role
from hub.seals import HUB_AUTHORITY, load_seal, trust_roots

app = typer.Typer(help="Electronic licences (电子证照): list, show, verify, revoke.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    holder_id: Annotated[
        str | None, typer.Option("--holder-id", help="The holder's full ID number or credit code")
    ] = None,
    type_code: Annotated[str | None, typer.Option("--type", help="Licence type code (LNYDZ, YYZZ, BDCQZS …)")] = None,
    actor: ActorName = None,
    role: RoleOpt = Role.ops,
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Licences in the library within the role's scope, newest first (ID numbers masked)."""
    hub = open_hub(ctx)
    who = make_actor(actor, role, desk, department)
    with hub.sessions() as session:
        found = manage.find_licences(session, who, holder_id=holder_id, type_code=type_code)
        rows = [manage.view(lic, who, hub.today()) for lic in found]
    if as_json:
        print_json(rows)
        return
    table = Table("证照编号", "类型", "持证人", "证件号码", "发证机关", "发证日期", "有效期至", "状态")
    for r in rows:
        table.add_row(
            r["number"],
            r["type_name"],
            r["holder_name"],
            mask_id(r["holder_id"]),
            r["issuer_name"],
            r["issued_on"],
            r["valid_until"] or "长期",
            r["status_zh"],
        )
    console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Licence number (证照编号)")],
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write the sealed PDF here (drawn on first use)")] = None,
    actor: ActorName = None,
    role: RoleOpt = Role.ops,
    desk: DeskOpt = None,
    department: DepartmentOpt = None,
) -> None:
    """One licence: its record and status today; --pdf writes its sealed PDF."""
    hub = open_hub(ctx)
    who = make_actor(actor, role, desk, department)
    with hub.sessions() as session:
        view = manage.view(manage.get_licence(session, number, who), who, hub.today())
    print_json(view)
    if pdf is not None:
        pdf.write_bytes(issued.sealed_pdf(hub, number))
        echo(f"wrote {pdf}", err=True)


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A licence PDF", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a licence PDF: its seals, its attached metadata against the library, its status.
    Exits 0 only for a valid licence."""
    hub = open_hub(ctx)
    result = verify_file(hub, file.read_bytes())
    if as_json:
        print_json(result.as_dict())
    else:
        word = (
            manage.STATUS_ZH.get(result.verdict)
            or {"tampered": "无效（被篡改或印章不可信）", "unknown": "库中无此证照"}[result.verdict]
        )
        echo(f"{result.verdict} {word}")
        for key in ("number", "type_name", "issuer_name"):
            if value := getattr(result, key):
                echo(f"{key}: {value}")
        for problem in result.problems:
            echo(f"problem: {problem}")
    if result.verdict != "valid":
        raise SystemExit(1)


@app.command()
def revoke(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Licence number (证照编号)")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the application's chain)")],
    actor: ActorName = None,
    role: WriteRoleOpt = ...,
    department: DepartmentOpt = None,
) -> None:
    """注销: revoke a licence (the issuing department's officer, or `--role system`)."""
    hub = open_hub(ctx)
    done = issued.revoke(hub, number, make_actor(actor, role, None, department), reason)
    echo(f"revoked {done.number}" + (f" (application {done.application_number})" if done.application_number else ""))


@app.command("export-status")
def export_status(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output")] = None,
) -> None:
    """The signed status list (revoked licences) for offline verification (verify_licence.py --status)."""
    hub = open_hub(ctx)
    try:
        document = status_list.signed(hub)
    except LookupError as exc:  # no hub seal yet
        fail(str(exc))
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        echo(f"wrote {out}", err=True)


KIT_README = """电子证照离线核验 (offline licence verification)

    python3 verify_licence.py LICENCE.pdf --trust county-root.pem --status status.json --status-signer status-signer.pem

Needs Python 3.11+ and pyHanko (pip install pyhanko); SM2 seals need gmssl_pyx or the openssl
command line. county-root.pem: check its fingerprint with the county before trusting it.
status-signer.pem: the hub's own seal certificate, the only one whose status list is believed
(key id {key_id}). status.json: the revocation list as of its issued_at; older than 7 days
(--max-age) it is stale: fetch a fresh one from PUBLIC_URL/l/status.json. Exit 0 only for a valid licence.
"""


@app.command("export-kit")
def export_kit(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to write (created; files in it replaced)")],
) -> None:
    """What another agency needs to verify licences offline: verify_licence.py, the county's root
    certificate(s), the signed status list and a README."""
    hub = open_hub(ctx)
    roots = trust_roots(hub)
    if not roots:
        fail("no trusted root in seals/trust/ (hub seals test-ca, or hub seals import)")
    try:
        document = status_list.signed(hub)
    except LookupError as exc:  # no hub seal yet
        fail(str(exc))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(verify_licence.__file__, folder / "verify_licence.py")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots)
    (folder / "county-root.pem").write_bytes(pem)
    (folder / "status.json").write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    hub_seal = load_seal(hub, HUB_AUTHORITY)  # pinned: a department's seal cannot sign a list
    (folder / "status-signer.pem").write_bytes(hub_seal.certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "README.txt").write_text(KIT_README.replace("{key_id}", hub_seal.key.key_id), encoding="utf-8")
    echo(f"wrote {folder}: verify_licence.py, county-root.pem, status-signer.pem, status.json, README.txt", err=True)
