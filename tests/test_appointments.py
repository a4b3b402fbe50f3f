"""Appointments and the queue, the core rules on SQLite and PostgreSQL (the `hub` fixture): item
groups checked with file:line, slots on working days, booking (full, one per person per group per
day, move atomically, cancel), tickets with their numbers and priority, calling (priority first,
recall, no-show only after recalls), linking a ticket to the application it becomes, reminders
exactly once, and the figures."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import select

from hub.applications import Actor
from hub.appointments import bookings, calls, figures, slots, tickets
from hub.appointments.bookings import Person
from hub.appointments.groups import check_groups
from hub.errors import InvalidInput, NotFound
from hub.jobs import reminders
from hub.lifecycle import Role
from hub.storage.tables import QueueBooking, QueueReminder, QueueSlot
from tests.conftest import make_id

HALL = Actor(name="窗口人员张敏", role=Role.clerk, desk="hall-county")
HALL2 = Actor(name="窗口人员李强", role=Role.clerk, desk="hall-county")
HZ = Actor(name="飞地专员陈静", role=Role.enclave_clerk, desk="enclave-hangzhou")
DONGXI = Actor(name="乡镇窗口吴芳", role=Role.clerk, desk="township-dongxi")
BOSS = Actor(name="督查王主任", role=Role.supervisor)
YOUNG = make_id("330329", date(1990, 7, 1), "013")
OLD = make_id("330329", date(1950, 3, 15), "021")
HZ_BORN = make_id("330105", date(1988, 2, 2), "045")
MONDAY = date(2026, 9, 21)  # the test clock's day (a working day)


def resident(ident: str, name: str = "陈志强") -> Actor:
    return Actor(name=name, role=Role.applicant, applicant_id=ident)


def _slot(
    hub, desk="hall-county", group="shebao-yibao", day=MONDAY, starts="10:00", ends="11:00", capacity=2, who=HALL
):
    return slots.publish(hub, who, desk=desk, group=group, day=day, starts=starts, ends=ends, capacity=capacity)[0]


def test_groups_are_checked_against_the_catalogue_with_file_and_line(hub, tmp_path):
    (tmp_path / "appointments.yaml").write_text(
        "groups:\n"
        "  - code: a\n    name: 甲\n    letter: A\n    items: [GG00101001, NOPE]\n"
        "  - code: b\n    name: 乙\n    letter: A\n    items: [GG00101001]\n    desks: [bank-xiahong]\n",
        encoding="utf-8",
    )
    groups, problems = check_groups(tmp_path, hub.catalog)
    assert groups is None
    text = [str(p) for p in problems]
    assert any("appointments.yaml:5:" in t and "NOPE" in t for t in text), text
    assert any("appointments.yaml:8:" in t and "duplicate letter" in t for t in text), text
    assert any("appointments.yaml:9:" in t and "already in a group" in t for t in text), text
    assert any("appointments.yaml:10:" in t and "bank-xiahong" in t for t in text), text


def test_publishing_slots_on_working_days_only_and_capacity_never_below_booked(hub):
    made = slots.publish(
        hub,
        HALL,
        desk="hall-county",
        group="shebao-yibao",
        day="2026-09-22",
        starts="09:00",
        ends="11:00",
        capacity=3,
        every_minutes=30,
    )
    assert [(s.starts, s.ends) for s in made] == [
        ("09:00", "09:30"),
        ("09:30", "10:00"),
        ("10:00", "10:30"),
        ("10:30", "11:00"),
    ]
    with pytest.raises(InvalidInput) as saturday:
        _slot(hub, day=date(2026, 9, 26))
    assert saturday.value.errors[0].field == "day"
    with pytest.raises(InvalidInput) as twice:
        _slot(hub, day=date(2026, 9, 22), starts="09:00", ends="09:30")
    assert twice.value.errors[0].field == "starts"
    with pytest.raises(NotFound):  # another desk's staff: not theirs to publish
        _slot(hub, who=DONGXI)
    with pytest.raises(InvalidInput) as not_served:  # 不动产 is served at the county hall only
        _slot(hub, desk="township-dongxi", group="budongchan", who=DONGXI)
    assert not_served.value.errors[0].field == "group"
    s = made[0]
    bookings.book(hub, resident(YOUNG), s.id, Person(YOUNG, "陈志强"), channel="online")
    bookings.book(hub, resident(OLD), s.id, Person(OLD, "林阿婆"), channel="online")
    with pytest.raises(InvalidInput) as below:
        slots.set_capacity(hub, BOSS, s.id, 1)
    assert below.value.errors[0].field == "capacity" and "2" in below.value.errors[0].reason.zh
    assert slots.set_capacity(hub, BOSS, s.id, 2).capacity == 2
    slots.close(hub, HALL, made[1].id)
    with pytest.raises(InvalidInput) as closed:
        bookings.book(hub, HALL, made[1].id, Person(YOUNG, "陈志强"), channel="desk")
    assert "停止预约" in closed.value.errors[0].reason.zh
    assert [x.id for x in slots.listing(hub, "hall-county", bookable=True)] == [made[2].id, made[3].id]


def test_booking_full_one_per_day_move_and_cancel(hub):
    a = _slot(hub, capacity=1)
    b = _slot(hub, starts="11:00", ends="12:00", capacity=1)
    first = bookings.book(hub, resident(YOUNG), a.id, Person(YOUNG, "陈志强", "13857712345"), channel="online")
    assert len(first.code) == 8 and first.id_number != YOUNG and "*" in first.id_number
    with pytest.raises(InvalidInput) as full:
        bookings.book(hub, HALL, a.id, Person(OLD, "林阿婆"), channel="desk")
    assert full.value.errors[0].reason.zh.startswith("该时段已约满")
    with pytest.raises(InvalidInput) as again:  # the same person, group and day: one active booking
        bookings.book(hub, resident(YOUNG), b.id, Person(YOUNG, "陈志强"), channel="online")
    assert "已预约过" in again.value.errors[0].reason.zh
    with pytest.raises(InvalidInput) as bad:
        bookings.book(hub, HALL, b.id, Person("330329199007010139", "", "12"), channel="desk")
    assert {e.field for e in bad.value.errors} == {"id_number", "name", "phone"}
    with pytest.raises(InvalidInput):  # a resident books for themselves only
        bookings.book(hub, resident(YOUNG), b.id, Person(OLD, "林阿婆"), channel="online")
    # someone else's booking: 404 for a resident and for another desk
    with pytest.raises(NotFound):
        bookings.cancel(hub, resident(OLD), first.code)
    with pytest.raises(NotFound):
        bookings.cancel(hub, DONGXI, first.code)
    bookings.book(hub, HALL, b.id, Person(OLD, "林阿婆"), channel="desk")  # b is now full
    with pytest.raises(InvalidInput):  # moving into a full slot leaves the booking where it was
        bookings.move(hub, resident(YOUNG), first.code, b.id)
    assert bookings.find(hub, resident(YOUNG), first.code).slot_id == a.id
    slots.set_capacity(hub, HALL, b.id, 2)
    moved = bookings.move(hub, resident(YOUNG), first.code, b.id)
    assert (moved.code, moved.slot_id, moved.starts) == (first.code, b.id, "11:00")
    with hub.sessions() as s:
        assert {x.id: x.booked for x in s.scalars(select(QueueSlot))} == {a.id: 0, b.id: 2}
    bookings.cancel(hub, resident(YOUNG), first.code)
    with pytest.raises(InvalidInput):
        bookings.cancel(hub, resident(YOUNG), first.code)
    again_ok = bookings.book(hub, resident(YOUNG), a.id, Person(YOUNG, "陈志强"), channel="online")
    assert again_ok.state == "booked"  # cancelled: the person may book that day again
    with hub.sessions() as s:
        assert {x.id: x.booked for x in s.scalars(select(QueueSlot))} == {a.id: 1, b.id: 1}


def test_tickets_numbers_priority_and_calling(hub, clock):
    s = _slot(hub, starts="09:50", ends="10:30")  # the clock says 10:00: on time
    booked = bookings.book(hub, resident(YOUNG), s.id, Person(YOUNG, "陈志强"), channel="online")
    walk = tickets.take(hub, HALL, "hall-county", group="shebao-yibao")
    walk2 = tickets.take(hub, HALL, "hall-county", group="huji-zhengjian")
    elder = tickets.take(hub, HALL, "hall-county", group="shebao-yibao", id_number=OLD)
    checked = tickets.take(hub, HALL, "hall-county", code=booked.code.lower())
    assert [walk.number, walk2.number, elder.number, checked.number] == ["A001", "B001", "A002", "A003"]
    assert (elder.priority_reason, checked.priority_reason, walk.priority_reason) == ("elderly", "appointment", None)
    with pytest.raises(InvalidInput) as twice:
        tickets.take(hub, HALL, "hall-county", code=booked.code)
    assert twice.value.errors[0].field == "code"
    with pytest.raises(InvalidInput):  # not a desk with that group
        tickets.take(hub, DONGXI, "township-dongxi", group="budongchan")
    # 优先办 at an enclave window: the county's residents, not the city's
    home = tickets.take(hub, HZ, "enclave-hangzhou", group="gongjijin", id_number=YOUNG)
    city = tickets.take(hub, HZ, "enclave-hangzhou", group="gongjijin", id_number=HZ_BORN)
    assert (home.priority_reason, city.priority_reason) == ("enclave", None)
    # calling: priority first in order of arrival, then the rest
    order = [calls.call_next(hub, HALL, "1").number for _ in range(4)]
    assert order == ["A002", "A003", "A001", "B001"]
    assert calls.call_next(hub, HALL, "1") is None
    with pytest.raises(InvalidInput) as counter:
        calls.call_next(hub, HALL, "<b>")
    assert counter.value.errors[0].field == "counter"
    # no-show only after recalls; the booking is marked
    with pytest.raises(InvalidInput):
        calls.no_show(hub, HALL, checked.id)
    calls.recall(hub, HALL, checked.id)
    calls.recall(hub, HALL, checked.id)
    assert calls.no_show(hub, HALL, checked.id).state == "no_show"
    with hub.sessions() as ses:
        assert ses.scalar(select(QueueBooking.state).where(QueueBooking.code == booked.code)) == "no_show"
    with pytest.raises(NotFound):  # another desk's ticket
        calls.recall(hub, HZ, walk.id)
    shown = calls.recent(hub, "hall-county")
    assert [(e["number"], e["kind"]) for e in shown][-3:] == [
        ("A003", "recall"),
        ("A003", "recall"),
        ("A003", "no_show"),
    ]
    assert all(set(e) == {"id", "number", "counter", "kind"} for e in shown)  # no names on the screen
    clock.advance(seconds=600)
    calls.start(hub, HALL, walk.id)
    clock.advance(seconds=300)
    calls.finish(hub, HALL, walk.id)
    fig = figures.queue_figures(hub, MONDAY, MONDAY)
    hall = next(r for r in fig.by_desk if r.key == "hall-county")
    assert hall.tickets == 4 and hall.no_shows == 1 and hall.served == 1
    assert hall.service_avg == pytest.approx(15.0)  # called at 10:00, finished 10:15 (start counts from the call)


def test_two_counters_calling_at_once_get_different_tickets(hub):
    for _ in range(6):
        tickets.take(hub, HALL, "hall-county", group="shebao-yibao")
    barrier = threading.Barrier(6)
    got: list[str] = []
    errors: list[BaseException] = []

    def counter(n: int) -> None:
        try:
            barrier.wait()
            t = calls.call_next(hub, HALL if n % 2 else HALL2, str(n))
            got.append(t.number if t else "-")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=counter, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(got) == [f"A00{i}" for i in range(1, 7)]


def test_a_ticket_becomes_an_application_and_reminders_are_recorded_once(hub, clock):
    from hub import applications as svc
    from tests.support.samples import elderly_card

    t = tickets.take(hub, HALL, "hall-county", group="zonghe", id_number=OLD)
    called = calls.call_next(hub, HALL, "2")
    assert called.id == t.id
    assert calls.for_intake(hub, HALL, t.id).number == "E001"
    app = svc.create(hub, elderly_card(desk="hall-county"), HALL)
    linked = calls.link(hub, HALL, t.id, app.number)
    assert (linked.application_id, linked.state) == (app.id, "serving")
    with pytest.raises(InvalidInput):
        calls.for_intake(hub, HALL, t.id)
    # reminders: bookings of the next working day (Monday → Tuesday), exactly once
    tuesday = _slot(hub, day=date(2026, 9, 22))
    bookings.book(hub, resident(YOUNG), tuesday.id, Person(YOUNG, "陈志强", "13857712345"), channel="online")
    assert reminders.reminders(hub).made == 1
    assert reminders.reminders(hub).made == 0
    with hub.sessions() as s:
        rows = list(s.scalars(select(QueueReminder)))
    assert len(rows) == 1 and "9月22日" in rows[0].text and rows[0].sent_at is not None


def test_the_demo_walk_through(hub):
    from hub import demo_queue

    said: list[str] = []
    assert demo_queue.run(hub, said.append) == "/display/hall-county"
    text = "\n".join(said)
    assert "E002（老年人优先）" in text and "请 E002 号到 3 号窗口" in text and "1 booking(s)" in text


def test_reminders_through_an_sms_gateway_once_and_retried_when_it_fails(hub):
    from tests.support.sms_gateway import sms_gateway

    tuesday = _slot(hub, day=date(2026, 9, 22), capacity=3)
    bookings.book(hub, resident(YOUNG), tuesday.id, Person(YOUNG, "陈志强", "13857712345"), channel="online")
    bookings.book(hub, resident(OLD), tuesday.id, Person(OLD, "林阿婆"), channel="online")  # no phone
    with sms_gateway() as (url, gateway):
        hub.settings.queue.sms_url = url
        gateway.failing = True
        first = reminders.reminders(hub)
        assert (first.made, first.sent, first.failed) == (1, 0, 1)  # the phoneless one is recorded
        gateway.failing = False
        second = reminders.reminders(hub)
        assert (second.made, second.sent, second.failed) == (1, 1, 0)
        assert reminders.reminders(hub).made == 0
    assert list(gateway.sent) and len(gateway.sent) == 1
    (message,) = gateway.sent.values()
    assert message["phone"] == "13857712345" and "预约码" in message["text"]
    with hub.sessions() as s:
        assert sorted(r.channel for r in s.scalars(select(QueueReminder))) == ["record", "sms"]


def test_a_moved_booking_is_reminded_of_its_new_time(hub, clock):
    tuesday, wednesday = _slot(hub, day=date(2026, 9, 22)), _slot(hub, day=date(2026, 9, 23))
    me = resident(YOUNG)
    booking = bookings.book(hub, me, tuesday.id, Person(YOUNG, "陈志强", "13857712345"), channel="online")
    assert reminders.reminders(hub).made == 1  # Monday: reminded of Tuesday
    bookings.move(hub, me, booking.code, wednesday.id)  # then moved to Wednesday
    assert not bookings.find(hub, me, booking.code).reminded
    clock.advance(days=1)  # Tuesday: the run for Wednesday
    assert reminders.reminders(hub).made == 1
    assert bookings.find(hub, me, booking.code).reminded
    with hub.sessions() as s:
        texts = sorted(r.text for r in s.scalars(select(QueueReminder)))
    assert ["9月22日" in texts[0], "9月23日" in texts[1]] == [True, True]
