"""The pages people use all day: login, intake and receipt (teller, enclave clerk), application
detail and timeline, the officer's inbox, the supervisor's dashboard and follow-ups, ops, and the
applicant's status page. Server-rendered; forms post back here with the session's CSRF token.
Everything they change goes through the same core functions as the API and the CLI."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import audit, ratings
from hub.context import Hub
from hub.errors import FieldError, InvalidInput
from hub.exchange import overview
from hub.lifecycle import ACTIONS, FRONT, Role
from hub.ops import connection_rows, job_rows, outbox_page, plugin_rows, retry_dead, run_check
from hub.presenters import application_detail, application_summary, inbox, receipt
from hub.users import LoginRefused, authenticate
from hub.web import desk_intake
from hub.web.api import status_url
from hub.web.applicant_status import open_status, status_view
from hub.web.deps import client_of, get_hub, need, optional_principal
from hub.web.render import render
from hub.web.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_MAX,
    Principal,
    check_csrf,
    close_session,
    open_session,
    same,
)
from hub.web.uploads import Body, read_multipart

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
Anyone = Annotated[Principal, Depends(need("applications:read"))]
Front = Annotated[Principal, Depends(need("applications:write", *FRONT))]
Officer = Annotated[Principal, Depends(need("applications:write", Role.officer))]
Supervisor = Annotated[Principal, Depends(need("reports:read", Role.supervisor))]
OpsUser = Annotated[Principal, Depends(need("ops", Role.ops))]
LOGIN_CSRF = "tbh_login"
UNKNOWN_USER = "(unknown user)"  # the audit log's actor for a failed login naming no account
HOME = {Role.officer: "/inbox", Role.supervisor: "/dashboard", Role.ops: "/ops"}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _form(request: Request, principal: Principal):
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    return form


# ---------------------------------------------------------------- login


@router.get("/login")
def login_page(request: Request, next: str = "/", expired: int = 0) -> Response:
    token = secrets.token_urlsafe(16)
    response = render(request, "login.html", login_csrf=token, next=_safe_next(next), expired=expired, error=None)
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", max_age=3600)
    return response


def _safe_next(url: str) -> str:
    """Only a path on this site: a login link cannot send people elsewhere afterwards."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


@router.post("/login")
async def login(request: Request, hub: HubDep) -> Response:
    form = await request.form()
    username, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
    next_url = _safe_next(str(form.get("next") or "/"))
    cookie, given = request.cookies.get(LOGIN_CSRF), str(form.get(CSRF_FIELD) or "")
    if not cookie or not same(given, cookie):
        raise HTTPException(403, "页面已过期，请刷新后重新登录 (login form expired)")
    throttle = request.app.state.login_throttle
    client = client_of(request)
    if throttle.blocked(client):
        return render(
            request,
            "login.html",
            429,
            login_csrf=given,
            next=next_url,
            expired=0,
            error="尝试次数过多，请稍后再试 (too many attempts)",
        )
    try:
        person = await run_in_threadpool(authenticate, hub, username, password)
    except LoginRefused as exc:
        throttle.hit(client)
        # the typed name only when it is an account's: otherwise it may be a password typed
        # into the wrong box, and the audit log must never hold one
        name = username[:100] if exc.known and username else UNKNOWN_USER
        audit.record(hub, svc.Actor(name=name, role=Role.system), "login_failed", client=client)
        return render(
            request,
            "login.html",
            429 if exc.locked else 401,
            login_csrf=given,
            next=next_url,
            expired=0,
            error=str(exc),
        )
    audit.record(hub, person.actor(), "login", client=client)
    response = _see_other(next_url if next_url != "/" else HOME.get(person.role, "/intake"))
    response.set_cookie(
        SESSION_COOKIE,
        open_session(hub, person),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=int(SESSION_MAX.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF)
    return response


@router.post("/logout")
async def logout(request: Request, hub: HubDep, principal: Anyone) -> Response:
    await _form(request, principal)
    close_session(hub, request.cookies.get(SESSION_COOKIE, ""))
    response = _see_other("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Response:
    if principal is None:
        return _see_other("/login")
    return _see_other(HOME.get(principal.role, "/intake"))


# ---------------------------------------------------------------- intake (teller, enclave clerk)


@router.get("/intake")
def intake_search(request: Request, hub: HubDep, principal: Front, q: str = "") -> Response:
    desk = hub.catalog.desks[principal.actor.desk]
    found = desk_intake.search(hub, desk.channel.value, q[:50])
    regions = {s.code: desk_intake.region_label(hub, s) for s in found}
    return render(request, "intake_search.html", desk=desk, q=q, subjects=found, regions=regions)


def _intake_context(hub: Hub, principal: Principal, code: str) -> dict[str, Any]:
    desk = hub.catalog.desks[principal.actor.desk]
    if desk_intake.decided_by_partner(hub, code) or code in hub.catalog.unavailable:
        # 跨省通办: the partner's list as it is now (fetched again when too old); a withdrawn
        # item is refused with the reason, as the core gives it
        try:
            desk_intake.current_subject(hub, code)
        except InvalidInput as exc:
            raise HTTPException(404, "；".join(f"{e.reason.zh} ({e.reason.en})" for e in exc.errors)) from None
    subject = hub.catalog.subject(code)
    if subject is None or desk.channel not in subject.channels:
        raise HTTPException(404, f"事项 {code} 未下放到本窗口 (not delegated to this desk)")
    fields = hub.catalog.form_of(subject)
    items = hub.catalog.items_of(subject)
    return {
        "desk": desk,
        "subject": subject,
        "fields": fields,
        "departments": list(dict.fromkeys(hub.catalog.departments[i.department].name for i in items)),
        "labels": ERROR_LABELS | {f"form.{f.name}": f.label for f in fields},
        "materials": hub.catalog.materials_of(subject),
        "items": items,
        "checkable": {k for k in hub.settings.verifiers},
        "max_mb": hub.store.max_bytes // (1024 * 1024),
        "accept": ",".join(sorted(hub.store.allowed)),
        "today": hub.today().isoformat(),
        "checklist": desk_intake.CHECKLIST,
        "region": desk_intake.region_label(hub, subject),
    }


# what the core's error fields are called on the intake form
ERROR_LABELS = {
    "applicant.id": "申请人公民身份号码",
    "applicant.name": "申请人姓名",
    "agent.id_number": "代办人身份号码",
    "commitment_due": "承诺补交日期",
    "materials": "申请材料",
    "checklist": "初审核对",
    "subject": "事项",
    "source_ref": "重复提交",
}


@router.get("/intake/{code}")
def intake_form(code: str, request: Request, hub: HubDep, principal: Front) -> Response:
    ctx = _intake_context(hub, principal, code)
    return render(
        request,
        "intake_form.html",
        **ctx,
        values={},
        errors=[],
        ticked=(),
        missing=(),
        source_ref=f"web:{uuid.uuid4()}",
    )


@router.post("/intake/{code}")
async def intake_submit(code: str, request: Request, hub: HubDep, principal: Front) -> Response:
    # in a thread: a partner's item list may be fetched first (up to catalogue_fetch_seconds)
    ctx = await run_in_threadpool(_intake_context, hub, principal, code)
    form = await read_multipart(request, hub.store)  # files stream into the store's staging area
    try:
        check_csrf(principal, form.get(CSRF_FIELD))
        return await _intake_submit(code, request, hub, principal, ctx, form)
    finally:
        await run_in_threadpool(form.discard)  # what the application did not take


async def _intake_submit(
    code: str, request: Request, hub: HubDep, principal: Principal, ctx: dict[str, Any], form: Body
) -> Response:
    values = dict(form.fields)
    uploads: list[desk_intake.Upload] = []
    errors: list[FieldError] = []
    for i, m in enumerate(ctx["materials"]):
        for f in form.files_of(f"file_{i}"):
            if problem := hub.store.check(f.staged):
                errors.append(FieldError(f"{m.name} ({f.filename})", problem))
            uploads.append(desk_intake.Upload(m.name, f.filename, staged=f.staged))
    fields = {f.name: form.get(f"f_{f.name}") for f in ctx["fields"]}
    ticked = set(form.getlist("checklist"))
    try:
        due = desk_intake.parse_due(form.get("commitment_due"))
        if errors:
            raise InvalidInput(errors)
        agent = {"name": form.get("agent_name"), "id_number": form.get("agent_id")}
        app, _created = await run_in_threadpool(
            lambda: desk_intake.submit(
                hub,
                principal.actor,
                subject_code=code,
                applicant={"name": form.get("applicant_name"), "id": form.get("applicant_id")},
                agent=agent if agent["name"] else None,
                form=fields,
                uploads=uploads,
                tickets=[t for t in form.getlist("verified") if t],
                checklist=form.getlist("checklist"),
                commitment_due=due,
                note=form.get("note"),
                source_ref=form.get("source_ref") or None,
                secret=request.app.state.secret,
            )
        )
    except InvalidInput as exc:
        return render(
            request,
            "intake_form.html",
            422,
            **ctx,
            values=values,
            ticked=ticked,
            missing=set(form.getlist("missing")),
            errors=[e.as_dict() for e in exc.errors],
            source_ref=values.get("source_ref") or f"web:{uuid.uuid4()}",
        )
    return _see_other(f"/applications/{app.number}/receipt")


# ---------------------------------------------------------------- applications


@router.get("/applications")
def app_list(request: Request, hub: HubDep, principal: Anyone, state: str | None = None) -> Response:
    today = hub.today()
    with hub.sessions() as session:
        rows = [
            application_summary(hub, a, today)
            for a in svc.list_applications(session, principal.actor, state=state, limit=200)
        ]
    return render(request, "applications.html", rows=rows, state=state)


def _detail(request: Request, hub: Hub, principal: Principal, number: str) -> dict[str, Any]:
    app = svc.read(hub, number, principal.actor)
    reveal = svc.may_reveal_ids(principal.actor)
    audit.record(hub, principal.actor, "view_detail", target=number, client=client_of(request), full_ids=reveal)
    view = application_detail(hub, app, reveal_id=reveal)
    material_ids = {(m.name, m.sha256): m.id for m in app.materials}
    for m in view["materials"] + view["results"]:
        m["id"] = material_ids.get((m["name"], m["sha256"]))
    return view


def _actions_for(hub: Hub, principal: Principal, view: dict[str, Any]) -> list[dict[str, Any]]:
    """The buttons this person may press now (the core still decides; this only hides the rest)."""
    actor = principal.actor
    if "applications:write" not in principal.scopes:
        return []
    out = []
    for a in ACTIONS.values():
        if actor.role not in a.roles or a.name == "submit":
            continue
        if a.part_level:
            for p in view["parts"]:
                mine = actor.role is not Role.officer or p["department"] == actor.department
                if p["state"] in a.sources and mine and view["state"] in ("accepted", "in_review"):
                    out.append(
                        {
                            "name": a.name,
                            "zh": f"{a.zh}：{p['title']}",
                            "part": p["item_code"],
                            "reason": a.needs_reason,
                        }
                    )
        elif view["state"] in a.sources:
            lead = view["parts"][0]["department"]
            if actor.role is Role.officer and a.name in svc.LEAD_ACTIONS and lead != actor.department:
                continue
            out.append({"name": a.name, "zh": a.zh, "part": None, "reason": a.needs_reason})
    return out


@router.get("/applications/{number}")
def app_detail(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    view = _detail(request, hub, principal, number)
    hook = hub.plugins.hook  # what plugins add to the page (remote signing's button and sessions, …)
    rating = ratings.rating_of(hub, number, principal.actor)
    subject = hub.catalog.subject(view["subject_code"])
    return render(
        request,
        "application.html",
        a=view,
        form_labels={f.name: f.label for f in hub.catalog.form_of(subject)} if subject else {},
        part_titles={p["item_code"]: p["title"] for p in view["parts"]},
        actions=_actions_for(hub, principal, view),
        plugin_actions=[
            a
            for found in hook.application_actions(hub=hub, application=view, actor=principal.actor)
            for a in found or ()
        ],
        plugin_panels=[
            p
            for found in hook.application_panels(hub=hub, application=view, actor=principal.actor)
            for p in found or ()
        ],
        rating=rating,
        can_attach=principal.role in FRONT or principal.role is Role.officer,
        today=hub.today().isoformat(),
    )


@router.post("/applications/{number}/action")
async def app_action(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    form = await _form(request, principal)
    if "applications:write" not in principal.scopes:
        raise HTTPException(403, "无权办理 (forbidden)")
    due = desk_intake.parse_due(str(form.get("commitment_due") or ""))
    reason = str(form.get("reason") or "").strip() or None  # as written: full-width punctuation kept
    await run_in_threadpool(
        lambda: svc.transition(
            hub,
            number,
            str(form.get("action") or ""),
            principal.actor,
            reason=reason,
            part=str(form.get("part") or "") or None,
            commitment_due=due,
        )
    )
    return _see_other(f"/applications/{number}")


@router.post("/applications/{number}/attach")
async def app_attach(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    await run_in_threadpool(svc.read, hub, number, principal.actor)  # 404 before taking another desk's upload
    form = await read_multipart(request, hub.store, max_files=1)
    try:
        check_csrf(principal, form.get(CSRF_FIELD))
        name = form.get("material")
        files = form.files_of("file")
        if not files:
            raise InvalidInput.field("file", "请选择要上传的文件", "choose a file")
        f = files[0]
        if problem := hub.store.check(f.staged):
            raise InvalidInput([FieldError(f"{name} ({f.filename})", problem)])
        material = svc.MaterialIn(name=name, filename=f.filename, staged=f.staged)
        await run_in_threadpool(svc.attach, hub, number, [material], principal.actor)
    finally:
        await run_in_threadpool(form.discard)
    return _see_other(f"/applications/{number}")


@router.get("/applications/{number}/receipt")
def app_receipt(number: str, request: Request, hub: HubDep, principal: Front) -> Response:
    app = svc.read(hub, number, principal.actor)
    data = receipt(hub, app, status_url(request, hub, number))
    qr = segno.make(data["status_url"], error="m").svg_inline(scale=4, title="办件进度查询二维码")
    return render(request, "receipt.html", r=data, qr=qr)


# ---------------------------------------------------------------- officers


@router.get("/inbox")
def inbox_page(request: Request, hub: HubDep, principal: Officer) -> Response:
    department = hub.catalog.departments.get(principal.actor.department or "")
    return render(request, "inbox.html", rows=inbox(hub, principal.actor), department=department)


# ---------------------------------------------------------------- supervisors

# the dashboard, its CSV and the follow-ups of bad ratings: hub/web/supervision_pages.py


# ---------------------------------------------------------------- ops


OPS_PAGE_ROWS = 100


@router.get("/ops")
def ops_page(
    request: Request, hub: HubDep, principal: OpsUser, outbox: str = "dead", outbox_offset: int = 0
) -> Response:
    state = outbox if outbox in ("pending", "delivered", "dead", "cancelled") else "dead"
    offset = min(max(outbox_offset, 0), 2**31 - 1)
    rows, total = outbox_page(hub, state, limit=OPS_PAGE_ROWS, offset=offset)
    return render(
        request,
        "ops.html",
        connections=connection_rows(hub),
        outbox=rows,
        outbox_total=total,
        outbox_offset=offset,
        outbox_page_rows=OPS_PAGE_ROWS,
        outbox_state=state,
        plugins=plugin_rows(hub.plugins),
        jobs=job_rows(hub, limit=50),
    )


PARTNER_MESSAGE_STATES = ("dead", "pending", "delivered", "cancelled")


@router.get("/ops/partners")
def ops_partners(request: Request, hub: HubDep, principal: OpsUser, state: str = "dead", offset: int = 0) -> Response:
    """跨省通办: each partner hub — its file, reachability, messages each way, backlog, dead
    letters, its item list — and the messages owed to partners (dead letters first)."""
    state = state if state in PARTNER_MESSAGE_STATES else "dead"
    offset = min(max(offset, 0), 2**31 - 1)
    messages, total = overview.outbox_page(hub, state=state, limit=OPS_PAGE_ROWS, offset=offset)
    rows = overview.partners(hub)
    stale_before = hub.now() - timedelta(days=hub.settings.exchange.catalogue_stale_days)
    for row in rows:  # a list this old is no longer used: desks cannot take that partner's items
        fetched = row["catalogue_fetched"]
        row["catalogue_stale"] = bool(fetched) and datetime.fromisoformat(fetched.replace("Z", "+00:00")) < stale_before
    return render(
        request,
        "ops_partners.html",
        partners=rows,
        exchange_on=bool(hub.settings.exchange.hub_id),
        stale_days=hub.settings.exchange.catalogue_stale_days,
        messages=messages,
        messages_total=total,
        messages_state=state,
        messages_offset=offset,
        page_rows=OPS_PAGE_ROWS,
    )


@router.get("/ops/partners/log")
def ops_partner_log(request: Request, hub: HubDep, principal: OpsUser, partner: str = "", offset: int = 0) -> Response:
    """The exchange's message log, newest first (what, whose, verdict; never the bodies)."""
    offset = min(max(offset, 0), 2**31 - 1)
    name = partner[:64] or None
    rows, total = overview.log_page(hub, partner=name, limit=OPS_PAGE_ROWS, offset=offset)
    return render(
        request,
        "ops_partner_log.html",
        rows=rows,
        total=total,
        offset=offset,
        page_rows=OPS_PAGE_ROWS,
        partner=name or "",
        names=sorted({*hub.partners.by_name, *hub.partners.problems}),
    )


@router.post("/ops/connections/{name}/check")
async def ops_check(name: str, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    await _form(request, principal)
    if name not in hub.connections:
        raise HTTPException(404, f"连接 {name} 未配置 (no such connection)")
    await run_in_threadpool(run_check, hub, name, principal.actor)
    return _see_other("/ops#connections")


@router.post("/ops/outbox/{row_id}/retry")
async def ops_retry(row_id: int, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    await _form(request, principal)
    retry_dead(hub, row_id, principal.actor)
    return _see_other("/ops?outbox=dead")


# ---------------------------------------------------------------- the applicant's status page


@router.get("/s/{number}")
def status_page(number: str, request: Request, hub: HubDep, k: str = "") -> Response:
    view = status_view(hub, open_status(hub, request.app.state.secret, number, k))
    return render(request, "status.html", s=view, k=k, levels=ratings.LEVEL_ZH, done=request.query_params.get("rated"))


@router.post("/s/{number}/rating")
async def status_rate(number: str, request: Request, hub: HubDep, k: str = "") -> Response:
    open_status(hub, request.app.state.secret, number, k)
    form = await request.form()
    try:
        level = int(str(form.get("level") or "0"))
    except ValueError:
        level = 0
    await run_in_threadpool(ratings.rate, hub, number, level, str(form.get("comment") or "").strip() or None)
    return _see_other(f"/s/{number}?k={k}&rated=1")
