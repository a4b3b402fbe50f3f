"""Query parameters a route does not know are refused, not ignored: `?applicant=` instead of
`?applicant_name=` would otherwise bring back the unfiltered first page, which looks like an
answer. The known names are the route's own declared parameters, so the list cannot drift from
the signature (nor from the OpenAPI document, which is generated from it)."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.utils import get_flat_dependant
from fastapi.routing import APIRoute

from hub.errors import FieldError, InvalidInput, Reason


class UnknownParameter(InvalidInput):
    """A query parameter the route does not take (answered 400, naming each)."""


def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = {p.alias for p in get_flat_dependant(route.dependant).query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise UnknownParameter(
            [
                FieldError(
                    name,
                    Reason(
                        f"未知的查询参数 {name}，可用：{', '.join(sorted(known))}",
                        f"unknown query parameter; known: {', '.join(sorted(known))}",
                    ),
                )
                for name in unknown
            ]
        )
