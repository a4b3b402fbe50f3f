"""What becomes of a signing session once its media has stopped — sealed, or recovered after
the process running it died — and the lock that says a process runs it. No aiortc here: the
CLI recovers and seals without it."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import Any

from hub import session_log, signing
from hub.applications import Actor
from hub.context import Hub
from hub.signing_key import signing_key
from video import evidence

log = logging.getLogger(__name__)


def take_lock(folder: Path) -> Any | None:
    """Hold `.live` in the session folder while this process runs it; None if another does."""
    f = open(folder / ".live", "a+")  # noqa: SIM115 — held for the session's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def seal_session(hub: Hub, session_id: str, actor: Actor | None) -> dict[str, Any]:
    """Seal the evidence of a session whose media has stopped: a completed one (every step done)
    is ended as signed first; an aborted one as it is. The manifest pins the final event log."""
    s, _ = signing.read_any(hub, session_id)
    if s.state == "open":
        if actor is None:
            raise ValueError("a completed session is sealed by the officer who completed it")
        s = signing.complete(hub, s.id, actor)
    folder = signing.folder_of(hub, s)
    manifest = evidence.seal(
        folder,
        signing_key(hub),
        {
            "session": s.id,
            "application": {"number": s.number, "part": s.part_id, "item": s.item_code},
            "desk": s.desk_code,
            "department": s.department_code,
            "outcome": s.state,
            "reason": s.end_reason,
            "started_at": s.created_at.isoformat() + "Z",
            "ended_at": s.ended_at.isoformat() + "Z" if s.ended_at else None,
        },
        hash_alg=hub.settings.crypto.hash,
    )
    digest = evidence.sha256_file(folder / evidence.MANIFEST)
    signing.evidence_sealed(hub, s.id, digest, actor)
    if hub.settings.signing.tsa_url:
        try:  # the seal stands without it; `hub evidence timestamp SESSION` asks again
            from video import timestamps  # asn1crypto, httpx: only for hubs with a TSA

            timestamps.timestamp(folder, hub.settings.signing.tsa_url)
        except Exception as exc:
            log.warning("signing session %s: no RFC 3161 timestamp (%s)", s.id, exc)
    return manifest | {"manifest_sha256": digest}


def recover(hub: Hub) -> list[str]:
    """Sessions whose media a process started and then left (killed, crashed, restarted): aborted
    with that reason, their partial recordings sealed as they are; and ended sessions whose
    sealing failed, sealed now. A session a live process runs holds its `.live` lock and is left
    alone, as is one whose media never started (anyone may still join it). One session's
    failure does not stop the others."""
    done = []
    for s in signing.sessions_to_recover(hub):
        folder = signing.folder_of(hub, s)
        if not folder.is_dir() or (s.state == "open" and not _media_started(folder)):
            continue
        lock = take_lock(folder)
        if lock is None:
            continue
        try:
            if s.state == "open":
                signing.abort(hub, s.id, None, "会话中断：媒体服务进程已停止 (interrupted: the media process stopped)")
            if not (folder / evidence.MANIFEST).exists():
                seal_session(hub, s.id, None)
            done.append(s.id)
        except Exception:
            log.exception("signing session %s could not be recovered", s.id)
        finally:
            lock.close()
    return done


def _media_started(folder: Path) -> bool:
    events = folder / session_log.EVENTS
    return events.exists() and any(e["kind"] == "recording_started" for e in session_log.read_events(events))
