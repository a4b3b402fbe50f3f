"""Time limits (限时办结): due dates in working days from acceptance, the clock stopped while the
applicant supplements (补正), and the yellow/red cards of electronic supervision (红黄牌)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from hub.lifecycle import CLOCKED
from hub.storage.tables import Application
from hub.workdays import OutOfCalendar, WorkCalendar


class Signal(StrEnum):
    green = "green"
    yellow = "yellow"  # few working days remain
    red = "red"  # overdue
    paused = "paused"  # clock stopped (补正)


def recompute_due(app: Application, calendar: WorkCalendar) -> None:
    """Each part still open is due `promised_days + paused_workdays` working days after
    acceptance; a decided part keeps the date it was decided against. The application is due
    when its last part is."""
    if app.accepted_on is None:
        return
    provisional = app.due_provisional
    for part in app.parts:
        if part.due_date is not None and part.state in ("approved", "denied", "withdrawn"):
            continue
        try:
            part.due_date, prov = calendar.add_workdays(app.accepted_on, part.promised_days + app.paused_workdays)
        except OutOfCalendar as exc:  # named as the API and the CLI know it; the transaction rolls back
            raise exc.renamed("due_date") from None
        provisional = provisional or prov
    app.due_date = max(p.due_date for p in app.parts if p.due_date)
    app.due_provisional = provisional


def stop_clock(app: Application, today: date) -> None:
    if app.accepted_on is not None and app.paused_since is None:
        app.paused_since = today


def restart_clock(app: Application, today: date, calendar: WorkCalendar) -> int:
    """Resume after 补正; returns the working days the clock stood still ((stop, resume])."""
    if app.paused_since is None:
        return 0
    stood = calendar.workdays_between(app.paused_since, today)
    app.paused_workdays += max(stood, 0)
    app.paused_since = None
    recompute_due(app, calendar)
    return stood


def remaining_workdays(due: date, today: date, calendar: WorkCalendar) -> int:
    """Working days left until `due` (0 on the due date, negative when overdue)."""
    return calendar.workdays_between(today, due) if today <= due else -max(calendar.workdays_between(due, today), 1)


def signal(app: Application, today: date, calendar: WorkCalendar, yellow_days: int) -> Signal | None:
    """None while no clock runs (not yet accepted, or already decided/closed).

    Red once overdue (also while paused: an overdue application stays red). Paused while 补正
    stops the clock. Yellow when `yellow_days` or fewer working days remain — but only for
    applications promised in more than `yellow_days`: an instant item would otherwise be yellow
    from the moment it is accepted."""
    if app.accepted_on is None or app.due_date is None or app.state not in CLOCKED:
        return None
    last_counted = app.paused_since or today
    if last_counted > app.due_date:
        return Signal.red
    if app.paused_since is not None:
        return Signal.paused
    promised = max(p.promised_days for p in app.parts) + app.paused_workdays
    if promised > yellow_days and remaining_workdays(app.due_date, today, calendar) <= yellow_days:
        return Signal.yellow
    return Signal.green
