"""Which characters the hub takes in text that people or systems send it: one rule for every
surface (web, API, CLI, batch) and every field.

Refused everywhere: C0 controls but TAB, LF and CR; DEL and the C1 controls; the bidi embedding,
override and isolate controls (U+202A–U+202E, U+2066–U+2069), which make a name or an address
read differently from what is stored; lone surrogates; noncharacters. PostgreSQL refuses NUL
(a 500 after the application number was taken), and XML 1.0 — the SOAP departments — refuses
the other controls, so a part holding one could never be delivered.

A single-line field (a name, an id, a reference) also refuses TAB, CR, LF and the Unicode line
and paragraph separators: they split it on a receipt, a CSV export or a department's screen.
Multi-line fields (a textarea, a note, a reason) keep TAB, CR and LF."""

from __future__ import annotations

import re
import sys
import unicodedata

from hub.errors import FieldError, Reason

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(sys.maxunicode + 1 >> 16)
)
_ALWAYS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff" + _NONCHARACTERS
_LINE_BREAKS = "\t\n\r\u2028\u2029"

MULTI_LINE = re.compile(f"[{_ALWAYS}]")
SINGLE_LINE = re.compile(f"[{_ALWAYS}{_LINE_BREAKS}]")
ANY_REFUSED = SINGLE_LINE  # refused in some field: a text without any needs no closer look


def _kind(ch: str) -> tuple[str, str]:
    cp = ord(ch)
    if ch in _LINE_BREAKS:
        return "换行符或制表符", "line break or tab"
    if 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069:
        return "双向文字控制符", "bidirectional control"
    if 0xD800 <= cp <= 0xDFFF:
        return "孤立代理项", "lone surrogate"
    if cp <= 0x9F:
        return "控制字符", "control character"
    return "非字符", "noncharacter"


def problem(value: str, *, multiline: bool = False) -> Reason | None:
    """Why `value` may not be stored in a field of this kind, or None."""
    found = (MULTI_LINE if multiline else SINGLE_LINE).search(value)
    if found is None:
        return None
    ch = found.group()
    zh, en = _kind(ch)
    at = found.start() + 1
    return Reason(
        f"第{at}个字符 U+{ord(ch):04X} 为{zh}，不允许填写",
        f"character {at} is U+{ord(ch):04X}, a {en}, which is not allowed",
    )


def check(field: str, value: str | None, *, multiline: bool = False) -> FieldError | None:
    """The field's error under the rule, or None (None and empty values pass)."""
    if not value:
        return None
    reason = problem(value, multiline=multiline)
    return FieldError(field, reason) if reason else None


def check_all(fields: dict[str, str | None], *, multiline: bool = False) -> list[FieldError]:
    """The errors of several fields of one kind, field name -> value."""
    return [e for name, value in fields.items() if (e := check(name, value, multiline=multiline))]


def clean(value: str, *, multiline: bool = True) -> str:
    """Text another system sent (a department's error or reason), made storable: each character
    the rule refuses becomes U+FFFD. What we receive is kept, not refused — and a NUL in it must
    not fail the transaction that records it (PostgreSQL refuses NUL in text)."""
    return (MULTI_LINE if multiline else SINGLE_LINE).sub("\ufffd", value)


def fold_code(value: str) -> str:
    """A code typed on a Chinese keyboard, as the checks read it: NFKC folds 全角 ０-９ and Ｘ
    to ASCII and the ideographic space to a space; then trimmed. For codes only (ID numbers,
    credit codes, phone numbers, division codes, numbers, dates) — free text is kept as written,
    full-width punctuation and all (“周岁，不符合” stays so). The same on every surface: the
    models and the form checks call it, not the web page."""
    return unicodedata.normalize("NFKC", value).strip()
