"""The application event chain, written (`chain`) and verified (`verify_chain`) here: each
event's hash covers its fields and the previous event's hash, so an edited, inserted or deleted
event is detected. GENESIS and the canonical JSON are `hub.hashchain`'s, shared with the signing
sessions' event logs (`hub.session_log`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from hub.hashchain import ENCODER, GENESIS, hash_hex
from hub.storage.bulk import JsonText
from hub.storage.tables import Application, Event


def _iso(at: datetime) -> str:
    # naive before the cache: aware datetimes of one instant in two zones are equal as keys
    return _naive_iso(at.replace(tzinfo=None) if at.tzinfo is not None else at)


@lru_cache(maxsize=16)  # a batch writes thousands of events with the same time
def _naive_iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds") + "Z"


# what an event's hash covers, besides the application number
FIELDS = (
    "seq",
    "part_id",
    "action",
    "from_state",
    "to_state",
    "actor",
    "role",
    "desk",
    "at",
    "reason",
    "data",
    "prev_hash",
)


# ENCODER.encode({**fields, "application": number, "at": iso}) written out by hand: the keys in
# sorted order, each value through the same encoders. A batch hashes three events per record,
# and this is three times faster than building the dict and encoding it; tests/test_events.py
# checks that the text is byte for byte the same.
_EVENT_JSON = (
    '{"action":%s,"actor":%s,"application":%s,"at":%s,"data":%s,"desk":%s,"from_state":%s,'
    '"part_id":%s,"prev_hash":%s,"reason":%s,"role":%s,"seq":%s,"to_state":%s}'
)


def canonical_json(value: Any) -> JsonText:
    """A value's canonical JSON text, for a value that is both hashed and written to a column:
    encoded once."""
    return JsonText(ENCODER.encode(value))


def _json(value: Any) -> str:
    t = type(value)
    if t is str:
        return encode_basestring(value)  # the C encoder json.dumps itself uses for strings
    if value is None:
        return "null"
    if t is int:
        return int.__repr__(value)
    return ENCODER.encode(value)


def event_json(application_number: str, fields: Mapping[str, Any]) -> str:
    """The text an event's hash covers."""
    f = fields
    return _EVENT_JSON % (
        _json(f["action"]),
        _json(f["actor"]),
        _json(application_number),
        _json(_iso(f["at"])),
        f["data"] if type(f["data"]) is JsonText else _json(f["data"]),  # canonical already, or encoded now
        _json(f["desk"]),
        _json(f["from_state"]),
        _json(f["part_id"]),
        _json(f["prev_hash"]),
        _json(f["reason"]),
        _json(f["role"]),
        _json(f["seq"]),
        _json(f["to_state"]),
    )


def fields_hash(application_number: str, fields: Mapping[str, Any], algorithm: str = "sha256") -> str:
    return hash_hex(algorithm, event_json(application_number, fields))


def event_hash(application_number: str, ev: Event, algorithm: str = "sha256") -> str:
    return fields_hash(application_number, {k: getattr(ev, k) for k in FIELDS}, algorithm)


def chain_algorithm(app: Application) -> str:
    """The hash algorithm the application's chain was started with (`applications.hash_alg`):
    it keeps it for life, whatever `crypto.hash` says later."""
    return app.hash_alg or "sha256"


def chain(
    application_number: str,
    events: list[dict[str, Any]],
    head: str = GENESIS,
    seq: int = 0,
    algorithm: str = "sha256",
) -> str:
    """Number and hash new events (plain rows, oldest first) after `head`, the hash of event
    #`seq`, in the chain's `algorithm`; returns the new head."""
    for ev in events:
        seq += 1
        ev["seq"], ev["prev_hash"] = seq, head
        head = ev["hash"] = fields_hash(application_number, ev, algorithm)
    return head


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    head: str
    problem: str | None = None


def verify_chain(app: Application) -> ChainReport:
    """Recompute every hash (in the chain's recorded algorithm); report the first event that
    does not fit."""
    prev, algorithm = GENESIS, chain_algorithm(app)
    events = sorted(app.events, key=lambda e: e.seq)
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            return ChainReport(False, len(events), prev, f"event #{expected_seq} missing (found #{ev.seq})")
        if ev.prev_hash != prev:
            return ChainReport(
                False, len(events), prev, f"event #{ev.seq}: prev_hash does not match event #{ev.seq - 1}"
            )
        if event_hash(app.number, ev, algorithm) != ev.hash:
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
