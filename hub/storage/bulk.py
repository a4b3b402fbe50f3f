"""Bulk writes for intake batches: plain rows in, no ORM objects. On PostgreSQL many rows go in
with COPY (one round trip per table and chunk), a few as one INSERT; elsewhere as one
executemany. Both run on the caller's connection, so they commit or roll back with the rest of
its transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, ColumnElement, Connection, DateTime, String, Table, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError


class JsonText(str):
    """A JSON column's value already encoded (say, just encoded for a hash): written as is."""


def among(dialect: str, column: ColumnElement[str], values: list[str]) -> ColumnElement[bool]:
    """`column IN values` for a long list of strings. On PostgreSQL `= ANY(array)`: one
    parameter, where IN renders one placeholder per value and psycopg parses the long statement
    afresh on every call (it caches only short ones)."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    return column.in_(values)


def allocate_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """`n` fresh values for the table's integer primary key `id`, so that child rows can refer
    to parents before either is written."""
    if n <= 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%(table)s, 'id')) FROM generate_series(1, %(n)s)",
            {"table": table.name, "n": n},
        )
        return [r[0] for r in rows]
    # SQLite: the write transaction (BEGIN IMMEDIATE) already holds the database's only write
    # lock, so nobody else can take these numbers before we commit.
    last = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(last + 1, last + n + 1))


FEW = 8  # rows: fewer go in as one INSERT, more with COPY


def missing_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The scalar Python-side defaults of the columns `row` leaves out (what the ORM would give)."""
    return {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in row and c.default is not None and c.default.is_scalar
    }


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys. Columns left out get their scalar Python-side
    default (as the ORM would give them), else the database's."""
    if not rows:
        return
    defaults = missing_defaults(table, rows[0])
    keys = list(rows[0])
    as_json = [i for i, name in enumerate(keys) if isinstance(table.c[name].type, JSON)]
    if conn.dialect.name != "postgresql" or len(rows) <= FEW:
        # through SQLAlchemy, whose JSON type encodes values itself; a COPY costs two round trips
        # and more set-up, a single INSERT of a few rows (a window's one application) one
        decoded = [keys[i] for i in as_json]
        conn.execute(table.insert(), [defaults | r | {k: _plain(r[k]) for k in decoded} for r in rows])
        return
    columns = [*keys, *defaults]
    # datetimes as ISO text, each distinct one formatted once: psycopg's datetime dumper costs
    # more per value than the text one, and a chunk's rows share a handful of timestamps
    as_text = [i for i, name in enumerate(keys) if isinstance(table.c[name].type, DateTime)]
    tail = tuple(defaults.values())
    values_of = itemgetter(*keys) if len(keys) > 1 else lambda r: (r[keys[0]],)
    cursor = conn.connection.driver_connection.cursor()  # psycopg 3: the connection under the session
    names = ", ".join(f'"{name}"' for name in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    dbapi = conn.dialect.loaded_dbapi
    texts: dict[datetime, str] = {}
    try:
        with cursor, cursor.copy(statement) as copy:
            for r in rows:
                values = list(values_of(r))
                for i in as_json:
                    v = values[i]
                    values[i] = v if type(v) is JsonText else _JSON(v)
                for i in as_text:
                    v = values[i]
                    if v is not None:
                        values[i] = texts.get(v) or texts.setdefault(v, v.isoformat())
                copy.write_row((*values, *tail))
    except dbapi.Error as exc:  # as SQLAlchemy raises it (IntegrityError, …) when it runs a statement
        raise DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=conn.dialect) from exc


def _plain(value: Any) -> Any:
    return json.loads(value) if type(value) is JsonText else value


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
