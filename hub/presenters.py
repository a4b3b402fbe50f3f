"""How an application is shown: one dict used by `hub apps show --json` (and later the API).
Resident ID numbers are masked unless the caller asks for, and is entitled to, the full number."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from hub.applications import licence_refs, outcome_of, verified_materials
from hub.context import Hub
from hub.divisions import division_name
from hub.events import chain_algorithm, verify_chain
from hub.ids import mask_id
from hub.lifecycle import CLOCKED, STATE_ZH
from hub.partner_outbox import partner_of
from hub.storage.tables import Application, OutboxRow, PartnerLink
from hub.timelimits import remaining_workdays, signal


def _d(value: date | None) -> str | None:
    return value.isoformat() if value else None


def application_summary(hub: Hub, app: Application, today: date | None = None) -> dict[str, Any]:
    today = today or hub.today()
    desk = hub.catalog.desks.get(app.desk_code)
    sig = signal(app, today, hub.calendar, hub.settings.yellow_days)
    return {
        "number": app.number,
        "title": app.title,
        "subject_code": app.subject_code,
        "kind": app.kind,
        "state": app.state,
        "state_zh": STATE_ZH.get(app.state, app.state),
        "outcome": outcome_of(app),
        "channel": app.channel,
        "desk": app.desk_code,
        "desk_name": desk.name if desk else app.desk_code,
        "applicant_name": app.applicant_name,
        "applicant_id": mask_id(app.applicant_id),
        "due_date": _d(app.due_date),
        "due_provisional": app.due_provisional,
        "signal": sig.value if sig else None,
        "origin": origin(hub, app),
    }


# ---------------------------------------------------------------- 跨省通办


def _region(hub: Hub, partner: str) -> tuple[str, str]:
    """A partner's short name (福鼎市) and full region (福建省宁德市福鼎市), from its file."""
    p = hub.partners.by_name.get(partner)
    if p is None:
        return partner, partner
    return p.display, p.spec.region or p.display


def origin(hub: Hub, app: Application) -> dict[str, Any] | None:
    """On the deciding hub: the partner region and desk that collected an application, and its
    number there (None for an application collected here)."""
    if not app.origin_partner:
        return None
    region, full = _region(hub, app.origin_partner)
    return {
        "partner": app.origin_partner,
        "region": region,
        "region_full": full,
        "desk": app.origin_desk or "",
        "number": app.origin_number or "",
        "label": f"跨省 · {region} {app.origin_desk or ''}".strip(),
    }


def partner_parts(hub: Hub, app: Application) -> dict[str, dict[str, Any]]:
    """On the collecting hub: for each part a partner decides (its item code "PARTNER:CODE"), the
    deciding region and the partner's number and state (partner_links), by item code."""
    theirs = {p.id: p for p in app.parts if partner_of(p.item_code)}
    if not theirs:
        return {}
    with hub.sessions() as session:
        links = {
            link.part_id: link
            for link in session.scalars(select(PartnerLink).where(PartnerLink.application_id == app.id))
        }
    out = {}
    for pid, part in theirs.items():
        name = partner_of(part.item_code) or ""
        region, full = _region(hub, name)
        link = links.get(pid)
        state = link.remote_state if link else None
        out[part.item_code] = {
            "partner": name,
            "region": region,
            "region_full": full,
            "mode": link.mode if link else None,
            "remote_number": link.remote_number if link else None,
            "remote_state": state,
            "remote_state_zh": STATE_ZH.get(state, state) if state else None,
        }
    return out


def _id_fields(hub: Hub, app: Application) -> set[str]:
    subject = hub.catalog.subject(app.subject_code)
    return {f.name for f in hub.catalog.form_of(subject) if f.type == "id_number"} if subject else set()


def _masked_form(hub: Hub, app: Application, reveal_id: bool) -> dict[str, Any]:
    """The form with ID-number fields (agents, other parents, …) masked like the applicant's."""
    secret = _id_fields(hub, app)
    return {k: (v if reveal_id or k not in secret else mask_id(v)) for k, v in app.form.items()}


def _event_data(e: Any, secret: set[str], reveal_id: bool) -> dict[str, Any]:
    """An event's data as shown: a 补正 correction of an ID-number field masked like the form."""
    if e.action == "correct" and not reveal_id and e.data.get("field") in secret:
        return e.data | {k: mask_id(e.data[k]) for k in ("old", "new") if isinstance(e.data.get(k), str)}
    return e.data


def application_detail(hub: Hub, app: Application, *, reveal_id: bool = False) -> dict[str, Any]:
    """The detail view. `reveal_id` shows full ID numbers; callers check the viewer is entitled
    (see `hub.applications.may_reveal_ids`)."""
    today = hub.today()
    view = application_summary(hub, app, today)
    chain = verify_chain(app)
    decided_by = partner_parts(hub, app)
    secret = _id_fields(hub, app)
    with hub.sessions() as session:
        deliveries = [
            {
                "part": next((p.item_code for p in app.parts if p.id == r.part_id), None),
                "connection": r.connection,
                "state": r.state,
                "attempts": r.attempts,
                "remote_id": r.remote_id,
                "remote_status": r.remote_status,
                "last_error": r.last_error,
            }
            for r in session.scalars(select(OutboxRow).where(OutboxRow.application_id == app.id).order_by(OutboxRow.id))
        ]
    view |= {
        "applicant": {
            "type": app.applicant_type,
            "name": app.applicant_name,
            "id": app.applicant_id if reveal_id else mask_id(app.applicant_id),
        },
        "agent": {"name": app.agent_name, "id_number": app.agent_id if reveal_id else mask_id(app.agent_id)}
        if app.agent_name
        else None,
        "collecting_division": {"code": app.collecting_division, "name": division_name(app.collecting_division)},
        "deciding_division": {"code": app.deciding_division, "name": division_name(app.deciding_division)},
        "form": _masked_form(hub, app, reveal_id),
        "source_ref": app.source_ref,
        "accepted_on": _d(app.accepted_on),
        "clock": {
            "stopped_since": _d(app.paused_since),
            "stopped_workdays": app.paused_workdays,
            "remaining_workdays": remaining_workdays(app.due_date, today, hub.calendar)
            if app.due_date and app.state in CLOCKED
            else None,
        },
        "parts": [
            {
                "id": p.id,
                "item_code": p.item_code,
                "title": p.title,
                "department": p.department_code,
                "connection": p.connection,
                "state": p.state,
                "state_zh": STATE_ZH.get(p.state, p.state),
                "promised_days": p.promised_days,
                "due_date": _d(p.due_date),
                "partner": decided_by.get(p.item_code),  # 跨省通办: decided by a partner hub
            }
            for p in app.parts
        ],
        "materials": [
            {
                "name": m.name,
                "filename": m.filename,
                "sha256": m.sha256,
                "size": m.blob.size,
                "media_type": m.blob.media_type,
            }
            for m in app.materials
            if m.kind == "material"
        ],
        "results": [
            {
                "part": next((p.item_code for p in app.parts if p.id == m.part_id), None),
                "name": m.name,
                "sha256": m.sha256,
                "size": m.blob.size,
                "media_type": m.blob.media_type,
            }
            for m in app.materials
            if m.kind == "result"
        ],
        "deliveries": deliveries,
        "deficiencies": [
            {
                "material": d.material,
                "due_date": _d(d.due_date),
                "closed": d.closed_at is not None,
                "overdue": d.closed_at is None and d.due_date < today,
            }
            for d in app.deficiencies
        ],
        "events": [
            {
                "seq": e.seq,
                "action": e.action,
                "part": next((p.item_code for p in app.parts if p.id == e.part_id), None),
                "from": e.from_state,
                "to": e.to_state,
                "actor": e.actor,
                "role": e.role,
                "desk": e.desk,
                "at": e.at.isoformat() + "Z",
                "reason": e.reason,
                "data": _event_data(e, secret, reveal_id),
                "hash": e.hash,
            }
            for e in app.events
        ],
        "chain": {"ok": chain.ok, "head": chain.head, "problem": chain.problem, "hash_alg": chain_algorithm(app)},
    }
    return view


# ---------------------------------------------------------------- the receipt


def receipt(hub: Hub, app: Application, status_url: str) -> dict[str, Any]:
    """受理回执: what the applicant takes home from the desk."""
    today = hub.today()
    desk = hub.catalog.desks.get(app.desk_code)
    review = next((e for e in app.events if e.action == "pre_review"), None)
    promised = (review.data.get("commitment_due") if review else None) or None
    have = {m.name for m in app.materials if m.kind == "material"} | verified_materials(app)
    subject = hub.catalog.subject(app.subject_code)
    missing = [  # 免提交 (supplied_by: agency): the department obtains it, nobody owes it
        m.name
        for m in (hub.catalog.materials_of(subject) if subject else ())
        if m.required and m.supplied_by == "applicant" and m.name not in have
    ]
    if app.due_date:
        due, provisional, expected = app.due_date, app.due_provisional, False
    else:  # not yet accepted by the county: the date it would be due if accepted today
        days = max((p.promised_days for p in app.parts), default=0)
        due, provisional = hub.calendar.add_workdays(today, days)
        expected = True
    return {
        "number": app.number,
        "title": app.title,
        "desk_name": desk.name if desk else app.desk_code,
        "desk_address": desk.address if desk else None,
        "applicant_name": app.applicant_name,
        "applicant_id": mask_id(app.applicant_id),
        "received_at": app.created_at,
        "items": [{"code": p.item_code, "title": p.title, "promised_days": p.promised_days} for p in app.parts],
        "due_date": due.isoformat(),
        "due_expected": expected,
        "due_provisional": provisional,
        "materials": [m.name for m in app.materials if m.kind == "material"],
        "verified": sorted(verified_materials(app) - licence_refs.referenced(app)),
        # 电子证照 taken by reference instead of a copy: "营业执照（330329600123456）"
        "licences": [
            f"{r['material']}（{r['number']}）"
            for e in app.events
            if e.action in ("create", "attach_licence")
            for r in e.data.get("licences") or []
        ],
        "missing": missing,
        "commitment_due": promised,
        "status_url": status_url,
        # the lookup page on the same public address, for those who cannot scan the QR code
        "lookup_url": status_url.rsplit("/s/", 1)[0] + "/s",
        "state_zh": STATE_ZH.get(app.state, app.state),
        "cross_region": _cross_region(hub, app, desk.name if desk else app.desk_code),
    }


def _cross_region(hub: Hub, app: Application, desk_name: str) -> dict[str, Any] | None:
    """跨省通办 on the receipt: where it was collected and where it is decided (the time limit
    runs on the deciding region's working days)."""
    here = hub.settings.county.name
    if app.origin_partner:  # the deciding hub: a partner's desk collected it
        _, full = _region(hub, app.origin_partner)
        return {
            "collecting_desk": app.origin_desk or "",
            "collecting_region": full,
            "origin_number": app.origin_number,
            "deciding_region": here,
        }
    regions = list(dict.fromkeys(_region(hub, name)[0] for p in app.parts if (name := partner_of(p.item_code))))
    if not regions:
        return None
    return {
        "collecting_desk": desk_name,
        "collecting_region": here,
        "origin_number": None,
        "deciding_region": "、".join(regions),
    }
