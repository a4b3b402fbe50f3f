"""Agency tasks (帮代办): a resident's request for help, from the resident online or entered by a
desk, taken by an agent (抢单: first come — one conditional UPDATE … WHERE state = 'open', so of
two agents pressing 接单 at once exactly one wins and the other is told 已被他人接单) or assigned
by a desk or a supervisor. A task keeps its visits, the materials collected, the 委托书 and the
applications it produced; no application before the 委托书 is signed.

Scope: an agent sees the tasks it holds and the open ones it serves (its desks and townships, and
only while active); a desk the tasks it created or that are served from it; a resident the ones
they asked for; supervisors and ops all. Anything else is "not found"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, false, or_, select, update
from sqlalchemy.orm import Session

from hub import applications as svc
from hub import audit, text
from hub.agency import consent, roster
from hub.applications.models import Actor
from hub.catalog.forms import PHONE
from hub.context import Hub
from hub.errors import FieldError, Forbidden, IllegalTransition, InvalidInput, NotFound
from hub.ids import check_id_number, mask_id
from hub.lifecycle import FRONT, Role
from hub.storage.tables import (
    AgencyMaterial,
    AgencyTask,
    AgencyTaskApplication,
    AgencyTaskEvent,
    AgencyVisit,
    AgentProfile,
    Application,
    User,
    naive_utc,
)

STATE_ZH = {"open": "待接单", "taken": "已接单", "visiting": "上门服务中", "done": "已办结", "cancelled": "已撤销"}
ACTION_ZH = {
    "opened": "提出代办申请",
    "taken": "接单",
    "assigned": "指派",
    "visit": "上门服务",
    "material": "收取材料",
    "consent": "签署委托书",
    "application": "发起办件",
    "done": "办结",
    "cancelled": "撤销",
}
OUTCOME_ZH = {"met": "已见到申请人", "collected": "已收取材料", "not_home": "未遇（不在家）", "other": "其他"}
ACTIVE = ("taken", "visiting")
TAKEN_BY_OTHER = "已被他人接单 (already taken by another agent)"


@dataclass(frozen=True)
class Who:
    """The caller as tasks see them: the actor and, for an agent, its roster entry."""

    actor: Actor
    agent_id: int | None = None
    agent_name: str = ""
    agent_id_number: str = ""
    desks: tuple[str, ...] = ()
    townships: tuple[str, ...] = ()
    active: bool = False

    @property
    def role(self) -> Role:
        return self.actor.role


def who(hub: Hub, actor: Actor, username: str | None = None) -> Who:
    """The caller; an agent's roster entry is found by its login name."""
    if actor.role is not Role.agent or not username:
        return Who(actor)
    with hub.sessions() as session:
        row = roster.profile(session, username)
        if row is None:
            return Who(actor)  # an agent not on the roster sees nothing
        # the roster's ID number on the actor: what the agent collects carries it (and it scopes them)
        actor = actor.model_copy(update={"agent_id": row.id_number})
        return Who(
            actor, row.id, row.name, row.id_number, tuple(row.desks or ()), tuple(row.townships or ()), row.active
        )


def scoped(stmt: Select, me: Who) -> Select:
    """Limit a select over AgencyTask to what the caller may see."""
    role = me.role
    if role is Role.agent:
        if me.agent_id is None:
            return stmt.where(false())
        mine = AgencyTask.agent_id == me.agent_id
        if not me.active:
            return stmt.where(mine)
        serving = or_(AgencyTask.desk_code.in_(me.desks or ("\0",)), AgencyTask.township.in_(me.townships or ("\0",)))
        return stmt.where(or_(mine, (AgencyTask.state == "open") & serving))
    if role in FRONT:
        return stmt.where(AgencyTask.desk_code == (me.actor.desk or "\0"))
    if role is Role.applicant:
        return stmt.where(AgencyTask.resident_id == (me.actor.applicant_id or "\0"))
    if role in (Role.supervisor, Role.ops):
        return stmt
    return stmt.where(false())


def _get(session: Session, task_id: int, me: Who, *, for_update: bool = False) -> AgencyTask:
    stmt = scoped(select(AgencyTask).where(AgencyTask.id == task_id), me)
    if for_update:
        stmt = stmt.with_for_update()
    task = session.scalar(stmt)
    if task is None:
        raise NotFound(f"代办任务 {task_id} 不存在 (no such agency task)")
    return task


def _event(session: Session, hub: Hub, task: AgencyTask, me: Who, action: str, **data: Any) -> None:
    now = naive_utc(hub.now())
    task.updated_at = now
    session.add(
        AgencyTaskEvent(
            task_id=task.id, at=now, by=me.actor.name, role=me.role.value, action=action, state=task.state, data=data
        )
    )


# ---------------------------------------------------------------- opening a task


class NewTask(BaseModel):
    """A request for help. From a resident: the name and ID number come from their session."""

    subject: str = Field(min_length=1, max_length=32)  # the item (or bundle) the resident needs
    resident_name: str = Field(default="", max_length=100)
    resident_id: str | None = Field(default=None, max_length=32)
    phone: str = Field(default="", max_length=32)
    township: str | None = Field(default=None, max_length=32)
    desk: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=200)
    preferred_time: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=500)


def open_task(hub: Hub, me: Who, new: NewTask) -> AgencyTask:
    """A resident asks for help (`me` a resident), or a desk asks for someone who cannot travel."""
    role = me.role
    if role is Role.applicant:
        new = new.model_copy(update={"resident_id": me.actor.applicant_id, "resident_name": me.actor.name})
        origin, desk = "resident", new.desk or None
    elif role in FRONT:
        origin, desk = "desk", me.actor.desk
    elif role is Role.supervisor:
        origin, desk = "desk", new.desk or None
    else:
        raise Forbidden("只有居民本人、窗口或督查人员可以提出代办申请 (not allowed to open agency tasks)")
    phone = text.fold_code(new.phone)
    township = text.fold_code(new.township) if new.township else None
    resident_id = text.fold_code(new.resident_id).upper() if new.resident_id else None
    errors: list[FieldError] = []
    if hub.catalog.subject(new.subject) is None:
        errors.append(FieldError.of("subject", f"事项编码 {new.subject} 不在事项目录中", "unknown item"))
    if not new.resident_name.strip():
        errors.append(FieldError.of("resident_name", "请填写申请人姓名", "the resident's name is required"))
    if resident_id and (reason := check_id_number(resident_id, today=hub.today())):
        errors.append(FieldError("resident_id", reason))
    if not PHONE.match(phone):
        errors.append(FieldError.of("phone", "请填写正确的联系电话", "a mainland phone number is required"))
    if township and (e := roster.township_problem(hub, township)):
        errors.append(e)
    if desk and desk not in hub.catalog.desks:
        errors.append(FieldError.of("desk", f"窗口 {desk[:64]} 不存在", "unknown desk"))
    if not township and not desk:
        errors.append(FieldError.of("township", "请选择所在乡镇", "the township is required"))
    errors += text.check_all(
        {"resident_name": new.resident_name, "address": new.address, "preferred_time": new.preferred_time}
    )
    if e := text.check("note", new.note, multiline=True):
        errors.append(e)
    if errors:
        raise InvalidInput(errors)
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        task = AgencyTask(
            state="open",
            origin=origin,
            subject_code=new.subject,
            desk_code=desk,
            township=township,
            resident_name=new.resident_name.strip(),
            resident_id=resident_id,
            phone=phone,
            address=(new.address or "").strip() or None,
            preferred_time=(new.preferred_time or "").strip() or None,
            note=(new.note or "").strip() or None,
            created_by=me.actor.name,
            created_role=role.value,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        session.flush()
        _event(session, hub, task, me, "opened", origin=origin)
    return task


# ---------------------------------------------------------------- taking and assigning


def take(hub: Hub, me: Who, task_id: int) -> None:
    """抢单: the first agent to take an open task it serves gets it; the others are told so."""
    if me.role is not Role.agent or me.agent_id is None or not me.active:
        raise Forbidden("只有在册的在岗代办员可以接单 (only an active agent on the roster may take a task)")
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        task = session.scalar(scoped(select(AgencyTask).where(AgencyTask.id == task_id), me))
        if task is None:
            # taken by someone else a moment ago looks the same as never served: say which
            held = session.scalar(select(AgencyTask.state).where(AgencyTask.id == task_id))
            exists = session.scalar(
                select(AgencyTask.id).where(
                    AgencyTask.id == task_id,
                    or_(
                        AgencyTask.desk_code.in_(me.desks or ("\0",)), AgencyTask.township.in_(me.townships or ("\0",))
                    ),
                )
            )
            if held is not None and exists is not None:
                if held == "cancelled":
                    raise IllegalTransition("任务已撤销 (the task was cancelled)")
                raise IllegalTransition(TAKEN_BY_OTHER)
            raise NotFound(f"代办任务 {task_id} 不存在 (no such agency task)")
        # the race is decided here, by the database: one UPDATE finds the row still open
        won = session.execute(
            update(AgencyTask)
            .where(AgencyTask.id == task_id, AgencyTask.state == "open")
            .values(state="taken", agent_id=me.agent_id, taken_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            raise IllegalTransition(TAKEN_BY_OTHER)
        session.refresh(task)
        _event(session, hub, task, me, "taken", agent=me.agent_name)


def assign(hub: Hub, me: Who, task_id: int, username: str) -> None:
    """A desk (its own tasks) or a supervisor gives an open task to an active agent who serves it."""
    if me.role not in FRONT and me.role is not Role.supervisor:
        raise Forbidden("只有窗口或督查人员可以指派 (only a desk or a supervisor may assign)")
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        task = _get(session, task_id, me)
        found = session.execute(
            select(AgentProfile, User.disabled)
            .join(User, User.id == AgentProfile.user_id)
            .where(User.username == username)
        ).first()
        agent = found[0] if found else None
        if agent is None or not agent.active or found[1]:
            raise InvalidInput.field("agent", "该代办员不在名册中或已停用", "not an active agent on the roster")
        if not roster.serves(agent, task.desk_code, task.township):
            raise InvalidInput.field(
                "agent", "该代办员不服务此窗口或乡镇", "the agent does not serve this desk or township"
            )
        won = session.execute(
            update(AgencyTask)
            .where(AgencyTask.id == task_id, AgencyTask.state == "open")
            .values(state="taken", agent_id=agent.id, taken_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            raise IllegalTransition(TAKEN_BY_OTHER)
        session.refresh(task)
        _event(session, hub, task, me, "assigned", agent=agent.name)


def _mine(session: Session, task_id: int, me: Who) -> AgencyTask:
    """The task, which the calling agent holds and which is still being worked on."""
    task = _get(session, task_id, me, for_update=True)
    if me.role is not Role.agent or task.agent_id != me.agent_id:
        raise Forbidden("只有接单的代办员可以办理此任务 (only the agent holding the task)")
    if task.state not in ACTIVE:
        raise IllegalTransition(f"任务{STATE_ZH[task.state]}，不能再办理 (the task is {task.state})")
    return task


# ---------------------------------------------------------------- the work


class VisitIn(BaseModel):
    place: str = Field(default="", max_length=200)
    outcome: str = Field(default="met", max_length=16)
    note: str | None = Field(default=None, max_length=1000)
    visited_at: datetime | None = None


def record_visit(hub: Hub, me: Who, task_id: int, visit: VisitIn) -> None:
    errors: list[FieldError] = []
    if not visit.place.strip():
        errors.append(FieldError.of("visit_place", "请填写上门地点", "the place is required"))
    if visit.outcome not in OUTCOME_ZH:
        errors.append(
            FieldError.of("visit_outcome", f"应为以下之一：{'、'.join(OUTCOME_ZH.values())}", "unknown outcome")
        )
    errors += text.check_all({"visit_place": visit.place})
    if e := text.check("note", visit.note, multiline=True):
        errors.append(e)
    at = naive_utc(visit.visited_at) if visit.visited_at else naive_utc(hub.now())
    if at > naive_utc(hub.now()):
        errors.append(FieldError.of("visited_at", "上门时间不能晚于现在", "a visit cannot be in the future"))
    if errors:
        raise InvalidInput(errors)
    with hub.transaction() as session:
        task = _mine(session, task_id, me)
        assert me.agent_id is not None
        session.add(
            AgencyVisit(
                task_id=task.id,
                agent_id=me.agent_id,
                visited_at=at,
                place=visit.place.strip(),
                outcome=visit.outcome,
                note=(visit.note or "").strip() or None,
                created_at=naive_utc(hub.now()),
            )
        )
        task.state = "visiting"
        _event(session, hub, task, me, "visit", place=visit.place.strip(), outcome=visit.outcome)


def collect_material(hub: Hub, me: Who, task_id: int, name: str, filename: str, content: bytes) -> None:
    """A material of the task's item collected at the resident's home (stored by its sha256)."""
    with hub.sessions() as session:
        task = _get(session, task_id, me)
        subject = hub.catalog.subject(task.subject_code)
    names = [m.name for m in hub.catalog.materials_of(subject)] if subject else []
    errors: list[FieldError] = []
    if name not in names:
        errors.append(FieldError.of("material", f"{name[:50]} 不是本事项的材料", "not a material of this item"))
    if not filename.strip() or len(filename) > 255 or text.problem(filename):
        errors.append(FieldError.of("filename", "文件名无效", "invalid file name"))
    if reason := hub.store.check(content):
        errors.append(FieldError("file", reason))
    if errors:
        raise InvalidInput(errors)
    stored = hub.store.put(content)  # content-addressed: a failed transaction leaves a blob, never half a row
    with hub.transaction() as session:
        task = _mine(session, task_id, me)
        session.add(
            AgencyMaterial(
                task_id=task.id,
                name=name,
                filename=filename.strip(),
                sha256=stored.sha256,
                size=stored.size,
                media_type=stored.media_type,
                collected_by=me.actor.name,
                collected_at=naive_utc(hub.now()),
            )
        )
        _event(session, hub, task, me, "material", name=name, sha256=stored.sha256)


def sign_consent(hub: Hub, me: Who, task_id: int, resident_png: str | None, agent_png: str | None) -> str:
    """The 委托书 signed on the agent's device by both; returns the PDF's sha256."""
    resident, agent = consent.check(resident_png, agent_png)
    with hub.sessions() as session:
        task = _mine(session, task_id, me)
        if task.consent_sha256:
            raise IllegalTransition("委托书已签署 (the consent is already signed)")
        if not task.resident_id:
            raise InvalidInput.field("resident_id", "请先补录申请人身份证号", "the resident's ID number is missing")
        subject = hub.catalog.subject(task.subject_code)
        desk = hub.catalog.desks.get(me.actor.desk or "")
        letter = consent.Letter(
            task_id=task.id,
            resident_name=task.resident_name,
            resident_id=task.resident_id,
            agent_name=me.agent_name,
            agent_id=me.agent_id_number,
            item_title=subject.title if subject else task.subject_code,
            desk_name=desk.name if desk else (me.actor.desk or ""),
            signed_at=hub.now().astimezone(hub.settings.tz),
        )
    stored = hub.store.put(consent.render(letter, resident, agent))
    with hub.transaction() as session:
        task = _mine(session, task_id, me)
        if task.consent_sha256:
            raise IllegalTransition("委托书已签署 (the consent is already signed)")
        task.consent_sha256 = stored.sha256
        task.consent_signed_at = naive_utc(hub.now())
        _event(session, hub, task, me, "consent", sha256=stored.sha256)
    return stored.sha256


def set_resident_id(hub: Hub, me: Who, task_id: int, id_number: str) -> None:
    """A desk's request may come without the ID number: the agent records it at the visit."""
    id_number = text.fold_code(id_number).upper()
    if reason := check_id_number(id_number, today=hub.today()):
        raise InvalidInput([FieldError("resident_id", reason)])
    with hub.transaction() as session:
        task = _mine(session, task_id, me)
        if task.consent_sha256:
            raise IllegalTransition("委托书已签署，不能更改申请人 (the consent is signed)")
        task.resident_id = id_number
        _event(session, hub, task, me, "resident_id", id=mask_id(id_number))


def start_application(hub: Hub, me: Who, task_id: int, form: dict[str, Any], source_ref: str) -> Application:
    """The agent receives an application for the task's resident at its home desk, as their agent
    (帮代办: `agent` = the agent's name and ID number), with the materials collected; linked to the
    task. Only after the 委托书 is signed. Idempotent on `source_ref` (a form posted twice)."""
    with hub.sessions() as session:
        task = _mine(session, task_id, me)
        if not task.consent_sha256:
            raise InvalidInput.field("consent", "请先签署委托书，再发起办件", "the consent must be signed first")
        materials = list(session.scalars(select(AgencyMaterial).where(AgencyMaterial.task_id == task.id)))
        new = svc.NewApplication(
            subject=task.subject_code,
            desk=me.actor.desk or "",
            applicant=svc.Applicant(name=task.resident_name, id=task.resident_id or ""),
            agent=svc.Agent(name=me.agent_name, id_number=me.agent_id_number),
            form=form,
            materials=[
                svc.MaterialIn(name=m.name, filename=m.filename, path=hub.store.path_of(m.sha256)) for m in materials
            ],
            source_ref=f"agency-{task.id}-{source_ref}"[:128],
        )
    app, _made = svc.receive(hub, new, me.actor, brief=True)
    with hub.transaction() as session:
        task = _mine(session, task_id, me)
        linked = session.scalar(
            select(AgencyTaskApplication).where(AgencyTaskApplication.application_number == app.number)
        )
        if linked is None:
            session.add(
                AgencyTaskApplication(task_id=task.id, application_number=app.number, created_at=naive_utc(hub.now()))
            )
            _event(session, hub, task, me, "application", number=app.number)
    return app


def finish(hub: Hub, me: Who, task_id: int, note: str | None = None) -> None:
    if e := text.check("note", note, multiline=True):
        raise InvalidInput([e])
    with hub.transaction() as session:
        task = _mine(session, task_id, me)
        task.state, task.closed_at = "done", naive_utc(hub.now())
        _event(session, hub, task, me, "done", note=(note or "")[:500] or None)


def cancel(hub: Hub, me: Who, task_id: int, reason: str) -> None:
    """Withdrawn: by the resident who asked, the desk, a supervisor, or the agent holding it."""
    if not reason.strip():
        raise InvalidInput.field("reason", "请填写撤销理由", "a reason is required")
    if e := text.check("reason", reason, multiline=True):
        raise InvalidInput([e])
    with hub.transaction() as session:
        task = _get(session, task_id, me, for_update=True)
        if me.role is Role.agent and task.agent_id != me.agent_id:
            raise Forbidden("只有接单的代办员可以撤销 (only the agent holding the task)")
        if me.role is Role.ops:
            raise Forbidden("运维人员不能撤销代办任务 (ops may not cancel tasks)")
        if task.state not in ("open", *ACTIVE):
            raise IllegalTransition(f"任务{STATE_ZH[task.state]}，不能撤销 (the task is {task.state})")
        task.state, task.closed_at = "cancelled", naive_utc(hub.now())
        _event(session, hub, task, me, "cancelled", reason=reason.strip()[:500])


# ---------------------------------------------------------------- reading


@dataclass
class TaskView:
    task: AgencyTask
    agent_name: str | None
    visits: list[AgencyVisit] = field(default_factory=list)
    events: list[AgencyTaskEvent] = field(default_factory=list)
    materials: list[AgencyMaterial] = field(default_factory=list)
    applications: list[dict[str, Any]] = field(default_factory=list)

    @property
    def visit_count(self) -> int:
        return len(self.visits)


def read(hub: Hub, me: Who, task_id: int, *, client: str | None = None) -> TaskView:
    """One task with all it holds; the detail view is audited (it shows the full ID number)."""
    with hub.sessions() as session:
        task = _get(session, task_id, me)
        agent = roster.by_id(session, task.agent_id)
        view = TaskView(
            task,
            agent.name if agent else None,
            list(session.scalars(select(AgencyVisit).where(AgencyVisit.task_id == task.id).order_by(AgencyVisit.id))),
            list(
                session.scalars(
                    select(AgencyTaskEvent).where(AgencyTaskEvent.task_id == task.id).order_by(AgencyTaskEvent.id)
                )
            ),
            list(
                session.scalars(
                    select(AgencyMaterial).where(AgencyMaterial.task_id == task.id).order_by(AgencyMaterial.id)
                )
            ),
        )
        numbers = list(
            session.scalars(
                select(AgencyTaskApplication.application_number)
                .where(AgencyTaskApplication.task_id == task.id)
                .order_by(AgencyTaskApplication.id)
            )
        )
        apps = {a.number: a for a in session.scalars(select(Application).where(Application.number.in_(numbers)))}
        view.applications = [
            {
                "number": n,
                "state": apps[n].state if n in apps else None,
                "due_date": apps[n].due_date if n in apps else None,
                "title": apps[n].title if n in apps else "",
            }
            for n in numbers
        ]
        session.expunge_all()
    audit.record(hub, me.actor, "agency_task_viewed", target=f"agency_task:{task_id}", client=client)
    return view


def consent_pdf(hub: Hub, me: Who, task_id: int, *, client: str | None = None) -> bytes:
    """The signed 委托书 (audited download)."""
    with hub.sessions() as session:
        task = _get(session, task_id, me)
        sha = task.consent_sha256
    if not sha:
        raise NotFound("委托书尚未签署 (the consent is not signed)")
    audit.record(hub, me.actor, "agency_consent_downloaded", target=f"agency_task:{task_id}", client=client)
    return hub.store.path_of(sha).read_bytes()


def listing(hub: Hub, me: Who, *, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Tasks the caller may see, newest first, for boards and lists (ID numbers masked)."""
    if state and state not in STATE_ZH:
        raise InvalidInput.field("state", f"状态应为以下之一：{'、'.join(STATE_ZH)}", "unknown state")
    stmt = scoped(select(AgencyTask, AgentProfile.name).outerjoin(AgentProfile), me)
    if state:
        stmt = stmt.where(AgencyTask.state == state)
    with hub.sessions() as session:
        rows = session.execute(stmt.order_by(AgencyTask.id.desc()).limit(limit)).all()
    cat = hub.catalog
    out = []
    for task, agent_name in rows:
        subject = cat.subject(task.subject_code)
        out.append(
            {
                "id": task.id,
                "state": task.state,
                "state_zh": STATE_ZH[task.state],
                "origin": task.origin,
                "subject": task.subject_code,
                "title": subject.title if subject else task.subject_code,
                "desk": task.desk_code,
                "township": task.township,
                "township_name": roster.township_name(task.township),
                "resident_name": task.resident_name,
                "resident_id": mask_id(task.resident_id),
                "preferred_time": task.preferred_time,
                "agent": agent_name,
                "mine": me.agent_id is not None and task.agent_id == me.agent_id,
                "created_at": task.created_at.isoformat() + "Z",
                "consent": bool(task.consent_sha256),
            }
        )
    return out
