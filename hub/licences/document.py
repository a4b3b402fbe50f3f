"""A licence as a document: its metadata record (GB/T 36902-style, JSON), the A4 page that shows
it (CJK font, a QR code to the public page), the metadata embedded as a PDF attachment, and the
issuing department's seal over all of it (PAdES, hub.seals) — attached before sealing, so the
seal covers the record as much as the page. Drawn once, on first use, and kept in the blob store
(hub.applications.licences.sealed_pdf)."""

from __future__ import annotations

import io
import json
from typing import Any

import segno

from hub import pdf as hubpdf
from hub.catalog.licence_types import LONG_TERM
from hub.context import Hub
from hub.seals import seal_pdf
from hub.storage.tables import Licence

METADATA_NAME = "licence.json"  # the attachment's file name inside the PDF
FORMAT = "tongban-licence/1"


def public_path(code: str) -> str:
    return f"/l/{code}"


def public_link(hub: Hub, code: str) -> str:
    """The public page's full address for the QR code (`Settings.issued_link_base`)."""
    return hub.settings.issued_link_base + public_path(code)


def metadata(licence: Licence, link: str) -> dict[str, Any]:
    """The licence's metadata record, as embedded in its PDF and compared with the library when
    the file is verified. Field names follow GB/T 36902's elements (docs/licences.md)."""
    return {
        "format": FORMAT,
        "type_code": licence.type_code,
        "type_name": licence.type_name,
        "number": licence.number,
        "holder_name": licence.holder_name,
        "holder_id": licence.holder_id,
        "holder_id_type": licence.holder_id_type,
        "issuer": licence.issuer,
        "issuer_name": licence.issuer_name,
        "issued_on": licence.issued_on.isoformat(),
        "valid_from": licence.valid_from.isoformat(),
        "valid_until": licence.valid_until.isoformat() if licence.valid_until else None,
        "fields": (licence.data or {}).get("fields", []),
        "verify_url": link,
    }


def _qr_png(link: str) -> io.BytesIO:
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=8, border=2)
    out.seek(0)
    return out


FIELDS_TOP, FIELDS_BOTTOM = 75.0, 210.0  # mm: the face's room for the printed fields
SIZES = (12.0, 10.5, 9.0)  # point sizes tried, largest first


def _height(doc, fields: list[tuple[str, str]], size: float) -> float:
    doc.set_font("cjk", size=size)
    line = size * 0.6  # mm per line at this size
    total = 0.0
    for label, value in fields:
        rows = max(
            len(doc.multi_cell(42, line, label, dry_run=True, output="LINES")),
            len(doc.multi_cell(106, line, value, dry_run=True, output="LINES")),
        )
        total += rows * line + 2
    return total


def _fields(doc, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Print the fields on the face at the largest size that fits; when none does, the longest
    values say 见附页 and are returned for the annex page."""
    original, moved = list(fields), set[int]()
    room = FIELDS_BOTTOM - FIELDS_TOP
    size = next((sz for sz in SIZES if _height(doc, fields, sz) <= room), None)
    while size is None:
        longest = max(range(len(fields)), key=lambda i: len(fields[i][1]) if i not in moved else -1)
        if longest in moved:  # everything long is on the annex already: the smallest size
            size = SIZES[-1]
            break
        moved.add(longest)
        fields = [*fields[:longest], (fields[longest][0], "见附页"), *fields[longest + 1 :]]
        size = next((sz for sz in SIZES if _height(doc, fields, sz) <= room), None)
    line = size * 0.6
    doc.set_y(FIELDS_TOP)
    for label, value in fields:
        doc.set_font("cjk", size=size)
        y = doc.get_y()
        doc.set_x(30)
        doc.multi_cell(42, line, label, new_x="RIGHT", new_y="TOP")
        doc.set_xy(74, y)
        doc.multi_cell(106, line, value, new_x="LMARGIN", new_y="NEXT")
        doc.set_y(max(doc.get_y(), y + line) + 2)
    return [original[i] for i in sorted(moved)]


def render(licence: Licence, link: str) -> bytes:
    """The unsealed PDF: the page and the metadata attachment. Every value is plain text."""
    doc = hubpdf.new_document(f"{licence.type_name} {licence.number}")
    doc.set_auto_page_break(False)
    doc.add_page()
    doc.set_draw_color(170, 30, 30)
    doc.set_line_width(1.2)
    doc.rect(12, 12, 186, 273)
    doc.set_line_width(0.3)
    doc.rect(15, 15, 180, 267)
    doc.set_y(30)
    doc.set_font("cjk", size=12)
    doc.cell(0, 8, "电子证照", align="C", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("cjk", size=30)
    doc.cell(0, 18, licence.type_name, align="C", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("cjk", size=11)
    doc.cell(0, 8, f"证照编号：{licence.number}", align="C", new_x="LMARGIN", new_y="NEXT")
    doc.ln(8)
    fields = [(str(label), str(value)) for label, value in (licence.data or {}).get("fields", [])]
    annex = _fields(doc, fields)
    valid = licence.valid_until.isoformat() if licence.valid_until else LONG_TERM
    doc.set_font("cjk", size=10)
    doc.set_xy(30, 215)
    doc.cell(0, 6, f"有效期：{licence.valid_from.isoformat()} 至 {valid}", new_x="LMARGIN", new_y="NEXT")
    doc.image(_qr_png(link), x=28, y=228, w=36, h=36)
    doc.set_xy(28, 265)
    doc.cell(40, 5, "扫码核验", align="C")
    # the issuer and date above the seal (hub.seals puts it at the bottom right)
    doc.set_font("cjk", size=12)
    doc.set_xy(110, 222)
    doc.cell(80, 7, f"发证机关：{licence.issuer_name}", align="R", new_x="LMARGIN", new_y="NEXT")
    doc.set_xy(110, 229)
    doc.cell(80, 7, f"发证日期：{licence.issued_on.isoformat()}", align="R")
    if annex:  # what did not fit on the face, in full on a second page (附页)
        doc.add_page()
        doc.set_font("cjk", size=14)
        doc.set_y(25)
        doc.cell(
            0, 10, f"{licence.type_name}（附页）  证照编号：{licence.number}", align="C", new_x="LMARGIN", new_y="NEXT"
        )
        doc.set_auto_page_break(True, margin=20)
        for label, value in annex:
            doc.set_font("cjk", size=11)
            doc.set_x(25)
            doc.multi_cell(160, 7, f"{label}：{value}", new_x="LMARGIN", new_y="NEXT")
            doc.ln(2)
    record = json.dumps(metadata(licence, link), ensure_ascii=False, sort_keys=True, indent=1).encode()
    doc.embed_file(basename=METADATA_NAME, bytes=record, desc="电子证照元数据", mime_type="application/json")
    return hubpdf.output(doc)


def sealed(hub: Hub, licence: Licence, link: str) -> bytes:
    """Rendered and sealed by the issuing department: what the store keeps."""
    # on the face, by the issuer's name (a long licence has an annex page after it)
    return seal_pdf(hub, render(licence, link), licence.issuer, page=0, reason="颁发电子证照")
