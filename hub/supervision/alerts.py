"""What supervisors chase, application by application: red and yellow cards, overdue 容缺
commitments, provisional due dates — for `hub apps warnings`, the deadlines job and the dashboard.

Only applications that can carry an alert are read, in pages of ascending id: a card needs a
clock that runs (CLOCKED) and a due date before the (yellow_days + 1)-th working day from today
(or a clock stopped after the due date); a commitment needs an open deficiency past its date; a
provisional date needs an open application marked provisional. Each family is found by its own
index (migration 0009), so the work and the memory follow the number of alerts, not the number
of applications in the hub (docs/scaling.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import ColumnElement, Select, bindparam, or_, select
from sqlalchemy.orm import Session, load_only, selectinload

from hub import lifecycle
from hub.applications import Actor, scoped
from hub.context import Hub
from hub.storage.tables import Application, Deficiency, Part
from hub.timelimits import Signal, signal

PAGE = 500

CLOCKED_STATES = sorted(s.value for s in lifecycle.CLOCKED)


def is_clocked() -> ColumnElement[bool]:
    """`state IN ('accepted', 'in_review', 'supplement_requested')` written into the SQL as the
    partial index ix_applications_clocked states it (tables.CLOCKED_SQL): SQLite uses a partial
    index only for a query term that matches its predicate, and a bound parameter does not."""
    return Application.state.in_(bindparam("clocked_states", CLOCKED_STATES, expanding=True, literal_execute=True))


ALERT_COLUMNS = (
    Application.id,
    Application.number,
    Application.state,
    Application.accepted_on,
    Application.due_date,
    Application.due_provisional,
    Application.paused_since,
    Application.paused_workdays,
)

OPEN_STATES = sorted(s.value for s in lifecycle.OPEN)
WATCHED_STATES = sorted({*OPEN_STATES, "decided", "issued"})  # where a commitment can still be owed


@dataclass(frozen=True)
class Alert:
    number: str
    kind: Literal["red", "yellow", "commitment_overdue", "provisional_due_date"]
    message: str
    due_date: date | None


def card_horizon(hub: Hub, today: date) -> date:
    """A running clock can only be yellow or red when its due date is before this day: the
    (yellow_days + 1)-th working day from today (the same bound /metrics counts with)."""
    return hub.calendar.add_workdays(today, hub.settings.yellow_days + 1)[0]


def _candidate_streams(today: date, horizon: date) -> list[tuple[Select, ColumnElement[int]]]:
    """One select of application ids per alert family (with its id column), each served by its
    own index."""
    return [
        (
            select(Application.id).where(
                is_clocked(),
                or_(Application.due_date < horizon, Application.paused_since > Application.due_date),
            ),
            Application.id,
        ),
        (
            select(Application.id).where(Application.due_provisional, Application.state.in_(OPEN_STATES)),
            Application.id,
        ),
        (
            select(Deficiency.application_id)
            .where(Deficiency.closed_at.is_(None), Deficiency.due_date < today)
            .distinct(),
            Deficiency.application_id,
        ),
    ]


def candidate_ids(session: Session, today: date, horizon: date, *, page: int = PAGE) -> Iterator[list[int]]:
    """Ids of applications that may carry an alert, ascending, a page at a time. Each family is
    read up to `page` ids past the last one; a page ends where the first full family's read ends,
    so no id below it is missed."""
    last = 0
    streams = _candidate_streams(today, horizon)
    while True:
        reads: list[list[int]] = []
        for stmt, col in streams:
            reads.append(list(session.scalars(stmt.where(col > last).order_by(col).limit(page))))
        full_ends = [r[-1] for r in reads if len(r) == page]
        cutoff = min(full_ends) if full_ends else None
        ids = sorted({i for r in reads for i in r if cutoff is None or i <= cutoff})
        if ids:
            yield ids
        if cutoff is None:
            return
        last = cutoff


def iter_warnings(hub: Hub, actor: Actor, *, page: int = PAGE) -> Iterator[Alert]:
    """The alerts, application by application in id order, read a page at a time."""
    today = hub.today()
    horizon = card_horizon(hub, today)
    with hub.sessions() as session:
        for ids in candidate_ids(session, today, horizon, page=page):
            stmt = (
                scoped(select(Application), actor)
                .where(Application.id.in_(ids), Application.state.in_(WATCHED_STATES))
                .order_by(Application.id)
                # only what the cards and messages read: not the form, names or chain
                .options(
                    load_only(*ALERT_COLUMNS, raiseload=True),  # reading another column is a bug
                    selectinload(Application.deficiencies),
                    selectinload(Application.parts).load_only(Part.promised_days),
                )
            )
            for app in session.scalars(stmt):
                yield from _alerts_of(app, today, hub)
            session.expunge_all()  # nothing kept from one page to the next


def _alerts_of(app: Application, today: date, hub: Hub) -> Iterator[Alert]:
    sig = signal(app, today, hub.calendar, hub.settings.yellow_days)
    if sig is Signal.red:
        yield Alert(app.number, "red", f"已超期 (overdue since {app.due_date})", app.due_date)
    elif sig is Signal.yellow:
        yield Alert(app.number, "yellow", f"即将到期 (due {app.due_date})", app.due_date)
    for d in app.deficiencies:
        if d.closed_at is None and d.due_date < today:
            yield Alert(
                app.number,
                "commitment_overdue",
                f"容缺材料“{d.material}”承诺 {d.due_date} 补交，已逾期 (commitment overdue)",
                d.due_date,
            )
    if app.due_provisional and app.state in lifecycle.OPEN:
        yield Alert(
            app.number,
            "provisional_due_date",
            "办结期限按法定节假日推算，待官方放假安排确认 (due date provisional)",
            app.due_date,
        )


def warnings(hub: Hub, actor: Actor) -> list[Alert]:
    """What supervisors chase: red and yellow cards, overdue 容缺 commitments, provisional dates."""
    return list(iter_warnings(hub, actor))


__all__ = ["Alert", "card_horizon", "iter_warnings", "warnings"]
