"""`POST /exchange/v1/messages`: where partner hubs deliver their signed messages (跨省通办).

No session, cookie or token: a message is its own credential (the sender's signature, checked
with the key its partner file holds). The body is an envelope alone (application/json) or an
envelope with files (multipart/form-data: part `envelope`, then `f0`, `f1` … as the envelope
lists them); files stream into the store's staging area as uploads do. The answer is always a
signed message (an acknowledgement or a refusal) with its signature in `Tongban-Signature`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.context import Hub
from hub.errors import InvalidInput
from hub.exchange.envelope import PATH, SIGNATURE_HEADER
from hub.exchange.receive import take
from hub.materials import Staged
from hub.web.uploads import Body, read_multipart

router = APIRouter(include_in_schema=False)
MAX_FILES = 200


@router.post(PATH)
async def messages(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    if not hub.settings.exchange.hub_id:
        return JSONResponse({"detail": "本枢纽未开通跨省通办 (the exchange is off here)"}, status_code=404)
    signature = request.headers.get(SIGNATURE_HEADER)
    files: dict[str, Staged | bytes] = {}
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            body_parts = await read_multipart(request, hub.store, max_files=MAX_FILES + 1, max_fields=0)
        except InvalidInput:  # bad framing: answered as any malformed message is, signed
            body_parts = Body()
        try:
            envelopes = body_parts.files_of("envelope")
            body = await run_in_threadpool(envelopes[0].staged.path.read_bytes) if len(envelopes) == 1 else b""
            # the files stay staged (hashed on the way in): a material the message brings is
            # adopted into the store from there, not copied again
            files = {f.field: f.staged for f in body_parts.files if f.field != "envelope"}
            answer = await run_in_threadpool(take, hub, body, signature, files)
        finally:
            await run_in_threadpool(body_parts.discard)  # what was not adopted
    else:
        answer = await run_in_threadpool(take, hub, await request.body(), signature, files)
    return Response(
        answer.message.body,
        status_code=answer.status,
        media_type="application/json",
        headers={SIGNATURE_HEADER: answer.message.signature, "cache-control": "no-store"},
    )
