"""The audit log: who viewed an application's full details or downloaded a material, logins,
users and tokens changed. Application changes are in their own event chains; this is the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.applications import Actor
from hub.context import Hub
from hub.storage.tables import AuditEntry


def entry(
    actor: Actor, action: str, at: datetime, *, target: str | None = None, client: str | None = None, **data: Any
) -> AuditEntry:
    return AuditEntry(
        at=at.replace(tzinfo=None),
        actor=actor.name,
        role=actor.role.value,
        place=actor.place,
        action=action,
        target=target,
        client=client,
        data=data,
    )


def record(
    hub: Hub, actor: Actor, action: str, *, target: str | None = None, client: str | None = None, **data: Any
) -> None:
    with hub.transaction() as session:
        session.add(entry(actor, action, hub.now(), target=target, client=client, **data))


def add(session: Session, hub: Hub, actor: Actor, action: str, *, target: str | None = None, **data: Any) -> None:
    """An entry in the caller's transaction (it commits with whatever else was written)."""
    session.add(entry(actor, action, hub.now(), target=target, **data))


def entries(hub: Hub, *, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
    with hub.sessions() as session:
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if target:
            stmt = stmt.where(AuditEntry.target == target)
        return list(session.scalars(stmt))
