"""A partner's news about the parts it decides for us (异地代收代办, 多地联办), brought into our
applications' event chains.

A status message carries the partner's whole history of its case; we apply the events we have
not applied yet (`PartnerLink.applied_seq`) and ignore the rest, so a late or repeated message
changes nothing. A partner can only touch the applications in which it decides a part.

异地代收代办 (every part is the partner's): our application follows theirs — accepted (with their
due date, counted in their calendar), 补正, in review, decided, issued; the teller hands the
result over and records 送达 here. 多地联办: their part follows theirs; the application is ours
(accepted by our officer), and becomes decided when every part is, theirs included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import text
from hub.applications import Actor
from hub.applications.events import add_event
from hub.applications.materials import _attach_result
from hub.applications.scope import get
from hub.applications.transitions import _part_action
from hub.context import Hub
from hub.exchange.envelope import Envelope, Refused
from hub.exchange.payloads import chain_ok
from hub.lifecycle import ACTIONS, OPEN, PartState, Role, State
from hub.materials import Staged
from hub.partner_outbox import is_proxy, partner_of
from hub.partners import Partner
from hub.storage.tables import Application, Part, PartnerLink

Effect = Callable[[Session], dict[str, Any]]


def partner_actor(partner: Partner, desk_name: str | None = None) -> Actor:
    """Who acts on our chain for a partner hub: the system, at the partner's desk (named with
    the partner's collecting desk when it receives an application)."""
    name = f"{partner.display}通办枢纽" + (f"·{desk_name}" if desk_name else "")
    return Actor(name=name[:100], role=Role.system, desk=f"partner-{partner.name}")


def link_for(session: Session, app: Application, partner: Partner, now) -> tuple[PartnerLink, Part]:
    """Our link to the partner's case for this application (made on first use), and our part
    the partner decides. Refused if the partner decides nothing here."""
    part = next((p for p in app.parts if partner_of(p.item_code) == partner.name), None)
    if part is None:
        raise Refused("unknown_application", f"办件 {app.number} 无{partner.display}审批的事项", "not your case")
    link = session.scalar(select(PartnerLink).where(PartnerLink.part_id == part.id))
    if link is None:
        link = PartnerLink(
            application_id=app.id,
            part_id=part.id,
            partner=partner.name,
            mode="proxy" if is_proxy([p.item_code for p in app.parts]) else "joint",
            applied_seq=0,
            updated_at=now.replace(tzinfo=None),
        )
        session.add(link)
    return link, part


def _ours(session: Session, number: str, partner: Partner) -> Application:
    app = session.scalar(select(Application).where(Application.number == number))
    if app is None:
        raise Refused("unknown_application", f"无此办件 {number}", f"no application {number}")
    return get(session, number, partner_actor(partner), for_update=True)


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def prepare_status(hub: Hub, partner: Partner, env: Envelope, files: dict[str, Staged | bytes]) -> Effect:
    p = env.payload
    try:
        ours, theirs, events, head = str(p["origin_number"]), str(p["number"]), list(p["events"]), str(p["chain_head"])
    except (KeyError, TypeError):
        raise Refused("malformed", "状态报文缺少字段", "status payload incomplete") from None
    if not chain_ok(theirs, events, head, p.get("hash_alg", "sha256")):
        raise Refused("malformed", "随附的事件链校验不通过", "the event chain sent does not verify")

    def effect(session: Session) -> dict[str, Any]:
        now = hub.now()
        app = _ours(session, ours, partner)
        link, part = link_for(session, app, partner, now)
        fresh = [e for e in events if e["seq"] > link.applied_seq]
        actor = partner_actor(partner)
        applied = 0
        for ev in fresh:
            applied += _apply_event(hub, app, part, link, ev, actor, now, theirs)
        if fresh:
            link.applied_seq = fresh[-1]["seq"]
        link.remote_number, link.remote_state = theirs, str(p.get("state"))[:32]
        link.updated_at = now.replace(tzinfo=None)
        if link.mode == "proxy" and fresh:  # their dates, counted in their calendar
            app.due_date, app.accepted_on = _date(p.get("due_date")), _date(p.get("accepted_on"))
            app.due_provisional = bool(p.get("due_provisional"))
            app.paused_since = _date(p.get("paused_since"))
        for theirs_part in p.get("parts", [])[:1]:
            part.due_date = _date(theirs_part.get("due_date")) or part.due_date
        app.updated_at = now.replace(tzinfo=None)
        return {"applied": applied, "seq": link.applied_seq}

    return effect


def _apply_event(
    hub: Hub, app: Application, part: Part, link: PartnerLink, ev: dict[str, Any], actor: Actor, now, theirs: str
) -> int:
    """One of the partner's events on our chain, if it means something here; 1 if applied."""
    action = ev.get("action")
    reason = text.clean(str(ev["reason"]))[:1000] if ev.get("reason") else None
    note = {
        "partner": link.partner,
        "remote_number": theirs,
        "remote_seq": ev["seq"],
        "remote_hash": ev["hash"],
        "by": text.clean(str(ev.get("actor", "")))[:100],
    }
    proxy = link.mode == "proxy"

    def move(to: str, name: str, data: dict[str, Any] | None = None) -> int:
        source = app.state
        app.state = to
        add_event(app, name, actor, now, from_state=source, to_state=to, reason=reason, data=note | (data or {}))
        return 1

    def mark(name: str, data: dict[str, Any] | None = None) -> int:
        add_event(
            app, name, actor, now, from_state=None, to_state=None, part=part, reason=reason, data=note | (data or {})
        )
        return 1

    if action in ("start_review", "approve", "deny"):
        if app.state not in PART_MOVES or part.state not in ACTIONS[action].sources:
            return mark(f"partner_{action}", {"not_applied": app.state})
        return _part_step(hub, app, part, action, actor, now, reason, note)
    if action == "accept":
        if proxy and app.state in (State.received, State.pre_reviewed):
            return move(State.accepted.value, "accept", {"due_date": ev.get("data", {}).get("due_date")})
        return mark("partner_accept", {"due_date": ev.get("data", {}).get("due_date")})
    if action == "reject":
        if proxy and app.state in (State.received, State.pre_reviewed):
            part.state = PartState.withdrawn.value if part.state == PartState.pending else part.state
            return move(State.rejected.value, "reject")
        if part.state in (PartState.pending, PartState.in_review) and app.state in PART_MOVES:
            return close_part(hub, app, part, actor, now, f"对方不予受理：{reason or ''}", note)
        return mark("partner_reject")
    if action == "request_supplement":
        if proxy and app.state in OPEN and app.state != State.supplement_requested:
            app.resume_state = app.state
            return move(State.supplement_requested.value, "request_supplement")
        return mark("partner_supplement")
    if action == "resume":
        if proxy and app.state == State.supplement_requested:
            target = app.resume_state or State.accepted.value
            app.resume_state = None
            return move(target, "resume")
        return mark("partner_resume")
    if action == "issue":
        if proxy and app.state == State.decided:
            return move(State.issued.value, "issue")
        return mark("partner_issue")
    if action == "withdraw":
        if proxy and app.state in OPEN:
            if part.state in (PartState.pending, PartState.in_review):
                part.state = PartState.withdrawn.value
            return move(State.withdrawn.value, "withdraw")
        if not proxy and part.state in (PartState.pending, PartState.in_review) and app.state in PART_MOVES:
            # 多地联办: their part will not be decided there; ours stand, and the case can end
            return close_part(hub, app, part, actor, now, f"对方已撤回：{reason or ''}", note)
        return mark("partner_withdraw")
    return 0  # their own bookkeeping (delivery to their department, results, receipt): not ours


# where a partner's part may move in our application: accepted or in review, and — 多地联办 —
# while our own part waits for 补正 (the partner's decision does not wait for ours)
PART_MOVES = (State.accepted, State.in_review, State.supplement_requested)


def _part_step(
    hub: Hub, app: Application, part: Part, action: str, actor: Actor, now, reason: str | None, note: dict
) -> int:
    """A partner's step on its part. Unlike a step taken here it may come while our application
    waits for 补正 of our own part; the application is decided once it is back and every part is."""
    if app.state == State.supplement_requested:
        source = part.state
        part.state = ACTIONS[action].target
        if action in ("approve", "deny"):
            part.decided_at = now.replace(tzinfo=None)
        data = {"item": part.item_code, "department": part.department_code} | note
        add_event(app, action, actor, now, from_state=source, to_state=part.state, part=part, reason=reason, data=data)
        return 1
    _part_action(hub, app, part, ACTIONS[action], actor, now, reason, extra=note)
    return 1


def close_part(hub: Hub, app: Application, part: Part, actor: Actor, now, reason: str, note: dict) -> int:
    """A partner's part that will not be decided there (refused, withdrawn): denied here with the
    partner's reason, so the application can be decided on the parts that were (partial)."""
    if part.state == PartState.pending:
        _part_step(hub, app, part, "start_review", actor, now, None, note)
    return _part_step(hub, app, part, "deny", actor, now, reason, note)


def prepare_result(hub: Hub, partner: Partner, env: Envelope, files: dict[str, Staged | bytes]) -> Effect:
    p = env.payload
    try:
        ours, name = str(p["origin_number"]), text.clean(str(p["name"]))[:200]
        content = files[env.attachments[0].part]
    except (KeyError, TypeError, IndexError):
        raise Refused("malformed", "结果报文缺少字段或附件", "result payload or file missing") from None
    if problem := hub.store.check(content):
        raise Refused("bad_attachment", f"结果文件不可接收：{problem.zh}", f"result file refused: {problem.en}")
    stored = hub.store.adopt(content) if isinstance(content, Staged) else hub.store.put(content)

    def effect(session: Session) -> dict[str, Any]:
        now = hub.now()
        app = _ours(session, ours, partner)
        _, part = link_for(session, app, partner, now)
        _attach_result(session, app.number, part.id, name, stored, partner_actor(partner), now)
        return {"sha256": stored.sha256}

    return effect
