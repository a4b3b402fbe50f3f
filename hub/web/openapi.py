"""The OpenAPI schema at /openapi.json says what the API really answers on errors.

FastAPI declares its own 422 body (`HTTPValidationError`) on every route with parameters and
nothing else; the hub answers every error, 422 included, as `ErrorBody` ({detail, errors}; see
`hub.web.app`). Here each operation gets the error statuses it can give, all as `ErrorBody`:

- 401 and 403 when it needs a caller (a bearer token or a session), 403 also for CSRF;
- 404 when it names something in its path, or in its body (a catalogue item, a token);
- 409 for writes that act on an application's or a row's state;
- 400 and 413 for writes with a body (a body the hub cannot read at all; too large);
- 400 also for routes that refuse unknown query parameters (`hub.web.query_params`);
- 422 when it takes parameters or a body.

tests/test_openapi.py runs schemathesis with its response conformance checks: an answer this
schema does not declare fails it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from hub.web.deps import optional_principal
from hub.web.query_params import refuse_unknown_query


class ErrorItem(BaseModel):
    field: str = Field(description="the field, parameter, file or header at fault")
    zh: str
    en: str


class ErrorBody(BaseModel):
    """Every error the API answers: a message (Chinese, then English in brackets) and the fields
    at fault, if any."""

    detail: str
    errors: list[ErrorItem] = Field(description="one entry per field at fault; empty when no field is")


DESCRIPTIONS = {
    "400": "请求无法处理 (bad request)",
    "401": "未登录或令牌无效 (no valid token or session)",
    "403": "无权访问、CSRF 校验失败或需要授权 (forbidden)",
    "404": "不存在或不在调用者的范围内 (not found, or not the caller's)",
    "409": "当前状态下不允许该操作 (not allowed in the current state)",
    "413": "上传内容过大 (request body too large)",
    "422": "提交的内容有误，errors 逐项说明 (invalid input; errors names each field)",
}


def _needs_caller(dependant: Dependant) -> bool:
    if dependant.call is optional_principal:
        return True
    return any(_needs_caller(d) for d in dependant.dependencies)


def _statuses(route: APIRoute, method: str, operation: dict[str, Any]) -> list[str]:
    has_path = "{" in route.path_format
    has_body = "requestBody" in operation
    write = method in ("post", "put", "patch", "delete")
    codes = set()
    if _needs_caller(route.dependant):
        codes |= {"401", "403"}
    if has_path or has_body:
        codes.add("404")
    if write and has_path:
        codes.add("409")
    if has_body:
        codes |= {"400", "413"}
    if any(d.call is refuse_unknown_query for d in route.dependant.dependencies):
        codes.add("400")
    if operation.get("parameters") or has_body:
        codes.add("422")
    return sorted(codes)


def document(app: FastAPI) -> dict[str, Any]:
    """The schema, made once per process (FastAPI's own cache), with the real error answers."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorItem, ErrorBody):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        model_schema.pop("$defs", None)  # ErrorItem is a component of its own
        components[model.__name__] = model_schema
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, never answered
        components.pop(name, None)
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    # by path and method: GET and POST /applications are different routes with different needs
    routes = {
        (r.path_format, m.lower()): r
        for r in app.routes
        if isinstance(r, APIRoute) and r.include_in_schema
        for m in r.methods
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            route = routes.get((path, method))
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if route is None:
                continue
            for code in _statuses(route, method, operation):
                responses[code] = {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": ref}}}
    app.openapi_schema = schema
    return schema
