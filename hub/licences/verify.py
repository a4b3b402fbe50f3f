"""`hub licences verify FILE`: a licence PDF checked on the hub — its seals by hub.seals.verify_pdf
against the hub's trusted roots (SM2 seals included), then the standalone verifier's rules on
them (hub/licences/verify_licence.py: the record attached, sealed by its issuer), its attached
metadata against the library's record, and its status today (revocation, expiry) from the
library itself rather than a status list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from hub.context import Hub
from hub.licences.document import metadata
from hub.licences.library import status
from hub.licences.verify_licence import verdict
from hub.seals import SealCheck, trust_roots, verify_pdf
from hub.storage.tables import Licence


@dataclass
class Verification:
    verdict: str  # valid | revoked | expired | not_yet_valid | tampered | unknown
    number: str | None = None
    type_name: str | None = None
    issuer_name: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "number": self.number,
            "type_name": self.type_name,
            "issuer_name": self.issuer_name,
            "problems": self.problems,
        }


def _as_offline(check: SealCheck) -> dict[str, Any]:
    """A hub.seals check in the shape the standalone verifier's rules read."""
    return {
        "field": check.field,
        "signer": check.signer,
        "ok": check.ok,
        "problem": None if check.ok else ", ".join(check.problems) or "not valid",
    }


def verify_file(hub: Hub, pdf: bytes) -> Verification:
    roots = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in trust_roots(hub))
    seals = [_as_offline(c) for c in verify_pdf(hub, pdf)]
    offline, meta, problems = verdict(pdf, roots, None, hub.today(), seals=seals)
    if offline == "tampered" or meta is None:
        return Verification("tampered", problems=problems or ["no metadata"])
    number = str(meta.get("number") or "")
    with hub.sessions() as session:
        licence = session.scalars(select(Licence).where(Licence.number == number)).first()
        if licence is None:
            return Verification(
                "unknown", number, meta.get("type_name"), meta.get("issuer_name"), ["not in the library"]
            )
        expected = metadata(licence, str(meta.get("verify_url", "")))
        differ = sorted(k for k in expected if meta.get(k) != expected[k])
        if differ:
            return Verification(
                "tampered",
                number,
                licence.type_name,
                licence.issuer_name,
                [f"differs from the library: {', '.join(differ)}"],
            )
        now = status(licence, hub.today())
        return Verification(now, number, licence.type_name, licence.issuer_name)
