"""帮代办 pages and API: the agent's board (/agency: open tasks to take, my tasks), a task's page
(visits, materials, the 委托书 signed on the canvas, applications started from it), the resident's
request page (/help, signed in through hub.web.resident_session), the project ledger (/projects),
the roster on the ops pages (/ops/agents), and /api/v1/agency. The pages parse and show; every rule
is in hub.agency."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hub.agency import figures, projects, roster, tasks
from hub.context import Hub
from hub.errors import FieldError, IllegalTransition, InvalidInput
from hub.lifecycle import FRONT, Role
from hub.web.deps import client_of, get_hub, need
from hub.web.render import render
from hub.web.resident_session import Resident, optional_resident
from hub.web.security import CSRF_FIELD, CSRF_HEADER, Principal, check_csrf, same

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1/agency", tags=["agency"])
HubDep = Annotated[Hub, Depends(get_hub)]
Staff = Annotated[Principal, Depends(need("applications:read"))]
Ops = Annotated[Principal, Depends(need("ops", Role.ops))]
Supervisor = Annotated[Principal, Depends(need("reports:read", Role.supervisor))]
BOARD_ROLES = (*FRONT, Role.agent, Role.supervisor)
LEDGER_ROLES = (Role.agent, Role.supervisor)
DbId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # a row id: anything else is 422, not a database error
SIGNATURE_FORM_BYTES = 2 * 1024 * 1024  # two PNG data URLs of at most 512 kB each, as base64


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _allowed(principal: Principal, roles: tuple[Role, ...]) -> None:
    if principal.role not in roles:
        raise HTTPException(403, "无权访问帮代办页面 (forbidden)")


async def _who(hub: Hub, principal: Principal) -> tasks.Who:
    return await run_in_threadpool(tasks.who, hub, principal.actor, principal.username)


async def _form(request: Request, principal: Principal, **limits: Any):
    form = await request.form(**limits)
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    return form


def _text(form: Any, name: str, limit: int = 1000) -> str:
    value = form.get(name)
    return str(value)[:limit] if isinstance(value, str) else ""


def _subjects(hub: Hub) -> list[tuple[str, str]]:
    """Items residents ask help for: those a township or the hall can receive."""
    cat = hub.catalog
    return sorted(
        (s.code, s.title)
        for s in [*cat.items.values(), *cat.bundles.values()]
        if {"township", "hall"} & {c.value for c in s.channels}
    )


# ---------------------------------------------------------------- the board


@router.get("/agency")
async def board(request: Request, hub: HubDep, principal: Staff, state: str = "") -> Response:
    _allowed(principal, BOARD_ROLES)
    me = await _who(hub, principal)
    return await _board(request, hub, principal, me, state=state)


async def _board(
    request: Request,
    hub: Hub,
    principal: Principal,
    me: tasks.Who,
    *,
    state: str = "",
    status: int = 200,
    message: tuple[str, str] | None = None,
) -> Response:
    rows = await run_in_threadpool(tasks.listing, hub, me, state=state or None)
    agents = []
    if principal.role in FRONT or principal.role is Role.supervisor:
        agents = await run_in_threadpool(roster.roster, hub, active_only=True)
    return render(
        request,
        "agency_board.html",
        status,
        open_rows=[r for r in rows if r["state"] == "open"],
        mine=[r for r in rows if r["mine"] and r["state"] != "open"],
        others=[r for r in rows if not r["mine"] and r["state"] != "open"],
        is_agent=principal.role is Role.agent,
        on_roster=me.agent_id is not None,
        active=me.active,
        can_create=principal.role in FRONT or principal.role is Role.supervisor,
        agents=agents,
        subjects=_subjects(hub),
        townships=roster.TOWNSHIPS,
        state_zh=tasks.STATE_ZH,
        message=message,
    )


@router.post("/agency/tasks")
async def create_task(request: Request, hub: HubDep, principal: Staff) -> Response:
    _allowed(principal, (*FRONT, Role.supervisor))
    form = await _form(request, principal)
    new = tasks.NewTask(
        subject=_text(form, "subject", 32),
        resident_name=_text(form, "resident_name", 100),
        resident_id=_text(form, "resident_id", 32) or None,
        phone=_text(form, "phone", 32),
        township=_text(form, "township", 32) or None,
        desk=_text(form, "desk", 64) or None,
        address=_text(form, "address", 200) or None,
        preferred_time=_text(form, "preferred_time", 100) or None,
        note=_text(form, "note", 500) or None,
    )
    task = await run_in_threadpool(tasks.open_task, hub, tasks.Who(principal.actor), new)
    return _see_other(f"/agency/tasks/{task.id}")


@router.post("/agency/tasks/{task_id}/take")
async def take_task(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    _allowed(principal, (Role.agent,))
    await _form(request, principal)
    me = await _who(hub, principal)
    try:
        await run_in_threadpool(tasks.take, hub, me, task_id)
    except IllegalTransition as exc:  # 抢单 lost: back to the board, saying so
        zh, _, en = str(exc).partition(" (")
        return await _board(request, hub, principal, me, status=409, message=(zh, en.rstrip(")")))
    return _see_other(f"/agency/tasks/{task_id}")


@router.post("/agency/tasks/{task_id}/assign")
async def assign_task(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    _allowed(principal, (*FRONT, Role.supervisor))
    form = await _form(request, principal)
    await run_in_threadpool(tasks.assign, hub, tasks.Who(principal.actor), task_id, _text(form, "agent", 64))
    return _see_other(f"/agency/tasks/{task_id}")


# ---------------------------------------------------------------- a task


@router.get("/agency/tasks/{task_id}")
async def task_page(task_id: DbId, request: Request, hub: HubDep, principal: Staff, done: str = "") -> Response:
    _allowed(principal, (*BOARD_ROLES, Role.ops))
    me = await _who(hub, principal)
    view = await run_in_threadpool(tasks.read, hub, me, task_id, client=client_of(request))
    subject = hub.catalog.subject(view.task.subject_code)
    materials = [m.name for m in hub.catalog.materials_of(subject)] if subject else []
    agents = []
    if view.task.state == "open" and (principal.role in FRONT or principal.role is Role.supervisor):
        agents = [
            a
            for a in await run_in_threadpool(roster.roster, hub, active_only=True)
            if roster.serves(a, view.task.desk_code, view.task.township)
        ]
    return render(
        request,
        "agency_task.html",
        v=view,
        t=view.task,
        subject=subject,
        material_names=materials,
        holding=me.agent_id is not None and view.task.agent_id == me.agent_id,
        working=view.task.state in tasks.ACTIVE,
        agents=agents,
        state_zh=tasks.STATE_ZH,
        action_zh=tasks.ACTION_ZH,
        outcome_zh=tasks.OUTCOME_ZH,
        township_name=roster.township_name,
        done=done,
    )


@router.post("/agency/tasks/{task_id}/visits")
async def add_visit(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    at = _text(form, "visited_at", 32)
    try:
        when = datetime.fromisoformat(at).replace(tzinfo=hub.settings.tz) if at else None
    except ValueError:
        raise InvalidInput.field(
            "visited_at", "上门时间格式应为 YYYY-MM-DDTHH:MM", "time as YYYY-MM-DDTHH:MM"
        ) from None
    visit = tasks.VisitIn(
        place=_text(form, "place", 200),
        outcome=_text(form, "outcome", 16),
        note=_text(form, "note") or None,
        visited_at=when,
    )
    await run_in_threadpool(tasks.record_visit, hub, me, task_id, visit)
    return _see_other(f"/agency/tasks/{task_id}?done=visit")


@router.post("/agency/tasks/{task_id}/materials")
async def add_material(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal, max_files=1, max_fields=10)
    me = await _who(hub, principal)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput.field("file", "请选择文件", "a file is required")
    content = await upload.read(hub.settings.max_material_bytes + 1)
    name, filename = _text(form, "material", 200), (upload.filename or "material")[:255]
    await run_in_threadpool(tasks.collect_material, hub, me, task_id, name, filename, content)
    return _see_other(f"/agency/tasks/{task_id}?done=material")


@router.post("/agency/tasks/{task_id}/resident-id")
async def resident_id(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    await run_in_threadpool(tasks.set_resident_id, hub, me, task_id, _text(form, "resident_id", 32))
    return _see_other(f"/agency/tasks/{task_id}")


@router.post("/agency/tasks/{task_id}/consent")
async def sign(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal, max_part_size=SIGNATURE_FORM_BYTES, max_files=0)
    me = await _who(hub, principal)
    resident, agent = form.get("resident_signature"), form.get("agent_signature")
    await run_in_threadpool(
        tasks.sign_consent,
        hub,
        me,
        task_id,
        resident if isinstance(resident, str) else None,
        agent if isinstance(agent, str) else None,
    )
    return _see_other(f"/agency/tasks/{task_id}?done=consent")


@router.get("/agency/tasks/{task_id}/consent.pdf")
async def consent_file(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    me = await _who(hub, principal)
    body = await run_in_threadpool(tasks.consent_pdf, hub, me, task_id, client=client_of(request))
    return Response(
        body,
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="weituoshu-{task_id}.pdf"'},
    )


@router.get("/agency/tasks/{task_id}/apply")
async def apply_page(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    me = await _who(hub, principal)
    view = await run_in_threadpool(tasks.read, hub, me, task_id, client=client_of(request))
    subject = hub.catalog.subject(view.task.subject_code)
    fields = list(hub.catalog.form_of(subject)) if subject else []
    return render(
        request, "agency_apply.html", t=view.task, v=view, subject=subject, fields=fields, ref=uuid.uuid4().hex
    )


@router.post("/agency/tasks/{task_id}/apply")
async def apply_submit(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    with_values = {
        k[2:]: str(v)[:2000] for k, v in form.multi_items() if k.startswith("f.") and isinstance(v, str) and v != ""
    }
    ref = _text(form, "ref", 64) or uuid.uuid4().hex
    app = await run_in_threadpool(tasks.start_application, hub, me, task_id, with_values, ref)
    return _see_other(f"/agency/tasks/{task_id}?done=application&number={app.number}")


@router.post("/agency/tasks/{task_id}/done")
async def finish_task(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    await run_in_threadpool(tasks.finish, hub, me, task_id, _text(form, "note") or None)
    return _see_other(f"/agency/tasks/{task_id}")


@router.post("/agency/tasks/{task_id}/cancel")
async def cancel_task(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    await run_in_threadpool(tasks.cancel, hub, me, task_id, _text(form, "reason"))
    return _see_other(f"/agency/tasks/{task_id}")


# ---------------------------------------------------------------- the resident's request (/help)


@router.get("/help")
async def help_page(
    request: Request,
    hub: HubDep,
    resident: Annotated[Resident | None, Depends(optional_resident)],
    sent: int = 0,
    cancelled: int = 0,
) -> Response:
    mine = []
    if resident is not None:
        mine = await run_in_threadpool(tasks.listing, hub, tasks.Who(resident.actor), limit=20)
    return render(
        request,
        "agency_help.html",
        resident=resident,
        subjects=_subjects(hub),
        townships=roster.TOWNSHIPS,
        mine=mine,
        sent=sent,
        cancelled=cancelled,
        values={},
        errors=[],
    )


@router.post("/help")
async def help_submit(
    request: Request, hub: HubDep, resident: Annotated[Resident | None, Depends(optional_resident)]
) -> Response:
    if resident is None:
        return _see_other("/help")
    form = await request.form()
    given = str(form.get(CSRF_FIELD) or "")
    if not given or not same(given, resident.csrf):
        raise HTTPException(403, "页面已过期，请刷新后重试 (CSRF token missing or wrong)")
    values = {k: _text(form, k, 500) for k in ("subject", "phone", "township", "address", "preferred_time", "note")}
    new = tasks.NewTask(
        subject=values["subject"][:32],
        phone=values["phone"][:32],
        township=values["township"][:32] or None,
        address=values["address"][:200] or None,
        preferred_time=values["preferred_time"][:100] or None,
        note=values["note"] or None,
    )
    try:
        await run_in_threadpool(tasks.open_task, hub, tasks.Who(resident.actor), new)
    except InvalidInput as exc:  # the form again, each field's problem beside it
        return render(
            request,
            "agency_help.html",
            422,
            resident=resident,
            subjects=_subjects(hub),
            townships=roster.TOWNSHIPS,
            mine=[],
            sent=0,
            values=values,
            errors=[e.as_dict() for e in exc.errors],
        )
    return _see_other("/help?sent=1")


@router.post("/help/{task_id}/cancel")
async def help_cancel(
    task_id: DbId, request: Request, hub: HubDep, resident: Annotated[Resident | None, Depends(optional_resident)]
) -> Response:
    """The resident withdraws their own request (another's: not found, as the core scopes it)."""
    if resident is None:
        return _see_other("/help")
    form = await request.form()
    given = str(form.get(CSRF_FIELD) or "")
    if not given or not same(given, resident.csrf):
        raise HTTPException(403, "页面已过期，请刷新后重试 (CSRF token missing or wrong)")
    reason = _text(form, "reason", 500) or "申请人自行撤销"
    try:
        await run_in_threadpool(tasks.cancel, hub, tasks.Who(resident.actor), task_id, reason)
    except (InvalidInput, IllegalTransition) as exc:
        mine = await run_in_threadpool(tasks.listing, hub, tasks.Who(resident.actor), limit=20)
        errors = (
            [e.as_dict() for e in exc.errors]
            if isinstance(exc, InvalidInput)
            else [{"field": "task", "zh": str(exc), "en": str(exc)}]
        )
        return render(
            request,
            "agency_help.html",
            422,
            resident=resident,
            subjects=_subjects(hub),
            townships=roster.TOWNSHIPS,
            mine=mine,
            sent=0,
            values={},
            errors=errors,
        )
    return _see_other("/help?cancelled=1")


# ---------------------------------------------------------------- the project ledger


def _date(form: Any, name: str, field: str) -> date | None:
    raw = _text(form, name, 32)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput.field(field, "日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD") from None


@router.get("/projects")
async def project_list(request: Request, hub: HubDep, principal: Staff, overdue: int = 0) -> Response:
    _allowed(principal, LEDGER_ROLES)
    me = await _who(hub, principal)
    rows = await run_in_threadpool(lambda: projects.ledgers(hub, me, overdue_only=bool(overdue)))
    agents = await run_in_threadpool(roster.roster, hub, active_only=True) if principal.role is Role.supervisor else []
    return render(request, "project_list.html", rows=rows, overdue=overdue, agents=agents, today=hub.today())


@router.post("/projects")
async def project_create(request: Request, hub: HubDep, principal: Supervisor) -> Response:
    form = await _form(request, principal)
    raw = _text(form, "investment_wan", 20).strip()
    try:
        investment = int(raw) if raw else None
    except ValueError:
        raise InvalidInput.field("investment_wan", "总投资应为整数（万元）", "an integer (10k yuan)") from None
    new = projects.NewProject(
        name=_text(form, "name", 200),
        company_name=_text(form, "company_name", 200),
        credit_code=_text(form, "credit_code", 32),
        investment_wan=investment,
        agent=_text(form, "agent", 64) or None,
    )
    project = await run_in_threadpool(projects.create, hub, tasks.Who(principal.actor), new)
    return _see_other(f"/projects/{project.id}")


@router.get("/projects/{project_id}")
async def project_page(project_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    _allowed(principal, (*LEDGER_ROLES, Role.ops))
    me = await _who(hub, principal)
    found = await run_in_threadpool(lambda: projects.ledger(hub, me, project_id, client=client_of(request)))
    return render(request, "project_page.html", lg=found, p=found.project, today=hub.today())


@router.post("/projects/{project_id}/applications")
async def project_link(project_id: DbId, request: Request, hub: HubDep, principal: Supervisor) -> Response:
    form = await _form(request, principal)
    await run_in_threadpool(
        projects.link_application, hub, tasks.Who(principal.actor), project_id, _text(form, "number", 40)
    )
    return _see_other(f"/projects/{project_id}")


@router.post("/projects/{project_id}/milestones")
async def project_milestone(project_id: DbId, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    due = _date(form, "due_date", "milestone_due")
    await run_in_threadpool(projects.add_milestone, hub, me, project_id, _text(form, "name", 200), due)
    return _see_other(f"/projects/{project_id}")


@router.post("/projects/{project_id}/milestones/{milestone_id}/done")
async def project_milestone_done(
    project_id: DbId, milestone_id: DbId, request: Request, hub: HubDep, principal: Staff
) -> Response:
    form = await _form(request, principal)
    me = await _who(hub, principal)
    done = _date(form, "done_date", "done_date")
    await run_in_threadpool(projects.milestone_done, hub, me, project_id, milestone_id, done)
    return _see_other(f"/projects/{project_id}")


# ---------------------------------------------------------------- the roster (ops)


def _codes(form: Any, name: str) -> list[str]:
    return [
        c.strip()
        for v in form.getlist(name)
        if isinstance(v, str)
        for c in v.replace("，", ",").split(",")
        if c.strip()
    ]


@router.get("/ops/agents")
async def roster_page(request: Request, hub: HubDep, principal: Ops, done: str = "") -> Response:
    rows = await run_in_threadpool(roster.roster, hub)
    desks = sorted((d.code, d.name) for d in hub.catalog.desks.values())
    return render(request, "agency_roster.html", rows=rows, desks=desks, townships=roster.TOWNSHIPS, done=done)


@router.post("/ops/agents")
async def roster_add(request: Request, hub: HubDep, principal: Ops) -> Response:
    form = await _form(request, principal)
    await run_in_threadpool(
        lambda: roster.add(
            hub,
            principal.actor,
            _text(form, "username", 64),
            name=_text(form, "name", 100),
            id_number=_text(form, "id_number", 32),
            phone=_text(form, "phone", 32) or None,
            desks=_codes(form, "desks"),
            townships=_codes(form, "townships"),
        )
    )
    return _see_other("/ops/agents?done=added")


@router.post("/ops/agents/{username}")
async def roster_change(username: str, request: Request, hub: HubDep, principal: Ops) -> Response:
    form = await _form(request, principal)
    await run_in_threadpool(
        lambda: roster.update(
            hub,
            principal.actor,
            username,
            phone=_text(form, "phone", 32) or None,
            desks=_codes(form, "desks"),
            townships=_codes(form, "townships"),
            active=form.get("active") == "1",
        )
    )
    return _see_other("/ops/agents?done=changed")


# ---------------------------------------------------------------- API


@api.get("/tasks")
async def api_tasks(hub: HubDep, principal: Staff, state: str | None = None) -> dict[str, Any]:
    _allowed(principal, (*BOARD_ROLES, Role.ops))
    me = await _who(hub, principal)
    return {"tasks": await run_in_threadpool(tasks.listing, hub, me, state=state)}


@api.post("/tasks/{task_id}/take")
async def api_take(task_id: DbId, request: Request, hub: HubDep, principal: Staff) -> dict[str, Any]:
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    me = await _who(hub, principal)
    await run_in_threadpool(tasks.take, hub, me, task_id)
    return {"id": task_id, "state": "taken"}


@api.get("/projects")
async def api_projects(hub: HubDep, principal: Staff, overdue: bool = False) -> dict[str, Any]:
    me = await _who(hub, principal)
    found = await run_in_threadpool(lambda: projects.ledgers(hub, me, overdue_only=overdue))
    return {
        "projects": [
            {
                "id": lg.project.id,
                "name": lg.project.name,
                "company": lg.project.company_name,
                "credit_code": lg.project.credit_code,
                "investment_wan": lg.project.investment_wan,
                "agent": lg.agent_name,
                "applications": [
                    {**a, "due_date": a["due_date"] and a["due_date"].isoformat()} for a in lg.applications
                ],
                "milestones": [
                    {
                        **m,
                        "due_date": m["due_date"].isoformat(),
                        "done_date": m["done_date"] and m["done_date"].isoformat(),
                    }
                    for m in lg.milestones
                ],
                "overdue": len(lg.overdue),
            }
            for lg in found
        ]
    }


@api.get("/figures")
async def api_figures(hub: HubDep, principal: Supervisor, start: date, end: date) -> dict[str, Any]:
    if end < start:
        raise InvalidInput([FieldError.of("end", "结束日期不能早于开始日期", "end before start")])

    def count() -> dict[str, int]:
        with hub.sessions() as session:
            return figures.counts(session, start, end)

    return {"start": start.isoformat(), "end": end.isoformat(), **await run_in_threadpool(count)}
