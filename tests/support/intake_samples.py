"""Intake records and batches for tests and benchmarks (codes from the shipped catalogue)."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from tests.conftest import PDF, make_id

MEDICAL_FILING = "GG00301001"  # 基本医疗保险异地就医备案: bank and enclave channels, routed to yibao-rest
HALL_ONLY = "QR00702001"  # not delegated to bank outlets


def person_id(i: int) -> str:
    return make_id("330329", date(1960, 1, 1) + timedelta(days=i % 15000), f"{i % 900 + 100:03d}")


def record(i: int, *, with_materials: bool = True, **changes: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "record_id": f"XH-{i:07d}",
        "subject": MEDICAL_FILING,
        "applicant": {"type": "person", "name": f"申请人{i}", "id": person_id(i)},
        "form": {
            "destination_division": "330105",
            "residence_address": "杭州市拱墅区湖墅南路88号",
            "filing_start_date": "2026-12-01",
            "contact_phone": "13857712345",
        },
        "materials": [],
        "pre_review": {"by": "柜员王芳", "at": "2026-11-23T09:30:00+08:00"},
    }
    if with_materials:
        r["materials"] = [
            {"name": "居民身份证", "file": f"materials/{i}-id.pdf", "sha256": sha(material(i, "id"))},
            {"name": "异地长期居住个人承诺书", "file": f"materials/{i}-p.pdf", "sha256": sha(material(i, "p"))},
        ]
    r.update(changes)
    return r


def files_for(records: list[dict[str, Any]]) -> dict[str, bytes]:
    """The material files the sample records reference (materials/<i>-<kind>.pdf)."""
    files = {}
    for r in records:
        for m in r.get("materials", []):
            stem = m["file"].removeprefix("materials/").removesuffix(".pdf")
            i, _, kind = stem.partition("-")
            if i.isdigit() and kind:
                files[m["file"]] = material(int(i), kind)
    return files


def material(i: int, kind: str) -> bytes:
    return PDF + f"{kind}-{i}".encode()


def material_files(i: int) -> dict[str, bytes]:
    return {f"materials/{i}-id.pdf": material(i, "id"), f"materials/{i}-p.pdf": material(i, "p")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
