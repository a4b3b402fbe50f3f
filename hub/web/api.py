"""The REST API, /api/v1. Every route names the scope it needs; what it returns is scoped by the
caller's desk or department in the core (another desk's application is 404, never data).
Resident ID numbers are masked everywhere but an application's detail, for those entitled, and
every detail view and material download is written to the audit log."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import audit, ops, ratings
from hub.applications.listing import ListQuery, find_applications
from hub.context import Hub
from hub.errors import FieldError, InvalidInput, NotFound, Reason
from hub.lifecycle import FRONT, Role
from hub.presenters import application_detail, application_summary, receipt
from hub.storage.tables import AttachedMaterial
from hub.tokens import SCOPES, issue_token, list_tokens, withdraw_token
from hub.users import Approval
from hub.web import desk_intake
from hub.web.applicant_status import open_status, status_link, status_view
from hub.web.deps import client_of, get_hub, need
from hub.web.query_params import refuse_unknown_query
from hub.web.security import CSRF_HEADER, Principal, check_csrf
from hub.web.uploads import Body, read_multipart
from hub.worklists import inbox_rows

router = APIRouter(prefix="/api/v1", tags=["api"])
HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(need("applications:read"))]
Writer = Annotated[Principal, Depends(need("applications:write"))]
DbId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]  # a row id: anything else is 422, not a database error
Ops = Annotated[Principal, Depends(need("ops", Role.ops, Role.system))]


def _csrf(request: Request, principal: Principal) -> None:
    check_csrf(principal, request.headers.get(CSRF_HEADER))


def status_url(request: Request, hub: Hub, number: str) -> str:
    """The status link for receipts' QR codes and API answers (hub.web.applicant_status.status_link)."""
    return status_link(hub, request.app.state.secret, number, str(request.base_url))


# ---------------------------------------------------------------- who am I, the catalogue


@router.get("/me")
def me(principal: Reader) -> dict[str, Any]:
    a = principal.actor
    return {
        "name": a.name,
        "username": principal.username,
        "role": a.role.value,
        "desk": a.desk,
        "department": a.department,
        "scopes": sorted(principal.scopes),
    }


@router.get("/catalog/items")
def catalog_items(hub: HubDep, principal: Reader, q: Annotated[str, Query(max_length=50)] = "") -> list[dict[str, Any]]:
    """Items and bundles the caller's desk may take (its channel's delegation); search by name,
    keyword, code or pinyin initials (lnrydz)."""
    desk = hub.catalog.desks.get(principal.actor.desk or "")
    return [
        {"code": s.code, "title": s.title, "kind": "bundle" if hasattr(s, "items") else "item"}
        for s in desk_intake.search(hub, desk.channel.value if desk else None, q)
    ]


@router.get("/catalog/items/{code}")
def catalog_item(code: str, hub: HubDep, principal: Reader) -> dict[str, Any]:
    subject = hub.catalog.subject(code)
    if subject is None:
        raise NotFound(f"事项 {code} 不存在 (no such item)")
    return {
        "code": subject.code,
        "title": subject.title,
        "form": [f.model_dump() for f in hub.catalog.form_of(subject)],
        "materials": [
            m.model_dump() | {"online_check": bool(m.verify and m.verify in hub.settings.verifiers)}
            for m in hub.catalog.materials_of(subject)
        ],
        "items": [
            {"code": i.code, "title": i.title, "department": i.department} for i in hub.catalog.items_of(subject)
        ],
    }


# ---------------------------------------------------------------- applications


@router.get("/applications")
def list_applications(
    hub: HubDep,
    principal: Reader,
    _known: Annotated[None, Depends(refuse_unknown_query)],  # after the caller: 401 before 400
    state: Annotated[str | None, Query(max_length=32, description="Only this state (received, accepted, …)")] = None,
    desk: Annotated[str | None, Query(max_length=64, description="Only this desk (code)")] = None,
    number: Annotated[str | None, Query(max_length=32, description="Exactly this application number")] = None,
    applicant_name: Annotated[
        str | None, Query(max_length=200, description="Exactly this applicant name, as written")
    ] = None,
    applicant_id: Annotated[
        str | None,
        Query(
            max_length=40,
            description="A whole 18-character ID number or credit code (全角 digits accepted); never a part of one",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Search box: an application number, an applicant name, or a whole ID number"),
    ] = None,
    item: Annotated[str | None, Query(max_length=48, description="Only applications with this item or bundle")] = None,
    channel: Annotated[str | None, Query(max_length=16, description="Only this channel (bank, enclave, …)")] = None,
    origin: Annotated[
        str | None, Query(max_length=64, description="`local` (our own desks) or a partner hub's name")
    ] = None,
    received_from: Annotated[
        str | None, Query(max_length=10, description="Received on or after this day (YYYY-MM-DD, Beijing)")
    ] = None,
    received_to: Annotated[
        str | None, Query(max_length=10, description="Received on or before this day (YYYY-MM-DD, Beijing)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Applications in the caller's scope, newest first, filtered in the database by every
    parameter given. A parameter this route does not take is refused (400), never ignored."""
    query = ListQuery.parse(
        state=state,
        desk=desk,
        number=number,
        applicant_name=applicant_name,
        applicant_id=applicant_id,
        q=q,
        item=item,
        channel=channel,
        origin=origin,
        received_from=received_from,
        received_to=received_to,
        limit=limit,
    )
    today = hub.today()
    with hub.sessions() as session:
        apps = find_applications(session, principal.actor, query, hub.settings.tz)
        return [application_summary(hub, a, today) for a in apps]


class IntakeData(BaseModel):
    """The JSON part of an intake submission; the files ride beside it, one `files` part per
    entry of `materials` (the catalogue's material name), in order."""

    subject: str = Field(max_length=32)
    applicant: dict[str, str]
    agent: dict[str, str] | None = None
    form: dict[str, Any] = Field(default_factory=dict)
    materials: list[str] = Field(default_factory=list, max_length=30)
    verified: list[str] = Field(default_factory=list, max_length=20)  # tickets from POST /verifications
    # 电子证照 instead of a copy: {material, number, source?} each, as POST /licence-lookups lists them
    licences: list[svc.LicenceRef] = Field(default_factory=list, max_length=20)
    checklist: list[str] = Field(default_factory=list, max_length=20)
    commitment_due: date | None = None
    note: str | None = Field(default=None, max_length=1000)
    source_ref: str | None = Field(default=None, max_length=128)


MAX_FILES = 30


def _multipart(**fields: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its multipart body itself (streaming)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": fields, "required": list(fields)[:1]},
                    "encoding": {"files": {"contentType": "application/pdf, image/jpeg, image/png, image/tiff"}},
                }
            },
        }
    }


FILES = {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": MAX_FILES}


def uploads_of(hub: Hub, names: list[str], body: Body) -> list[desk_intake.Upload]:
    """The uploaded files (`files` parts) with the material each is for; too large or mistyped
    ones are named."""
    files = body.files_of("files")
    if len(names) != len(files):
        raise InvalidInput(
            [FieldError("materials", Reason("每个文件须对应一项材料名称", "one material name per uploaded file"))]
        )
    errors = [
        FieldError(f"files[{i}] ({f.filename})", problem)
        for i, f in enumerate(files)
        if (problem := hub.store.check(f.staged))
    ]
    if errors:
        raise InvalidInput(errors)
    return [
        desk_intake.Upload(material=name, filename=f.filename, staged=f.staged)
        for name, f in zip(names, files, strict=True)
    ]


@router.post(
    "/applications",
    status_code=201,
    openapi_extra=_multipart(
        data={"type": "string", "description": "IntakeData as JSON", "contentMediaType": "application/json"},
        files=FILES,
    ),
)
async def create_application(request: Request, hub: HubDep, principal: Writer) -> JSONResponse:
    """Receive and first-review an application at the caller's desk (收件 + 初审), with its
    materials: multipart, a `data` part (IntakeData as JSON) and one `files` part per entry of
    its `materials`. Idempotent: the same `source_ref` (or Idempotency-Key header) again returns
    the application it made, with 200 instead of 201."""
    _csrf(request, principal)
    form = await read_multipart(request, hub.store, max_files=MAX_FILES)
    try:
        try:
            body = IntakeData.model_validate_json(form.get("data") or "{}")
        except ValidationError as exc:
            raise InvalidInput(
                [
                    FieldError("data." + ".".join(str(p) for p in e["loc"]), Reason(e["msg"], e["msg"]))
                    for e in exc.errors()
                ]
            ) from None
        source_ref = body.source_ref or request.headers.get("idempotency-key")
        if source_ref and len(source_ref) > 128:
            raise InvalidInput(
                [FieldError("Idempotency-Key", Reason("幂等键不超过128个字符", "at most 128 characters"))]
            )
        uploads = uploads_of(hub, body.materials, form)
        kwargs = dict(
            subject_code=body.subject,
            applicant=body.applicant,
            agent=body.agent,
            form=body.form,
            uploads=uploads,
            tickets=body.verified,
            licences=body.licences,
            checklist=body.checklist,
            commitment_due=body.commitment_due,
            note=body.note,
            source_ref=source_ref,
            secret=request.app.state.secret,
        )
        app, created = await run_in_threadpool(lambda: desk_intake.submit(hub, principal.actor, **kwargs))
    finally:
        await run_in_threadpool(form.discard)  # what was not taken into the store
    view = application_summary(hub, app) | {"status_url": status_url(request, hub, app.number)}
    return JSONResponse(view, status_code=201 if created else 200)


@router.get("/applications/{number}")
def get_application(number: str, request: Request, hub: HubDep, principal: Reader) -> dict[str, Any]:
    """The whole application; full ID numbers for those handling it (an audited view)."""
    app = svc.read(hub, number, principal.actor)
    reveal = svc.may_reveal_ids(principal.actor)
    audit.record(hub, principal.actor, "view_detail", target=number, client=client_of(request), full_ids=reveal)
    # the open 补正: what was asked, what is done, where and by when
    return application_detail(hub, app, reveal_id=reveal) | {"supplement": svc.supplement_request(app)}


@router.get("/applications/{number}/receipt")
def get_receipt(
    number: str,
    request: Request,
    hub: HubDep,
    principal: Annotated[Principal, Depends(need("applications:read", *FRONT))],
) -> dict[str, Any]:
    """The receipt, for the desk that gave it: it carries the applicant's status link and key."""
    app = svc.read(hub, number, principal.actor)
    data = receipt(hub, app, status_url(request, hub, number))
    return data | {"received_at": data["received_at"].isoformat() + "Z"}


class ActionIn(BaseModel):
    action: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=1000)
    part: str | None = Field(default=None, max_length=36)
    commitment_due: date | None = None
    # request_supplement: the fields and materials wanted (each with a note), where, by when
    supplement: svc.SupplementAsk | None = None


@router.post("/applications/{number}/actions")
def act(number: str, body: ActionIn, request: Request, hub: HubDep, principal: Writer) -> dict[str, Any]:
    """One life-cycle action (accept, reject, request_supplement, start_review, approve, deny,
    issue, deliver, withdraw, resume, pre_review). Illegal ones are 409 and change nothing."""
    _csrf(request, principal)
    app = svc.transition(
        hub,
        number,
        body.action,
        principal.actor,
        reason=body.reason,
        part=body.part,
        commitment_due=body.commitment_due,
        ask=body.supplement,
    )
    return application_summary(hub, app)


class CorrectionIn(BaseModel):
    """补正: new values for form fields the open request names, by field name."""

    fields: dict[str, Any] = Field(min_length=1, max_length=50)


@router.post("/applications/{number}/corrections")
def correct(number: str, body: CorrectionIn, request: Request, hub: HubDep, principal: Writer) -> dict[str, Any]:
    """Correct form fields during 补正 (checked by the catalogue's rules, as at intake); each
    changed field is a `correct` event with the old and the new value. 409 when no 补正 is open."""
    _csrf(request, principal)
    app = svc.correct_fields(hub, number, body.fields, principal.actor)
    return application_summary(hub, app) | {"supplement": svc.supplement_request(app)}


@router.post(
    "/applications/{number}/materials",
    openapi_extra=_multipart(materials={"type": "array", "items": {"type": "string"}}, files=FILES),
)
async def attach(number: str, request: Request, hub: HubDep, principal: Writer) -> dict[str, Any]:
    """Add materials (a 容缺 material brought later closes its commitment): multipart, one
    `materials` part (the catalogue's material name) per `files` part, in order."""
    _csrf(request, principal)
    await run_in_threadpool(svc.read, hub, number, principal.actor)  # 404 before taking another desk's uploads
    form = await read_multipart(request, hub.store, max_files=MAX_FILES)
    try:
        names = form.getlist("materials")
        if not names:
            raise InvalidInput.field("materials", "请上传材料", "at least one material")
        uploads = uploads_of(hub, names, form)
        ins = [svc.MaterialIn(name=u.material, filename=u.filename, staged=u.staged) for u in uploads]
        app = await run_in_threadpool(svc.attach, hub, number, ins, principal.actor)
    finally:
        await run_in_threadpool(form.discard)
    return application_summary(hub, app)


# what the store accepts by default (`allowed_media_types`) and TIFF scans: a material is served as
# the type sniffed when it was uploaded
MATERIAL_TYPES = ("application/pdf", "image/jpeg", "image/png", "image/tiff", "application/ofd")


@router.get(
    "/applications/{number}/materials/{material_id}",
    response_class=Response,
    responses={
        200: {
            "description": "the file as it was uploaded",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in MATERIAL_TYPES},
        }
    },
)
def download(number: str, material_id: DbId, request: Request, hub: HubDep, principal: Reader) -> Response:
    app = svc.read(hub, number, principal.actor)
    if principal.role in (Role.ops, Role.supervisor):
        raise HTTPException(403, "运维和督查人员不能查看申请材料 (materials are for those handling the case)")
    m: AttachedMaterial | None = next((x for x in app.materials if x.id == material_id), None)
    if m is None:
        raise NotFound("材料不存在 (no such material)")
    audit.record(hub, principal.actor, "view_material", target=number, client=client_of(request), sha256=m.sha256)
    return Response(
        hub.store.path_of(m.sha256).read_bytes(),
        media_type=m.blob.media_type,
        headers={
            "content-disposition": f"inline; filename*=UTF-8''{_quote(m.filename)}",
            "x-content-type-options": "nosniff",
        },
    )


def _quote(name: str) -> str:
    return quote(name, safe="")


class VerifyIn(BaseModel):
    subject: str = Field(max_length=32)
    material: str = Field(max_length=200)
    id_number: str = Field(max_length=32)
    name: str = Field(max_length=200)


@router.post("/verifications")
def verify(body: VerifyIn, request: Request, hub: HubDep, principal: Writer) -> dict[str, Any]:
    """网上核验 during intake: ask the owning department's system; an `ok` result comes with a
    signed ticket the submission carries, and the material is then not needed on paper."""
    _csrf(request, principal)
    subject = hub.catalog.subject(body.subject)
    if subject is None:
        raise NotFound(f"事项 {body.subject} 不存在 (no such item)")
    ident = desk_intake.normalise(body.id_number).upper()
    result = desk_intake.verify_online(hub, subject, body.material, ident, desk_intake.normalise(body.name))
    audit.record(hub, principal.actor, "verify_online", client=client_of(request), material=body.material)
    ticket = (
        desk_intake.verification_ticket(request.app.state.secret, body.material, ident, result, hub.now())
        if result["ok"]
        else None
    )
    return {"ok": result["ok"], "detail": result["detail"], "ticket": ticket}


class LicenceLookupIn(BaseModel):
    subject: str = Field(max_length=32)
    material: str = Field(max_length=200)
    applicant_id: str = Field(max_length=32)
    applicant_name: str = Field(max_length=200)  # must be the holder's (docs/intake-licences.md)
    form: dict[str, str] = Field(default_factory=dict, max_length=100)  # a credit code the form carries
    application: str | None = Field(default=None, max_length=40)  # the case, when attaching later


@router.post("/licence-lookups")
def lookup_licences(body: LicenceLookupIn, request: Request, hub: HubDep, principal: Writer) -> dict[str, Any]:
    """查询电子证照 during intake: the applicant's licences of the material's type in the hub's
    licence library and the department's (`licence_sources`), each with number, issuer,
    validity and status today (holder IDs masked). The submission names the one picked."""
    _csrf(request, principal)
    if principal.actor.role not in FRONT:
        raise HTTPException(403, "只有窗口人员可以查询电子证照 (desk staff only)")
    subject = hub.catalog.subject(body.subject)
    if subject is None:
        raise NotFound(f"事项 {body.subject} 不存在 (no such item)")
    ident = desk_intake.normalise(body.applicant_id).upper()
    form = {k: desk_intake.normalise(v) for k, v in body.form.items()}
    if body.application is not None:  # the case must be one the caller may see
        with hub.sessions() as session:
            svc.get(session, body.application, principal.actor)
    applicant = (ident, desk_intake.normalise(body.applicant_name))
    return desk_intake.lookup_licences(
        hub,
        subject,
        body.material,
        applicant,
        form,
        principal.actor,
        application=body.application,
        client=client_of(request),
    )


# ---------------------------------------------------------------- officers, supervisors


@router.get("/inbox")
def get_inbox(hub: HubDep, principal: Annotated[Principal, Depends(need("applications:read", Role.officer))]):
    """The officer's department's parts, most urgent first."""
    return inbox_rows(hub, principal.actor)


# ---------------------------------------------------------------- ops


@router.get("/ops/connections")
def connections(hub: HubDep, principal: Ops) -> list[dict[str, Any]]:
    return ops.connection_rows(hub)


@router.post("/ops/connections/{name}/check")
def check_connection(name: str, request: Request, hub: HubDep, principal: Ops) -> dict[str, Any]:
    _csrf(request, principal)
    if name not in hub.connections:
        raise NotFound(f"连接 {name} 未配置 (no such connection)")
    return ops.run_check(hub, name, principal.actor)


class OutboxItem(BaseModel):
    id: int
    application: str
    item: str
    connection: str
    state: str
    attempts: int
    next_attempt_at: str
    remote_id: str | None
    remote_status: str | None
    last_error: str | None


class OutboxPage(BaseModel):
    """One page of the outbox; ask again with `offset=next_offset` until it is null."""

    items: list[OutboxItem]
    total: int = Field(description="rows matching the filter, on every page")
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last")


@router.get("/ops/outbox", response_model=OutboxPage)
def outbox_rows(
    hub: HubDep,
    principal: Ops,
    state: Literal["pending", "delivered", "dead", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """Outbox rows, dead letters first then newest first, a page at a time with the total."""
    items, total = ops.outbox_page(hub, state, limit=limit, offset=offset)
    more = offset + len(items) < total
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + len(items) if more and items else None,
    }


@router.post("/ops/outbox/{row_id}/retry")
def retry(row_id: DbId, request: Request, hub: HubDep, principal: Ops) -> dict[str, int]:
    _csrf(request, principal)
    return {"retried": ops.retry_dead(hub, row_id, principal.actor)}


@router.get("/ops/plugins")
def plugin_list(hub: HubDep, principal: Ops) -> list[dict[str, Any]]:
    return ops.plugin_rows(hub.plugins)


@router.get("/ops/jobs")
def job_runs(hub: HubDep, principal: Ops) -> list[dict[str, Any]]:
    return ops.job_rows(hub)


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES))
    desk: str | None = Field(default=None, max_length=64)
    department: str | None = Field(default=None, max_length=64)
    days: int | None = Field(default=None, ge=1, le=3650)
    # 双人授权: a desk token needs a person of that desk (same role) or a supervisor to approve
    # it with their own username and password, typed in at the ops person's screen
    approver: str | None = Field(default=None, max_length=64)
    approver_password: str | None = Field(default=None, max_length=256, json_schema_extra={"format": "password"})


@router.get("/ops/tokens")
def tokens(hub: HubDep, principal: Ops) -> list[dict[str, Any]]:
    return [
        {
            "id": t.id,
            "name": t.name,
            "prefix": t.prefix,
            "role": t.role.value,
            "desk": t.desk,
            "department": t.department,
            "scopes": list(t.scopes),
            "revoked": t.revoked_at is not None,
            # naive UTC in the database; ISO with Z here, as the other ops answers
            "created_at": t.created_at.isoformat() + "Z",
            "expires_at": t.expires_at.isoformat() + "Z" if t.expires_at else None,
            "last_used_at": t.last_used_at.isoformat() + "Z" if t.last_used_at else None,
        }
        for t in list_tokens(hub)
    ]


@router.post("/ops/tokens", status_code=201)
def new_token(body: TokenIn, request: Request, hub: HubDep, principal: Ops) -> dict[str, Any]:
    """A token for a desk's system. The secret is in this response only; the hub keeps its hash.
    A desk token needs `approver` and `approver_password`: a person of that desk in the same role,
    or a supervisor (双人授权; ops alone cannot give itself a desk's powers)."""
    _csrf(request, principal)
    secret, info = issue_token(  # the same rules as the ops page and `hub tokens create`
        hub,
        principal.actor,
        body.name,
        role=body.role,
        scopes=body.scopes,
        desk=body.desk,
        department=body.department,
        days=body.days,
        approval=Approval(body.approver, body.approver_password),
        requester=principal.username,
        client=client_of(request),
    )
    return {"id": info.id, "token": secret, "prefix": info.prefix}


@router.delete("/ops/tokens/{token_id}")
def delete_token(token_id: DbId, request: Request, hub: HubDep, principal: Ops) -> dict[str, Any]:
    _csrf(request, principal)
    info = withdraw_token(hub, principal.actor, token_id, client=client_of(request))
    return {"id": info.id, "revoked": True}


# ---------------------------------------------------------------- the applicant's status link


@router.get("/status/{number}")
def public_status(number: str, request: Request, hub: HubDep, k: Annotated[str, Query(max_length=64)]):
    """What the applicant sees from the receipt's QR code: no login, no personal data beyond a
    masked name, only with the key printed on the receipt."""
    return status_view(hub, open_status(hub, request.app.state.secret, number, k))


class RatingIn(BaseModel):
    level: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=500)


@router.post("/status/{number}/rating", status_code=201)
def public_rating(
    number: str, body: RatingIn, request: Request, hub: HubDep, k: Annotated[str, Query(max_length=64)]
) -> dict[str, Any]:
    open_status(hub, request.app.state.secret, number, k)
    r = ratings.rate(hub, number, body.level, body.comment)
    due = r.follow_up_due.isoformat() if r.follow_up_due else None
    # a bad rating: the resident is promised contact within `follow_up_workdays`, by `follow_up_due`
    contact = hub.settings.follow_up_workdays if due else None
    return {"level": r.level, "follow_up_due": due, "contact_within_workdays": contact}
