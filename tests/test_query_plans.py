"""Indexes chosen from plans: the hub's list, inbox, detail, sweep and warnings queries — the SQL
they really send, captured while they run — are EXPLAINed on a database filled like a county's
year (mostly finished cases, a few clocked, some provisional, a few open commitments, ten
departments), analysed, and fail when a plan reads all of applications, application_parts or
events.

On PostgreSQL (required under CI) that is a `Seq Scan` with `enable_seqscan` off: a few thousand
rows are too few for the planner to prefer an index on its own, so it is asked whether any index
could serve — a Seq Scan then means none can, which at 200,000 applications is a full read. On
SQLite it is a bare `SCAN` of the table (no index named), planned from ANALYZE's statistics."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url

from hub import applications as svc
from hub.applications.listing import ListQuery, find_applications
from hub.context import Hub
from hub.home import write_home
from hub.jobs.deadlines import sweep_deadlines
from hub.lifecycle import CLOCKED, Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import CLOCKED_SQL, Application, Deficiency, Event, Part
from hub.supervision.alerts import iter_warnings
from hub.worklists import desk_home, inbox, open_by_department
from tests.conftest import PG_URL, Clock, _pg_db_url, make_id

N = 3000  # applications
TODAY = date(2026, 11, 20)
SUBJECTS = [("GG00501000", "老年人优待证办理", 0), ("GG00401001", "住房公积金提取", 3)]
DEPARTMENTS = ["ts-gjj", "ts-mzj", "ts-ybj", *(f"ts-d{k}" for k in range(7))]  # a county has many
DESKS = ["hall-county", "bank-xiahong", "bank-baizhang", "township-dongxi", "enclave-hangzhou", "enclave-shanghai"]
BIG = ("applications", "application_parts", "events")

SUPERVISOR = svc.Actor(name="督查", role=Role.supervisor)
TELLER = svc.Actor(name="柜员", role=Role.teller, desk="bank-xiahong")
OFFICER = svc.Actor(name="审批员", role=Role.officer, department="ts-gjj")


def _state(i: int) -> str:
    k = i % 100
    if k < 80:
        return ("delivered", "decided", "issued")[i % 3]
    if k < 88:
        return ("accepted", "in_review", "supplement_requested")[i % 3]
    return ("received", "pre_reviewed", "rejected", "withdrawn")[k % 4]


def _fill(url: str) -> None:
    """A year of applications by bulk insert (the life cycle itself is tested elsewhere)."""
    rng = random.Random(21)
    start = datetime(2025, 11, 20, 1, tzinfo=UTC).replace(tzinfo=None)
    apps, parts, events, owed = [], [], [], []
    for i in range(1, N + 1):
        code, title, days = SUBJECTS[i % 2]
        department = DEPARTMENTS[i % len(DEPARTMENTS)]
        at = start + timedelta(minutes=87 * i)
        state = _state(i)
        accepted = state not in ("received", "pre_reviewed", "rejected", "withdrawn")
        due = at.date() + timedelta(days=days + rng.randrange(-3, 30)) if accepted else None
        apps.append(
            {
                "id": i,
                "number": f"330329-{at:%Y%m%d}-{i:05d}",
                "kind": "item",
                "subject_code": code,
                "title": title,
                "channel": "hall",
                "desk_code": DESKS[i % len(DESKS)],
                "collecting_division": "330329",
                "deciding_division": "330329",
                "applicant_type": "person",
                "applicant_name": f"申请人{i % 1500}",
                "applicant_id": make_id("330329", date(1950, 1, 1) + timedelta(days=i), f"{i % 1000:03d}"),
                "form": {},
                "state": state,
                "signal": "green" if state in CLOCKED else None,
                "accepted_on": at.date() if accepted else None,
                "due_date": due,
                "due_provisional": i % 500 == 0,
                "paused_since": None,
                "paused_workdays": 0,
                "chain_head": "0" * 64,
                "created_at": at,
                "updated_at": at,
            }
        )
        parts.append(
            {
                "id": str(uuid.UUID(int=i)),
                "application_id": i,
                "position": 0,
                "item_code": code,
                "title": title,
                "department_code": department,
                "connection": "none",
                "state": "approved" if state in ("delivered", "decided", "issued") else "pending",
                "promised_days": days,
                "due_date": due,
                "decided_at": None,
            }
        )
        for seq, action in enumerate(("create", "accept", "approve"), start=1):
            events.append(
                {
                    "application_id": i,
                    "seq": seq,
                    "action": action,
                    "actor": "t",
                    "role": "system",
                    "at": at + timedelta(hours=seq),
                    "data": {},
                    "prev_hash": "0" * 64,
                    "hash": f"{i:032x}{seq:032x}",
                }
            )
        if i % 20 == 0:
            owed.append(
                {
                    "application_id": i,
                    "material": "房屋租赁合同",
                    "due_date": at.date() + timedelta(days=5),
                    "created_at": at,
                    "closed_at": None if i % 200 == 0 else at + timedelta(days=2),
                }
            )
    engine = make_engine(url)
    with engine.begin() as conn:
        for table, rows in ((Application, apps), (Part, parts), (Event, events), (Deficiency, owed)):
            conn.execute(insert(table), rows)
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('applications_id_seq', :n)"), {"n": N})
        conn.execute(text("ANALYZE"))
    engine.dispose()


@pytest.fixture(scope="module")
def big(backend: str, _pg_template: str | None, tmp_path_factory) -> Iterator[Hub]:
    root: Path = tmp_path_factory.mktemp("plans")
    if backend == "sqlite":
        url = f"sqlite:///{root / 'hub.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
    else:
        name = f"{_pg_template}_plans_{uuid.uuid4().hex[:6]}"
        admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"'))
        url = _pg_db_url(name)
    _fill(url)
    hub = Hub.open(write_home(root / "home"), database_url=url, clock=Clock(datetime(2026, 11, 20, 2, tzinfo=UTC)))
    yield hub
    hub.close()
    if backend != "sqlite":
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _captured(hub: Hub, run: Callable[[], object]) -> list[tuple[str, object]]:
    """The SELECTs `run` sends, each text once, with the parameters it was first sent with."""
    seen: dict[str, object] = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            seen.setdefault(statement, parameters)

    event.listen(hub.engine, "before_cursor_execute", before)
    try:
        run()
    finally:
        event.remove(hub.engine, "before_cursor_execute", before)
    return list(seen.items())


def _plan(hub: Hub, statement: str, parameters: object) -> str:
    with hub.engine.connect() as conn:
        if hub.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(r[-1]) for r in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")  # could an index serve? (see the docstring)
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))


def _full_scans(hub: Hub, plan: str, statement: str) -> list[str]:
    if hub.engine.dialect.name == "postgresql":
        return re.findall(r"Seq Scan on ({})\b".format("|".join(BIG)), plan)
    # SQLite: a SCAN with no index named — unless it walks the table in rowid order up to a
    # LIMIT (the newest first), which stops after the page, as PostgreSQL's backward pkey scan does
    scans = re.findall(r"^\s*SCAN ({})\s*$".format("|".join(BIG)), plan, flags=re.MULTILINE)
    return [t for t in scans if not re.search(rf"ORDER BY {t}\.id( DESC)?\s+LIMIT", statement)]


def _number(hub: Hub, i: int) -> str:
    with hub.sessions() as session:
        return session.scalar(text("SELECT number FROM applications WHERE id = :i"), {"i": i})


def _find(hub: Hub, actor: svc.Actor, **filters) -> Callable[[], object]:
    def run():
        with hub.sessions() as session:
            return find_applications(session, actor, ListQuery.parse(**filters), hub.settings.tz)

    return run


def _cases(hub: Hub) -> dict[str, Callable[[], object]]:
    some = _number(hub, 2320)  # a ts-gjj case (i % 10 == 0)
    return {
        "sweep": lambda: sweep_deadlines(hub),
        "warnings (supervisor)": lambda: list(iter_warnings(hub, SUPERVISOR)),
        "warnings (officer)": lambda: list(iter_warnings(hub, OFFICER)),
        "officer inbox": lambda: inbox(hub, OFFICER),
        "officer inbox, due first": lambda: inbox(hub, OFFICER, tab="in_review", sort="due"),
        "desk home": lambda: desk_home(hub, TELLER),
        "supervisor home": lambda: open_by_department(hub, SUPERVISOR),
        "detail": lambda: svc.read(hub, some, OFFICER),
        "list (supervisor)": _find(hub, SUPERVISOR),
        "list (teller)": _find(hub, TELLER),
        "list by state": _find(hub, SUPERVISOR, state="supplement_requested"),
        "list by desk": _find(hub, SUPERVISOR, desk="bank-baizhang", state="accepted"),
        "list by number": _find(hub, SUPERVISOR, number=some),
        "list by name": _find(hub, SUPERVISOR, applicant_name="申请人77"),
        "list by ID number": _find(hub, SUPERVISOR, applicant_id=make_id("330329", date(1955, 1, 1), "123")),
        "list by search box": _find(hub, OFFICER, q="申请人77"),
        "list by search box (ID)": _find(hub, SUPERVISOR, q=make_id("330329", date(1955, 1, 1), "123")),
    }


def test_the_main_queries_never_read_a_whole_big_table(big: Hub):
    failures, explained = [], 0
    for name, run in _cases(big).items():
        queries = _captured(big, run)
        assert queries, f"{name}: no query captured"
        for statement, parameters in queries:
            plan = _plan(big, statement, parameters)
            explained += 1
            if scans := _full_scans(big, plan, statement):
                shown = re.sub(r"SELECT .*? FROM", "SELECT … FROM", " ".join(statement.split()))[:600]
                failures.append(f"{name}: full scan of {', '.join(scans)}\n{shown}\n{plan[:2000]}")
    assert explained >= 15
    assert not failures, "\n\n".join(failures)


# The index each query family was given (or already had): a plan that stops naming it has lost it,
# even where the planner found another index to walk instead of the table.
EXPECTED = {
    "sweep": ["ix_applications_clocked", "ix_applications_provisional", "ix_deficiencies_open"],
    "warnings (supervisor)": ["ix_applications_clocked", "ix_applications_provisional", "ix_deficiencies_open"],
    "detail": ["uq_applications_number", "ix_application_parts_application_id", "uq_events_application_seq"],
    "list by number": ["uq_applications_number"],
    "list by name": ["ix_applications_applicant_name"],
    "list by ID number": ["ix_applications_applicant_id"],
    "list by search box (ID)": [
        "uq_applications_number",
        "ix_applications_applicant_name",
        "ix_applications_applicant_id",
    ],
}


def test_each_query_family_uses_its_index(big: Hub):
    missing = []
    for name, run in _cases(big).items():
        plans = "\n".join(_plan(big, s, p) for s, p in _captured(big, run))
        missing += [f"{name}: {index}" for index in EXPECTED.get(name, []) if _named(big, index) not in plans]
    assert not missing, "\n".join(missing)


def _named(hub: Hub, index: str) -> str:
    """SQLite names a unique constraint's index itself (sqlite_autoindex_TABLE_N)."""
    if hub.engine.dialect.name == "sqlite" and index.startswith("uq_"):
        return {
            "uq_applications_number": "sqlite_autoindex_applications_",
            "uq_events_application_seq": "sqlite_autoindex_events_",
        }[index]
    return index


def test_the_detector_sees_a_full_scan(big: Hub):
    # a query no index can serve: the check above would catch the same plan in a hub query
    statement = (
        "SELECT * FROM applications WHERE chain_head LIKE '%%ab'"
        if _pg(big)
        else ("SELECT * FROM applications WHERE chain_head LIKE '%ab'")
    )
    plan = _plan(big, statement, {} if _pg(big) else ())
    assert _full_scans(big, plan, statement) == ["applications"], plan


def test_the_sweeps_walk_uses_the_clocked_index(big: Hub):
    queries = _captured(big, lambda: sweep_deadlines(big))
    walks = [(s, p) for s, p in queries if "applications.signal IS NULL" in s]  # the walk itself
    assert walks, [s for s, _ in queries]
    for statement, parameters in walks:
        plan = _plan(big, statement, parameters)
        assert "ix_applications_clocked" in plan, plan  # the clocked applications by id, nothing else


def test_the_clocked_index_predicate_is_the_clocked_states():
    listed = set(re.findall(r"'(\w+)'", CLOCKED_SQL))
    assert listed == {s.value for s in CLOCKED}


def _pg(hub: Hub) -> bool:
    return hub.engine.dialect.name == "postgresql"
