"""`hub run exchange`: send what we owe partner hubs, from the exchange outbox.

Per partner at most `limits.concurrency` messages are in flight; each is claimed just before it
is sent and its outcome recorded only under that claim (as `hub.jobs.dispatch` does for
departments). A message keeps its id across retries and is signed afresh each time; the partner
takes it once. It counts as delivered only when the partner's signed acknowledgement, checked
with the partner's key, names it. A refusal that retrying cannot cure dead-letters it at once,
and — for an application — the refusal and its reason go on the application's chain, where the
desk sees them."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub import partner_outbox
from hub.applications import SYSTEM
from hub.applications.events import add_event, append_event
from hub.applications.scope import get
from hub.context import Hub
from hub.errors import HubError
from hub.exchange import log
from hub.exchange.apply import PART_MOVES, close_part, link_for, partner_actor
from hub.exchange.client import NoAnswer, Reply, client_for, post
from hub.exchange.envelope import RETRYABLE, Attachment, Envelope, Refused, Signed, parse, seal, signature_ok
from hub.exchange.identity import Us, us
from hub.exchange.payloads import application_payload, status_payload
from hub.lifecycle import STATE_ZH, PartState
from hub.partners import Partner
from hub.partners.config import KEY_DAY_ZONE
from hub.storage.tables import Application, AttachedMaterial, PartnerMessage

logger = logging.getLogger(__name__)


@dataclass
class SendSummary:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    cancelled: int = 0
    unusable: dict[str, str] = field(default_factory=dict)
    by_partner: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str, partner: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if outcome == "delivered":
                self.by_partner[partner] += 1

    @property
    def errors(self) -> int:
        """What ops must look at: partners that cannot be used, messages given up on."""
        return len(self.unusable) + self.dead

    def line(self) -> str:
        line = f"exchange: {self.delivered} delivered, {self.retrying} to retry, {self.dead} dead-lettered"
        line += f", {self.cancelled} no longer owed" if self.cancelled else ""
        for name, why in sorted(self.unusable.items()):
            line += f"\n  对方 {name} 不可用 unusable: {why}"
        return line


def send(hub: Hub, *, partner: str | None = None) -> SendSummary:
    summary = SendSummary()
    with hub.sessions() as session:
        names = partner_outbox.due_partners(session, hub.now())
    if partner:
        names = [n for n in names if n == partner]
    if names:
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="exchange") as pool:
            for future in [pool.submit(contextvars.copy_context().run, _drain, hub, n, summary) for n in names]:
                future.result()
    return summary


@dataclass(frozen=True)
class Claim:
    id: int
    token: str
    application_id: int | None = None


def _claim(hub: Hub, name: str) -> Claim | None:
    lease = timedelta(seconds=hub.settings.dispatch_lease_seconds)
    with hub.transaction() as session:
        msg = partner_outbox.claim_one(session, hub.now(), lease=lease, partner=name)
        return Claim(msg.id, msg.claim_token, msg.application_id) if msg else None


def _drain(hub: Hub, name: str, summary: SendSummary) -> None:
    partner = hub.partners.by_name.get(name)
    try:
        if partner is None:
            why = hub.partners.problems.get(name)
            raise HubError("; ".join(str(p) for p in why) if why else f"partners/{name}.yaml 不存在 (not configured)")
        longest = 2 * partner.spec.limits.timeout_seconds  # connect and send, then the answer (client.post)
        if longest > 0.9 * hub.settings.dispatch_lease_seconds:
            raise HubError(
                f"{partner.file}: timeout_seconds ×2 = {longest:g} 秒超过租约 dispatch_lease_seconds 的九成"
                " (a send could outlive its claim and be sent twice: lower timeout_seconds or raise the lease)"
            )
        me = us(hub)
        client = client_for(hub, partner)
    except HubError as exc:
        summary.unusable[name] = str(exc)
        while claim := _claim(hub, name):  # wait for ops, with backoff
            _finish(hub, claim, _Outcome("retrying", str(exc)), None, summary, name)
        return
    try:
        workers = partner.spec.limits.concurrency
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"exchange-{name}") as pool:
            for future in [
                pool.submit(contextvars.copy_context().run, _work, hub, me, partner, client, summary)
                for _ in range(workers)
            ]:
                future.result()
    finally:
        client.close()


def _work(hub: Hub, me: Us, partner: Partner, client: httpx.Client, summary: SendSummary) -> None:
    while True:
        job = _take(hub, partner)
        if job is None:
            return
        try:
            _send_one(hub, me, partner, client, job, summary)
        except Exception as exc:  # a bug must not stop the other messages
            logger.exception("exchange: sending message %s to %s failed", job.claim.id, partner.name)
            _finish(
                hub,
                job.claim,
                _Outcome("retrying", f"内部错误 internal error ({type(exc).__name__})"),
                None,
                summary,
                partner.name,
            )


@dataclass
class _Outcome:
    outcome: str  # delivered | retrying | dead | cancelled
    error: str | None = None
    answer: Envelope | None = None
    reply: Reply | None = None
    verified: bool = False


def _load(session: Session, number: str) -> Application:
    """An application with what payloads read (parts, events, materials), nothing more."""
    return session.scalars(
        select(Application)
        .where(Application.number == number)
        .options(selectinload(Application.parts), selectinload(Application.events), selectinload(Application.materials))
    ).one()


def _build(
    session: Session, hub: Hub, partner: Partner, msg: PartnerMessage
) -> tuple[dict[str, Any], list[Attachment]] | None:
    """The payload and attachment list of an owed message, from the database now; None if
    nothing is owed any more (the application was withdrawn before the partner had it). The
    files themselves are read when sending, checked against their sha256."""
    attachments: list[Attachment] = []

    def attach(m: AttachedMaterial) -> str:
        name = f"f{len(attachments)}"
        attachments.append(Attachment(part=name, sha256=m.sha256, size=m.blob.size, media_type=m.blob.media_type))
        return name

    def material(m: AttachedMaterial) -> dict[str, Any]:
        return {
            "name": m.name,
            "filename": m.filename,
            "sha256": m.sha256,
            "size": m.blob.size,
            "media_type": m.blob.media_type,
            "part": attach(m),
        }

    app = _load(session, msg.conversation) if msg.kind in ("application", "supplement", "withdraw") else None
    if msg.kind == "application":
        if app.state == "withdrawn":
            return None
        desk = hub.catalog.desks.get(app.desk_code)
        desk_info = {
            "code": app.desk_code,
            "name": desk.name if desk else app.desk_code,
            "channel": app.channel,
            "division": app.collecting_division,
            "address": desk.address if desk else None,
            "operator": desk.operator if desk else None,
            "region": hub.settings.county.name,
        }
        part = next(p for p in app.parts if p.id == msg.data["part_id"])
        item = hub.catalog.items.get(part.item_code)
        payload = application_payload(app, part.id, msg.data.get("mode", "proxy"), desk_info, item)
        wanted = {m.name for m in item.materials} if item else None
        payload["materials"] = [
            material(m) for m in app.materials if m.kind == "material" and (wanted is None or m.name in wanted)
        ]
        return payload, attachments
    if msg.kind == "supplement":  # what the desk added since the partner asked for 补正
        asked = max((e.at for e in app.events if e.action == "request_supplement"), default=None)
        part = next(p for p in app.parts if partner_outbox.partner_of(p.item_code) == partner.name)
        item = hub.catalog.items.get(part.item_code)
        wanted = {m.name for m in item.materials} if item else None
        payload = {
            "number": app.number,
            "note": next((e.reason for e in reversed(app.events) if e.action == "supplement_sent"), None),
            "materials": [
                material(m)
                for m in app.materials
                if m.kind == "material"
                and asked is not None
                and m.added_at >= asked
                and (wanted is None or m.name in wanted)
            ],
        }
        return payload, attachments
    if msg.kind == "withdraw":
        reason = next((e.reason for e in reversed(app.events) if e.action == "withdraw"), None)
        return {"number": app.number, "reason": reason}, attachments
    own = session.get(Application, msg.application_id)
    app = _load(session, own.number)
    if msg.kind == "status":
        return status_payload(app), attachments
    if msg.kind == "result":
        m = session.get(AttachedMaterial, msg.data["material"])
        payload = {
            "number": app.number,
            "origin_number": app.origin_number,
            "item": app.parts[0].item_code,
            "name": m.name,
            "filename": m.filename,
            "sha256": m.sha256,
            "media_type": m.blob.media_type,
            "part": attach(m),
        }
        return payload, attachments
    raise HubError(f"unknown message kind {msg.kind}")


def _read(hub: Hub, sha256: str) -> bytes:
    data = hub.store.path_of(sha256).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:  # never send a file changed on disk
        raise HubError(f"材料文件 {sha256[:12]}… 已被改动 (file changed on disk)")
    return data


@dataclass(frozen=True)
class Job:
    """A claimed message, ready to send: its payload as its first attempt fixed it."""

    claim: Claim
    message_id: str
    kind: str
    conversation: str
    payload: dict[str, Any] | None  # None: settled in the claiming transaction (see `settled`)
    attachments: list[Attachment]
    settled: str | None = None  # cancelled (owed no more) or retrying (could not be built)


def _take(hub: Hub, partner: Partner) -> Job | None:
    """Claim the next message and, on its first attempt, build and keep its payload — one
    transaction. What the first attempt carries, every attempt carries: the partner takes a
    message id once, and a retry after a lost answer must be the same message (not newer news
    under an old id, which it would refuse as a conflict); newer news has messages of its own."""
    lease = timedelta(seconds=hub.settings.dispatch_lease_seconds)
    with hub.transaction() as session:
        msg = partner_outbox.claim_one(session, hub.now(), lease=lease, partner=partner.name)
        if msg is None:
            return None
        claim = Claim(msg.id, msg.claim_token, msg.application_id)
        frozen = msg.data.get("frozen")
        if frozen is None:
            try:
                with session.begin_nested():
                    built = _build(session, hub, partner, msg)
            except Exception as exc:  # a bug must not stop the partner's other messages: back off
                logger.exception("exchange: building message %s to %s failed", msg.id, partner.name)
                why = f"内部错误 internal error ({type(exc).__name__})"
                partner_outbox.failed(msg, why, retryable=True, limits=partner.spec.limits, now=hub.now())
                return Job(claim, msg.message_id, msg.kind, msg.conversation, None, [], "retrying")
            if built is None:
                msg.state, msg.claimed_until, msg.claim_token = "cancelled", None, None
                return Job(claim, msg.message_id, msg.kind, msg.conversation, None, [], "cancelled")
            payload, attachments = built
            frozen = {"payload": payload, "attachments": [a.model_dump() for a in attachments]}
            msg.data = {**msg.data, "frozen": frozen}
        return Job(
            claim,
            msg.message_id,
            msg.kind,
            msg.conversation,
            frozen["payload"],
            [Attachment.model_validate(a) for a in frozen["attachments"]],
        )


def _send_one(hub: Hub, me: Us, partner: Partner, client: httpx.Client, job: Job, summary: SendSummary) -> None:
    claim = job.claim
    if job.payload is None:
        summary.count(job.settled or "cancelled", partner.name)
        return None
    files = {a.part: (_read(hub, a.sha256), a.media_type) for a in job.attachments}
    signed = seal(
        me.key,
        kind=job.kind,
        sender=me.hub_id,
        to=partner.hub_id,
        payload=job.payload,
        now=hub.now(),
        message_id=job.message_id,
        conversation=job.conversation,
        attachments=job.attachments,
        hash_alg=hub.settings.crypto.hash,
        files={part: data for part, (data, _) in files.items()},
    )
    size = len(signed.body) + sum(len(data) for data, _ in files.values())
    if size > partner.spec.limits.max_message_bytes:
        too_big = f"报文连附件 {size} 字节，超过 max_message_bytes {partner.spec.limits.max_message_bytes} (too large)"
        return _finish(hub, claim, _Outcome("dead", too_big), None, summary, partner.name)
    try:
        reply = post(client, partner, signed, files)
    except NoAnswer as exc:
        return _finish(
            hub, claim, _Outcome("retrying", f"{partner.name}: 无应答 no answer: {exc}"), signed, summary, partner.name
        )
    _finish(hub, claim, read_answer(hub, me, partner, signed, reply), signed, summary, partner.name)


def read_answer(hub: Hub, me: Us, partner: Partner, signed: Signed, reply: Reply) -> _Outcome:
    """What the partner's answer means, taken only if it is signed by the partner and answers
    this very message."""
    try:
        answer = parse(reply.body)
    except Refused:
        return _Outcome(
            "retrying", f"HTTP {reply.status}: 应答不是协议报文 (answer is not a protocol message)", reply=reply
        )
    key = partner.key(answer.key_id, hub.now().astimezone(KEY_DAY_ZONE).date())
    if (
        answer.sender != partner.hub_id
        or answer.to != me.hub_id
        or answer.ref != signed.envelope.id
        or key is None
        or not signature_ok(key.key, reply.body, reply.signature, answer.signature_algorithm)
    ):
        return _Outcome(
            "retrying",
            f"HTTP {reply.status}: 应答签名无法验证 (answer not signed by {partner.name} for this message)",
            answer,
            reply,
        )
    if answer.kind == "refusal":
        code = str(answer.payload.get("code"))
        why = f"{partner.name} 拒收 refused ({code}): {answer.payload.get('zh')}"
        return _Outcome("retrying" if code in RETRYABLE else "dead", why, answer, reply, True)
    return _Outcome("delivered", None, answer, reply, True)


def _finish(hub: Hub, claim: Claim, result: _Outcome, signed: Signed | None, summary: SendSummary, name: str) -> None:
    now = hub.now()
    partner = hub.partners.by_name.get(name)
    with hub.transaction() as session:
        if claim.application_id is not None:
            # the application first, then the message: the order a withdrawal takes them in, so
            # the two never wait for each other on PostgreSQL
            session.get(Application, claim.application_id, with_for_update=True)
        msg = session.get(PartnerMessage, claim.id, with_for_update=True)
        if msg is None or msg.claim_token != claim.token:
            logger.warning("exchange: claim on message %s lost before its outcome was recorded", claim.id)
            return
        if result.outcome == "delivered":
            partner_outbox.delivered(msg, now)
            _on_delivered(hub, session, msg, partner, result.answer, now)
        elif result.outcome == "cancelled":
            msg.state, msg.claimed_until, msg.claim_token = "cancelled", None, None
        else:
            limits = partner.spec.limits if partner else _DefaultLimits
            partner_outbox.failed(
                msg, result.error or "", retryable=result.outcome == "retrying", limits=limits, now=now
            )
            if msg.state == "dead":
                _on_dead(hub, session, msg, partner, result, now)
        outcome = result.outcome if result.outcome != "retrying" or msg.state != "dead" else "dead"
        if signed is not None and partner is not None:  # last: the log's counter stays locked to the commit
            log.append(
                session,
                now,
                *exchanged(us(hub), partner, signed, result.reply, result.answer, result.verified),
                hash_alg=hub.settings.crypto.hash,
            )
    summary.count(outcome, name)


def exchanged(
    me: Us, partner: Partner, signed: Signed, reply: Reply | None, answer: Envelope | None, verified: bool
) -> list[log.Entry]:
    """The log entries of one exchange: the message we sent and, if any came, the answer."""
    entries = [
        log.Entry(
            "out",
            partner.name,
            signed.body,
            signed.signature,
            "sent",
            message_id=signed.envelope.id,
            kind=signed.envelope.kind,
            signer=me.hub_id,
            key_id=me.key_id,
        )
    ]
    if reply is not None:
        entries.append(
            log.Entry(
                "in",
                partner.name,
                reply.body,
                reply.signature,
                f"answer:{answer.kind}" if answer and verified else "answer:unverified",
                message_id=answer.id if answer else None,
                kind=answer.kind if answer else None,
                signer=partner.hub_id if verified else None,
                key_id=answer.key_id if answer else None,
            )
        )
    return entries


class _DefaultLimits:
    max_attempts, backoff_seconds, max_backoff_seconds = 200, 5.0, 900.0


def _on_delivered(hub: Hub, session, msg: PartnerMessage, partner: Partner, answer: Envelope, now: datetime) -> None:
    """The partner took an application: its number there goes on our chain (one locked row and
    one new event: this runs for every application a desk sends). Its answer to a withdrawal
    goes there too: a case it had already decided is not withdrawn there, and the desk must see
    that."""
    if msg.kind == "withdraw" and msg.application_id is not None:
        app = session.get(Application, msg.application_id, with_for_update=True)
        withdrawn = bool(answer.payload.get("withdrawn"))
        never_had = answer.payload.get("note") == "not received"  # the partner never had the case
        state = str(answer.payload.get("state") or "")[:32]
        reason = None if withdrawn or never_had else f"对方未撤回：该件在对方已{STATE_ZH.get(state, state)}"
        data = {"partner": partner.name, "withdrawn": withdrawn, "never_received": never_had, "remote_state": state}
        append_event(session, app, "partner_withdraw_answer", partner_actor(partner), now, reason=reason, data=data)
        return
    if msg.kind != "application" or msg.application_id is None:
        return
    app = session.get(Application, msg.application_id, with_for_update=True)
    link, part = link_for(session, app, partner, now)
    if link.remote_number and link.remote_number == str(answer.payload.get("number", "")):
        return  # its first answer again (a retry after our record of it was lost): on the chain already
    link.remote_number = str(answer.payload.get("number", ""))[:32] or link.remote_number
    link.remote_state = str(answer.payload.get("state", ""))[:32] or link.remote_state
    data = {"partner": partner.name, "remote_number": link.remote_number, "message": msg.message_id, "ack": answer.id}
    append_event(session, app, "partner_received", partner_actor(partner), now, part_id=part.id, data=data)


def _on_dead(hub: Hub, session, msg: PartnerMessage, partner: Partner | None, result: _Outcome, now: datetime) -> None:
    """A message that will not be delivered: the application it was about says so."""
    if msg.application_id is None or msg.kind not in ("application", "withdraw", "supplement"):
        return
    app = session.scalar(select(Application).where(Application.id == msg.application_id))
    if app is None:
        return
    app = get(session, app.number, SYSTEM, for_update=True)
    part = next((p for p in app.parts if p.id == msg.data.get("part_id")), None)
    refusal = result.answer.payload if result.answer is not None and result.answer.kind == "refusal" else {}
    add_event(
        app,
        "partner_refused",
        partner_actor(partner) if partner else SYSTEM,
        now,
        from_state=None,
        to_state=None,
        part=part,
        reason=str(refusal.get("zh") or result.error or "")[:1000],
        data={
            "partner": msg.partner,
            "code": refusal.get("code", "undeliverable"),
            "message": msg.message_id,
            "fields": refusal.get("fields", [])[:20],
        },
    )
    joint = not partner_outbox.is_proxy([p.item_code for p in app.parts])
    # 多地联办: the partner will not decide its part; it is denied here with the partner's reason,
    # so the application is decided on the parts that were (partial), not stuck
    if (
        msg.kind == "application"
        and joint
        and part is not None
        and partner is not None
        and part.state in (PartState.pending, PartState.in_review)
        and app.state in PART_MOVES
    ):
        why = f"对方未接收：{refusal.get('zh') or result.error or ''}"[:1000]
        close_part(hub, app, part, partner_actor(partner), now, why, {"partner": msg.partner})
