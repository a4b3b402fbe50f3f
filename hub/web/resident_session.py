"""Residents' sessions (网办): a resident signed in through an identity provider gets a cookie of
their own (never a staff session), naming who the provider verified. Pages for residents take
`current_resident` (or `optional_resident`) and act as `Resident.actor`: role `applicant`, bound to
the resident's ID number, so every read is scoped by `hub.applications.scope` like any other."""

from __future__ import annotations

import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException, Request
from sqlalchemy import delete, update
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from hub.applications.models import Actor
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import ResidentSession, naive_utc
from hub.tokens import digest  # only the hash of a cookie is kept, as for API tokens

RESIDENT_COOKIE = "tbh_resident"
RESIDENT_IDLE = timedelta(minutes=30)
RESIDENT_MAX = timedelta(hours=4)


@dataclass(frozen=True)
class Resident:
    provider: str
    subject: str
    id_number: str
    name: str
    phone: str | None
    csrf: str

    @property
    def actor(self) -> Actor:
        return Actor(name=self.name, role=Role.applicant, applicant_id=self.id_number)


def open_resident_session(
    hub: Hub, *, provider: str, subject: str, id_number: str, name: str, phone: str | None = None
) -> str:
    """A session for a resident the identity provider just vouched for; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        session.execute(delete(ResidentSession).where(ResidentSession.expires_at < now))
        session.add(
            ResidentSession(
                token_hash=digest(token),
                provider=provider,
                subject=subject,
                id_number=id_number,
                name=name,
                phone=phone,
                csrf_token=secrets.token_urlsafe(24),
                created_at=now,
                last_seen_at=now,
                expires_at=now + RESIDENT_MAX,
            )
        )
    return token


def close_resident_session(hub: Hub, token: str) -> None:
    with hub.transaction() as session:
        session.execute(delete(ResidentSession).where(ResidentSession.token_hash == digest(token)))


def resident_of(hub: Hub, token: str) -> Resident | None:
    now = naive_utc(hub.now())
    key = digest(token)
    with hub.sessions() as session:
        row = session.get(ResidentSession, key)
        if row is None:
            return None
        over = row.expires_at <= now or now - row.last_seen_at > RESIDENT_IDLE
        stale = now - row.last_seen_at > timedelta(seconds=60)
        resident = Resident(row.provider, row.subject, row.id_number, row.name, row.phone, row.csrf_token)
    if over or stale:
        with suppress(OperationalError), hub.transaction() as session:
            q = delete(ResidentSession) if over else update(ResidentSession).values(last_seen_at=now)
            session.execute(q.where(ResidentSession.token_hash == key))
    return None if over else resident


async def optional_resident(request: Request) -> Resident | None:
    token = request.cookies.get(RESIDENT_COOKIE)
    if not token:
        return None
    return await run_in_threadpool(resident_of, request.app.state.hub, token)


async def current_resident(request: Request) -> Resident:
    resident = await optional_resident(request)
    if resident is None:
        raise HTTPException(401, "请先登录 (resident not signed in)")
    return resident
