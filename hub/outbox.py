"""The transactional outbox: deliveries owed to department systems.

Rows are written in the transaction that accepts an application (one per part routed to a
configured connection). A dispatcher claims one due row at a time, right before delivering it,
for a lease and under a token; it delivers with the part id as idempotency key and records the
outcome only if the claim is still its own. A dispatcher that dies (or outlives its lease)
leaves the row to the next one, which delivers again — the department sees the same key and
keeps one case. Failed deliveries back off exponentially with jitter; after `max_attempts` (or
a refusal that retrying cannot fix) a row is dead-lettered with its last error, for ops to fix
and retry. Withdrawing an application cancels what it still owes."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hub import text
from hub.connectors import Limits
from hub.storage.tables import OutboxRow, Part, naive_utc


def enqueue(session: Session, part: Part, now: datetime) -> OutboxRow:
    row = OutboxRow(
        part_id=part.id,
        application_id=part.application_id,
        connection=part.connection,
        kind="submit",
        state="pending",
        attempts=0,
        next_attempt_at=naive_utc(now),
        created_at=naive_utc(now),
    )
    session.add(row)
    return row


def due_connections(session: Session, now: datetime) -> list[str]:
    at = naive_utc(now)
    stmt = (
        select(OutboxRow.connection)
        .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= at)
        .where(or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < at))
        .distinct()
    )
    return sorted(session.scalars(stmt))


def claim_one(session: Session, now: datetime, *, lease: timedelta, connection: str) -> OutboxRow | None:
    """Take the oldest due row of a connection for a lease, under a fresh token. Concurrent
    dispatchers skip each other's rows on PostgreSQL (FOR UPDATE SKIP LOCKED); SQLite
    serialises writers anyway."""
    at = naive_utc(now)
    stmt = (
        select(OutboxRow)
        .where(OutboxRow.connection == connection, OutboxRow.state == "pending", OutboxRow.next_attempt_at <= at)
        .where(or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < at))
        .order_by(OutboxRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = session.scalars(stmt).first()
    if row is not None:
        row.claimed_until, row.claim_token = at + lease, uuid.uuid4().hex
    return row


def cancel(session: Session, part_ids: list[str]) -> int:
    """Nothing more is owed for these parts (the application was withdrawn)."""
    if not part_ids:
        return 0
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.part_id.in_(part_ids), OutboxRow.state.in_(("pending", "dead")))
        .values(state="cancelled", claimed_until=None, claim_token=None)
    )
    return result.rowcount or 0


def backoff(attempts: int, limits: Limits, rng: random.Random | None = None) -> timedelta:
    """Exponential, capped, with full jitter in [0.5, 1.5) so retries of a fallen department
    do not arrive all at once when it comes back."""
    base = min(limits.backoff_seconds * 2 ** max(attempts - 1, 0), limits.max_backoff_seconds)
    return timedelta(seconds=base * (0.5 + (rng or random).random()))


def failed(row: OutboxRow, error: str, *, retryable: bool, limits: Limits, now: datetime) -> None:
    row.attempts += 1
    row.last_error = text.clean(error[:1000])
    row.claimed_until, row.claim_token = None, None
    if not retryable or row.attempts >= limits.max_attempts:
        row.state = "dead"
    else:
        row.next_attempt_at = naive_utc(now) + backoff(row.attempts, limits)


def delivered(row: OutboxRow, remote_id: str, now: datetime) -> None:
    row.attempts += 1
    row.state, row.remote_id = "delivered", remote_id
    row.delivered_at, row.claimed_until, row.claim_token, row.last_error = naive_utc(now), None, None, None


def retry(session: Session, now: datetime, *, ids: list[int] | None = None, all_dead: bool = False) -> int:
    """Put dead rows back in line (after ops fixed what killed them)."""
    stmt = update(OutboxRow).where(OutboxRow.state == "dead")
    if ids:
        stmt = stmt.where(OutboxRow.id.in_(ids))
    elif not all_dead:
        return 0
    result = session.execute(
        stmt.values(state="pending", attempts=0, next_attempt_at=naive_utc(now), claimed_until=None, claim_token=None)
    )
    return result.rowcount or 0
