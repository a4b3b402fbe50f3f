"""The dashboard's daily rollups (`figure_rollups`), kept in the same transaction as the events
that change them, so the dashboard, its CSV, the daily report and /metrics read a period as a sum
over (days × channels × desks × departments) rows — a cost that grows with the period, never with
the number of applications or events in the hub.

Two kinds of row per local day: per application (`department_code` "") keyed by channel and desk,
and per part keyed by department too (a bundle counts once per part, as the dashboard's
department view always did). The counters and what moves them:

- submit: received; instant (every item of the application promised in 0 working days; per
  part, that part's item); trips_desk (received away from the county hall);
- accept: accepted; trips_tolerant (accepted under 容缺, `data.tolerant`);
- decide: completed; on_time (unless `data.on_time` is false);
- deliver: trips_mail (the form asked for 邮寄送达);
- a rating (好差评, by its local day): ratings, rating_sum (the levels), bad_ratings (level 1 or 2);
- the step that first brings an application to decided/issued/delivered: accepted_completed
  +1 on the local day of each of its acceptances (the completion rate is over the day's
  acceptances, decided by the time it is read).

`install` hooks the ORM: every flush that adds such events adds their increments (one upsert per
touched row, in key order so two transactions never wait on each other crosswise). Rows written
with SQLAlchemy Core (the batch intake) call `count_submissions`. `backfill` rebuilds every row
from the events (`hub db upgrade` runs it on a database that has events and no rollups), and
`recompute` gives what the rows should hold for a day range, for the consistency check."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, and_, case, delete, exists, false, func, insert, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, sessionmaker

from hub.catalog.models import Channel
from hub.storage.tables import Application, Counter, Event, FigureRollup, Part, Rating

COUNTERS = (
    "received",
    "accepted",
    "completed",
    "accepted_completed",
    "on_time",
    "instant",
    "trips_desk",
    "trips_tolerant",
    "trips_mail",
    "ratings",
    "rating_sum",
    "bad_ratings",
)
BAD_LEVEL = 2  # hub.ratings.BAD_LEVEL (that module imports the applications layer; this one may not)
DONE = frozenset({"decided", "issued", "delivered"})
COUNTED = ("submit", "accept", "decide", "deliver")
MAIL = "邮寄送达"  # the delivery_method choice that sends the result by post
COUNTY_HALL = Channel.hall.value  # the one channel where the applicant came to the county centre
PER_APPLICATION = ""  # department_code of the per-application rows

Key = tuple[date, str, str, str]  # day, channel, desk_code, department_code
Increments = dict[Key, dict[str, int]]


def local_day(at: datetime, tz: tzinfo) -> date:
    """The county's calendar day of a stored (naive UTC) or aware time."""
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    return aware.astimezone(tz).date()


def _add(out: Increments, key: Key, **counts: int) -> None:
    row = out.setdefault(key, dict.fromkeys(COUNTERS, 0))
    for name, n in counts.items():
        row[name] += n


def _count(
    out: Increments,
    action: str,
    day: date,
    app: Mapping[str, Any],
    parts: list[Mapping[str, Any]],
    data: Mapping[str, Any],
) -> None:
    """One counted event's increments, on the application's row and each of its parts' rows."""
    promised = [p["promised_days"] for p in parts]
    units: list[tuple[str, bool]] = [(PER_APPLICATION, bool(promised) and max(promised) == 0)]
    units += [(p["department_code"], p["promised_days"] == 0) for p in parts]
    for department, instant in units:
        key = (day, app["channel"], app["desk_code"], department)
        if action == "submit":
            _add(out, key, received=1, instant=int(instant), trips_desk=int(app["channel"] != COUNTY_HALL))
        elif action == "accept":
            _add(out, key, accepted=1, trips_tolerant=int(bool(data.get("tolerant"))))
        elif action == "decide":
            _add(out, key, completed=1, on_time=int(data.get("on_time") is not False))
        elif action == "deliver":
            _add(out, key, trips_mail=int((app.get("form") or {}).get("delivery_method") == MAIL))


def _rated(out: Increments, day: date, app: Mapping[str, Any], parts, level: int) -> None:
    for department in [PER_APPLICATION, *(p["department_code"] for p in parts)]:
        key = (day, app["channel"], app["desk_code"], department)
        _add(out, key, ratings=1, rating_sum=level, bad_ratings=int(level <= BAD_LEVEL))


def _completed(out: Increments, accept_days: Iterable[date], app: Mapping[str, Any], parts) -> None:
    for day in accept_days:
        for department in [PER_APPLICATION, *(p["department_code"] for p in parts)]:
            _add(out, (day, app["channel"], app["desk_code"], department), accepted_completed=1)


def apply(conn: Connection, increments: Increments) -> None:
    """Add the increments to their rows (created at zero when new), one upsert per row, in key
    order: two transactions touching the same rows lock them in the same order."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for key in sorted(increments):
        counts = increments[key]
        if not any(counts.values()):
            continue
        day, channel, desk, department = key
        stmt = dialect.insert(FigureRollup).values(
            day=day, channel=channel, desk_code=desk, department_code=department, **counts
        )
        table = FigureRollup.__table__
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "channel", "desk_code", "department_code"],
            set_={name: table.c[name] + stmt.excluded[name] for name in COUNTERS if counts[name]},
        )
        conn.execute(stmt)


# ---------------------------------------------------------------------------- the ORM hook


def _app_values(app: Application) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = {"channel": app.channel, "desk_code": app.desk_code, "form": app.form}
    parts = [{"promised_days": p.promised_days, "department_code": p.department_code} for p in app.parts]
    return values, parts


def _after_flush(session: Session, _context: Any) -> None:
    tz = session.info.get("rollup_tz")
    if tz is None:
        return
    new = [obj for obj in session.new if isinstance(obj, Event)]
    counted = [e for e in new if e.action in COUNTED or _completes(e)]
    rated = [obj for obj in session.new if isinstance(obj, Rating)]
    if not counted and not rated:
        return
    out: Increments = {}
    conn = session.connection()
    for r in rated:
        values, parts = _app_values(session.get(Application, r.application_id))
        _rated(out, local_day(r.rated_at, tz), values, parts, r.level)
    for e in counted:
        app = e.application if e.application is not None else session.get(Application, e.application_id)
        values, parts = _app_values(app)
        if e.action in COUNTED:
            _count(out, e.action, local_day(e.at, tz), values, parts, e.data or {})
        if _completes(e):
            accepted = conn.execute(
                select(Event.at).where(Event.application_id == app.id, Event.action == "accept")
            ).scalars()
            _completed(out, [local_day(at, tz) for at in accepted], values, parts)
    apply(conn, out)


def _completes(e: Event) -> bool:
    return e.to_state in DONE and e.from_state not in DONE


def install(sessions: sessionmaker[Session], tz: tzinfo) -> None:
    """Keep the rollups with every flush of the hub's sessions (`Hub.open` calls this).

    Whether the factory is hooked already is read from its own settings, not from
    `sqlalchemy.event.contains`: that registry is keyed by id() and keeps the keys of collected
    factories, so a new factory at a reused address looked hooked and got no hook at all."""
    hooked = "rollup_tz" in (sessions.kw.get("info") or {})
    sessions.configure(info={"rollup_tz": tz})
    if not hooked:
        sa_event.listen(sessions, "after_flush", _after_flush)


def count_submissions(
    conn: Connection,
    tz: tzinfo,
    submitted: Iterable[tuple[Mapping[str, Any], list[Mapping[str, Any]], datetime]],
) -> None:
    """Applications inserted with Core (the batch intake): (application row, its part rows, the
    submit event's time) each."""
    out: Increments = {}
    for app, parts, at in submitted:
        _count(out, "submit", local_day(at, tz), app, list(parts), {})
    apply(conn, out)


# ---------------------------------------------------------------------------- from the events


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def recompute(conn: Connection, tz: tzinfo, first: date, last: date) -> Increments:
    """What the rows of [first, last] should hold, from the events: a grouped query per day over
    the (action, at) index, plus the acceptances of applications completed since. Memory grows
    with the rows, not with the events."""
    out: Increments = {}
    day = first
    while day <= last:
        lo, hi = _midnight(day, tz), _midnight(day + timedelta(days=1), tz)
        for department in (False, True):
            _recompute_day(conn, out, day, lo, hi, department)
            _recompute_ratings(conn, out, day, lo, hi, department)
        day += timedelta(days=1)
    return {k: v for k, v in out.items() if any(v.values())}


def _flag(action: str, condition: Any) -> Any:
    return func.sum(case((and_(Event.action == action, condition), 1), else_=0))


def _recompute_day(conn: Connection, out: Increments, day: date, lo: datetime, hi: datetime, per_part: bool) -> None:
    if per_part:
        instant = Part.promised_days == 0
        department = Part.department_code
    else:
        # every item instant: no part promised in more than 0 days (probed by the parts'
        # application index for the day's submissions only; an aggregate over every part of the
        # hub would be recomputed for each day)
        slow = aliased(Part)
        instant = ~exists().where(slow.application_id == Application.id, slow.promised_days > 0)
        department = None
    columns = [
        Event.action,
        Application.channel,
        Application.desk_code,
        func.count().label("n"),
        _flag("submit", instant).label("instant"),
        _flag("submit", Application.channel != COUNTY_HALL).label("away"),
        _flag("accept", Application.state.in_(DONE)).label("done"),
        _flag("accept", Event.data["tolerant"].as_boolean()).label("tolerant"),
        _flag("decide", Event.data["on_time"].as_boolean() == false()).label("late"),
        _flag("deliver", Application.form["delivery_method"].as_string() == MAIL).label("mail"),
    ]
    group = [Event.action, Application.channel, Application.desk_code]
    stmt = select(*columns).select_from(Event).join(Application, Application.id == Event.application_id)
    if per_part:
        stmt = stmt.join(Part, Part.application_id == Application.id).add_columns(department.label("department"))
        group.append(department)
    stmt = stmt.where(Event.at >= lo, Event.at < hi, Event.action.in_(COUNTED)).group_by(*group)
    for r in conn.execute(stmt).mappings():
        key = (day, r["channel"], r["desk_code"], r["department"] if per_part else PER_APPLICATION)
        n = r["n"]
        if r["action"] == "submit":
            _add(out, key, received=n, instant=r["instant"] or 0, trips_desk=r["away"] or 0)
        elif r["action"] == "accept":
            _add(out, key, accepted=n, accepted_completed=r["done"] or 0, trips_tolerant=r["tolerant"] or 0)
        elif r["action"] == "decide":
            _add(out, key, completed=n, on_time=n - (r["late"] or 0))
        else:
            _add(out, key, trips_mail=r["mail"] or 0)


def _recompute_ratings(
    conn: Connection, out: Increments, day: date, lo: datetime, hi: datetime, per_part: bool
) -> None:
    group = [Application.channel, Application.desk_code]
    stmt = select(
        *group,
        func.count().label("n"),
        func.sum(Rating.level).label("levels"),
        func.sum(case((Rating.level <= BAD_LEVEL, 1), else_=0)).label("bad"),
    ).join(Application, Application.id == Rating.application_id)
    if per_part:
        stmt = stmt.join(Part, Part.application_id == Application.id).add_columns(
            Part.department_code.label("department")
        )
        group.append(Part.department_code)
    stmt = stmt.where(Rating.rated_at >= lo, Rating.rated_at < hi).group_by(*group)
    for r in conn.execute(stmt).mappings():
        key = (day, r["channel"], r["desk_code"], r["department"] if per_part else PER_APPLICATION)
        _add(out, key, ratings=r["n"], rating_sum=r["levels"] or 0, bad_ratings=r["bad"] or 0)


def stored(conn: Connection, first: date, last: date) -> Increments:
    """The rows of [first, last] as they are stored (zero rows left out)."""
    rows = conn.execute(select(FigureRollup).where(FigureRollup.day >= first, FigureRollup.day <= last)).mappings()
    out: Increments = {}
    for r in rows:
        counts = {name: r[name] for name in COUNTERS}
        if any(counts.values()):
            out[(r["day"], r["channel"], r["desk_code"], r["department_code"])] = counts
    return out


def event_days(conn: Connection, tz: tzinfo) -> tuple[date, date] | None:
    first, last = conn.execute(select(func.min(Event.at), func.max(Event.at))).one()
    if first is None:
        return None
    return local_day(first, tz), local_day(last, tz)


FILLED = "figure_rollups_filled"  # a `counters` row: the rollups were built from the events once


def _hold(conn: Connection) -> None:
    """On PostgreSQL, hold the rollups against writers until this transaction ends: a write
    committed before is in the events the rebuild reads, one after adds to the rebuilt rows —
    never counted twice or lost. (SQLite has one writer at a time anyway.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE figure_rollups IN EXCLUSIVE MODE"))


def _mark_filled(conn: Connection) -> None:
    if conn.execute(select(Counter.value).where(Counter.name == FILLED)).first() is None:
        conn.execute(insert(Counter).values(name=FILLED, value=1))


def backfill(conn: Connection, tz: tzinfo) -> int:
    """Rebuild every row from the events (a month at a time: memory stays flat); returns the
    number of rows written."""
    _hold(conn)
    _mark_filled(conn)
    conn.execute(delete(FigureRollup))
    span = event_days(conn, tz)
    if span is None:
        return 0
    written, start = 0, span[0]
    while start <= span[1]:
        end = min(start + timedelta(days=30), span[1])
        rows = recompute(conn, tz, start, end)
        apply(conn, rows)
        written += len(rows)
        start = end + timedelta(days=1)
    return written


def backfill_if_empty(conn: Connection, tz: tzinfo) -> int | None:
    """`hub db upgrade`: build the rollups from the events once, on a database that has never had
    them built (a marker, not an empty table: a write landing between the migration and this
    would otherwise leave the history uncounted). None when there was nothing to do."""
    _hold(conn)
    if conn.execute(select(Counter.value).where(Counter.name == FILLED)).first() is not None:
        return None
    if conn.execute(select(Event.id).limit(1)).first() is None:
        _mark_filled(conn)  # a new hub: every event to come is counted as it commits
        return None
    return backfill(conn, tz)


def totals(increments: Increments) -> dict[Key, dict[str, int]]:
    """For comparisons: the same mapping with plain dicts (zero rows dropped)."""
    merged: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for key, counts in increments.items():
        for name, n in counts.items():
            merged[key][name] += n
    return {k: dict(v) for k, v in merged.items() if any(v.values())}
