"""证照编号: licence numbers in the spirit of GB/T 36903 (e-licence identifiers) — the type code,
the issuer's 6-digit division code, the year of issue, a per-(type, division, year) sequence and
one check character, e.g. LNYDZ3303292026000017 + check. The check character is ISO/IEC 7064
MOD 37,36 (the hybrid system over 0-9A-Z) computed over everything before it, so a mistyped or
swapped character is caught when a number is read back (`number_problem`)."""

from __future__ import annotations

import re

from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from hub.errors import Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUMBER = re.compile(r"^(?P<type>[A-Z]{2,10}?)(?P<division>\d{6})(?P<year>\d{4})(?P<seq>\d{4,9})(?P<check>[0-9A-Z])$")

# the application numbers' counter (hub/applications/numbers.py), with a name of our own
_BUMP = sql(
    "INSERT INTO counters (name, value) VALUES (:name, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value"
)


def check_char(body: str) -> str:
    """ISO/IEC 7064 MOD 37,36 check character of `body` (0-9, A-Z)."""
    m = len(ALPHABET)  # 36
    p = m
    for c in body.upper():
        value = ALPHABET.index(c)
        s = (p + value) % m or m
        p = (s * 2) % (m + 1)
    return ALPHABET[(m + 1 - p) % m]


def is_valid(number: str) -> bool:
    return bool(number) and all(c in ALPHABET for c in number) and check_char(number[:-1]) == number[-1]


def number_problem(number: str) -> Reason | None:
    """Why `number` is not a licence number, or None."""
    if not NUMBER.match(number or ""):
        return Reason("证照编号格式不符", "not a licence number: TYPE + division + year + sequence + check")
    if not is_valid(number):
        return Reason("证照编号校验位错误", "wrong check character")
    return None


def next_number(session: Session, type_code: str, division: str, year: int, digits: int) -> str:
    """The next number of a type for an issuer's division and year, from a counter row bumped in
    the issuing transaction (so a rolled-back issue gives its number back)."""
    seq = session.execute(_BUMP, {"name": f"licence:{type_code}:{division}:{year}"}).scalar_one()
    body = f"{type_code}{division}{year}{seq:0{digits}d}"
    return body + check_char(body)
