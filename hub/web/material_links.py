"""`GET /materials/{token}`: a material fetched by a department through a signed pull link
(a connection with `materials: {mode: pull}`; hub.outgoing_materials makes the links).

The link is the credential: it names one material of one part, expires, and is signed with the
hub's secret. The file is served only while it still belongs to that part's application; every
fetch is in the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from hub import audit
from hub.applications import Actor
from hub.context import Hub
from hub.lifecycle import Role
from hub.outgoing_materials import read_token
from hub.storage.tables import Part
from hub.web.deps import client_of

router = APIRouter(include_in_schema=False)

_GONE = {"detail": "链接无效或已过期 (link invalid or expired)"}


@router.get("/materials/{token}")
def pull(token: str, request: Request) -> Response:
    hub: Hub = request.app.state.hub
    link = read_token(request.app.state.secret, token, hub.now())
    if link is None:
        return JSONResponse(_GONE, status_code=404)
    with hub.sessions() as session:
        part = session.get(Part, link.part_id)
        found = part is not None and next(
            (
                (m.filename, m.blob.media_type)
                for m in part.application.materials
                if m.sha256 == link.sha256 and m.kind == "material"
            ),
            None,
        )
        number = part.application.number if part is not None else None
        department = part.department_code if part is not None else ""
    path = hub.store.path_of(link.sha256)
    if not found or not path.is_file():
        return JSONResponse(_GONE, status_code=404)
    filename, media_type = found
    actor = Actor(name=f"pull:{department}", role=Role.system)
    audit.record(hub, actor, "pull_material", target=number, client=client_of(request), sha256=link.sha256)
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename,
        headers={"x-content-type-options": "nosniff", "cache-control": "no-store"},
    )
