"""`reminders()`: the bookings of the next working day each get their reminder, exactly once.

Without a gateway (settings.queue.sms_url unset) the reminder is recorded (channel "record") and
shown to the resident (their bookings) and the desk. With one, it is sent first — POST JSON
{ref, phone, text}, `ref` = "booking-ID-SLOT" the gateway's idempotency key — and recorded (channel
"sms") only once the gateway took it (2xx): a gateway that fails leaves no row, and the next run
sends again; a run that dies between the send and the row sends again under the same `ref`, which
the gateway answers without a second message. The unique booking of `queue_reminders` keeps one
row per booking, even for two runs at once. A booking without a phone is recorded, not sent."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.appointments.common import groups_of
from hub.context import Hub
from hub.storage.tables import QueueBooking, QueueReminder, QueueSlot, naive_utc

log = logging.getLogger(__name__)


@dataclass
class RemindersSummary:
    day: date
    made: int
    sent: int = 0
    failed: int = 0

    @property
    def errors(self) -> int:  # run_job marks the run failed when the gateway refused some
        return self.failed

    def line(self) -> str:
        how = f"{self.sent} sent by SMS, {self.made - self.sent} recorded" if self.sent else "recorded, no SMS gateway"
        failed = f"; {self.failed} not taken by the gateway (next run retries)" if self.failed else ""
        return f"reminders: {self.made} booking(s) of {self.day.isoformat()} reminded ({how}){failed}"


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


def _send(client: httpx.Client, url: str, booking_id: int, slot_id: int, phone: str, text: str) -> bool:
    try:
        ref = f"booking-{booking_id}-{slot_id}"  # a moved booking is a new appointment to remind of
        answer = client.post(url, json={"ref": ref, "phone": phone, "text": text})
    except httpx.HTTPError as exc:
        log.warning("reminder for booking %s not sent: %s", booking_id, type(exc).__name__)
        return False
    if not answer.is_success:
        log.warning("reminder for booking %s refused by the SMS gateway: HTTP %s", booking_id, answer.status_code)
    return answer.is_success


def reminders(hub: Hub) -> RemindersSummary:
    """Reminders made now for the next working day's bookings (0 when each already has one)."""
    day = next_workday(hub, hub.today())
    q = (
        select(QueueBooking, QueueSlot)
        .join(QueueSlot, QueueSlot.id == QueueBooking.slot_id)
        .outerjoin(
            QueueReminder,
            (QueueReminder.booking_id == QueueBooking.id) & (QueueReminder.slot_id == QueueBooking.slot_id),
        )
        .where(QueueBooking.day == day, QueueBooking.state == "booked", QueueReminder.id.is_(None))
    )
    with hub.sessions() as session:
        due = [(b.id, b.slot_id, b.phone, reminder_text(hub, b, s)) for b, s in session.execute(q)]
    summary = RemindersSummary(day, 0)
    url = hub.settings.queue.sms_url
    with httpx.Client(timeout=hub.settings.queue.sms_timeout, trust_env=False, follow_redirects=False) as client:
        for booking_id, slot_id, phone, text in due:  # one row per transaction: a concurrent run's rows don't undo ours
            channel = "record"
            if url and phone:
                if not _send(client, url, booking_id, slot_id, phone, text):
                    summary.failed += 1
                    continue
                channel = "sms"
            try:
                with hub.transaction() as session:
                    now = naive_utc(hub.now())
                    session.add(
                        QueueReminder(
                            booking_id=booking_id, slot_id=slot_id, phone=phone, text=text, channel=channel, sent_at=now
                        )
                    )
            except IntegrityError:
                continue  # another run recorded it first
            summary.made += 1
            summary.sent += channel == "sms"
    return summary
