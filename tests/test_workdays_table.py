"""Working-day arithmetic by table lookup gives the day walk's answers: the old walk is kept here
as the reference and both are asked the same questions on many random dates, across holidays,
make-up days, year ends, ops schedules and computed (provisional) years."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from hub.workdays import Source, WorkCalendar


def walk_add(cal: WorkCalendar, start: date, n: int) -> tuple[date, bool]:
    """The day walk `add_workdays` used to be (before the ordinal tables)."""
    d, provisional = start, cal.source(start.year) is Source.computed
    while n:
        d += timedelta(days=1)
        if cal.is_workday(d):
            n -= 1
        provisional = provisional or cal.source(d.year) is Source.computed
    return d, provisional


def walk_between(cal: WorkCalendar, a: date, b: date) -> int:
    if b < a:
        return -walk_between(cal, b, a)
    count, d = 0, a
    while d < b:
        d += timedelta(days=1)
        count += cal.is_workday(d)
    return count


@pytest.fixture(scope="module")
def calendars(tmp_path_factory) -> list[WorkCalendar]:
    folder = tmp_path_factory.mktemp("calendar")
    (folder / "2027.yaml").write_text(
        "year: 2027\nnotice: 测试\nholidays:\n"
        "  - {name: 元旦, from: 2026-12-31, to: 2027-01-03}\n"
        "  - {name: 春节, from: 2027-02-05, to: 2027-02-13}\n"
        "workdays: [2027-02-14, 2027-02-20]\n",
        encoding="utf-8",
    )
    return [WorkCalendar(), WorkCalendar.from_dir(folder)]


def _random_date(rng: random.Random) -> date:
    # Mostly where due dates fall (package years, an ops year, computed years), sometimes anywhere.
    lo, hi = (date(2019, 1, 1), date(2031, 12, 31)) if rng.random() < 0.9 else (date(1902, 1, 1), date(2098, 6, 30))
    return lo + timedelta(days=rng.randrange((hi - lo).days + 1))


def test_adding_working_days_matches_the_day_walk(calendars):
    rng = random.Random(21)
    for cal in calendars:
        for _ in range(600):
            start, n = _random_date(rng), rng.choice([0, 1, 2, 3, 5, 10, 20, 60, rng.randrange(400)])
            assert cal.add_workdays(start, n) == walk_add(cal, start, n), (start, n)


def test_counting_working_days_matches_the_day_walk(calendars):
    rng = random.Random(4)
    for cal in calendars:
        for _ in range(600):
            a = _random_date(rng)
            b = a + timedelta(days=rng.randrange(-400, 400))
            assert cal.workdays_between(a, b) == walk_between(cal, a, b), (a, b)


def test_every_day_around_new_year_and_spring_festival(calendars):
    # Exhaustive where the tables change hands: from each day, 0..25 working days on.
    for cal in calendars:
        for start in (date(2026, 12, 20) + timedelta(days=i) for i in range(70)):
            for n in range(26):
                assert cal.add_workdays(start, n) == walk_add(cal, start, n), (start, n)


def test_adding_then_counting_round_trips(calendars):
    rng = random.Random(7)
    for cal in calendars:
        for _ in range(500):
            start, n = _random_date(rng), rng.randrange(1, 300)
            due, _ = cal.add_workdays(start, n)
            assert cal.workdays_between(start, due) == n
            assert cal.is_workday(due)
