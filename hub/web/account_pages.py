"""The user's own account: change the password — at will, or first thing after logging in with a
temporary password ops set (until then every other page sends the user here, see
`hub.web.deps.PasswordChangeRequired`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import audit
from hub.context import Hub
from hub.errors import InvalidInput
from hub.users import change_password
from hub.web.deps import CHANGE_PASSWORD, client_of, get_hub, optional_principal
from hub.web.render import render
from hub.web.security import CSRF_FIELD, SESSION_COOKIE, SESSION_MAX, Principal, check_csrf, open_session
from hub.web.worklists import landing

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
# not `need(...)`: a user with a temporary password must reach this page and nothing else
Someone = Annotated[Principal | None, Depends(optional_principal)]
FIELD_ZH = {
    "current": ("当前密码", "Current password"),
    "new": ("新密码", "New password"),
    "again": ("再输入一次", "Again"),
}


def _login() -> RedirectResponse:
    return RedirectResponse(f"/login?next={CHANGE_PASSWORD}", status_code=303)


@router.get(CHANGE_PASSWORD)
def password_page(request: Request, principal: Someone) -> Response:
    if principal is None or principal.username is None:
        return _login()
    return render(request, "account_password.html", errors=[], labels=FIELD_ZH)


@router.post(CHANGE_PASSWORD)
async def password_change(request: Request, hub: HubDep, principal: Someone) -> Response:
    if principal is None or principal.username is None:
        return _login()
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    current, new, again = (str(form.get(k) or "") for k in ("current", "new", "again"))
    try:
        if new != again:
            raise InvalidInput.field("again", "两次输入的新密码不一致", "the two new passwords differ")
        person = await run_in_threadpool(change_password, hub, principal.username, current, new)
    except InvalidInput as exc:
        errors = [e.as_dict() for e in exc.errors]
        return render(request, "account_password.html", 422, errors=errors, labels=FIELD_ZH)
    audit.record(hub, person.actor(), "password_changed", target=person.username, client=client_of(request))
    response = RedirectResponse(landing(person.role), status_code=303)
    # change_password ended every session of the user: this browser goes on in a fresh one
    response.set_cookie(
        SESSION_COOKIE,
        await run_in_threadpool(open_session, hub, person),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=int(SESSION_MAX.total_seconds()),
    )
    return response
