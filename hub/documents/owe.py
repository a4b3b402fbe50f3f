"""Owing documents: a row per document an event makes owed, with its snapshot, written in the
transaction of the event (a session hook, as hub.rollups keeps the dashboard's counts).

Events written with plain rows — the desk's receipt with its first review and the batch intake
(hub.applications.batch) — pass no ORM flush: their documents are owed on first sight instead
(`owe_missing`, called wherever an application's documents are listed, and by `hub run
documents`). Their snapshot reads the event and the rows it wrote, which do not change after."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.documents.kinds import ACTIONS, KINDS, owed_by
from hub.documents.snapshot import authority_of, take
from hub.partner_outbox import partner_of
from hub.seals import HUB_AUTHORITY
from hub.storage.tables import Application, Document, Event

if TYPE_CHECKING:
    from hub.context import Hub

# 32 letters and digits without 0/O, 1/I: read aloud and typed without mistakes
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_CHARS = 16  # 80 bits: not guessable, not enumerable
HUB_KEY = "documents_hub"
PENDING_KEY = "documents_apps"


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_CHARS, 4))


def normal_code(text: str) -> str | None:
    """A code as typed (lower case, spaces, no dashes) in its printed form; None if it cannot be one."""
    raw = "".join(c for c in text.upper() if c not in " -\t")[:64]
    if len(raw) != CODE_CHARS or any(c not in ALPHABET for c in raw):
        return None
    return "-".join(raw[i : i + 4] for i in range(0, CODE_CHARS, 4))


def owed(app: Application, have: set[tuple[int, str]]):
    """(event, kind, part) for each document `app`'s events owe that is not in `have` ((event
    seq, kind) pairs)."""
    has_commitment = any(kind == "commitment" for _, kind in have)
    for ev in app.events:
        if ev.action not in ACTIONS:
            continue
        for kind in owed_by(ev.action, ev.data, has_commitment):
            if kind == "commitment":
                has_commitment = True
            if (ev.seq, kind) in have:
                continue
            part = next((p for p in app.parts if p.id == ev.part_id), None) if KINDS[kind].per_part else None
            if KINDS[kind].per_part and part is None:
                continue  # a decision names its part; an event without one owes no decision
            if not _ours(app, kind, part, ev.action):
                continue
            yield ev, kind, part


def _ours(app: Application, kind: str, part, action: str) -> bool:
    """跨省通办: we seal only what is ours to say — the desk's papers for applications our desks
    collected, the decisions and notices of parts our departments decide. A partner hub's desk
    and departments issue their own (hub.exchange mirrors their steps onto our chain)."""
    if authority_of(app, kind, part, action) == HUB_AUTHORITY:
        return app.origin_partner is None
    return partner_of((part or app.parts[0]).item_code) is None


def owe_missing(hub: Hub, session: Session, app: Application) -> list[Document]:
    """Rows for every document `app`'s events owe and that has none yet; the new ones."""
    have = {(d.event_seq, d.kind) for d in session.scalars(select(Document).where(Document.application_id == app.id))}
    now = hub.now().replace(tzinfo=None)
    made: list[Document] = []
    for ev, kind, part in list(owed(app, have)):
        doc = Document(
            code=new_code(),
            kind=kind,
            application_id=app.id,
            part_id=part.id if part else None,
            event_seq=ev.seq,
            authority=authority_of(app, kind, part, ev.action),
            state="pending",
            data=take(hub, app, ev, kind, part),
            digest_algorithm="sha256",
            created_at=now,
        )
        session.add(doc)
        made.append(doc)
    return made


def install(hub: Hub, sessions: sessionmaker[Session]) -> None:
    """Owe documents in the transaction of the events that make them (`Hub.open` calls this
    after hub.rollups.install). The hub rides in the factory's `info`, merged with what is there."""
    info = dict(sessions.kw.get("info") or {})
    hooked = HUB_KEY in info
    info[HUB_KEY] = hub
    sessions.configure(info=info)
    if not hooked:
        sa_event.listen(sessions, "after_flush", _after_flush)
        sa_event.listen(sessions, "before_commit", _before_commit)


def _after_flush(session: Session, _flush_context) -> None:
    apps = {e.application_id for e in session.new if isinstance(e, Event) and e.action in ACTIONS}
    if apps:
        session.info.setdefault(PENDING_KEY, set()).update(apps)


def _before_commit(session: Session) -> None:
    hub = session.info.get(HUB_KEY)
    if hub is None:
        return
    session.flush()  # the events of this transaction, numbered
    pending = session.info.pop(PENDING_KEY, set())
    for app_id in sorted(pending):
        app = session.get(Application, app_id)
        if app is not None:
            owe_missing(hub, session, app)
