"""Licences on the web: the public page a licence's QR code opens (/l/CODE: valid, revoked or
expired, type, number, issuer, dates, the holder's name masked by the one rule, hub.ids.mask_name
— nothing else), the signed status
list (/l/status.json), the staff pages of the library (/licences: within the caller's scope; the
issuing department's officer revokes there, after a confirmation), and the API
(/api/v1/licences). Every surface goes through hub.licences.manage."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub import audit
from hub.applications.licences import revoke, sealed_pdf
from hub.catalog.licence_types import LONG_TERM
from hub.context import Hub
from hub.errors import InvalidInput, NotFound
from hub.ids import mask_id, mask_name
from hub.licences import manage, status_list
from hub.licences.library import status
from hub.rollups import local_day
from hub.seals import SealMissing
from hub.storage.tables import Licence
from hub.web.deps import client_of, get_hub, need
from hub.web.render import render
from hub.web.security import CSRF_FIELD, CSRF_HEADER, Principal, Throttle, check_csrf

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["licences"])
HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(need("applications:read"))]
Writer = Annotated[Principal, Depends(need("applications:write"))]
Number = Annotated[str, PathParam(min_length=8, max_length=64)]
CODE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PUBLIC_LIMIT = 30  # lookups of /l/CODE per client address in 10 minutes: a phone needs one or two
TOO_MANY = "查询过于频繁，请稍后再试。"


def public_view(licence: Licence, today: Any, tz: Any) -> dict[str, Any]:
    now = status(licence, today)
    return {
        "status": now,
        "status_zh": manage.STATUS_ZH[now],
        "type_name": licence.type_name,
        "number": licence.number,
        "issuer_name": licence.issuer_name,
        "issued_on": licence.issued_on.isoformat(),
        "valid_from": licence.valid_from.isoformat(),
        "valid_until": licence.valid_until.isoformat() if licence.valid_until else LONG_TERM,
        "holder": mask_name(licence.holder_name),
        "revoked_on": local_day(licence.revoked_at, tz).isoformat() if licence.revoked_at else None,
    }


def _throttle(request: Request, hub: Hub) -> Throttle:
    state = request.app.state
    if getattr(state, "licence_throttle", None) is None:
        state.licence_throttle = Throttle(
            hub.settings.resolved_redis_url, limit=PUBLIC_LIMIT, window=600, prefix="tbh-licence-ip"
        )
    return state.licence_throttle


def _lookup(hub: Hub, code: str) -> dict[str, Any] | None:
    with hub.sessions() as session:
        found = session.scalars(select(Licence).where(Licence.code == code)).first()
        return public_view(found, hub.today(), hub.settings.tz) if found is not None else None


@router.get("/l/status.json")
def status_json(hub: HubDep) -> Response:
    """The signed list of revoked licences (hub.licences.status_list), for offline verifiers."""
    try:
        document = status_list.signed(hub)
    except SealMissing:
        return JSONResponse({"detail": "证照状态列表暂不可用 (no hub seal yet)"}, status_code=503)
    return JSONResponse(document, headers={"cache-control": "no-cache"})


@router.get("/l/{code}")
def public_page(code: str, request: Request, hub: HubDep) -> Response:
    """The QR code's page. An unknown or malformed code gets the same page (404), so a guess
    learns nothing; every client is throttled."""
    headers = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
    if not _throttle(request, hub).take(client_of(request)):
        response = render(request, "licence_public.html", 429, l=None, message=TOO_MANY)
    else:
        found = _lookup(hub, code) if CODE.match(code) else None
        response = render(request, "licence_public.html", 200 if found else 404, l=found, message=None)
    response.headers.update(headers)
    return response


# ---------------------------------------------------------------- staff pages


def _detail(hub: Hub, number: str, principal: Principal) -> dict[str, Any]:
    with hub.sessions() as session:
        licence = manage.get_licence(session, number, principal.actor)
        view = manage.view(licence, principal.actor, hub.today())
        view["may_revoke"] = manage.may_revoke(principal.actor, licence) and licence.status != "revoked"
    return view


def _search(
    hub: Hub, principal: Principal, holder_id: str | None, type_code: str | None, client: str | None, surface: str
) -> list[dict[str, Any]]:
    """A search of the library (the page and the API alike), recorded in the audit log: who asked
    for which holder — the ID masked, as everywhere it is shown — and how many licences it found.
    A refused search (a desk without an ID) is recorded too."""
    holder = (holder_id or "").strip().upper() or None
    masked = mask_id(holder) if holder else None
    try:
        with hub.sessions() as session:
            found = manage.find_licences(session, principal.actor, holder_id=holder, type_code=type_code)
            rows = [manage.view(lic, principal.actor, hub.today()) for lic in found]
    except InvalidInput:
        audit.record(hub, principal.actor, "licence_search", target=masked, client=client, type=type_code,
                     surface=surface, refused=True)  # fmt: skip
        raise
    audit.record(hub, principal.actor, "licence_search", target=masked, client=client, type=type_code,
                 surface=surface, found=len(rows))  # fmt: skip
    return rows


@router.get("/licences")
def library_page(
    request: Request,
    hub: HubDep,
    principal: Reader,
    holder_id: Annotated[str, Query(max_length=40)] = "",
    type: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    if principal.role in manage.FRONT_DESK and not holder_id.strip():
        found: list[dict[str, Any]] = []
    else:
        found = _search(hub, principal, holder_id.strip() or None, type or None, client_of(request), "web")
    types = sorted(hub.catalog.licence_types.values(), key=lambda t: t.code)
    return render(request, "licences.html", rows=found, types=types, holder_id=holder_id, type=type)


@router.get("/licences/{number}")
def licence_page(number: str, request: Request, hub: HubDep, principal: Reader) -> Response:
    view = _detail(hub, number, principal)
    audit.record(hub, principal.actor, "view_licence", target=number, client=client_of(request), full_ids=False)
    return render(request, "licence.html", l=view, done=request.query_params.get("done") == "revoke")


@router.get("/licences/{number}/pdf")
async def licence_pdf(number: str, request: Request, hub: HubDep, principal: Reader) -> Response:
    await run_in_threadpool(_detail, hub, number, principal)  # in scope, or 404
    content = await run_in_threadpool(sealed_pdf, hub, number)
    return Response(
        content,
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="{number}.pdf"', "cache-control": "no-store"},
    )


@router.post("/licences/{number}/revoke")
async def licence_revoke(number: str, request: Request, hub: HubDep, principal: Writer) -> Response:
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    reason = str(form.get("reason") or "").strip()
    if form.get("confirm") != "1":  # irreversible: a page that asks first, nothing done yet
        view = await run_in_threadpool(_detail, hub, number, principal)
        return render(request, "licence_revoke.html", l=view, reason=reason)
    await run_in_threadpool(revoke, hub, number, principal.actor, reason)
    return RedirectResponse(f"/licences/{number}?done=revoke", status_code=303)


# ---------------------------------------------------------------- API


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=manage.MAX_REASON)


@api.get("/licences")
def api_list(
    request: Request,
    hub: HubDep,
    principal: Reader,
    holder_id: Annotated[
        str | None, Query(max_length=40, description="The holder's full ID number or credit code")
    ] = None,
    type: Annotated[str | None, Query(max_length=16, description="Licence type code (LNYDZ, YYZZ, BDCQZS …)")] = None,
) -> list[dict[str, Any]]:
    """Licences in the caller's scope (an officer: their department's; a desk: by holder only).
    Every search is in the audit log, the holder's ID masked."""
    return _search(hub, principal, holder_id, type, client_of(request), "api")


@api.get("/licences/{number}")
def api_show(number: Number, hub: HubDep, principal: Reader) -> dict[str, Any]:
    return _detail(hub, number, principal)


@api.post("/licences/{number}/revoke")
def api_revoke(number: Number, body: RevokeIn, request: Request, hub: HubDep, principal: Writer) -> dict[str, Any]:
    """注销: the issuing department's officer revokes a licence, with a reason."""
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    revoke(hub, number, principal.actor, body.reason)
    return _detail(hub, number, principal)


def application_licences(hub: Hub, number: str, principal: Principal) -> list[dict[str, Any]]:
    """The licences an application issued, for its page."""
    try:
        with hub.sessions() as session:
            return manage.of_application(session, number, principal.actor, hub.today())
    except NotFound:
        return []
