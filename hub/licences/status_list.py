"""The signed status list (a CRL for licences): which licences are revoked, as of when, signed by
the hub's own seal key (hub.seals, HUB_AUTHORITY) through hub.crypto, with the seal's certificate
and chain inside, so an agency that trusts the county CA's root checks it offline
(hub/licences/verify_licence.py). Published at GET /l/status.json and by `hub licences
export-status`. Expiry needs no list: each licence's metadata carries `valid_until`.

It names revoked licence numbers and days only: nobody's name or ID."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from hub.context import Hub
from hub.licences.verify_licence import STATUS_FORMAT, canonical
from hub.rollups import local_day
from hub.seals import HUB_AUTHORITY, load_seal
from hub.storage.tables import Licence


def payload(hub: Hub) -> dict[str, Any]:
    with hub.sessions() as session:
        rows = session.execute(
            select(Licence.number, Licence.revoked_at).where(Licence.status == "revoked").order_by(Licence.number)
        ).all()
    return {
        "format": STATUS_FORMAT,
        "publisher": f"{hub.settings.county.name}政务服务中心",
        "issued_at": hub.now().isoformat(timespec="seconds"),
        "revoked": [
            {"number": n, "revoked_on": local_day(at, hub.settings.tz).isoformat() if at else None} for n, at in rows
        ],
    }


def signed(hub: Hub) -> dict[str, Any]:
    """The status list as published: payload and its signature (algorithm recorded)."""
    body = payload(hub)
    seal = load_seal(hub, HUB_AUTHORITY)
    pem = serialization.Encoding.PEM
    return {
        "payload": body,
        "signature": {
            "algorithm": seal.algorithm,
            "key_id": seal.key.key_id,
            "value": base64.b64encode(seal.key.sign(canonical(body))).decode(),
            "certificate": seal.certificate.public_bytes(pem).decode(),
            "chain": [c.public_bytes(pem).decode() for c in seal.chain],
        },
    }
