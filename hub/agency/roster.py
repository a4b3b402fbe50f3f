"""The agent roster: who the 代办员 are, the desks and townships they serve. An agent is a login
(users, role `agent`, bound to a home desk: `hub users add … --role agent --desk …`) plus a row
here. One set of rules (`problems`) for the CLI, the ops page and any API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import audit, text
from hub.applications.models import Actor
from hub.catalog.forms import PHONE
from hub.context import Hub
from hub.errors import FieldError, InvalidInput, NotFound
from hub.ids import check_id_number
from hub.lifecycle import Role
from hub.storage.tables import AgentProfile, User, naive_utc

# Sample names of the county's 乡镇 (GB/T 2260 township level: the county's 6 digits + 3). Any
# 9-digit code under the county is accepted; these are the ones the pages can name.
TOWNSHIPS: dict[str, str] = {
    "330329100": "罗阳镇",
    "330329101": "司前畲族镇",
    "330329102": "百丈镇",
    "330329103": "筱村镇",
    "330329104": "泗溪镇",
    "330329105": "彭溪镇",
    "330329106": "雅阳镇",
    "330329107": "仕阳镇",
    "330329108": "三魁镇",
    "330329200": "竹里畲族乡",
    "330329201": "东溪乡",
    "330329202": "包垟乡",
}


def township_name(code: str | None) -> str:
    return TOWNSHIPS.get(code or "", code or "")


def township_problem(hub: Hub, code: str) -> FieldError | None:
    """A township is a 9-digit GB/T 2260 code under the county's division (config: county.division)."""
    county = hub.settings.county.division
    if not (len(code) == 9 and code.isascii() and code.isdigit()):
        return FieldError.of("township", f"乡镇代码应为9位数字：{code[:20]}", "a township code has 9 digits")
    if not code.startswith(county):
        return FieldError.of("township", f"乡镇代码 {code} 不在本县（{county}）", f"{code} is not under {county}")
    return None


@dataclass(frozen=True)
class AgentView:
    id: int
    username: str
    name: str
    id_number: str
    phone: str | None
    home_desk: str | None
    desks: list[str]
    townships: list[str]
    active: bool


def profile(session: Session, username: str) -> AgentProfile | None:
    """The roster entry of the agent who logs in as `username` (None: not on the roster)."""
    return session.scalar(
        select(AgentProfile).join(User, User.id == AgentProfile.user_id).where(User.username == username)
    )


def problems(
    hub: Hub,
    *,
    name: str | None = None,
    id_number: str | None = None,
    phone: str | None = None,
    desks: list[str] | None = None,
    townships: list[str] | None = None,
) -> list[FieldError]:
    """What is wrong with a roster entry's fields (None: not being set)."""
    errors: list[FieldError] = []
    if name is not None:
        if not name.strip() or len(name) > 100:
            errors.append(FieldError.of("name", "姓名不能为空且不超过100字", "1 to 100 characters"))
        elif e := text.check("name", name):
            errors.append(e)
    if id_number is not None and (reason := check_id_number(id_number, today=hub.today())):
        errors.append(FieldError("id_number", reason))
    if phone and not PHONE.match(phone):
        errors.append(FieldError.of("phone", "电话号码格式不正确", "not a mainland phone number"))
    for code in desks or []:
        if code not in hub.catalog.desks:
            errors.append(FieldError.of("desk", f"窗口 {code[:64]} 不存在", "unknown desk"))
    for code in townships or []:
        if e := township_problem(hub, code):
            errors.append(e)
    return errors


def _fold(values: list[str] | None) -> list[str] | None:
    return None if values is None else list(dict.fromkeys(text.fold_code(v) for v in values if v.strip()))


def add(
    hub: Hub,
    actor: Actor,
    username: str,
    *,
    name: str,
    id_number: str,
    phone: str | None = None,
    desks: list[str] | None = None,
    townships: list[str] | None = None,
) -> AgentView:
    """Put a login of role `agent` on the roster (its home desk served unless desks are named)."""
    id_number = text.fold_code(id_number).upper()
    phone = text.fold_code(phone) if phone else None
    desks, townships = _fold(desks), _fold(townships)
    errors = problems(hub, name=name, id_number=id_number, phone=phone, desks=desks, townships=townships)
    with hub.sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            errors.insert(0, FieldError.of("username", f"用户 {username[:64]} 不存在", "no such user"))
        elif user.role != Role.agent.value:
            errors.insert(0, FieldError.of("username", "该用户不是代办员角色", "the user's role is not agent"))
        elif profile(session, username) is not None:
            errors.insert(0, FieldError.of("username", "该代办员已在名册中", "already on the roster"))
        # an agent's scope is the applications it collected under its ID number: one person, one entry
        if session.scalar(select(AgentProfile.id).where(AgentProfile.id_number == id_number)) is not None:
            errors.append(_ID_TAKEN)
    if errors:
        raise InvalidInput(errors)
    assert user is not None
    try:
        _insert(hub, actor, user, username, name, id_number, phone, desks, townships)
    except IntegrityError:  # the same ID number added at the same moment under another login
        raise InvalidInput([_ID_TAKEN]) from None
    return get(hub, username)


_ID_TAKEN = FieldError.of("id_number", "该身份证号码已登记给另一位代办员", "ID number already on the roster")


def _insert(
    hub: Hub,
    actor: Actor,
    user: User,
    username: str,
    name: str,
    id_number: str,
    phone: str | None,
    desks: list[str] | None,
    townships: list[str] | None,
) -> None:
    with hub.transaction() as session:
        row = AgentProfile(
            user_id=user.id,
            name=name.strip(),
            id_number=id_number,
            phone=phone,
            desks=desks or ([user.desk_code] if user.desk_code else []),
            townships=townships or [],
            active=True,
            created_at=naive_utc(hub.now()),
        )
        session.add(row)
        audit.add(session, hub, actor, "agent_added", target=f"agent:{username}", desks=row.desks)


def update(
    hub: Hub,
    actor: Actor,
    username: str,
    *,
    phone: str | None = None,
    desks: list[str] | None = None,
    townships: list[str] | None = None,
    active: bool | None = None,
) -> AgentView:
    """Change what an agent serves, their phone, or whether they are active."""
    phone = text.fold_code(phone) if phone else phone
    desks, townships = _fold(desks), _fold(townships)
    errors = problems(hub, phone=phone, desks=desks, townships=townships)
    if errors:
        raise InvalidInput(errors)
    with hub.transaction() as session:
        row = profile(session, username)
        if row is None:
            raise NotFound(f"代办员 {username[:64]} 不在名册中 (not on the roster)")
        changed: dict[str, object] = {}
        for key, value in (("phone", phone), ("desks", desks), ("townships", townships), ("active", active)):
            if value is not None and getattr(row, key) != value:
                setattr(row, key, value)
                changed[key] = value
        if changed:
            audit.add(session, hub, actor, "agent_changed", target=f"agent:{username}", **changed)
    return get(hub, username)


def deactivate(hub: Hub, actor: Actor, username: str) -> AgentView:
    return update(hub, actor, username, active=False)


def _view(row: AgentProfile, user: User) -> AgentView:
    return AgentView(
        row.id,
        user.username,
        row.name,
        row.id_number,
        row.phone,
        user.desk_code,
        list(row.desks or []),
        list(row.townships or []),
        bool(row.active and not user.disabled),
    )


def get(hub: Hub, username: str) -> AgentView:
    with hub.sessions() as session:
        found = session.execute(
            select(AgentProfile, User).join(User, User.id == AgentProfile.user_id).where(User.username == username)
        ).first()
    if found is None:
        raise NotFound(f"代办员 {username[:64]} 不在名册中 (not on the roster)")
    return _view(*found)


def roster(hub: Hub, *, active_only: bool = False) -> list[AgentView]:
    with hub.sessions() as session:
        rows = session.execute(
            select(AgentProfile, User).join(User, User.id == AgentProfile.user_id).order_by(User.username)
        ).all()
    views = [_view(a, u) for a, u in rows]
    return [v for v in views if v.active] if active_only else views


def by_id(session: Session, agent_id: int | None) -> AgentProfile | None:
    return session.get(AgentProfile, agent_id) if agent_id else None


def serves(agent: AgentProfile | AgentView, desk: str | None, township: str | None) -> bool:
    """Whether the agent serves a task at this desk or in this township."""
    return bool((desk and desk in (agent.desks or [])) or (township and township in (agent.townships or [])))
