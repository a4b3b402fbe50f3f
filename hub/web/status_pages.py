"""The resident's pages, without a login: the status page a receipt's QR code opens (/s/NUMBER?k=KEY),
its rating form, and the lookup by 办件号 with name or phone (/s) for those without the link. A bad
or expired link lands on the lookup, never on the staff login.

The lookup is a public form, so it carries its own CSRF guard: a double-submit token (a random
value in a SameSite=Strict cookie and in the form, which must agree — a forged form on another site
has neither). Lookups are throttled per client and per number, counted before they run (hub.web.applicant_status)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import ratings
from hub.context import Hub
from hub.documents import documents_of
from hub.documents.library import public_view
from hub.errors import InvalidInput, NotFound
from hub.web.applicant_status import (
    NO_MATCH,
    NO_MATCH_EN,
    TOO_MANY,
    TOO_MANY_EN,
    LookupThrottle,
    lookup,
    normal_number,
    open_status,
    status_path,
    status_view,
)
from hub.web.deps import client_of, get_hub
from hub.web.render import render
from hub.web.security import CSRF_FIELD, same

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
LOOKUP_COOKIE = "tbh_lookup"
LOOKUP_PATH = "/s"
LEVEL_EN = {1: "Very dissatisfied", 2: "Dissatisfied", 3: "Fair", 4: "Satisfied", 5: "Very satisfied"}


def _lookup_page(
    request: Request,
    status: int = 200,
    *,
    number: str = "",
    message: tuple[str, str] | None = None,
    notice: tuple[str, str] | None = None,
) -> Response:
    """The lookup form with a fresh double-submit token (cookie and hidden field)."""
    token = secrets.token_urlsafe(18)
    response = render(request, "status_lookup.html", status, token=token, number=number, message=message, notice=notice)
    response.set_cookie(
        LOOKUP_COOKIE,
        token,
        max_age=3600,
        path=LOOKUP_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _bad_link(request: Request, number: str) -> Response:
    """A status link that does not open (mistyped, cut short, made up, or for a number that does
    not exist — the same): the lookup, with the number as given, and a word on what happened."""
    shown = normal_number(number)[:32]
    notice = (
        "这个查询链接无效或已过期。请输入办件号和申请人姓名（或手机号）查询。",
        "This status link is not valid. Please look the application up by number and name or phone.",
    )
    return _lookup_page(request, 404, number=shown, notice=notice)


@router.get("/status")
def status_alias() -> Response:
    return RedirectResponse(LOOKUP_PATH, status_code=308)


@router.get(LOOKUP_PATH)
def lookup_page(request: Request, n: str = "") -> Response:
    return _lookup_page(request, number=normal_number(n)[:32])


@router.post(LOOKUP_PATH)
async def lookup_submit(request: Request, hub: HubDep) -> Response:
    form = await request.form()
    number, who = str(form.get("number") or "")[:64], str(form.get("who") or "")[:200]
    shown = normal_number(number)[:32]
    cookie, given = request.cookies.get(LOOKUP_COOKIE), str(form.get(CSRF_FIELD) or "")
    if not cookie or not given or not same(given, cookie):
        expired = ("页面已过期，请重新提交。", "The page expired; please submit again.")
        return _lookup_page(request, 403, number=shown, message=expired)
    throttle: LookupThrottle = request.app.state.lookup_throttle
    client, key = client_of(request), normal_number(number)[:64]
    if not throttle.attempt(client, key):
        return _lookup_page(request, 429, number=shown, message=(TOO_MANY, TOO_MANY_EN))
    answer = await run_in_threadpool(lookup, hub, number, who)
    if answer.number is None:
        return _lookup_page(request, 200, number=shown, message=(NO_MATCH, NO_MATCH_EN))
    response = RedirectResponse(status_path(request.app.state.secret, answer.number), status_code=303)
    response.delete_cookie(LOOKUP_COOKIE, path=LOOKUP_PATH)
    return response


def _status(request: Request, hub: Hub, number: str, k: str, **extra: Any) -> Response:
    try:
        app = open_status(hub, request.app.state.secret, number, k)
    except NotFound:
        return _bad_link(request, number)
    view = status_view(hub, app)
    done = request.query_params.get("rated") == "1"
    status = extra.pop("status", 200)
    days = hub.settings.follow_up_workdays
    return render(
        request,
        "status.html",
        status,
        s=view,
        k=k,
        levels=ratings.LEVEL_ZH,
        levels_en=LEVEL_EN,
        done=done,
        promise_days=days,
        supplement=svc.supplement_request(app),  # 补正: what to bring or correct, where, by when
        documents=[public_view(d) for d in documents_of(hub, app)],  # their notices, sealed PDFs
        **extra,
    )


@router.get("/s/{number}")
def status_page(number: str, request: Request, hub: HubDep, k: str = "") -> Response:
    return _status(request, hub, number, k)


@router.post("/s/{number}/rating")
async def status_rate(number: str, request: Request, hub: HubDep, k: str = "") -> Response:
    try:
        await run_in_threadpool(open_status, hub, request.app.state.secret, number, k)
    except NotFound:
        return _bad_link(request, number)
    form = await request.form()
    try:
        level = int(str(form.get("level") or "0"))
    except ValueError:
        level = 0
    comment = str(form.get("comment") or "").strip() or None
    try:
        await run_in_threadpool(ratings.rate, hub, number, level, comment)
    except InvalidInput as exc:  # not chosen, already rated, not closed yet: said on the page itself
        errors = [e.as_dict() for e in exc.errors]
        return await run_in_threadpool(_status, request, hub, number, k, status=422, errors=errors)
    return RedirectResponse(f"{status_path(request.app.state.secret, number)}&rated=1", status_code=303)
