"""API tokens for systems (`hub tokens …`): a bank's intake service, a report puller. The token
is shown once at creation; only its sha256 is kept. A token acts as one role at one desk or
department and only within its scopes; revoking it takes effect on the next request."""

from __future__ import annotations

import hashlib
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from hub import audit
from hub import text as characters
from hub.applications import Actor
from hub.context import Hub
from hub.errors import FieldError, Forbidden, InvalidInput, NotFound, Reason
from hub.lifecycle import Role
from hub.storage.tables import ApiToken, naive_utc
from hub.users import NO_APPROVAL, Approval, approve, check_binding

PREFIX = "tbh_"  # so a leaked token is recognisable in logs and secret scanners
SCOPES = {
    "applications:read": "查询办件 read applications in scope",
    "applications:write": "收件、补充材料、办理 create and act on applications in scope",
    "reports:read": "统计报表 read dashboard figures",
    "ops": "运维 connections, outbox, jobs",
}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    role: Role
    desk: str | None
    department: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_by: str = ""  # who made it: a person's name, or cli:<host user>

    def actor(self) -> Actor:
        return Actor(name=f"token:{self.name}", role=self.role, desk=self.desk, department=self.department)


def _info(t: ApiToken) -> TokenInfo:
    return TokenInfo(
        t.id,
        t.name,
        t.prefix,
        Role(t.role),
        t.desk_code,
        t.department_code,
        tuple(t.scopes),
        t.created_at,
        t.expires_at,
        t.last_used_at,
        t.revoked_at,
        t.created_by,
    )


def create_token(
    hub: Hub,
    name: str,
    *,
    role: Role,
    scopes: list[str],
    desk: str | None = None,
    department: str | None = None,
    created_by: str,
    days: int | None = None,
) -> tuple[str, TokenInfo]:
    """A new token: (the secret, shown once; its record)."""
    errors = check_binding(hub, role, desk, department)
    if not name.strip() or len(name) > 100:
        errors.append(FieldError("name", Reason("名称为1-100字", "1-100 characters")))
    elif bad := characters.check("name", name):
        errors.append(bad)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        errors.append(
            FieldError("scopes", Reason(f"未知或缺少权限范围 {', '.join(unknown)}；可选 {', '.join(SCOPES)}", "scopes"))
        )
    if days is not None and days < 1:
        errors.append(FieldError("days", Reason("有效期至少1天", "at least 1 day")))
    if errors:
        raise InvalidInput(errors)
    secret = PREFIX + secrets.token_urlsafe(32)
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        row = ApiToken(
            name=name.strip(),
            token_hash=digest(secret),
            prefix=secret[: len(PREFIX) + 6],
            role=role.value,
            desk_code=desk,
            department_code=department,
            scopes=sorted(set(scopes)),
            created_at=now,
            created_by=created_by,
            expires_at=now + timedelta(days=days) if days else None,
        )
        session.add(row)
        session.flush()
        return secret, _info(row)


_LIVE = ApiToken.__table__


def resolve_token(hub: Hub, secret: str) -> TokenInfo | None:
    """The live token with this secret, or None (unknown, revoked or expired). On every API
    request, so on a plain connection, not through the ORM."""
    if not secret.startswith(PREFIX):
        return None
    now = naive_utc(hub.now())
    with hub.engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one statement: no BEGIN/ROLLBACK round trips around it
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        row = conn.execute(select(_LIVE).where(_LIVE.c.token_hash == digest(secret))).one_or_none()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        return None
    info = _info(row)  # type: ignore[arg-type]  # a Row has the same attributes as the ORM object
    if info.last_used_at is None or now - info.last_used_at > timedelta(minutes=1):
        # at most once a minute, and best effort: a busy SQLite must not fail the request for it
        with suppress(OperationalError), hub.write_connection() as conn:
            conn.execute(update(_LIVE).where(_LIVE.c.id == info.id).values(last_used_at=now))
    return info


def revoke_token(hub: Hub, token_id: int) -> TokenInfo:
    with hub.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"令牌 {token_id} 不存在 (no such token)")
        row.revoked_at = row.revoked_at or naive_utc(hub.now())
        return _info(row)


# Over the network (the API, the ops page) ops mints tokens for desk systems only; officer,
# supervisor, ops and `system` tokens are made on the host with `hub tokens create`.
REMOTE_ROLES = (Role.teller, Role.enclave_clerk, Role.clerk)


class HostOnly(Forbidden):
    """A token of this role is not minted over the network."""

    def __init__(self) -> None:
        self.errors = [FieldError("role", Reason("该角色的令牌只能在服务器上用命令行创建", "created on the host only"))]
        super().__init__("只能通过命令行创建该角色的令牌 (this role's tokens are created with `hub tokens create`)")


def issue_token(
    hub: Hub,
    actor: Actor,
    name: str,
    *,
    role: Role,
    scopes: list[str],
    desk: str | None = None,
    department: str | None = None,
    days: int | None = None,
    approval: Approval = NO_APPROVAL,
    requester: str | None = None,
    remote: bool = True,
    client: str | None = None,
) -> tuple[str, TokenInfo]:
    """A token, approved when its role needs it (双人授权), audited; (secret shown once, record).
    `remote`: asked for over the network by an ops person (API or page), who may mint desk-system
    tokens only."""
    desk, department = desk or None, department or None
    if remote and (role is Role.system or (actor.role is Role.ops and role not in REMOTE_ROLES)):
        raise HostOnly()
    approved = approve(hub, role, desk, department, approval.username, approval.password, requester=requester)
    secret, info = create_token(
        hub,
        name,
        role=role,
        scopes=scopes,
        desk=desk,
        department=department,
        created_by=actor.name,
        days=days,
    )
    audit.record(
        hub,
        actor,
        "token_create",
        target=str(info.id),
        client=client,
        role=info.role.value,
        place=info.desk or info.department,
        scopes=list(info.scopes),
        approved_by=approved.username if approved else None,
    )
    return secret, info


def withdraw_token(hub: Hub, actor: Actor, token_id: int, *, client: str | None = None) -> TokenInfo:
    """Revoke a token (on its next request it is refused), audited."""
    info = revoke_token(hub, token_id)
    audit.record(hub, actor, "token_revoke", target=str(info.id), client=client)
    return info


def tokens_page(hub: Hub, *, limit: int = 100, offset: int = 0) -> tuple[list[TokenInfo], int]:
    """One page of tokens, live ones first then newest first (ids are unique: a stable order)."""
    with hub.sessions() as session:
        total = session.scalar(select(func.count()).select_from(ApiToken)) or 0
        stmt = select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())
        return [_info(t) for t in session.scalars(stmt.limit(limit).offset(offset))], total


def list_tokens(hub: Hub) -> list[TokenInfo]:
    with hub.sessions() as session:
        return [_info(t) for t in session.scalars(select(ApiToken).order_by(ApiToken.id))]
