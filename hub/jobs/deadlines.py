"""`sweep_deadlines()`: the hourly look at the clocked applications (electronic supervision,
红黄牌). When an application's card changes to yellow (few working days left) or red (overdue),
the change is recorded as a `warning` event on its chain — once per change, however often the
sweep runs — and the current card is kept on the application for lists and sorting. The
supervisors' list is `warnings()` (every open red and yellow card, overdue 容缺 commitments).

The sweep reads only applications whose card can change (`may_change`), in keyset pages of
ascending id, each page its own transaction: its memory is one page, whatever the size of the
hub. A green card with its due date beyond the yellow horizon, a red card already overdue and a
paused card are not loaded: the hourly run reads the cases about to turn, not every open one."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import selectinload

from hub.applications import Actor
from hub.applications.events import append_event
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import Application
from hub.supervision import Alert, warnings
from hub.supervision.alerts import card_horizon, is_clocked
from hub.timelimits import Signal, signal

SWEEPER = Actor(name="deadline-sweep", role=Role.system)
SUPERVISOR = Actor(name="deadline-sweep", role=Role.supervisor)
ESCALATIONS = (Signal.yellow, Signal.red)


@dataclass
class SweepSummary:
    checked: int = 0  # read because their card could change (`may_change`); the others hold theirs
    yellow: int = 0  # turned yellow in this sweep
    red: int = 0  # turned red in this sweep
    alerts: list[Alert] = field(default_factory=list)  # everything open, for supervisors
    alerts_csv: Path | None = None

    def line(self) -> str:
        open_red = sum(a.kind == "red" for a in self.alerts)
        open_yellow = sum(a.kind == "yellow" for a in self.alerts)
        return (
            f"deadlines: {self.checked} checked, {self.yellow} turned yellow, {self.red} turned red; "
            f"open: {open_red} red, {open_yellow} yellow, {len(self.alerts)} alerts in all"
        )


def may_change(today: date, horizon: date) -> ColumnElement[bool]:
    """Clocked applications whose card the sweep could change. `signal()` would give the others
    the card they hold, so they are not read:

    - green, the clock running, due on or after `horizon` (the (yellow_days + 1)-th working day
      from today): more than yellow_days working days remain;
    - red, due before today, the clock running or stopped after the due date: stays red;
    - paused, the clock stopped on or before the due date: a stopped clock does not move.

    Everything else is read: no card yet, yellow, a green card near its date or whose clock has
    just stopped, a red or paused card whose dates moved (补正 resumed)."""
    green, red, paused = Signal.green.value, Signal.red.value, Signal.paused.value
    return or_(
        Application.signal.is_(None),
        Application.signal.not_in([green, red, paused]),
        and_(Application.signal == green, or_(Application.paused_since.is_not(None), Application.due_date < horizon)),
        and_(
            Application.signal == red,
            or_(Application.due_date >= today, Application.paused_since <= Application.due_date),
        ),
        and_(
            Application.signal == paused,
            or_(Application.paused_since.is_(None), Application.paused_since > Application.due_date),
        ),
        Application.accepted_on.is_(None),
        Application.due_date.is_(None),
    )


def sweep_deadlines(hub: Hub, *, batch: int = 500) -> SweepSummary:
    summary = SweepSummary()
    today, now = hub.today(), hub.now()
    horizon = card_horizon(hub, today)
    last_id = 0
    while True:
        with hub.transaction() as session:
            apps = list(
                session.scalars(
                    select(Application)
                    .where(
                        is_clocked(),
                        may_change(today, horizon),
                        Application.id > last_id,
                    )
                    .order_by(Application.id)
                    .limit(batch)
                    .options(selectinload(Application.parts))
                    .with_for_update()
                )
            )
            if not apps:
                break
            last_id = apps[-1].id
            for app in apps:
                summary.checked += 1
                card = signal(app, today, hub.calendar, hub.settings.yellow_days)
                value = card.value if card else None
                if value == app.signal:
                    continue
                if card in ESCALATIONS:
                    # the row is held (FOR UPDATE) and its parts loaded: chain onto chain_head
                    # without reloading the whole history (record_event reads every event)
                    append_event(
                        session,
                        app,
                        "warning",
                        SWEEPER,
                        now,
                        reason="已超期 (overdue)" if card is Signal.red else "即将到期 (due soon)",
                        data={"level": value, "due_date": app.due_date.isoformat() if app.due_date else None},
                    )
                    setattr(summary, value, getattr(summary, value) + 1)
                app.signal = value
    summary.alerts = warnings(hub, SUPERVISOR)
    summary.alerts_csv = write_alerts(hub, summary.alerts)
    return summary


def write_alerts(hub: Hub, alerts: list[Alert]) -> Path:
    """The supervisors' list as `reports/alerts.csv` (UTF-8 with BOM, so Excel reads the Chinese),
    replaced whole: a reader never sees half a list."""
    folder = hub.settings.path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    target, tmp = folder / "alerts.csv", folder / "alerts.csv.tmp"
    with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(["办件号 application", "提醒 alert", "期限 due_date", "说明 message"])
        for a in alerts:
            out.writerow([a.number, a.kind, a.due_date or "", a.message])
    tmp.replace(target)
    return target
