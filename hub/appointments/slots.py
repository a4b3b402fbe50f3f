"""预约时段: desks publish time slots per item group on working days, with a capacity. Staff of the
desk (or a supervisor) publish them, change the capacity — never below what is already booked —
and close them (no new bookings; those made stand)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from hub import audit
from hub.applications.models import Actor
from hub.appointments.common import group_at, local_now, parse_day, parse_hhmm, queue_desk, staff_at
from hub.context import Hub
from hub.errors import InvalidInput, NotFound
from hub.storage.tables import QueueSlot, naive_utc

MAX_CAPACITY = 500
MAX_SLOTS = 48  # one publication: a day in ten-minute slots at most


@dataclass(frozen=True)
class SlotView:
    id: int
    desk: str
    group: str
    day: date
    starts: str
    ends: str
    capacity: int
    booked: int
    closed: bool

    @property
    def free(self) -> int:
        return 0 if self.closed else max(self.capacity - self.booked, 0)

    @classmethod
    def of(cls, s: QueueSlot) -> SlotView:
        return cls(s.id, s.desk_code, s.group_code, s.day, s.starts, s.ends, s.capacity, s.booked, s.closed)


def _capacity(value: int | str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if not 1 <= n <= MAX_CAPACITY:
        raise InvalidInput.field("capacity", f"容量应为 1 到 {MAX_CAPACITY} 的整数", f"capacity 1..{MAX_CAPACITY}")
    return n


def publish(
    hub: Hub,
    actor: Actor,
    *,
    desk: str,
    group: str,
    day: date | str,
    starts: str,
    ends: str,
    capacity: int | str,
    every_minutes: int | str | None = None,
) -> list[SlotView]:
    """Slots from `starts` to `ends` on a working day: one, or one every `every_minutes`. All or
    nothing: a slot already published at one of those times refuses the whole publication."""
    queue_desk(hub, desk)
    staff_at(actor, desk)
    group_at(hub, desk, group)
    d = parse_day(day)
    first, last = parse_hhmm(starts, "starts"), parse_hhmm(ends, "ends")
    cap = _capacity(capacity)
    if last <= first:
        raise InvalidInput.field("ends", "结束时间应晚于开始时间", "ends must be after starts")
    if d < hub.today():
        raise InvalidInput.field("day", "不能发布已过去日期的时段", "the day has passed")
    hub.calendar.check_date(d, "day")
    if not hub.calendar.is_workday(d):
        raise InvalidInput.field("day", f"{d} 不是工作日", "not a working day")
    step = None
    if every_minutes not in (None, ""):
        try:
            step = int(every_minutes)  # type: ignore[arg-type]
        except ValueError:
            step = 0
        if not 5 <= step <= 480:
            raise InvalidInput.field("every", "时段长度应为 5 到 480 分钟", "slot length 5..480 minutes")
    start_at, end_at = datetime.combine(d, first), datetime.combine(d, last)
    spans: list[tuple[datetime, datetime]] = []
    if step is None:
        spans = [(start_at, end_at)]
    else:
        at = start_at
        while at + timedelta(minutes=step) <= end_at:
            spans.append((at, at + timedelta(minutes=step)))
            at += timedelta(minutes=step)
        if not spans:
            raise InvalidInput.field("every", "时段长度超过了开始到结束的时间", "no slot fits between starts and ends")
    if len(spans) > MAX_SLOTS:
        raise InvalidInput.field("every", f"一次最多发布 {MAX_SLOTS} 个时段", f"at most {MAX_SLOTS} slots at once")
    now = naive_utc(hub.now())
    rows = [
        QueueSlot(
            desk_code=desk,
            group_code=group,
            day=d,
            starts=f"{a:%H:%M}",
            ends=f"{b:%H:%M}",
            capacity=cap,
            booked=0,
            closed=False,
            created_by=actor.name,
            created_at=now,
        )
        for a, b in spans
    ]
    try:
        with hub.transaction() as session:
            session.add_all(rows)
            session.flush()
            audit.add(
                session, hub, actor, "queue_slots_published", target=desk, group=group, day=d.isoformat(), n=len(rows)
            )
            views = [SlotView.of(r) for r in rows]
    except IntegrityError:
        raise InvalidInput.field("starts", "该时间已有发布的时段", "a slot is already published at that time") from None
    return views


def _own_slot(hub: Hub, actor: Actor, slot_id: int) -> QueueSlot:
    with hub.sessions() as session:
        slot = session.get(QueueSlot, int(slot_id))
        if slot is None:
            raise NotFound("没有这个时段 (no such slot)")
        staff_at(actor, slot.desk_code)
        session.expunge(slot)
        return slot


def set_capacity(hub: Hub, actor: Actor, slot_id: int, capacity: int | str) -> SlotView:
    """A new capacity, never below the places already booked (checked in the same UPDATE, so a
    booking made meanwhile is counted)."""
    cap = _capacity(capacity)
    _own_slot(hub, actor, slot_id)
    with hub.transaction() as session:
        done = session.execute(
            update(QueueSlot).where(QueueSlot.id == slot_id, QueueSlot.booked <= cap).values(capacity=cap)
        ).rowcount
        slot = session.get(QueueSlot, slot_id)
        assert slot is not None
        if not done:
            raise InvalidInput.field(
                "capacity", f"容量不能低于已预约人数 {slot.booked}", f"capacity below the {slot.booked} already booked"
            )
        audit.add(session, hub, actor, "queue_slot_capacity", target=slot.desk_code, slot=slot_id, capacity=cap)
        return SlotView.of(slot)


def close(hub: Hub, actor: Actor, slot_id: int) -> SlotView:
    _own_slot(hub, actor, slot_id)
    with hub.transaction() as session:
        session.execute(update(QueueSlot).where(QueueSlot.id == slot_id).values(closed=True))
        slot = session.get(QueueSlot, slot_id)
        assert slot is not None
        audit.add(session, hub, actor, "queue_slot_closed", target=slot.desk_code, slot=slot_id)
        return SlotView.of(slot)


def listing(
    hub: Hub, desk: str, *, group: str | None = None, start: date | None = None, days: int = 14, bookable: bool = False
) -> list[SlotView]:
    """A desk's slots from `start` (today) for `days`; `bookable`: only open ones with room that
    have not ended yet."""
    first = start or hub.today()
    q = select(QueueSlot).where(
        QueueSlot.desk_code == desk, QueueSlot.day >= first, QueueSlot.day < first + timedelta(days=days)
    )
    if group:
        q = q.where(QueueSlot.group_code == group)
    if bookable:
        q = q.where(QueueSlot.closed.is_(False), QueueSlot.booked < QueueSlot.capacity)
    with hub.sessions() as session:
        found = [SlotView.of(s) for s in session.scalars(q.order_by(QueueSlot.day, QueueSlot.starts, QueueSlot.id))]
    if bookable:
        now = local_now(hub)
        found = [s for s in found if datetime.combine(s.day, parse_hhmm(s.ends, "ends")) > now]
    return found
