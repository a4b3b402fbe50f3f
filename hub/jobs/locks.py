"""One run at a time of a job that must not overlap itself (ingest of one source): a
PostgreSQL advisory lock when the hub is on PostgreSQL — it holds across machines and is
released if the process dies — else an flock on a file in the hub home (SQLite is one machine)."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from hub.context import Hub


@contextmanager
def exclusive(hub: Hub, name: str) -> Iterator[bool]:
    """Yields True while this process holds the lock `name`; False, at once, if another does."""
    if hub.engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        # autocommit: a lock held for a long run must not keep a transaction open with it
        with hub.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    folder = hub.settings.path("locks")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
