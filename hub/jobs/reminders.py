"""`reminders()`: the bookings of the next working day each get their reminder, recorded exactly
once (the unique booking of `queue_reminders`, with `sent_at`). No SMS gateway is wired in: the
reminder is recorded with channel "record" and shown to the resident (their bookings) and the desk;
a gateway would send `text` to `phone` here, before the row is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.appointments.common import groups_of
from hub.context import Hub
from hub.storage.tables import QueueBooking, QueueReminder, QueueSlot, naive_utc


def next_workday(hub: Hub, day: date) -> date:
    d = day + timedelta(days=1)
    while not hub.calendar.is_workday(d):
        d += timedelta(days=1)
    return d


def reminder_text(hub: Hub, b: QueueBooking, slot: QueueSlot) -> str:
    desk = hub.catalog.desks.get(b.desk_code)
    group = groups_of(hub).get(b.group_code)
    return (
        f"【{hub.settings.county.name}政务服务】您已预约{b.day.month}月{b.day.day}日 {slot.starts}-{slot.ends} "
        f"在{desk.name if desk else b.desk_code}办理{group.name if group else ''}事项，预约码 {b.code}。"
        "请携带身份证件按时到达，到窗口取号签到。"
    )


@dataclass
class RemindersSummary:
    day: date
    made: int

    def line(self) -> str:
        return f"reminders: {self.made} booking(s) of {self.day.isoformat()} reminded (recorded, no SMS gateway)"


def reminders(hub: Hub) -> RemindersSummary:
    """Reminders recorded now for the next working day's bookings (0 made when every one already
    has its reminder). Safe to run again, and twice at once: the unique booking keeps one row."""
    day = next_workday(hub, hub.today())
    q = (
        select(QueueBooking, QueueSlot)
        .join(QueueSlot, QueueSlot.id == QueueBooking.slot_id)
        .outerjoin(QueueReminder, QueueReminder.booking_id == QueueBooking.id)
        .where(QueueBooking.day == day, QueueBooking.state == "booked", QueueReminder.id.is_(None))
    )
    made = 0
    now = naive_utc(hub.now())
    with hub.sessions() as session:
        due = [(b.id, b.phone, reminder_text(hub, b, s)) for b, s in session.execute(q)]
    for booking_id, phone, text in due:  # one row per transaction: a concurrent run's rows don't undo ours
        try:
            with hub.transaction() as session:
                session.add(QueueReminder(booking_id=booking_id, phone=phone, text=text, channel="record", sent_at=now))
            made += 1
        except IntegrityError:
            continue  # another run recorded it first
    return RemindersSummary(day, made)
