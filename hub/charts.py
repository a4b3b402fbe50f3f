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
    empty: str = "暂无数据",
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
        parts.append(f'<text x="{PAD}" y="{TITLE_HEIGHT + bar_height - 6}" fill="#666">{escape(empty)}</text>')
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


SERIES_COLOURS = ("#2f6fb3", "#e08a1e", "#3a9a5b", "#b33a3a")
AXIS_COLOUR = "#888"


def column_chart(
    labels: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    height: int = 240,
    max_value: float | None = None,
    empty: str = "暂无数据",
) -> str:
    """Vertical columns over time (one group per label, one column per series, a legend when
    there are several): the dashboard's trends by week and by month. Each column carries its own
    <title> ("label · series: value"), the chart a <title> and role="img"; the page gives the
    figures as a table too."""
    if any(len(values) != len(labels) for _, values in series):
        raise ValueError("every series needs one value per label")
    clean = [[_clean(v) for v in values] for _, values in series]
    top = max_value if max_value is not None else max((v for vs in clean for v in vs if v is not None), default=0.0)
    top = top if top and top > 0 else 1.0
    legend_h = FONT + PAD if len(series) > 1 else 0
    plot_top = TITLE_HEIGHT + legend_h + FONT  # room for the value printed above the tallest column
    axis_y = height - FONT - PAD * 2  # labels under the axis
    plot_h = max(axis_y - plot_top, 10)
    left, right = PAD * 2, width - PAD
    slot = (right - left) / max(len(labels), 1)
    col_w = max(min((slot - GAP) / max(len(series), 1), 28.0), 2.0)
    ident = "chart-" + hashlib.sha1("\0".join([title, *labels]).encode()).hexdigest()[:10]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}" '
        f'font-family="sans-serif" font-size="{FONT}">',
        f'<title id="{ident}">{escape(title)}</title>',
        f'<text x="{PAD}" y="{TITLE_HEIGHT - 10}" font-weight="bold">{escape(title)}</text>',
    ]
    if len(series) > 1:
        x = float(PAD)
        for i, (name, _) in enumerate(series):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            parts.append(f'<rect x="{x:.1f}" y="{TITLE_HEIGHT}" width="{FONT}" height="{FONT}" fill="{colour}"/>')
            parts.append(f'<text x="{x + FONT + 4:.1f}" y="{TITLE_HEIGHT + FONT - 2}">{escape(name)}</text>')
            x += FONT + 4 + _text_width(name) + PAD * 2
    if not labels:
        parts.append(f'<text x="{PAD}" y="{plot_top + FONT}" fill="#666">{escape(empty)}</text>')
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="{AXIS_COLOUR}"/>')
    for j, label in enumerate(labels):
        x0 = left + j * slot + (slot - col_w * len(series)) / 2
        parts.append("<g>")
        for i, (name, _) in enumerate(series):
            value = clean[i][j]
            h = 0.0 if value is None else max(min(value / top, 1.0), 0.0) * plot_h
            shown = "—" if value is None else _number(value, unit)
            x = x0 + i * col_w
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{axis_y - h:.1f}" width="{col_w - 1:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)} · {escape(name)}: {escape(shown)}</title></rect>"
            )
        parts.append(
            f'<text x="{left + j * slot + slot / 2:.1f}" y="{axis_y + FONT + 2}" text-anchor="middle" '
            f'font-size="{FONT - 2}">{escape(label)}</text>'
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)
