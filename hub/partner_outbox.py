"""The exchange's outbox: messages owed to partner hubs (跨省通办), written in the transaction of
the change that owes them — an application first-reviewed for a partner, an event on an
application a partner collected, a result document — and sent by `hub run exchange`
(`hub.exchange.send`) with retries, backoff and dead letters, as deliveries to departments are.

Messages about one application (its `conversation`) leave in the order they were written: a
message is not claimed while an earlier one of its conversation is still pending, so a partner
never hears of a decision before the application it decides. This module only writes and
claims rows; it knows nothing of signatures or HTTP, so the application code can owe a message
without depending on the exchange."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from hub import text
from hub.outbox import backoff
from hub.storage.tables import Application, Part, PartnerMessage, naive_utc

PARTNER_SEP = ":"  # a partner's item in our catalogue: "PARTNER:CODE"


def partner_of(item_code: str) -> str | None:
    """The partner hub that decides a part, from its item code ("fuding:QR00117001")."""
    return item_code.split(PARTNER_SEP, 1)[0] if PARTNER_SEP in item_code else None


def row(
    partner: str, kind: str, conversation: str, application_id: int | None, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "partner": partner,
        "kind": kind,
        "conversation": conversation,
        "application_id": application_id,
        "data": data,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": naive_utc(now),
        "created_at": naive_utc(now),
    }


def application_rows(
    number: str, application_id: int, parts: list[dict[str, Any]] | list[Part], now: datetime, *, mode: str
) -> list[dict[str, Any]]:
    """The `application` messages owed for these parts: one per partner part (a partner decides
    one item of an application)."""
    out = []
    for p in parts:
        code, pid = (p["item_code"], p["id"]) if isinstance(p, dict) else (p.item_code, p.id)
        if partner := partner_of(code):
            out.append(row(partner, "application", number, application_id, {"part_id": pid, "mode": mode}, now))
    return out


def is_proxy(item_codes: list[str]) -> bool:
    """异地代收代办: every part is decided by partners (the collecting desk first-reviews, the
    partner accepts). Mixed with our own parts it is 多地联办 (joint): sent when we accept."""
    return bool(item_codes) and all(partner_of(c) for c in item_codes)


def mode_of(channel: str, item_codes: list[str]) -> str:
    """The 跨域通办 mode of an application: 全程网办 (online) from the online channel, else
    异地代收代办 (proxy) when partners decide every part, else 多地联办 (joint)."""
    if channel == "online":
        return "online"
    return "proxy" if is_proxy(item_codes) else "joint"


def owe_rows(conn: Connection | Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(PartnerMessage.__table__), rows)


def supplement_rows(app: Application, now: datetime) -> list[dict[str, Any]]:
    """补正 collected at our desk for a case partners decide: one `supplement` message each."""
    partners = sorted({p for part in app.parts if (p := partner_of(part.item_code))})
    return [row(p, "supplement", app.number, app.id, {"at": naive_utc(now).isoformat()}, now) for p in partners]


def owe_status(session: Session, app: Application, now: datetime) -> None:
    """An application a partner collected changed: the partner is owed our news. One message per
    transaction (a status message carries the whole state when it is sent, not this change)."""
    flag = ("partner-status", app.id)
    if session.info.get(flag):
        return
    session.info[flag] = True
    session.add(PartnerMessage(**row(app.origin_partner, "status", app.origin_number, app.id, {}, now)))


def owe_result(session: Session, app: Application, material_id: int, now: datetime) -> None:
    session.add(
        PartnerMessage(**row(app.origin_partner, "result", app.origin_number, app.id, {"material": material_id}, now))
    )


def due_partners(session: Session, now: datetime) -> list[str]:
    at = naive_utc(now)
    stmt = (
        select(PartnerMessage.partner)
        .where(PartnerMessage.state == "pending", PartnerMessage.next_attempt_at <= at)
        .where(or_(PartnerMessage.claimed_until.is_(None), PartnerMessage.claimed_until < at))
        .distinct()
    )
    return sorted(session.scalars(stmt))


def claim_one(session: Session, now: datetime, *, lease: timedelta, partner: str) -> PartnerMessage | None:
    """The oldest due message for `partner` whose conversation has nothing older still pending,
    for a lease under a fresh token (SKIP LOCKED on PostgreSQL)."""
    at = naive_utc(now)
    earlier = aliased(PartnerMessage)
    stmt = (
        select(PartnerMessage)
        .where(
            PartnerMessage.partner == partner,
            PartnerMessage.state == "pending",
            PartnerMessage.next_attempt_at <= at,
            or_(PartnerMessage.claimed_until.is_(None), PartnerMessage.claimed_until < at),
            ~exists().where(
                and_(
                    earlier.conversation == PartnerMessage.conversation,
                    earlier.partner == PartnerMessage.partner,
                    earlier.id < PartnerMessage.id,
                    earlier.state.in_(("pending", "dead")),
                )
            ),
        )
        .order_by(PartnerMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=PartnerMessage)
    )
    found = session.scalars(stmt).first()
    if found is not None:
        found.claimed_until, found.claim_token = at + lease, uuid.uuid4().hex
    return found


def failed(msg: PartnerMessage, error: str, *, retryable: bool, limits: Any, now: datetime) -> None:
    msg.attempts += 1
    msg.last_error = text.clean(error[:1000])
    msg.claimed_until, msg.claim_token = None, None
    if not retryable or msg.attempts >= limits.max_attempts:
        msg.state = "dead"
    else:
        msg.next_attempt_at = naive_utc(now) + backoff(msg.attempts, limits)


def delivered(msg: PartnerMessage, now: datetime) -> None:
    msg.attempts += 1
    msg.state, msg.delivered_at = "delivered", naive_utc(now)
    msg.claimed_until, msg.claim_token, msg.last_error = None, None, None


def withdraw(session: Session, app: Application, now: datetime) -> dict[str, list[str]]:
    """The applicant withdrew. An application message never attempted is cancelled (the partner
    cannot have it). One attempted even once may have been taken — its answer may have been
    lost — so it is cancelled too and the partner is owed a `withdraw` message (answered "not
    received" if it never had the case). Each cancellation is conditional on the row as it is
    now: a send in flight at this moment goes on, and the withdrawal follows it in order."""
    at = naive_utc(now)
    cancelled, told = set(), set()
    sent = session.execute(
        select(PartnerMessage.id, PartnerMessage.partner, PartnerMessage.state, PartnerMessage.data).where(
            PartnerMessage.application_id == app.id, PartnerMessage.kind == "application"
        )
    ).all()
    for msg_id, partner, state, data in sent:
        if state == "cancelled":
            continue
        never_sent = session.execute(
            update(PartnerMessage)
            .where(
                PartnerMessage.id == msg_id,
                PartnerMessage.state == "pending",
                PartnerMessage.attempts == 0,
                or_(PartnerMessage.claimed_until.is_(None), PartnerMessage.claimed_until < at),
            )
            .values(state="cancelled", claimed_until=None, claim_token=None)
        ).rowcount
        if never_sent:
            cancelled.add(partner)
            continue
        # tried before, so perhaps taken: not sent again (unless in flight right now) — the
        # withdrawal says it all, and the partner answers "not received" if it never had it
        session.execute(
            update(PartnerMessage)
            .where(
                PartnerMessage.id == msg_id,
                PartnerMessage.state.in_(("pending", "dead")),
                or_(PartnerMessage.claimed_until.is_(None), PartnerMessage.claimed_until < at),
            )
            .values(state="cancelled", claimed_until=None, claim_token=None)
        )
        session.add(PartnerMessage(**row(partner, "withdraw", app.number, app.id, dict(data or {}), now)))
        told.add(partner)
    return {"cancelled": sorted(cancelled), "told": sorted(told)}


def retry(session: Session, now: datetime, *, ids: list[int] | None = None, partner: str | None = None) -> int:
    stmt = update(PartnerMessage).where(PartnerMessage.state == "dead")
    if ids:
        stmt = stmt.where(PartnerMessage.id.in_(ids))
    elif partner:
        stmt = stmt.where(PartnerMessage.partner == partner)
    else:
        return 0
    result = session.execute(
        stmt.values(state="pending", attempts=0, next_attempt_at=naive_utc(now), claimed_until=None, claim_token=None)
    )
    return result.rowcount or 0
