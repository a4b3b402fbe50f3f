"""Finding applications in a list: by state, desk, number, the applicant's name or full ID
number, or one search box (`q`) that tries all three. One rule for the REST list and
`hub apps list`: filtered and ordered in the database within the caller's scope, newest first.

An ID number (or credit code) is matched whole against the stored, folded key — never a part of
it: a list must not become a way to probe ID numbers digit by digit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from hub.applications.models import Actor
from hub.applications.scope import scoped
from hub.errors import FieldError, InvalidInput, Reason
from hub.lifecycle import State
from hub.storage.tables import Application
from hub.text import fold_code

MAX_LIMIT = 500
FULL_ID = re.compile(r"[0-9A-Z]{18}")  # a resident ID number or a unified social credit code
STATES = [s.value for s in State]


def full_id(value: str) -> str | None:
    """`value` as the ID key is stored (全角 folded, x upper-cased) if it is a whole one, else None."""
    folded = fold_code(value).upper()
    return folded if FULL_ID.fullmatch(folded) else None


@dataclass(frozen=True)
class ListQuery:
    state: str | None = None
    desk: str | None = None
    number: str | None = None
    applicant_name: str | None = None
    applicant_id: str | None = None
    q: str | None = None
    limit: int = 100

    @classmethod
    def parse(
        cls,
        *,
        state: str | None = None,
        desk: str | None = None,
        number: str | None = None,
        applicant_name: str | None = None,
        applicant_id: str | None = None,
        q: str | None = None,
        limit: int = 100,
    ) -> ListQuery:
        """The filters as given, checked and folded; every field at fault named at once."""
        errors: list[FieldError] = []
        state, desk = (state or "").strip() or None, (desk or "").strip() or None
        number = fold_code(number) or None if number else None
        applicant_name = applicant_name.strip() or None if applicant_name else None  # names kept as written
        q = q.strip() or None if q else None
        if state is not None and state not in STATES:
            errors.append(
                FieldError.of(
                    "state", f"未知的状态 {state}，可选 {', '.join(STATES)}", f"unknown state; one of {STATES}"
                )
            )
        if applicant_id is not None:
            folded = full_id(applicant_id)
            if folded is None:
                errors.append(
                    FieldError.of(
                        "applicant_id",
                        "请填写完整的 18 位证件号码或统一社会信用代码（不支持部分号码查询）",
                        "a whole 18-character ID number or credit code (no partial search)",
                    )
                )
            applicant_id = folded
        for name, value, most in (("desk", desk, 64), ("number", number, 32), ("applicant_name", applicant_name, 200)):
            if value is not None and len(value) > most:
                errors.append(FieldError.of(name, f"最多 {most} 个字符", f"at most {most} characters"))
        if q is not None and len(q) > 200:
            errors.append(FieldError.of("q", "最多 200 个字符", "at most 200 characters"))
        if not 1 <= limit <= MAX_LIMIT:
            errors.append(
                FieldError("limit", Reason(f"应在 1 到 {MAX_LIMIT} 之间", f"must be between 1 and {MAX_LIMIT}"))
            )
        if errors:
            raise InvalidInput(errors)
        return cls(state, desk, number, applicant_name, applicant_id, q, limit)


def find_applications(session: Session, actor: Actor, query: ListQuery) -> list[Application]:
    """The newest applications in the caller's scope that match every filter given."""
    stmt = scoped(select(Application), actor).options(selectinload(Application.parts))
    if query.state:
        stmt = stmt.where(Application.state == query.state)
    if query.desk:
        stmt = stmt.where(Application.desk_code == query.desk)
    if query.number:
        stmt = stmt.where(Application.number == query.number)
    if query.applicant_name:
        stmt = stmt.where(Application.applicant_name == query.applicant_name)
    if query.applicant_id:
        stmt = stmt.where(Application.applicant_id == query.applicant_id)
    if query.q:
        # the search box: a number, a name, or a whole ID number — each an indexed equality
        tried = [Application.number == fold_code(query.q), Application.applicant_name == query.q]
        if (whole := full_id(query.q)) is not None:
            tried.append(Application.applicant_id == whole)
        stmt = stmt.where(or_(*tried))
    return list(session.scalars(stmt.order_by(Application.id.desc()).limit(query.limit)))
