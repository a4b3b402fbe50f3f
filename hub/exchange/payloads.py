"""What each kind of message carries, built from our database when it is sent (so a retry
carries the truth of its moment), and the reading of those payloads on the other side."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.catalog.models import Item
from hub.crypto import HASH_ALGORITHMS
from hub.events import chain_algorithm, fields_hash
from hub.hashchain import GENESIS
from hub.storage.tables import Application, Event

EVENT_KEYS = ("seq", "part_id", "action", "from_state", "to_state", "actor", "role", "desk", "reason", "data")


def iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds") + "Z"


def event_dict(ev: Event) -> dict[str, Any]:
    return {**{k: getattr(ev, k) for k in EVENT_KEYS}, "at": iso(ev.at), "prev_hash": ev.prev_hash, "hash": ev.hash}


def chain_fields(app: Application) -> dict[str, Any]:
    """The chain's head, and its hash algorithm when it is not sha256: a hub on the protocol
    before 密评 sends no `hash_alg`, which means sha256 (and reads none from us then)."""
    algorithm = chain_algorithm(app)
    return {"chain_head": app.chain_head, **({"hash_alg": algorithm} if algorithm != "sha256" else {})}


def chain_ok(number: str, events: list[dict[str, Any]], head: str, algorithm: Any = "sha256") -> bool:
    """Do these events (as `event_dict` wrote them) form the hash chain ending in `head`, in
    `algorithm` (the payload's `hash_alg`, sha256 when absent)?"""
    if algorithm not in HASH_ALGORITHMS:
        return False
    prev = GENESIS
    try:
        for i, ev in enumerate(events, start=1):
            fields = {**{k: ev[k] for k in EVENT_KEYS}, "prev_hash": ev["prev_hash"]}
            fields["at"] = datetime.fromisoformat(ev["at"].removesuffix("Z"))
            if ev["seq"] != i or ev["prev_hash"] != prev or fields_hash(number, fields, algorithm) != ev["hash"]:
                return False
            prev = ev["hash"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return prev == head


def application_payload(
    app: Application, part_id: str, mode: str, desk: dict[str, Any], item: Item | None
) -> dict[str, Any]:
    """An application for the partner that decides `part_id`. Of a 多地联办 application's merged
    form and materials, only what the partner's item asks for (`item`, from its list) goes."""
    part = next(p for p in app.parts if p.id == part_id)
    review = next((e for e in app.events if e.action == "pre_review"), None)
    fields = {f.name for f in item.form} if item else None
    form = {k: v for k, v in app.form.items() if fields is None or k in fields}
    verified = review.data.get("verified", {}) if review else {}
    if item is not None:
        names = {m.name for m in item.materials}
        verified = {k: v for k, v in verified.items() if k in names}
    return {
        "number": app.number,
        "part_id": part.id,
        "item": part.item_code.split(":", 1)[1],
        "mode": mode,
        "title": part.title,
        "desk": desk,
        "channel": app.channel,
        "applicant": {"type": app.applicant_type, "name": app.applicant_name, "id": app.applicant_id},
        "agent": {"name": app.agent_name, "id_number": app.agent_id} if app.agent_name else None,
        "form": form,
        "first_review": (
            {
                "by": review.actor,
                "at": iso(review.at),
                "note": review.reason,
                "checklist": review.data.get("checklist", []),
                "verified": verified,
                "commitment_due": review.data.get("commitment_due"),
            }
            if review
            else None
        ),
        "events": [event_dict(e) for e in app.events],
        **chain_fields(app),
    }


def status_payload(app: Application) -> dict[str, Any]:
    """Where our case (one a partner collected) stands: the whole history, so the partner can
    apply what it has not seen and ignore a late, older message."""
    return {
        "number": app.number,
        "origin_number": app.origin_number,
        "state": app.state,
        "accepted_on": app.accepted_on.isoformat() if app.accepted_on else None,
        "due_date": app.due_date.isoformat() if app.due_date else None,
        "due_provisional": app.due_provisional,
        "paused_since": app.paused_since.isoformat() if app.paused_since else None,
        "parts": [
            {"item": p.item_code, "state": p.state, "due_date": p.due_date.isoformat() if p.due_date else None}
            for p in app.parts
        ],
        "events": [event_dict(e) for e in app.events],
        **chain_fields(app),
    }
