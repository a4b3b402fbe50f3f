"""PDF pages the hub draws itself (notices, licences, seal images): A4, with a CJK font embedded
(subset) so every reader shows the same characters. fpdf2 draws; the text it is given is always
plain text (never markup), so nothing a resident or a department typed can change the layout.

The font is the first of `HUB_PDF_FONT` (a .ttf/.otf/.ttc file) or the Noto CJK fonts Debian's
fonts-noto-cjk installs; `hub doctor` and `hub catalog check` name the problem when none is found.

Speed: fpdf2 parses the whole font for every document (Noto Sans CJK SC has 65,535 glyphs: about
0.35 s for each face, parsing and then subsetting). So the Simplified Chinese face is cut once to
what notices use — ASCII, Latin-1, general and CJK punctuation, full-width forms and the 6,763
characters of GB 2312 — and kept in a cache folder (`HUB_FONT_CACHE`, else
`$XDG_CACHE_HOME/tongban-hub/fonts`); a document then costs a tenth. A document whose text holds
a character outside that set (a rare character in a name, 生僻字) also gets the full face as a
fallback, so nothing is ever drawn as a blank box: pass the text as `text=` to `new_document`."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fpdf2 takes 0.15 s to import: only processes that draw a page pay it
    from fpdf import FPDF

log = logging.getLogger(__name__)

# (file, index in a collection): Noto Sans CJK's collections hold JP, KR, SC, TC, HK in this order
CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
BOLD_CANDIDATES: tuple[tuple[str, int], ...] = (("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),)
CACHE_ENV = "HUB_FONT_CACHE"
_CUT_VERSION = "1"  # change when the repertoire below changes: the cached files' names change
_lock = threading.Lock()


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


def _gb2312(code: int) -> bool:
    try:
        chr(code).encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


@cache
def repertoire() -> frozenset[int]:
    """The characters the cut font holds."""
    ranges = [range(0x20, 0x7F), range(0xA0, 0x100), range(0x2000, 0x2070), range(0x3000, 0x3040)]
    ranges.append(range(0xFF00, 0xFFF0))
    chars = {c for r in ranges for c in r}
    chars |= {c for c in range(0x100, 0x10000) if _gb2312(c)}
    return frozenset(chars)


def cache_dir() -> Path:
    if configured := os.environ.get(CACHE_ENV):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tongban-hub" / "fonts"


def cut_font(path: Path, index: int) -> Path:
    """The cached cut of face `index` of `path` (made on first use: a few seconds)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{index}|{stat.st_size}|{stat.st_mtime_ns}|{_CUT_VERSION}".encode())
    target = cache_dir() / f"{path.stem}-{index}-{key.hexdigest()[:16]}.otf"
    if target.is_file():
        return target
    with _lock:
        if target.is_file():
            return target
        from fontTools import subset, ttLib

        log.info("cutting %s (face %d) for PDF documents into %s", path, index, target)
        font = ttLib.TTFont(str(path), fontNumber=index, lazy=True)
        options = subset.Options()
        options.layout_features = []  # no shaping in notices: horizontal CJK and Latin text
        options.notdef_outline = True
        options.name_IDs = ["*"]
        options.hinting = False
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(repertoire()))
        subsetter.subset(font)
        target.parent.mkdir(parents=True, exist_ok=True)
        # whole file aside, then renamed: another process never reads half a font
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".cut-")
        os.close(fd)
        try:
            font.save(tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target


def covered(text: str) -> bool:
    """Whether the cut font draws every character of `text`."""
    chars = repertoire()
    return all(ord(c) in chars or c in "\n\r\t" for c in text)


def new_document(title: str, *, text: str | None = None, bold: bool = True) -> FPDF:
    """An empty A4 document with the CJK font as `cjk` (and `cjk` bold when a bold face exists
    and `bold`: a second face costs a second subset in every file — `heavy()` draws without).
    `text`: everything the document will say, when known — a character the cut font lacks adds
    the full face as a fallback. Without it the full face is used (always right, ten times slower)."""
    path, index = font_file()
    configured = bool(os.environ.get("HUB_PDF_FONT"))
    fast = not configured and text is not None
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_title(title)
    pdf.set_creator("Tongban Hub")
    pdf.add_font("cjk", fname=str(cut_font(path, index) if fast else path), collection_font_number=0 if fast else index)
    for name, bold_index in BOLD_CANDIDATES if bold else ():
        if Path(name).is_file() and not configured:
            if fast:
                pdf.add_font("cjk", style="B", fname=str(cut_font(Path(name), bold_index)))
            else:
                pdf.add_font("cjk", style="B", fname=name, collection_font_number=bold_index)
            break
    if fast and not covered(text or "") and path.suffix.lower() in (".ttc", ".otc", ".ttf", ".otf"):
        pdf.add_font("cjkfull", fname=str(path), collection_font_number=index)
        pdf.set_fallback_fonts(["cjkfull"])
    for font in pdf.fonts.values():
        # the subset written into the file keeps the face's bounding box: recomputing it runs
        # every glyph's outline program (a third of a document's time) for a box no reader needs
        # tighter (the PDF's FontBBox is taken from the face when it is added)
        ttfont = getattr(font, "ttfont", None)
        if ttfont is not None:
            ttfont.recalcBBoxes = False
    pdf.set_font("cjk", size=12)
    return pdf


@contextmanager
def heavy(pdf: FPDF, width: float = 0.25) -> Iterator[None]:
    """Text drawn filled and stroked: a heading's weight without a bold face in the file."""
    from fpdf.enums import TextMode

    pdf.set_line_width(width)
    with pdf.local_context(text_mode=TextMode.FILL_STROKE):
        yield


def output(pdf: FPDF) -> bytes:
    return bytes(pdf.output())
