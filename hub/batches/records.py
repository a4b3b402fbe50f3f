"""Reading a batch's records file one line at a time, so memory stays bounded whatever the size.

Every physical line is one record (blank lines are skipped; in CSV the first line is the header
and fields may not hold line breaks). CRLF and LF both end a line; a byte-order mark on the
first line (UTF-8's, or GB18030's) is dropped. A line that is too long, not valid in the
batch's encoding, or not a JSON object / CSV row is a *bad record* with its line number and
reason — the lines after it are read as usual."""

from __future__ import annotations

import csv as csv_module
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hub.errors import Reason
from hub.text import ANY_REFUSED

BOMS = (b"\xef\xbb\xbf", b"\x84\x31\x95\x33")  # UTF-8, GB18030
CHUNK = 1 << 16


@dataclass(frozen=True)
class Line:
    number: int  # 1-based physical line number in the file
    data: dict[str, Any] | None
    problem: Reason | None = None
    # False when no string in `data` can hold a character the hub refuses (hub.text): the raw text
    # has none and no JSON escape (\u0000, \b, \f …) that could make one. Lets the caller skip
    # walking every value of most lines.
    suspect: bool = True


RawLine = tuple[int, bytes | None]  # line number, the line's bytes without its end (None: too long)


def _physical_lines(f: BinaryIO, limit: int) -> Iterator[RawLine]:
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
        parser, lines = raw_records(f, csv=path.suffix == ".csv", encoding=encoding, limit=limit)
        if isinstance(parser, Line):
            yield parser
            return
        for number, raw in lines:
            if (line := parser.parse(number, raw)) is not None:
                yield line


def raw_records(f: BinaryIO, *, csv: bool, encoding: str, limit: int) -> tuple[Parser | Line, Iterator[RawLine]]:
    """A records file as raw lines (after the header, in CSV) and the parser that turns each into
    a record — so the parsing can happen elsewhere, in another process. When a CSV header cannot
    be read, that problem as the bad record of line 1 instead of a parser: nothing is readable."""
    lines = _physical_lines(f, limit)
    if not csv:
        return Parser(encoding), lines
    first = next(lines, None)
    if first is None:
        return Parser(encoding, header=()), lines
    header, problem = _header(*first, encoding)
    if problem:
        return Line(first[0], None, problem), iter(())
    return Parser(encoding, header=tuple(header), header_suspect=any(ANY_REFUSED.search(c) for c in header)), lines


def count_records(path: Path, *, encoding: str, limit: int) -> tuple[int, Reason | None]:
    """How many records `read_records` yields, without parsing them: every line but blank ones
    and, in CSV, the header — and the header's problem, if it has one (then nothing is readable)."""
    count = 0
    with open(path, "rb") as f:
        parser, lines = raw_records(f, csv=path.suffix == ".csv", encoding=encoding, limit=limit)
        if isinstance(parser, Line):
            return 0, parser.problem
        for number, raw in lines:
            text, problem = _decode(number, raw, encoding)
            count += problem is not None or bool(text and text.strip())
    return count, None


@dataclass(frozen=True)
class Parser:
    """Turns one raw line of a records file into a record. Plain data: it travels to another
    process with the lines it is to parse."""

    encoding: str
    header: tuple[str, ...] | None = None  # CSV: the column names; None: JSON lines
    header_suspect: bool = False  # a column name holds a control character (names become keys)

    def parse(self, number: int, raw: bytes | None) -> Line | None:
        """The record on this line, or None for a blank line."""
        text, problem = _decode(number, raw, self.encoding)
        if problem:
            return Line(number, None, problem)
        assert text is not None
        if not text.strip():
            return None
        return self._csv(number, text) if self.header is not None else self._json(number, text)

    def _json(self, number: int, text: str) -> Line:
        try:
            data = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            return Line(
                number, None, Reason(f"不是有效的JSON（第{exc.colno}列）", f"not valid JSON at column {exc.colno}")
            )
        except ValueError:  # from _no_constant
            return Line(number, None, Reason("JSON中不允许NaN或Infinity", "NaN and Infinity are not JSON"))
        if not isinstance(data, dict):
            return Line(number, None, Reason("每行须为一个JSON对象", "each line must be a JSON object"))
        return Line(number, data, suspect="\\" in text or ANY_REFUSED.search(text) is not None)

    def _csv(self, number: int, text: str) -> Line:
        header = self.header or ()
        try:
            row = next(csv_module.reader([text], strict=True))
        except csv_module.Error as exc:
            return Line(number, None, Reason(f"CSV格式错误: {exc}", f"malformed CSV: {exc}"))
        if len(row) != len(header):
            return Line(
                number,
                None,
                Reason(f"有{len(row)}列，表头有{len(header)}列", f"{len(row)} fields, the header has {len(header)}"),
            )
        suspect = self.header_suspect or ANY_REFUSED.search(text) is not None
        return Line(number, csv_record(dict(zip(header, row, strict=True))), suspect=suspect)


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


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")  # NaN, Infinity: Python's json takes them


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one for all lines: json.loads(**kw) builds one per call


def _header(number: int, raw: bytes | None, encoding: str) -> tuple[list[str], Reason | None]:
    """A CSV file's first line as its column names, or why it cannot be one."""
    text, problem = _decode(number, raw, encoding)
    if problem or not text:
        return [], problem or Reason("缺少表头行", "missing header row")
    header = next(csv_module.reader([text]))
    if len(set(header)) != len(header):
        twice = sorted({c for c in header if header.count(c) > 1})
        return [], Reason(f"表头列重复: {'、'.join(twice)}", f"duplicate columns: {twice}")
    return header, None


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
