"""The licence library as staff see it: listing and reading within the caller's scope. One
implementation for the web, the API and the CLI (revocation, which writes on the application's
chain, is hub.applications.licences.revoke).

Scope: an officer sees the licences their department issued; supervisors, ops and the system
see every licence (supervisors and ops with ID numbers masked); a front desk (teller, clerk,
enclave clerk) looks a holder's licences up by the holder's full ID number only, as intake
does; an applicant sees their own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hub.errors import FieldError, InvalidInput, NotFound
from hub.ids import mask_id
from hub.licences.library import status
from hub.licences.numbering import number_problem
from hub.lifecycle import Role
from hub.storage.tables import Application, Licence

if TYPE_CHECKING:
    from hub.applications.models import Actor

FRONT_DESK = (Role.teller, Role.clerk, Role.enclave_clerk)
MAX_REASON = 500
STATUS_ZH = {"valid": "有效", "revoked": "已注销", "expired": "已过期", "not_yet_valid": "未生效"}


def scoped(stmt: Select, actor: Actor, holder_id: str | None = None) -> Select:
    """`stmt` over licences, narrowed to what `actor` may see."""
    if actor.role is Role.officer:
        return stmt.where(Licence.issuer == (actor.department or ""))
    if actor.role in (Role.supervisor, Role.ops, Role.system):
        return stmt
    if actor.role in FRONT_DESK and holder_id:
        return stmt.where(Licence.holder_id == holder_id)
    if actor.role is Role.applicant and actor.applicant_id:
        return stmt.where(Licence.holder_id == actor.applicant_id)
    return stmt.where(Licence.id.is_(None))  # nothing


def find_licences(
    session: Session,
    actor: Actor,
    *,
    holder_id: str | None = None,
    type_code: str | None = None,
    limit: int = 200,
) -> list[Licence]:
    holder_id = (holder_id or "").strip().upper() or None  # as stored: upper case (an ID's X, a credit code)
    if actor.role in FRONT_DESK and not holder_id:
        raise InvalidInput(
            [FieldError.of("holder_id", "请输入持证人的完整证件号码", "give the holder's full ID number")]
        )
    stmt = scoped(select(Licence), actor, holder_id)
    if holder_id:
        stmt = stmt.where(Licence.holder_id == holder_id)
    if type_code:
        stmt = stmt.where(Licence.type_code == type_code)
    return list(session.scalars(stmt.order_by(Licence.issued_on.desc(), Licence.id.desc()).limit(limit)))


def get_licence(session: Session, number: str, actor: Actor, *, for_update: bool = False) -> Licence:
    """A licence by number within the caller's scope (another department's is NotFound: the same
    as one that does not exist)."""
    if problem := number_problem(number):
        raise InvalidInput([FieldError("number", problem)])
    stmt = select(Licence).where(Licence.number == number)
    if actor.role in FRONT_DESK:  # a desk reads the licences of the applications it took
        taken = select(Application.number).where(Application.desk_code == (actor.desk or ""))
        stmt = stmt.where(Licence.application_number.in_(taken))
    else:
        stmt = scoped(stmt, actor)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalars(stmt).first()
    if found is None:
        raise NotFound(f"证照 {number} 不存在 (no such licence)")
    return found


def view(licence: Licence, actor: Actor, today: Any) -> dict[str, Any]:
    """A licence as staff see it (API, CLI, pages)."""
    now = status(licence, today)
    # full ID numbers for those handling cases in their scope (hub.applications.scope.may_reveal_ids:
    # not supervisors and ops), and not for a desk looking a holder up
    reveal = actor.role not in (Role.supervisor, Role.ops, *FRONT_DESK)
    return {
        "number": licence.number,
        "type_code": licence.type_code,
        "type_name": licence.type_name,
        "holder_name": licence.holder_name,
        "holder_id": licence.holder_id if reveal else mask_id(licence.holder_id),
        "holder_id_type": licence.holder_id_type,
        "issuer": licence.issuer,
        "issuer_name": licence.issuer_name,
        "issued_on": licence.issued_on.isoformat(),
        "valid_from": licence.valid_from.isoformat(),
        "valid_until": licence.valid_until.isoformat() if licence.valid_until else None,
        "status": now,
        "status_zh": STATUS_ZH[now],
        "revoked_at": licence.revoked_at.isoformat() if licence.revoked_at else None,
        "revocation_reason": licence.revocation_reason,
        "application_number": licence.application_number,
        "fields": [
            [label, mask_id(value) if not reveal and label and value == licence.holder_id else value]
            for label, value in (licence.data or {}).get("fields", [])
        ],
        "pdf": bool(licence.sha256),
    }


def may_revoke(actor: Actor, licence: Licence) -> bool:
    """The issuing department's officer, or the hub itself (the CLI's `--role system`)."""
    return actor.role is Role.system or (actor.role is Role.officer and actor.department == licence.issuer)


def of_application(session: Session, number: str, actor: Actor, today: Any) -> list[dict[str, Any]]:
    """The licences an application issued, for its page (the caller may read the application)."""
    found = session.scalars(select(Licence).where(Licence.application_number == number).order_by(Licence.id))
    return [view(lic, actor, today) for lic in found]
