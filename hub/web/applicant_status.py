"""The applicant's own view (no login, through the key on the receipt): progress and rating."""

from __future__ import annotations

from typing import Any

from hub import ratings
from hub.applications import SYSTEM, outcome_of, read
from hub.context import Hub
from hub.errors import NotFound
from hub.lifecycle import OPEN, STATE_ZH
from hub.storage.tables import Application
from hub.web.render import ACTION_ZH
from hub.web.security import same, status_key

# What the applicant's timeline shows: milestones, not every internal step or who did it.
MILESTONES = ("submit", "pre_review", "accept", "reject", "request_supplement", "resume", "decide", "issue", "deliver")


def open_status(hub: Hub, secret: bytes, number: str, key: str) -> Application:
    """The application a status link names, if its key is right; else "not found", the same as
    for a number that does not exist."""
    if not same(key, status_key(secret, number)):
        raise NotFound("办件不存在或链接无效 (no such application)")
    return read(hub, number, SYSTEM)


def masked_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def status_view(hub: Hub, app: Application) -> dict[str, Any]:
    rating = ratings.rating_of(hub, app.number, SYSTEM)
    return {
        "number": app.number,
        "title": app.title,
        "applicant": masked_name(app.applicant_name),
        "state": app.state,
        "state_zh": STATE_ZH.get(app.state, app.state),
        "outcome": outcome_of(app),
        "due_date": app.due_date.isoformat() if app.due_date else None,
        "timeline": [
            {"at": e.at.isoformat() + "Z", "action": e.action, "label": ACTION_ZH.get(e.action, e.action)}
            for e in app.events
            if e.action in MILESTONES
        ],
        "owed": [  # 容缺: what the applicant still has to bring, and by when
            {"material": d.material, "due_date": d.due_date.isoformat()}
            for d in app.deficiencies
            if d.closed_at is None
        ],
        "rateable": app.state not in OPEN and rating is None,
        "rating": rating.level if rating else None,
    }
