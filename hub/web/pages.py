"""The pages people use all day: login, intake and the receipt (teller, enclave clerk). The rest
live beside it: the to-do pages in hub.web.worklists, the application page in hub.web.decision, the
dashboard and follow-ups in hub.web.supervision_pages, the resident's status pages in
hub.web.status_pages, ops in hub.web.ops_pages. Server-rendered; forms post back here with the
session's CSRF token. Everything they change goes through the same core functions as the API and
the CLI."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import audit
from hub.appointments import calls
from hub.context import Hub
from hub.errors import FieldError, InvalidInput
from hub.lifecycle import FRONT, Role
from hub.materials import extensions_of, kinds_text
from hub.users import LoginRefused, authenticate
from hub.web import desk_intake
from hub.web.deps import CHANGE_PASSWORD, client_of, get_hub, need, optional_principal
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
from hub.web.worklists import landing

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
Anyone = Annotated[Principal, Depends(need("applications:read"))]
Front = Annotated[Principal, Depends(need("applications:write", *FRONT))]
Supervisor = Annotated[Principal, Depends(need("reports:read", Role.supervisor))]
LOGIN_CSRF = "tbh_login"
UNKNOWN_USER = "(unknown user)"  # the audit log's actor for a failed login naming no account


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
    landing_url = next_url if next_url != "/" else landing(person.role)
    response = _see_other(CHANGE_PASSWORD if person.must_change_password else landing_url)
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
async def logout(
    request: Request, hub: HubDep, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> Response:
    if principal is None:  # also for a user who must first change a temporary password
        return _see_other("/login")
    await _form(request, principal)
    close_session(hub, request.cookies.get(SESSION_COOKIE, ""))
    response = _see_other("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


# ---------------------------------------------------------------- intake (teller, enclave clerk)


@router.get("/intake")
def intake_search(request: Request, hub: HubDep, principal: Front, q: str = "", ticket: str = "") -> Response:
    desk = hub.catalog.desks[principal.actor.desk]
    found = desk_intake.search(hub, desk.channel.value, q[:50])
    regions = {s.code: desk_intake.region_label(hub, s) for s in found}
    called = _called_ticket(hub, principal, ticket)
    return render(request, "intake_search.html", desk=desk, q=q, subjects=found, regions=regions, ticket=called)


def _called_ticket(hub: Hub, principal: Principal, ticket: str | None, source_ref: str | None = None):
    """取号: the called ticket this intake is for (hub.appointments.calls), or None."""
    return calls.for_intake(hub, principal.actor, ticket, source_ref=source_ref) if ticket else None


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
        # extensions too: browsers know no MIME type for .ofd, and the check in the page reads them
        "accept": ",".join([*(f".{e}" for e in extensions_of(hub.store.allowed)), *sorted(hub.store.allowed)]),
        "exts": ",".join(extensions_of(hub.store.allowed)),
        "kinds": kinds_text(hub.store.allowed),
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
def intake_form(code: str, request: Request, hub: HubDep, principal: Front, ticket: str = "") -> Response:
    ctx = _intake_context(hub, principal, code)
    return render(
        request,
        "intake_form.html",
        **ctx,
        ticket=_called_ticket(hub, principal, ticket),
        values={},
        errors=[],
        ticked=(),
        missing=(),
        licence_refs={},
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
    refused: list[str] = []  # the page clears these file inputs and keeps the others
    for i, m in enumerate(ctx["materials"]):
        for f in form.files_of(f"file_{i}"):
            if problem := hub.store.check(f.staged):
                errors.append(FieldError(f"{m.name} ({f.filename})", problem))
                refused.append(f.filename)
            uploads.append(desk_intake.Upload(m.name, f.filename, staged=f.staged))
    fields = {f.name: form.get(f"f_{f.name}") for f in ctx["fields"]}
    ticked = set(form.getlist("checklist"))
    chosen: dict[str, str] = {}  # 电子证照 picked, by material: kept chosen on a refused page
    try:
        due = desk_intake.parse_due(form.get("commitment_due"))
        licences = desk_intake.licence_refs_of(form.getlist("licence"))
        chosen = {r.material: r.model_dump_json() for r in licences}
        if errors:
            raise InvalidInput(errors)
        agent = {"name": form.get("agent_name"), "id_number": form.get("agent_id")}
        ticket = await run_in_threadpool(
            _called_ticket, hub, principal, form.get("queue_ticket"), form.get("source_ref") or None
        )
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
                licences=licences,
                checklist=form.getlist("checklist"),
                commitment_due=due,
                note=form.get("note"),
                source_ref=form.get("source_ref") or None,
                secret=request.app.state.secret,
                queue_ticket=ticket.number if ticket else None,
            )
        )
        if ticket is not None:  # the ticket became this application (hub.appointments.calls.link)
            await run_in_threadpool(calls.link, hub, principal.actor, ticket.id, app.number)
    except InvalidInput as exc:
        return render(
            request,
            "intake_form.html",
            422,
            **ctx,
            values=values,
            ticked=ticked,
            missing=set(form.getlist("missing")),
            licence_refs=chosen,
            errors=[e.as_dict() for e in exc.errors],
            refused_files="\n".join(refused),
            ticket=await run_in_threadpool(
                _called_ticket, hub, principal, form.get("queue_ticket"), form.get("source_ref") or None
            ),
            source_ref=values.get("source_ref") or f"web:{uuid.uuid4()}",
        )
    return _see_other(f"/applications/{app.number}/receipt")
