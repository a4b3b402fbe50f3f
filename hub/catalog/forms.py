"""Form data validated against a catalogue form: types, required fields and rules. Values from a
CLI or a CSV arrive as strings and are coerced; the cleaned data is JSON-ready."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from hub import text
from hub.catalog.models import FormField
from hub.divisions import division_problem
from hub.errors import FieldError, Reason
from hub.ids import check_id_number, check_uscc

MULTI_LINE = frozenset({"text"})  # the form's textarea fields; every other text field is one line
# ASCII digits only ([0-9], not \d: Python's \d takes any script's digits, e.g. ١٣٧…); full-width
# digits are folded to ASCII before this rule sees them. The one phone rule of every surface.
PHONE = re.compile(r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$")
_TRUE = {"true", "1", "yes", "是", "y"}
_FALSE = {"false", "0", "no", "否", "n"}


# field types that hold a code or a number, folded (hub.text.fold_code); the others are free text
CODES = frozenset({"phone", "id_number", "uscc", "division", "integer", "decimal", "date"})


def _coerce(f: FormField, raw: Any) -> tuple[Any, Reason | None]:
    t = f.type
    if isinstance(raw, str) and t in CODES:
        raw = text.fold_code(raw)  # 全角 digits from a Chinese keyboard, on every surface alike
    if t in ("string", "text", "choice", "phone", "id_number", "uscc", "division"):
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            return None, Reason("应为文本", "expected text")
        v = str(raw).strip()
        if reason := text.problem(v, multiline=t in MULTI_LINE):
            return None, reason
        if t == "choice" and v not in (f.options or []):
            return None, Reason(f"应为以下之一: {'、'.join(f.options or [])}", f"must be one of {f.options}")
        if t == "phone" and not PHONE.match(v):
            return None, Reason("电话号码格式不正确", "not a mainland phone number")
        if t == "id_number":
            v = v.upper()
            return v, check_id_number(v)
        if t == "uscc":
            v = v.upper()
            return v, check_uscc(v)
        if t == "division" and (p := division_problem(v)):
            return None, Reason(p, "not a division code")
        return v, None
    if t == "integer":
        if isinstance(raw, bool):
            return None, Reason("应为整数", "expected an integer")
        try:
            return int(str(raw).strip()), None
        except ValueError:
            return None, Reason("应为整数", "expected an integer")
    if t == "decimal":
        try:
            value = Decimal(str(raw).strip())
            if not value.is_finite():
                raise InvalidOperation
            return str(value), None
        except InvalidOperation:
            return None, Reason("应为数字", "expected a number")
    if t == "date":
        try:
            return (raw if isinstance(raw, date) else date.fromisoformat(str(raw).strip())).isoformat(), None
        except ValueError:
            return None, Reason("日期格式应为 YYYY-MM-DD", "expected a date YYYY-MM-DD")
    if t == "boolean":
        if isinstance(raw, bool):
            return raw, None
        s = str(raw).strip().lower()
        if s in _TRUE or s in _FALSE:
            return s in _TRUE, None
        return None, Reason("应为是或否", "expected true or false")
    raise AssertionError(f"unhandled field type {t}")


def _rules(f: FormField, value: Any) -> Reason | None:
    if isinstance(value, str) and f.type not in ("date", "decimal"):
        if f.min_length is not None and len(value) < f.min_length:
            return Reason(f"长度不少于{f.min_length}", f"at least {f.min_length} characters")
        if f.max_length is not None and len(value) > f.max_length:
            return Reason(f"长度不超过{f.max_length}", f"at most {f.max_length} characters")
        if f.pattern and not re.fullmatch(f.pattern, value):
            return Reason("格式不符合要求", f"does not match {f.pattern}")
    if f.type in ("integer", "decimal"):
        number = Decimal(str(value))
        if f.min is not None and number < Decimal(str(f.min)):
            return Reason(f"不得小于{f.min:g}", f"must be >= {f.min:g}")
        if f.max is not None and number > Decimal(str(f.max)):
            return Reason(f"不得大于{f.max:g}", f"must be <= {f.max:g}")
    return None


def _holds(condition: dict[str, str], data: dict[str, Any], known: dict[str, FormField]) -> bool:
    """Does every field named have the value given (as the form was sent, codes folded)?"""
    for name, wanted in condition.items():
        value = data.get(name)
        if isinstance(value, str):
            value = text.fold_code(value) if name in known and known[name].type in CODES else value.strip()
        if str(value) != wanted:
            return False
    return True


def validate_form(
    fields: Sequence[FormField], data: dict[str, Any], prefix: str = "form"
) -> tuple[dict[str, Any], list[FieldError]]:
    """Return (clean data, errors). Errors name `form.<field>` and say what is wrong."""
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    known = {f.name: f for f in fields}
    for name in sorted(set(data) - set(known)):
        errors.append(FieldError(f"{prefix}.{name}", Reason("表单中没有这个字段", "no such field in this form")))
    for f in fields:
        raw = data.get(f.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if f.required:
                errors.append(FieldError(f"{prefix}.{f.name}", Reason(f"{f.label}为必填项", "required")))
            elif f.required_if and _holds(f.required_if, data, known):
                when = "、".join(f"{known[k].label if k in known else k}为“{v}”" for k, v in f.required_if.items())
                errors.append(
                    FieldError(f"{prefix}.{f.name}", Reason(f"{when}时，{f.label}为必填项", "required in this case"))
                )
            continue
        value, reason = _coerce(f, raw)
        reason = reason or _rules(f, value)
        if reason:
            errors.append(FieldError(f"{prefix}.{f.name}", Reason(f"{f.label}: {reason.zh}", reason.en)))
        else:
            clean[f.name] = value
    return clean, errors
