"""Working days in mainland China: public holidays and make-up working days (调休上班).

For each year the answer comes from the first source that covers it:
  1. an official schedule supplied by ops in `calendar/YEAR.yaml` (国务院办公厅 notice),
  2. the `chinesecalendar` package (its data ends with the last notice it shipped),
  3. the statutory holidays computed for any year under the current national rule
     (全国年节及纪念日放假办法, 2025 revision) with no make-up days — *provisional*.

A due date that depends on a provisional year is marked provisional; nothing is silently guessed.
Outside the years the third source can compute (the lunar tables end at 1900 and 2099, or a later
year an ops schedule covers) there is no answer: every method refuses such a date with
`OutOfCalendar` naming the argument and the covered range, instead of failing deep inside."""

from __future__ import annotations

import warnings
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated

import chinese_calendar
from lunardate import LunarDate
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hub import yamlfile
from hub.errors import ConfigInvalid, ConfigProblem, FieldError, InvalidInput, Reason

# The lunar tables (lunardate) and the solar terms behind the computed holidays cover these years.
FIRST_YEAR = 1900
LAST_COMPUTED_YEAR = 2099


class OutOfCalendar(InvalidInput):
    """A date, or a count of working days, that reaches outside the calendar's covered range.
    `argument` is the parameter's name, so a surface can name it as its users know it."""

    def __init__(self, argument: str, reason: Reason):
        self.argument, self.reason = argument, reason
        super().__init__([FieldError(argument, reason)])

    def renamed(self, argument: str) -> OutOfCalendar:
        return OutOfCalendar(argument, self.reason)


class Source(StrEnum):
    config = "config"
    package = "package"
    computed = "computed"


class HolidaySpan(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    start: date = Field(alias="from")
    end: date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> HolidaySpan:
        if self.end < self.start:
            raise ValueError("放假结束日期早于开始日期 (`to` is before `from`)")
        return self

    def days(self) -> Iterable[date]:
        d = self.start
        while d <= self.end:
            yield d
            d += timedelta(days=1)


def _weekend(d: date) -> date:
    if d.weekday() < 5:
        raise ValueError(f"调休上班日 {d} 不是周末 (make-up working day must be a weekend day)")
    return d


class YearSchedule(BaseModel):
    """One year's official holiday notice, as ops type it into `calendar/YEAR.yaml`."""

    model_config = ConfigDict(extra="forbid")
    year: int = Field(ge=2000, le=2100)
    notice: str  # title or number of the State Council notice the dates come from
    holidays: list[HolidaySpan] = Field(min_length=1)
    workdays: list[Annotated[date, AfterValidator(_weekend)]] = Field(default_factory=list)  # 调休上班

    @model_validator(mode="after")
    def _dates_belong(self) -> YearSchedule:
        # A notice may start the New Year holiday on 30/31 December of the year before.
        lo, hi = date(self.year - 1, 12, 1), date(self.year, 12, 31)
        for d in [*(d for h in self.holidays for d in (h.start, h.end)), *self.workdays]:
            if not lo <= d <= hi:
                raise ValueError(f"日期 {d} 不属于 {self.year} 年的安排 (date outside the year)")
        return self


def load_schedules(calendar_dir: Path) -> tuple[dict[int, YearSchedule], list[ConfigProblem]]:
    schedules: dict[int, YearSchedule] = {}
    problems: list[ConfigProblem] = []
    for path in sorted(Path(calendar_dir).glob("*.yaml")) if Path(calendar_dir).is_dir() else []:
        doc = yamlfile.load(path)
        sched = yamlfile.validate(doc, YearSchedule) if not doc.problems else None
        if sched is not None and path.stem != str(sched.year):
            doc.problems.append(doc.problem(("year",), f"文件名应为 {sched.year}.yaml (file name must match year)"))
            sched = None
        problems.extend(doc.problems)
        if sched is not None:
            schedules[sched.year] = sched
    return schedules, problems


@cache
def statutory_holidays(year: int) -> dict[date, str]:
    """The 13 statutory holiday days of `year` under the 2025 rule, computable for any year."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        new_year = LunarDate(year, 1, 1).to_solar_date()
        dragon_boat = LunarDate(year, 5, 5).to_solar_date()
        mid_autumn = LunarDate(year, 8, 15).to_solar_date()
    qingming = next(
        d for d, name in chinese_calendar.get_solar_terms(date(year, 4, 1), date(year, 4, 10)) if name == "清明"
    )
    days: dict[date, str] = {date(year, 1, 1): "元旦"}
    for offset in (-1, 0, 1, 2):  # 除夕 to 初三
        days[new_year + timedelta(days=offset)] = "春节"
    days[qingming] = "清明节"
    days[date(year, 5, 1)] = days[date(year, 5, 2)] = "劳动节"
    days[dragon_boat] = "端午节"
    days[mid_autumn] = "中秋节"
    for d in (1, 2, 3):
        days[date(year, 10, d)] = "国庆节"
    return days


_PACKAGE_YEARS = frozenset(d.year for d in chinese_calendar.holidays)
_PACKAGE_NAMES_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


@dataclass
class WorkCalendar:
    schedules: dict[int, YearSchedule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._holiday: dict[date, str] = {}
        self._workday: set[date] = set()
        for sched in self.schedules.values():
            for span in sched.holidays:
                for d in span.days():
                    self._holiday[d] = span.name
            self._workday.update(sched.workdays)
        last = LAST_COMPUTED_YEAR
        while last + 1 in self.schedules:  # an ops schedule may carry the calendar a year further
            last += 1
        self.first_day, self.last_day = date(FIRST_YEAR, 1, 1), date(last, 12, 31)
        # Per year, the running count of working days up to and including each day of the year,
        # built once on first use: counting and adding working days are lookups and a bisection,
        # not a walk day by day (a sweep asks this for every open application, every hour).
        self._ordinals: dict[int, list[int]] = {}

    @property
    def covered(self) -> str:
        return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"

    def check_date(self, d: date, argument: str) -> None:
        """Refuse a date the calendar cannot answer for (OutOfCalendar naming `argument`)."""
        if not self.first_day <= d <= self.last_day:
            raise OutOfCalendar(
                argument,
                Reason(
                    f"日期 {d.isoformat()} 超出工作日历覆盖范围 {self.covered}",
                    f"date {d.isoformat()} is outside the working-day calendar's range {self.covered}",
                ),
            )

    def check_year(self, year: int, argument: str) -> None:
        if not self.first_day.year <= year <= self.last_day.year:
            raise OutOfCalendar(
                argument,
                Reason(
                    f"年份 {year} 超出工作日历覆盖范围 {self.first_day.year}..{self.last_day.year}",
                    f"year {year} is outside the working-day calendar's range "
                    f"{self.first_day.year}..{self.last_day.year}",
                ),
            )

    @classmethod
    def from_dir(cls, calendar_dir: Path) -> WorkCalendar:
        schedules, problems = load_schedules(calendar_dir)
        if problems:
            raise ConfigInvalid(problems)
        return cls(schedules)

    def source(self, year: int) -> Source:
        if year in self.schedules:
            return Source.config
        if year in _PACKAGE_YEARS:
            return Source.package
        return Source.computed

    def is_workday(self, d: date) -> bool:
        self.check_date(d, "date")
        return self._workday_rule(d)

    def _workday_rule(self, d: date) -> bool:
        """The rule itself (the ordinal tables are built from it); `d` already checked."""
        src = self.source(d.year)
        if d in self._holiday:
            return False
        if d in self._workday:
            return True
        if src is Source.config:
            return d.weekday() < 5
        if src is Source.package:
            return chinese_calendar.is_workday(d)
        return d.weekday() < 5 and d not in statutory_holidays(d.year)

    def _year_ordinals(self, year: int) -> list[int]:
        """`counts[i]` = working days from 1 January of `year` to its i-th day (0-based), inclusive."""
        counts = self._ordinals.get(year)
        if counts is None:
            counts, running, d = [], 0, date(year, 1, 1)
            while d.year == year:
                running += self._workday_rule(d)
                counts.append(running)
                d += timedelta(days=1)
            self._ordinals[year] = counts  # the same list whoever builds it first: no lock needed
        return counts

    def _rank(self, d: date) -> int:
        """Working days from 1 January of d's year to d, inclusive."""
        return self._year_ordinals(d.year)[d.timetuple().tm_yday - 1]

    def holiday_name(self, d: date) -> str | None:
        self.check_date(d, "date")
        if d in self._holiday:
            return self._holiday[d]
        src = self.source(d.year)
        if src is Source.package:
            on_holiday, name = chinese_calendar.get_holiday_detail(d)
            return _PACKAGE_NAMES_ZH.get(name, name) if on_holiday and name else None
        if src is Source.computed:
            return statutory_holidays(d.year).get(d)
        return None

    def add_workdays(self, start: date, n: int) -> tuple[date, bool]:
        """The n-th working day after `start` (start itself not counted; n=0 is `start`).
        Returns the date and whether any year it crossed is provisional. A lookup in the yearly
        ordinal tables, bounded by the covered range: a count that would leave it is refused
        before any table is built, or when the search reaches the range's end (OutOfCalendar
        naming `n`)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self.check_date(start, "start")
        beyond = Reason(
            f"从 {start.isoformat()} 起 {n} 个工作日超出工作日历覆盖范围 {self.covered}",
            f"{n} working days after {start.isoformat()} fall outside the working-day calendar's range {self.covered}",
        )
        if n > (self.last_day - start).days:  # at most one working day per calendar day
            raise OutOfCalendar("n", beyond)
        # The target is the first day whose running count in its year reaches `want`; a year
        # that cannot reach it hands the rest on to the next year.
        year, want = start.year, self._rank(start) + n
        while n:
            counts = self._year_ordinals(year)
            if want <= counts[-1]:
                d = date(year, 1, 1) + timedelta(days=bisect_left(counts, want))
                break
            want -= counts[-1]
            year += 1
            if year > self.last_day.year:
                raise OutOfCalendar("n", beyond)
        else:
            d = start  # n == 0: the start itself, working day or not
        provisional = any(self.source(y) is Source.computed for y in range(start.year, d.year + 1))
        return d, provisional

    def workdays_between(self, a: date, b: date) -> int:
        """Working days in (a, b]; negative when b is before a."""
        self.check_date(a, "a")
        self.check_date(b, "b")
        if b < a:
            return -self.workdays_between(b, a)
        whole_years = sum(self._year_ordinals(y)[-1] for y in range(a.year, b.year))
        return whole_years + self._rank(b) - self._rank(a)

    def provisional_years(self, first: int, last: int) -> list[int]:
        return [y for y in range(first, last + 1) if self.source(y) is Source.computed]
