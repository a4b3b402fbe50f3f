"""The REST list and `hub apps list`: the one set of list filters (hub.applications.search, the
same the web list and the inbox use) and how many rows to answer. Filtered and ordered in the
database within the caller's scope, newest first.

An ID number (or credit code) is matched whole against the stored, folded key — never a part of
it: a list must not become a way to probe ID numbers digit by digit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from sqlalchemy.orm import Session

from hub.applications.models import Actor
from hub.applications.search import ListFilter, find
from hub.errors import FieldError, InvalidInput, Reason
from hub.storage.tables import Application

MAX_LIMIT = 500


@dataclass(frozen=True)
class ListQuery:
    filter: ListFilter
    limit: int = 100

    @classmethod
    def parse(cls, *, limit: int = 100, **params: Any) -> ListQuery:
        """The filters as given (None: not given), checked and folded by the shared rule; every
        field at fault named at once."""
        errors: list[FieldError] = []
        try:
            found = ListFilter.parse(params)
        except InvalidInput as exc:
            errors += exc.errors
        if not 1 <= limit <= MAX_LIMIT:
            errors.append(
                FieldError("limit", Reason(f"应在 1 到 {MAX_LIMIT} 之间", f"must be between 1 and {MAX_LIMIT}"))
            )
        if errors:
            raise InvalidInput(errors)
        return cls(found, limit)


def find_applications(session: Session, actor: Actor, query: ListQuery, tz: tzinfo) -> list[Application]:
    """The newest applications in the caller's scope that match every filter given."""
    return find(session, actor, query.filter, tz, limit=query.limit)
