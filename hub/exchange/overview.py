"""What ops see of each partner hub: configured or broken, reachable (its last signed answer),
the last message each way, backlog and dead letters; and a page of the message log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from hub.context import Hub
from hub.storage.tables import MessageLogEntry, PartnerCatalogue, PartnerMessage


def partners(hub: Hub) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with hub.sessions() as session:
        counts = dict(
            (tuple(k), v)
            for *k, v in session.execute(
                select(PartnerMessage.partner, PartnerMessage.state, func.count()).group_by(
                    PartnerMessage.partner, PartnerMessage.state
                )
            ).all()
        )
        last = {
            (p, d): at
            for p, d, at in session.execute(
                select(MessageLogEntry.partner, MessageLogEntry.direction, func.max(MessageLogEntry.at)).group_by(
                    MessageLogEntry.partner, MessageLogEntry.direction
                )
            ).all()
        }
        answered = dict(
            session.execute(
                select(MessageLogEntry.partner, func.max(MessageLogEntry.at))
                .where(MessageLogEntry.direction == "in", MessageLogEntry.signer.is_not(None))
                .group_by(MessageLogEntry.partner)
            ).all()
        )
        lists = {r.partner: r for r in session.scalars(select(PartnerCatalogue)).all()}
    for name in sorted({*hub.partners.by_name, *hub.partners.problems}):
        p = hub.partners.by_name.get(name)
        listing = lists.get(name)
        rows.append(
            {
                "name": name,
                "display": p.display if p else name,
                "region": (p.spec.region if p else None) or "",
                "url": p.spec.url if p else "",
                "hub_id": p.hub_id if p else "",
                "divisions": p.spec.divisions if p else [],
                "problems": [str(x) for x in hub.partners.problems.get(name, [])],
                "backlog": counts.get((name, "pending"), 0),
                "dead": counts.get((name, "dead"), 0),
                "delivered": counts.get((name, "delivered"), 0),
                "last_sent": _at(last.get((name, "out"))),
                "last_received": _at(last.get((name, "in"))),
                "last_signed_answer": _at(answered.get(name)),
                "catalogue_version": listing.version if listing else None,
                "catalogue_fetched": _at(listing.fetched_at) if listing else None,
                "accepts": sorted(p.accepts) if p else [],
            }
        )
    return rows


def _at(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") + "Z" if at else None


def log_page(hub: Hub, *, partner: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """Newest first; bodies are not shown (they carry personal data), only what and whose."""
    with hub.sessions() as session:
        stmt = select(MessageLogEntry)
        count = select(func.count()).select_from(MessageLogEntry)
        if partner:
            stmt, count = (
                stmt.where(MessageLogEntry.partner == partner),
                count.where(MessageLogEntry.partner == partner),
            )
        total = session.scalar(count) or 0
        rows = session.scalars(stmt.order_by(MessageLogEntry.seq.desc()).limit(limit).offset(offset)).all()
        return [
            {
                "seq": e.seq,
                "at": _at(e.at),
                "direction": e.direction,
                "partner": e.partner,
                "kind": e.kind,
                "message_id": e.message_id,
                "verdict": e.verdict,
                "signer": e.signer,
                "body_sha256": e.body_sha256,
            }
            for e in rows
        ], total


def outbox_page(
    hub: Hub, *, state: str | None = None, partner: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Messages owed to partners, dead letters first, then newest; with how many match in all."""
    with hub.sessions() as session:
        stmt = select(PartnerMessage)
        count = select(func.count()).select_from(PartnerMessage)
        for column, value in ((PartnerMessage.state, state), (PartnerMessage.partner, partner)):
            if value:
                stmt, count = stmt.where(column == value), count.where(column == value)
        total = session.scalar(count) or 0
        order = (PartnerMessage.state != "dead", PartnerMessage.id.desc())
        rows = session.scalars(stmt.order_by(*order).limit(limit).offset(offset)).all()
        return [
            {
                "id": m.id,
                "partner": m.partner,
                "kind": m.kind,
                "application": m.conversation,
                "state": m.state,
                "attempts": m.attempts,
                "next_attempt_at": _at(m.next_attempt_at) if m.state == "pending" else None,
                "last_error": m.last_error,
                "message_id": m.message_id,
            }
            for m in rows
        ], total
