"""Residents online (网办), mobile-first: sign in through an identity provider (hub.identity; the
OpenID Connect type is the `oidc` plugin), then `/my` — the resident's own applications only (read
as `Resident.actor`, role applicant bound to the verified ID number, scoped by
hub.applications.scope like every read), one application's page (another resident's number is the
same 404 as a number nobody holds), applying online for items delegated to the `online` channel
(received at the online desk with the verified identity: the ID number is never typed), materials
uploaded or supplied by 电子证照 reference (the resident's own licences), answering 补正, the
rating, and a link to booking (/book).

The login's state, nonce and PKCE verifier travel in a signed cookie that lives ten minutes
(hub.identity.seal_login), set for /my only; the callback checks the state against it before the
code goes anywhere. Every form carries the resident session's CSRF token. Logins (and refusals)
and detail views are audited with the ID number masked."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import audit, identity, lifecycle, ratings
from hub.applications.models import Actor
from hub.catalog.models import Bundle, Channel, Item
from hub.context import Hub
from hub.documents import documents_of
from hub.documents.library import public_view
from hub.errors import FieldError, HubError, IllegalTransition, InvalidInput, NotFound, Reason
from hub.ids import mask_id, mask_name
from hub.lifecycle import Role
from hub.secret_key import status_key
from hub.web import desk_intake
from hub.web.applicant_status import status_view
from hub.web.deps import client_of, get_hub
from hub.web.render import render
from hub.web.resident_session import (
    RESIDENT_COOKIE,
    RESIDENT_MAX,
    Resident,
    close_resident_session,
    open_resident_session,
    optional_resident,
)
from hub.web.security import CSRF_FIELD, same
from hub.web.status_pages import LEVEL_EN
from hub.web.uploads import Body, read_multipart

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
LOGIN_COOKIE = "tbh_resident_login"
MY = "/my"
BOOK = "/book"  # the appointments page (another part of the hub)


# ---------------------------------------------------------------- helpers


def _providers(request: Request) -> dict[str, identity.Configured]:
    """The configured providers, made once per app (their discovery documents and keys are cached
    inside them)."""
    state = request.app.state
    if getattr(state, "identity_providers", None) is None:
        state.identity_providers = identity.configured(state.hub)
    return state.identity_providers


def _audit_actor(resident: Resident | None, name: str = "") -> Actor:
    """Who the audit log names for a resident: the masked name (the masked ID goes in the data)."""
    return Actor(name=mask_name(resident.name if resident else name) or "居民", role=Role.applicant)


def _to_login(request: Request) -> Response:
    return RedirectResponse(f"{MY}/login?next={request.url.path}", status_code=303)


# where a resident may be sent back to after signing in: their own pages only (no open redirect)
RESIDENT_PAGES = (MY, "/appointments", "/help")


def _safe_next(value: str) -> str:
    ok = value.startswith(RESIDENT_PAGES) and not value.startswith("//") and "\\" not in value
    return value if ok else MY


def _redirect_uri(request: Request, hub: Hub) -> str:
    base = hub.settings.public_url or str(request.base_url).rstrip("/")
    return f"{base}{MY}/callback"


def _csrf_ok(resident: Resident, given: str | None) -> bool:
    return bool(given) and same(str(given), resident.csrf)


def _expired(request: Request) -> Response:
    return render(
        request,
        "resident_refused.html",
        403,
        reason=Reason("页面已过期，请刷新后重试。", "The page expired; please try again."),
    )


def online_desk(hub: Hub) -> str | None:
    """The desk online applications are received at: the catalogue's (first) desk of channel
    online (config/desks.yaml: online-zlb, 泰顺县网上办事大厅)."""
    return next((d.code for d in hub.catalog.desks.values() if d.channel is Channel.online), None)


def _online_subject(hub: Hub, code: str) -> Item | Bundle:
    subject = hub.catalog.subject(code)
    if subject is None or Channel.online not in subject.channels or code in hub.catalog.unavailable:
        raise NotFound(f"事项 {code} 不支持网上办理 (not available online)")
    return subject


# ---------------------------------------------------------------- signing in and out


@router.get(f"{MY}/login")
async def login_page(request: Request, next: str = MY) -> Response:
    if await optional_resident(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    providers = await run_in_threadpool(_providers, request)
    return render(request, "resident_login.html", providers=list(providers.values()), next=_safe_next(next))


@router.get(MY + "/login/{name}")
async def login_start(name: str, request: Request, hub: HubDep, next: str = MY) -> Response:
    configured = (await run_in_threadpool(_providers, request)).get(name)
    if configured is None or configured.provider is None:
        return render(
            request,
            "resident_refused.html",
            404,
            reason=Reason(
                "该登录方式暂不可用，请选择其他方式。", "This sign-in is not available; please choose another."
            ),
        )
    login = identity.new_login(name, hub.now(), _safe_next(next))
    try:
        url = await run_in_threadpool(
            lambda: configured.provider.authorization_url(  # type: ignore[union-attr]
                state=login.state,
                nonce=login.nonce,
                code_verifier=login.code_verifier,
                redirect_uri=_redirect_uri(request, hub),
            )
        )
    except identity.IdentityRefused as exc:  # the provider's discovery did not answer
        return render(request, "resident_refused.html", 502, reason=exc.reason)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        identity.seal_login(request.app.state.secret, login),
        max_age=identity.LOGIN_SECONDS,
        path=MY,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to the callback
        secure=request.url.scheme == "https",
    )
    return response


def _refused(request: Request, hub: Hub, reason: Reason, provider: str, status: int = 403) -> Response:
    audit.record(
        hub,
        _audit_actor(None),
        "resident_login_refused",
        client=client_of(request),
        provider=provider,
        reason=reason.en,
    )
    response = render(request, "resident_refused.html", status, reason=reason)
    response.delete_cookie(LOGIN_COOKIE, path=MY)
    return response


@router.get(f"{MY}/callback")
async def login_callback(request: Request, hub: HubDep, code: str = "", state: str = "", error: str = "") -> Response:
    login = identity.open_login(request.app.state.secret, request.cookies.get(LOGIN_COOKIE, ""), hub.now())
    if login is None or not state or not same(state, login.state):
        # no login of this browser is waiting for this answer (expired, replayed, or forged)
        reason = Reason("登录已过期或无效，请重新登录。", "The sign-in expired or is not valid; please sign in again.")
        return await run_in_threadpool(_refused, request, hub, reason, login.provider if login else "-", 400)
    configured = _providers(request).get(login.provider)
    if configured is None or configured.provider is None:
        reason = Reason("该登录方式暂不可用。", "This sign-in is not available.")
        return await run_in_threadpool(_refused, request, hub, reason, login.provider, 404)
    if error or not code:
        reason = Reason("您已取消登录或身份认证未通过。", "Sign-in was cancelled or refused by the identity service.")
        return await run_in_threadpool(_refused, request, hub, reason, login.provider)
    provider = configured.provider
    try:
        who = await run_in_threadpool(
            lambda: provider.complete(
                code=code[:2048],
                nonce=login.nonce,
                code_verifier=login.code_verifier,
                redirect_uri=_redirect_uri(request, hub),
                today=hub.today(),
            )
        )
    except identity.IdentityRefused as exc:
        log.warning("resident sign-in through %s refused: %s", login.provider, exc.reason.en)
        return await run_in_threadpool(_refused, request, hub, exc.reason, login.provider)
    token = await run_in_threadpool(
        lambda: open_resident_session(
            hub, provider=login.provider, subject=who.subject, id_number=who.id_number, name=who.name, phone=who.phone
        )
    )
    await run_in_threadpool(
        lambda: audit.record(
            hub,
            _audit_actor(None, who.name),
            "resident_login",
            client=client_of(request),
            provider=login.provider,
            id_number=mask_id(who.id_number),
        )
    )
    response = RedirectResponse(_safe_next(login.next), status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path=MY)
    response.set_cookie(
        RESIDENT_COOKIE,
        token,
        max_age=int(RESIDENT_MAX.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(f"{MY}/logout")
async def logout(request: Request, hub: HubDep) -> Response:
    resident = await optional_resident(request)
    form = await request.form()
    if resident is not None:
        if not _csrf_ok(resident, str(form.get(CSRF_FIELD) or "")):
            return _expired(request)
        await run_in_threadpool(close_resident_session, hub, request.cookies.get(RESIDENT_COOKIE, ""))
    response = RedirectResponse(f"{MY}/login?out=1", status_code=303)
    response.delete_cookie(RESIDENT_COOKIE, path="/")
    return response


# ---------------------------------------------------------------- the resident's own applications


def _home(hub: Hub, resident: Resident) -> dict[str, Any]:
    with hub.sessions() as session:
        apps = svc.list_applications(session, resident.actor, limit=100)
        mine = [
            {"number": a.number, "title": a.title, "state": a.state, "view": status_view(hub, a)["state_zh"]}
            for a in apps
        ]
    subjects = desk_intake.subjects_for(hub, Channel.online.value) if online_desk(hub) else []
    return {"apps": mine, "subjects": [s for s in subjects if s.code not in hub.catalog.unavailable]}


@router.get(MY)
async def my_home(request: Request, hub: HubDep) -> Response:
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    ctx = await run_in_threadpool(_home, hub, resident)
    return render(request, "resident_home.html", resident=resident, book=BOOK, **ctx)


def _detail(request: Request, hub: Hub, resident: Resident, number: str, status: int = 200, **extra: Any) -> Response:
    """One of the resident's applications; anything else is the same 404 (never says whose)."""
    try:
        app = svc.read(hub, number[:64], resident.actor)
    except NotFound:
        return render(
            request,
            "resident_refused.html",
            404,
            reason=Reason("未找到该办件。", "No such application."),
            back=MY,
            resident=resident,
        )
    audit.record(
        hub,
        _audit_actor(resident),
        "view_detail",
        target=app.number,
        client=client_of(request),
        id_number=mask_id(resident.id_number),
    )
    subject = hub.catalog.subject(app.subject_code)
    key = status_key(request.app.state.secret, app.number)
    return render(
        request,
        "resident_app.html",
        status,
        resident=resident,
        s=status_view(hub, app),
        supplement=svc.supplement_request(app),
        materials=hub.catalog.materials_of(subject) if subject else [],
        documents=[public_view(d) for d in documents_of(hub, app)],
        k=key,
        levels=ratings.LEVEL_ZH,
        levels_en=LEVEL_EN,
        promise_days=hub.settings.follow_up_workdays,
        attachable=app.state in lifecycle.OPEN,  # the core's rule (hub.applications.materials) decides
        book=BOOK,
        **({"done": {}} | extra),
    )


@router.get(MY + "/apps/{number}")
async def my_app(number: str, request: Request, hub: HubDep) -> Response:
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    done = {k: request.query_params.get(k) == "1" for k in ("new", "rated", "attached", "resumed")}
    return await run_in_threadpool(_detail, request, hub, resident, number, done=done)


def _errors(exc: Exception) -> list[dict[str, str]]:
    if isinstance(exc, InvalidInput):
        return [e.as_dict() for e in exc.errors]
    return [{"field": "", "zh": str(exc), "en": str(exc)}]


def _uploads(hub: Hub, names: list[str], form: Body) -> tuple[list[svc.MaterialIn], list[FieldError]]:
    """The files of `file_{i}` inputs, one per material name, each checked by the store's rules."""
    materials, errors = [], []
    for i, name in enumerate(names):
        for f in form.files_of(f"file_{i}"):
            if problem := hub.store.check(f.staged):
                errors.append(FieldError(f"{name} ({f.filename})", problem))
            materials.append(svc.MaterialIn(name=name, filename=f.filename, staged=f.staged))
    return materials, errors


@router.post(MY + "/apps/{number}/materials")
async def my_attach(number: str, request: Request, hub: HubDep) -> Response:
    """Materials for an open application (补正 or 容缺): uploaded, checked like any intake."""
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    form = await read_multipart(request, hub.store, max_files=10)
    try:
        if not _csrf_ok(resident, form.get(CSRF_FIELD)):
            return _expired(request)
        try:
            app = await run_in_threadpool(svc.read, hub, number[:64], resident.actor)
        except NotFound:
            return await run_in_threadpool(_detail, request, hub, resident, number)
        subject = hub.catalog.subject(app.subject_code)
        names = [m.name for m in hub.catalog.materials_of(subject)] if subject else []
        materials, errors = _uploads(hub, names, form)
        try:
            if errors:
                raise InvalidInput(errors)
            if not materials:
                raise InvalidInput.field("materials", "请选择要上传的材料文件", "choose a file to upload")
            await run_in_threadpool(svc.attach, hub, app.number, materials, resident.actor)
        except (InvalidInput, IllegalTransition) as exc:
            return await run_in_threadpool(_detail, request, hub, resident, number, 422, errors=_errors(exc))
    finally:
        await run_in_threadpool(form.discard)
    return RedirectResponse(f"{MY}/apps/{app.number}?attached=1", status_code=303)


@router.post(MY + "/apps/{number}/resume")
async def my_resume(number: str, request: Request, hub: HubDep) -> Response:
    """补正完成: the resident says everything asked is done; the officer's clock runs again."""
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    form = await request.form()
    if not _csrf_ok(resident, str(form.get(CSRF_FIELD) or "")):
        return _expired(request)
    try:
        await run_in_threadpool(lambda: svc.transition(hub, number[:64], "resume", resident.actor))
    except NotFound:
        return await run_in_threadpool(_detail, request, hub, resident, number)
    except (InvalidInput, IllegalTransition) as exc:
        return await run_in_threadpool(_detail, request, hub, resident, number, 422, errors=_errors(exc))
    return RedirectResponse(f"{MY}/apps/{number}?resumed=1", status_code=303)


@router.post(MY + "/apps/{number}/rating")
async def my_rate(number: str, request: Request, hub: HubDep) -> Response:
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    form = await request.form()
    if not _csrf_ok(resident, str(form.get(CSRF_FIELD) or "")):
        return _expired(request)
    try:
        level = int(str(form.get("level") or "0"))
    except ValueError:
        level = 0
    comment = str(form.get("comment") or "").strip() or None
    try:
        await run_in_threadpool(lambda: ratings.rate(hub, number[:64], level, comment, actor=resident.actor))
    except NotFound:
        return await run_in_threadpool(_detail, request, hub, resident, number)
    except InvalidInput as exc:
        return await run_in_threadpool(_detail, request, hub, resident, number, 422, errors=_errors(exc))
    return RedirectResponse(f"{MY}/apps/{number}?rated=1", status_code=303)


# ---------------------------------------------------------------- applying online


def _licences(hub: Hub, resident: Resident, subject: Item | Bundle) -> dict[str, dict[str, Any]]:
    """For each material a licence can stand for: the resident's own licences of that type (the
    one lookup every surface uses, audited)."""
    found: dict[str, dict[str, Any]] = {}
    for m in hub.catalog.materials_of(subject):
        if m.licence is None or m.supplied_by != "applicant":
            continue
        try:
            got = desk_intake.lookup_licences(
                hub, subject, m.name, (resident.id_number, resident.name), {}, _audit_actor(resident)
            )
            for lic in got["licences"]:
                lic["value"] = licence_value(lic, m.name)
            found[m.name] = got
        except HubError as exc:
            found[m.name] = {"licences": [], "problems": [str(exc)]}
    return found


def _apply_context(hub: Hub, resident: Resident, code: str) -> dict[str, Any]:
    if online_desk(hub) is None:
        raise NotFound("网上办事大厅尚未开通 (no online desk is configured)")
    subject = _online_subject(hub, code)
    materials = [m for m in hub.catalog.materials_of(subject) if m.supplied_by == "applicant"]
    return {
        "subject": subject,
        "fields": hub.catalog.form_of(subject),
        # what the core's error fields are called on this page (the form's own labels)
        "labels": {"materials": "申请材料", "source_ref": "重复提交"}
        | {f"form.{f.name}": f.label for f in hub.catalog.form_of(subject)},
        "materials": materials,
        "licences": _licences(hub, resident, subject),
        "max_mb": hub.store.max_bytes // (1024 * 1024),
    }


@router.get(MY + "/apply/{code}")
async def apply_page(code: str, request: Request, hub: HubDep) -> Response:
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    try:
        ctx = await run_in_threadpool(_apply_context, hub, resident, code[:64])
    except NotFound as exc:
        return render(
            request, "resident_refused.html", 404, reason=Reason(*_split(str(exc))), back=MY, resident=resident
        )
    # the resident's own phone, as the provider vouched for it, in the form's first required phone
    # field (联系电话); an emergency contact's or an agent's is theirs to type
    contact = next((f for f in ctx["fields"] if f.type == "phone" and f.required), None)
    values = {f"f_{contact.name}": resident.phone} if contact and resident.phone else {}
    return render(
        request,
        "resident_apply.html",
        resident=resident,
        values=values,
        errors=[],
        chosen={},
        source_ref=f"online:{uuid.uuid4()}",
        **ctx,
    )


def _split(message: str) -> tuple[str, str]:
    zh, _, en = message.partition(" (")
    return zh, en.rstrip(")") or zh


def _licence_choices(form: Body) -> list[svc.LicenceRef]:
    """The licences picked (radio `licence_{i}`: JSON {material, number, source}, or empty)."""
    raw = [v for k, v in form.fields if k.startswith("licence_") and v]
    return desk_intake.licence_refs_of(raw)


@router.post(MY + "/apply/{code}")
async def apply_submit(code: str, request: Request, hub: HubDep) -> Response:
    resident = await optional_resident(request)
    if resident is None:
        return _to_login(request)
    desk = online_desk(hub)
    try:
        ctx = await run_in_threadpool(_apply_context, hub, resident, code[:64])
    except NotFound as exc:
        return render(
            request, "resident_refused.html", 404, reason=Reason(*_split(str(exc))), back=MY, resident=resident
        )
    form = await read_multipart(request, hub.store, max_files=20)
    values = dict(form.fields)
    chosen: dict[str, str] = {}
    try:
        if not _csrf_ok(resident, form.get(CSRF_FIELD)):
            return _expired(request)
        materials, errors = _uploads(hub, [m.name for m in ctx["materials"]], form)
        try:
            refs = _licence_choices(form)
            chosen = {r.material: r.number for r in refs}
            if errors:
                raise InvalidInput(errors)
            new = svc.NewApplication(
                subject=ctx["subject"].code,
                desk=desk or "",
                # the identity the provider vouched for: never typed, never taken from the form
                applicant=svc.Applicant(type="person", name=resident.name, id=resident.id_number),
                form={f.name: form.get(f"f_{f.name}") for f in ctx["fields"]},
                materials=materials,
                licences=refs,
                source_ref=(form.get("source_ref") or None),
            )
            app, _ = await run_in_threadpool(lambda: svc.receive(hub, new, resident.actor, brief=True))
        except (InvalidInput, IllegalTransition) as exc:
            return render(
                request,
                "resident_apply.html",
                422,
                resident=resident,
                values=values,
                errors=_errors(exc),
                chosen=chosen,
                source_ref=form.get("source_ref"),
                **ctx,
            )
    finally:
        await run_in_threadpool(form.discard)
    return RedirectResponse(f"{MY}/apps/{app.number}?new=1", status_code=303)


def licence_value(licence: dict[str, Any], material: str) -> str:
    """The radio value naming one licence, as desk_intake.licence_refs_of reads it back."""
    return json.dumps(
        {"material": material, "number": licence.get("number"), "source": licence.get("source")}, ensure_ascii=False
    )
