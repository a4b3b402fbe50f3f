"""The 委托书 (consent to be represented): the resident's and the agent's signatures, drawn on a
canvas (static/signature_pad.js sends each as a PNG data URL), checked here, and set into an A4
PDF (hub.pdf) the store keeps by its sha256. Everything drawn is plain text: a name the resident
typed is never read as markup."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from datetime import datetime

from hub import pdf as hubpdf
from hub.errors import FieldError, InvalidInput

PREFIX = "data:image/png;base64,"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 512 * 1024  # a signature drawn on a tablet is a few tens of kB
MAX_SIDE = 3000  # px
MIN_INK = 40  # drawn pixels: fewer is a tap, not a signature
MARGIN, PAGE_W = 20.0, 210.0


def signature(field: str, data_url: str | None) -> tuple[bytes | None, FieldError | None]:
    """The PNG of a signature field, or the error naming the field (empty, not a PNG, too big)."""
    if not data_url:
        return None, FieldError.of(field, "请签名", "a signature is required")
    if not data_url.startswith(PREFIX) or len(data_url) > MAX_PNG_BYTES * 4 // 3 + len(PREFIX) + 4:
        return None, FieldError.of(field, "签名应为不超过512KB的PNG图片", "a PNG data URL of at most 512 KB expected")
    try:
        png = base64.b64decode(data_url[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None, FieldError.of(field, "签名图片编码有误", "not valid base64")
    if not png.startswith(PNG_MAGIC):
        return None, FieldError.of(field, "签名应为PNG图片", "not a PNG image")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(png)) as img:
            if img.width > MAX_SIDE or img.height > MAX_SIDE:
                return None, FieldError.of(field, "签名图片过大", f"at most {MAX_SIDE} px a side")
            alpha = img.convert("RGBA").getchannel("A")
            ink = sum(alpha.histogram()[32:])  # pixels drawn (the pad's background is transparent)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None, FieldError.of(field, "签名图片无法读取", "the image cannot be read")
    if ink < MIN_INK:
        return None, FieldError.of(field, "签名为空，请在签名框内签名", "the signature is empty")
    return png, None


def check(resident_png: str | None, agent_png: str | None) -> tuple[bytes, bytes]:
    """Both signatures, or one InvalidInput naming each bad one."""
    resident, e1 = signature("resident_signature", resident_png)
    agent, e2 = signature("agent_signature", agent_png)
    errors = [e for e in (e1, e2) if e]
    if errors:
        raise InvalidInput(errors)
    assert resident is not None and agent is not None
    return resident, agent


@dataclass(frozen=True)
class Letter:
    """What the 委托书 says."""

    task_id: int
    resident_name: str
    resident_id: str
    agent_name: str
    agent_id: str
    item_title: str
    desk_name: str
    signed_at: datetime  # local time


def render(letter: Letter, resident_png: bytes, agent_png: bytes) -> bytes:
    """The 委托书 as an A4 PDF with both signatures."""
    day = f"{letter.signed_at.year}年{letter.signed_at.month}月{letter.signed_at.day}日"
    body = [
        f"委托人（申请人）：{letter.resident_name}    公民身份号码：{letter.resident_id}",
        f"受托人（代办员）：{letter.agent_name}    公民身份号码：{letter.agent_id}",
        f"委托事项：{letter.item_title}",
        f"受理窗口：{letter.desk_name}",
        "委托权限：代为填写申请表、提交和补充申请材料、领取受理回执及办理结果，委托人对受托人在上述权限内的行为负责。",
        "委托期限：自签署之日起至本代办任务办结或撤销之日止。",
        f"代办任务编号：{letter.task_id}    签署时间：{letter.signed_at:%Y-%m-%d %H:%M}",
    ]
    title = "授权委托书"
    everything = "\n".join([title, *body, "委托人签名：受托人签名：", day])
    pdf = hubpdf.new_document(title, text=everything, bold=False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, margin=MARGIN)
    pdf.add_page()
    width = PAGE_W - 2 * MARGIN
    pdf.set_font("cjk", "", 20)
    with hubpdf.heavy(pdf, 0.3):
        pdf.cell(width, 14, title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("cjk", "", 12)
    for line in body:
        pdf.multi_cell(width, 8, line, wrapmode="CHAR", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    pdf.ln(8)
    top = pdf.get_y()
    half = width / 2
    for i, (label, png) in enumerate((("委托人签名：", resident_png), ("受托人签名：", agent_png))):
        x = MARGIN + i * half
        pdf.set_xy(x, top)
        pdf.cell(half, 8, label)
        pdf.image(io.BytesIO(png), x=x, y=top + 10, w=half - 10, h=(half - 10) / 3, keep_aspect_ratio=True)
    pdf.set_xy(MARGIN, top + 10 + (half - 10) / 3 + 8)
    pdf.cell(width, 8, day, align="R")
    return hubpdf.output(pdf)
