"""Exchanging the cross-region item lists (跨域通办目录清单): ask a partner for the list of items
it accepts from us (a signed `catalogue_request`, answered by a signed `catalogue`), keep it as
received, and let intake use it. `ensure_fresh` is what intake calls for a partner's item: a list
older than `exchange.catalogue_max_age_seconds` is fetched again first, if the partner answers in
time; if not, intake goes on with the list it has (the partner refuses, with its reason, what it
no longer accepts)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select

from hub.context import Hub
from hub.errors import HubError
from hub.exchange import log
from hub.exchange.client import NoAnswer, client_for, post
from hub.exchange.envelope import Envelope, Signed, parse, seal, signature_ok
from hub.exchange.identity import us
from hub.exchange.send import exchanged, read_answer
from hub.partners import Partner
from hub.storage.tables import PartnerCatalogue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exchanged:
    """A request and the partner's checked answer."""

    request: Signed
    answer: Envelope
    refused: str | None = None  # the partner's refusal, if it refused


def ask(hub: Hub, partner: Partner, kind: str, payload: dict, *, timeout: float | None = None) -> Exchanged:
    """One stateless request to a partner (ping, catalogue request), answered at once; both are
    logged. Raises HubError if there is no usable answer."""
    me = us(hub)
    signed = seal(
        me.key,
        kind=kind,
        sender=me.hub_id,
        to=partner.hub_id,
        payload=payload,
        now=hub.now(),
        hash_alg=hub.settings.crypto.hash,
    )
    client = client_for(hub, partner)
    if timeout is not None:
        client.timeout = httpx.Timeout(timeout)
    try:
        reply = post(client, partner, signed, {}, total_seconds=timeout)
    except NoAnswer as exc:
        with hub.transaction() as session:
            log.append(
                session,
                hub.now(),
                *exchanged(me, partner, signed, None, None, False),
                hash_alg=hub.settings.crypto.hash,
            )
        raise HubError(f"{partner.name} ({partner.spec.url}) 无应答 (no answer): {exc}") from None
    finally:
        client.close()
    outcome = read_answer(hub, me, partner, signed, reply)
    with hub.transaction() as session:
        log.append(
            session,
            hub.now(),
            *exchanged(me, partner, signed, reply, outcome.answer, outcome.verified),
            hash_alg=hub.settings.crypto.hash,
        )
    if not outcome.verified or outcome.answer is None:
        raise HubError(f"{partner.name}: {outcome.error}")
    refused = outcome.error if outcome.answer.kind == "refusal" else None
    return Exchanged(signed, outcome.answer, refused)


def sync(hub: Hub, partner: Partner, *, timeout: float | None = None) -> tuple[str, int, bool]:
    """Fetch and keep the partner's list: (version, items, changed)."""
    got = ask(hub, partner, "catalogue_request", {}, timeout=timeout)
    if got.refused:
        raise HubError(got.refused)
    if got.answer.kind != "catalogue" or not isinstance(got.answer.payload.get("items"), list):
        raise HubError(f"{partner.name}: 应答不是事项清单 (the answer is not an item list)")
    version = str(got.answer.payload.get("version", ""))[:64]
    # the answer's bytes, as logged: kept whole so the list can be checked again later
    body, signature = _last_answer(hub, got.answer.id)
    now = hub.now().replace(tzinfo=None)
    with hub.transaction() as session:
        row = session.get(PartnerCatalogue, partner.name, with_for_update=True)
        changed = row is None or row.version != version
        if row is None:
            session.add(
                PartnerCatalogue(partner=partner.name, version=version, fetched_at=now, body=body, signature=signature)
            )
        else:
            row.version, row.fetched_at, row.body, row.signature = version, now, body, signature
    hub.partner_lists_current(force=True)
    return version, len(got.answer.payload["items"]), changed


def _last_answer(hub: Hub, answer_id: str) -> tuple[str, str]:
    from hub.storage.tables import MessageLogEntry

    with hub.sessions() as session:
        entry = session.scalars(
            select(MessageLogEntry).where(MessageLogEntry.message_id == answer_id).order_by(MessageLogEntry.seq.desc())
        ).first()
        return entry.body, entry.signature or ""


def ensure_fresh(hub: Hub, subject_code: str) -> None:
    """Before intake of a partner's item (or a 多地联办 bundle with one): refresh that partner's
    list if it is older than allowed and the partner answers in time; never fails intake."""
    hub.partner_lists_current()
    subject = hub.catalog.subject(subject_code)
    partners = {subject_code.split(":", 1)[0]} if ":" in subject_code else set()
    if subject is not None:
        partners |= {i.partner for i in hub.catalog.items_of(subject) if i.partner}
    max_age = timedelta(seconds=hub.settings.exchange.catalogue_max_age_seconds)
    for name in partners:
        partner = hub.partners.by_name.get(name)
        if partner is None:
            continue
        with hub.sessions() as session:
            fetched = session.scalar(select(PartnerCatalogue.fetched_at).where(PartnerCatalogue.partner == name))
        if fetched is not None and hub.now().replace(tzinfo=None) - fetched <= max_age:
            continue
        try:
            sync(hub, partner, timeout=hub.settings.exchange.catalogue_fetch_seconds)
        except HubError as exc:
            logger.warning("exchange: %s item list not refreshed before intake: %s", name, exc)


def stored_signature_ok(hub: Hub, partner: Partner, row: PartnerCatalogue) -> bool:
    """Is the stored list still the partner's, byte for byte (for `hub partners check`)?"""
    try:
        env = parse(row.body.encode("utf-8"))
    except Exception:
        return False
    key = partner.known_key(env.key_id)
    return key is not None and signature_ok(key.key, row.body.encode("utf-8"), row.signature, env.signature_algorithm)
