"""Enrolled kit devices: a logged-in agent enrols a laptop or tablet (the hub keeps the hash of
its device token, never the token), the device authenticates its sync with the token, and ops,
a supervisor or the agent revoke a lost one — its next sync is refused (`device_revoked`) and
the kit wipes what it holds. One implementation for the web page, the API and `hub kit devices`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hub import audit, text
from hub.agency.roster import profile
from hub.applications.models import Actor, Agent
from hub.context import Hub
from hub.errors import Forbidden, InvalidInput, NotFound
from hub.lifecycle import Role
from hub.storage.tables import AgentProfile, KitDevice, User, naive_utc
from hub.tokens import digest  # only a token's hash is kept, as for API tokens

REVOKERS = frozenset({Role.ops, Role.supervisor})  # any device; an agent revokes only its own
NAME_MAX = 100


class DeviceRefused(Exception):
    """A sync or bundle request the device may not make: `code` is what the kit acts on
    (`device_unknown`: enrol again; `device_revoked`: wipe local data; `agent_inactive`)."""

    def __init__(self, code: str, zh: str, en: str):
        self.code, self.zh, self.en = code, zh, en
        super().__init__(f"{zh} ({en})")


@dataclass(frozen=True)
class Device:
    id: int
    name: str
    username: str
    agent_name: str
    created_at: datetime
    last_sync_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def as_dict(self) -> dict[str, object]:
        """As the API and `hub kit devices list --json` show it (the agent is staff: not masked)."""
        return {
            "id": self.id,
            "name": self.name,
            "agent": self.agent_name,
            "username": self.username,
            "created_at": self.created_at.isoformat(),
            "last_sync_at": self.last_sync_at.isoformat() if self.last_sync_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True)
class DeviceAuth:
    """A device that may sync: who acts (the agent, at its home desk) and as whom it signs."""

    device_id: int
    actor: Actor
    desk: str
    agent: Agent


def _view(row: KitDevice, user: User) -> Device:
    return Device(
        row.id,
        row.name,
        user.username,
        user.display_name,
        row.created_at,
        row.last_sync_at,
        row.revoked_at,
        row.revoked_by,
    )


def enrol(hub: Hub, actor: Actor, username: str, name: str) -> tuple[Device, str]:
    """A new device for the logged-in agent `username`; returns it and its token (shown once, kept
    by the kit encrypted under the agent's PIN)."""
    name = name.strip()
    if not name:
        raise InvalidInput.field("name", "设备名称为必填项", "device name is required")
    if len(name) > NAME_MAX:
        raise InvalidInput.field("name", f"设备名称不超过{NAME_MAX}个字符", f"at most {NAME_MAX} characters")
    if bad := text.check("name", name):
        raise InvalidInput([bad])
    if actor.role is not Role.agent:
        raise Forbidden("只有代办员可以登记政务背包设备 (only agents enrol kit devices)")
    token = secrets.token_urlsafe(32)
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        agent = profile(session, username)
        if user is None or agent is None or not agent.active:
            raise Forbidden("代办员不在花名册上或已停用 (not an active agent on the roster)")
        row = KitDevice(user_id=user.id, name=name, token_hash=digest(token), created_at=now)
        session.add(row)
        session.flush()
        audit.add(session, hub, actor, "kit_device_enrolled", target=f"kit-device:{row.id}", name=name)
        return _view(row, user), token


def authenticate(hub: Hub, token: str) -> DeviceAuth:
    """The device holding `token`, as it may act now; refused when unknown, revoked, or its agent
    is disabled, off the roster or moved off the agent role."""
    with hub.sessions() as session:
        found = session.execute(
            select(KitDevice, User)
            .join(User, User.id == KitDevice.user_id)
            .where(KitDevice.token_hash == digest(token))
        ).one_or_none()
        if found is None:
            raise DeviceRefused("device_unknown", "设备未登记或凭证无效", "unknown device")
        row, user = found
        if row.revoked_at is not None:
            raise DeviceRefused("device_revoked", "该设备已被吊销，本机数据将被清除", "this device was revoked")
        agent = session.scalar(select(AgentProfile).where(AgentProfile.user_id == user.id))
        if user.disabled or user.role != Role.agent.value or agent is None or not agent.active or not user.desk_code:
            raise DeviceRefused("agent_inactive", "代办员账号已停用或不在花名册上", "the agent is not active")
        actor = Actor(name=user.display_name, role=Role.agent, desk=user.desk_code, agent_id=agent.id_number)
        return DeviceAuth(row.id, actor, user.desk_code, Agent(name=agent.name, id_number=agent.id_number))


def list_devices(hub: Hub, actor: Actor, username: str | None) -> list[Device]:
    """Devices the caller may see: all for ops and supervisors, an agent's own otherwise."""
    with hub.sessions() as session:
        stmt = select(KitDevice, User).join(User, User.id == KitDevice.user_id).order_by(KitDevice.id)
        if actor.role not in REVOKERS and actor.role is not Role.system:
            if actor.role is not Role.agent or not username:
                raise Forbidden("无权查看政务背包设备 (may not list kit devices)")
            stmt = stmt.where(User.username == username)
        return [_view(row, user) for row, user in session.execute(stmt)]


def revoke(hub: Hub, actor: Actor, device_id: int, username: str | None = None) -> Device:
    """Revoke a device (idempotent: revoking it again keeps the first time). An agent may revoke
    only its own; another's is NotFound to it, as if it did not exist."""
    with hub.transaction() as session:
        found = session.execute(
            select(KitDevice, User).join(User, User.id == KitDevice.user_id).where(KitDevice.id == device_id)
        ).one_or_none()
        mine = found is not None and actor.role is Role.agent and username == found[1].username
        if found is None or not (mine or actor.role in REVOKERS or actor.role is Role.system):
            raise NotFound(f"没有编号为 {device_id} 的设备 (no such device)")
        row, user = found
        if row.revoked_at is None:
            row.revoked_at = naive_utc(hub.now())
            row.revoked_by = actor.name
            audit.add(session, hub, actor, "kit_device_revoked", target=f"kit-device:{row.id}", agent=user.username)
        return _view(row, user)
