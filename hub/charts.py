"""Server-side SVG charts with no dependency: horizontal bars, one per label, the value printed
beside each. The output is standalone XML (its own namespace), so it can be inlined in a page
or served as image/svg+xml; every text is escaped. A <title> and role="img" give screen
readers the chart's name, and each bar carries its own <title> (shown on hover too)."""

from __future__ import annotations

import hashlib
import math
from html import escape

FONT = 13  # px
PAD = 8
GAP = 6  # between bars
TITLE_HEIGHT = 28
BAR_COLOUR = "#2f6fb3"
TRACK_COLOUR = "#e8eef5"


def _text_width(text: str) -> float:
    """Rough rendered width: CJK and full-width characters are about one em, others about half."""
    return sum(FONT if ord(ch) > 0x2E7F else FONT * 0.6 for ch in text)


def _number(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{text}{unit}"


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def bar_chart(
    labels: list[str],
    values: list[float | None],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    bar_height: int = 22,
    max_value: float | None = None,
    texts: list[str] | None = None,
) -> str:
    """Horizontal bars scaled to the largest value (or `max_value`). A None value (no figure,
    e.g. a rate over nothing) draws no bar and prints "—". `texts` overrides the printed values."""
    if len(labels) != len(values) or (texts is not None and len(texts) != len(values)):
        raise ValueError("labels, values (and texts) must have the same length")
    clean = [_clean(v) for v in values]
    printed = texts or ["—" if v is None else _number(v, unit) for v in clean]
    top = max_value if max_value is not None else max((v for v in clean if v is not None), default=0.0)
    top = top if top and top > 0 else 1.0  # all zero: empty tracks rather than a division by zero
    label_w = min(max((_text_width(s) for s in labels), default=0.0) + PAD, width * 0.4)
    value_w = max((_text_width(s) for s in printed), default=0.0) + PAD
    track_x = PAD + label_w
    track_w = max(width - track_x - value_w - PAD, 10.0)
    rows = max(len(labels), 1)
    height = TITLE_HEIGHT + rows * (bar_height + GAP) + PAD
    # an id of its own, so several charts inlined in one page do not share one
    ident = "chart-" + hashlib.sha1("\0".join([title, *labels]).encode()).hexdigest()[:10]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}" '
        f'font-family="sans-serif" font-size="{FONT}">',
        f'<title id="{ident}">{escape(title)}</title>',
        f'<text x="{PAD}" y="{TITLE_HEIGHT - 10}" font-weight="bold">{escape(title)}</text>',
    ]
    if not labels:
        parts.append(f'<text x="{PAD}" y="{TITLE_HEIGHT + bar_height - 6}" fill="#666">暂无数据 (no data)</text>')
    for i, (label, value, shown) in enumerate(zip(labels, clean, printed, strict=True)):
        y = TITLE_HEIGHT + i * (bar_height + GAP)
        mid = y + bar_height / 2 + FONT * 0.35  # baseline that centres the text on the bar
        bar_w = 0.0 if value is None else max(min(value / top, 1.0), 0.0) * track_w
        parts += [
            "<g>",
            f"<title>{escape(label)}: {escape(shown)}</title>",
            f'<text x="{track_x - PAD:.1f}" y="{mid:.1f}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{track_x:.1f}" y="{y}" width="{track_w:.1f}" height="{bar_height}" fill="{TRACK_COLOUR}"/>',
            f'<rect x="{track_x:.1f}" y="{y}" width="{bar_w:.1f}" height="{bar_height}" fill="{BAR_COLOUR}"/>',
            f'<text x="{track_x + track_w + PAD / 2:.1f}" y="{mid:.1f}">{escape(shown)}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def rate_bars(labels: list[str], rates: list[float | None], *, title: str, **kw) -> str:
    """Rates (0..1, as the dashboard gives them) as percentages on a fixed 0–100 % scale, so
    two charts of rates compare by eye."""
    percents = [None if r is None else r * 100 for r in rates]
    texts = ["—" if p is None else f"{p:.1f}%" for p in percents]
    return bar_chart(labels, percents, title=title, unit="%", max_value=100.0, texts=texts, **kw)
