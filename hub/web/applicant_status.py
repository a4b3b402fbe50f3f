"""The applicant's own view (no login): progress and rating through the key on the receipt, and
the public lookup by 办件号 with the applicant's name or phone number for those without the link.

The lookup must not tell anyone which numbers exist: a number nobody holds and a wrong name get the
same answer after the same work (one indexed read by number, the same comparisons), and failed
attempts are counted per client address and per number (`LookupThrottle`)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from hub import ratings
from hub.applications import SYSTEM, outcome_of, read
from hub.context import Hub
from hub.errors import NotFound
from hub.ids import mask_name
from hub.resident_states import MILESTONE, resident_state
from hub.secret_key import status_key, status_path
from hub.storage.tables import Application
from hub.text import fold_code
from hub.web.security import Throttle, same

# What the applicant's timeline shows: milestones, not every internal step or who did it.
MILESTONES = tuple(MILESTONE)
NUMBER = re.compile(r"^[A-Z0-9-]{4,32}$")
MAX_NAME = 200  # Application.applicant_name
# Answers of the lookup, whatever went wrong: never which of number, name or phone it was.
NO_MATCH = "未找到相符的办件。请核对办件号，以及申请人姓名或登记的手机号码。"
NO_MATCH_EN = "No matching application. Please check the number and the applicant's name or phone."
TOO_MANY = "查询次数过多，请10分钟后再试。"
TOO_MANY_EN = "Too many attempts; please try again in 10 minutes."
_ABSENT = "\x00"  # what a number nobody holds is compared with: no typed name or phone equals it


class StatusLinkInvalid(NotFound):
    """A status link whose key does not fit its number (mistyped, cut short, or made up)."""


def open_status(hub: Hub, secret: bytes, number: str, key: str) -> Application:
    """The application a status link names, if its key is right; else `StatusLinkInvalid`, the
    same as for a number that does not exist."""
    if not same(key, status_key(secret, number)):
        raise StatusLinkInvalid("办件不存在或链接无效")
    return read(hub, number, SYSTEM)


def status_link(hub: Hub, secret: bytes, number: str, request_base: str) -> str:
    """The full status link for QR codes, receipts and messages: `public_url` (hub.yaml or
    HUB_PUBLIC_URL) when set, else the address the request came to (a hub tried locally)."""
    base = hub.settings.public_url or request_base
    return base.rstrip("/") + status_path(secret, number)


masked_name = mask_name  # the one rule, hub.ids


def _delivery(app: Application) -> str | None:
    value = (app.form or {}).get("delivery_method")
    return value if isinstance(value, str) else None


def status_view(hub: Hub, app: Application) -> dict[str, Any]:
    rating = ratings.rating_of(hub, app.number, SYSTEM)
    outcome = outcome_of(app)
    plain = resident_state(app.state, outcome, _delivery(app))
    desk = hub.catalog.desks.get(app.desk_code)
    return {
        "number": app.number,
        "title": app.title,
        "applicant": masked_name(app.applicant_name),
        "state": app.state,
        "state_zh": plain.zh,  # in plain words (hub.resident_states), not the staff's
        "state_en": plain.en,
        "next_zh": plain.next_zh,
        "next_en": plain.next_en,
        "tone": plain.tone,
        "outcome": outcome,
        "due_date": app.due_date.isoformat() if app.due_date else None,
        "due_provisional": app.due_provisional,
        "paused_since": app.paused_since.isoformat() if app.paused_since else None,
        "place": desk.name if desk else None,  # where to bring papers and collect results
        "address": desk.address if desk else None,
        "timeline": [
            {
                "at": e.at.isoformat() + "Z",
                "action": e.action,
                "label": MILESTONE[e.action][0],
                "label_en": MILESTONE[e.action][1],
            }
            for e in app.events
            if e.action in MILESTONE
        ],
        "owed": [  # 容缺: what the applicant still has to bring, and by when
            {"material": d.material, "due_date": d.due_date.isoformat()}
            for d in app.deficiencies
            if d.closed_at is None
        ],
        "rateable": app.state in ratings.RATEABLE and rating is None,
        "rating": rating.level if rating else None,
        "promise": _promise(hub, rating),
    }


def _promise(hub: Hub, rating: ratings.RatingView | None) -> dict[str, Any] | None:
    """For a bad rating: the contact promised, in working days (hub.yaml `follow_up_workdays`)
    and by which date — the follow-up's due date, recorded with the rating."""
    if rating is None or not rating.bad or rating.follow_up_due is None:
        return None
    return {"workdays": hub.settings.follow_up_workdays, "by": rating.follow_up_due.isoformat()}


# ---------------------------------------------------------------- the public lookup


def normal_number(value: str) -> str:
    """An 办件号 as typed on a phone: 全角 folded, spaces dropped, letters upper-cased."""
    return re.sub(r"\s+", "", fold_code(value)).upper()


def _normal_name(value: str) -> str:
    # names are compared, never stored from here: NFKC and no spaces, so “林 阿婆” or a 全角 space
    # typed on a phone still matches; case-blind for companies' Latin names
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)).casefold()


def _normal_phone(value: str) -> str:
    return re.sub(r"[\s\-()（）]", "", fold_code(value)).removeprefix("+86")


def _phones(hub: Hub, subject_code: str, form: dict[str, Any]) -> list[str]:
    """The phone numbers on the application's form: the fields its catalogue entry types `phone`."""
    subject = hub.catalog.subject(subject_code)
    names = {f.name for f in hub.catalog.form_of(subject) if f.type == "phone"} if subject else set()
    found = (_normal_phone(v) for k, v in (form or {}).items() if k in names and isinstance(v, str))
    return [p for p in found if p]  # an empty one must never match an empty answer


@dataclass(frozen=True)
class LookupAnswer:
    number: str | None  # the application found, or None (whatever the reason)


def lookup(hub: Hub, number: str, who: str) -> LookupAnswer:
    """The application numbered `number` if `who` is its applicant's name or a phone number on its
    form. The same work whether the number exists or not: one read by the unique number, then the
    name and every phone compared in constant time, all of them."""
    number, who = normal_number(number), who.strip()
    if not NUMBER.match(number) or not who or len(who) > MAX_NAME:
        return LookupAnswer(None)
    with hub.sessions() as session:
        row = session.execute(
            select(Application.applicant_name, Application.subject_code, Application.form).where(
                Application.number == number
            )
        ).one_or_none()
    name, phones = (row.applicant_name, _phones(hub, row.subject_code, row.form)) if row else (_ABSENT, [])
    given_name, given_phone = _normal_name(who), _normal_phone(who)
    hits = [same(given_name, _normal_name(name))] + [same(given_phone, p) for p in phones or [_ABSENT]]
    return LookupAnswer(number if row is not None and any(hits) else None)


class LookupThrottle:
    """Lookups: at most `per_client` per client address and `per_number` per 办件号 in `window`
    seconds. Every attempt counts, and is counted before the lookup runs (one atomic step per
    key): a check first and a count after a failure would let parallel guesses all pass the
    check. A resident needs one or two lookups; the status link itself is never throttled. The
    login throttle's design: a moving window in Redis when `redis_url` is set (every process
    counts together), else in this process."""

    def __init__(self, redis_url: str | None, *, per_client: int = 10, per_number: int = 5, window: int = 600):
        self.clients = Throttle(redis_url, limit=per_client, window=window, prefix="tbh-lookup-ip")
        self.numbers = Throttle(redis_url, limit=per_number, window=window, prefix="tbh-lookup-no")

    def attempt(self, client: str, number: str) -> bool:
        """Count this attempt against both; False when either is over its limit."""
        by_client = self.clients.take(client)
        by_number = self.numbers.take(number)
        return by_client and by_number
