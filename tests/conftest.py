"""Fixtures: a hub home from the sample config, a database per test on each backend, a clock the
test controls. The suite runs on SQLite; every test that uses the `backend` fixture (directly or
through `db_url` or `hub`) also runs on PostgreSQL when HUB_TEST_DATABASE_URL points at a server,
and under CI=true that server is required.

The `postgres` marker is not written by hand: it is put on the PostgreSQL variant of each such
test (`test_x[postgresql]`), so `pytest -m postgres` runs just those and `pytest -m "not postgres"`
the SQLite run. A hand-written `@pytest.mark.postgres` is refused: it would claim a PostgreSQL run
that the fixtures, not the marker, decide (and would mark the SQLite variant too)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.context import Hub
from hub.home import write_home
from hub.ids import id_check_digit
from hub.storage import migrate
from hub.storage.engine import make_engine

PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI") == "true"
CST = ZoneInfo("Asia/Shanghai")


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI=true but HUB_TEST_DATABASE_URL is not set: the PostgreSQL run would be missing")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under CI a skipped test is a test that did not run: fail the run instead of staying green.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped — failing the run", red=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["sqlite", "postgresql"] if PG_URL else ["sqlite"], scope="session")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    # A hand-written marker fails the collection of its file (an error every run shows: under
    # pytest-xdist a UsageError raised in a worker is lost and the run only says "no tests ran").
    # This runs before pytest_itemcollected below adds the marker to the PostgreSQL variants.
    report = yield
    written = [x.nodeid for x in report.result or () if isinstance(x, pytest.Item) and x.get_closest_marker("postgres")]
    if written and report.outcome == "passed":
        report.outcome = "failed"
        report.longrepr = "\n".join(
            f"{nodeid}: @pytest.mark.postgres is set by tests/conftest.py on the PostgreSQL variant of every "
            "test that uses the `backend`, `db_url` or `hub` fixture; do not write it by hand"
            for nodeid in written
        )
    return report


def pytest_itemcollected(item: pytest.Item) -> None:
    # before `-m` deselects: the marker must be on the item when the selection is made
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "postgresql":
        item.add_marker(pytest.mark.postgres)


# Files whose tests take minutes (the whole topology, Airflow runs, the demo): collected first,
# so that `make test`'s pytest-xdist workers (`--dist loadfile --no-loadscope-reorder`: files
# handed out in collection order) start them at once and the short files fill in around them,
# instead of one worker finishing alone on a long file at the end. Only the order changes; a
# file missing here just runs in its usual place. Only the longest: the first minutes of a run
# are its busiest, and the browser walks are better off away from them.
LONG_FILES = (
    "test_prodlike.py",
    "test_dags.py",
    "test_demo.py",  # third: it follows test_prodlike on the same worker (two units each at the start)
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: the rest keep their order


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str | None]:
    """One migrated template database per run; each test gets a copy (CREATE DATABASE … TEMPLATE)."""
    if not PG_URL:
        yield None
        return
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_db_url(name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pg_db_url(name: str) -> str:
    return make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite database per run; each test gets a copy of the file (running the
    migrations for every test cost a tenth of a second each, over a minute a run)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "hub.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as conn:  # the write-ahead log folded in: the file alone is the database
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def db_url(backend: str, tmp_path: Path, _pg_template: str | None, _sqlite_template: Path) -> Iterator[str]:
    if backend == "sqlite":
        shutil.copyfile(_sqlite_template, tmp_path / "hub.db")
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    admin = create_engine(make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    name = f"{_pg_template}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"'))
    yield _pg_db_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ---------------------------------------------------------------- the hub


class Clock:
    """A wall clock the test moves. Starts Monday 2026-09-21 10:00 in Taishun."""

    def __init__(self, start: datetime):
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def set(self, day: date, hour: int = 10) -> None:
        self.current = datetime(day.year, day.month, day.day, hour, tzinfo=CST).astimezone(UTC)

    def advance(self, days: int = 0, hours: int = 0, seconds: int = 0) -> None:
        self.current += timedelta(days=days, hours=hours, seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 9, 21, 10, tzinfo=CST).astimezone(UTC))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_home(tmp_path / "home")


@pytest.fixture
def hub(home: Path, db_url: str, clock: Clock) -> Iterator[Hub]:
    h = Hub.open(home, database_url=db_url, clock=clock)
    yield h
    h.close()


@pytest.fixture
def sqlite_only_hub(home: Path, tmp_path: Path, _sqlite_template: Path, clock: Clock) -> Iterator[Hub]:
    """A hub on SQLite alone, for tests whose subject never reaches the database (seals and PDFs:
    keys, files and bytes). Through `hub` they ran twice, the PostgreSQL run repeating the same work;
    anything that reads or writes a table keeps using `hub`."""
    shutil.copyfile(_sqlite_template, tmp_path / "hub.db")
    h = Hub.open(home, database_url=f"sqlite:///{tmp_path / 'hub.db'}", clock=clock)
    yield h
    h.close()


# ---------------------------------------------------------------- sample data


def make_id(division: str = "330329", born: date = date(1958, 3, 15), seq: str = "002") -> str:
    """A resident ID number with a correct GB 11643 check digit (fictional person)."""
    first17 = f"{division}{born:%Y%m%d}{seq}"
    return first17 + id_check_digit(first17)


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
