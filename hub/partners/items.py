"""The cross-region item list (跨域通办目录清单): what we publish to a partner (our items its desks
may collect for us, with form and materials, so its desks check an application as we would)
and how the list a partner publishes to us joins our catalogue.

A partner's item appears in our catalogue as `PARTNER:CODE` (two regions' codes may be equal),
decided by a department named `PARTNER-DEPT` in the partner's division; the teller searches and
picks it like ours, labelled with the deciding region. On the deciding side, the items partners
may send us take the channel `partner` and every partner gets a desk `partner-NAME`: an
application that arrives is received like any other, at that desk.

The list is versioned by its content (sha256 of its canonical JSON): any change to an item, its
form or its materials is a new version."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from hub.catalog.models import Bundle, Catalog, Channel, Department, Desk, Item
from hub.hashchain import canonical
from hub.partners.config import Partner, Partners

COLLECTING_CHANNELS = [Channel.hall, Channel.bank, Channel.enclave, Channel.township]


def published(catalog: Catalog, partner: Partner, *, county: str, division: str) -> dict[str, Any]:
    """The list we give `partner`: our items it may collect for us, each with the modes both the
    item and the partner agreement allow."""
    entries = []
    for code, modes in partner.accepts.items():
        item = catalog.items.get(code)
        if item is None or item.partner is not None:
            continue  # `hub partners check` reports it
        allowed = [m for m in modes if m in item.cross_region]
        if not allowed:
            continue
        dept = catalog.departments[item.department]
        entry = {
            "code": item.code,
            "name": item.name,
            "sub_item": item.sub_item,
            "category": item.category,
            "legal_basis": item.legal_basis,
            "department": item.department,
            "department_name": dept.name,
            "division": dept.division,
            "promised_days": item.promised_days,
            "statutory_days": item.statutory_days,
            "fee": item.fee.model_dump(),
            "materials": [m.model_dump(exclude_none=True) for m in item.materials],
            "form": [f.model_dump(exclude_none=True) for f in item.form],
            "process": [s.model_dump(exclude_none=True) for s in item.process],
            "tolerance_days": item.tolerance_days,
            "keywords": item.keywords,
            "eligibility": item.eligibility.model_dump(exclude_none=True) if item.eligibility else None,
            "modes": allowed,
        }
        entry["form_version"] = hashlib.sha256(
            canonical({"form": entry["form"], "materials": entry["materials"]}).encode()
        ).hexdigest()[:16]
        entries.append(entry)
    entries.sort(key=lambda e: e["code"])
    return {
        "county": county,
        "division": division,
        "version": hashlib.sha256(canonical(entries).encode()).hexdigest()[:16],
        "items": entries,
    }


@dataclass(frozen=True)
class StoredList:
    partner: str
    version: str
    fetched_at: datetime
    payload: dict[str, Any]


def stored_payload(body: str) -> dict[str, Any]:
    """The payload of a stored (signed, checked when received) catalogue message."""
    return json.loads(body)["payload"]


def partner_item(partner: Partner, entry: dict[str, Any]) -> tuple[Item, Department]:
    dept = Department(
        code=f"{partner.name}-{entry['department']}",
        name=entry["department_name"],
        short_name=entry["department_name"],
        division=entry["division"],
    )
    modes = list(entry["modes"])
    channels = [c for c in COLLECTING_CHANNELS if {"proxy", "joint"} & set(modes)]
    if "online" in modes:
        channels.append(Channel.online)
    item = Item(
        code=f"{partner.name}:{entry['code']}",
        name=entry["name"],
        sub_item=entry.get("sub_item"),
        category=entry["category"],
        legal_basis=entry["legal_basis"],
        department=dept.code,
        connection=f"partner-{partner.name}",
        channels=channels or [Channel.hall],
        promised_days=entry["promised_days"],
        statutory_days=entry["statutory_days"],
        fee=entry["fee"],
        materials=[{**m, "verify": None} for m in entry["materials"]],  # 网上核验 is the deciding side's
        process=entry["process"],
        form=entry["form"],
        tolerance_days=entry.get("tolerance_days", 60),
        keywords=[*entry.get("keywords", []), partner.display],
        cross_region=modes,
        eligibility=entry.get("eligibility"),
        partner=partner.name,
        region=partner.spec.region or partner.display,
    )
    return item, dept


def merged(
    local: Catalog,
    partners: Partners,
    lists: dict[str, StoredList],
    *,
    county_division: str,
    now: datetime,
    stale_after: timedelta,
) -> Catalog:
    """Our catalogue with the partners' items our desks may collect, and — as the deciding side —
    a desk per partner and the `partner` channel on the items partners may send us."""
    items = dict(local.items)
    departments = dict(local.departments)
    desks = dict(local.desks)
    unavailable: dict[str, tuple[str, str]] = {}
    for p in partners.by_name.values():
        # deciding side: what this partner may send us arrives at its own desk
        desks[f"partner-{p.name}"] = Desk(
            code=f"partner-{p.name}",
            name=f"{p.display}（跨域通办）",
            channel=Channel.partner,
            division=p.spec.divisions[0],
            acts_for=county_division,
            operator=p.display,
        )
        for code in p.accepts:
            if (item := items.get(code)) is not None and Channel.partner not in item.channels:
                items[code] = item.model_copy(update={"channels": [*item.channels, Channel.partner]})
        # collecting side: their items, from the list they last gave us
        got = lists.get(p.name)
        if got is None:
            continue
        if now - got.fetched_at > stale_after:
            why = (
                f"{p.display}的跨域通办目录已超过 {stale_after.days} 天未同步，请运行 hub partners sync-catalogue",
                f"{p.name}'s item list is older than {stale_after.days} days: sync it",
            )
            for entry in got.payload.get("items", []):
                unavailable[f"{p.name}:{entry.get('code')}"] = why
            continue
        for entry in got.payload.get("items", []):
            if not p.may_collect(str(entry.get("code"))):
                continue
            try:
                item, dept = partner_item(p, entry)
            except (KeyError, TypeError, ValidationError):
                unavailable[f"{p.name}:{entry.get('code')}"] = (
                    f"{p.display}的事项 {entry.get('code')} 无法读取",
                    "the partner's entry for this item is unreadable",
                )
                continue
            items[item.code] = item
            departments[dept.code] = dept
    bundles: dict[str, Bundle] = dict(local.bundles)
    for code, bundle in local.joint_bundles.items():
        missing = [c for c in bundle.items if c not in items]
        if missing:
            unavailable[code] = (
                f"多地联办事项 {'、'.join(missing)} 对方当前不受理或目录未同步",
                f"partner items {', '.join(missing)} are not in the partner's current list",
            )
            continue
        bundles[code] = bundle
    for code in list(unavailable):
        items.pop(code, None)
    return Catalog(
        departments=departments,
        desks=desks,
        items=items,
        bundles=bundles,
        unavailable=unavailable,
        joint_bundles=local.joint_bundles,
        licence_types=local.licence_types,  # 电子证照 types are our own, partners or not
    )
