"""PDF pages the hub draws itself (notices, licences, seal images): A4, with a CJK font embedded
(subset) so every reader shows the same characters. fpdf2 draws; the text it is given is always
plain text (never markup), so nothing a resident or a department typed can change the layout.

The font is the first of `HUB_PDF_FONT` (a .ttf/.otf/.ttc file) or the Noto CJK fonts Debian's
fonts-noto-cjk installs; `hub doctor` and `hub catalog check` name the problem when none is found."""

from __future__ import annotations

import os
from pathlib import Path

from fpdf import FPDF

# (file, index in a collection): Noto Sans CJK's collections hold JP, KR, SC, TC, HK in this order
CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
BOLD_CANDIDATES: tuple[tuple[str, int], ...] = (("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),)


class FontMissing(RuntimeError):
    pass


def font_file() -> tuple[Path, int]:
    configured = os.environ.get("HUB_PDF_FONT")
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FontMissing(f"HUB_PDF_FONT={configured}: no such file")
        return path, 0
    for name, index in CANDIDATES:
        if Path(name).is_file():
            return Path(name), index
    raise FontMissing("no CJK font found: install fonts-noto-cjk, or set HUB_PDF_FONT to a .ttf/.otf/.ttc file")


def new_document(title: str) -> FPDF:
    """An empty A4 document with the CJK font as `cjk` (and `cjk` bold when a bold face exists)."""
    path, index = font_file()
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_title(title)
    pdf.set_creator("Tongban Hub")
    pdf.add_font("cjk", fname=str(path), collection_font_number=index)
    for name, bold_index in BOLD_CANDIDATES:
        if Path(name).is_file() and not os.environ.get("HUB_PDF_FONT"):
            pdf.add_font("cjk", style="B", fname=name, collection_font_number=bold_index)
            break
    pdf.set_font("cjk", size=12)
    return pdf


def output(pdf: FPDF) -> bytes:
    return bytes(pdf.output())
