"""Sample intake batches as a bank outlet's core system or an enclave window's system would drop
them (fictional residents, valid ID numbers): for the sandbox sources, the `make airflow` trial
and the ingest benchmark. Records are 基本医疗保险异地就医备案 filings, an item delegated to bank
outlets and enclave windows; every record carries the two materials the item requires."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.batches.writer import write_batch
from hub.ids import id_check_digit

SUBJECT = "GG00301001"  # 基本医疗保险异地就医备案
SURNAMES = "陈林王张李吴周郑黄刘"
GIVEN = ["秀英", "建国", "志强", "丽华", "海燕", "国平", "小红", "伟", "静", "阿婆"]
DESTINATIONS = [
    ("330105", "杭州市拱墅区湖墅南路88号"),
    ("310115", "上海市浦东新区张杨路500号"),
    ("330106", "杭州市西湖区文三路90号"),
]
PDF = b"%PDF-1.4\n% Tongban Hub sandbox scan\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def resident_id(i: int) -> str:
    first17 = f"330329{date(1950, 1, 1) + timedelta(days=i % 20000):%Y%m%d}{i % 900 + 100:03d}"
    return first17 + id_check_digit(first17)


def material(tag: str) -> bytes:
    return PDF + f"% {tag}\n".encode()


def records(
    prefix: str, count: int, *, start: int = 1, share_materials: int = 1, teller: str = "柜员王芳"
) -> Iterator[tuple[dict[str, Any], dict[str, bytes]]]:
    """(record, material files it brings) for `count` records. With `share_materials=N`, N records
    in a row reference the same two scans (what a batch of N per 2 files looks like to the hub)."""
    at = datetime.now().astimezone().replace(microsecond=0).isoformat()
    for i in range(start, start + count):
        group = (i - start) // share_materials
        files: dict[str, bytes] = {}
        refs = []
        for kind, name in (("id", "居民身份证"), ("promise", "异地长期居住个人承诺书")):
            path = f"materials/{prefix}-{group}-{kind}.pdf"
            data = material(f"{prefix}-{group}-{kind}")
            refs.append({"name": name, "file": path, "sha256": hashlib.sha256(data).hexdigest()})
            if (i - start) % share_materials == 0:
                files[path] = data
        division, address = DESTINATIONS[i % len(DESTINATIONS)]
        record = {
            "record_id": f"{prefix}-{i:07d}",
            "subject": SUBJECT,
            "applicant": {
                "type": "person",
                "name": SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)],
                "id": resident_id(i),
            },
            "form": {
                "destination_division": division,
                "residence_address": address,
                "filing_start_date": (date.today() + timedelta(days=7)).isoformat(),
                "contact_phone": f"138{i % 100_000_000:08d}",
            },
            "materials": refs,
            "pre_review": {"by": teller, "at": at},
        }
        yield record, files


def write_sample_batch(folder: Path, batch_id: str, desk: str, count: int, *, marker: Path | None = None) -> Path:
    """A complete batch in `folder/` — records, scans, manifest — then the `.ok` marker (default:
    beside the folder), last, as a desk system must."""
    files: dict[str, bytes] = {}

    def take() -> Iterator[dict[str, Any]]:
        for record, brought in records(batch_id, count):
            files.update(brought)
            yield record

    rows = list(take())  # small sample batches; the benchmark streams its own
    write_batch(folder, batch_id=batch_id, desk=desk, records=rows, files=files)
    (marker or folder.with_name(folder.name + ".ok")).write_bytes(b"")
    return folder
