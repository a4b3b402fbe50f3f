"""预约: a resident's place in a slot — booked from the application's status page, signed in
online (网办), or by desk staff on the phone. Moved atomically (the old place is released only in
the transaction that takes the new one) and cancelled. One active booking per person per item
group per day (the unique `active_key`).

No overbooking under concurrency: a place is taken with ONE conditional UPDATE
(… SET booked = booked + 1 WHERE id = :id AND booked < capacity AND NOT closed) and the row count
says whether it was. On PostgreSQL a second UPDATE of the same row waits for the first to commit
and re-checks the condition against the new value; on SQLite the write transaction is serialized."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import audit, text
from hub.applications.models import Actor
from hub.appointments.common import groups_of, local_now, parse_hhmm, staff_at
from hub.catalog.forms import PHONE  # the one phone rule
from hub.context import Hub
from hub.errors import FieldError, InvalidInput, NotFound, Reason
from hub.ids import check_id_number, mask_id, mask_name
from hub.lifecycle import FRONT, Role
from hub.storage.tables import QueueBooking, QueueReminder, QueueSlot, naive_utc

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read out on the phone
CODE_LENGTH = 8
CHANNELS = ("status", "online", "desk")
FULL = Reason("该时段已约满，请选择其他时段", "this slot is fully booked")
ACTIVE = ("booked",)


@dataclass(frozen=True)
class Person:
    """Who the booking is for: from the status page's application, the identity provider, or
    what the resident told the desk on the phone."""

    id_number: str
    name: str
    phone: str | None = None


@dataclass(frozen=True)
class BookingView:
    code: str
    desk: str
    group: str
    group_name: str
    day: date
    starts: str
    ends: str
    state: str
    name: str  # masked
    id_number: str  # masked
    application_number: str | None
    reminded: bool
    slot_id: int


def _code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _check_person(person: Person) -> Person:
    errors: list[FieldError] = []
    ident = (person.id_number or "").strip().upper()
    name = (person.name or "").strip()
    phone = re.sub(r"[\s]", "", person.phone or "") or None
    if reason := check_id_number(ident):
        errors.append(FieldError("id_number", reason))
    if not name:
        errors.append(FieldError.of("name", "请填写姓名", "name is required"))
    elif len(name) > 100:
        errors.append(FieldError.of("name", "姓名过长", "name too long"))
    elif bad := text.check("name", name):
        errors.append(bad)
    if phone and not PHONE.match(phone):
        errors.append(FieldError.of("phone", "手机号或电话号码格式不正确", "not a phone number"))
    if errors:
        raise InvalidInput(errors)
    return Person(ident, name, phone)


def _active_key(id_number: str, group: str, day: date) -> str:
    return f"{id_number}|{group}|{day.isoformat()}"


def _bookable(hub: Hub, slot: QueueSlot | None) -> QueueSlot:
    if slot is None:
        raise InvalidInput.field("slot", "没有这个时段", "no such slot")
    today = hub.today()
    if slot.closed:
        raise InvalidInput.field("slot", "该时段已停止预约", "this slot is closed")
    if slot.day < today or datetime.combine(slot.day, parse_hhmm(slot.ends, "ends")) <= local_now(hub):
        raise InvalidInput.field("slot", "该时段已过", "this slot is over")
    if slot.day > today + timedelta(days=hub.settings.queue.book_days_ahead):
        raise InvalidInput.field("slot", f"最多可预约 {hub.settings.queue.book_days_ahead} 天内的时段", "too far ahead")
    return slot


def _take(session: Session, slot_id: int) -> bool:
    """One place of the slot, or False: the one conditional UPDATE every booking goes through."""
    taken = session.execute(
        update(QueueSlot)
        .where(QueueSlot.id == slot_id, QueueSlot.booked < QueueSlot.capacity, QueueSlot.closed.is_(False))
        .values(booked=QueueSlot.booked + 1)
    ).rowcount
    return taken == 1


def _release(session: Session, slot_id: int) -> None:
    session.execute(
        update(QueueSlot).where(QueueSlot.id == slot_id, QueueSlot.booked > 0).values(booked=QueueSlot.booked - 1)
    )


def _already() -> InvalidInput:
    return InvalidInput.field(
        "slot", "您当天已预约过此类事项，请先取消或改约原预约", "one booking per person per item group per day"
    )


def book(
    hub: Hub,
    actor: Actor,
    slot_id: int | str,
    person: Person,
    *,
    channel: str,
    application_number: str | None = None,
) -> BookingView:
    """Book a place. A resident (role applicant) books for themselves only; desk staff for their
    desk. Refused with 已约满 when the slot is full — nothing written then."""
    if channel not in CHANNELS:
        raise ValueError(channel)
    person = _check_person(person)
    if actor.role is Role.applicant and person.id_number != (actor.applicant_id or "").upper():
        raise InvalidInput.field("id_number", "只能为本人预约", "residents book for themselves")
    try:
        sid = int(slot_id)
    except (TypeError, ValueError):
        raise InvalidInput.field("slot", "请选择时段", "choose a slot") from None
    with hub.sessions() as session:
        slot = _bookable(hub, session.get(QueueSlot, sid))
        desk, group, day = slot.desk_code, slot.group_code, slot.day
    if actor.role not in (Role.applicant, Role.system):
        staff_at(actor, desk, supervisor=False)
    now = naive_utc(hub.now())
    code = _code()
    try:
        with hub.transaction() as session:
            if not _take(session, sid):
                raise InvalidInput([FieldError("slot", FULL)])
            session.add(
                QueueBooking(
                    code=code,
                    slot_id=sid,
                    desk_code=desk,
                    group_code=group,
                    day=day,
                    id_number=person.id_number,
                    name=person.name,
                    phone=person.phone,
                    application_number=application_number,
                    channel=channel,
                    state="booked",
                    active_key=_active_key(person.id_number, group, day),
                    created_by=actor.name,
                    created_at=now,
                )
            )
            session.flush()  # the unique active_key: a second booking the same day is refused here
            audit.add(
                session, hub, actor, "queue_booked", target=code, desk=desk, slot=sid, id=mask_id(person.id_number)
            )
    except IntegrityError as exc:
        if "active_key" in str(exc.orig) or "queue_bookings" in str(exc.orig):
            raise _already() from None
        raise
    return find(hub, actor, code)


def _load(session: Session, actor: Actor, code: str, *, for_update: bool = False) -> QueueBooking:
    """The booking, if the caller may see it; otherwise NotFound (as if it did not exist).
    `for_update`: locked until the transaction ends, so that two cancels or moves of one booking
    (or a cancel racing a check-in) see each other's state — else both release its place."""
    code = (code or "").strip().upper()[: CODE_LENGTH + 4]
    q = select(QueueBooking).where(QueueBooking.code == code)
    row = session.scalar(q.with_for_update() if for_update else q)
    if row is None:
        raise NotFound("没有这个预约 (no such booking)")
    if actor.role is Role.applicant:
        if row.id_number != (actor.applicant_id or "").upper():
            raise NotFound("没有这个预约 (no such booking)")
    elif actor.role in FRONT:
        if actor.desk != row.desk_code:
            raise NotFound("没有这个预约 (no such booking)")
    elif actor.role not in (Role.supervisor, Role.system):
        raise NotFound("没有这个预约 (no such booking)")
    return row


def _view(session: Session, hub: Hub, row: QueueBooking) -> BookingView:
    slot = session.get(QueueSlot, row.slot_id)
    assert slot is not None
    group = groups_of(hub).get(row.group_code)
    reminded = (  # for the slot it holds now: a moved booking is reminded of its new time
        session.scalar(
            select(QueueReminder.id).where(QueueReminder.booking_id == row.id, QueueReminder.slot_id == row.slot_id)
        )
        is not None
    )
    return BookingView(
        code=row.code,
        desk=row.desk_code,
        group=row.group_code,
        group_name=group.name if group else row.group_code,
        day=row.day,
        starts=slot.starts,
        ends=slot.ends,
        state=row.state,
        name=mask_name(row.name),
        id_number=mask_id(row.id_number),
        application_number=row.application_number,
        reminded=reminded,
        slot_id=row.slot_id,
    )


def find(hub: Hub, actor: Actor, code: str) -> BookingView:
    with hub.sessions() as session:
        return _view(session, hub, _load(session, actor, code))


def of_person(hub: Hub, id_number: str, *, upcoming: bool = True) -> list[BookingView]:
    """A resident's bookings (theirs only: the caller passes the verified ID number)."""
    q = select(QueueBooking).where(QueueBooking.id_number == id_number.upper())
    if upcoming:
        q = q.where(QueueBooking.day >= hub.today())
    with hub.sessions() as session:
        return [_view(session, hub, r) for r in session.scalars(q.order_by(QueueBooking.day, QueueBooking.id))]


def of_desk(hub: Hub, actor: Actor, desk: str, day: date) -> list[BookingView]:
    staff_at(actor, desk)
    q = select(QueueBooking).where(QueueBooking.desk_code == desk, QueueBooking.day == day)
    with hub.sessions() as session:
        return [_view(session, hub, r) for r in session.scalars(q.order_by(QueueBooking.slot_id, QueueBooking.id))]


def cancel(hub: Hub, actor: Actor, code: str) -> BookingView:
    with hub.transaction() as session:
        row = _load(session, actor, code, for_update=True)
        if row.state not in ACTIVE:
            raise InvalidInput.field("code", "该预约已取消、已签到或已改约", "booking is not active")
        row.state, row.active_key, row.changed_at = "cancelled", None, naive_utc(hub.now())
        _release(session, row.slot_id)
        audit.add(session, hub, actor, "queue_cancelled", target=row.code)
        session.flush()
        return _view(session, hub, row)


def move(hub: Hub, actor: Actor, code: str, slot_id: int | str) -> BookingView:
    """改约: the same booking (and code) in another slot of its desk and group. All in one
    transaction: the new place is taken first; only then is the old one released. A full slot
    leaves the booking where it was."""
    try:
        sid = int(slot_id)
    except (TypeError, ValueError):
        raise InvalidInput.field("slot", "请选择时段", "choose a slot") from None
    try:
        with hub.transaction() as session:
            row = _load(session, actor, code, for_update=True)
            if row.state not in ACTIVE:
                raise InvalidInput.field("code", "该预约已取消、已签到或已改约", "booking is not active")
            if sid == row.slot_id:
                raise InvalidInput.field("slot", "新时段与原时段相同", "the same slot")
            slot = _bookable(hub, session.get(QueueSlot, sid))
            if (slot.desk_code, slot.group_code) != (row.desk_code, row.group_code):
                raise InvalidInput.field("slot", "只能改约到同一窗口同类事项的时段", "same desk and item group only")
            if not _take(session, sid):
                raise InvalidInput([FieldError("slot", FULL)])
            _release(session, row.slot_id)
            old = row.slot_id
            row.slot_id, row.day = sid, slot.day
            row.active_key = _active_key(row.id_number, row.group_code, slot.day)
            row.changed_at = naive_utc(hub.now())
            session.flush()
            audit.add(session, hub, actor, "queue_moved", target=row.code, old_slot=old, slot=sid)
            return _view(session, hub, row)
    except IntegrityError:
        raise _already() from None
