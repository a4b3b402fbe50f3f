"""FastAPI dependencies the API and the pages share: the hub, the caller, scope checks. They are
`async` and hand only the database lookup to a worker thread: FastAPI runs every plain `def`
dependency in a thread of its own, and the hops cost more than the checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from hub.context import Hub
from hub.lifecycle import Role
from hub.web.security import SESSION_COOKIE, Principal, SessionExpired, session_principal, token_principal


async def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


async def optional_principal(request: Request) -> Principal | None:
    """The caller: a bearer token (systems) or the session cookie (people), else None."""
    hub: Hub = request.app.state.hub
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        principal = await run_in_threadpool(token_principal, hub, auth[7:].strip())
        if principal is None:
            raise HTTPException(
                401, "API 令牌无效、已过期或已吊销 (invalid token)", headers={"WWW-Authenticate": "Bearer"}
            )
    elif cookie := request.cookies.get(SESSION_COOKIE):
        try:
            principal = await run_in_threadpool(session_principal, hub, cookie)
        except SessionExpired:
            raise HTTPException(401, "登录已过期，请重新登录 (session expired)") from None
    else:
        return None
    request.state.principal = principal
    return principal


CHANGE_PASSWORD = "/account/password"


class PasswordChangeRequired(HTTPException):
    """Logged in with a temporary password (set by ops): pages send the user to change it, the API
    refuses (403) until then — whoever set it must not be able to use it."""

    def __init__(self) -> None:
        super().__init__(403, "请先修改临时密码 (change your temporary password first)")


async def current(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise HTTPException(401, "请先登录 (not logged in)", headers={"WWW-Authenticate": "Bearer"})
    if principal.must_change_password:
        raise PasswordChangeRequired()
    return principal


def need(scope: str, *roles: Role) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold `scope` (and be in one of `roles`, if given)."""

    async def check(principal: Annotated[Principal, Depends(current)]) -> Principal:
        if scope not in principal.scopes or (roles and principal.role not in roles):
            raise HTTPException(403, f"无权访问：需要权限 {scope} (forbidden: needs {scope})")
        return principal

    return check
