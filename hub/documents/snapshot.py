"""What a document says, as plain data: taken once, when it is owed, from the event that owes it
and the application as it stood then; rendering later reads only this (and the template)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hub.documents.kinds import KINDS
from hub.errors import HubError
from hub.ids import mask_id
from hub.seals import HUB_AUTHORITY
from hub.storage.tables import Application, Event, Part

if TYPE_CHECKING:
    from hub.context import Hub


def _local(hub: Hub, at: datetime) -> datetime:
    return at.replace(tzinfo=UTC).astimezone(hub.settings.tz)


def _zh_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def authority_of(app: Application, kind: str, part: Part | None, action: str) -> str:
    """Whose seal: the deciding department for its decisions and notices (the lead — first
    item's — department for the whole application), the hub for the desk's own papers."""
    if KINDS[kind].by_hub or (kind == "commitment" and action == "pre_review"):
        return HUB_AUTHORITY
    return (part or app.parts[0]).department_code


def take(hub: Hub, app: Application, event: Event, kind: str, part: Part | None) -> dict[str, Any]:
    """The snapshot of `kind` owed by `event` (on `part` for a decision)."""
    catalog, tz_at = hub.catalog, _local(hub, event.at)
    authority = authority_of(app, kind, part, event.action)
    dept = catalog.departments.get(authority)
    desk = catalog.desks.get(app.desk_code)
    parts = [part] if part is not None else list(app.parts)
    days = max((p.promised_days for p in parts), default=0)
    # the time limit as it stood at the event: fixed at acceptance, else what it would be
    if event.action == "accept":
        due, provisional, expected = (event.data or {}).get("due_date"), bool(event.data.get("due_provisional")), False
    elif app.accepted_on is not None and app.accepted_on <= tz_at.date() and (part or app).due_date:
        due, provisional, expected = (part or app).due_date.isoformat(), app.due_provisional, False
    else:
        try:
            day, provisional = hub.calendar.add_workdays(tz_at.date(), days)
            due = day.isoformat()
        except HubError:  # a date past the calendar: the notice says the limit, not a date
            due, provisional = "", True
        expected = True
    until = event.at.replace(tzinfo=None) + timedelta(seconds=1)  # what the event's own transaction wrote too
    received = [m.name for m in app.materials if m.kind == "material" and m.added_at <= until]
    verified = sorted(
        name
        for e in app.events
        if e.at <= until and e.action in ("pre_review", "verify")
        for name, result in ((e.data or {}).get("verified") or {}).items()
        if result.get("ok")
    )
    owed = [
        {"material": d.material, "due_date": d.due_date.isoformat()}
        for d in app.deficiencies
        if d.created_at <= until and not (d.closed_at is not None and d.closed_at <= until)  # still owed then
    ]
    data = event.data or {}
    if not owed:  # before acceptance: owed under the promise the desk recorded at first review
        review = next(
            (
                e
                for e in app.events
                if e.action == "pre_review" and e.at <= until and (e.data or {}).get("commitment_due")
            ),
            None,
        )
        if review is not None:
            promised = review.data["commitment_due"]
            owed = [{"material": m, "due_date": promised} for m in _missing(hub, app, received, verified)]
    ask = data.get("ask") or {}
    asked_fields = [
        {"label": f.get("label") or f.get("name"), "note": f.get("note") or ""} for f in ask.get("fields", [])
    ]
    asked_materials = [{"name": m.get("name"), "note": m.get("note") or ""} for m in ask.get("materials", [])]
    county = hub.settings.county.name
    return {
        "kind": kind,
        "title": KINDS[kind].title,
        "number": app.number,
        "subject": {"code": app.subject_code, "title": app.title},
        "items": [{"code": p.item_code, "title": p.title, "promised_days": p.promised_days} for p in parts],
        "applicant": {
            "name": app.applicant_name,
            "id": mask_id(app.applicant_id),  # never the full number: a notice travels
            "type": app.applicant_type,
        },
        "agent": app.agent_name,
        "authority": {
            "code": authority,
            "name": dept.name if dept else f"{county}政务服务中心",
            "phone": (dept.phone if dept else None) or (desk.phone if desk else None) or "",
        },
        "department": {  # the deciding (lead) department, also on the hub's own papers
            "code": parts[0].department_code if parts else "",
            "name": (d.name if (d := catalog.departments.get(parts[0].department_code)) else "") if parts else "",
            "phone": (d.phone or "") if parts and d else "",
        },
        "desk": {
            "code": app.desk_code,
            "name": desk.name if desk else app.desk_code,
            "address": (desk.address if desk else None) or "",
            "phone": (desk.phone if desk else None) or "",
        },
        "county": county,
        "event": {"seq": event.seq, "action": event.action, "actor": event.actor},
        "at": tz_at.strftime("%Y-%m-%d %H:%M"),
        "date": tz_at.date().isoformat(),
        "date_zh": _zh_date(tz_at.date()),
        "reason": event.reason or "",
        "limit": {"workdays": days, "due_date": due or "", "provisional": provisional, "expected": expected},
        "materials": received,
        "verified": verified,
        "owed": owed,
        "supplement": {
            "fields": asked_fields,
            "materials": asked_materials,
            # 一次性告知: everything asked, in one list (the template's table)
            "all": [{"kind": "信息", "name": f["label"], "note": f["note"]} for f in asked_fields]
            + [{"kind": "材料", "name": m["name"], "note": m["note"]} for m in asked_materials],
            "place": ask.get("place") or "",
            "due_date": ask.get("due_date") or "",
        },
        "results": [m.name for m in app.materials if m.kind == "result" and (part is None or m.part_id == part.id)],
        "delivery_method": str((app.form or {}).get("delivery_method") or ""),
    }


def _missing(hub: Hub, app: Application, received: list[str], verified: list[str]) -> list[str]:
    subject = hub.catalog.subject(app.subject_code)
    have = set(received) | set(verified)
    return [
        m.name
        for m in (hub.catalog.materials_of(subject) if subject else ())
        if m.required and m.supplied_by == "applicant" and m.name not in have
    ]


def sample(kind: str) -> dict[str, Any]:
    """A made-up snapshot of `kind`: what `hub catalog check` renders every template against."""
    return {
        "kind": kind,
        "title": KINDS[kind].title,
        "number": "TS20260921000001",
        "subject": {"code": "MZ-001", "title": "老年人优待证办理"},
        "items": [{"code": "MZ-001", "title": "老年人优待证办理", "promised_days": 5}],
        "applicant": {"name": "张三", "id": "3303**********0012", "type": "person"},
        "agent": None,
        "authority": {"code": "ts-mzj", "name": "泰顺县民政局", "phone": "0577-67580000"},
        "department": {"code": "ts-mzj", "name": "泰顺县民政局", "phone": "0577-67580000"},
        "desk": {"code": "hall-county", "name": "综合受理窗口", "address": "罗阳镇", "phone": "0577-67590000"},
        "county": "泰顺县",
        "event": {"seq": 3, "action": "accept", "actor": "李四"},
        "at": "2026-09-21 10:00",
        "date": "2026-09-21",
        "date_zh": "2026年9月21日",
        "reason": "材料不齐",
        "limit": {"workdays": 5, "due_date": "2026-09-28", "provisional": False, "expected": True},
        "materials": ["居民身份证"],
        "verified": ["户口簿"],
        "owed": [{"material": "近期免冠彩色证件照", "due_date": "2026-09-30"}],
        "supplement": {
            "fields": [{"label": "联系电话", "note": "电话无法接通"}],
            "materials": [{"name": "近期免冠彩色证件照", "note": "须近期照片"}],
            "all": [
                {"kind": "信息", "name": "联系电话", "note": "电话无法接通"},
                {"kind": "材料", "name": "近期免冠彩色证件照", "note": "须近期照片"},
            ],
            "place": "综合受理窗口",
            "due_date": "2026-09-29",
        },
        "results": ["老年人优待证"],
        "delivery_method": "窗口领取",
    }
