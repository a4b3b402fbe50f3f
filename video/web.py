"""Signaling and pages of remote signing: the routes the video plugin adds to `hub serve`.

Each participant's page (`/signing/{id}`) gets camera and microphone, sends its WebRTC offer to
`POST /api/v1/signing/{id}/offer` and gets the hub's answer: one aiortc peer per participant on
the hub, media relayed between them and recorded (video/media.py). The steps go to
`POST /api/v1/signing/{id}/steps/{action}`; both pages poll `GET /api/v1/signing/{id}`. Every
route is authenticated and scoped like the rest of the API: the application's desk joins as
`desk`, the part's department as `officer`; anyone else gets 404.

A session's media lives in the process that runs it (a "media node"); several API processes
must send a session's requests to one of them (docs/signing.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.routing import Mount

from hub import applications as svc
from hub import health, signing
from hub.applications import Actor
from hub.context import Hub
from hub.errors import HubError, IllegalTransition, InvalidInput
from hub.ids import mask_id
from hub.presenters import application_detail
from hub.storage.tables import SigningSession
from hub.web.deps import get_hub, need
from hub.web.render import render
from hub.web.security import CSRF_HEADER, Principal, check_csrf
from video import evidence
from video.media import Room, restrict_host_addresses
from video.sessions import recover, seal_session, take_lock

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(need("applications:read"))]
Writer = Annotated[Principal, Depends(need("applications:write"))]
QUALITY_SECONDS = 2.0
LOST_AFTER = 3.0  # seconds without a picture: the connection counts as lost
api = APIRouter(prefix="/api/v1", tags=["signing"])
pages = APIRouter(include_in_schema=False)


# ---------------------------------------------------------------- sessions live in this process


@dataclass
class Live:
    """A session this process runs: its media, its monitor, what only memory may hold."""

    session_id: str
    room: Room
    lock: Any  # the open `.live` file whose lock says a process runs this session
    preflight: dict[str, dict[str, Any]] = field(default_factory=dict)
    otp: str | None = None  # shown at the desk; the database keeps only its hash
    lost: set[str] = field(default_factory=set)
    monitor: asyncio.Task | None = None
    ended: bool = False


def rooms(hub: Hub) -> dict[str, Live]:
    """The sessions whose media this process runs, kept on the hub for the plugin."""
    return hub.extensions.setdefault("video.rooms", {})


async def _live(hub: Hub, s: SigningSession) -> Live:
    """The session's media in this process, started on first use. Both pages send their first
    offer at about the same moment: the second waits for the first to start the room (without
    the wait it found no room, could not take the folder's lock the first one held, and was
    told the session ran on another media node)."""
    live = rooms(hub).get(s.id)
    if live is not None and not live.ended:
        return live
    starting: dict[str, asyncio.Lock] = hub.extensions.setdefault("video.starting", {})
    async with starting.setdefault(s.id, asyncio.Lock()):
        live = rooms(hub).get(s.id)
        if live is not None and not live.ended:
            return live
        return await _start_room(hub, s)


async def _start_room(hub: Hub, s: SigningSession) -> Live:
    folder = signing.folder_of(hub, s)
    lock = take_lock(folder)
    if lock is None:
        raise HTTPException(409, "该面签会话由另一个服务进程运行 (session runs on another media node)")
    try:
        current, _ = await run_in_threadpool(signing.read_any, hub, s.id)  # again, now that we hold the lock
        if current.state != "open" or (folder / evidence.MANIFEST).exists():
            raise HTTPException(409, "面签会话已结束 (session has ended)")
        # if recording cannot start, the session cannot start (the probe /readyz uses)
        writable = health.check_writable("recordings", folder, "recording folder")
    except BaseException:
        lock.close()
        raise
    if not writable.ok:
        lock.close()
        raise HubError(f"录像存储不可写，不能开始面签 ({writable.detail})")
    cfg = hub.settings.signing
    room = Room(
        folder,
        lambda info: signing.append_event(hub, s.id, "segment", info),
        segment_seconds=cfg.segment_seconds,
        bitrate=cfg.video_bitrate,
    )
    live = Live(s.id, room, lock)
    rooms(hub)[s.id] = live
    await run_in_threadpool(
        signing.append_event, hub, s.id, "recording_started", {"segment_seconds": cfg.segment_seconds}
    )
    live.monitor = asyncio.ensure_future(_monitor(hub, live))
    return live


async def _monitor(hub: Hub, live: Live) -> None:
    """Sample connection quality into the event log; a lost connection forces re-verification;
    a session nobody is in any more, or one that ran too long, ends."""
    cfg = hub.settings.signing
    idle_since = time.monotonic()
    while not live.ended:
        await asyncio.sleep(QUALITY_SECONDS)
        sample: dict[str, Any] = {}
        for role, p in list(live.room.participants.items()):
            q = await p.sample()
            pipe = live.room.pipelines[role]
            sample[role] = q.__dict__ | {"recorder_dropped": pipe.stats.dropped, "relay_dropped": p.video_out.dropped}
            quiet = p.last_frame_at is None or time.monotonic() - p.last_frame_at > LOST_AFTER
            gone = q.state in ("failed", "closed", "disconnected") or (quiet and p.last_frame_at is not None)
            if gone and role not in live.lost:
                live.lost.add(role)
                await run_in_threadpool(
                    signing.system_step,
                    hub,
                    live.session_id,
                    "connection_lost",
                    {"participant": role, "state": q.state},
                )
            elif not gone and role in live.lost:
                live.lost.discard(role)
                await run_in_threadpool(
                    signing.append_event, hub, live.session_id, "connection_restored", {"participant": role}
                )
            if pipe.error is not None:
                await _end(hub, live, None, f"录制失败 (recording failed: {type(pipe.error).__name__})")
                return
        if sample:
            await run_in_threadpool(signing.append_event, hub, live.session_id, "quality", sample)
        now = time.monotonic()
        if live.room.participants and set(live.room.participants) - live.lost:
            idle_since = now
        if now - idle_since > cfg.idle_minutes * 60:
            await _end(hub, live, None, f"双方均已离开超过{cfg.idle_minutes}分钟 (nobody in the session)")
            return
        if now - live.room.started > cfg.max_minutes * 60:
            await _end(hub, live, None, f"面签超过{cfg.max_minutes}分钟上限 (session ran too long)")
            return
        s, _ = await run_in_threadpool(signing.read_any, hub, live.session_id)
        if s.state != "open":  # ended where this process could not see it: stop recording into it
            log.error("signing session %s is %s but its media still ran here: stopped", s.id, s.state)
            await _end(hub, live, None, None, seal=False)
            return
        await _maybe_ready(hub, live)


async def _maybe_ready(hub: Hub, live: Live) -> None:
    """Preflight passes when both sides reported their devices and their pictures and sound
    arrive, and the recording runs."""
    room = live.room
    ok = all(
        live.preflight.get(r, {}).get("camera")
        and live.preflight.get(r, {}).get("microphone")
        and r in room.participants
        and room.pipelines[r].stats.frames_in > 0
        and room.pipelines[r].stats.audio_in > 0
        and room.pipelines[r].error is None
        for r in Room.ROLES
    )
    s, _ = await run_in_threadpool(signing.read_any, hub, live.session_id)
    if ok and s.step == "preflight":
        await run_in_threadpool(
            signing.system_step, hub, live.session_id, "preflight_passed", {"preflight": live.preflight}, ready=True
        )


async def _end(
    hub: Hub, live: Live, actor: Actor | None, abort_reason: str | None, *, seal: bool = True
) -> dict | None:
    """End the session's media and seal its evidence. With `abort_reason` the session is
    aborted first (so nothing can restart its media while it ends); without one it has been
    completed (`signing.complete`) by the caller. A failure to seal is logged: the session is no
    longer open, and the next recovery seals it (video/sessions.py)."""
    if live.ended:
        return None
    live.ended = True
    if live.monitor is not None and live.monitor is not asyncio.current_task():
        live.monitor.cancel()
    try:
        if abort_reason is not None:
            with contextlib.suppress(IllegalTransition):  # ended already (too many wrong codes)
                await run_in_threadpool(signing.abort, hub, live.session_id, actor, abort_reason)
        for role in Room.ROLES:  # a still of each side for the evidence, before hanging up
            if jpeg := await live.room.still(role):
                await run_in_threadpool(_keep_still, live.room.folder, f"{role}-final.jpg", jpeg)
        finished = await live.room.close()
        if not seal:
            return None
        if not finished:
            log.error("signing session %s: a recorder did not finish in time; sealed on recovery", live.session_id)
            return None
        return await run_in_threadpool(seal_session, hub, live.session_id, actor)
    except Exception:
        log.exception("signing session %s could not be sealed; the next recovery seals it", live.session_id)
        return None
    finally:
        rooms(hub).pop(live.session_id, None)
        hub.extensions.get("video.starting", {}).pop(live.session_id, None)
        live.lock.close()


def _keep_still(folder: Path, name: str, jpeg: bytes) -> str:
    (folder / "stills").mkdir(exist_ok=True)
    signing.write_synced(folder / "stills" / name, jpeg)
    return f"stills/{name}"


# ---------------------------------------------------------------- the API


def _csrf(request: Request, principal: Principal) -> None:
    check_csrf(principal, request.headers.get(CSRF_HEADER))


class StartIn(BaseModel):
    part: str | None = Field(default=None, max_length=36)


def view_of(hub: Hub, s: SigningSession, role: str, live: Live | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": s.id,
        "application": s.number,
        "item": s.item_code,
        "title": hub.catalog.items[s.item_code].title if s.item_code in hub.catalog.items else s.item_code,
        "state": s.state,
        "step": s.step,
        "step_zh": signing.STEP_ZH.get(s.step, s.step),
        "steps": [{"name": n, "zh": signing.STEP_ZH[n]} for n in signing.STEPS],
        "role": role,
        "readback_shown": s.readback_shown,
        "end_reason": s.end_reason,
        "manifest_sha256": s.manifest_sha256,
        "joined": sorted(live.room.participants) if live else [],
        "preflight": {
            r: bool(v.get("camera") and v.get("microphone")) for r, v in (live.preflight if live else {}).items()
        },
        "lost": sorted(live.lost) if live else [],
    }
    if role == "desk" and s.step == "otp" and live is not None:
        view["otp"] = live.otp  # shown at the desk only
    if s.readback_shown and s.state == "open" and role in Room.ROLES:  # full ID numbers: not for observers
        path = signing.folder_of(hub, s) / "readback.json"
        view["readback"] = evidence.json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return view


@api.post("/applications/{number}/signing", status_code=201)
async def start_signing(number: str, request: Request, hub: HubDep, principal: Writer, body: StartIn | None = None):
    """An officer starts remote signing for their department's part (one open session per part)."""
    _csrf(request, principal)
    s = await run_in_threadpool(signing.start, hub, number, principal.actor, body.part if body else None)
    return {"id": s.id, "page": f"/signing/{s.id}", "step": s.step}


@api.get("/signing/public-key", response_class=Response)
async def public_key(hub: HubDep) -> Response:
    """The hub's evidence public key (PEM; Ed25519, or SM2 by crypto.signature): what an auditor checks evidence with."""
    return Response(evidence.public_pem(evidence.signing_key(hub)), media_type="application/x-pem-file")


ALERTS = 5  # a desk has rarely more than one call at a time; a few are plenty to show


def desk_alerts(hub: Hub, actor: Actor) -> list[dict[str, str]]:
    """The open sessions for the actor's desk's applications, newest first: one query on the
    indexed state (open sessions are a handful at any size), filtered to the desk."""
    if not actor.desk:
        return []
    with hub.sessions() as session:
        rows = session.execute(
            select(SigningSession.id, SigningSession.number, SigningSession.item_code)
            .where(SigningSession.state == "open", SigningSession.desk_code == actor.desk)
            .order_by(SigningSession.created_at.desc())
            .limit(ALERTS)
        ).all()
    items = hub.catalog.items
    return [
        {
            "session": sid,
            "application": number,
            "title": items[code].title if code in items else code,
            "page": f"/signing/{sid}",
        }
        for sid, number, code in rows
    ]


@api.get("/signing/alerts")
async def alerts(hub: HubDep, principal: Reader) -> list[dict[str, str]]:
    """What a desk's pages poll: remote signings an officer has started for this desk's
    applications and that are still open (an empty list for anyone not at a desk)."""
    return await run_in_threadpool(desk_alerts, hub, principal.actor)


@api.get("/signing/{session_id}")
async def session_state(session_id: str, request: Request, hub: HubDep, principal: Reader) -> dict[str, Any]:
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    return view_of(hub, s, role, rooms(hub).get(s.id))


class OfferIn(BaseModel):
    sdp: str = Field(max_length=20_000)
    type: str = Field(default="offer", pattern="^offer$")


@api.post("/signing/{session_id}/offer")
async def offer(session_id: str, body: OfferIn, request: Request, hub: HubDep, principal: Writer) -> dict[str, str]:
    """A participant's WebRTC offer; the hub's answer (its own peer for this participant)."""
    _csrf(request, principal)
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    if role not in Room.ROLES:
        raise HTTPException(403, "只有窗口和县级部门可以加入面签 (only the desk and the officer join)")
    live = await _live(hub, s)
    rejoin = role in live.room.participants
    answer = await live.room.join(role, body.sdp, body.type)
    who = {"participant": role, "by": principal.actor.name}
    if rejoin:  # another connection (device, person?) on camera: who it is is checked again
        await run_in_threadpool(signing.system_step, hub, s.id, "connection_lost", who | {"rejoined": True})
    else:
        await run_in_threadpool(signing.append_event, hub, s.id, "joined", who)
    return {"sdp": answer, "type": "answer"}


class PreflightIn(BaseModel):
    camera: bool
    microphone: bool
    detail: dict[str, str] = Field(default_factory=dict, max_length=10)


@api.post("/signing/{session_id}/preflight")
async def preflight(session_id: str, body: PreflightIn, request: Request, hub: HubDep, principal: Writer):
    """A participant's device check (camera, microphone). With both sides on and the recording
    running, the session moves on to consent."""
    _csrf(request, principal)
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    if role not in Room.ROLES:
        raise HTTPException(403, "只有窗口和县级部门可以加入面签 (only the desk and the officer join)")
    live = await _live(hub, s)
    live.preflight[role] = body.model_dump()
    await run_in_threadpool(signing.append_event, hub, s.id, "preflight", {"participant": role} | body.model_dump())
    await _maybe_ready(hub, live)
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    return view_of(hub, s, role, live)


class StepIn(BaseModel):
    face_matches_photo: bool = False
    id_details_read_aloud: bool = False
    code: str | None = Field(default=None, max_length=12)
    png: str | None = Field(default=None, max_length=800_000)  # a data: URL or base64
    note: str | None = Field(default=None, max_length=500)
    reason: str | None = Field(default=None, max_length=500)


@api.post("/signing/{session_id}/steps/{action}")
async def step(session_id: str, action: str, body: StepIn, request: Request, hub: HubDep, principal: Writer):
    """One step of the session (see docs/signing.md for the order and who takes which)."""
    _csrf(request, principal)
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    live = rooms(hub).get(s.id)
    if role not in Room.ROLES:
        raise HTTPException(403, "只有窗口和县级部门可以操作面签 (only the desk and the officer act)")
    if action == "abort":
        if not (body.reason or "").strip():
            raise InvalidInput.field("reason", "请填写终止原因", "a reason is required")
        if live is not None:
            await _end(hub, live, principal.actor, body.reason)
        else:  # no media here: make sure none runs elsewhere before sealing what there is
            lock = take_lock(signing.folder_of(hub, s))
            if lock is None:
                raise HTTPException(409, "该面签会话由另一个服务进程运行 (session runs on another media node)")
            try:
                await run_in_threadpool(signing.abort, hub, s.id, principal.actor, body.reason or "")
                await run_in_threadpool(seal_session, hub, s.id, None)
            finally:
                lock.close()
        s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
        return view_of(hub, s, role, None)
    signing.check_turn(s, role, action)  # before anything is captured for the step
    if live is None:
        raise HTTPException(409, "面签的音视频尚未在本服务接通 (the session's media is not running here)")
    data: dict[str, Any] = {}
    if action == "consent":
        data = {"media_time": round(time.monotonic() - live.room.started, 3)}
    elif action == "identity":
        data = body.model_dump(include={"face_matches_photo", "id_details_read_aloud"})
        stills, at = {}, time.strftime("%Y%m%dT%H%M%S")
        for r in Room.ROLES:  # one pair per identity check: a re-verification keeps the first's too
            if jpeg := await live.room.still(r):
                name = await run_in_threadpool(_keep_still, live.room.folder, f"{r}-identity-{at}.jpg", jpeg)
                stills[r] = {"file": name, "sha256": evidence.hashlib.sha256(jpeg).hexdigest()}
        data["stills"] = stills
        if card := await run_in_threadpool(id_card_reader, hub, s.desk_code):
            data["id_card"] = card
    elif action == "readback_show":
        app = await run_in_threadpool(svc.read, hub, s.number, principal.actor)
        detail = application_detail(hub, app, reveal_id=svc.may_reveal_ids(principal.actor))
        part = next(p for p in detail["parts"] if p["id"] == s.part_id)
        subject = hub.catalog.subject(detail["subject_code"])
        labels = {f.name: f.label for f in hub.catalog.form_of(subject)} if subject else {}
        data["snapshot"] = {
            "application": detail["number"],
            "title": part["title"],
            "applicant": detail["applicant"],
            "agent": detail["agent"],
            "form": [{"name": k, "label": labels.get(k, k), "value": v} for k, v in detail["form"].items()],
            "materials": [{"name": m["name"], "sha256": m["sha256"]} for m in detail["materials"]],
            "desk": detail["desk_name"],
            "department": part["department"],
        }
    elif action == "signature":
        raw = (body.png or "").split(",", 1)[-1]
        try:
            data["png"] = base64.b64decode(raw, validate=True)
        except ValueError:
            raise InvalidInput.field("png", "签名图片无效", "not base64") from None
    elif action == "otp":
        data = {"code": body.code}
    elif action == "seal":
        data = {"note": body.note}
    result = await run_in_threadpool(signing.advance, hub, s.id, principal.actor, action, data)
    if result.otp:
        live.otp = result.otp
    if result.session.state == "aborted":  # too many wrong codes
        await _end(hub, live, None, None)
    elif action == "seal":
        await run_in_threadpool(signing.complete, hub, s.id, principal.actor)  # ended: nothing restarts it
        manifest = await _end(hub, live, principal.actor, None)
        s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
        return view_of(hub, s, role, None) | {"manifest": manifest}
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    return view_of(hub, s, role, rooms(hub).get(s.id))


# ---------------------------------------------------------------- pages


@pages.get("/signing/{session_id}")
async def signing_page(session_id: str, request: Request, hub: HubDep, principal: Reader) -> Response:
    s, role = await run_in_threadpool(signing.read, hub, session_id, principal.actor)
    if role not in Room.ROLES:
        raise HTTPException(403, "只有窗口和县级部门可以加入面签 (only the desk and the officer join)")
    identity = await run_in_threadpool(identity_of, hub, s, principal.actor) if role == "officer" else None
    return render(
        request,
        "signing.html",
        s=view_of(hub, s, role, rooms(hub).get(s.id)),
        role=role,
        checks=signing.IDENTITY_CHECKS,
        identity=identity,
    )


ID_KIND = "identity_card"  # the 网上核验 kind of the ID card (公安's population register)
READER_FIELDS = [
    ("address", "住址", "Address"),
    ("issuer", "签发机关", "Issued by"),
    ("valid_until", "有效期至", "Valid until"),
]
# what a verification record may add beside the video: only fields with a name people read (a
# department's own keys — zjhm, xm … — are never shown raw), and never an ID number in full
VERIFIED_FIELDS = [("gender", "性别", "Sex"), ("birth_date", "出生日期", "Born"), *READER_FIELDS]
_ID_LIKE = re.compile(r"\d{17}[\dXx]")


def _shown(value: object) -> str:
    text = str(value)
    return _ID_LIKE.sub(lambda m: mask_id(m.group(0)), text)


def identity_of(hub: Hub, s: SigningSession, actor: Actor) -> dict[str, Any]:
    """What the officer compares the face on camera with ("本人与身份证照片一致"): the desk's
    ID-card reader if it has one, else the application's online-verified ID record, else the
    applicant as the desk entered them; with the ID scan the desk took, shown as a photo when
    it is a picture. The ID number is masked: the applicant reads it aloud."""
    app = svc.read(hub, s.number, actor)
    subject = hub.catalog.subject(app.subject_code)
    id_names = {m.name for m in (hub.catalog.materials_of(subject) if subject else ()) if m.verify == ID_KIND}
    scan = next((m for m in app.materials if m.kind == "material" and m.name in id_names), None)
    out: dict[str, Any] = {"name": app.applicant_name, "id_number": mask_id(app.applicant_id), "more": [], "at": None}
    if scan is not None:
        url = f"/api/v1/applications/{app.number}/materials/{scan.id}"
        out["photo_url" if scan.blob.media_type.startswith("image/") else "scan_url"] = url
    card = id_card_reader(hub, s.desk_code)
    if card:
        out |= {"source_zh": "窗口身份证读卡器", "source_en": "the desk's ID-card reader"}
        out["name"] = card.get("name") or out["name"]
        out["id_number"] = mask_id(card.get("id_number")) or out["id_number"]
        out["more"] = [(zh, en, _shown(card[k])) for k, zh, en in READER_FIELDS if card.get(k)]
        return out
    for e in reversed(app.events):  # the newest online check of the ID card
        for name, result in (e.data.get("verified") or {}).items() if e.action in ("pre_review", "verify") else ():
            if result.get("ok") and (result.get("kind") == ID_KIND or name in id_names):
                info = (result.get("detail") or {}).get("info") or {}
                source = result.get("connection") or ""
                out |= {
                    "source_zh": f"网上核验记录（{source}）",
                    "source_en": f"verified online ({source})",
                    "at": e.at,
                }
                out["more"] = [
                    (zh, en, _shown(info[k])) for k, zh, en in VERIFIED_FIELDS if isinstance(info.get(k), str | int)
                ]
                return out
    return out | {"source_zh": "窗口录入的申请人信息（未经核验）", "source_en": "as the desk entered it (not verified)"}


@pages.post("/applications/{number}/signing")
async def start_page(number: str, request: Request, hub: HubDep, principal: Writer) -> Response:
    form = await request.form()
    check_csrf(principal, str(form.get("csrf_token") or ""))
    s = await run_in_threadpool(signing.start, hub, number, principal.actor, str(form.get("part") or "") or None)
    return Response(status_code=303, headers={"location": f"/signing/{s.id}"})


def routes() -> list[Any]:
    """The signaling API, the pages and their assets."""
    return [api, pages, Mount("/static/signing", StaticFiles(directory=HERE / "static"), name="signing-static")]


def start(hub: Hub) -> None:
    """Before serving: ICE on the configured addresses only, and the sessions a stopped process
    left open recovered (aborted, evidence sealed)."""
    restrict_host_addresses(hub.settings.signing.ice_host_addresses)
    try:
        for session_id in recover(hub):
            log.warning("signing session %s was left open by a stopped process: aborted, evidence sealed", session_id)
    except Exception:  # a database not migrated yet, say: the next start recovers them
        log.exception("could not recover signing sessions left open")


async def hang_up(hub: Hub) -> None:
    """`hub serve` is stopping: every live session ends and is sealed."""
    for live in list(rooms(hub).values()):  # _end logs its own failures: each session gets its turn
        await _end(hub, live, None, "服务停止 (the hub is shutting down)")


def id_card_reader(hub: Hub, desk: str) -> dict[str, Any] | None:
    """What the desk's ID-card reader read (a plugin's `read_id_card`), or None without one."""
    return hub.plugins.hook.read_id_card(desk=desk)
