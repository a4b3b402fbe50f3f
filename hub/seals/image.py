"""The seal as people know it (公章): a red ring, a five-pointed star in the middle, the holder's
name along the upper arc and the seal's type (业务专用章) below the star, on a transparent
background, drawn with Pillow and the CJK font hub.pdf uses. The text is drawn glyph by glyph as
plain text — a department's name can never become markup."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont

from hub.pdf import font_file

RED = (218, 30, 40, 255)
SIZE = 480  # pixels; the stamp is scaled into its box on the page


def _font(size: int) -> ImageFont.FreeTypeFont:
    path, index = font_file()
    return ImageFont.truetype(str(path), size, index=index)


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, outer: float) -> None:
    inner = outer * math.sin(math.radians(18)) / math.sin(math.radians(126))
    points = []
    for i in range(10):
        r = outer if i % 2 == 0 else inner
        a = math.radians(-90 + i * 36)
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    draw.polygon(points, fill=RED)


def draw_seal(holder: str, kind: str = "业务专用章", *, size: int = SIZE) -> bytes:
    """The seal image as PNG bytes (RGBA, transparent outside the ink)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    c = size / 2
    ring = size * 0.03
    draw.ellipse((ring, ring, size - ring, size - ring), outline=RED, width=int(ring * 1.4))
    _star(draw, c, c, size * 0.16)
    # the holder's name along the upper arc, from lower left over the top to lower right
    chars = list(holder.strip())[:24]
    font_size = int(size * (0.13 if len(chars) <= 10 else 0.1))
    font = _font(font_size)
    radius = c - ring * 2 - font_size * 0.62
    span = min(220.0, (28.0 if len(chars) <= 10 else 20.0) * max(len(chars) - 1, 1))
    for i, ch in enumerate(chars):
        angle = -90 - span / 2 + (span * i / (len(chars) - 1) if len(chars) > 1 else span / 2)
        glyph = Image.new("RGBA", (font_size * 2, font_size * 2), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((font_size, font_size), ch, font=font, fill=RED, anchor="mm")
        glyph = glyph.rotate(-(angle + 90), resample=Image.Resampling.BICUBIC)
        x = c + radius * math.cos(math.radians(angle)) - font_size
        y = c + radius * math.sin(math.radians(angle)) - font_size
        img.alpha_composite(glyph, (int(x), int(y)))
    if kind.strip():
        small = _font(int(size * 0.075))
        draw.text((c, c + size * 0.27), kind.strip()[:12], font=small, fill=RED, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def check_image(data: bytes, name: str) -> None:
    """An imported seal image must be a PNG Pillow reads; `name` is the file, for the message."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise ValueError(f"{name}: the seal image must be a PNG (got {im.format})")
            im.verify()
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{name}: not a readable PNG image ({e})") from None
