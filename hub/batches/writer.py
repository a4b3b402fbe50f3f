"""Writing an intake batch — the reference for desk systems, and what tests, benchmarks and the
sandbox use. Records stream to disk; hashes are computed from the files as written."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.batches.format import FORMAT, RECORD_FILES
from hub.batches.staging import sha256_of

CSV_COLUMNS = [
    "record_id",
    "subject",
    "applicant_type",
    "applicant_name",
    "applicant_id",
    "pre_review_by",
    "pre_review_at",
]


def write_batch(
    folder: Path,
    *,
    batch_id: str,
    desk: str,
    records: Iterable[dict[str, Any]],
    files: dict[str, bytes] | None = None,
    encoding: str = "UTF-8",
    records_file: str = "records.jsonl",
    created_at: datetime | None = None,
    newline: str = "\n",
) -> Path:
    """Write `folder/` (records, material files, manifest.json last). Returns the folder. The
    `.ok` marker is the caller's: where it goes depends on the source."""
    assert records_file in RECORD_FILES
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    count = 0
    with open(folder / records_file, "wb") as out:
        if records_file.endswith(".csv"):
            rows = iter(records)
            first = next(rows, None)
            header = csv_header(first) if first else CSV_COLUMNS
            out.write(_csv_line(header, encoding, newline))
            for record in [first, *rows] if first else []:
                out.write(_csv_line([csv_cell(record, col) for col in header], encoding, newline))
                count += 1
        else:
            for record in records:
                out.write((json.dumps(record, ensure_ascii=False) + newline).encode(encoding))
                count += 1
    listed = {p.relative_to(folder).as_posix(): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    listed.pop("manifest.json", None)
    manifest = {
        "format": FORMAT,
        "batch_id": batch_id,
        "desk": desk,
        "created_at": (created_at or datetime.now().astimezone()).isoformat(),
        "record_count": count,
        "encoding": encoding,
        "records": records_file,
        "files": listed,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def csv_header(record: dict[str, Any]) -> list[str]:
    return (
        CSV_COLUMNS
        + [f"form.{k}" for k in record.get("form", {})]
        + [f"material.{m['name']}" for m in record.get("materials", [])]
    )


def csv_cell(record: dict[str, Any], column: str) -> str:
    a, pre = record.get("applicant", {}), record.get("pre_review", {})
    simple = {
        "record_id": record.get("record_id"),
        "subject": record.get("subject"),
        "applicant_type": a.get("type", "person"),
        "applicant_name": a.get("name"),
        "applicant_id": a.get("id"),
        "pre_review_by": pre.get("by"),
        "pre_review_at": pre.get("at"),
    }
    if column in simple:
        return str(simple[column] or "")
    if column.startswith("form."):
        return str(record.get("form", {}).get(column[5:], ""))
    for m in record.get("materials", []):
        if column == f"material.{m['name']}":
            return f"{m['file']}#{m['sha256']}"
    return ""


def _csv_line(cells: list[str], encoding: str, newline: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerow(cells)
    return buffer.getvalue().encode(encoding)
