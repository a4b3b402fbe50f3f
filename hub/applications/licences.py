"""电子证照 and the application they come from: issuing a licence when a part of an item whose
result is one is approved, in the approving transaction (the officer's approve and a department's
decision synced back both pass `hub.applications.transitions._part_action`), one licence per part
— the part id is unique in the library, so a decision seen twice never issues twice; its sealed
PDF, drawn on first use outside that transaction and kept like a result document; and revocation
(注销), recorded on the application's chain. The library itself (scope, views, verification) is
hub.licences, which does not import this package."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from hub import crypto, text
from hub.applications.events import add_event
from hub.applications.materials import keep_blob
from hub.applications.models import SYSTEM, Actor
from hub.applications.scope import get as get_application
from hub.catalog.licence_types import LONG_TERM, LicenceType
from hub.context import Hub
from hub.errors import FieldError, Forbidden, HubError, IllegalTransition, InvalidInput, NotFound
from hub.ids import uscc_check_char
from hub.licences.document import public_link, sealed
from hub.licences.manage import MAX_REASON, get_licence, may_revoke
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


def sealed_pdf(hub: Hub, number: str) -> bytes:
    """The licence's sealed PDF: from the store, or drawn, sealed (by the issuing department) and
    kept now — the first to finish wins; another process drawing it at the same moment keeps the
    winner's. Every read checks the file against its sha256 and its recorded digest (the
    configured algorithm's, e.g. SM3): a damaged file is an error, never served. No scope check
    here: callers check the caller's scope first."""
    with hub.sessions() as session:
        licence = session.scalars(select(Licence).where(Licence.number == number)).first()
        if licence is None:
            raise NotFound(f"证照 {number} 不存在 (no such licence)")
        session.expunge(licence)
    if licence.sha256:
        return _checked(hub, licence.number, licence.sha256, licence.digest_algorithm, licence.digest)
    content = sealed(hub, licence, public_link(hub, licence.code))
    if problem := hub.store.check(content):
        raise HubError(f"证照 {number}: {problem}")
    stored = hub.store.put(content)
    algorithm = hub.settings.crypto.hash  # 密评: the file's digest also in the configured algorithm
    digest = stored.sha256 if algorithm == "sha256" else crypto.hexdigest(algorithm, content)
    with hub.transaction() as session:
        keep_blob(session, stored, hub.now())
        session.execute(
            update(Licence)
            .where(Licence.id == licence.id, Licence.sha256.is_(None))
            .values(sha256=stored.sha256, digest_algorithm=algorithm, digest=digest)
        )
        kept = session.execute(
            select(Licence.sha256, Licence.digest_algorithm, Licence.digest).where(Licence.id == licence.id)
        ).one()
    return _checked(hub, number, kept.sha256, kept.digest_algorithm, kept.digest)


def _checked(hub: Hub, number: str, sha256: str, algorithm: str, digest: str | None) -> bytes:
    """The stored file's bytes, if they still match what the library recorded."""
    try:
        data = hub.store.path_of(sha256).read_bytes()
    except FileNotFoundError:
        raise HubError(f"证照 {number} 的文件缺失 (stored file missing)") from None
    if hashlib.sha256(data).hexdigest() != sha256 or (
        digest is not None and crypto.hexdigest(algorithm, data) != digest
    ):
        raise HubError(f"证照 {number} 的文件已损坏 (stored file does not match its {algorithm} digest)")
    return data


@dataclass(frozen=True)
class Revoked:
    number: str
    application_number: str | None


def revoke(hub: Hub, number: str, actor: Actor, reason: str) -> Revoked:
    """注销: the issuing department's officer (or the hub itself, from the CLI) revokes a licence,
    with a reason; the application's chain records it. A revoked licence stays revoked."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput([FieldError.of("reason", "注销必须填写理由", "revocation needs a reason")])
    if len(reason) > MAX_REASON:
        raise InvalidInput([FieldError.of("reason", f"理由不超过{MAX_REASON}字", f"at most {MAX_REASON} characters")])
    if bad := text.check("reason", reason, multiline=True):
        raise InvalidInput([bad])
    now = hub.now()
    with hub.transaction() as session:
        licence = get_licence(session, number, actor, for_update=True)
        if not may_revoke(actor, licence):
            raise Forbidden(f"只有发证部门 {licence.issuer} 可以注销证照 (only the issuer revokes)")
        if licence.status == "revoked":
            raise IllegalTransition(f"证照 {number} 已注销 (already revoked)")
        licence.status = "revoked"
        licence.revoked_at = now.replace(tzinfo=None)
        licence.revoked_by = actor.name
        licence.revocation_reason = reason
        if licence.application_number:
            app = get_application(session, licence.application_number, SYSTEM, for_update=True)
            add_event(
                app,
                "licence_revoked",
                actor,
                now,
                from_state=None,
                to_state=None,
                part=next((p for p in app.parts if p.id == licence.part_id), None),
                reason=reason,
                data={"number": licence.number, "type": licence.type_code},
            )
        return Revoked(licence.number, licence.application_number)
