"""Declarative mappings for connectors: how a part becomes a department's message, and how a
department's answer becomes the hub's words. One language for both directions: JMESPath.

Why JMESPath (the `jmespath` package, the reference implementation behind the AWS CLI and
Ansible's `json_query`) over JSONPath: it has one written specification with a compliance suite
shared by its implementations, so an expression means the same thing in every tool ops may try it
in (`jp`, the AWS CLI, the online tester); JSONPath had no standard until RFC 9535 (2024) and its
Python implementations disagree on filters. JMESPath also has functions (`join`, `to_string`,
`length`, `starts_with`, …) and projections (`items[*].id`), and it never evaluates code.

**Templates** (request bodies, paths, headers, query parameters, SOAP messages, file names) are
YAML values: dicts and lists are kept as they are, and in each string leaf `{{ expression }}` is
replaced by what the expression finds in the context:

    body:
      caseType: "{{ part.item_code }}"             # a whole-string expression keeps its type
      applicant: {name: "{{ part.applicant_name }}", idNo: "{{ part.applicant_id }}"}
      title: "{{ part.item_title }}（{{ part.desk }}）"  # embedded: interpolated as text
      files: "{{ materials[*].{name: name, sha256: sha256, data: content} }}"
      source: tongban                               # no braces: a literal

Values are data, never code: the result is a structure serialised by the connector (JSON, XML,
a file) — a resident's name with quotes or angle brackets stays a name. In a URL path each
interpolated value is percent-encoded.

**Selectors** read an answer: `remote_id: data.caseNo`, `status: result.state`. A selector that
finds nothing where a value is required is a delivery error naming the connection file, its line
and the expression. **Status maps** turn a department's vocabulary into the hub's; a value that is
not in the map is an error naming the value (booleans and numbers are looked up as YAML writes
them: `true`, `false`, `3`)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import jmespath
import jmespath.exceptions
from pydantic import AfterValidator, BeforeValidator

from hub.connectors import DeliveryError, MaterialAccess, MaterialDelivery, PartMessage

HubStatus = Literal["received", "in_review", "approved", "denied", "supplement_requested"]
HUB_STATUSES: tuple[str, ...] = HubStatus.__args__  # type: ignore[attr-defined]

Where = str | Callable[[], str]  # a place in a connection file, e.g. "connections/x.yaml:12"

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class MappingError(DeliveryError):
    """A mapping did not fit a message: not retryable (the same part and answer fail the same way
    until ops change the mapping or the department its answer)."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


def _place(where: Where) -> str:
    return where() if callable(where) else where


def _compile(source: str) -> jmespath.parser.ParsedResult:
    try:
        return jmespath.compile(source.strip())
    except jmespath.exceptions.JMESPathError as exc:
        # ParseError's str() draws a caret under the expression: one line is enough here
        raise ValueError(
            f"无效的 JMESPath 表达式 (invalid expression) {source.strip()!r}: {_first_line(exc)}"
        ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_expression(value: str) -> str:
    _compile(value)
    return value


def _check_template(value: Any) -> Any:
    for text in _strings(value):
        for source in _EXPR.findall(text):
            _compile(source)
    return value


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# pydantic field types: an expression or template that does not compile is a configuration error
# with its file and line, when the connection is loaded — not at the first delivery.
Expression = Annotated[str, AfterValidator(_check_expression)]
Template = Annotated[Any, AfterValidator(_check_template)]


def _status_key(value: Any) -> str:
    """A department's status as the key it has in a status map (YAML keys `true`, `3` included)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return str(value).strip()


def _status_keys(value: Any) -> Any:
    return {_status_key(k): v for k, v in value.items()} if isinstance(value, Mapping) else value


StatusMap = Annotated[dict[str, HubStatus], BeforeValidator(_status_keys)]


def search(expression: str, data: Any, where: Where, *, required: bool = False) -> Any:
    """What `expression` finds in `data`; None for nothing, or an error naming the place when
    `required`."""
    try:
        found = _compile(expression).search(data)
    except ValueError as exc:
        raise MappingError(f"{_place(where)}: {exc}") from None
    except jmespath.exceptions.JMESPathError as exc:  # e.g. a function given the wrong type
        raise MappingError(f"{_place(where)}: 表达式 {expression!r} 求值失败 (failed): {_first_line(exc)}") from None
    if required and (found is None or found == "" or found == []):
        raise MappingError(f"{_place(where)}: 应答中 {expression!r} 无值 (the answer has no value there)")
    return found


def status(raw: Any, status_map: Mapping[str, str], where: Where) -> str:
    """The hub's status for a department's `raw` status."""
    if raw is None:
        raise MappingError(f"{_place(where)}: 应答没有状态 (no status in the answer)")
    key = _status_key(raw)
    if key in status_map:
        return status_map[key]
    if not status_map and key in HUB_STATUSES:  # a system that already speaks the hub's words
        return key
    raise MappingError(f"{_place(where)}: 未映射的状态 unmapped status {_shown(raw)} (add it to status_map)")


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:80]


def render(template: Any, context: Any, where: Where, *, quote_values: bool = False) -> Any:
    """`template` with every `{{ expression }}` replaced by what it finds in `context`. A string
    that is a single expression keeps the found value's type; embedded ones become text (None as
    ""). With `quote_values`, embedded values are percent-encoded (a URL path)."""
    if isinstance(template, str):
        whole = _EXPR.fullmatch(template.strip()) if template.strip().startswith("{{") else None
        if whole and quote_values is False and "{{" not in whole.group(1):
            return _plain(search(whole.group(1), context, where))
        return _EXPR.sub(lambda m: _text(search(m.group(1), context, where), quote_values), template)
    if isinstance(template, Mapping):
        return {
            render(k, context, where, quote_values=quote_values): render(v, context, where, quote_values=quote_values)
            for k, v in template.items()
        }
    if isinstance(template, list):
        return [render(v, context, where, quote_values=quote_values) for v in template]
    return template


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _text(value: Any, quote_values: bool) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(_plain(value))
    return quote(text, safe="") if quote_values else text


def expressions(template: Any) -> list[str]:
    """Every expression a template uses (for `hub connectors render` and tests)."""
    return [source.strip() for text in _strings(template) for source in _EXPR.findall(text)]


def part_context(
    part: PartMessage,
    delivery: MaterialDelivery | None = None,
    access: MaterialAccess | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What templates see for one part:

    - `part`: the part as the hub sends it (`part_id`, `application_number`, `item_code`,
      `item_title`, `department`, `channel`, `desk`, `collecting_division`, `deciding_division`,
      `applicant_type`, `applicant_name`, `applicant_id`, `form`, `accepted_on`, `due_date`, and
      `licences`: materials taken as 电子证照 by reference, each `{material, type_code, number,
      issuer, valid_until, source, checked_at}`);
    - `materials`: each `{name, filename, sha256, media_type, size}`, plus `content` (base64)
      in `inline` mode or `url` (a signed link) in `pull` mode;
    - whatever the connector adds (`remote_id` for a status request, `now`)."""
    data = part.model_dump(mode="json")
    materials = data.pop("materials")
    mode = delivery.mode if delivery else "none"
    for ref, entry in zip(part.materials, materials, strict=True):
        if mode == "inline":
            assert access is not None and delivery is not None
            if ref.size > delivery.max_inline_bytes:
                raise MappingError(
                    f"材料 {ref.name} 为 {ref.size} 字节，超过 max_inline_bytes {delivery.max_inline_bytes} "
                    "(too large to send inline: raise the limit or use multipart/pull)"
                )
            entry["content"] = base64.b64encode(access.read(ref)).decode()
        elif mode == "pull":
            assert access is not None and delivery is not None
            entry["url"] = access.url(ref, part.part_id, delivery.link_ttl_hours)
    return {"part": data, "materials": materials, **extra}
