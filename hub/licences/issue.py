"""Issuing a licence when a part of an item whose result is one is approved: in the approving
transaction (the officer's approve and a department's decision synced back both pass
`hub.applications.transitions._part_action`), one licence per part — the part id is unique in
the library, so a decision seen twice never issues twice. The sealed PDF is drawn on first use
(`hub.licences.document.sealed_pdf`), outside the approval's transaction."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from hub.applications.events import add_event
from hub.applications.models import Actor
from hub.context import Hub
from hub.errors import HubError
from hub.ids import uscc_check_char
from hub.licences.licence_types import LONG_TERM, LicenceType
from hub.licences.numbering import next_number
from hub.storage.tables import Application, Licence, Part

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714 organisation code check


def _org_check(first8: str) -> str:
    total = sum(w * (int(c) if c.isdigit() else ord(c) - 55) for w, c in zip(_ORG_WEIGHTS, first8, strict=True))
    c9 = 11 - total % 11
    return {10: "X", 11: "0"}.get(c9, str(c9))


def assign_credit_code(division: str) -> str:
    """A new 统一社会信用代码 the registering department gives an enterprise (9 1: registered by
    市场监管, an enterprise), with both check characters right. Random, so it says nothing."""
    org = "MA" + "".join(secrets.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(6))
    org += _org_check(org)
    first17 = f"91{division}{org}"
    return first17 + uscc_check_char(first17)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def valid_until(t: LicenceType, issued: date) -> date | None:
    """The last day a licence is valid: the day before its anniversary; None for 长期."""
    return None if t.years is None else add_years(issued, t.years) - timedelta(days=1)


def _from(app: Application, source: str, fallback: str | None) -> str | None:
    if source == "applicant":
        return fallback
    value = (app.form or {}).get(source.removeprefix("form."))
    return None if value is None or value == "" else str(value)


def printed(t: LicenceType, values: dict[str, Any], app: Application) -> list[list[str]]:
    """The fields printed on the licence, as (label, text) pairs: plain text, never markup."""
    out = []
    for f in t.fields:
        if f.source in values:
            value = values[f.source]
            text = LONG_TERM if value is None else value.isoformat() if isinstance(value, date) else str(value)
        else:
            text = _from(app, f.source, None) or "—"
        out.append([f.label, text])
    return out


def issue_for_part(hub: Hub, app: Application, part: Part, actor: Actor, now: datetime) -> Licence | None:
    """The licence an approved part issues, if its item's result is one (None otherwise). Called
    in the approving transaction; a licence already issued for the part is returned as it is."""
    item = hub.catalog.items.get(part.item_code)
    if item is None or item.licence is None or item.partner is not None:
        return None
    t = hub.catalog.licence_types.get(item.licence)
    if t is None:  # `hub catalog check` refuses this; a catalogue edited under a running hub
        raise HubError(f"事项 {item.code} 的证照类型 {item.licence} 未定义 (unknown licence type)")
    session: Session | None = object_session(app)
    assert session is not None
    found = session.scalars(select(Licence).where(Licence.part_id == part.id)).first()
    if found is not None:
        return found
    department = hub.catalog.departments[t.issuer]
    today = hub.today()
    holder_name = _from(app, t.holder_name, app.applicant_name)
    if t.holder_id == "assign":
        holder_id = assign_credit_code(department.division)
    else:
        holder_id = _from(app, t.holder_id, app.applicant_id)
    if not holder_name or not holder_id:
        raise HubError(f"办件 {app.number} 缺少持证主体名称或证件号码，无法颁发{t.name} (holder unknown)")
    until = valid_until(t, today)
    values = {
        "holder_name": holder_name,
        "holder_id": holder_id,
        "issued_on": today,
        "valid_from": today,
        "valid_until": until,
    }
    licence = Licence(
        number=next_number(session, t.code, department.division, today.year, t.sequence_digits),
        code=secrets.token_urlsafe(24),  # 192 bits: the QR's key to the public page
        type_code=t.code,
        type_name=t.name,
        holder_name=holder_name[:200],
        holder_id=holder_id[:64],
        holder_id_type=t.holder,
        issuer=department.code,
        issuer_name=department.name,
        issued_on=today,
        valid_from=today,
        valid_until=until,
        status="valid",
        application_number=app.number,
        part_id=part.id,
        data={"fields": printed(t, values, app), "item": item.code, "item_title": item.title},
        created_at=now.replace(tzinfo=None),
    )
    session.add(licence)
    add_event(
        app,
        "licence_issued",
        actor,
        now,
        from_state=None,
        to_state=None,
        part=part,
        data={"number": licence.number, "type": t.code, "issuer": department.code},
    )
    return licence
