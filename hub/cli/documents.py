"""`hub documents`: the notices the hub issued — list, show one, verify a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub import applications as svc
from hub.cli.common import console, echo, fail, open_hub, print_json
from hub.documents import by_code, documents_of, pdf_of, verify_file
from hub.documents.library import recent, staff_view
from hub.storage.tables import Document

app = typer.Typer(help="Notices and decisions as sealed PDFs (文书): list, show, verify.", no_args_is_help=True)
MAX_FILE = 50 * 1024 * 1024  # a notice is tens of kilobytes; anything this large is not one of ours


@app.command("list")
def list_(
    ctx: typer.Context,
    application: Annotated[
        str | None, typer.Option("--application", help="办件号: this application's documents")
    ] = None,
    state: Annotated[str | None, typer.Option(help="pending or issued (without --application)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """An application's documents, oldest first (owed ones as pending); without --application the
    newest documents of all, e.g. `--state pending` for those not sealed yet."""
    if state not in (None, "pending", "issued"):
        fail(f"--state {state!r}: pending or issued")
    hub = open_hub(ctx)
    if application:
        docs = [staff_view(d) for d in documents_of(hub, svc.read(hub, application, svc.SYSTEM))]
    else:
        docs = [staff_view(d) | {"application": number} for d, number in recent(hub, state=state, limit=limit)]
    if as_json:
        print_json(docs)
        return
    table = Table("code", "kind", "title", "date", "authority", "state", "sha256")
    for d in docs:
        table.add_row(
            d["code"], d["kind"], d["title"], d["date"] or "", d["authority"], d["state"], (d["sha256"] or "")[:16]
        )
    console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The verification code printed on the document")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the sealed PDF here")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One document by its verification code (issued now if still pending, with --output)."""
    hub = open_hub(ctx)
    found = by_code(hub, code)
    if found is None:
        fail(f"no document with code {code!r} (文书编号不存在)")
    doc, number = found
    if output is not None:
        data = pdf_of(hub, doc)
        output.write_bytes(data)
        doc = _reread(hub, doc)
    view = staff_view(doc) | {"application": number}
    if as_json:
        print_json(view)
        return
    for key, value in view.items():
        echo(f"{key}: {value if value is not None else ''}")


def _reread(hub, doc: Document) -> Document:
    found = by_code(hub, doc.code)
    return found[0] if found else doc


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A PDF the hub issued", exists=False)],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a file: its seals (signer, time, integrity, trusted) and whether the hub issued
    exactly these bytes. Exit 1 unless both hold."""
    if not file.is_file():
        fail(f"{file}: no such file (文件不存在)")
    if file.stat().st_size > MAX_FILE:
        fail(f"{file}: larger than {MAX_FILE // 1024 // 1024} MB: not a notice the hub issued")
    hub = open_hub(ctx)
    check = verify_file(hub, file.read_bytes())
    seals = [
        {
            "field": s.field,
            "signer": s.signer,
            "algorithm": s.algorithm,
            "signed_at": s.signed_at.isoformat() if s.signed_at else None,
            "intact": s.intact,
            "valid": s.valid,
            "trusted": s.trusted,
            "whole_document": s.whole_document,
        }
        for s in check.seals
    ]
    issued = staff_view(check.document) | {"application": check.number} if check.document else None
    if as_json:
        print_json({"ok": check.ok, "sha256": check.sha256, "seals": seals, "issued": issued})
    else:
        echo(f"sha256: {check.sha256}")
        if not seals:
            echo("seals: none (no signature in this file, or not a PDF)")
        for s in seals:
            good = s["intact"] and s["valid"] and s["trusted"] and s["whole_document"]
            echo(
                f"seal {s['field']}: signer {s['signer']}, {s['algorithm']}, signed {s['signed_at']}: "
                + (
                    "valid"
                    if good
                    else f"INVALID (intact={s['intact']} valid={s['valid']} trusted={s['trusted']} "
                    f"whole_document={s['whole_document']})"
                )
            )
        if issued:
            echo(
                f"issued by the hub: {issued['title']} {issued['code']} for {issued['application']} on {issued['date']}"
            )
        else:
            echo("not a document the hub issued (no issued document has this digest)")
        echo("OK" if check.ok else "NOT VALID")
    if not check.ok:
        raise typer.Exit(1)
