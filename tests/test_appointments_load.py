"""Load: 200 residents book the same popular slot at once (200 threads through the one booking
function, released together by a barrier). Exactly `capacity` succeed, every other one gets the
clear 已约满 error, and the slot's `booked` equals its capacity — on PostgreSQL (row locks under
READ COMMITTED: a waiting UPDATE re-checks `booked < capacity` after the first commits) and on
SQLite (serialized write transactions)."""

from __future__ import annotations

import threading
from datetime import date

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
