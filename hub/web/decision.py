"""The application page: the whole case in view for whoever decides or serves it (form, the
desk's first review, every material previewed inline, 容缺 owed, 网上核验 results, timeline), the
actions this person may take — irreversible ones behind a confirmation — and the 补正 loop
(the officer lists what is wrong; the desk corrects those fields and brings those materials)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import audit, ratings
from hub.applications import licence_refs
from hub.applications.licences import sealed_pdf
from hub.applications.supplement import CORRECT_ROLES, supplement_days
from hub.context import Hub
from hub.documents import documents_of
from hub.documents.library import public_view
from hub.errors import FieldError, InvalidInput, NotFound
from hub.ids import mask_id
from hub.lifecycle import ACTIONS, FRONT, Role, part_state_zh
from hub.presenters import application_detail, receipt
from hub.storage.tables import Application, Licence, MaterialLicence
from hub.web import desk_intake
from hub.web.api import status_url
from hub.web.deps import client_of, get_hub, need
from hub.web.licence_pages import application_licences
from hub.web.render import render
from hub.web.security import CSRF_FIELD, Principal, check_csrf
from hub.web.uploads import read_multipart

router = APIRouter(include_in_schema=False)
HubDep = Annotated[Hub, Depends(get_hub)]
Anyone = Annotated[Principal, Depends(need("applications:read"))]

# actions that cannot be undone: a confirmation step first (a <dialog>, or a page without JS)
IRREVERSIBLE = frozenset({"reject", "deny", "withdraw"})
# what a page may preview inline (the browser's own PDF viewer, <img>); other types are linked
PREVIEW = {"application/pdf": "pdf", "image/jpeg": "image", "image/png": "image"}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def first_review(app: Application) -> dict[str, Any] | None:
    """The desk's 初审: who, when, the checklist ticked, its note, the applicant's 容缺 promise and
    what was verified online instead of on paper (result, source and time)."""
    e = next((e for e in app.events if e.action == "pre_review"), None)
    if e is None:
        return None
    ticked = set(e.data.get("checklist") or [])
    return {
        "by": e.actor,
        "desk": e.desk,
        "at": e.at.isoformat() + "Z",
        "checklist": [{"zh": zh, "en": en, "ticked": key in ticked} for key, zh, en in desk_intake.CHECKLIST],
        "note": e.data.get("note") or e.reason,
        "commitment_due": e.data.get("commitment_due"),
        "verified": [
            {
                "material": name,
                "ok": bool(r.get("ok")),
                "detail": r.get("detail"),
                "source": r.get("connection") or r.get("kind"),
                "at": r.get("at") or e.at.isoformat() + "Z",
            }
            for name, r in (e.data.get("verified") or {}).items()
        ],
    }


def licences_of(hub: Hub, app: Application) -> list[dict[str, Any]]:
    """电子证照 the desk took by reference instead of a copy, as the chain recorded them at the
    check (number, issuer, validity, source and time; the holder's ID masked) — and, for a
    licence of our own library, its status TODAY (revoked or expired since intake shows so, and
    approval is refused: licence_refs.lapsed). A department's shows 核验时有效 and the check's date.
    The PDF link goes by licence_id (never by the public page's code)."""
    with hub.sessions() as session:
        ours = licence_refs.current(session, app.id, hub.today())
    out = []
    for e in app.events:
        if e.action not in ("create", "attach_licence"):
            continue
        for r in e.data.get("licences") or []:
            now = ours.get(r["material"])
            shown = {k: v for k, v in r.items() if k != "code"}  # old chains recorded the key: never shown
            out.append(
                shown
                | {
                    "pdf": now is not None,
                    "ours": now is not None,
                    "status_now": now[0] if now else None,
                    "status_now_zh": licence_refs.STATUS_ZH.get(now[0], now[0]) if now else None,
                }
            )
    return out


def owed(hub: Hub, app: Application, view: dict[str, Any], review: dict[str, Any] | None) -> list[dict[str, Any]]:
    """容缺: what the applicant still owes and by when — recorded at 受理, and before it what the
    desk let them promise (the same materials 受理 will record)."""
    if app.deficiencies:
        return view["deficiencies"]
    subject = hub.catalog.subject(app.subject_code)
    if subject is None or app.accepted_on is not None:
        return []
    have = {m.name for m in app.materials if m.kind == "material"} | svc.verified_materials(app)
    due = (review or {}).get("commitment_due")
    today = hub.today().isoformat()
    return [
        {"material": m.name, "due_date": due, "closed": False, "overdue": bool(due and due < today), "promised": True}
        for m in hub.catalog.materials_of(subject)
        if m.required and m.supplied_by == "applicant" and m.name not in have and m.deferrable
    ]


def timeline(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The events as steps: the hub's own follow-up step at the same moment (the case entering
    review with its first part, being decided with its last), and a desk's 提交 of the draft it
    has just registered, are folded into the step before, so one press shows as one line."""
    steps: list[dict[str, Any]] = []
    for e in view["events"]:
        prev = steps[-1] if steps else None
        if (
            prev
            and prev["at"] == e["at"]
            and (
                (e["action"] in ("start", "decide") and e["actor"] == "hub")
                or (e["action"] == "submit" and prev["action"] == "create" and prev["actor"] == e["actor"])
            )
        ):
            prev["follows"].append(e)
            continue
        steps.append(e | {"follows": []})
    return steps


def phrases(hub: Hub, app: Application) -> dict[str, list[str]]:
    """常用语 by action, from the items of the case (a bundle's, in item order, without repeats)."""
    subject = hub.catalog.subject(app.subject_code)
    out: dict[str, list[str]] = {}
    for item in hub.catalog.items_of(subject) if subject else []:
        for action, said in item.phrases.items():
            out[action] = list(dict.fromkeys(out.get(action, []) + said))
    return out


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
                            "confirm": a.name in IRREVERSIBLE,
                        }
                    )
        elif view["state"] in a.sources:
            lead = view["parts"][0]["department"]
            if actor.role is Role.officer and a.name in svc.LEAD_ACTIONS and lead != actor.department:
                continue
            out.append(
                {"name": a.name, "zh": a.zh, "part": None, "reason": a.needs_reason, "confirm": a.name in IRREVERSIBLE}
            )
    return out


def _view(request: Request, hub: Hub, principal: Principal, number: str) -> tuple[Application, dict[str, Any]]:
    app = svc.read(hub, number, principal.actor)
    reveal = svc.may_reveal_ids(principal.actor)
    audit.record(hub, principal.actor, "view_detail", target=number, client=client_of(request), full_ids=reveal)
    view = application_detail(hub, app, reveal_id=reveal)
    material_ids = {(m.name, m.sha256): m.id for m in app.materials}
    for m in view["materials"] + view["results"]:
        m["id"] = material_ids.get((m["name"], m["sha256"]))
        m["preview"] = PREVIEW.get(m["media_type"])
    # 补正 brings a material again: the newest file of a name is the one that counts
    newest = {m["name"]: m["id"] for m in view["materials"]}
    for m in view["materials"]:
        m["replaced"] = newest[m["name"]] != m["id"]
    for p in view["parts"]:
        p["shown_zh"] = part_state_zh(view["state"], p["state"])
    return app, view


def _page(request: Request, hub: Hub, principal: Principal, number: str, status: int = 200, **extra: Any) -> Response:
    app, view = _view(request, hub, principal, number)
    hook = hub.plugins.hook  # what plugins add to the page (remote signing's button and sessions, …)
    rating = ratings.rating_of(hub, number, principal.actor)
    subject = hub.catalog.subject(view["subject_code"])
    fields = hub.catalog.form_of(subject) if subject else ()
    review = first_review(app)
    actions = _actions_for(hub, principal, view)
    ask = next((a for a in actions if a["name"] == "request_supplement"), None)
    supplement = svc.supplement_request(app)
    secret = {f.name for f in fields if f.type == "id_number"}
    for e in view["events"]:  # the timeline is read over shoulders: a corrected ID number masked
        if e["action"] == "correct" and e["data"].get("field") in secret:
            e["data"] = e["data"] | {"old": _mask(e["data"].get("old")), "new": _mask(e["data"].get("new"))}
    front = principal.role in FRONT
    return render(
        request,
        "application.html",
        status,
        a=view,
        form_fields=fields,
        form_labels={f.name: f.label for f in fields},
        part_titles={p["item_code"]: p["title"] for p in view["parts"]},
        actions=[a for a in actions if a is not ask],
        ask_supplement=ask,
        catalogue_materials=hub.catalog.materials_of(subject) if subject else (),
        supplement_due=hub.calendar.add_workdays(hub.today(), supplement_days(hub, app))[0].isoformat(),
        desk_place=_desk_place(hub, app),
        phrases=phrases(hub, app),
        review=review,
        licences=licences_of(hub, app),
        owed=owed(hub, app, view, review),
        steps=timeline(view),
        supplement=supplement,
        can_correct=supplement is not None
        and principal.role in CORRECT_ROLES
        and "applications:write" in principal.scopes,
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
        can_read_materials=principal.role not in (Role.ops, Role.supervisor),
        # 文书: the sealed notices and decisions (hub.documents), for those handling the case
        documents=[public_view(d) for d in documents_of(hub, app)]
        if principal.role not in (Role.ops, Role.supervisor)
        else [],
        show_digests=not front,  # tellers work with names and files; digests are for audit
        show_receipt=front or principal.role is Role.officer,
        done=_done(request.query_params.get("done") or ""),
        today=hub.today().isoformat(),
        issued_licences=application_licences(hub, number, principal),  # 电子证照 it issued
        **extra,
    )


DONE = {"correct": ("表单已更正", "form corrected"), "attach": ("材料已上传", "material added")}


def _done(flag: str) -> tuple[str, str] | None:
    """The success message a redirect's `?done=` flag asks for (only known ones: no text from the URL)."""
    if flag in ACTIONS:
        return ACTIONS[flag].zh, flag
    return DONE.get(flag)


def _mask(value: Any) -> Any:
    return mask_id(value) if isinstance(value, str) else value


def _desk_place(hub: Hub, app: Application) -> str:
    desk = hub.catalog.desks.get(app.desk_code)
    if desk is None:
        return app.desk_code
    return f"{desk.name}（{desk.address}）" if desk.address else desk.name


@router.get("/applications/{number}")
def app_detail(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    return _page(request, hub, principal, number)


def _ask_of(form: Any) -> svc.SupplementAsk:
    """The 补正 request's list, from the officer's form: ticked fields and materials with notes."""
    due = str(form.get("supplement_due") or "").strip()
    try:
        due_date = date.fromisoformat(due) if due else None
    except ValueError:
        raise InvalidInput.field("supplement.due_date", "日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD") from None
    return svc.SupplementAsk(
        fields=[
            svc.Wanted(name=str(n), note=str(form.get(f"note_field_{n}") or "")) for n in form.getlist("ask_field")
        ],
        materials=[
            svc.Wanted(name=str(n), note=str(form.get(f"note_material_{i}") or ""))
            for i, _, n in (str(v).partition(":") for v in form.getlist("ask_material"))
        ],
        place=str(form.get("place") or ""),
        due_date=due_date,
    )


@router.post("/applications/{number}/action")
async def app_action(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    if "applications:write" not in principal.scopes:
        raise HTTPException(403, "无权办理 (forbidden)")
    name = str(form.get("action") or "")
    reason = str(form.get("reason") or "").strip() or None  # as written: full-width punctuation kept
    if name in IRREVERSIBLE and form.get("confirm") != "1":
        # without JS (or a form sent some other way): a page that asks first, nothing done yet
        app = await run_in_threadpool(svc.read, hub, number, principal.actor)
        return render(
            request,
            "confirm_action.html",
            a={"number": number, "title": app.title},
            action={"name": name, "zh": ACTIONS[name].zh},
            part=str(form.get("part") or ""),
            reason=reason or "",
        )
    due = desk_intake.parse_due(str(form.get("commitment_due") or ""))
    ask = _ask_of(form) if name == "request_supplement" else None
    await run_in_threadpool(
        lambda: svc.transition(
            hub,
            number,
            name,
            principal.actor,
            reason=reason,
            part=str(form.get("part") or "") or None,
            commitment_due=due,
            ask=ask,
        )
    )
    return _see_other(f"/applications/{number}?done={quote(name)}")


@router.post("/applications/{number}/correct")
async def app_correct(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    """补正: the desk corrects the form fields the request names (the same rules as at intake)."""
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    if "applications:write" not in principal.scopes:
        raise HTTPException(403, "无权办理 (forbidden)")
    values = {k.removeprefix("f_"): str(v) for k, v in form.multi_items() if k.startswith("f_")}
    try:
        await run_in_threadpool(svc.correct_fields, hub, number, values, principal.actor)
    except InvalidInput as exc:
        return _page(request, hub, principal, number, 422, errors=[e.as_dict() for e in exc.errors], typed=values)
    return _see_other(f"/applications/{number}?done=correct")


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
    return _see_other(f"/applications/{number}?done=attach")


@router.get("/applications/{number}/materials/{material_id}/view")
def material_view(number: str, material_id: int, request: Request, hub: HubDep, principal: Anyone) -> Response:
    """A material shown inside the page (PDF in a frame, an image): this origin only may frame
    it, nothing in it may run or load, and it is never cached."""
    if principal.role in (Role.ops, Role.supervisor):
        raise HTTPException(403, "运维和督查人员不能查看申请材料 (materials are for those handling the case)")
    app = svc.read(hub, number, principal.actor)
    m = next((x for x in app.materials if x.id == material_id), None)
    if m is None:
        raise NotFound("材料不存在 (no such material)")
    audit.record(hub, principal.actor, "view_material", target=number, client=client_of(request), sha256=m.sha256)
    if m.blob.media_type not in PREVIEW:
        # OFD and the like: a download under the pages' own policy (no frame, nothing inline)
        return Response(
            hub.store.path_of(m.sha256).read_bytes(),
            media_type=m.blob.media_type,
            headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(m.filename, safe='')}"},
        )
    return Response(
        hub.store.path_of(m.sha256).read_bytes(),
        media_type=m.blob.media_type,
        headers={
            "content-disposition": f"inline; filename*=UTF-8''{quote(m.filename, safe='')}",
            # replaces the pages' policy (hub.web.app.SecurityHeaders keeps a route's own)
            "content-security-policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline';"
            " frame-ancestors 'self'",
            "x-frame-options": "SAMEORIGIN",
        },
    )


@router.get("/applications/{number}/licences/{material}/pdf")
def licence_pdf(number: str, material: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    """The sealed PDF of a licence of ours an application's material was taken by (电子证照): for
    those handling the case, as its other materials are."""
    if principal.role in (Role.ops, Role.supervisor):
        raise HTTPException(403, "运维和督查人员不能查看申请材料 (materials are for those handling the case)")
    app = svc.read(hub, number, principal.actor)  # scoped: another desk's or department's is not found
    with hub.sessions() as session:
        licence_number = session.scalar(
            select(Licence.number)
            .join(MaterialLicence, MaterialLicence.licence_id == Licence.id)
            .where(MaterialLicence.application_id == app.id, MaterialLicence.material == material)
        )
    if licence_number is None:
        raise NotFound("该材料没有本系统签发的电子证照文件 (no licence PDF of ours for this material)")
    content = sealed_pdf(hub, licence_number)  # drawn on first use; the stored file checked against its digests
    audit.record(hub, principal.actor, "view_licence", target=number, client=client_of(request), licence=licence_number)
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "content-disposition": "inline; filename=licence.pdf",
            "content-security-policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline';"
            " frame-ancestors 'self'",
            "x-frame-options": "SAMEORIGIN",
        },
    )


@router.get("/applications/{number}/receipt")
def app_receipt(number: str, request: Request, hub: HubDep, principal: Anyone) -> Response:
    if principal.role not in FRONT and principal.role is not Role.officer:
        raise HTTPException(403, "回执仅供窗口和审批人员查看 (receipts are for desks and officers)")
    app = svc.read(hub, number, principal.actor)
    data = receipt(hub, app, status_url(request, hub, number))
    qr = segno.make(data["status_url"], error="m").svg_inline(scale=4, title="办件进度查询二维码")
    docs = [public_view(d) for d in documents_of(hub, app)]  # 收件凭证 and what followed, as sealed PDFs
    sealed = next((d for d in docs if d["kind"] == "receipt"), None)
    return render(request, "receipt.html", r=data, qr=qr, docs=docs, sealed=sealed)
