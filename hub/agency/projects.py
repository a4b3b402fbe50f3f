"""The project ledger (项目台账, 重大项目代办库): a major project, the company behind it, the agent
in charge, its applications across departments (by number; their state and due date read from the
applications table, never copied), its milestones, and what is overdue — milestones past due and
not done, and linked applications still open past their due date. Supervisors see every project
and keep the ledger; the agent in charge sees its own and records milestones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session, selectinload

from hub import audit, text
from hub.agency import roster
from hub.agency.tasks import Who
from hub.context import Hub
from hub.errors import FieldError, Forbidden, InvalidInput, NotFound
from hub.ids import check_uscc
from hub.lifecycle import OPEN, STATE_ZH, Role
from hub.storage.tables import AgentProfile, Application, Project, ProjectApplication, ProjectMilestone, naive_utc

MAX_INVESTMENT_WAN = 10**9  # 万元: ten trillion yuan is not a county project


class NewProject(BaseModel):
    name: str = Field(default="", max_length=200)
    company_name: str = Field(default="", max_length=200)
    credit_code: str = Field(default="", max_length=32)
    investment_wan: int | None = None
    agent: str | None = Field(default=None, max_length=64)  # the username of the agent in charge


def scoped(stmt: Select, me: Who) -> Select:
    if me.role in (Role.supervisor, Role.ops):
        return stmt
    if me.role is Role.agent and me.agent_id is not None:
        return stmt.where(Project.agent_id == me.agent_id)
    return stmt.where(false())


def _get(session: Session, project_id: int, me: Who) -> Project:
    project = session.scalar(scoped(select(Project).where(Project.id == project_id), me))
    if project is None:
        raise NotFound(f"项目 {project_id} 不存在 (no such project)")
    return project


def _supervisor(me: Who) -> None:
    if me.role is not Role.supervisor:
        raise Forbidden("只有督查人员可以维护项目台账 (only supervisors keep the ledger)")


def create(hub: Hub, me: Who, new: NewProject) -> Project:
    _supervisor(me)
    credit = text.fold_code(new.credit_code).upper()
    errors: list[FieldError] = []
    if not new.name.strip():
        errors.append(FieldError.of("name", "请填写项目名称", "the project's name is required"))
    if not new.company_name.strip():
        errors.append(FieldError.of("company_name", "请填写项目单位", "the company is required"))
    if reason := check_uscc(credit):
        errors.append(FieldError("credit_code", reason))
    if new.investment_wan is None or not 0 <= new.investment_wan <= MAX_INVESTMENT_WAN:
        errors.append(
            FieldError.of("investment_wan", "总投资应为0至10亿万元之间的整数（万元）", "0 to 10^9 (10k yuan)")
        )
    errors += text.check_all({"name": new.name, "company_name": new.company_name})
    agent_id = None
    if new.agent:
        with hub.sessions() as session:
            row = roster.profile(session, new.agent)
            agent_id = row.id if row is not None and row.active else None
        if agent_id is None:
            errors.append(FieldError.of("agent", "该代办员不在名册中或已停用", "not an active agent on the roster"))
    if errors:
        raise InvalidInput(errors)
    with hub.transaction() as session:
        project = Project(
            name=new.name.strip(),
            company_name=new.company_name.strip(),
            credit_code=credit,
            investment_wan=new.investment_wan or 0,
            agent_id=agent_id,
            created_by=me.actor.name,
            created_at=naive_utc(hub.now()),
        )
        session.add(project)
        session.flush()
        audit.add(session, hub, me.actor, "project_created", target=f"project:{project.id}", name=project.name)
    return project


def link_application(hub: Hub, me: Who, project_id: int, number: str) -> None:
    """Add an application (any department's) to the project by its number."""
    _supervisor(me)
    number = text.fold_code(number).upper()
    with hub.transaction() as session:
        project = _get(session, project_id, me)
        if session.scalar(select(Application.id).where(Application.number == number)) is None:
            raise InvalidInput.field("application_number", f"办件 {number[:32]} 不存在", "no such application")
        known = session.scalar(
            select(ProjectApplication.id).where(
                ProjectApplication.project_id == project.id, ProjectApplication.application_number == number
            )
        )
        if known is None:
            session.add(
                ProjectApplication(
                    project_id=project.id,
                    application_number=number,
                    added_by=me.actor.name,
                    added_at=naive_utc(hub.now()),
                )
            )
            audit.add(
                session, hub, me.actor, "project_application_added", target=f"project:{project.id}", number=number
            )


def add_milestone(hub: Hub, me: Who, project_id: int, name: str, due: date | None) -> None:
    errors: list[FieldError] = []
    if not name.strip() or len(name) > 200:
        errors.append(FieldError.of("name", "请填写节点名称（不超过200字）", "1 to 200 characters"))
    elif e := text.check("name", name):
        errors.append(e)
    if due is None:
        errors.append(FieldError.of("milestone_due", "请填写计划完成日期", "the due date is required"))
    if errors:
        raise InvalidInput(errors)
    assert due is not None
    with hub.transaction() as session:
        project = _get(session, project_id, me)
        session.add(
            ProjectMilestone(project_id=project.id, name=name.strip(), due_date=due, created_at=naive_utc(hub.now()))
        )
        audit.add(session, hub, me.actor, "project_milestone_added", target=f"project:{project.id}", name=name.strip())


def milestone_done(hub: Hub, me: Who, project_id: int, milestone_id: int, done: date | None = None) -> None:
    done = done or hub.today()
    if done > hub.today():
        raise InvalidInput.field("done_date", "完成日期不能晚于今天", "cannot be in the future")
    with hub.transaction() as session:
        project = _get(session, project_id, me)
        m = session.get(ProjectMilestone, milestone_id)
        if m is None or m.project_id != project.id:
            raise NotFound(f"节点 {milestone_id} 不存在 (no such milestone)")
        m.done_date = done
        audit.add(session, hub, me.actor, "project_milestone_done", target=f"project:{project.id}", milestone=m.name)


@dataclass
class Ledger:
    project: Project
    agent_name: str | None
    applications: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overdue(self) -> list[dict[str, Any]]:
        """The overdue steps: milestones and applications, earliest due first."""
        steps = [{"kind": "milestone", **m} for m in self.milestones if m["overdue"]]
        steps += [{"kind": "application", **a} for a in self.applications if a["overdue"]]
        return sorted(steps, key=lambda s: s["due_date"])


def _ledgers(session: Session, projects: list[Project], today: date) -> list[Ledger]:
    ids = [p.id for p in projects]
    links = session.execute(
        select(ProjectApplication.project_id, Application)
        .join(Application, Application.number == ProjectApplication.application_number)
        .where(ProjectApplication.project_id.in_(ids))
        .order_by(ProjectApplication.id)
        .options(selectinload(Application.parts))  # the departments, in one more query, not one per application
    ).all()
    milestones = session.scalars(
        select(ProjectMilestone)
        .where(ProjectMilestone.project_id.in_(ids))
        .order_by(ProjectMilestone.due_date, ProjectMilestone.id)
    ).all()
    agents = {
        a.id: a.name
        for a in session.scalars(
            select(AgentProfile).where(AgentProfile.id.in_([p.agent_id for p in projects if p.agent_id]))
        )
    }
    out = {p.id: Ledger(p, agents.get(p.agent_id or 0)) for p in projects}
    for project_id, app in links:
        still_open = app.state in OPEN
        out[project_id].applications.append(
            {
                "number": app.number,
                "title": app.title,
                "department": ", ".join(sorted({p.department_code for p in app.parts})),
                "state": app.state,
                "state_zh": STATE_ZH.get(app.state, app.state),
                "due_date": app.due_date,
                "overdue": bool(still_open and app.due_date and app.due_date < today),
            }
        )
    for m in milestones:
        out[m.project_id].milestones.append(
            {
                "id": m.id,
                "name": m.name,
                "due_date": m.due_date,
                "done_date": m.done_date,
                "overdue": m.done_date is None and m.due_date < today,
            }
        )
    return [out[p.id] for p in projects]


def ledger(hub: Hub, me: Who, project_id: int, *, client: str | None = None) -> Ledger:
    with hub.sessions() as session:
        project = _get(session, project_id, me)
        found = _ledgers(session, [project], hub.today())[0]
        session.expunge_all()
    audit.record(hub, me.actor, "project_viewed", target=f"project:{project_id}", client=client)
    return found


def ledgers(hub: Hub, me: Who, *, overdue_only: bool = False, limit: int = 200) -> list[Ledger]:
    """The 项目台账: every project the caller may see (`overdue_only`: those with an overdue step)."""
    with hub.sessions() as session:
        projects = list(session.scalars(scoped(select(Project), me).order_by(Project.id.desc()).limit(limit)))
        found = _ledgers(session, projects, hub.today())
        session.expunge_all()
    return [lg for lg in found if lg.overdue] if overdue_only else found
