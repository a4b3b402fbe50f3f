"""A catalogue form as JSON Schema (draft 2020-12): what the offline kit (政务背包) validates with in
the browser, generated from the same `FormField`s `hub.catalog.forms.validate_form` reads, so the
kit and the hub apply one set of rules rather than two written by hand.

The schema describes a form in its *normal shape*, the one the kit sends: texts trimmed, codes
folded (全角 digits, NFKC — `hub.text.fold_code`), ID numbers and credit codes upper-cased,
integers and decimals as JSON numbers, yes/no as booleans, blank values left out. `normalize`
here and `normalize` in hub/web/static/kit/forms.js produce it; the hub itself takes the looser
shapes too (it coerces as it checks), and tests/test_kit_schema.py shows the hub's verdict on a
raw form, on its normal shape and the schema's verdict on that shape agree.

Mapping (one field):
- text types (string, text, choice, phone, id_number, uscc, division) → `type: string` with the
  hub's character rule (`hub.text`) as a pattern: single-line fields refuse line breaks and tabs;
- min/max length → minLength/maxLength (code points, as Python's `len`), `pattern` → anchored
  pattern (`re.fullmatch` in the hub), options → `enum`;
- phone → the hub's PHONE pattern; division → the province prefixes (GB/T 2260) in a pattern;
  id_number / uscc → a pattern with the province prefixes plus the `format`s `id-number`
  (GB 11643: birth date, check digit) and `uscc` (GB 32100: check character), which the kit
  implements as small format functions and Python checks with `hub.ids`;
- integer → `type: integer`, decimal → `type: number`, both with minimum/maximum;
- date → `format: date` (YYYY-MM-DD); boolean → `type: boolean`;
- `required_if` → `if`/`then` on the condition fields' values;
- unknown fields → `additionalProperties: false`.

Known differences, both making the kit stricter than the hub (never looser): the hub also takes a
date as 20260921 or an ISO week date (Python's `date.fromisoformat`), the kit wants 2026-09-21
(its date input gives nothing else); a catalogue `pattern` is read by Python's `re` in the hub and
by JavaScript's RegExp (`u` flag) in the kit — keep catalogue patterns to the common subset
(ASCII classes like [0-9] rather than \\d, which Python reads as any Unicode digit)."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

from hub import text
from hub.catalog.forms import _FALSE, _TRUE, CODES, PHONE
from hub.catalog.models import FormField, Item
from hub.divisions import PROVINCES
from hub.ids import check_id_number, check_uscc

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TEXT_TYPES = frozenset({"string", "text", "choice", "phone", "id_number", "uscc", "division"})
_PROVINCE = "(?:" + "|".join(sorted(PROVINCES)) + ")"
_USCC_CHAR = "[0-9A-HJ-NPQRTUWXY]"  # GB 32100's 31 characters: no I, O, S, V, Z
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _refused_class(multiline: bool) -> str:
    """`hub.text`'s refused characters as a regex class both Python's `re` and JavaScript's
    RegExp (`u` flag) read alike: BMP ones as \\uXXXX escapes, the astral noncharacters
    (U+1FFFE … U+10FFFF) as literal characters (the two languages escape those differently)."""
    ranges = [(0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069)]
    ranges += [(0xD800, 0xDFFF), (0xFDD0, 0xFDEF), (0xFFFE, 0xFFFF)]
    if not multiline:
        ranges += [(0x09, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
    parts = [f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in sorted(ranges)]
    parts += [chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(1, (sys.maxunicode >> 16) + 1)]
    return "[" + "".join(parts) + "]"


SINGLE_LINE = "^[^" + _refused_class(False)[1:] + "*$"
MULTI_LINE = "^[^" + _refused_class(True)[1:] + "*$"
PHONE_PATTERN = PHONE.pattern  # ASCII digits written out: the same verdict in Python and JavaScript
ID_PATTERN = f"^{_PROVINCE}[0-9]{{15}}[0-9X]$"
USCC_PATTERN = f"^{_USCC_CHAR}{{2}}{_PROVINCE}[0-9]{{4}}{_USCC_CHAR}{{10}}$"
DIVISION_PATTERN = f"^{_PROVINCE}[0-9]{{4}}$"


def field_schema(f: FormField) -> dict[str, Any]:
    """One field's schema (see the module's mapping)."""
    s: dict[str, Any] = {"title": f.label}
    if f.label_en:
        s["x-title-en"] = f.label_en
    if f.type in TEXT_TYPES:
        s["type"] = "string"
        checks: list[dict[str, Any]] = [{"pattern": MULTI_LINE if f.type == "text" else SINGLE_LINE}]
        if f.type == "choice":
            s["enum"] = list(f.options or [])
        elif f.type == "phone":
            checks.append({"pattern": PHONE_PATTERN})
        elif f.type == "id_number":
            checks.append({"pattern": ID_PATTERN})
            s["format"] = "id-number"
        elif f.type == "uscc":
            checks.append({"pattern": USCC_PATTERN})
            s["format"] = "uscc"
        elif f.type == "division":
            checks.append({"pattern": DIVISION_PATTERN})
        if f.min_length is not None:
            s["minLength"] = f.min_length
        if f.max_length is not None:
            s["maxLength"] = f.max_length
        if f.pattern:
            checks.append({"pattern": f"^(?:{f.pattern})$"})  # the hub's re.fullmatch
        s["allOf"] = checks
    elif f.type in ("integer", "decimal"):
        s["type"] = "integer" if f.type == "integer" else "number"
        if f.min is not None:
            s["minimum"] = int(f.min) if f.min == int(f.min) else f.min
        if f.max is not None:
            s["maximum"] = int(f.max) if f.max == int(f.max) else f.max
    elif f.type == "date":
        s["type"] = "string"
        s["format"] = "date"
    elif f.type == "boolean":
        s["type"] = "boolean"
    else:  # pragma: no cover - FieldType is a closed Literal; a new type must be mapped here
        raise AssertionError(f"unmapped field type {f.type}")
    if f.type == "choice" and f.options:
        s["x-options"] = list(f.options)
    return s


def _condition_value(f: FormField | None, wanted: str) -> tuple[bool, Any]:
    """The JSON value a normal-shape form holds when the hub's `str(value) == wanted`; (False, None)
    when no such value exists (the condition can never hold, so no `if` is needed)."""
    if f is None or f.type in TEXT_TYPES or f.type == "date":
        return True, wanted
    if f.type == "integer":
        return (True, int(wanted)) if _INTEGER.fullmatch(wanted) and str(int(wanted)) == wanted else (False, None)
    if f.type == "boolean":
        return (True, wanted == "True") if wanted in ("True", "False") else (False, None)
    if f.type == "decimal" and _NUMBER.fullmatch(wanted):
        value = _number(wanted)
        return (True, value) if str(value) == wanted else (False, None)
    return False, None


def form_schema(fields: Sequence[FormField], *, title: str | None = None) -> dict[str, Any]:
    """The JSON Schema of a form (a normal-shape object of its fields)."""
    known = {f.name: f for f in fields}
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "type": "object",
        "properties": {f.name: field_schema(f) for f in fields},
        "required": [f.name for f in fields if f.required],
        "additionalProperties": False,
    }
    if title:
        schema["title"] = title
    conditions = []
    for f in fields:
        if f.required or not f.required_if:
            continue
        props: dict[str, Any] = {}
        for name, wanted in f.required_if.items():
            ok, value = _condition_value(known.get(name), wanted)
            if not ok:
                break
            props[name] = {"const": value}
        else:
            conditions.append({"if": {"properties": props, "required": list(props)}, "then": {"required": [f.name]}})
    if conditions:
        schema["allOf"] = conditions
    return schema


def item_schema(item: Item) -> dict[str, Any]:
    return form_schema(item.form, title=f"{item.code} {item.name}")


def _number(v: str) -> int | float:
    return int(v) if _INTEGER.fullmatch(v) else float(v)


def normalize(fields: Sequence[FormField], data: dict[str, Any]) -> dict[str, Any]:
    """A form in the normal shape the schema describes (forms.js's `normalize` does the same).
    Only the shape changes: a value the hub would refuse stays refused."""
    known = {f.name: f for f in fields}
    out: dict[str, Any] = {}
    for name, value in data.items():
        f = known.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            t = f.type if f else "string"
            v = text.fold_code(value) if t in CODES else value.strip()
            if not v:
                continue
            if t in ("id_number", "uscc"):
                v = v.upper()
            elif t == "integer" and _INTEGER.fullmatch(v):
                value = int(v)
                out[name] = value
                continue
            elif t == "decimal" and _NUMBER.fullmatch(v):
                out[name] = _number(v)
                continue
            elif t == "boolean" and v.lower() in _TRUE | _FALSE:
                out[name] = v.lower() in _TRUE
                continue
            out[name] = v
        else:
            out[name] = value
    return out


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def format_checker():  # -> jsonschema.FormatChecker (imported here: only tests and checks need it)
    """The formats the schemas name, checked in Python with the hub's own functions."""
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    checker.checks("id-number")(lambda v: not isinstance(v, str) or check_id_number(v) is None)
    checker.checks("uscc")(lambda v: not isinstance(v, str) or check_uscc(v) is None)
    checker.checks("date")(_is_date)
    return checker


def validator(schema: dict[str, Any]):  # -> jsonschema.Draft202012Validator
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema, format_checker=format_checker())
