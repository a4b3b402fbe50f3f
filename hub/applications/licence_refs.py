"""电子证照 instead of paper at intake: a material the catalogue marks `licence: TYPE` is satisfied
by a licence the applicant holds, looked up in the hub's own licence library (hub.licences) or in
a department's through a connector (`licence_sources:` in hub.yaml), and taken BY REFERENCE —
no file. One implementation for every surface (desk page, API, CLI): `lookup` lists what the
teller may pick, `resolve` checks what was picked — valid today, of the material's type, held by
the applicant (see `Asker`) — naming the material in every refusal, and `record` writes the
reference (a `material_licences` row and the event data). `lapsed` is the approval rule for
licences of ours revoked or expired since intake."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from hub.applications.models import LicenceRef
from hub.catalog.models import Bundle, Item, Material
from hub.connectors import LicenceRecord
from hub.context import Hub
from hub.errors import FieldError, HubError, InvalidInput
from hub.ids import mask_id, mask_name
from hub.licences import library
from hub.storage.tables import Licence, MaterialLicence

log = logging.getLogger(__name__)

LIBRARY = "library"  # the hub's own licence library, as a source name
LIBRARY_ZH = "本系统电子证照库"
STATUS_ZH = {
    "valid": "有效",
    "revoked": "已注销",
    "suspended": "已暂停",
    "expired": "已过期",
    "not_yet_valid": "尚未生效",
}


def licence_material(hub: Hub, subject: Item | Bundle, name: str) -> Material | None:
    return next((m for m in hub.catalog.materials_of(subject) if m.name == name and m.licence), None)


@dataclass(frozen=True)
class Asker:
    """Whose licences count as the applicant's. A licence counts when
    - it is held under the applicant's own ID (resident ID, or the credit code a company applies
      under) AND the holder's name on it is the applicant's name (an ID typed wrong or someone
      else's never turns into a name and a licence list); or
    - it is held under a credit code the form carries (`uscc` field: the owner of a 个体工商户
      applies for the business) AND the licence record names the applicant, by ID number, as its
      legal representative / operator (`representative_id`, GB/T 36903 法定代表人证件号码).
      A credit code typed into the form proves nothing by itself; our own library records no
      representative ID, so a company licence of ours is taken only when the company applies."""

    id: str
    name: str
    credit_codes: tuple[str, ...] = ()

    @property
    def holders(self) -> list[str]:
        return list(dict.fromkeys([self.id, *self.credit_codes]))

    def holds(self, c: dict[str, Any]) -> bool:
        if c["holder_id"] == self.id:
            return _same_name(c["holder_name"], self.name)
        return c["holder_id"] in self.credit_codes and (c.get("representative_id") or "") == self.id


def _same_name(a: str | None, b: str | None) -> bool:
    return bool(a and b) and "".join((a or "").split()) == "".join((b or "").split())


def asker(hub: Hub, subject: Item | Bundle, applicant_id: str, applicant_name: str, form: dict[str, Any]) -> Asker:
    codes = []
    for f in hub.catalog.form_of(subject):
        value = form.get(f.name)
        if f.type == "uscc" and isinstance(value, str) and value.strip():
            codes.append(value.strip().upper())
    ident = applicant_id.strip().upper()
    return Asker(ident, applicant_name.strip(), tuple(c for c in dict.fromkeys(codes) if c and c != ident))


def _ours(lic: Licence, today: date) -> dict[str, Any]:
    return {
        "source": LIBRARY,
        "source_zh": LIBRARY_ZH,
        "type_code": lic.type_code,
        "type_name": lic.type_name,
        "number": lic.number,
        "holder_name": lic.holder_name,
        "holder_id": lic.holder_id,
        "issuer": lic.issuer_name,
        "valid_from": lic.valid_from,
        "valid_until": lic.valid_until,
        "status": library.status(lic, today),
        "licence_id": lic.id,
        "representative_id": None,  # our library records only the representative's name
    }


def _theirs(r: LicenceRecord, connection: str, description: str, today: date) -> dict[str, Any]:
    return {
        "source": connection,
        "source_zh": description or connection,
        "type_code": r.type_code,
        "type_name": r.type_name,
        "number": r.number,
        "holder_name": r.holder_name,
        "holder_id": r.holder_id,
        "issuer": r.issuer,
        "valid_from": r.valid_from,
        "valid_until": r.valid_until,
        "status": library.status_on(r.status, r.valid_from, r.valid_until, today),
        "licence_id": None,
        "representative_id": (r.representative_id or "").strip().upper() or None,
    }


def _from_source(hub: Hub, type_code: str, holders: list[str], today: date) -> list[dict[str, Any]]:
    """The configured department library's licences of these holders (HubError if it cannot be
    asked: the teller then takes the paper copy)."""
    connection = hub.settings.licence_sources.get(type_code)
    if connection is None:
        return []
    description = getattr(hub.connections.get(connection), "description", "") or connection
    connector = None
    try:
        connector = hub.connector(connection)
        found = [r for h in holders for r in connector.licences(h, type_code)]
    except Exception as exc:  # the department's system is down or answered nonsense: say so, change nothing
        log.warning("licence lookup in %s failed: %s", connection, exc)
        raise HubError(
            f"电子证照库 {description} 暂不可用，请稍后重试或收取纸质材料 "
            f"(licence library unavailable: {type(exc).__name__})"
        ) from None
    finally:
        if connector is not None:
            connector.close()
    # only what was asked for: a library answering with someone else's licence is not believed
    return [
        _theirs(r, connection, description, today) for r in found if r.holder_id in holders and r.type_code == type_code
    ]


def candidates(hub: Hub, type_code: str, holders: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every licence of `type_code` the holders have, ours first, each with its status today;
    and why a department's library could not be asked (ours is listed all the same)."""
    today = hub.today()
    with hub.sessions() as session:
        ours = [_ours(lic, today) for h in holders for lic in library.find(session, h, type_code)]
    try:
        return ours + _from_source(hub, type_code, holders, today), []
    except HubError as exc:
        return ours, [str(exc)]


def shown(c: dict[str, Any], who: Asker | None = None) -> dict[str, Any]:
    """A candidate as a page or the API shows it: the holder's ID masked, dates as text, the
    holder's name masked unless it is the applicant's (or the licence is their company's, by the
    representative rule). No key to the public page (/l/{code}) ever leaves the hub."""
    named = who is not None and (_same_name(c["holder_name"], who.name) or c["holder_id"] in who.credit_codes)
    return {
        "source": c["source"],
        "source_zh": c["source_zh"],
        "type_code": c["type_code"],
        "type_name": c["type_name"],
        "number": c["number"],
        "holder_name": c["holder_name"] if named else mask_name(c["holder_name"]),
        "holder_id": mask_id(c["holder_id"]),
        "issuer": c["issuer"],
        "valid_from": c["valid_from"].isoformat() if c["valid_from"] else None,
        "valid_until": c["valid_until"].isoformat() if c["valid_until"] else None,
        "status": c["status"],
        "status_zh": STATUS_ZH.get(c["status"], c["status"]),
        "usable": c["status"] == "valid",
    }


def lookup(
    hub: Hub, subject: Item | Bundle, material: str, applicant_id: str, applicant_name: str, form: dict[str, Any]
) -> dict[str, Any]:
    """查询电子证照: the applicant's licences a material may be satisfied by — only those the
    `Asker` rule counts as theirs (a name that differs shows nothing). `asked` is what the audit
    records (hub.web.desk_intake.lookup_licences, the one entry every surface uses): the masked
    ID and credit codes, how many found and how many withheld."""
    if not applicant_name.strip():
        raise InvalidInput.field(
            "applicant_name", "请先填写申请人姓名（名称）再查询电子证照", "the applicant's name is required"
        )
    spec = licence_material(hub, subject, material)
    if spec is None or spec.licence is None:
        raise HubError(f"材料“{material}”不能以电子证照代替 (this material takes no licence)")
    who = asker(hub, subject, applicant_id, applicant_name, form)
    found, problems = candidates(hub, spec.licence, who.holders)
    theirs = [c for c in found if who.holds(c)]
    if withheld := len(found) - len(theirs):
        problems.append(
            f"{withheld} 个证照的持证人与申请人姓名（名称）不符或未载明申请人为法定代表人，未列出 "
            f"({withheld} withheld: holder's name differs or the applicant is not its representative)"
        )
    return {
        "material": material,
        "type_code": spec.licence,
        "licences": [shown(c, who) for c in theirs],
        "problems": problems,
        "asked": {
            "holder": mask_id(who.id),
            "credit_codes": [mask_id(c) for c in who.credit_codes],
            "found": len(theirs),
            "withheld": withheld,
        },
    }


def _refusal(i: int, material: str, zh: str, en: str) -> FieldError:
    return FieldError.of(f"licences[{i}] ({material})", f"材料“{material}”：{zh}", en)


def resolve(
    hub: Hub,
    subject: Item | Bundle,
    refs: list[LicenceRef],
    applicant_id: str,
    applicant_name: str,
    form: dict[str, Any],
    actor_name: str,
) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """Check each reference against the library it names (or ours, then the configured one):
    the licences to record, and a refusal naming the material for each that does not hold."""
    if not refs:
        return [], []
    who = asker(hub, subject, applicant_id, applicant_name, form)
    today, now = hub.today(), hub.now()
    out, errors = [], []
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        spec = licence_material(hub, subject, ref.material)
        if spec is None or spec.licence is None:
            errors.append(_refusal(i, ref.material, "不能以电子证照代替", "this material takes no licence"))
            continue
        if ref.material in seen:
            errors.append(_refusal(i, ref.material, "只能引用一个电子证照", "one licence per material"))
            continue
        seen.add(ref.material)
        try:
            found = _find(hub, spec.licence, ref, who, today)
        except HubError as exc:
            errors.append(FieldError.of(f"licences[{i}] ({ref.material})", f"材料“{ref.material}”：{exc}", str(exc)))
            continue
        if isinstance(found, FieldError):
            errors.append(_refusal(i, ref.material, found.reason.zh, found.reason.en))
            continue
        out.append(found | {"material": ref.material, "checked_at": now, "checked_by": actor_name})
    return out, errors


def _find(hub: Hub, type_code: str, ref: LicenceRef, who: Asker, today: date) -> dict[str, Any] | FieldError:
    """The referenced licence if it may be taken, else why not."""
    number = ref.number.strip()
    if ref.source in (None, LIBRARY):
        with hub.sessions() as session:
            lic = session.scalar(select(Licence).where(Licence.number == number))
            if lic is not None:
                return _judge(_ours(lic, today), type_code, who, number)
    if ref.source != LIBRARY:
        source = ref.source or hub.settings.licence_sources.get(type_code)
        if ref.source is not None and hub.settings.licence_sources.get(type_code) != ref.source:
            return FieldError.of(
                "source", f"证照来源 {ref.source} 未配置为{type_code}证照库", f"{ref.source} is no {type_code} library"
            )
        if source is not None:
            for c in _from_source(hub, type_code, who.holders, today):
                if c["number"] == number:
                    return _judge(c, type_code, who, number)
    return FieldError.of(
        "number",
        f"未找到申请人持有的证照 {number}（须为申请人本人或其企业所持、类型为{type_code}）",
        f"no licence {number} of type {type_code} held by the applicant",
    )


def _judge(c: dict[str, Any], type_code: str, who: Asker, number: str) -> dict[str, Any] | FieldError:
    if c["type_code"] != type_code:
        return FieldError.of(
            "type",
            f"证照 {number} 是“{c['type_name']}”，不是本材料要求的证照类型 {type_code}",
            f"licence {number} is a {c['type_code']}, not a {type_code}",
        )
    if c["holder_id"] not in who.holders:
        return FieldError.of(
            "holder", f"证照 {number} 的持证人不是申请人", f"licence {number} is not held by the applicant"
        )
    if not who.holds(c):
        return FieldError.of(
            "holder",
            f"证照 {number} 的持证人不是申请人（姓名或名称不符，或证照未载明申请人为法定代表人）",
            f"licence {number} is not held by the applicant (name differs, or not its representative)",
        )
    if c["status"] != "valid":
        zh = STATUS_ZH.get(c["status"], c["status"])
        return FieldError.of("status", f"证照 {number} {zh}，不能使用", f"licence {number} is {c['status']}")
    return c


def lapsed(session: Session, application_id: int, today: date) -> list[FieldError]:
    """The approval rule (电子证照 of ours taken at intake): one refusal naming the material for
    each referenced licence of our library that is no longer valid today (revoked, expired …).
    A department's licence is judged as it was at the check; its library is not asked again."""
    rows_ = session.execute(
        select(MaterialLicence.material, Licence)
        .join(Licence, Licence.id == MaterialLicence.licence_id)
        .where(MaterialLicence.application_id == application_id)
        .order_by(MaterialLicence.id)
    ).all()
    errors = []
    for material, lic in rows_:
        now = library.status(lic, today)
        if now != "valid":
            zh = STATUS_ZH.get(now, now)
            errors.append(
                FieldError.of(
                    f"licences ({material})",
                    f"材料“{material}”：引用的电子证照 {lic.number} 现已{zh.removeprefix('已')}，不能准予，请收取纸质材料或补正",
                    f"the licence {lic.number} taken for {material} is now {now}",
                )
            )
    return errors


def current(session: Session, application_id: int, today: date) -> dict[str, tuple[str, int]]:
    """Material -> (status today, licence id) for the licences of ours an application references."""
    found = session.execute(
        select(MaterialLicence.material, Licence)
        .join(Licence, Licence.id == MaterialLicence.licence_id)
        .where(MaterialLicence.application_id == application_id)
    ).all()
    return {material: (library.status(lic, today), lic.id) for material, lic in found}


def event_data(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the event chain records of each reference (the holder's ID masked; never the key to
    the public page /l/{code}: the chain goes to departments and partner hubs)."""
    return [
        {
            "material": r["material"],
            "source": r["source"],
            "source_zh": r["source_zh"],
            "type_code": r["type_code"],
            "type_name": r["type_name"],
            "number": r["number"],
            "holder_name": r["holder_name"],
            "holder_id": mask_id(r["holder_id"]),
            "issuer": r["issuer"],
            "valid_from": r["valid_from"].isoformat() if r["valid_from"] else None,
            "valid_until": r["valid_until"].isoformat() if r["valid_until"] else None,
            "status": r["status"],
            "checked_at": r["checked_at"].isoformat(),
            "checked_by": r["checked_by"],
        }
        for r in records
    ]


def rows(application_id: int, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "application_id": application_id,
            "material": r["material"],
            "source": r["source"],
            "type_code": r["type_code"],
            "type_name": r["type_name"] or r["type_code"],
            "number": r["number"],
            "holder_name": r["holder_name"],
            "holder_id": r["holder_id"],
            "issuer": r["issuer"],
            "valid_from": r["valid_from"],
            "valid_until": r["valid_until"],
            "status_at_check": r["status"],
            "checked_at": _naive(r["checked_at"]),
            "checked_by": r["checked_by"],
            "licence_id": r["licence_id"],
        }
        for r in records
    ]


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def write(conn: Connection | Session, application_id: int, records: list[dict[str, Any]]) -> None:
    if records:
        conn.execute(insert(MaterialLicence), rows(application_id, records))


def referenced(app: Any) -> set[str]:
    """Materials an application has by licence reference (from its chain: `create` and
    `attach_licence` events)."""
    return {
        r["material"]
        for e in app.events
        if e.action in ("create", "attach_licence")
        for r in (e.data.get("licences") or [])
    }
