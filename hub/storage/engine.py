"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout on every connection,
and write transactions that take the write lock when they begin (BEGIN IMMEDIATE): otherwise two
writers could read the same state and the later one fail instead of waiting its turn."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

WRITE = "hub_write"  # execution option: this transaction will write (see Hub.transaction)


def make_engine(url: str, pool_size: int = 10, pool_timeout: float = 30) -> Engine:
    if url.startswith("sqlite"):
        pooled = (
            {}
            if url in ("sqlite://", "sqlite:///:memory:")
            else {  # a file: a queue of connections
                "pool_size": pool_size,
                "max_overflow": pool_size,
                "pool_timeout": pool_timeout,
            }
        )
        engine = create_engine(url, connect_args={"timeout": 30}, **pooled)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # psycopg caches its placeholder conversion only for statements up to 4 KiB; bigger multi-row
    # INSERTs were converted afresh every time (a third of ingest time). Small pages stay cached.
    # `pool_size` connections stay open; up to as many again are opened for a burst and closed after
    return create_engine(
        url,
        pool_pre_ping=True,
        insertmanyvalues_page_size=16,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
