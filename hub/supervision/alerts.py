"""What supervisors chase, application by application: red and yellow cards, overdue 容缺
commitments, provisional due dates — for `hub apps warnings`, the deadlines job and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hub import lifecycle
from hub.applications import Actor, scoped
from hub.context import Hub
from hub.storage.tables import Application
from hub.timelimits import Signal, signal


@dataclass(frozen=True)
class Alert:
    number: str
    kind: Literal["red", "yellow", "commitment_overdue", "provisional_due_date"]
    message: str
    due_date: date | None


def warnings(hub: Hub, actor: Actor) -> list[Alert]:
    """What supervisors chase: red and yellow cards, overdue 容缺 commitments, provisional dates."""
    today = hub.today()
    out: list[Alert] = []
    with hub.sessions() as session:
        stmt = scoped(select(Application), actor).where(
            Application.state.in_([s.value for s in lifecycle.OPEN] + ["decided", "issued"])
        )
        for app in session.scalars(
            stmt.options(selectinload(Application.deficiencies), selectinload(Application.parts))
        ):
            sig = signal(app, today, hub.calendar, hub.settings.yellow_days)
            if sig is Signal.red:
                out.append(Alert(app.number, "red", f"已超期 (overdue since {app.due_date})", app.due_date))
            elif sig is Signal.yellow:
                out.append(Alert(app.number, "yellow", f"即将到期 (due {app.due_date})", app.due_date))
            for d in app.deficiencies:
                if d.closed_at is None and d.due_date < today:
                    out.append(
                        Alert(
                            app.number,
                            "commitment_overdue",
                            f"容缺材料“{d.material}”承诺 {d.due_date} 补交，已逾期 (commitment overdue)",
                            d.due_date,
                        )
                    )
            if app.due_provisional and app.state in lifecycle.OPEN:
                out.append(
                    Alert(
                        app.number,
                        "provisional_due_date",
                        "办结期限按法定节假日推算，待官方放假安排确认 (due date provisional)",
                        app.due_date,
                    )
                )
    return out
