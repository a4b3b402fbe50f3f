"""Reading a batch's records file one line at a time, so memory stays bounded whatever the size.

Every physical line is one record (blank lines are skipped; in CSV the first line is the header
and fields may not hold line breaks). CRLF and LF both end a line; a byte-order mark on the
first line (UTF-8's, or GB18030's) is dropped. A line that is too long, not valid in the
batch's encoding, or not a JSON object / CSV row is a *bad record* with its line number and
reason — the lines after it are read as usual."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hub.errors import Reason

BOMS = (b"\xef\xbb\xbf", b"\x84\x31\x95\x33")  # UTF-8, GB18030
CHUNK = 1 << 16


@dataclass(frozen=True)
class Line:
    number: int  # 1-based physical line number in the file
    data: dict[str, Any] | None
    problem: Reason | None = None


def _physical_lines(f: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line end) — None for a line longer than `limit`, whose
    rest is skipped in chunks rather than read into memory."""
    number = 0
    while True:
        raw = f.readline(limit + 2)  # room for CRLF
        if not raw:
            return
        number += 1
        ended = raw.endswith(b"\n") or len(raw) < limit + 2  # the whole line (or the file's last)
        content = raw.rstrip(b"\n").rstrip(b"\r") if ended else raw
        if ended and len(content) <= limit:
            yield number, content
            continue
        while raw and not raw.endswith(b"\n"):  # too long: drop the rest of this line
            raw = f.readline(CHUNK)
        yield number, None


def read_records(path: Path, *, encoding: str, limit: int) -> Iterator[Line]:
    """The records of `records.jsonl` or `records.csv`, in file order."""
    with open(path, "rb") as f:
        lines = _physical_lines(f, limit)
        if path.suffix == ".csv":
            yield from _csv(lines, encoding)
        else:
            yield from _jsonl(lines, encoding)


def _decode(number: int, raw: bytes | None, encoding: str) -> tuple[str | None, Reason | None]:
    if raw is None:
        return None, Reason("记录过长", "line too long")
    if number == 1:
        for bom in BOMS:
            if raw.startswith(bom):
                raw = raw[len(bom) :]
    try:
        return raw.decode(encoding), None
    except UnicodeDecodeError as exc:
        return None, Reason(
            f"第{exc.start + 1}字节起不是有效的{encoding}编码", f"invalid {encoding} bytes at byte {exc.start + 1}"
        )


def _jsonl(lines: Iterator[tuple[int, bytes | None]], encoding: str) -> Iterator[Line]:
    for number, raw in lines:
        text, problem = _decode(number, raw, encoding)
        if problem:
            yield Line(number, None, problem)
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            yield Line(
                number, None, Reason(f"不是有效的JSON（第{exc.colno}列）", f"not valid JSON at column {exc.colno}")
            )
            continue
        except ValueError:  # from _no_constant
            yield Line(number, None, Reason("JSON中不允许NaN或Infinity", "NaN and Infinity are not JSON"))
            continue
        if not isinstance(data, dict):
            yield Line(number, None, Reason("每行须为一个JSON对象", "each line must be a JSON object"))
            continue
        yield Line(number, data)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")  # NaN, Infinity: Python's json takes them


def _csv(lines: Iterator[tuple[int, bytes | None]], encoding: str) -> Iterator[Line]:
    header: list[str] | None = None
    for number, raw in lines:
        text, problem = _decode(number, raw, encoding)
        if header is None:
            if problem or not text:
                yield Line(number, None, problem or Reason("缺少表头行", "missing header row"))
                return  # without a header no row can be read
            header = next(csv.reader([text]))
            if len(set(header)) != len(header):
                twice = sorted({c for c in header if header.count(c) > 1})
                yield Line(number, None, Reason(f"表头列重复: {'、'.join(twice)}", f"duplicate columns: {twice}"))
                return
            continue
        if problem:
            yield Line(number, None, problem)
            continue
        if not text.strip():
            continue
        try:
            row = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            yield Line(number, None, Reason(f"CSV格式错误: {exc}", f"malformed CSV: {exc}"))
            continue
        if len(row) != len(header):
            yield Line(
                number,
                None,
                Reason(f"有{len(row)}列，表头有{len(header)}列", f"{len(row)} fields, the header has {len(header)}"),
            )
            continue
        yield Line(number, csv_record(dict(zip(header, row, strict=True))))


def csv_record(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row in the shape of a JSON record. Columns: record_id, subject, applicant_type,
    applicant_name, applicant_id, agent_name, agent_id_number, pre_review_by, pre_review_at,
    pre_review_note, commitment_due; `form.<field>` for form fields; `material.<材料名>` holding
    `<file>#<sha256>` for a material. Empty cells are absent values."""
    get = {k: v for k, v in row.items() if v != ""}
    record: dict[str, Any] = {
        "record_id": get.get("record_id"),
        "subject": get.get("subject"),
        "applicant": {
            "type": get.get("applicant_type", "person"),
            "name": get.get("applicant_name"),
            "id": get.get("applicant_id"),
        },
        "pre_review": {"by": get.get("pre_review_by"), "at": get.get("pre_review_at")},
        "form": {k.removeprefix("form."): v for k, v in get.items() if k.startswith("form.")},
        "materials": [],
    }
    if "pre_review_note" in get:
        record["pre_review"]["note"] = get["pre_review_note"]
    if "agent_name" in get or "agent_id_number" in get:
        record["agent"] = {"name": get.get("agent_name"), "id_number": get.get("agent_id_number")}
    if "commitment_due" in get:
        record["commitment_due"] = get["commitment_due"]
    for key, value in get.items():
        if key.startswith("material."):
            file, _, digest = value.rpartition("#")
            record["materials"].append({"name": key.removeprefix("material."), "file": file, "sha256": digest})
    return record
