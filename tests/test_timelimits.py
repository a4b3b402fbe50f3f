"""Due dates in working days from acceptance, the clock stopped on 补正, yellow and red cards."""

from datetime import date

from hub import applications as svc
from hub import supervision
from hub.timelimits import Signal, signal
from tests.support.samples import HZ_CLERK, fund_rent, officer

GJJ = officer("ts-gjj")


def _accepted(hub, clock, day: date):
    clock.set(day)
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    return svc.transition(hub, app.number, "accept", GJJ)


def test_due_date_skips_national_day(hub, clock):
    app = _accepted(hub, clock, date(2026, 9, 29))  # Tue; 3 working days: 30 Sep, 8 Oct, 9 Oct
    assert app.due_date == date(2026, 10, 9) and not app.due_provisional
    assert app.parts[0].due_date == app.due_date


def test_clock_stops_while_waiting_for_supplement(hub, clock):
    app = _accepted(hub, clock, date(2026, 11, 2))  # Mon → due Thu 5 Nov
    assert app.due_date == date(2026, 11, 5)
    clock.set(date(2026, 11, 3))
    app = svc.transition(hub, app.number, "request_supplement", GJJ, reason="租赁合同未盖章")
    assert app.state == "supplement_requested" and app.paused_since == date(2026, 11, 3)
    assert signal(app, date(2026, 11, 9), hub.calendar, 2) is Signal.paused  # no card while the clock stands
    clock.set(date(2026, 11, 10))  # applicant comes back a week later: 4–10 Nov is 5 working days
    app = svc.transition(hub, app.number, "resume", HZ_CLERK)
    assert app.state == "accepted"  # back where it was
    assert app.paused_workdays == 5 and app.paused_since is None
    assert app.due_date == date(2026, 11, 12)
    assert app.events[-1].data["clock_stood_workdays"] == 5


def test_supplement_before_acceptance_does_not_touch_the_clock(hub, clock):
    clock.set(date(2026, 11, 2))
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    app = svc.transition(hub, app.number, "request_supplement", HZ_CLERK, reason="身份证复印件不清晰")
    assert app.paused_since is None
    clock.set(date(2026, 11, 4))
    app = svc.transition(hub, app.number, "resume", HZ_CLERK)
    assert app.state == "received" and app.paused_workdays == 0 and app.due_date is None


def test_yellow_and_red_cards(hub, clock):
    app = _accepted(hub, clock, date(2026, 11, 2))  # due Thu 5 Nov
    assert signal(app, date(2026, 11, 2), hub.calendar, 2) is Signal.green  # 3 working days left
    assert signal(app, date(2026, 11, 3), hub.calendar, 2) is Signal.yellow
    assert signal(app, date(2026, 11, 5), hub.calendar, 2) is Signal.yellow  # due today
    assert signal(app, date(2026, 11, 6), hub.calendar, 2) is Signal.red
    clock.set(date(2026, 11, 6))
    assert [(w.number, w.kind) for w in supervision.warnings(hub, GJJ)] == [(app.number, "red")]
    assert supervision.warnings(hub, officer("ts-mzj")) == []  # other departments do not see it


def test_due_date_in_a_year_without_a_schedule_is_provisional(hub, clock):
    app = _accepted(hub, clock, date(2026, 12, 30))  # 31 Dec, then 2027 (computed, no notice yet)
    assert app.due_date == date(2027, 1, 5) and app.due_provisional
    assert app.events[-1].data["due_provisional"] is True
    assert "provisional_due_date" in {w.kind for w in supervision.warnings(hub, GJJ)}


def test_decided_late_is_recorded_as_not_on_time(hub, clock):
    app = _accepted(hub, clock, date(2026, 11, 2))
    svc.transition(hub, app.number, "start_review", GJJ)
    clock.set(date(2026, 11, 9))
    app = svc.transition(hub, app.number, "approve", GJJ)
    assert app.state == "decided" and app.events[-1].data["on_time"] is False
    assert signal(app, date(2026, 11, 9), hub.calendar, 2) is None  # decided: no card


def test_instant_items_are_not_yellow_on_the_day_they_are_accepted(hub, clock):
    from tests.support.samples import TELLER, elderly_card

    clock.set(date(2026, 11, 2))
    app = svc.create(hub, elderly_card(), TELLER)
    app = svc.transition(hub, app.number, "accept", officer("ts-mzj"), commitment_due=date(2026, 11, 9))
    assert signal(app, date(2026, 11, 2), hub.calendar, 2) is Signal.green
    assert signal(app, date(2026, 11, 3), hub.calendar, 2) is Signal.red


def test_overdue_stays_red_while_paused(hub, clock):
    app = _accepted(hub, clock, date(2026, 11, 2))  # due 5 Nov
    clock.set(date(2026, 11, 9))
    app = svc.transition(hub, app.number, "request_supplement", GJJ, reason="补充")
    assert signal(app, date(2026, 11, 10), hub.calendar, 2) is Signal.red
