"""Reading the licence library: a holder's licences and a licence's status on a day. Intake
(licences instead of paper) and the public page both read through here."""

from __future__ import annotations

from datetime import date
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.storage.tables import Licence

LicenceStatus = Literal["valid", "revoked", "expired", "not_yet_valid"]


def status_on(recorded: str, valid_from: date | None, valid_until: date | None, today: date) -> str:
    """What a licence is worth on `today`, ours or a department's: the issuer's word first
    (revoked, suspended …), then the validity dates."""
    if recorded != "valid":
        return recorded
    if valid_from is not None and valid_from > today:
        return "not_yet_valid"
    if valid_until is not None and valid_until < today:
        return "expired"
    return "valid"


def status(licence: Licence, today: date) -> LicenceStatus:
    """What one of our licences is worth on `today` (its status is valid or revoked)."""
    return status_on(licence.status, licence.valid_from, licence.valid_until, today)  # type: ignore[return-value]


def find(session: Session, holder_id: str, type_code: str | None = None) -> list[Licence]:
    """A holder's licences (of one type, when given), newest first. `holder_id` is the full
    resident ID or credit code, as the caller verified it."""
    q = select(Licence).where(Licence.holder_id == holder_id)
    if type_code is not None:
        q = q.where(Licence.type_code == type_code)
    return list(session.scalars(q.order_by(Licence.issued_on.desc(), Licence.id.desc())))
