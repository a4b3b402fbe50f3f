"""Life-cycle actions on an application or one of its parts: who may, from which state, and
what each does (受理, 补正, 撤回 …). Illegal actions raise and write nothing."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from hub import lifecycle, outbox, partner_outbox, text
from hub.applications import licence_refs
from hub.applications.events import add_event
from hub.applications.licences import issue_for_part
from hub.applications.materials import check_complete, verified_materials
from hub.applications.models import SYSTEM, Actor
from hub.applications.scope import get, read
from hub.applications.supplement import SupplementAsk, check_ask, check_resumable
from hub.context import Hub
from hub.errors import FieldError, Forbidden, HubError, IllegalTransition, InvalidInput
from hub.lifecycle import ACTIONS, PartState, Role, State
from hub.partner_outbox import application_rows, is_proxy, mode_of, owe_rows, partner_of
from hub.storage.tables import Application, Deficiency, OutboxRow, Part
from hub.timelimits import recompute_due, restart_clock, stop_clock


def _check_actor(app: Application, action: lifecycle.Action, actor: Actor, part: Part | None) -> None:
    if actor.role not in action.roles:
        allowed = ", ".join(sorted(r.value for r in action.roles))
        raise Forbidden(f"角色 {actor.role.value} 不能执行“{action.zh}” ({action.name} needs one of: {allowed})")
    if actor.role is Role.officer and part is not None and part.department_code != actor.department:
        raise Forbidden(f"事项 {part.item_code} 不属于部门 {actor.department} (not your department's part)")


def _pick_part(app: Application, part_code: str | None, actor: Actor, action: lifecycle.Action) -> Part:
    candidates = app.parts
    if part_code:
        candidates = [p for p in app.parts if part_code in (p.item_code, p.id)]
    elif actor.role is Role.officer:
        candidates = [p for p in app.parts if p.department_code == actor.department]
    candidates = [p for p in candidates if p.state in action.sources] or candidates
    if len(candidates) != 1:
        codes = ", ".join(p.item_code for p in app.parts)
        raise InvalidInput([FieldError.of("part", f"请指定事项（{codes}）", "name the part (item code) to act on")])
    return candidates[0]


MAX_REASON = 1000


LEAD_ACTIONS = frozenset({"accept", "reject", "issue", "deliver", "withdraw"})
# 异地代收代办: what the collecting desk itself does on a case a partner decides — receive it,
# first-review it, hand 补正 over (resume: sent to the partner), hand the result over, withdraw
PROXY_DESK_ACTIONS = frozenset({"submit", "pre_review", "resume", "deliver", "withdraw"})


def transition(
    hub: Hub,
    number: str,
    action_name: str,
    actor: Actor,
    *,
    reason: str | None = None,
    part: str | None = None,
    commitment_due: date | None = None,
    session: Session | None = None,
    ask: SupplementAsk | None = None,
) -> Application:
    """Take one life-cycle action. Illegal actions raise and write nothing. Given a session, the
    action joins that transaction (the caller commits it, with whatever else it wrote). `ask`:
    what a 补正 request names (fields, materials, where, by when; hub.applications.supplement)."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise InvalidInput(
            [FieldError.of("action", f"未知操作 {action_name}，可选: {', '.join(ACTIONS)}", "unknown action")]
        )
    if action.needs_reason and not (reason and reason.strip()):
        raise InvalidInput([FieldError.of("reason", f"“{action.zh}”必须填写理由", f"{action.name} needs a reason")])
    if reason and len(reason) > MAX_REASON:
        raise InvalidInput([FieldError.of("reason", f"理由不超过{MAX_REASON}字", f"at most {MAX_REASON} characters")])
    if bad := text.check("reason", reason, multiline=True):
        raise InvalidInput([bad])
    if ask is not None and action.name != "request_supplement":
        raise InvalidInput(
            [FieldError.of("supplement", "只有“要求补正”可以列出补正内容", "only for request_supplement")]
        )
    if session is not None:
        return _transition(hub, session, number, action, actor, reason, part, commitment_due, ask)
    with hub.transaction() as session:
        _transition(hub, session, number, action, actor, reason, part, commitment_due, ask)
    return read(hub, number, actor)


def _transition(
    hub: Hub,
    session: Session,
    number: str,
    action: lifecycle.Action,
    actor: Actor,
    reason: str | None,
    part: str | None,
    commitment_due: date | None,
    ask: SupplementAsk | None = None,
) -> Application:
    now, today = hub.now(), hub.today()
    app = get(session, number, actor, for_update=True)
    if action.part_level:
        target_part = _pick_part(app, part, actor, action)
        _check_actor(app, action, actor, target_part)
        if (who := partner_of(target_part.item_code)) and actor.role is not Role.system:
            raise Forbidden(f"事项 {target_part.title} 由对方地区（{who}）审批 (a partner hub decides this part)")
        _part_action(hub, app, target_part, action, actor, now, reason)
    else:
        _check_actor(app, action, actor, None)
        if (
            actor.role is Role.officer
            and action.name in LEAD_ACTIONS
            and app.parts[0].department_code != actor.department
        ):
            # a bundle is accepted, refused and issued once, by its lead (first item's) department;
            # any department reviewing a part may ask for 补正
            raise Forbidden(
                f"“{action.zh}”由牵头部门 {app.parts[0].department_code} 办理 (only the lead department acts on the whole)"
            )
        if (
            action.name not in PROXY_DESK_ACTIONS
            and is_proxy([p.item_code for p in app.parts])
            and actor.role is not Role.system
        ):
            # the case is the partner's: our application follows its steps (hub.exchange.apply);
            # a step taken here as well would put the two apart for good
            raise Forbidden(
                f"异地代收代办的办件由对方地区受理、补正、审批和出件 (a partner hub takes {action.name} on {number})"
            )
        if action.name == "resume" and is_proxy([p.item_code for p in app.parts]) and actor.role is not Role.system:
            # 补正 of a case a partner decides: what the desk collected goes to the partner, which
            # resumes its case; ours follows when its news comes back
            if app.state != State.supplement_requested:
                raise IllegalTransition(f"办件 {number} 不在待补正状态 (not waiting for a supplement)")
            asked = max((e.at for e in app.events if e.action == "request_supplement"), default=None)
            new = [m for m in app.materials if m.kind == "material" and asked is not None and m.added_at >= asked]
            owed = partner_outbox.supplement_rows(app, now)
            for row in owed:
                object_session(app).add(partner_outbox.PartnerMessage(**row))
            add_event(
                app,
                "supplement_sent",
                actor,
                now,
                from_state=None,
                to_state=None,
                reason=reason,
                data={"materials": [m.name for m in new], "partners": sorted({r["partner"] for r in owed})},
            )
            app.updated_at = now.replace(tzinfo=None)
            return app
        if app.state not in action.sources:
            raise IllegalTransition(
                f"办件 {number} 当前状态为“{lifecycle.STATE_ZH[app.state]}”，不能“{action.zh}” "
                f"(cannot {action.name} from {app.state})"
            )
        _app_action(hub, app, action, actor, now, today, reason, commitment_due, ask)
    app.updated_at = now.replace(tzinfo=None)
    return app


def _app_action(
    hub: Hub,
    app: Application,
    action: lifecycle.Action,
    actor: Actor,
    now: datetime,
    today: date,
    reason: str | None,
    commitment_due: date | None,
    ask: SupplementAsk | None = None,
) -> None:
    source = app.state
    data: dict[str, Any] = {}
    target = action.target
    if action.name == "accept":
        data = _accept(hub, app, now, today, commitment_due)
    elif action.name == "pre_review" and is_proxy([p.item_code for p in app.parts]):
        mode = mode_of(app.channel, [p.item_code for p in app.parts])
        owe_rows(object_session(app), application_rows(app.number, app.id, app.parts, now, mode=mode))
        data = {"partner": sorted({partner_of(p.item_code) for p in app.parts})}
    elif action.name == "request_supplement":
        # what, where and by when, checked before anything moves (the resident's page shows it)
        data = {"ask": check_ask(hub, app, ask or SupplementAsk(), today)}
        app.resume_state = source
        stop_clock(app, today)
        data["clock_stopped"] = app.paused_since is not None
    elif action.name == "resume":
        check_resumable(app, actor)
        target = app.resume_state or State.received.value
        app.resume_state = None
        stood = restart_clock(app, today, hub.calendar)
        data = {"clock_stood_workdays": stood, "due_date": app.due_date.isoformat() if app.due_date else None}
    elif action.name == "withdraw":
        app.paused_since = None  # no clock runs for a withdrawn application
        withdrawn = [p for p in app.parts if p.state in (PartState.pending, PartState.in_review)]
        for p in withdrawn:
            p.state = PartState.withdrawn.value
        data = {"parts_withdrawn": [p.item_code for p in withdrawn]}
        session = object_session(app)
        if cancelled := outbox.cancel(session, [p.id for p in withdrawn]):
            data["deliveries_cancelled"] = cancelled
        # a department that already holds the case has to be told by its own channel (for now)
        delivered = session.scalars(
            select(OutboxRow.connection).where(
                OutboxRow.part_id.in_([p.id for p in withdrawn]), OutboxRow.state == "delivered"
            )
        ).all()
        if delivered:
            data["held_by_departments"] = sorted(delivered)
        told = partner_outbox.withdraw(session, app, now)
        data |= {f"partners_{k}": v for k, v in told.items() if v}
    app.state = target
    add_event(app, action.name, actor, now, from_state=source, to_state=target, reason=reason, data=data)
    if action.name == "resume":
        decide_if_done(hub, app, now)


def _accept(hub: Hub, app: Application, now: datetime, today: date, commitment_due: date | None) -> dict[str, Any]:
    """受理: every required material present, or — for deferrable ones — owed under a commitment."""
    subject = hub.catalog.subject(app.subject_code)
    if subject is None:
        raise HubError(f"事项 {app.subject_code} 已不在事项目录中 (item no longer in the catalogue)")
    if commitment_due is None:  # the applicant's promise as the desk recorded it at first review
        promised = next((e.data.get("commitment_due") for e in app.events if e.action == "pre_review"), None)
        commitment_due = date.fromisoformat(promised) if promised else None
    have = {m.name for m in app.materials if m.kind == "material"} | verified_materials(app)
    deferred, errors = check_complete(hub, subject, have, commitment_due, today)
    if errors:
        raise InvalidInput(errors)
    for name in deferred:
        app.deficiencies.append(Deficiency(material=name, due_date=commitment_due, created_at=now.replace(tzinfo=None)))
    app.accepted_on = today
    recompute_due(app, hub.calendar)
    # Parts routed to a connected department system are owed a delivery, in this transaction:
    # accepted and queued commit together or not at all. Others are decided in the hub itself.
    session = object_session(app)
    queued = [p for p in app.parts if p.connection in hub.connections]
    for p in queued:
        outbox.enqueue(session, p, now)
    # 多地联办: the partner's part goes to its hub, which accepts and decides it there
    partner_parts = [p for p in app.parts if partner_of(p.item_code)]
    owe_rows(session, application_rows(app.number, app.id, partner_parts, now, mode="joint"))
    data: dict[str, Any] = {"due_date": app.due_date.isoformat(), "due_provisional": app.due_provisional}
    if queued:
        data["dispatch"] = {p.item_code: p.connection for p in queued}
    if partner_parts:
        data["partners"] = {p.item_code: partner_of(p.item_code) for p in partner_parts}
    if deferred:
        data |= {"tolerant": True, "missing": deferred, "commitment_due": commitment_due.isoformat()}
    return data


def _part_action(
    hub: Hub,
    app: Application,
    part: Part,
    action: lifecycle.Action,
    actor: Actor,
    now: datetime,
    reason: str | None,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """One part's step, and the application's that follow (start, decide). `extra`: more to
    record on the part's event (a partner hub's step: whose and which)."""
    if app.state not in (State.accepted, State.in_review):
        raise IllegalTransition(
            f"办件 {app.number} 当前状态为“{lifecycle.STATE_ZH[app.state]}”，不能“{action.zh}” "
            f"(parts move only while the application is accepted or in review)"
        )
    if part.state not in action.sources:
        raise IllegalTransition(
            f"事项 {part.item_code} 当前为“{lifecycle.STATE_ZH[part.state]}”，不能“{action.zh}” "
            f"(cannot {action.name} a part in state {part.state})"
        )
    # 电子证照 of ours taken at intake must still be valid today for the hub's own officers to
    # approve (web, API, CLI all come here). A decision a department's system or a partner hub
    # already made (Role.system) is recorded as the fact it is, not gated.
    if (
        action.name == "approve"
        and actor.role is not Role.system
        and (lapsed := licence_refs.lapsed(object_session(app), app.id, hub.today()))
    ):
        raise InvalidInput(lapsed)
    source = part.state
    part.state = action.target
    if action.name in ("approve", "deny"):
        part.decided_at = now.replace(tzinfo=None)
    add_event(
        app,
        action.name,
        actor,
        now,
        from_state=source,
        to_state=part.state,
        part=part,
        reason=reason,
        data={"item": part.item_code, "department": part.department_code} | (extra or {}),
    )
    if action.name == "approve":  # an item whose result is a licence issues it (电子证照)
        issue_for_part(hub, app, part, actor, now)
    if app.state == State.accepted and action.name == "start_review":
        app.state = State.in_review.value
        add_event(app, "start", SYSTEM, now, from_state=State.accepted.value, to_state=State.in_review.value)
    decide_if_done(hub, app, now)


def decide_if_done(hub: Hub, app: Application, now: datetime) -> None:
    """办结: the application is decided once every part is approved or denied — checked after a
    part moves, and after 补正 ends (a partner may have decided its part meanwhile)."""
    if app.state not in (State.accepted, State.in_review):
        return
    if all(p.state in (PartState.approved, PartState.denied) for p in app.parts):
        result = lifecycle.outcome([p.state for p in app.parts])
        source = app.state
        app.state = State.decided.value
        add_event(
            app,
            "decide",
            SYSTEM,
            now,
            from_state=source,
            to_state=State.decided.value,
            data={
                "outcome": result,
                "parts": {p.item_code: p.state for p in app.parts},
                "on_time": app.due_date is None or hub.today() <= app.due_date,
            },
        )
