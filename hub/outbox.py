"""The transactional outbox: deliveries owed to department systems.

Rows are written in the transaction that accepts an application (one per part routed to a
configured connection). A dispatcher claims due rows for a lease, delivers them with the part id
as idempotency key, and records the outcome; a dispatcher that dies leaves its claims to expire,
and the next one delivers again — the department sees the same key and keeps one case. Failed
deliveries back off exponentially with jitter; after `max_attempts` (or a refusal that retrying
cannot fix) a row is dead-lettered with its last error, for ops to fix and retry."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hub.connectors import Limits
from hub.storage.tables import OutboxRow, Part


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def enqueue(session: Session, part: Part, now: datetime) -> OutboxRow:
    row = OutboxRow(
        part_id=part.id,
        application_id=part.application_id,
        connection=part.connection,
        kind="submit",
        state="pending",
        attempts=0,
        next_attempt_at=_naive(now),
        created_at=_naive(now),
    )
    session.add(row)
    return row


def claim(
    session: Session, now: datetime, *, lease: timedelta, connection: str | None = None, limit: int = 100
) -> list[OutboxRow]:
    """Take due pending rows for a lease. On PostgreSQL concurrent dispatchers skip each other's
    rows (FOR UPDATE SKIP LOCKED); SQLite serialises writers anyway."""
    at = _naive(now)
    stmt = (
        select(OutboxRow)
        .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= at)
        .where(or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < at))
        .order_by(OutboxRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if connection:
        stmt = stmt.where(OutboxRow.connection == connection)
    rows = list(session.scalars(stmt))
    for row in rows:
        row.claimed_until = at + lease
    return rows


def backoff(attempts: int, limits: Limits, rng: random.Random | None = None) -> timedelta:
    """Exponential, capped, with full jitter in [0.5, 1.5) so retries of a fallen department
    do not arrive all at once when it comes back."""
    base = min(limits.backoff_seconds * 2 ** max(attempts - 1, 0), limits.max_backoff_seconds)
    return timedelta(seconds=base * (0.5 + (rng or random).random()))


def failed(row: OutboxRow, error: str, *, retryable: bool, limits: Limits, now: datetime) -> None:
    row.attempts += 1
    row.last_error = error[:1000]
    row.claimed_until = None
    if not retryable or row.attempts >= limits.max_attempts:
        row.state = "dead"
    else:
        row.next_attempt_at = _naive(now) + backoff(row.attempts, limits)


def delivered(row: OutboxRow, remote_id: str, now: datetime) -> None:
    row.attempts += 1
    row.state, row.remote_id = "delivered", remote_id
    row.delivered_at, row.claimed_until, row.last_error = _naive(now), None, None


def retry(session: Session, now: datetime, *, ids: list[int] | None = None, all_dead: bool = False) -> int:
    """Put dead rows back in line (after ops fixed what killed them)."""
    stmt = update(OutboxRow).where(OutboxRow.state == "dead")
    if ids:
        stmt = stmt.where(OutboxRow.id.in_(ids))
    elif not all_dead:
        return 0
    result = session.execute(stmt.values(state="pending", attempts=0, next_attempt_at=_naive(now), claimed_until=None))
    return result.rowcount or 0
