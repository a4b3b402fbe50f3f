"""Identifiers citizens and companies present: GB 11643 resident ID numbers and GB 32100 unified
social credit codes. Each check returns None when valid, or a bilingual reason."""

from __future__ import annotations

import os
from datetime import date
from operator import mul

from hub.divisions import PROVINCES
from hub.errors import Reason

_ID_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
_ID_CHECK = "10X98765432"
_ID_ZERO = ord("0") * sum(_ID_WEIGHTS)

_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character for the first 17 (ASCII) digits."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError("17 ASCII digits expected")
    # the digits' byte values minus 48 each: a batch checks one number per record
    total = sum(map(mul, first17.encode("ascii"), _ID_WEIGHTS)) - _ID_ZERO
    return _ID_CHECK[total % 11]


def check_id_number(value: str, *, today: date | None = None) -> Reason | None:
    """Validate an 18-character resident identity number (公民身份号码). Reasons never repeat the
    number's digits: they end up in logs and error reports."""
    v = value.strip().upper()
    if len(v) != 18:
        return Reason(f"身份证号应为18位，实际{len(v)}位", f"must be 18 characters, got {len(v)}")
    if not v.isascii() or not v[:17].isdigit() or not (v[17].isdigit() or v[17] == "X"):  # isdigit alone takes "²", "١"
        return Reason("身份证号前17位应为数字，末位为数字或X", "17 digits then a digit or X expected")
    if v[:2] not in PROVINCES:
        return Reason("身份证号地址码不是有效的行政区划", "the address code is not a division")
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return Reason("身份证号出生日期无效", "the birth date is not a date")
    if born.year < 1900 or born > (today or date.today()):
        return Reason("身份证号出生日期超出范围", "the birth date is out of range")
    expected = id_check_digit(v[:17])
    if v[17] != expected:
        return Reason("身份证号校验码错误", f"wrong check digit: expected {expected}, got {v[17]}")
    return None


def uscc_check_char(first17: str) -> str:
    """GB 32100-2015 check character for the first 17 characters."""
    total = sum(_USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARSET[(31 - total % 31) % 31]


def check_uscc(value: str) -> Reason | None:
    """Validate an 18-character unified social credit code (统一社会信用代码)."""
    v = value.strip().upper()
    if len(v) != 18:
        return Reason(f"统一社会信用代码应为18位，实际{len(v)}位", f"must be 18 characters, got {len(v)}")
    bad = sorted({c for c in v if c not in _USCC_CHARSET})
    if bad:
        chars = "".join(bad)
        return Reason(f"统一社会信用代码含非法字符 {chars}", f"characters not allowed: {chars}")
    if not v[2:8].isdigit() or v[2:4] not in PROVINCES:
        return Reason(f"统一社会信用代码登记管理机关行政区划码 {v[2:8]} 无效", f"division {v[2:8]} invalid")
    expected = uscc_check_char(v[:17])
    if v[17] != expected:
        return Reason("统一社会信用代码校验码错误", f"wrong check character: expected {expected}, got {v[17]}")
    return None


def mask_id(value: str | None) -> str:
    """Mask an ID for lists and logs: first 4 and last 4 shown (3303**********123X)."""
    if not value:
        return ""
    v = value.strip()
    if len(v) <= 8:
        return "*" * len(v)
    return v[:4] + "*" * (len(v) - 8) + v[-4:]


def mask_name(name: str) -> str:
    """A person's name where the public may read it (the resident's status page, the public
    checks of notices and licences): the family name only, 林**. One rule for every page."""
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def uuid4_texts(n: int) -> list[str]:
    """`n` random (version 4) UUIDs as text, as `str(uuid.uuid4())` gives them, from one read of
    the system's random source: a batch needs one per part, and `uuid.UUID` is slow to build."""
    raw = bytearray(os.urandom(16 * n))
    texts = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = raw[i + 6] & 0x0F | 0x40  # version 4
        raw[i + 8] = raw[i + 8] & 0x3F | 0x80  # the RFC 4122 variant
        h = raw[i : i + 16].hex()
        texts.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return texts
