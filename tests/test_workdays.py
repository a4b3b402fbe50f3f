"""Working-day arithmetic across the Spring Festival and National Day, their make-up days, an
ops-supplied schedule, and the computed fallback for years no notice covers."""

from datetime import date
from pathlib import Path

import chinese_calendar
import pytest

from hub.errors import ConfigInvalid, InvalidInput
from hub.workdays import Source, WorkCalendar, statutory_holidays

cal = WorkCalendar()


def test_spring_festival_2026_and_its_make_up_saturdays():
    # 2026: off 15–23 Feb; Saturday 14 Feb and Saturday 28 Feb are working days.
    assert cal.is_workday(date(2026, 2, 14)) and cal.is_workday(date(2026, 2, 28))
    assert not cal.is_workday(date(2026, 2, 16))
    assert cal.add_workdays(date(2026, 2, 13), 1) == (date(2026, 2, 14), False)
    assert cal.add_workdays(date(2026, 2, 14), 1) == (date(2026, 2, 24), False)
    assert cal.add_workdays(date(2026, 2, 12), 5) == (date(2026, 2, 26), False)


def test_national_day_2025_with_sunday_make_up():
    # 2025: off 1–8 Oct; Sunday 28 Sep and Saturday 11 Oct are working days.
    assert cal.is_workday(date(2025, 9, 28)) and cal.is_workday(date(2025, 10, 11))
    assert cal.add_workdays(date(2025, 9, 26), 1) == (date(2025, 9, 28), False)
    assert cal.add_workdays(date(2025, 9, 30), 1) == (date(2025, 10, 9), False)
    assert cal.add_workdays(date(2025, 9, 30), 3) == (date(2025, 10, 11), False)


def test_workdays_between_counts_half_open_interval():
    # (28 Sep, 9 Oct]: 29 and 30 Sep, then 8 and 9 Oct after the 1–7 Oct holiday; 28 Sep itself not counted
    assert cal.workdays_between(date(2026, 9, 28), date(2026, 10, 9)) == 4
    assert cal.workdays_between(date(2026, 9, 28), date(2026, 9, 28)) == 0
    assert cal.workdays_between(date(2026, 10, 9), date(2026, 9, 28)) == -cal.workdays_between(
        date(2026, 9, 28), date(2026, 10, 9)
    )


def test_year_without_any_notice_is_computed_and_provisional():
    assert cal.source(2027) is Source.computed
    # 2027 春节: 除夕 5 Feb (Fri) to 初三 8 Feb (Mon); no make-up days are invented.
    assert cal.add_workdays(date(2027, 2, 4), 1) == (date(2027, 2, 9), True)
    assert cal.holiday_name(date(2027, 2, 5)) == "春节"
    assert cal.is_workday(date(2027, 2, 6)) is False  # a Saturday stays a weekend
    # a due date computed in 2026 that reaches into 2027 is provisional too
    assert cal.add_workdays(date(2026, 12, 28), 5) == (date(2027, 1, 5), True)


def test_computed_statutory_days_match_official_holidays_where_known():
    for year in (2025, 2026):  # the 2025 rule: 13 days
        days = statutory_holidays(year)
        assert len(days) == 13
        assert all(chinese_calendar.is_holiday(d) for d in days), year
    # 清明 from the solar term matches the published dates back to 2008
    for year in range(2008, 2027):
        official = {d for d, name in chinese_calendar.holidays.items() if d.year == year and "Tomb" in str(name)}
        computed = next(d for d, n in statutory_holidays(year).items() if n == "清明节")
        assert computed in official, year


def _write(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "calendar"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return d


def test_ops_schedule_overrides_and_adds_make_up_days(tmp_path):
    d = _write(
        tmp_path,
        "2027.yaml",
        "year: 2027\nnotice: 测试用放假安排\nholidays:\n"
        "  - {name: 春节, from: 2027-02-05, to: 2027-02-12}\n"
        "workdays: [2027-02-14]\n",
    )
    c = WorkCalendar.from_dir(d)
    assert c.source(2027) is Source.config
    assert not c.is_workday(date(2027, 2, 11)) and c.is_workday(date(2027, 2, 14))
    assert c.add_workdays(date(2027, 2, 4), 1) == (date(2027, 2, 14), False)
    # days the schedule does not name follow the weekend rule, statutory days included
    assert c.is_workday(date(2027, 6, 9))


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "year: 2027\nnotice: x\nholidays:\n  - {name: 春节, from: 2027-02-05, to: 2027-02-12}\n"
            "workdays:\n  - 2027-02-14\n  - 2027-02-15\n",
            7,  # the second entry, a Monday
            "weekend",
        ),
        ("year: 2027\nnotice: x\nholidays:\n  - name: 春节\n    from: 2027-02-12\n    to: 2027-02-05\n", 4, "before"),
        ("year: 2027\nnotice: x\nholidays:\n  - {name: 春节, from: 2027-02-05, to: 2027-02-32}\n", 4, "holidays.0.to"),
    ],
)
def test_bad_schedule_names_file_and_line(tmp_path, text, line, needle):
    d = _write(tmp_path, "2027.yaml", text)
    with pytest.raises(ConfigInvalid) as exc:
        WorkCalendar.from_dir(d)
    problem = exc.value.problems[0]
    assert problem.file.endswith("2027.yaml") and problem.line == line and needle in problem.message


@pytest.mark.parametrize(
    ("start", "n", "argument"),
    [
        (date(2099, 12, 31), 1, "n"),  # the lunar tables end with 2099
        (date(2026, 10, 8), 100_000, "n"),
        (date(2099, 12, 20), 20, "n"),  # leaves the range during the walk, not by the first estimate
        (date(1899, 12, 27), 1, "start"),
        (date(9999, 12, 31), 1, "start"),  # date + 1 day would overflow
    ],
)
def test_counts_outside_the_covered_range_are_refused_naming_the_argument(start, n, argument):
    with pytest.raises(InvalidInput) as exc:
        cal.add_workdays(start, n)
    (error,) = exc.value.errors
    assert error.field == argument
    assert "1900-01-01..2099-12-31" in str(error) and "outside" in str(error)


def test_a_huge_count_is_refused_before_walking(monkeypatch):
    walked = []
    monkeypatch.setattr(WorkCalendar, "is_workday", lambda self, d: walked.append(d) or True)
    with pytest.raises(InvalidInput):
        cal.add_workdays(date(2026, 10, 8), 10**30)
    assert walked == []


def test_every_method_refuses_dates_outside_the_range():
    for call in (
        lambda: cal.is_workday(date(2100, 1, 4)),
        lambda: cal.holiday_name(date(1899, 1, 1)),
        lambda: cal.workdays_between(date(2026, 1, 1), date(2100, 1, 1)),
        lambda: cal.workdays_between(date(1, 1, 1), date(2026, 1, 1)),  # also bounds the work
    ):
        with pytest.raises(InvalidInput) as exc:
            call()
        assert "1900-01-01..2099-12-31" in str(exc.value)
    assert cal.add_workdays(date(2099, 12, 30), 1) == (date(2099, 12, 31), True)  # the last day still works


def test_an_ops_schedule_for_2100_extends_the_range(tmp_path):
    d = _write(
        tmp_path,
        "2100.yaml",
        "year: 2100\nnotice: 测试\nholidays:\n  - {name: 元旦, from: 2100-01-01, to: 2100-01-01}\n",
    )
    c = WorkCalendar.from_dir(d)
    assert c.add_workdays(date(2099, 12, 31), 1) == (date(2100, 1, 4), True)
    with pytest.raises(InvalidInput, match=r"1900-01-01\.\.2100-12-31"):
        c.add_workdays(date(2100, 12, 31), 1)


def test_a_due_date_beyond_the_range_refuses_the_acceptance_naming_due_date(hub, clock):
    from hub import applications as svc
    from tests.support.samples import HZ_CLERK, fund_rent, officer

    clock.set(date(2099, 12, 30))
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    with pytest.raises(InvalidInput) as exc:
        svc.transition(hub, app.number, "accept", officer("ts-gjj"))
    (error,) = exc.value.errors
    assert error.field == "due_date" and "2099-12-31" in str(error)
    with hub.sessions() as session:  # nothing changed
        assert svc.get(session, app.number, svc.SYSTEM).state == app.state
