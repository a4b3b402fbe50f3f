"""The event chain: each event's hash covers its fields and the previous event's hash, so an
edited, inserted or deleted event is detected by `verify_chain`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.storage.tables import Application, Event

GENESIS = "0" * 64


def _iso(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def event_hash(application_number: str, ev: Event) -> str:
    payload: dict[str, Any] = {
        "application": application_number,
        "seq": ev.seq,
        "part_id": ev.part_id,
        "action": ev.action,
        "from_state": ev.from_state,
        "to_state": ev.to_state,
        "actor": ev.actor,
        "role": ev.role,
        "desk": ev.desk,
        "at": _iso(ev.at),
        "reason": ev.reason,
        "data": ev.data,
        "prev_hash": ev.prev_hash,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    head: str
    problem: str | None = None


def verify_chain(app: Application) -> ChainReport:
    """Recompute every hash; report the first event that does not fit."""
    prev = GENESIS
    events = sorted(app.events, key=lambda e: e.seq)
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            return ChainReport(False, len(events), prev, f"event #{expected_seq} missing (found #{ev.seq})")
        if ev.prev_hash != prev:
            return ChainReport(
                False, len(events), prev, f"event #{ev.seq}: prev_hash does not match event #{ev.seq - 1}"
            )
        if event_hash(app.number, ev) != ev.hash:
            return ChainReport(
                False, len(events), prev, f"event #{ev.seq} ({ev.action}): content does not match its hash"
            )
        prev = ev.hash
    if app.chain_head != prev:
        return ChainReport(False, len(events), prev, "the newest events are missing: chain head does not match")
    last_state = next((e.to_state for e in reversed(events) if e.part_id is None and e.to_state), None)
    if last_state is not None and last_state != app.state:
        return ChainReport(False, len(events), prev, f"application state {app.state} is not the chain's {last_state}")
    return ChainReport(True, len(events), prev)
