"""The figures supervisors read — the dashboard's (数据看板) for a period and the daily report's
for one day — per channel, desk or department. For the whole hub they are summed from the daily
rollups (`hub.rollups`, kept with the events as they commit): one grouped query over days × keys,
whatever the number of applications; a view scoped to one desk or department reads its own
events. Open overdue and yellow-card work is counted as of today from the open applications
(partial indexes); the trends sum the rollups by week and month.

Definitions (also in docs/airflow.md and docs/dashboard.md), for the local dates of the period:

- received (收件量): applications submitted that day (an intake batch's records count on the day
  they were received by the hub);
- accepted (受理量): applications accepted that day;
- completed (办结量): applications decided that day;
- completion rate (办结率): of the applications accepted that day, the share decided by the time
  the report is made;
- on-time rate (按时办结率): of those completed in the period plus the open work overdue by its end
  (late by definition), the share decided on or before the due date (the daily report's, over
  the day's completed ones only);
- instant ratio (即办件占比): of those received that day, the share whose every item is instant
  (promised in 0 working days).

Per department the unit is the part (one item of an application) rather than the application.
The dashboard adds trips saved (少跑次数) and the ratings (好差评); the daily report
(`hub.supervision.report`) leaves the ratings out. Every definition is in docs/dashboard.md."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from hub import rollups
from hub.applications import Actor, scoped
from hub.catalog.models import CHANNEL_ZH, Channel
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import CLOCKED, PartState, Role
from hub.ratings import BAD_LEVEL, is_late
from hub.storage.tables import Application, Event, FigureRollup, Part, Rating

DONE = ("decided", "issued", "delivered")


@dataclass
class Figures:
    """The service figures of one key (channel, desk, department or all) over a period."""

    received: int = 0
    accepted: int = 0
    completed: int = 0
    accepted_completed: int = 0
    on_time: int = 0
    instant: int = 0
    overdue_open: int = 0  # open work past its due date (red card), due by the period's end

    @property
    def completion_rate(self) -> float | None:
        return round(self.accepted_completed / self.accepted, 4) if self.accepted else None

    @property
    def on_time_rate(self) -> float | None:
        """按时办结率: of the work that came to its end or went past its due date — completed in
        the period, or still open and overdue — the share completed on time. An open overdue case
        counts as late: a rate over completed cases alone reads 100 % while cases lie 52 days late.
        One definition for the dashboard, its CSV and the daily report."""
        judged = self.completed + self.overdue_open
        return round(self.on_time / judged, 4) if judged else None

    @property
    def instant_ratio(self) -> float | None:
        return round(self.instant / self.received, 4) if self.received else None

    def as_dict(self) -> dict:
        return asdict(self) | {
            "completion_rate": self.completion_rate,
            "on_time_rate": self.on_time_rate,
            "instant_ratio": self.instant_ratio,
        }


Dimension = Literal["channel", "desk", "department", "total"]
DIMENSION_ZH: dict[str, str] = {"channel": "渠道", "desk": "窗口", "department": "部门", "total": "合计"}
PeriodKind = Literal["day", "week", "month", "year"]
PERIOD_ZH: dict[str, str] = {"day": "日", "week": "周", "month": "月", "year": "年"}

MAIL = "邮寄送达"  # the delivery_method choice that sends the result by post
COUNTY_HALL = Channel.hall.value  # the one channel where the applicant came to the county centre
COUNTED = ("submit", "accept", "decide", "deliver")
TOTAL_KEY = "total"


@dataclass
class Row(Figures):
    """One line of the dashboard: the daily report's figures over the period, plus trips saved
    and ratings. `key` is a channel, desk or department code, or "total"."""

    key: str = ""
    label: str = ""
    trips_desk: int = 0  # received away from the county hall
    trips_tolerant: int = 0  # accepted under 容缺
    trips_mail: int = 0  # results delivered by post
    ratings: int = 0
    rating_sum: int = 0
    bad_ratings: int = 0
    follow_ups_open: int = 0
    follow_ups_late: int = 0
    due_soon: int = 0  # open work with a yellow card (as of today)
    max_overdue_days: int = 0  # calendar days the longest-overdue open case is late

    @property
    def trips_saved(self) -> int:
        return self.trips_desk + self.trips_tolerant + self.trips_mail

    @property
    def rating_average(self) -> float | None:
        return round(self.rating_sum / self.ratings, 2) if self.ratings else None

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | {
            "key": self.key,
            "label": self.label,
            "trips_saved": self.trips_saved,
            "rating_average": self.rating_average,
        }


# ---------------------------------------------------------------------------- periods


def period_bounds(kind: str, today: date) -> tuple[date, date]:
    """The calendar day, week (Monday to Sunday), month or year holding `today`, both ends
    included. The end may lie ahead of today: the figures are what happened so far."""
    if kind == "day":
        return today, today
    if kind == "week":
        start = today - timedelta(days=today.weekday())
        return start, start + timedelta(days=6)
    if kind == "month":
        start = today.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        return start, following - timedelta(days=1)
    if kind == "year":
        return date(today.year, 1, 1), date(today.year, 12, 31)
    raise InvalidInput.field(
        "period", f"统计周期应为 {'、'.join(PERIOD_ZH)} 之一", "period must be day, week, month or year"
    )


def utc_bounds(hub: Hub, start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, day after end 00:00) in the county's time zone, as the naive UTC the
    database stores: an event at 23:30 local on day D belongs to D."""
    return _midnight(hub, start), _midnight(hub, end + timedelta(days=1))


def _midnight(hub: Hub, day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=hub.settings.tz).astimezone(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------- figures


def figures(
    hub: Hub, start: date, end: date, by: str, *, actor: Actor | None = None, ratings: bool = True
) -> list[Row]:
    """The rows for [start, end] grouped `by` channel, desk or department (every configured one,
    in catalogue order, zeros included), then the total row; `by="total"` gives the total row
    alone. Given an actor, only the applications they may see are counted. `ratings=False`
    leaves the ratings' queries out (their fields stay zero): the daily report does not show them.
    Open overdue work is always counted: the on-time rate of the dashboard and of the daily
    report must be the same figure."""
    if by not in DIMENSION_ZH:
        raise InvalidInput.field(
            "by", "分组应为 渠道(channel)、窗口(desk)、部门(department) 或 合计(total)", "unknown dimension"
        )
    if end < start:
        raise InvalidInput.field("end", "结束日期不能早于开始日期", "end is before start")
    lo, hi = utc_bounds(hub, start, end)
    today = hub.today()
    with hub.sessions() as session:
        grouped = _rows(session, hub, by, lo, hi, today, actor, ratings, open_work=True)
        # every application has one channel and one desk, so their rows add up to the total; a
        # bundle has parts in several departments, so per department the total is counted apart
        if by == "department":
            total_row = (
                _rows(session, hub, TOTAL_KEY, lo, hi, today, actor, ratings, open_work=True).get(TOTAL_KEY) or Row()
            )
        else:
            total_row = _sum(grouped.values())
    total_row.key, total_row.label = TOTAL_KEY, DIMENSION_ZH[TOTAL_KEY]
    if by == TOTAL_KEY:
        return [total_row]
    rows = []
    for key in _ordered_keys(hub, by, grouped):
        row = grouped.get(key) or Row()
        row.key, row.label = key, label_of(hub, by, key)
        rows.append(row)
    return [*rows, total_row]


def _sum(rows: Iterable[Row]) -> Row:
    total = Row()
    for row in rows:
        for f in fields(Row):
            if f.name == "max_overdue_days":
                total.max_overdue_days = max(total.max_overdue_days, row.max_overdue_days)
            elif f.type == "int":
                setattr(total, f.name, getattr(total, f.name) + getattr(row, f.name))
    return total


def label_of(hub: Hub, by: str, key: str) -> str:
    """The Chinese name of a channel, desk or department code (the code itself if unknown)."""
    if by == "channel":
        return CHANNEL_ZH.get(key, key)
    if by == "desk":
        desk = hub.catalog.desks.get(key)
        return desk.name if desk else key
    if by == "department":
        dept = hub.catalog.departments.get(key)
        return dept.name if dept else key
    return DIMENSION_ZH.get(key, key)


def _ordered_keys(hub: Hub, by: str, seen: dict[str, Row]) -> list[str]:
    """Every configured key (so a quiet desk shows as zeros), then any the data holds besides
    (a desk since removed from the configuration)."""
    if by == "channel":
        used = {d.channel.value for d in hub.catalog.desks.values()}
        known = [c.value for c in Channel if c.value in used]
    elif by == "desk":
        known = list(hub.catalog.desks)
    else:
        known = list(hub.catalog.departments)
    return known + sorted(k for k in seen if k not in known)


def _key_column(by: str) -> ColumnElement[str]:
    if by == "channel":
        return Application.channel
    if by == "desk":
        return Application.desk_code
    return Part.department_code


def _visible(actor: Actor) -> ColumnElement[bool]:
    """The actor's scope as a plain IN over the ids they may see: uncorrelated, so the scope's
    own EXISTS (for officers) cannot tie itself to a joined part."""
    return Application.id.in_(scoped(select(Application.id), actor).correlate(None).scalar_subquery())


def _grouped(stmt: Select, by: str, actor: Actor | None) -> Select:
    """Add the grouping key (department: one row per part, joined here) and the actor's scope."""
    if by == "department":
        stmt = stmt.join(Part, Part.application_id == Application.id)
    if actor is not None:
        stmt = stmt.where(_visible(actor))
    if by == TOTAL_KEY:
        return stmt
    key = _key_column(by)
    return stmt.add_columns(key.label("key")).group_by(key)


def _rows(
    session: Session,
    hub: Hub,
    by: str,
    lo: datetime,
    hi: datetime,
    today: date,
    actor: Actor | None,
    ratings: bool,
    open_work: bool = True,
) -> dict[str, Row]:
    rows: dict[str, Row] = defaultdict(Row)
    if actor is None or actor.role is Role.supervisor:  # the whole hub: its rollups
        _add_rollups(session, rows, by, *_local_days(hub, lo, hi))
    else:  # one desk's or department's scope: its own events (a small share of the hub's)
        _add_events(session, rows, by, lo, hi, actor)
    if open_work:
        _add_open_work(session, rows, hub, by, _local_days(hub, lo, hi)[1], today, actor)
    if ratings:
        # the whole hub's rating counts come with the rollups; the follow-ups are judged live
        counts = not (actor is None or actor.role is Role.supervisor)
        _add_ratings(session, rows, hub, by, lo, hi, today, actor, counts=counts)
    return rows


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _flag_on(action: str, condition: ColumnElement[bool]) -> ColumnElement[int]:
    """Count `condition` on one action's events only: the JSON is not even read for the others."""
    return _flag(and_(Event.action == action, condition))


def _local_days(hub: Hub, lo: datetime, hi: datetime) -> tuple[date, date]:
    """The local days [first, last] that `utc_bounds` turned into [lo, hi)."""
    first = lo.replace(tzinfo=UTC).astimezone(hub.settings.tz).date()
    return first, hi.replace(tzinfo=UTC).astimezone(hub.settings.tz).date() - timedelta(days=1)


def _rollup_key(by: str) -> ColumnElement[str]:
    return {"channel": FigureRollup.channel, "desk": FigureRollup.desk_code}.get(by, FigureRollup.department_code)


def _add_rollups(session: Session, rows: dict[str, Row], by: str, first: date, last: date) -> None:
    """The period's counts from the daily rollups (hub.rollups): one grouped query over the
    (day, …) primary key, rows = days × keys, whatever the size of the hub."""
    sums = [func.coalesce(func.sum(getattr(FigureRollup, name)), 0).label(name) for name in rollups.COUNTERS]
    stmt = select(*sums).where(FigureRollup.day >= first, FigureRollup.day <= last)
    if by == "department":
        stmt = stmt.where(FigureRollup.department_code != rollups.PER_APPLICATION)
    else:
        stmt = stmt.where(FigureRollup.department_code == rollups.PER_APPLICATION)
    if by != TOTAL_KEY:
        key = _rollup_key(by)
        stmt = stmt.add_columns(key.label("key")).group_by(key)
    for r in session.execute(stmt).mappings():
        row = rows[r.get("key", TOTAL_KEY)]
        for name in rollups.COUNTERS:
            setattr(row, name, getattr(row, name) + r[name])


def open_overdue(today: date) -> ColumnElement[bool]:
    """Red card (hub.timelimits.signal) in SQL: the last counted day — today, or the day 补正
    stopped the clock — is past the due date."""
    return or_(
        and_(Application.paused_since.is_(None), Application.due_date < today),
        Application.paused_since > Application.due_date,
    )


def clocked() -> ColumnElement[bool]:
    return and_(
        Application.state.in_([s.value for s in CLOCKED]),
        Application.accepted_on.is_not(None),
        Application.due_date.is_not(None),
    )


def yellow_card(hub: Hub, today: date) -> ColumnElement[bool]:
    """Yellow card (hub.timelimits.signal) in SQL: the clock runs, the due date is before the
    (yellow_days + 1)-th working day from today, for work promised in more than yellow_days —
    the EXISTS is only probed for the few rows the due-date range leaves."""
    yellow_days = hub.settings.yellow_days
    horizon, _ = hub.calendar.add_workdays(today, yellow_days + 1)
    long = aliased(Part)
    return and_(
        Application.paused_since.is_(None),
        Application.due_date >= today,
        Application.due_date < horizon,
        exists().where(
            long.application_id == Application.id, long.promised_days + Application.paused_workdays > yellow_days
        ),
    )


OPEN_PART = (PartState.pending.value, PartState.in_review.value)


def open_work_stmt(by: str, actor: Actor | None) -> Select:
    """Count and oldest due date of clocked applications (per department: their open parts),
    grouped `by`; the caller adds the card's condition."""
    stmt = select(func.count().label("n"), func.min(Application.due_date).label("oldest")).where(clocked())
    if by == "department":  # the parts still to be decided, by their department
        stmt = stmt.join(Part, Part.application_id == Application.id).where(Part.state.in_(OPEN_PART))
    if actor is not None:
        stmt = stmt.where(_visible(actor))
    if by != TOTAL_KEY:
        key = _key_column(by)
        stmt = stmt.add_columns(key.label("key")).group_by(key)
    return stmt


def _add_open_work(
    session: Session, rows: dict[str, Row], hub: Hub, by: str, last: date, today: date, actor: Actor | None
) -> None:
    """Open overdue (red, due by the period's last day) and yellow cards, as of today: two
    grouped queries over the open, clocked applications (the state and due-date indexes)."""
    red = open_work_stmt(by, actor).where(open_overdue(today), Application.due_date <= last)
    for r in session.execute(red).mappings():
        row = rows[r.get("key", TOTAL_KEY)]
        row.overdue_open += r["n"]
        if r["oldest"] is not None:
            row.max_overdue_days = max(row.max_overdue_days, (today - r["oldest"]).days)
    for r in session.execute(open_work_stmt(by, actor).where(yellow_card(hub, today))).mappings():
        rows[r.get("key", TOTAL_KEY)].due_soon += r["n"]


@dataclass
class OpenWork:
    """Open work by department and item (事项): red and yellow cards as of today."""

    department: str
    department_name: str
    item: str
    title: str
    overdue_open: int = 0
    due_soon: int = 0
    max_overdue_days: int = 0


def open_work(hub: Hub, *, actor: Actor | None = None) -> list[OpenWork]:
    """Every department × item with open overdue or yellow-card parts, the most overdue first:
    two grouped queries over the open, clocked applications' open parts."""
    today = hub.today()
    out: dict[tuple[str, str], OpenWork] = {}

    def stmt(condition: ColumnElement[bool]) -> Select:
        q = (
            select(
                Part.department_code,
                Part.item_code,
                func.count().label("n"),
                func.min(Application.due_date).label("oldest"),
            )
            .join(Application, Application.id == Part.application_id)
            .where(clocked(), Part.state.in_(OPEN_PART), condition)
            .group_by(Part.department_code, Part.item_code)
        )
        return q.where(_visible(actor)) if actor is not None else q

    with hub.sessions() as session:
        for kind, condition in (("red", open_overdue(today)), ("yellow", yellow_card(hub, today))):
            for r in session.execute(stmt(condition)).mappings():
                w = out.get((r["department_code"], r["item_code"]))
                if w is None:
                    name = label_of(hub, "department", r["department_code"])
                    item = hub.catalog.items.get(r["item_code"])  # a partner's item: its code
                    w = out[(r["department_code"], r["item_code"])] = OpenWork(
                        r["department_code"], name, r["item_code"], item.name if item else r["item_code"]
                    )
                if kind == "red":
                    w.overdue_open += r["n"]
                    w.max_overdue_days = (today - r["oldest"]).days
                else:
                    w.due_soon += r["n"]
    return sorted(out.values(), key=lambda w: (-w.overdue_open, -w.max_overdue_days, -w.due_soon, w.department, w.item))


def _add_events(session: Session, rows: dict[str, Row], by: str, lo: datetime, hi: datetime, actor) -> None:
    """One grouped query over the period's receipt, acceptance, decision and delivery events."""
    if by == "department":
        instant = Part.promised_days == 0  # per part
    else:
        # an application is instant when no item of it is promised in more than 0 days
        slow = aliased(Part)
        instant = ~exists().where(slow.application_id == Application.id, slow.promised_days > 0)
    stmt = (
        select(
            Event.action,
            func.count().label("n"),
            _flag_on("submit", instant).label("instant"),
            _flag_on("submit", Application.channel != COUNTY_HALL).label("away"),
            _flag_on("accept", Application.state.in_(DONE)).label("done"),
            _flag_on("accept", Event.data["tolerant"].as_boolean()).label("tolerant"),
            # the hub writes on_time on every decide; an event without it counts as on time, as in the report
            _flag_on("decide", Event.data["on_time"].as_boolean() == false()).label("late"),
            _flag_on("deliver", Application.form["delivery_method"].as_string() == MAIL).label("mail"),
        )
        .join(Application, Application.id == Event.application_id)
        .where(Event.at >= lo, Event.at < hi, Event.action.in_(COUNTED))
        .group_by(Event.action)
    )
    for r in session.execute(_grouped(stmt, by, actor)).mappings():
        row = rows[r.get("key", TOTAL_KEY)]
        n = r["n"]
        if r["action"] == "submit":
            row.received += n
            row.instant += r["instant"] or 0
            row.trips_desk += r["away"] or 0
        elif r["action"] == "accept":
            row.accepted += n
            row.accepted_completed += r["done"] or 0
            row.trips_tolerant += r["tolerant"] or 0
        elif r["action"] == "decide":
            row.completed += n
            row.on_time += n - (r["late"] or 0)
        else:  # deliver
            row.trips_mail += r["mail"] or 0


def _add_ratings(
    session: Session,
    rows: dict[str, Row],
    hub: Hub,
    by: str,
    lo: datetime,
    hi: datetime,
    today: date,
    actor,
    *,
    counts: bool = True,
) -> None:
    """Ratings given in the period: counts in SQL; the follow-ups of the bad ones (few) are
    judged late or not in Python, where local dates and working days are at hand."""
    in_period = (Rating.rated_at >= lo, Rating.rated_at < hi)
    stmt = (
        select(func.count().label("n"), func.sum(Rating.level).label("levels"), _flag(Rating.level <= BAD_LEVEL))
        .join(Application, Application.id == Rating.application_id)
        .where(*in_period)
    )
    for r in session.execute(_grouped(stmt, by, actor)).all() if counts else ():
        row = rows[r.key if by != TOTAL_KEY else TOTAL_KEY]
        row.ratings += r.n
        row.rating_sum += r.levels or 0
        row.bad_ratings += r[2] or 0
    stmt = (
        select(Rating.follow_up_due, Rating.follow_up_closed_at)
        .join(Application, Application.id == Rating.application_id)
        .where(*in_period, Rating.follow_up_due.is_not(None))
    )
    if by != TOTAL_KEY:  # one row per follow-up (per part for departments), not grouped
        stmt = stmt.add_columns(_key_column(by).label("key"))
    if by == "department":
        stmt = stmt.join(Part, Part.application_id == Application.id)
    if actor is not None:
        stmt = stmt.where(_visible(actor))
    for r in session.execute(stmt).mappings():
        row = rows[r.get("key", TOTAL_KEY)]
        closed = r["follow_up_closed_at"]
        closed_on = closed.replace(tzinfo=UTC).astimezone(hub.settings.tz).date() if closed else None
        row.follow_ups_open += closed is None
        row.follow_ups_late += is_late(r["follow_up_due"], closed_on, today)


# ---------------------------------------------------------------------------- export

# (field, Chinese, English): the dashboard's table and its CSV, column for column
COLUMNS: list[tuple[str, str, str]] = [
    ("key", "代码", "key"),
    ("label", "名称", "label"),
    ("received", "收件量", "received"),
    ("accepted", "受理量", "accepted"),
    ("completed", "办结量", "completed"),
    ("completion_rate", "办结率", "completion rate"),
    ("on_time_rate", "按时办结率", "on-time rate"),
    ("overdue_open", "超期在办", "open overdue"),
    ("max_overdue_days", "最长超期天数", "longest overdue days"),
    ("due_soon", "临期黄牌", "yellow cards"),
    ("instant_ratio", "即办件占比", "instant ratio"),
    ("trips_saved", "少跑次数", "trips saved"),
    ("trips_desk", "就近收件", "received near home"),
    ("trips_tolerant", "容缺受理", "tolerant acceptance"),
    ("trips_mail", "邮寄送达", "delivered by post"),
    ("ratings", "评价数", "ratings"),
    ("rating_average", "平均评分", "average rating"),
    ("bad_ratings", "差评数", "bad ratings"),
    ("follow_ups_open", "待整改", "open follow-ups"),
    ("follow_ups_late", "超期整改", "late follow-ups"),
]
RATES = frozenset({"completion_rate", "on_time_rate", "instant_ratio"})


def csv_value(row: Row, name: str) -> str:
    """A cell of the CSV: rates as fractions (0.6667), no figure as empty."""
    value = row.as_dict()[name]
    return "" if value is None else str(value)


def shown(row: Row, name: str) -> str:
    """The same cell on the page: rates as percentages (66.7%), no figure as "—"."""
    value = row.as_dict()[name]
    if value is None:
        return "—"
    if name in RATES:
        return f"{value * 100:.1f}%"
    if name == "rating_average":
        return f"{value:.2f}"
    return str(value)


# ---------------------------------------------------------------------------- trends


@dataclass
class TrendPoint:
    """One week (from its Monday) or month of the whole hub's counts, from the rollups."""

    label: str
    start: date
    end: date
    received: int = 0
    accepted: int = 0
    completed: int = 0
    on_time: int = 0

    @property
    def late(self) -> int:
        return self.completed - self.on_time

    @property
    def on_time_share(self) -> float | None:
        """Of the completed ones, the share on time (open overdue work has no past to count in)."""
        return round(self.on_time / self.completed, 4) if self.completed else None


def _buckets(kind: str, end: date, count: int) -> list[tuple[date, date]]:
    out = []
    if kind == "week":
        monday = end - timedelta(days=end.weekday())
        for i in range(count - 1, -1, -1):
            start = monday - timedelta(weeks=i)
            out.append((start, start + timedelta(days=6)))
    else:
        first = end.replace(day=1)
        for i in range(count - 1, -1, -1):
            y, m = divmod(first.month - 1 - i, 12)
            start = date(first.year + y, m + 1, 1)
            out.append(period_bounds("month", start))
    return out


def trend(hub: Hub, kind: str, end: date, count: int = 12) -> list[TrendPoint]:
    """The last `count` weeks or months up to the one holding `end`: one grouped query over the
    rollups' days (at most a year of rows per key), bucketed here."""
    if kind not in ("week", "month"):
        raise InvalidInput.field("trend", "趋势应按周或按月", "trend must be week or month")
    buckets = _buckets(kind, end, count)
    points = [
        TrendPoint(label=f"{a.month}/{a.day}" if kind == "week" else f"{a.year}-{a.month:02d}", start=a, end=b)
        for a, b in buckets
    ]
    sums = [func.sum(getattr(FigureRollup, n)).label(n) for n in ("received", "accepted", "completed", "on_time")]
    stmt = (
        select(FigureRollup.day, *sums)
        .where(
            FigureRollup.day >= buckets[0][0],
            FigureRollup.day <= buckets[-1][1],
            FigureRollup.department_code == rollups.PER_APPLICATION,
        )
        .group_by(FigureRollup.day)
    )
    with hub.sessions() as session:
        for r in session.execute(stmt).mappings():
            for p in points:
                if p.start <= r["day"] <= p.end:
                    p.received += r["received"] or 0
                    p.accepted += r["accepted"] or 0
                    p.completed += r["completed"] or 0
                    p.on_time += r["on_time"] or 0
                    break
    return points


def to_csv(rows: list[Row]) -> str:
    """The rows as CSV text with bilingual headers, starting with a UTF-8 byte order mark:
    without it Excel reads the file as the local ANSI code page and the Chinese is garbled.
    Encode the result as UTF-8 (not utf-8-sig, or the mark is doubled)."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow([f"{zh} {en}" for _, zh, en in COLUMNS])
    for row in rows:
        w.writerow([csv_value(row, name) for name, _, _ in COLUMNS])
    return out.getvalue()
