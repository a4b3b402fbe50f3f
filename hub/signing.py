"""Remote face-to-face signing sessions (远程面签) as the core sees them: which application part a
session is for, who takes part, the steps in their order and who may take each, and the
session's folder with its hash-chained event log (written and verified by `hub.session_log`). The media — aiortc peers, relay, recording —
and the sealing of the evidence live in `video/`; this module knows nothing of them.

The steps (docs/signing.md):

    preflight  both sides joined, cameras and microphones on, the recording running (the hub)
    consent    the applicant agrees to be recorded (desk)
    identity   the officer compares face and ID card, has the details read aloud (officer)
    readback   the officer shows what is being signed; the applicant confirms it (officer, desk)
    signature  the applicant signs on the desk's screen (desk)
    otp        the officer enters the one-time code shown at the desk (officer)
    seal       the officer seals: recording stops, the evidence is signed (officer)

A dropped connection during readback, signature or otp sends the session back to identity: who
is on camera must be checked again. Either side may abort with a reason; an aborted session
keeps its partial recording.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import applications as svc
from hub import audit
from hub import text as characters
from hub.applications import Actor
from hub.context import Hub
from hub.errors import FieldError, Forbidden, IllegalTransition, InvalidInput, NotFound, Reason
from hub.lifecycle import FRONT, PartState, Role, State
from hub.session_log import EventLog, log_at
from hub.storage.tables import Part, SigningSession, naive_utc

STEPS = ("preflight", "consent", "identity", "readback", "signature", "otp", "seal")
STEP_ZH = {
    "preflight": "设备与录制检查",
    "consent": "录音录像告知同意",
    "identity": "身份核验",
    "readback": "宣读确认",
    "signature": "申请人签名",
    "otp": "一次性验证码",
    "seal": "封存证据",
}
REVERIFY_FROM = {"readback", "signature", "otp"}
IDENTITY_CHECKS = {
    "face_matches_photo": "本人与身份证照片一致",
    "id_details_read_aloud": "申请人已口述身份证号码与住址",
}
OPEN_PARTS = {PartState.pending.value, PartState.in_review.value}
# the county may hold the signing once the desk has done its first review, until it decides
SIGNING_STATES = {State.pre_reviewed.value, State.accepted.value, State.in_review.value}
MAX_SIGNATURE_BYTES = 512 * 1024


def _now(hub: Hub) -> datetime:
    return naive_utc(hub.now())


def recordings_root(hub: Hub) -> Path:
    return hub.settings.path(hub.settings.signing.recordings_dir)


def folder_of(hub: Hub, s: SigningSession) -> Path:
    return recordings_root(hub) / s.id


def actor_label(actor: Actor) -> str:
    return f"{actor.name} ({actor.role.value}, {actor.place or '-'})"


# ---------------------------------------------------------------- who takes part


def role_in(s: SigningSession, actor: Actor) -> str | None:
    """`desk` or `officer` for those taking part; `observer` for supervisors and ops (they may
    look at the record, never join); None for everyone else, who must not learn it exists."""
    if actor.role in FRONT and actor.desk == s.desk_code:
        return "desk"
    if actor.role is Role.officer and actor.department == s.department_code:
        return "officer"
    if actor.role in (Role.supervisor, Role.ops):
        return "observer"
    return None


def get(session: Session, session_id: str, actor: Actor, *, for_update: bool = False) -> tuple[SigningSession, str]:
    stmt = select(SigningSession).where(SigningSession.id == session_id)
    if for_update:
        stmt = stmt.with_for_update()
    s = session.scalars(stmt).one_or_none()
    role = role_in(s, actor) if s is not None else None
    if s is None or role is None:
        raise NotFound("面签会话不存在 (no such signing session)")
    return s, role


def read(hub: Hub, session_id: str, actor: Actor) -> tuple[SigningSession, str]:
    with hub.sessions() as session:
        return get(session, session_id, actor)


def read_any(hub: Hub, session_id: str) -> tuple[SigningSession, str]:
    """A session without scoping, for the hub's own work (the media, recovery, sealing)."""
    with hub.sessions() as session:
        s = session.get(SigningSession, session_id)
        if s is None:
            raise NotFound("面签会话不存在 (no such signing session)")
        return s, "system"


def append_event(hub: Hub, session_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """An event of the hub's own (a segment closed, a quality sample) that changes no step:
    straight to the session's log, no database transaction. Never after the evidence is sealed."""
    folder = recordings_root(hub) / session_id
    if (folder / "manifest.json").exists():
        raise IllegalTransition(f"signing session {session_id} is sealed: its log is closed")
    return log_at(folder, hub.settings.crypto.hash).append(kind, "hub", data)


def list_for(hub: Hub, number: str, actor: Actor) -> list[SigningSession]:
    """The sessions of an application the actor may see (the application itself is scoped)."""
    svc.read(hub, number, actor)
    with hub.sessions() as session:
        rows = session.scalars(
            select(SigningSession).where(SigningSession.number == number).order_by(SigningSession.created_at)
        )
        return [s for s in rows if role_in(s, actor)]


# ---------------------------------------------------------------- starting


def start(hub: Hub, number: str, actor: Actor, part_id: str | None = None) -> SigningSession:
    """An officer starts a session for their department's part of an application whose item
    needs a face-to-face signature. One open session per part: asking again returns it."""
    if actor.role is not Role.officer:
        raise Forbidden("只有县级部门工作人员可以发起远程面签 (only county officers start remote signing)")
    now = _now(hub)
    with hub.transaction() as session:
        app = svc.get(session, number, actor, for_update=True)
        mine = [p for p in app.parts if p.department_code == actor.department and (part_id in (None, p.id))]
        if not mine:
            raise NotFound("本部门在该办件中没有可办理的事项 (no part of this application for your department)")
        part: Part = mine[0]
        item = hub.catalog.items.get(part.item_code)
        if item is None or not item.signature_required:
            raise IllegalTransition(f"{part.title} 不需要面签 (this item needs no face-to-face signature)")
        if part.state not in OPEN_PARTS or app.state not in SIGNING_STATES:
            raise IllegalTransition(f"办件当前状态不能面签 (part is {part.state}, application {app.state})")
        open_one = session.scalars(
            select(SigningSession).where(SigningSession.part_id == part.id, SigningSession.state == "open")
        ).first()
        if open_one is not None:
            return open_one
        s = SigningSession(
            id=str(uuid.uuid4()),
            application_id=app.id,
            number=app.number,
            part_id=part.id,
            item_code=part.item_code,
            desk_code=app.desk_code,
            department_code=part.department_code,
            state="open",
            step="preflight",
            created_at=now,
            created_by=actor.name,
            readback_shown=False,
            otp_attempts=0,
        )
        session.add(s)
        folder = folder_of(hub, s)
        folder.mkdir(parents=True, exist_ok=False)
        log_of(hub, s).append(
            "created",
            actor_label(actor),
            {"application": app.number, "part": part.id, "item": part.item_code, "title": part.title},
        )
        svc.record_event(
            session, app.number, "signing_started", actor, part_id=part.id, data={"session": s.id}, now=hub.now()
        )
        return s


# ---------------------------------------------------------------- the steps


@dataclass
class StepResult:
    session: SigningSession
    event: dict[str, Any]
    otp: str | None = None  # the code to show at the desk, when the signature step hands it out


def advance(hub: Hub, session_id: str, actor: Actor, action: str, data: dict[str, Any] | None = None) -> StepResult:
    """Take one step (`consent`, `identity`, `readback_show`, `readback_confirm`, `signature`,
    `otp`, `seal`) as `actor`. Out of order, or by the wrong side: refused, nothing written."""
    data = data or {}
    wrong_left: int | None = None
    with hub.transaction() as session:
        s, role = get(session, session_id, actor, for_update=True)
        check_turn(s, role, action)
        record: dict[str, Any] = {}
        otp = None
        if action == "consent":
            s.step = "identity"
            record = {"media_time": data.get("media_time")}
        elif action == "identity":
            missing = [zh for key, zh in IDENTITY_CHECKS.items() if not data.get(key)]
            if missing:
                raise InvalidInput(
                    [
                        FieldError(
                            "identity", Reason(f"身份核验未完成：{'、'.join(missing)}", "identity check incomplete")
                        )
                    ]
                )
            record = {k: True for k in IDENTITY_CHECKS} | {k: v for k, v in data.items() if k in ("id_card", "stills")}
            s.step = "readback"
            s.readback_shown = False
        elif action == "readback_show":
            snapshot = data.get("snapshot") or {}
            path = folder_of(hub, s) / "readback.json"
            write_synced(path, (json.dumps(snapshot, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode())
            record = {"file": "readback.json", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
            s.readback_shown = True
        elif action == "readback_confirm":
            if not s.readback_shown:
                raise IllegalTransition("请先由县级部门宣读办理内容 (the officer has not shown the summary yet)")
            s.step = "signature"
        elif action == "signature":
            png = data.get("png") or b""
            if not isinstance(png, bytes) or not png.startswith(b"\x89PNG\r\n\x1a\n") or len(png) > MAX_SIGNATURE_BYTES:
                raise InvalidInput.field("signature", "签名图片无效", "a PNG of at most 512 KiB")
            path = folder_of(hub, s) / "signature.png"
            write_synced(path, png)
            otp = f"{secrets.randbelow(10**6):06d}"
            s.otp_hash, s.otp_attempts = _otp_digest(s.id, otp), 0
            record = {"file": "signature.png", "sha256": hashlib.sha256(png).hexdigest(), "bytes": len(png)}
            s.step = "otp"
        elif action == "otp":
            given = str(data.get("code") or "").strip()
            if not s.otp_hash or not hmac.compare_digest(_otp_digest(s.id, given), s.otp_hash):
                s.otp_attempts += 1
                left = hub.settings.signing.otp_attempts - s.otp_attempts
                log_of(hub, s).append("otp_wrong", actor_label(actor), {"attempts": s.otp_attempts})
                if left <= 0:
                    _end(hub, session, s, actor, "aborted", "验证码错误次数过多 (too many wrong codes)")
                    return StepResult(s, {"kind": "aborted"})
                wrong_left = left  # the attempt is counted (committed), then refused
            else:
                s.otp_hash = None
                s.step = "seal"
        elif action == "seal":
            if bad := characters.check("note", data.get("note"), multiline=True):
                raise InvalidInput([bad])
            record = {"note": data.get("note")}
        event = log_of(hub, s).append(action, actor_label(actor), record) if wrong_left is None else {}
    if wrong_left is not None:
        raise InvalidInput(
            [FieldError("code", Reason(f"验证码不正确，还可尝试{wrong_left}次", f"wrong code, {wrong_left} left"))]
        )
    return StepResult(s, event, otp)


def check_turn(s: SigningSession, role: str, action: str) -> None:
    """Refuse a step out of order or by the wrong side, before anything is done for it."""
    _check_open(s)
    expected_role, expected_step = _RULES.get(action, (None, None))
    if expected_role is None:
        raise InvalidInput.field("action", f"未知步骤 {action}", f"unknown step {action}")
    if role != expected_role:
        raise Forbidden(
            f"此步骤由{'窗口' if expected_role == 'desk' else '县级部门'}操作 (this step is for the {expected_role})"
        )
    if s.step != expected_step:
        raise IllegalTransition(
            f"当前为“{STEP_ZH[s.step]}”步骤，不能进行此操作 (session is at {s.step}, not {expected_step})"
        )


# action -> (the side taking it, the step the session must be at)
_RULES = {
    "consent": ("desk", "consent"),
    "identity": ("officer", "identity"),
    "readback_show": ("officer", "readback"),
    "readback_confirm": ("desk", "readback"),
    "signature": ("desk", "signature"),
    "otp": ("officer", "otp"),
    "seal": ("officer", "seal"),
}


def _otp_digest(session_id: str, code: str) -> str:
    return hashlib.sha256(f"{session_id}:{code}".encode()).hexdigest()


def _check_open(s: SigningSession) -> None:
    if s.state != "open":
        raise IllegalTransition(f"面签会话已{'封存' if s.state == 'sealed' else '终止'} (session is {s.state})")


def system_step(hub: Hub, session_id: str, kind: str, data: dict[str, Any], *, ready: bool = False) -> SigningSession:
    """What the hub itself records: `ready` (preflight passed: both sides on, recording),
    quality samples, segments, drops and rejoins. A drop during readback, signature or otp sends
    the session back to identity."""
    with hub.transaction() as session:
        s = session.scalars(select(SigningSession).where(SigningSession.id == session_id).with_for_update()).one()
        if s.state != "open":
            return s
        log = log_of(hub, s)
        if ready and s.step == "preflight":
            s.step = "consent"
        if kind == "connection_lost" and s.step in REVERIFY_FROM:
            data = data | {"reverify": True, "was": s.step}
            s.step, s.readback_shown, s.otp_hash = "identity", False, None
        log.append(kind, "hub", data)
        return s


def abort(hub: Hub, session_id: str, actor: Actor | None, reason: str) -> SigningSession:
    """End a session without a signature. Its recording so far is kept (and sealed by the
    caller, who owns the media)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput.field("reason", "请填写终止原因", "a reason is required")
    if bad := characters.check("reason", reason, multiline=True):
        raise InvalidInput([bad])
    with hub.transaction() as session:
        if actor is None:
            s = session.scalars(select(SigningSession).where(SigningSession.id == session_id).with_for_update()).one()
        else:
            s, role = get(session, session_id, actor, for_update=True)
            if role == "observer":
                raise Forbidden("督查和运维人员不能终止面签 (observers cannot end a session)")
        _check_open(s)
        _end(hub, session, s, actor, "aborted", reason[:500])
        return s


def _end(hub: Hub, session: Session, s: SigningSession, actor: Actor | None, state: str, reason: str | None) -> None:
    """The session's last event and its retention. The application hears of it when the
    evidence is sealed (`evidence_sealed`), with the manifest's hash."""
    now = _now(hub)
    s.state, s.ended_at, s.end_reason, s.otp_hash = state, now, reason, None
    ended = hub.today()
    if state == "sealed":  # N calendar years on, the same day (28 February for a 29th)
        years = hub.settings.signing.retention_years
        try:
            s.retain_until = ended.replace(year=ended.year + years)
        except ValueError:
            s.retain_until = ended.replace(year=ended.year + years, day=28)
    else:
        s.retain_until = ended + timedelta(days=hub.settings.signing.aborted_retention_days)
    log_of(hub, s).append(state, actor_label(actor) if actor else "hub", {"reason": reason} if reason else {})


def complete(hub: Hub, session_id: str, actor: Actor) -> SigningSession:
    """Every step done and the media stopped: the session is over, signed; its evidence is
    sealed next (by video/)."""
    with hub.transaction() as session:
        s, role = get(session, session_id, actor, for_update=True)
        _check_open(s)
        if role != "officer":
            raise Forbidden("由县级部门封存 (the officer seals)")
        if s.step != "seal":
            raise IllegalTransition("尚未完成全部步骤 (not every step is done)")
        _end(hub, session, s, actor, "sealed", None)
        return s


def evidence_sealed(hub: Hub, session_id: str, manifest_sha256: str, actor: Actor | None) -> SigningSession:
    """The evidence of an ended session is sealed: its manifest's hash on the session and, on the
    application's own event chain, how the session ended (the timeline shows it)."""
    with hub.transaction() as session:
        s = session.scalars(select(SigningSession).where(SigningSession.id == session_id).with_for_update()).one()
        s.manifest_sha256 = manifest_sha256
        data = {"session": s.id, "manifest_sha256": manifest_sha256} | (
            {"reason": s.end_reason} if s.end_reason else {}
        )
        svc.record_event(
            session,
            s.number,
            f"signing_{s.state}",
            actor or Actor(name="hub", role=Role.system),
            part_id=s.part_id,
            data=data,
            now=hub.now(),
        )
        return s


def sessions_to_recover(hub: Hub) -> list[SigningSession]:
    """Open sessions, and ended ones whose evidence was not sealed (nor since deleted)."""
    with hub.sessions() as session:
        return list(
            session.scalars(
                select(SigningSession).where(
                    (SigningSession.state == "open")
                    | (SigningSession.manifest_sha256.is_(None) & SigningSession.purged_at.is_(None))
                )
            )
        )


# ---------------------------------------------------------------- retention


def purge(hub: Hub, actor: Actor, today: date | None = None) -> list[str]:
    """Delete the recordings of sessions past their retention date; each deletion is an audit
    event (the session row stays, marked purged). Returns the session ids."""
    today = today or hub.today()
    done = []
    with hub.sessions() as session:
        due = [
            s.id
            for s in session.scalars(
                select(SigningSession).where(
                    SigningSession.state != "open",
                    SigningSession.purged_at.is_(None),
                    SigningSession.retain_until < today,
                )
            )
        ]
    for session_id in due:
        deleted = False
        with hub.transaction() as session:
            s = session.scalars(select(SigningSession).where(SigningSession.id == session_id).with_for_update()).one()
            if s.purged_at is None:
                shutil.rmtree(folder_of(hub, s), ignore_errors=True)
                deleted = not folder_of(hub, s).exists()  # not all gone: not recorded as deleted either
                if deleted:
                    s.purged_at = _now(hub)
        if not deleted:
            continue
        audit.record(
            hub,
            actor,
            "delete_recording",
            target=s.number,
            session=s.id,
            state=s.state,
            retain_until=s.retain_until.isoformat() if s.retain_until else None,
            manifest_sha256=s.manifest_sha256,
        )
        done.append(session_id)
    return done


# ---------------------------------------------------------------- the event log


def log_of(hub: Hub, s: SigningSession) -> EventLog:
    """The session's event log (one writer per file in this process)."""
    return log_at(folder_of(hub, s), hub.settings.crypto.hash)


def write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
