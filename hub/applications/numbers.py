"""Application numbers (受理编号): per deciding division and day, from one counter row."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from hub.catalog.models import Desk
from hub.context import Hub

# Plain SQL that both databases speak (SQLite >= 3.35): SQLAlchemy cannot cache the compiled form
# of its ON CONFLICT constructs, and compiling them afresh cost more than running them.
_BUMP_COUNTER = sql(
    "INSERT INTO counters (name, value) VALUES (:name, :n) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + :n RETURNING value"
)


def next_numbers(conn: Connection | Session, division: str, today: date, n: int) -> list[str]:
    """`n` consecutive application numbers (受理编号) for the division and day, in one statement."""
    day = today.strftime("%Y%m%d")
    last = conn.execute(_BUMP_COUNTER, {"name": f"application:{division}:{day}", "n": n}).scalar_one()
    return [f"{division}-{day}-{seq:05d}" for seq in range(last - n + 1, last + 1)]


def claim_number(hub: Hub, desk: Desk) -> str | None:
    """On PostgreSQL the next application number of the division, taken by a statement that
    commits at once: the day's counter row would otherwise stay locked until the application's
    own transaction commits, and every desk of the division would queue on it. (A write that
    then fails leaves a gap in the day's numbers, as a sequence would.) On SQLite the number is
    taken inside the write transaction, which holds the only write lock anyway: None here."""
    if hub.engine.dialect.name != "postgresql":
        return None
    with hub.engine.connect() as conn:  # one statement, its own transaction: no BEGIN/COMMIT round trips
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return next_numbers(conn, desk.acts_for, hub.today(), 1)[0]


def reserve_numbers(hub: Hub, session: Session, desk: Desk, n: int) -> list[str]:
    """Numbers for a chunk of a batch. On PostgreSQL in a short transaction of their own: the
    day's counter row stays locked until its transaction ends, and tellers at the windows and
    other batch workers number applications for the same division all the time. (A chunk that
    then fails leaves a gap in the day's numbers, as a database sequence would.) On SQLite the
    chunk's transaction holds the only write lock already."""
    if session.bind.dialect.name != "postgresql":
        return next_numbers(session, desk.acts_for, hub.today(), n)
    with hub.transaction() as own:
        return next_numbers(own, desk.acts_for, hub.today(), n)
