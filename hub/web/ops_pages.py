"""The ops pages: connections, outbox, plugins and job runs (/ops), partner hubs (/ops/partners),
people who log in (/ops/users) and systems' API tokens (/ops/tokens). Every change goes through
the same functions as `hub users …` / `hub tokens …` and the API (hub.users, hub.tokens): the
same fields, the same 双人授权 approvals, the same audit entries. Times are shown in the
county's zone; states and job names as Chinese labels (English with ?lang=en)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import audit
from hub.context import Hub
from hub.errors import InvalidInput, NotFound
from hub.exchange import overview
from hub.lifecycle import Role
from hub.ops import (
    ACCOUNT_ACTIONS,
    JOB_LABELS,
    KIND_LABELS,
    STATE_LABELS,
    connection_rows,
    job_rows,
    label,
    outbox_page,
    plugin_rows,
    retry_dead,
    run_check,
)
from hub.storage.tables import naive_utc
from hub.tokens import REMOTE_ROLES, SCOPES, issue_token, tokens_page, withdraw_token
from hub.users import (
    PERSON_ROLES,
    Approval,
    ApprovalRefused,
    accounts_page,
    disable_user,
    issue_enable,
    issue_password_reset,
    issue_user,
    needs_approval,
    person_named,
    unlock_user,
)
from hub.web.deps import client_of, get_hub, need
from hub.web.render import render
from hub.web.security import CSRF_FIELD, Principal, check_csrf

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
OpsUser = Annotated[Principal, Depends(need("ops", Role.ops))]
Username = Annotated[str, Path(max_length=64)]
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1)]
OPS_PAGE_ROWS = 100
PARTNER_MESSAGE_STATES = ("dead", "pending", "delivered", "cancelled")
MAX_OFFSET = 2**31 - 1
# the names of the fields a refusal names, for the error list on the page
FIELD_LABELS = {
    "username": ("用户名", "Username"),
    "display_name": ("姓名", "Name"),
    "role": ("角色", "Role"),
    "desk": ("窗口", "Desk"),
    "department": ("部门", "Department"),
    "password": ("密码", "Password"),
    "approver": ("授权人", "Approver"),
    "name": ("名称", "Name"),
    "scopes": ("权限范围", "Scopes"),
    "days": ("有效期", "Validity"),
    "confirm": ("确认", "Confirmation"),
}
SCOPE_LABELS = {
    "applications:read": ("查询办件", "read applications"),
    "applications:write": ("收件与办理", "create and act on applications"),
    "reports:read": ("统计报表", "dashboard figures"),
    "ops": ("运维", "operations"),
}
DONE = {  # ?done= after a change: the success message
    "disabled": ("账号已停用，其登录会话已全部结束。", "Disabled; their sessions have ended."),
    "enabled": ("账号已重新启用。", "Enabled again."),
    "unlocked": ("已解除锁定，用户可用原密码登录。", "Unlocked: they can log in with their password."),
    "not_locked": ("该账号当前未被锁定。", "The account was not locked."),
    "revoked": ("令牌已吊销，下一次调用即被拒绝。", "Revoked: its next call is refused."),
}


def _status(exc: InvalidInput | ApprovalRefused) -> int:
    """A refused approval is 403, as the app's handler answers it; a wrong field 422."""
    return 403 if isinstance(exc, ApprovalRefused) else 422


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _form(request: Request, principal: Principal):
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    return form


def _text(form, name: str, limit: int = 256) -> str:
    return str(form.get(name) or "").strip()[:limit]


def _approval(form) -> Approval:
    # the approver's password exactly as typed (never stripped, never kept, never logged)
    return Approval(_text(form, "approver", 64) or None, str(form.get("approver_password") or "")[:256] or None)


def _errors(exc: InvalidInput | ApprovalRefused) -> list[dict[str, str]]:
    return [e.as_dict() for e in exc.errors]


def _offset(value: int) -> int:
    return min(max(value, 0), MAX_OFFSET)


ZONE_LABELS = {"Asia/Shanghai": ("北京时间", "Beijing time")}  # the zone of nearly every county


def _labels(hub: Hub) -> dict[str, Any]:
    zone = hub.settings.timezone
    return {
        "zone": ZONE_LABELS.get(zone, (zone, zone)),
        "STATE_LABELS": STATE_LABELS,
        "JOB_LABELS": JOB_LABELS,
        "KIND_LABELS": KIND_LABELS,
        "ACCOUNT_ACTIONS": ACCOUNT_ACTIONS,
        "label": label,
        "FIELD_LABELS": FIELD_LABELS,
    }


# ---------------------------------------------------------------- connections, outbox, plugins, jobs


@router.get("/ops")
def ops_page(
    request: Request, hub: HubDep, principal: OpsUser, outbox: str = "dead", outbox_offset: int = 0
) -> Response:
    state = outbox if outbox in ("pending", "delivered", "dead", "cancelled") else "dead"
    offset = _offset(outbox_offset)
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
        **_labels(hub),
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


# ---------------------------------------------------------------- 跨省通办 partner hubs


@router.get("/ops/partners")
def ops_partners(request: Request, hub: HubDep, principal: OpsUser, state: str = "dead", offset: int = 0) -> Response:
    """跨省通办: each partner hub — its file, reachability, messages each way, backlog, dead
    letters, its item list — and the messages owed to partners (dead letters first)."""
    state = state if state in PARTNER_MESSAGE_STATES else "dead"
    offset = _offset(offset)
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
        **_labels(hub),
    )


@router.get("/ops/partners/log")
def ops_partner_log(request: Request, hub: HubDep, principal: OpsUser, partner: str = "", offset: int = 0) -> Response:
    """The exchange's message log, newest first (what, whose, verdict; never the bodies)."""
    offset = _offset(offset)
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
        **_labels(hub),
    )


# ---------------------------------------------------------------- people who log in


def _places(hub: Hub) -> dict[str, Any]:
    cat = hub.catalog
    return {
        "desks": sorted(((d.code, d.name) for d in cat.desks.values()), key=lambda x: x[0]),
        "departments": sorted(((d.code, d.name) for d in cat.departments.values()), key=lambda x: x[0]),
    }


def _users_page(
    request: Request,
    hub: Hub,
    *,
    status: int = 200,
    q: str = "",
    offset: int = 0,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, str] | None = None,
    issued: dict[str, str] | None = None,
) -> Response:
    rows, total = accounts_page(hub, q=q, limit=OPS_PAGE_ROWS, offset=offset)
    return render(
        request,
        "ops_users.html",
        status,
        users=rows,
        total=total,
        offset=offset,
        page_rows=OPS_PAGE_ROWS,
        q=q,
        roles=[r.value for r in PERSON_ROLES],
        errors=errors or [],
        entered=entered or {},
        issued=issued,
        **_places(hub),
        **_labels(hub),
    )


@router.get("/ops/users")
def users_page(request: Request, hub: HubDep, principal: OpsUser, q: str = "", offset: int = 0) -> Response:
    return _users_page(request, hub, q=q[:64], offset=_offset(offset))


@router.post("/ops/users")
async def user_create(request: Request, hub: HubDep, principal: OpsUser) -> Response:
    """A new login with a temporary password, shown on this answer only and changed at the first
    login; a desk, department or supervisor login needs its approver (双人授权)."""
    form = await _form(request, principal)
    entered = {k: _text(form, k, 100) for k in ("username", "display_name", "role", "desk", "department", "approver")}
    try:
        role = Role(entered["role"])
    except ValueError:
        err = InvalidInput.field("role", "请选择角色", "choose a role")
        return _users_page(request, hub, status=422, errors=_errors(err), entered=entered)
    try:
        person, password = await run_in_threadpool(
            lambda: issue_user(
                hub,
                principal.actor,
                username=entered["username"],
                display_name=entered["display_name"],
                role=role,
                desk=entered["desk"] if role in (Role.teller, Role.enclave_clerk, Role.clerk) else None,
                department=entered["department"] if role is Role.officer else None,
                approval=_approval(form),
                requester=principal.username,
                client=client_of(request),
            )
        )
    except (InvalidInput, ApprovalRefused) as exc:
        return _users_page(request, hub, status=_status(exc), errors=_errors(exc), entered=entered)
    issued = {"username": person.username, "password": password or "", "what": "created"}
    return _users_page(request, hub, q=person.username, issued=issued)


def _user_page(
    request: Request,
    hub: Hub,
    username: str,
    *,
    status: int = 200,
    errors: list[dict[str, str]] | None = None,
    issued: dict[str, str] | None = None,
) -> Response:
    rows, _ = accounts_page(hub, q=username, limit=OPS_PAGE_ROWS)
    account = next((a for a in rows if a.person.username == username), None)
    if account is None:
        raise NotFound(f"用户 {username} 不存在 (no such user)")
    done = request.query_params.get("done")
    return render(
        request,
        "ops_user.html",
        status,
        a=account,
        p=account.person,
        approval_needed=needs_approval(hub, account.person.role),
        # by the audit log's index on target; logins are the actor's, not listed here
        history=[e for e in audit.entries(hub, target=username, limit=50) if e.action in ACCOUNT_ACTIONS][:20],
        errors=errors or [],
        issued=issued,
        done=DONE.get(done or ""),
        **_labels(hub),
    )


@router.get("/ops/users/{username}")
def user_page(username: Username, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    return _user_page(request, hub, username)


@router.post("/ops/users/{username}/disable")
async def user_disable(username: Username, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    form = await _form(request, principal)
    try:
        if form.get("confirm") != "yes":  # a checkbox, not a dialog: an accidental click does nothing
            raise InvalidInput.field("confirm", "请勾选确认后再停用", "tick the confirmation first")
        await run_in_threadpool(
            lambda: disable_user(
                hub, principal.actor, username, requester=principal.username, client=client_of(request)
            )
        )
    except InvalidInput as exc:
        return _user_page(request, hub, username, status=422, errors=_errors(exc))
    return _see_other(f"/ops/users/{username}?done=disabled")


@router.post("/ops/users/{username}/enable")
async def user_enable(username: Username, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    form = await _form(request, principal)
    try:
        await run_in_threadpool(
            lambda: issue_enable(
                hub,
                principal.actor,
                username,
                approval=_approval(form),
                requester=principal.username,
                client=client_of(request),
            )
        )
    except (InvalidInput, ApprovalRefused) as exc:
        return _user_page(request, hub, username, status=_status(exc), errors=_errors(exc))
    return _see_other(f"/ops/users/{username}?done=enabled")


@router.post("/ops/users/{username}/reset")
async def user_reset(username: Username, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    """A temporary password, shown once; the user's sessions end, a lockout is lifted, and the
    next login must replace it."""
    form = await _form(request, principal)
    try:
        person, password = await run_in_threadpool(
            lambda: issue_password_reset(
                hub,
                principal.actor,
                username,
                approval=_approval(form),
                requester=principal.username,
                client=client_of(request),
            )
        )
    except (InvalidInput, ApprovalRefused) as exc:
        return _user_page(request, hub, username, status=_status(exc), errors=_errors(exc))
    issued = {"username": person.username, "password": password or "", "what": "reset"}
    return _user_page(request, hub, username, issued=issued)


@router.post("/ops/users/{username}/unlock")
async def user_unlock(username: Username, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    await _form(request, principal)
    person_named(hub, username)  # 404 for no such user, before the audit log is written
    was = await run_in_threadpool(lambda: unlock_user(hub, principal.actor, username, client=client_of(request)))
    return _see_other(f"/ops/users/{username}?done={'unlocked' if was else 'not_locked'}")


# ---------------------------------------------------------------- API tokens


def _tokens_page(
    request: Request,
    hub: Hub,
    *,
    status: int = 200,
    offset: int = 0,
    errors: list[dict[str, str]] | None = None,
    entered: dict[str, Any] | None = None,
    issued: dict[str, str] | None = None,
) -> Response:
    rows, total = tokens_page(hub, limit=OPS_PAGE_ROWS, offset=offset)
    done = request.query_params.get("done")
    return render(
        request,
        "ops_tokens.html",
        status,
        tokens=rows,
        total=total,
        offset=offset,
        page_rows=OPS_PAGE_ROWS,
        roles=[r.value for r in REMOTE_ROLES],
        scopes=list(SCOPES),
        SCOPE_LABELS=SCOPE_LABELS,
        errors=errors or [],
        entered=entered or {"scopes": ["applications:read", "applications:write"]},
        issued=issued,
        done=DONE.get(done or ""),
        now=naive_utc(hub.now()),
        **_places(hub),
        **_labels(hub),
    )


@router.get("/ops/tokens")
def tokens_list(request: Request, hub: HubDep, principal: OpsUser, offset: int = 0) -> Response:
    return _tokens_page(request, hub, offset=_offset(offset))


@router.post("/ops/tokens")
async def token_create(request: Request, hub: HubDep, principal: OpsUser) -> Response:
    """A token for a desk's system (as POST /api/v1/ops/tokens): the secret is on this answer
    only; approved by a person of that desk in the same role, or a supervisor."""
    form = await _form(request, principal)
    entered: dict[str, Any] = {k: _text(form, k, 100) for k in ("name", "role", "desk", "days", "approver")}
    entered["scopes"] = [str(s) for s in form.getlist("scopes")][: len(SCOPES)]
    try:
        try:
            role = Role(entered["role"])
        except ValueError:
            raise InvalidInput.field("role", "请选择角色", "choose a role") from None
        try:
            days = int(entered["days"]) if entered["days"] else None
        except ValueError:
            raise InvalidInput.field("days", "有效期应为天数（整数）", "a whole number of days") from None
        if days is not None and days > 3650:
            raise InvalidInput.field("days", "有效期最长3650天", "at most 3650 days")
        secret, info = await run_in_threadpool(
            lambda: issue_token(
                hub,
                principal.actor,
                entered["name"],
                role=role,
                scopes=entered["scopes"],
                desk=entered["desk"],
                days=days,
                approval=_approval(form),
                requester=principal.username,
                client=client_of(request),
            )
        )
    except (InvalidInput, ApprovalRefused) as exc:
        return _tokens_page(request, hub, status=_status(exc), errors=_errors(exc), entered=entered)
    return _tokens_page(request, hub, issued={"id": str(info.id), "name": info.name, "secret": secret})


@router.post("/ops/tokens/{token_id}/revoke")
async def token_revoke(token_id: TokenId, request: Request, hub: HubDep, principal: OpsUser) -> Response:
    form = await _form(request, principal)
    if form.get("confirm") != "yes":
        err = InvalidInput.field("confirm", "请勾选确认后再吊销", "tick the confirmation first")
        return _tokens_page(request, hub, status=422, errors=_errors(err))
    await run_in_threadpool(lambda: withdraw_token(hub, principal.actor, token_id, client=client_of(request)))
    return _see_other("/ops/tokens?done=revoked")
