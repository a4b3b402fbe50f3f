"""Drawing a filled-in template as an A4 page (hub.pdf): title, verification code, greeting,
body, the facts table, the list table, notes, signature lines, then the two QR codes (progress,
verification) on the left and the 落款 (authority, date) on the right, where the seal goes.

Everything drawn is plain text (fpdf2 without markdown): what a resident or a department typed
is never read as markup."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import segno

from hub import pdf as hubpdf
from hub.documents.templates import Rendered

MARGIN = 20.0  # mm
PAGE_W, PAGE_H = 210.0, 297.0
FOOT = 62.0  # mm the QR codes and the 落款 need at the foot of the last page
SEAL = 40.0  # mm: the side of the seal's box, over the 落款
MM = 72 / 25.4  # points per mm


@dataclass
class Page:
    pdf: bytes
    page: int  # 0-based: the page the seal goes on
    box: tuple[int, int, int, int]  # the seal's box, PDF points from the bottom left


def _qr_png(url: str) -> io.BytesIO:
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=6, border=2)
    buf.seek(0)
    return buf


def draw(filled: Rendered, snap: dict[str, Any], code: str, status_url: str | None, verify_url: str) -> Page:
    """The unsigned PDF of a document, and where its seal goes."""
    authority, day = snap["authority"]["name"], snap["date_zh"]
    everything = "\n".join([filled.all_text(), authority, day, code, "文书编号：扫码查询办理进度扫码核验本文书"])
    pdf = hubpdf.new_document(filled.title, text=everything, bold=False)  # one face: one subset
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN)
    pdf.add_page()
    width = PAGE_W - 2 * MARGIN

    pdf.set_font("cjk", "", 20)
    with hubpdf.heavy(pdf, 0.3):
        pdf.cell(width, 12, filled.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", "", 9)
    pdf.cell(width, 6, f"文书编号：{code}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    pdf.set_font("cjk", "", 12)
    if filled.greeting:
        pdf.multi_cell(width, 8, filled.greeting, wrapmode="CHAR", new_x="LMARGIN", new_y="NEXT")
    for para in _paragraphs(filled.body):
        _paragraph(pdf, "\u3000\u3000" + para, width, 7.5)
    pdf.ln(3)

    pdf.set_font("cjk", "", 10.5)
    if filled.rows:
        with pdf.table(col_widths=(32, width - 32), first_row_as_headings=False, wrapmode="CHAR", line_height=6.5) as t:
            for label, value in filled.rows:
                row = t.row()
                row.cell(label)
                row.cell(value)
        pdf.ln(3)
    if filled.columns:
        if filled.table_heading:
            pdf.set_font("cjk", "", 11)
            with hubpdf.heavy(pdf, 0.15):
                pdf.cell(width, 8, filled.table_heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("cjk", "", 10.5)
        # the heading row shaded, not bold: the document carries one face
        from fpdf.fonts import FontFace  # fpdf2 only in processes that draw (hub.pdf)

        heading = FontFace(fill_color=(235, 235, 235))
        with pdf.table(wrapmode="CHAR", line_height=6.5, headings_style=heading) as t:
            head = t.row()
            for c in filled.columns:
                head.cell(c)
            for cells in filled.table or [["—"] + [""] * (len(filled.columns) - 1)]:
                row = t.row()
                for c in cells:
                    row.cell(c)
        pdf.ln(3)
    if filled.notes:
        pdf.set_font("cjk", "", 10.5)
        for para in _paragraphs(filled.notes):
            _paragraph(pdf, "\u3000\u3000" + para, width, 6.5)
        pdf.ln(2)
    if filled.signatures:
        pdf.set_font("cjk", "", 11)
        pdf.ln(4)
        for who in filled.signatures:
            pdf.cell(width, 10, f"{who}：________________    日期：______年____月____日", new_x="LMARGIN", new_y="NEXT")

    # the foot: QR codes left, 落款 right, on the last page (a new one when it does not fit)
    if pdf.get_y() > PAGE_H - MARGIN - FOOT:
        pdf.add_page()
    top = PAGE_H - MARGIN - FOOT + 4
    qr = 30.0
    pdf.set_font("cjk", "", 8)
    if status_url:
        pdf.image(_qr_png(status_url), x=MARGIN, y=top, w=qr, h=qr)
        pdf.set_xy(MARGIN, top + qr)
        pdf.cell(qr, 5, "扫码查询办理进度", align="C")
    pdf.image(_qr_png(verify_url), x=MARGIN + qr + 8, y=top, w=qr, h=qr)
    pdf.set_xy(MARGIN + qr + 8, top + qr)
    pdf.cell(qr, 5, "扫码核验本文书", align="C")
    pdf.set_xy(MARGIN, top + qr + 5)
    pdf.cell(2 * qr + 8, 5, verify_url, align="L")

    right = PAGE_W - MARGIN
    pdf.set_font("cjk", "", 12)
    name_y = top + 12
    pdf.set_xy(right - 80, name_y)
    pdf.cell(80, 8, authority, align="C")
    pdf.set_xy(right - 80, name_y + 9)
    pdf.cell(80, 8, day, align="C")

    # the seal over the 落款: centred on the authority's name
    cx, cy = right - 40, name_y + 8
    x1, y1 = (cx - SEAL / 2) * MM, (PAGE_H - cy - SEAL / 2) * MM
    box = (round(x1), round(y1), round(x1 + SEAL * MM), round(y1 + SEAL * MM))
    return Page(hubpdf.output(pdf), pdf.page_no() - 1, box)


# closing punctuation never starts a line (避头): it hangs into the margin instead (标点悬挂)
NO_LINE_START = set("，。、；：？！）》」』”’〕】…—,.;:?!)")


def _lines(pdf, text: str, width: float) -> list[str]:
    """`text` broken into lines of at most `width` (character by character: Chinese breaks
    anywhere), except that a closing punctuation mark stays on the line before."""
    lines, line, used = [], "", 0.0
    for ch in text:
        w = pdf.get_string_width(ch)
        if line and used + w > width and ch not in NO_LINE_START:
            lines.append(line)
            line, used = "", 0.0
        line += ch
        used += w
    if line:
        lines.append(line)
    return lines


def _paragraph(pdf, text: str, width: float, height: float) -> None:
    for line in _lines(pdf, text, width):
        pdf.cell(width, height, line, new_x="LMARGIN", new_y="NEXT")


def _paragraphs(text: str) -> list[str]:
    """Paragraphs of a text block: separated by blank lines; the lines of one paragraph are joined
    without a space (Chinese has none between words), so a template may wrap its lines anywhere."""
    paragraphs = [""]
    for line in text.splitlines():
        if line.strip():
            paragraphs[-1] += line.strip()
        elif paragraphs[-1]:
            paragraphs.append("")
    return [p for p in paragraphs if p]
