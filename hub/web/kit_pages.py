"""The offline kit (政务背包) on the web: the installable app's shell at /kit/ (a page with no
personal data, so the service worker may keep it), its service worker at /kit/sw.js (a route, so
its scope is /kit/), its manifest; the device list with revocation (/kit/devices); and the API
the kit speaks: enrolment (a logged-in agent, cookie + CSRF), the catalogue bundle and sync (the
device's token: `Authorization: Kit <token>`). A refused device gets 401 with `code`
(`device_revoked`: the kit wipes its data). The rules live in hub.kit; this module parses and shows."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from hub.context import Hub
from hub.errors import InvalidInput
from hub.kit import devices
from hub.kit.bundle import bundle
from hub.kit.sync import sync
from hub.lifecycle import Role
from hub.web.deps import get_hub, need
from hub.web.render import render
from hub.web.security import CSRF_FIELD, CSRF_HEADER, Principal, check_csrf

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1/kit", tags=["kit"])
HubDep = Annotated[Hub, Depends(get_hub)]
Staff = Annotated[Principal, Depends(need("applications:read"))]
STATIC = Path(__file__).parent / "static" / "kit"
# what the service worker keeps for offline use: the shell and every script it loads
SHELL = ["/kit/", "/kit/manifest.webmanifest", "/static/kit/kit.css", "/static/kit/icon.svg"]
SCRIPTS = ["app.js", "store.js", "forms.js", "sync.js"]
VENDOR = "vendor/json-schema"


@cache
def _assets() -> tuple[list[str], str]:
    """The URLs the service worker caches and a version from their bytes: a changed script makes a
    new worker, which replaces the old cache (the kit never runs a mix of old and new files)."""
    files = [STATIC / s for s in SCRIPTS] + sorted((STATIC / VENDOR).glob("*.js"))
    files += [STATIC / "kit.css", STATIC / "icon.svg", Path(__file__).parent / "templates" / "kit_app.html"]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    urls = SHELL + [f"/static/kit/{s}" for s in SCRIPTS]
    urls += [f"/static/kit/{VENDOR}/{f.name}" for f in sorted((STATIC / VENDOR).glob("*.js"))]
    return urls, digest.hexdigest()[:16]


# ---------------------------------------------------------------- the app, its worker and manifest


@router.get("/kit")
async def kit_root() -> Response:
    return RedirectResponse("/kit/", status_code=307)


@router.get("/kit/")
async def kit_app(request: Request) -> Response:
    return render(request, "kit_app.html", version=_assets()[1])


@router.get("/kit/sw.js")
async def service_worker() -> Response:
    urls, version = _assets()
    body = (STATIC / "sw.js").read_text(encoding="utf-8")
    head = f"const VERSION = {json.dumps(version)};\nconst ASSETS = {json.dumps(urls)};\n"
    return Response(head + body, media_type="text/javascript", headers={"Service-Worker-Allowed": "/kit/"})


@router.get("/kit/manifest.webmanifest")
async def manifest() -> Response:
    body = {
        "name": "政务背包 · 通办枢纽",
        "short_name": "政务背包",
        "description": "代办员上门收件（无网络时可用）",
        "lang": "zh-CN",
        "start_url": "/kit/",
        "scope": "/kit/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#b71c1c",
        "icons": [{"src": "/static/kit/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    }
    return JSONResponse(body, media_type="application/manifest+json")


# ---------------------------------------------------------------- devices: list and revoke


@router.get("/kit/devices")
async def devices_page(request: Request, hub: HubDep, principal: Staff) -> Response:
    rows = await run_in_threadpool(devices.list_devices, hub, principal.actor, principal.username)
    return render(request, "kit_devices.html", devices=rows)


@router.post("/kit/devices/{device_id}/revoke")
async def revoke_page(device_id: int, request: Request, hub: HubDep, principal: Staff) -> Response:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    check_csrf(principal, token if isinstance(token, str) else None)
    await run_in_threadpool(devices.revoke, hub, principal.actor, device_id, principal.username)
    return RedirectResponse("/kit/devices", status_code=303)


# ---------------------------------------------------------------- the kit's API


class Enrolment(BaseModel):
    name: str


@api.get("/me")
async def me(principal: Staff) -> dict[str, Any]:
    """Who is logged in, for the enrolment screen (and the CSRF token its POST must carry)."""
    return {
        "username": principal.username,
        "name": principal.actor.name,
        "role": principal.role.value,
        "desk": principal.actor.desk,
        "csrf": principal.csrf,
    }


@api.post("/devices", status_code=201)
async def enrol(body: Enrolment, request: Request, hub: HubDep, principal: Staff) -> dict[str, Any]:
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    if principal.role is not Role.agent or principal.username is None:
        raise HTTPException(403, "只有代办员本人可以登记政务背包设备 (only an agent enrols a kit device)")
    device, token = await run_in_threadpool(devices.enrol, hub, principal.actor, principal.username, body.name)
    return {"device": device.as_dict(), "token": token}


@api.get("/devices")
async def list_api(hub: HubDep, principal: Staff) -> dict[str, Any]:
    rows = await run_in_threadpool(devices.list_devices, hub, principal.actor, principal.username)
    return {"devices": [d.as_dict() for d in rows]}


@api.post("/devices/{device_id}/revoke")
async def revoke_api(device_id: int, request: Request, hub: HubDep, principal: Staff) -> dict[str, Any]:
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    d = await run_in_threadpool(devices.revoke, hub, principal.actor, device_id, principal.username)
    return {"device": d.as_dict()}


async def _device(request: Request) -> devices.DeviceAuth:
    hub: Hub = request.app.state.hub
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("kit "):
        raise HTTPException(401, "需要政务背包设备凭证 (device token required)", headers={"WWW-Authenticate": "Kit"})
    try:
        return await run_in_threadpool(devices.authenticate, hub, auth[4:].strip())
    except devices.DeviceRefused as exc:
        raise _Refused(exc) from None


class _Refused(HTTPException):
    def __init__(self, exc: devices.DeviceRefused):
        super().__init__(401, {"code": exc.code, "zh": exc.zh, "en": exc.en}, headers={"WWW-Authenticate": "Kit"})


Device = Annotated[devices.DeviceAuth, Depends(_device)]


@api.get("/bundle")
async def get_bundle(hub: HubDep, auth: Device) -> dict[str, Any]:
    return await run_in_threadpool(bundle, hub, auth)


@api.post("/sync")
async def post_sync(request: Request, hub: HubDep, auth: Device) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput.field("body", "请求内容不是有效的 JSON", "body is not JSON") from None
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise InvalidInput.field("records", "应为记录列表", "expected a list of records")
    results = await run_in_threadpool(sync, hub, auth, records)
    return {"results": [r.as_dict() for r in results]}


router.include_router(api)  # one router for app.py: the pages and the kit's API
