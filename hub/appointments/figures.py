"""The queue's figures for the supervisors' dashboard: waiting time (ticket → call) and service
time (call → finish) per desk and per item group, and per item for tickets that became an
application; average and 90th percentile in minutes, and the no-show count."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from hub.appointments.common import groups_of
from hub.context import Hub
from hub.storage.tables import Application, QueueTicket


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    tickets: int
    served: int
    no_shows: int
    wait_avg: float | None
    wait_p90: float | None
    service_avg: float | None
    service_p90: float | None


@dataclass
class QueueFigures:
    start: date
    end: date
    by_desk: list[Row] = field(default_factory=list)
    by_group: list[Row] = field(default_factory=list)
    by_item: list[Row] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.by_desk


def p90(values: list[float]) -> float | None:
    """The nearest-rank 90th percentile (the value 90% of the cases do not exceed)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def _avg(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


class _Acc:
    def __init__(self) -> None:
        self.tickets = self.served = self.no_shows = 0
        self.waits: list[float] = []
        self.services: list[float] = []

    def row(self, key: str, label: str) -> Row:
        w, s = p90(self.waits), p90(self.services)
        return Row(
            key,
            label,
            self.tickets,
            self.served,
            self.no_shows,
            _avg(self.waits),
            round(w, 1) if w is not None else None,
            _avg(self.services),
            round(s, 1) if s is not None else None,
        )


def queue_figures(hub: Hub, start: date, end: date, *, desk: str | None = None) -> QueueFigures:
    """Tickets of the days start..end (inclusive); `desk` narrows to one desk."""
    q = (
        select(
            QueueTicket.desk_code,
            QueueTicket.group_code,
            QueueTicket.state,
            QueueTicket.created_at,
            QueueTicket.called_at,
            QueueTicket.started_at,
            QueueTicket.finished_at,
            Application.subject_code,
        )
        .outerjoin(Application, Application.id == QueueTicket.application_id)
        .where(QueueTicket.day >= start, QueueTicket.day <= end)
    )
    if desk:
        q = q.where(QueueTicket.desk_code == desk)
    accs: dict[str, dict[str, _Acc]] = {
        "desk": defaultdict(_Acc),
        "group": defaultdict(_Acc),
        "item": defaultdict(_Acc),
    }
    with hub.sessions() as session:
        rows = session.execute(q).all()
    for r in rows:
        keys = [("desk", r.desk_code), ("group", r.group_code)] + ([("item", r.subject_code)] if r.subject_code else [])
        for kind, key in keys:
            acc = accs[kind][key]
            acc.tickets += 1
            if r.called_at is not None:
                acc.waits.append((r.called_at - r.created_at).total_seconds() / 60)
            if r.state == "no_show":
                acc.no_shows += 1
            if r.state == "done" and r.finished_at is not None and r.called_at is not None:
                acc.served += 1
                acc.services.append((r.finished_at - r.called_at).total_seconds() / 60)
    groups = groups_of(hub)
    out = QueueFigures(start, end)
    out.by_desk = [
        a.row(k, hub.catalog.desks[k].name if k in hub.catalog.desks else k) for k, a in sorted(accs["desk"].items())
    ]
    out.by_group = [a.row(k, g.name if (g := groups.get(k)) else k) for k, a in sorted(accs["group"].items())]
    out.by_item = [a.row(k, s.title if (s := hub.catalog.subject(k)) else k) for k, a in sorted(accs["item"].items())]
    return out
