"""The daily report's figures (日报): one day's service figures in total and per channel, desk and
department — the dashboard's query (`hub.supervision.figures`) for a period of one day, so the
two can never disagree. `hub.jobs.report` writes them to files."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date

from hub.context import Hub
from hub.supervision.figures import TOTAL_KEY, Figures, Row, figures

DIMENSIONS = ("channel", "desk", "department")


@dataclass
class DayFigures:
    day: date
    total: Figures
    by: dict[str, dict[str, Figures]]  # dimension -> key -> figures: only keys with something that day


def day_figures(hub: Hub, day: date) -> DayFigures:
    """The day's figures. A key is listed when the day holds a receipt, acceptance or decision
    for it, or open work overdue by that day (the dashboard lists every configured key, zeros too): the report names what happened."""
    total = Figures()
    by: dict[str, dict[str, Figures]] = {}
    for dimension in DIMENSIONS:
        rows = figures(hub, day, day, dimension, ratings=False)
        by[dimension] = defaultdict(Figures)  # a key absent that day reads as zeros
        for row in rows:
            if row.key == TOTAL_KEY:
                if dimension == "channel":  # every application has one channel: its rows add up to it
                    total = _plain(row)
            elif row.received or row.accepted or row.completed or row.overdue_open:
                by[dimension][row.key] = _plain(row)
    return DayFigures(day, total, by)


def _plain(row: Row) -> Figures:
    """A dashboard row as the report's figures, without the dashboard's extra columns."""
    return Figures(**{f.name: getattr(row, f.name) for f in fields(Figures)})
