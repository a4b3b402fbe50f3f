"""Load: 200 residents book the same popular slot at once (200 threads through the one booking
function, released together by a barrier). Exactly `capacity` succeed, every other one gets the
clear 已约满 error, and the slot's `booked` equals its capacity — on PostgreSQL (row locks under
READ COMMITTED: a waiting UPDATE re-checks `booked < capacity` after the first commits) and on
SQLite (serialized write transactions)."""

from __future__ import annotations

import contextlib
import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from hub.applications import Actor
from hub.appointments import bookings, slots
from hub.appointments.bookings import Person
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.storage.tables import QueueBooking, QueueSlot
from tests.conftest import make_id

RESIDENTS = 200
CAPACITY = 12
HALL = Actor(name="窗口人员张敏", role=Role.clerk, desk="hall-county")


def test_200_residents_booking_one_slot_at_once_never_overbook(hub):
    slot = slots.publish(
        hub,
        HALL,
        desk="hall-county",
        group="shebao-yibao",
        day=date(2026, 9, 22),
        starts="09:00",
        ends="09:30",
        capacity=CAPACITY,
    )[0]
    people = [make_id("330329", date(1960 + i % 40, 1 + i % 12, 1 + i % 28), f"{i:03d}") for i in range(RESIDENTS)]
    barrier = threading.Barrier(RESIDENTS)
    ok: list[str] = []
    full: list[str] = []
    other: list[BaseException] = []
    lock = threading.Lock()

    def resident(ident: str) -> None:
        actor = Actor(name="居民", role=Role.applicant, applicant_id=ident)
        barrier.wait()
        try:
            b = bookings.book(hub, actor, slot.id, Person(ident, "居民"), channel="online")
            with lock:
                ok.append(b.code)
        except InvalidInput as exc:
            with lock:
                full.append(exc.errors[0].reason.zh)
        except BaseException as exc:
            with lock:
                other.append(exc)

    threads = [threading.Thread(target=resident, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not other, other[:3]
    assert len(ok) == CAPACITY and len(set(ok)) == CAPACITY
    assert len(full) == RESIDENTS - CAPACITY and all(m.startswith("该时段已约满") for m in full)
    with hub.sessions() as s:
        assert s.get(QueueSlot, slot.id).booked == CAPACITY
        assert s.scalar(select(func.count(QueueBooking.id)).where(QueueBooking.slot_id == slot.id)) == CAPACITY


def test_a_booking_cancelled_by_many_at_once_releases_its_place_once(hub):
    """Eight cancels of one booking at the same moment: one succeeds, the place is released once,
    and the slot never holds more than its capacity afterwards."""
    slot = slots.publish(
        hub,
        HALL,
        desk="hall-county",
        group="shebao-yibao",
        day=date(2026, 9, 22),
        starts="09:00",
        ends="09:30",
        capacity=2,
    )[0]
    ids = [make_id("330329", date(1970, 1, 1 + i), "001") for i in range(4)]

    def resident(i: str) -> Actor:
        return Actor(name="居民", role=Role.applicant, applicant_id=i)

    first = bookings.book(hub, resident(ids[0]), slot.id, Person(ids[0], "居民"), channel="online")
    bookings.book(hub, resident(ids[1]), slot.id, Person(ids[1], "居民"), channel="online")
    cancelled: list[str] = []
    gate = threading.Barrier(8)

    def cancel() -> None:
        gate.wait()
        with contextlib.suppress(InvalidInput):  # the others: 该预约已取消
            cancelled.append(bookings.cancel(hub, resident(ids[0]), first.code).code)

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cancelled) == 1
    bookings.book(hub, resident(ids[2]), slot.id, Person(ids[2], "居民"), channel="online")
    with pytest.raises(InvalidInput):
        bookings.book(hub, resident(ids[3]), slot.id, Person(ids[3], "居民"), channel="online")
    with hub.sessions() as session:
        active = session.scalar(
            select(func.count(QueueBooking.id)).where(QueueBooking.slot_id == slot.id, QueueBooking.state == "booked")
        )
        assert (active, session.get(QueueSlot, slot.id).booked) == (2, 2)


def test_two_moves_of_one_booking_at_once_take_one_new_place(hub):
    day = date(2026, 9, 22)
    made = slots.publish(
        hub,
        HALL,
        desk="hall-county",
        group="shebao-yibao",
        day=day,
        starts="09:00",
        ends="10:30",
        capacity=3,
        every_minutes=30,
    )
    ident = make_id("330329", date(1970, 1, 1), "001")
    me = Actor(name="居民", role=Role.applicant, applicant_id=ident)
    booking = bookings.book(hub, me, made[0].id, Person(ident, "居民"), channel="online")
    moved: list[int] = []
    gate = threading.Barrier(2)

    def move(to: int) -> None:
        gate.wait()
        with contextlib.suppress(InvalidInput):
            moved.append(bookings.move(hub, me, booking.code, to).slot_id)

    threads = [threading.Thread(target=move, args=(s.id,)) for s in made[1:3]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(moved) >= 1
    with hub.sessions() as session:
        booked = {s.id: session.get(QueueSlot, s.id).booked for s in made}
    held = bookings.find(hub, me, booking.code).slot_id
    assert booked == {s.id: int(s.id == held) for s in made}, booked
