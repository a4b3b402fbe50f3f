"""Reading applications within the actor's scope: a desk sees its own applications, a department
its own parts, an applicant their own; anything else is "not found", never data."""

from __future__ import annotations

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, selectinload

from hub import lifecycle
from hub.applications.models import Actor
from hub.context import Hub
from hub.errors import NotFound
from hub.lifecycle import FRONT, Role, State
from hub.storage.tables import Application, Part


def scoped(stmt: Select, actor: Actor) -> Select:
    """Limit a select over Application to what `actor` may see."""
    if actor.role in FRONT:
        return stmt.where(Application.desk_code == (actor.desk or "\0"))
    if actor.role is Role.agent:
        # 帮代办: an agent sees what it collected as the applicant's agent (its tasks' applications
        # among them), at its home desk — not every application of the desk
        return stmt.where(
            Application.desk_code == (actor.desk or "\0"), Application.agent_id == (actor.agent_id or "\0")
        )
    if actor.role is Role.officer:
        return stmt.where(
            exists().where(Part.application_id == Application.id, Part.department_code == (actor.department or "\0"))
        )
    if actor.role is Role.applicant:
        return stmt.where(Application.applicant_id == (actor.applicant_id or "\0"))
    return stmt  # supervisor, ops, system see everything


def get(session: Session, number: str, actor: Actor, *, for_update: bool = False, brief: bool = False) -> Application:
    """The application with everything it holds loaded (`brief`: only its row and parts)."""
    stmt = scoped(select(Application).where(Application.number == number), actor)
    if brief:
        stmt = stmt.options(selectinload(Application.parts))
    else:
        stmt = stmt.options(
            selectinload(Application.parts),
            selectinload(Application.events),
            selectinload(Application.materials),
            selectinload(Application.deficiencies),
        )
    if for_update:
        stmt = stmt.with_for_update(of=Application)
    app = session.scalars(stmt).one_or_none()
    if app is None:
        raise NotFound(f"办件 {number} 不存在 (no such application)")
    return app


def may_reveal_ids(actor: Actor) -> bool:
    """Who may see full ID numbers on a detail view (lists always mask): those handling the
    case, within their scope. Supervisors and ops work with figures, not identities."""
    return actor.role not in (Role.supervisor, Role.ops)


def list_applications(
    session: Session, actor: Actor, *, state: str | None = None, desk: str | None = None, limit: int = 100
) -> list[Application]:
    stmt = scoped(select(Application), actor).options(selectinload(Application.parts))
    if state:
        stmt = stmt.where(Application.state == state)
    if desk:
        stmt = stmt.where(Application.desk_code == desk)
    return list(session.scalars(stmt.order_by(Application.id.desc()).limit(limit)))


def read(hub: Hub, number: str, actor: Actor) -> Application:
    with hub.sessions() as session:
        return get(session, number, actor)


def outcome_of(app: Application) -> str | None:
    if app.state in (State.decided, State.issued, State.delivered):
        return lifecycle.outcome([p.state for p in app.parts])
    return None
