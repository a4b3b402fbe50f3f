"""Documents on the web: the staff's download from the application page, the resident's own
from the status page, the public check a document's QR code opens (/d/CODE), and the API.

The public check shows the kind, date, authority, a masked name, the digest and whether the seal
is valid — nothing else — and only for a code that exists: codes are 80 random bits, and lookups
count against the residents' lookup throttle all the same."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import applications as svc
from hub import audit
from hub.context import Hub
from hub.documents import by_code, documents_of, pdf_of
from hub.documents.issue import DocumentUnavailable
from hub.documents.library import public_view, staff_view
from hub.documents.owe import normal_code
from hub.errors import NotFound
from hub.lifecycle import Role
from hub.seals import verify_pdf
from hub.storage.tables import Document
from hub.web.applicant_status import open_status
from hub.web.deps import client_of, get_hub, need
from hub.web.render import render
from hub.web.security import Principal

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["api"])
HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(need("applications:read"))]
PDF_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    # a PDF shown inside the page: nothing in it may run or load
    "content-security-policy": "default-src 'none'; frame-ancestors 'self'",
}


def _pdf(hub: Hub, doc: Document, request: Request) -> Response:
    try:
        data = pdf_of(hub, doc)
    except DocumentUnavailable as exc:
        raise HTTPException(503, "文书正在签发，请稍后再试 (the document is not ready yet)") from exc
    name = f"{doc.data.get('title') or doc.kind}-{doc.code}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers=PDF_HEADERS | {"content-disposition": f"inline; filename*=UTF-8''{quote(name, safe='')}"},
    )


def _staff_documents(hub: Hub, number: str, principal: Principal) -> list[Document]:
    if principal.role in (Role.ops, Role.supervisor):
        raise HTTPException(403, "运维和督查人员不能查看办件文书 (documents are for those handling the case)")
    return documents_of(hub, svc.read(hub, number, principal.actor))


def _one(docs: list[Document], code: str) -> Document:
    normal = normal_code(code)
    doc = next((d for d in docs if d.code == normal), None)
    if doc is None:
        raise NotFound("文书不存在 (no such document)")
    return doc


# ---------------------------------------------------------------- staff (application page)


@router.get("/applications/{number}/documents/{code}")
def staff_pdf(number: str, code: str, request: Request, hub: HubDep, principal: Reader) -> Response:
    doc = _one(_staff_documents(hub, number, principal), code)
    audit.record(hub, principal.actor, "view_document", target=number, client=client_of(request), code=doc.code)
    return _pdf(hub, doc, request)


# ---------------------------------------------------------------- the resident (status link)


@router.get("/s/{number}/documents/{code}")
def resident_pdf(number: str, code: str, request: Request, hub: HubDep, k: str = "") -> Response:
    app = open_status(hub, request.app.state.secret, number, k[:64])  # NotFound without the right key
    return _pdf(hub, _one(documents_of(hub, app), code), request)


# ---------------------------------------------------------------- the public check


@router.get("/d")
def check_form(request: Request, code: str = "") -> Response:
    if code:
        normal = normal_code(code[:64])
        if normal:
            return RedirectResponse(f"/d/{normal}", status_code=303)
        return render(request, "document_check.html", 200, d=None, code=code[:64], message="bad")
    return render(request, "document_check.html", d=None, code="", message=None)


@router.get("/d/{code}")
async def check_page(code: str, request: Request, hub: HubDep) -> Response:
    throttle = request.app.state.lookup_throttle
    if not throttle.attempt(client_of(request), "doc:" + code[:32]):
        return render(request, "document_check.html", 429, d=None, code=code[:64], message="throttled")
    found = await run_in_threadpool(by_code, hub, code[:64])
    if found is None:
        return render(request, "document_check.html", 404, d=None, code=code[:64], message="unknown")
    doc, _number = found
    view = public_view(doc)
    view["seal"] = await run_in_threadpool(_seal_state, hub, doc)
    return render(request, "document_check.html", d=view, code=doc.code, message=None)


def _seal_state(hub: Hub, doc: Document) -> dict[str, Any] | None:
    """The stored file's seal, checked now (None for a document not issued yet)."""
    if doc.state != "issued" or not doc.sha256:
        return None
    try:
        data = hub.store.path_of(doc.sha256).read_bytes()
    except OSError:
        return {"ok": False, "signer": "", "signed_at": None}
    checks = verify_pdf(hub, data)
    first = checks[0] if checks else None
    return {
        "ok": bool(checks) and all(c.ok for c in checks),
        "signer": first.signer if first else "",
        "signed_at": first.signed_at.isoformat() if first and first.signed_at else None,
    }


# ---------------------------------------------------------------- API


@api.get("/applications/{number}/documents")
def api_documents(number: str, hub: HubDep, principal: Reader) -> list[dict[str, Any]]:
    """The application's notices and decisions (收件凭证, 受理通知书 …), oldest first."""
    return [staff_view(d) for d in _staff_documents(hub, number, principal)]


@api.get(
    "/applications/{number}/documents/{code}",
    response_class=Response,
    responses={
        200: {
            "description": "the sealed PDF",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        },
        503: {
            "description": "文书暂不能签发 (not ready: no seal or template yet)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
)
def api_document_pdf(
    number: str, code: Annotated[str, PathParam(max_length=64)], request: Request, hub: HubDep, principal: Reader
) -> Response:
    doc = _one(_staff_documents(hub, number, principal), code)
    audit.record(hub, principal.actor, "view_document", target=number, client=client_of(request), code=doc.code)
    return _pdf(hub, doc, request)
