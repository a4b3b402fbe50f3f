"""Every change to an application is an event, numbered and hash-chained onto its predecessors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from hub.applications.models import Actor
from hub.applications.scope import get
from hub.events import GENESIS, chain, chain_algorithm
from hub.partner_outbox import owe_status
from hub.storage.tables import Application, Event, Part


def event_fields(
    actor: Actor,
    action: str,
    at: datetime,
    *,
    from_state: str | None,
    to_state: str | None,
    part_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event's content, before it is numbered and chained."""
    return {
        "part_id": part_id,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "actor": actor.name,
        "role": actor.role.value,
        "desk": actor.place,
        "at": at.replace(tzinfo=None),
        "reason": reason,
        "data": data or {},
    }


def add_event(
    app: Application,
    action: str,
    actor: Actor,
    at: datetime,
    *,
    from_state: str | None,
    to_state: str | None,
    part: Part | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    fields = event_fields(
        actor,
        action,
        at,
        from_state=from_state,
        to_state=to_state,
        part_id=part.id if part else None,
        reason=reason,
        data=data,
    )
    prev = app.events[-1].hash if app.events else GENESIS
    app.chain_head = chain(app.number, [fields], prev, len(app.events), chain_algorithm(app))
    ev = Event(**fields)
    app.events.append(ev)
    if app.origin_partner and (session := object_session(app)) is not None:
        owe_status(session, app, at)  # the partner that collected it follows every step
    return ev


def record_event(
    session: Session,
    number: str,
    action: str,
    actor: Actor,
    *,
    part_id: str | None = None,
    data: dict[str, Any] | None = None,
    reason: str | None = None,
    now: datetime,
) -> Application:
    """An event that changes no state (a delivery, a result arriving), on the locked application."""
    app = get(session, number, actor, for_update=True)
    part = next((p for p in app.parts if p.id == part_id), None)
    add_event(app, action, actor, now, from_state=None, to_state=None, part=part, reason=reason, data=data)
    app.updated_at = now.replace(tzinfo=None)
    return app


def append_event(
    session: Session,
    app: Application,
    action: str,
    actor: Actor,
    at: datetime,
    *,
    part_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """An event that changes no state, on an application whose row the caller holds locked,
    without loading its history: chained onto `chain_head`, numbered after the newest event.
    (`add_event` needs the events loaded; a hot path that only records, such as a partner's
    acknowledgement, saves that read.)"""
    seq = session.scalar(select(func.max(Event.seq)).where(Event.application_id == app.id)) or 0
    fields = event_fields(actor, action, at, from_state=None, to_state=None, part_id=part_id, reason=reason, data=data)
    app.chain_head = chain(app.number, [fields], app.chain_head if seq else GENESIS, seq, chain_algorithm(app))
    session.add(Event(application_id=app.id, **fields))
    app.updated_at = at.replace(tzinfo=None)
    if app.origin_partner:
        owe_status(session, app, at)
