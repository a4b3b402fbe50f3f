"""Who is asking: a browser session (cookie, CSRF token for forms) or a system's bearer token.
Both become a `Principal`: the `Actor` the core scopes every read and write by, and the scopes
it may use. Sessions and tokens are stored hashed; the throttles here sit in front of the
per-account lockout in `hub.users`."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError

from hub.applications import Actor
from hub.context import Hub
from hub.lifecycle import FRONT, Role
from hub.secret_key import status_key  # noqa: F401  (re-exported: where the web layer looks for it)
from hub.storage.tables import AgentProfile, User, WebSession, naive_utc
from hub.tokens import resolve_token
from hub.users import Person

log = logging.getLogger(__name__)
SESSION_COOKIE = "tbh_session"
THROTTLE_PREFIX = "tbh-login"  # Redis keys of the login throttle (the database may be shared)
SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=10)  # a working day, then log in again
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def role_scopes(role: Role) -> frozenset[str]:
    """What a person in this role may use (tokens carry their own, at most these)."""
    scopes = {"applications:read"}
    if role in FRONT or role in (Role.officer, Role.agent):
        scopes.add("applications:write")
    if role is Role.supervisor:
        scopes.add("reports:read")
    if role is Role.ops:
        scopes.add("ops")
    if role is Role.system:
        scopes |= {"applications:write", "reports:read", "ops"}
    return frozenset(scopes)


@dataclass(frozen=True)
class Principal:
    actor: Actor
    scopes: frozenset[str]
    username: str | None = None  # people; tokens have none
    csrf: str | None = None  # sessions only: forms and cookie-borne API calls must echo it
    token_id: int | None = None
    must_change_password: bool = False  # a temporary password: nothing but changing it until then

    @property
    def role(self) -> Role:
        return self.actor.role


def same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (compare_digest refuses str with it)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def open_session(hub: Hub, person: Person) -> str:
    """A new session for a person who just logged in; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))  # tidy as we go
        session.add(
            WebSession(
                token_hash=_digest(token),
                user_id=person.id,
                csrf_token=secrets.token_urlsafe(24),
                created_at=now,
                last_seen_at=now,
                expires_at=now + SESSION_MAX,
            )
        )
    return token


def close_session(hub: Hub, token: str) -> None:
    with hub.transaction() as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


class SessionExpired(Exception):
    """The cookie named a session that is over (idle too long, too old, user disabled)."""


def session_principal(hub: Hub, token: str) -> Principal:
    now = naive_utc(hub.now())
    key = _digest(token)
    with hub.sessions() as session:
        row = session.get(WebSession, key)
        user = session.get(User, row.user_id) if row else None
        if row is None or user is None:
            raise SessionExpired()
        over = user.disabled or row.expires_at <= now or now - row.last_seen_at > SESSION_IDLE
        stale = now - row.last_seen_at > timedelta(seconds=60)
        role = Role(user.role)
        # an agent acts with its roster ID number: the applications it collected are its scope
        agent_id = (
            session.scalar(select(AgentProfile.id_number).where(AgentProfile.user_id == user.id))
            if role is Role.agent
            else None
        )
        actor = Actor(
            name=user.display_name, role=role, desk=user.desk_code, department=user.department_code, agent_id=agent_id
        )
        principal = Principal(
            actor=actor,
            scopes=role_scopes(role),
            username=user.username,
            csrf=row.csrf_token,
            must_change_password=bool(user.must_change_password),
        )
    if over or stale:  # best effort, at most once a minute: a busy SQLite must not fail the request
        with suppress(OperationalError), hub.transaction() as session:
            if over:
                session.execute(delete(WebSession).where(WebSession.token_hash == key))
            else:
                session.execute(update(WebSession).where(WebSession.token_hash == key).values(last_seen_at=now))
    if over:
        raise SessionExpired()
    return principal


def token_principal(hub: Hub, secret: str) -> Principal | None:
    info = resolve_token(hub, secret)
    if info is None:
        return None
    scopes = frozenset(info.scopes) & role_scopes(info.role)
    return Principal(actor=info.actor(), scopes=scopes, token_id=info.id)


def check_csrf(principal: Principal, given: str | None) -> None:
    """Forms and cookie-borne API writes must carry the session's CSRF token (a forged form on
    another site has the cookie but not the token). Bearer tokens are not sent by browsers."""
    if principal.csrf is None:
        return
    if not given or not same(given, principal.csrf):
        raise HTTPException(403, "CSRF 校验失败，请刷新页面后重试 (CSRF token missing or wrong)")


class Throttle:
    """At most `limit` events per key in `window` seconds (failed logins per client address), a
    moving window kept by the `limits` library. With `redis_url` (HUB_REDIS_URL or `redis_url` in
    hub.yaml) every API process counts in the same Redis, so three replicas behind a proxy allow
    `limit` in all, not three times it; without, each process counts its own (the embedded
    default, one process). Should Redis be unreachable the process falls back to its own count
    rather than refuse every login; the per-account lockout in the database still holds."""

    def __init__(
        self, redis_url: str | None = None, *, limit: int = 20, window: int = 600, prefix: str = THROTTLE_PREFIX
    ) -> None:
        self.item = RateLimitItemPerSecond(limit, window)  # `limit` per `window` seconds
        self.shared = bool(redis_url)
        self.prefix = prefix  # each throttle its own Redis keys (the status lookup's are not logins)
        store = storage_from_string(redis_url, key_prefix=prefix) if redis_url else MemoryStorage()
        self._limiter = MovingWindowRateLimiter(store)
        self._fallback = MovingWindowRateLimiter(MemoryStorage())

    def _call(self, name: str, key: str) -> bool:
        try:
            return getattr(self._limiter, name)(self.item, key)
        except Exception as exc:  # Redis down or refusing: never lock everyone out for it
            log.warning(
                "%s throttle storage unavailable, counting in this process: %s", self.prefix, type(exc).__name__
            )
            return getattr(self._fallback, name)(self.item, key)

    def blocked(self, key: str) -> bool:
        return not self._call("test", key)

    def hit(self, key: str) -> None:
        self._call("hit", key)

    def take(self, key: str) -> bool:
        """Count one more and say whether it was within the limit — one atomic step (in Redis
        too), so parallel requests cannot all pass a check made before any of them counted."""
        return self._call("hit", key)


def active_session_count(hub: Hub) -> int:
    now = naive_utc(hub.now())
    with hub.sessions() as session:
        return len(session.scalars(select(WebSession.token_hash).where(WebSession.expires_at > now)).all())
