"""What the intake page and the intake API share: finding an item for a desk (by name, keyword
or pinyin initials), normalising what was typed, checking uploads, online-verification tickets,
and turning one submission into `applications.create` with the desk's first review."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from pypinyin import Style, lazy_pinyin

from hub import applications as svc
from hub import audit, text
from hub.applications import licence_refs
from hub.applications.create import unknown_subject
from hub.catalog.models import MODE_ZH, Bundle, Item
from hub.context import Hub
from hub.errors import FieldError, Forbidden, HubError, InvalidInput, Reason
from hub.exchange.catalogue import ensure_fresh
from hub.materials import Staged


def normalise(value: str) -> str:
    """A search query or a code as the checks read it (hub.text.fold_code: 全角 ０-９ and Ｘ to
    ASCII). Never for free text: names, reasons and notes are kept as written."""
    return text.fold_code(value)


@cache
def initials(text: str) -> str:
    """拼音首字母: 老年人优待证 -> lnrydz (tellers search like this)."""
    return "".join(p[0] for p in lazy_pinyin(text, style=Style.FIRST_LETTER, errors="ignore") if p).lower()


def subjects_for(hub: Hub, channel: str | None) -> list[Item | Bundle]:
    """Items and bundles delegated to a channel (None: all), bundles first."""
    cat = hub.catalog
    subjects: list[Item | Bundle] = [*cat.bundles.values(), *cat.items.values()]
    return [s for s in subjects if channel is None or channel in {c.value for c in s.channels}]


def search(hub: Hub, channel: str | None, query: str) -> list[Item | Bundle]:
    hub.partner_lists_current()  # a partner's list another process synced shows at once
    q = normalise(query).lower()
    found = subjects_for(hub, channel)
    if not q:
        return found
    out = []
    for s in found:
        words = [s.title, s.code, *getattr(s, "keywords", [])]
        if any(q in w.lower() for w in words) or any(q in initials(w) for w in words):
            out.append(s)
    return out


def region_label(hub: Hub, subject: Item | Bundle) -> dict[str, Any] | None:
    """跨省通办: who decides a partner's item (or a 多地联办 bundle with one) and in which modes,
    for the badge beside it ("福鼎市 · 异地代收代办"); None for our own subjects."""
    items = [subject] if isinstance(subject, Item) else hub.catalog.items_of(subject)
    theirs = [i for i in items if i.partner]
    if not theirs:
        return None
    regions, modes = [], []
    for item in theirs:
        partner = hub.partners.by_name.get(item.partner or "")
        name = partner.display if partner else (item.region or item.partner or "")
        if name not in regions:
            regions.append(name)
        if isinstance(subject, Bundle):
            continue  # a bundle mixing ours and theirs is one mode: 多地联办
        modes += [m for m in item.cross_region if m not in modes and m in MODE_ZH]
    if isinstance(subject, Bundle):
        modes = ["joint"]
    full = [i.region for i in theirs if i.region]
    return {
        "region": "、".join(regions),
        "region_full": "、".join(dict.fromkeys(full)),
        "modes": modes,
        "modes_zh": [MODE_ZH[m] for m in modes],
    }


def decided_by_partner(hub: Hub, code: str) -> bool:
    """Is a partner hub deciding this code, or part of it (a 多地联办 bundle)?"""
    if not hub.partners.by_name:
        return False
    if ":" in code:
        return True
    subject = hub.catalog.subject(code)
    return subject is not None and any(i.partner for i in hub.catalog.items_of(subject))


def refresh(hub: Hub, code: str) -> None:
    """Before a desk takes a partner's item (or a 多地联办 bundle with one): the partner's list as
    it is now — one older than allowed is fetched again first (`ensure_fresh`), so an item the
    partner withdrew is refused, and a changed form is checked as it is now."""
    if decided_by_partner(hub, code):
        ensure_fresh(hub, code)


def current_subject(hub: Hub, code: str) -> Item | Bundle:
    """The subject a desk is about to take (refreshed as `refresh` does), or InvalidInput with
    the reason a desk cannot take the code now."""
    refresh(hub, code)
    subject = hub.catalog.subject(code)
    if subject is None:
        raise InvalidInput([unknown_subject(hub, code)])
    return subject


# ---------------------------------------------------------------- 网上核验 tickets


def _sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, b"verify:" + body, hashlib.sha256).hexdigest()


TICKET_HOURS = 8  # a verification is good for the working day it was done in


def verification_ticket(secret: bytes, material: str, id_number: str, result: dict[str, Any], issued: datetime) -> str:
    """A verification done while the form is being filled, carried to the submit: signed, so a
    ticket cannot be forged or moved to another applicant, and dated, so an old one cannot stand
    in for today's check."""
    body = json.dumps(
        {"m": material, "id": id_number, "r": result, "t": int(issued.timestamp())}, ensure_ascii=False, sort_keys=True
    ).encode()
    return base64.urlsafe_b64encode(body).decode() + "." + _sign(secret, body)


def read_ticket(secret: bytes, ticket: str, id_number: str, now: datetime) -> tuple[str, dict[str, Any]] | None:
    """(material, result) of a genuine, current ticket for this applicant; else None."""
    try:
        encoded, mac = ticket.rsplit(".", 1)
        body = base64.urlsafe_b64decode(encoded.encode())
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"), _sign(secret, body).encode()):
        return None
    data = json.loads(body)
    age = now.timestamp() - data.get("t", 0)
    if data["id"] != id_number or not -60 <= age <= TICKET_HOURS * 3600:  # a minute of clock skew between API processes
        return None
    return data["m"], data["r"]


def verify_online(hub: Hub, subject: Item | Bundle, material: str, id_number: str, name: str) -> dict[str, Any]:
    """Ask the owning department's system (网上核验) about one material of an applicant."""
    spec = next((m for m in hub.catalog.materials_of(subject) if m.name == material), None)
    connection = hub.settings.verifiers.get(spec.verify) if spec and spec.verify else None
    if spec is None or connection is None:
        raise InvalidInput.field("material", f"材料“{material}”不支持网上核验", "no online check")
    connector = hub.connector(connection)
    try:
        answer = connector.verify(spec.verify, {"id_number": id_number, "name": name})
    except Exception as exc:  # the department's system is down or refused: say so, change nothing
        raise HubError(
            f"网上核验暂不可用（核验系统无应答），请稍后重试或收取纸质材料 (verification unavailable: {type(exc).__name__})"
        ) from None
    finally:
        connector.close()
    # when and from where: the deciding officer sees both beside the result
    return {
        "ok": answer.ok,
        "kind": spec.verify,
        "connection": connection,
        "detail": answer.detail,
        "at": hub.now().isoformat(),
    }


# ---------------------------------------------------------------- 电子证照 lookups


def lookup_licences(
    hub: Hub,
    subject: Item | Bundle,
    material: str,
    applicant: tuple[str, str],
    form: dict[str, Any],
    actor: Any,
    *,
    application: str | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """查询电子证照 for one material (hub.applications.licence_refs): refused naming the material
    when it takes no licence, naming the name when it is missing. The one entry every surface
    (desk page via the API, API, CLI, demo) uses, so every lookup is audited: the masked ID and
    credit codes, the case when there is one, how many found and withheld."""
    applicant_id, applicant_name = applicant
    try:
        found = licence_refs.lookup(hub, subject, material, applicant_id, applicant_name, form)
    except InvalidInput:
        raise
    except HubError as exc:
        raise InvalidInput.field("material", str(exc), "this material takes no licence") from None
    audit.record(
        hub,
        actor,
        "licence_lookup",
        target=application,
        client=client,
        subject=subject.code,
        material=material,
        **found["asked"],
    )
    return found


def licence_refs_of(raw: list[str]) -> list[svc.LicenceRef]:
    """The licences the page's hidden `licence` inputs name (JSON {material, number, source})."""
    refs, errors = [], []
    for i, value in enumerate(v for v in raw if v):
        try:
            refs.append(svc.LicenceRef.model_validate_json(value))
        except ValueError:
            errors.append(
                FieldError(f"licences[{i}]", Reason("电子证照引用无效，请重新查询", "invalid licence reference"))
            )
    if errors:
        raise InvalidInput(errors)
    return refs


# ---------------------------------------------------------------- one submission

# The desk's first-review checklist (初审): every submission confirms all of it, page or API.
CHECKLIST = [
    ("identity", "已核对申请人身份证件原件", "applicant's ID checked against the original"),
    ("materials", "已核对材料与事项要求一致", "materials match the item's list"),
    ("signature", "申请表已由申请人签字确认", "form signed by the applicant"),
    ("informed", "已告知办理时限与领取方式", "time limit and collection explained"),
]


@dataclass
class Upload:
    material: str
    filename: str
    content: bytes = b""
    staged: Staged | None = None  # received into the store's staging area as it streamed in


def parse_due(raw: str | None) -> date | None:
    raw = normalise(raw or "")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            [FieldError("commitment_due", Reason("承诺补交日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD"))]
        ) from None


def submit(
    hub: Hub,
    actor: svc.Actor,
    *,
    subject_code: str,
    applicant: dict[str, str],
    agent: dict[str, str] | None,
    form: dict[str, Any],
    uploads: list[Upload],
    tickets: list[str],
    checklist: list[str],
    licences: list[svc.LicenceRef] | None = None,
    commitment_due: date | None,
    note: str | None,
    source_ref: str | None,
    secret: bytes,
    queue_ticket: str | None = None,
) -> tuple[svc.Application, bool]:
    """Receive and first-review one application at the actor's desk, all or nothing: the
    application (row and parts loaded) and whether this call made it. The same `source_ref`
    again (a double click, a retried request) returns the first application, and False."""
    if not actor.desk:
        raise Forbidden("只有窗口人员可以收件 (only desk staff take applications)")
    ident = normalise(applicant.get("id", "")).upper()
    # the same request again is answered before anything is checked (an expired ticket must not
    # turn an accepted submission into an error when the browser resends it)
    if (prior := svc.replayed_ref(hub, actor, actor.desk, source_ref, subject_code, ident)) is not None:
        return prior, False
    refresh(hub, subject_code)  # 跨省通办: checked against the partner's list as it is now
    errors = []
    if unticked := [zh for key, zh, _en in CHECKLIST if key not in set(checklist)]:
        errors.append(
            FieldError("checklist", Reason(f"初审核对未完成：{'、'.join(unticked)}", "first review not complete"))
        )
    if not applicant.get("name", "").strip():
        errors.append(FieldError("applicant.name", Reason("请填写申请人姓名", "applicant's name is required")))
    verified: dict[str, dict[str, Any]] = {}
    for i, ticket in enumerate(t for t in tickets if t):
        read = read_ticket(secret, ticket, ident, hub.now())
        if read is None:
            errors.append(
                FieldError(f"verified[{i}]", Reason("核验结果无效或已过期，请重新核验", "invalid or expired ticket"))
            )
        else:
            verified[read[0]] = read[1]
    if errors:
        raise InvalidInput(errors)
    new = svc.NewApplication(
        subject=subject_code,
        desk=actor.desk,
        applicant=svc.Applicant(
            type=applicant.get("type") or "person", name=applicant.get("name", "").strip(), id=ident
        ),
        agent=svc.Agent(name=agent["name"].strip(), id_number=agent.get("id_number", ""))
        if agent and agent.get("name")
        else None,
        form={k: v.strip() if isinstance(v, str) else v for k, v in form.items() if v not in ("", None)},
        materials=[
            svc.MaterialIn(name=u.material, filename=u.filename, content=u.content, staged=u.staged) for u in uploads
        ],
        licences=licences or [],
        source_ref=source_ref,
    )
    review = svc.FirstReview(
        checklist=checklist,
        commitment_due=commitment_due,
        note=(note or "").strip() or None,
        verified=verified,
        queue_ticket=queue_ticket,
    )
    return svc.receive(hub, new, actor, first_review=review, brief=True)
