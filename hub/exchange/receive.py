"""Taking a partner's message: check it (protocol, addressee, sender, key, signature, time,
replay, attachments), act on it exactly once, and answer with a signed acknowledgement or a
signed refusal. The message, our answer and the verdict go into the message log whatever
happens; a refused message changes nothing else.

Exactly once: a message id we took is remembered with our answer (`partner_inbox`), in the
transaction of its effect. The same id again with the same payload is the sender retrying after
a lost answer: it gets that answer again, and nothing happens twice. The same bytes again (the
same signature and `sent_at`) are a replay: refused. The same id with another payload: refused."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import applications as svc
from hub import crypto, text
from hub.applications import FirstReview, NewApplication
from hub.applications.events import add_event
from hub.applications.materials import add_material, check_materials, store_material
from hub.applications.models import Agent, Applicant, MaterialIn
from hub.context import Hub
from hub.errors import Forbidden, HubError, IllegalTransition, InvalidInput, NotFound
from hub.exchange import apply, log
from hub.exchange.apply import partner_actor
from hub.exchange.envelope import (
    Envelope,
    Refused,
    Signed,
    attachment_ok,
    check_time,
    digests_ok,
    parse,
    seal,
    signature_ok,
)
from hub.exchange.identity import us
from hub.exchange.payloads import chain_ok
from hub.lifecycle import OPEN
from hub.materials import Staged
from hub.partners import Partner
from hub.partners.config import KEY_DAY_ZONE
from hub.partners.items import published
from hub.storage.tables import Application, Event, MessageLogEntry, PartnerInbox

log_ = logging.getLogger(__name__)

HTTP_STATUS = {
    "malformed": 400,
    "wrong_receiver": 400,
    "bad_attachment": 400,
    "unknown_sender": 403,
    "unknown_key": 403,
    "key_expired": 403,
    "bad_signature": 403,
    "expired": 403,
    "clock_skew": 403,
    "replay": 409,
    "conflict": 409,
    "unknown_application": 404,
    "item_not_accepted": 422,
    "form_invalid": 422,
    "not_allowed": 422,
    "unavailable": 503,
}


@dataclass(frozen=True)
class Answer:
    status: int
    message: Signed


def take(hub: Hub, body: bytes, signature: str | None, files: Files) -> Answer:
    """One incoming message, start to end. Never raises for anything the sender controls."""
    now = hub.now()
    me = us(hub)
    env: Envelope | None = None
    partner: Partner | None = None
    verified = False
    try:
        env = parse(body)
        if env.to != me.hub_id:
            raise Refused("wrong_receiver", f"收件方应为 {me.hub_id}", f"this hub is {me.hub_id}, not {env.to}")
        partner = hub.partners.by_hub_id(env.sender)
        if partner is None:
            raise Refused("unknown_sender", f"未配置的对方枢纽 {env.sender}", f"unknown sender {env.sender}")
        key = partner.known_key(env.key_id)
        if key is None:
            raise Refused("unknown_key", "签名密钥不在对方的公钥列表中", "the signing key is not one we hold for you")
        if not signature_ok(key.key, body, signature, env.signature_algorithm):
            raise Refused("bad_signature", "签名无效：报文被改动或密钥不符", "the signature does not verify")
        verified = True
        if key.valid_until is not None and _local(hub, now) > key.valid_until:
            raise Refused("key_expired", f"该密钥已于 {key.valid_until} 停用", f"that key expired on {key.valid_until}")
        check_time(env, now, hub.settings.exchange.clock_skew_seconds)
        if not digests_ok(env):
            raise Refused("malformed", "payload_sha256 与内容不符", "payload_sha256 does not match the payload")
        _check_attachments(env, files)
        return _act(hub, partner, env, body, signature, files, now)
    except Refused as refusal:
        if refusal.code in RULES and (taken := _taken_before(hub, partner, env)) is not None:
            # a retry of a message we took, meeting a rule that changed since: the first answer stands
            return _duplicate(hub, partner, env, body, signature, taken, now)
        return _refuse(hub, refusal, env, partner, body, signature, verified, now)
    except Exception:  # our fault, not the sender's: a signed "try again later", never a bare 500
        log_.exception("exchange: taking a message failed")
        busy = Refused("unavailable", "对方枢纽暂时无法处理，请稍后重试", "could not take it now: try again later")
        return _refuse(hub, busy, env, partner, body, signature, verified, now)


# refusals by our rules on what a message asks (not by the message's form, time or bytes)
RULES = frozenset({"item_not_accepted", "form_invalid", "not_allowed", "unknown_application"})


@dataclass(frozen=True)
class Taken:
    """A message we took before: the answer we gave, to give again."""

    answer: str
    signature: str


def _inbox_row(session: Session, partner: Partner, env: Envelope) -> PartnerInbox | None:
    return session.scalar(
        select(PartnerInbox).where(PartnerInbox.partner == partner.name, PartnerInbox.message_id == env.id)
    )


def _taken_before(hub: Hub, partner: Partner, env: Envelope) -> Taken | None:
    with hub.sessions() as session:
        row = _inbox_row(session, partner, env)
        if row is None or row.payload_sha256 != env.payload_sha256:
            return None
        return Taken(row.answer, row.answer_signature)


def _local(hub: Hub, now: datetime) -> date:
    return now.astimezone(KEY_DAY_ZONE).date()


Files = dict[str, Staged | bytes]  # a message's files: staged as they streamed in, or bytes


def material_in(name: str, filename: str, f: Staged | bytes) -> MaterialIn:
    if isinstance(f, Staged):
        return MaterialIn(name=name, filename=filename, staged=f)
    return MaterialIn(name=name, filename=filename, content=f)


def _check_attachments(env: Envelope, files: Files) -> None:
    declared = {a.part for a in env.attachments}
    if set(files) != declared:
        raise Refused("bad_attachment", "附件与报文所列不一致", "the attached files are not the ones listed")
    for a in env.attachments:
        f = files[a.part]
        size, sha = (f.size, f.sha256) if isinstance(f, Staged) else (len(f), hashlib.sha256(f).hexdigest())
        other = None
        if env.hash_alg and size == a.size:  # streamed from the staged file, as its sha256 was
            alg = env.hash_alg
            other = crypto.file_hexdigest(alg, f.path) if isinstance(f, Staged) else crypto.hexdigest(alg, f)
        if size != a.size or not attachment_ok(env, a, sha, other):
            raise Refused("bad_attachment", f"附件 {a.part} 的大小或sha256不符", f"attachment {a.part} does not match")


def _answer(hub: Hub, kind: str, to: str, ref: str | None, payload: dict[str, Any], now: datetime) -> Signed:
    me = us(hub)
    return seal(
        me.key, kind=kind, sender=me.hub_id, to=to, payload=payload, now=now, ref=ref, hash_alg=hub.settings.crypto.hash
    )


def _log_pair(
    session: Session,
    hub: Hub,
    *,
    partner: str,
    env: Envelope | None,
    body: bytes,
    signature: str | None,
    verdict: str,
    signer: str | None,
    answer: Signed,
    now: datetime,
) -> None:
    me = us(hub)
    log.append(
        session,
        now,
        log.Entry(
            "in",
            partner,
            body,
            signature,
            verdict,
            message_id=env.id if env else None,
            kind=env.kind if env else None,
            signer=signer,
            key_id=env.key_id if env else None,
        ),
        log.Entry(
            "out",
            partner,
            answer.body,
            answer.signature,
            f"answer:{answer.envelope.kind}",
            message_id=answer.envelope.id,
            kind=answer.envelope.kind,
            signer=me.hub_id,
            key_id=me.key_id,
        ),
        hash_alg=hub.settings.crypto.hash,
    )


def _refuse(
    hub: Hub,
    refusal: Refused,
    env: Envelope | None,
    partner: Partner | None,
    body: bytes,
    signature: str | None,
    verified: bool,
    now: datetime,
) -> Answer:
    to = env.sender if env else "?"
    answer = _answer(hub, "refusal", to, env.id if env else None, refusal.payload(), now)
    who = partner.name if partner else "?"
    log_.warning("exchange: refused a %s message from %s: %s", env.kind if env else "?", who, refusal.code)
    with hub.transaction() as session:
        _log_pair(
            session,
            hub,
            partner=who,
            env=env,
            body=body,
            signature=signature,
            verdict=f"refused:{refusal.code}",
            signer=partner.hub_id if verified and partner else None,
            answer=answer,
            now=now,
        )
    return Answer(HTTP_STATUS.get(refusal.code, 400), answer)


def _seen(session: Session, partner: Partner, env: Envelope, body_sha: str) -> Taken | None:
    """A message id taken before: its inbox row (a retry), or a refusal (a replay, a conflict)."""
    replayed = session.scalar(
        select(MessageLogEntry.id).where(
            MessageLogEntry.message_id == env.id,
            MessageLogEntry.direction == "in",
            MessageLogEntry.body_sha256 == body_sha,
        )
    )
    if replayed is not None:
        raise Refused("replay", "重放的报文（同一报文已收到过）", "a replay: these very bytes were received before")
    row = _inbox_row(session, partner, env)
    if row is not None and row.payload_sha256 != env.payload_sha256:
        raise Refused("conflict", "报文编号已用于另一内容", "this message id was used for another payload")
    return Taken(row.answer, row.answer_signature) if row is not None else None


def _act(
    hub: Hub,
    partner: Partner,
    env: Envelope,
    body: bytes,
    signature: str | None,
    files: Files,
    now: datetime,
) -> Answer:
    body_sha = hashlib.sha256(body).hexdigest()
    with hub.sessions() as session:  # before any work: a replay, a conflict or a retry does none
        before = _seen(session, partner, env, body_sha)
    if before is not None:
        return _duplicate(hub, partner, env, body, signature, before, now)
    if env.kind == "ping":
        return _stateless(hub, partner, env, body, signature, "ack", {"result": "pong"}, now)
    if env.kind == "catalogue_request":
        listing = published(
            hub.local_catalog or hub.catalog,
            partner,
            county=hub.settings.county.name,
            division=hub.settings.county.division,
        )
        return _stateless(hub, partner, env, body, signature, "catalogue", listing, now)
    prepare = PREPARE.get(env.kind)
    if prepare is None:
        raise Refused("not_allowed", f"不接收此类报文 {env.kind}", f"{env.kind} is not sent to a hub")
    # checks and work outside the transaction (may refuse); idempotent, so a retry racing this
    # one does it again harmlessly and then meets the inbox row below
    effect = prepare(hub, partner, env, files)
    try:
        with hub.transaction() as session:
            if (again := _seen(session, partner, env, body_sha)) is not None:
                raise _Again(again)
            result = effect(session)
            answer = _answer(hub, "ack", env.sender, env.id, {"result": "accepted", **result}, now)
            session.add(
                PartnerInbox(
                    partner=partner.name,
                    message_id=env.id,
                    kind=env.kind,
                    payload_sha256=env.payload_sha256,
                    received_at=now.replace(tzinfo=None),
                    answer=answer.body.decode("utf-8"),
                    answer_signature=answer.signature,
                )
            )
            _log_pair(
                session,
                hub,
                partner=partner.name,
                env=env,
                body=body,
                signature=signature,
                verdict="accepted",
                signer=partner.hub_id,
                answer=answer,
                now=now,
            )
    except _Again as again:
        return _duplicate(hub, partner, env, body, signature, again.row, now)
    except IntegrityError:  # the same message taken at this moment by another process
        with hub.sessions() as session:
            row = _seen(session, partner, env, body_sha)
        if row is None:
            raise
        return _duplicate(hub, partner, env, body, signature, row, now)
    return Answer(200, answer)


class _Again(Exception):
    def __init__(self, row: Taken):
        self.row = row


def _duplicate(
    hub: Hub, partner: Partner, env: Envelope, body: bytes, signature: str | None, row: Taken, now: datetime
) -> Answer:
    """The sender retrying a message we took: our first answer again, nothing done twice."""
    answer = Signed(row.answer.encode("utf-8"), row.signature, parse(row.answer.encode("utf-8")))
    with hub.transaction() as session:
        log.append(
            session,
            now,
            log.Entry(
                "in",
                partner.name,
                body,
                signature,
                "duplicate",
                message_id=env.id,
                kind=env.kind,
                signer=partner.hub_id,
                key_id=env.key_id,
            ),
            hash_alg=hub.settings.crypto.hash,
        )
    return Answer(200, answer)


def _stateless(
    hub: Hub,
    partner: Partner,
    env: Envelope,
    body: bytes,
    signature: str | None,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
) -> Answer:
    answer = _answer(hub, kind, env.sender, env.id, payload, now)
    with hub.transaction() as session:
        _log_pair(
            session,
            hub,
            partner=partner.name,
            env=env,
            body=body,
            signature=signature,
            verdict="answered",
            signer=partner.hub_id,
            answer=answer,
            now=now,
        )
    return Answer(200, answer)


# ------------------------------------------------------------------ what each kind does

Effect = Callable[[Session], dict[str, Any]]


def _application(hub: Hub, partner: Partner, env: Envelope, files: Files) -> Effect:
    """An application a partner's desk collected for us: received at the partner's desk (state
    pre_reviewed: their first review stands), marked with its origin, in our inbox."""
    p = env.payload
    try:
        item, mode, number = str(p["item"]), str(p["mode"]), str(p["number"])
        desk = p["desk"]
        modes = partner.accepts.get(item)
        ours = (hub.local_catalog or hub.catalog).items.get(item)
        if modes is None or mode not in modes or ours is None or mode not in ours.cross_region:
            raise Refused(
                "item_not_accepted",
                f"本地不接受{partner.display}代收事项 {item}（{mode}）",
                f"we do not accept {item} as {mode} from {partner.name}",
            )
        if not chain_ok(number, p["events"], p["chain_head"], p.get("hash_alg", "sha256")):
            raise Refused("malformed", "随附的事件链校验不通过", "the event chain sent does not verify")
        new = NewApplication(
            subject=item,
            desk=f"partner-{partner.name}",
            applicant=Applicant(**p["applicant"]),
            agent=Agent(**p["agent"]) if p.get("agent") else None,
            form=p["form"],
            materials=[material_in(m["name"], m["filename"], files[m["part"]]) for m in p["materials"]],
            source_ref=number,
        )
        fr = p.get("first_review") or {}
        review = FirstReview(
            checklist=fr.get("checklist", []),
            commitment_due=fr.get("commitment_due"),
            verified=fr.get("verified", {}),
            note=fr.get("note"),
        )
    except Refused:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused(
            "malformed", f"申请报文缺少或错误的字段 ({type(exc).__name__})", "application payload incomplete"
        ) from None
    desk_name = text.clean(str(desk.get("name", "")))[:60]  # the partner's words: never trusted as markup or control
    actor = partner_actor(partner, desk_name)
    try:
        origin = {"origin_partner": partner.name, "origin_number": number, "origin_desk": desk_name}
        app = svc.receive(hub, new, actor, first_review=review, brief=True, origin=origin)[0]
    except InvalidInput as exc:
        raise Refused(
            "form_invalid",
            "申请内容不符合本地事项要求：" + "；".join(e.reason.zh for e in exc.errors)[:500],
            "the application does not pass our checks",
            fields=[e.as_dict() for e in exc.errors],
        ) from None
    except (Forbidden, HubError) as exc:
        raise Refused("not_allowed", str(exc)[:500], "not allowed") from None

    def effect(session: Session) -> dict[str, Any]:
        row = session.get(Application, app.id, with_for_update=True)
        if row.origin_partner != partner.name or row.origin_number != number:
            raise Refused("conflict", "收件编号已用于另一来源", "that number came from elsewhere")  # never
        if not session.scalar(
            select(Event.id).where(Event.application_id == row.id, Event.action == "partner_received")
        ):
            add_event(
                row,
                "partner_received",
                actor,
                hub.now(),
                from_state=None,
                to_state=None,
                data={
                    "partner": partner.name,
                    "origin_number": number,
                    "origin_desk": desk,
                    "mode": mode,
                    "origin_chain_head": p["chain_head"],
                    "message": env.id,
                },
            )
        return {"number": row.number, "state": row.state}

    return effect


def _withdraw(hub: Hub, partner: Partner, env: Envelope, files: Files) -> Effect:
    number = str(env.payload.get("number", ""))
    reason = str(env.payload.get("reason") or "申请人在收件地撤回")[:500]

    def effect(session: Session) -> dict[str, Any]:
        app = session.scalar(
            select(Application).where(Application.origin_partner == partner.name, Application.origin_number == number)
        )
        if app is None:
            return {"withdrawn": False, "note": "not received"}
        if app.state not in OPEN:
            return {"withdrawn": False, "state": app.state}
        try:
            svc.transition(hub, app.number, "withdraw", partner_actor(partner), reason=reason, session=session)
        except (IllegalTransition, NotFound) as exc:
            return {"withdrawn": False, "note": str(exc)[:200]}
        return {"withdrawn": True, "number": app.number}

    return effect


def _supplement(hub: Hub, partner: Partner, env: Envelope, files: Files) -> Effect:
    """补正 the partner's desk collected for a case it sent us: the materials join the case and,
    if it waits for them, it resumes (the clock restarts, in our calendar)."""
    p = env.payload
    try:
        number = str(p["number"])
        materials = [material_in(m["name"], m["filename"], files[m["part"]]) for m in p["materials"]]
        note = text.clean(str(p["note"]))[:1000] if p.get("note") else None
    except (KeyError, TypeError, ValueError):
        raise Refused("malformed", "补正报文缺少字段", "supplement payload incomplete") from None
    with hub.sessions() as session:
        app = session.scalar(
            select(Application).where(Application.origin_partner == partner.name, Application.origin_number == number)
        )
        subject = hub.catalog.subject(app.subject_code) if app is not None else None
    if app is None:
        raise Refused("unknown_application", f"未收到过办件 {number}", f"no application {number} from you")
    if subject is not None and (errors := check_materials(hub, subject, materials)):
        raise Refused(
            "form_invalid",
            "补正材料不符合要求：" + "；".join(e.reason.zh for e in errors)[:500],
            "the supplement does not pass our checks",
            fields=[e.as_dict() for e in errors],
        )
    stored = [store_material(hub, m) for m in materials]

    def effect(session: Session) -> dict[str, Any]:
        actor = partner_actor(partner)
        row = svc.get(session, app.number, actor, for_update=True)
        now = hub.now()
        for m, s in zip(materials, stored, strict=True):
            add_material(session, row, m, s, actor, now)
        resumed = row.state == "supplement_requested"
        if resumed:
            svc.transition(hub, row.number, "resume", actor, reason=note, session=session)
        return {"number": row.number, "resumed": resumed}

    return effect


PREPARE: dict[str, Callable[[Hub, Partner, Envelope, dict[str, bytes]], Effect]] = {
    "application": _application,
    "withdraw": _withdraw,
    "supplement": _supplement,
    "status": apply.prepare_status,
    "result": apply.prepare_result,
}
