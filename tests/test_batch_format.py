"""The batch format as a bank or enclave system's developer meets it: the JSON Schemas shipped in
the package are the ones the hub validates with, a third-party validator accepts a sample batch
written by the reference writer, and rejects what the hub would refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from hub.batches.format import SCHEMA_DIR, schemas
from plugins.sandbox.intake_batches import write_sample_batch


def test_the_shipped_schema_files_are_current():
    for name, schema in schemas().items():
        shipped = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
        assert shipped == schema, (
            f"{name} is stale: run python -c 'from hub.batches.format import write_schemas; write_schemas()'"
        )


def test_a_sample_batch_is_valid_under_the_schemas_and_a_broken_record_is_not(tmp_path: Path):
    folder = write_sample_batch(tmp_path / "XH-SAMPLE", "XH-SAMPLE", "bank-xiahong", 3)
    assert (tmp_path / "XH-SAMPLE.ok").exists()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    shipped = {n: json.loads((SCHEMA_DIR / n).read_text(encoding="utf-8")) for n in schemas()}
    jsonschema.validate(manifest, shipped["manifest.schema.json"])
    records = [json.loads(x) for x in (folder / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == manifest["record_count"] == 3
    for r in records:
        jsonschema.validate(r, shipped["record.schema.json"])
    broken = dict(records[0], materials=[{"name": "居民身份证", "file": "materials/a.pdf", "sha256": "x"}])
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(broken, shipped["record.schema.json"])
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate(dict(records[0], colour="red"), shipped["record.schema.json"])


def test_hub_intake_schema_prints_them():
    out = subprocess.run(
        [sys.executable, "-m", "hub", "intake", "schema", "manifest"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == schemas()["manifest.schema.json"]
    bad = subprocess.run([sys.executable, "-m", "hub", "intake", "schema", "nonsense"], capture_output=True, text=True)
    assert bad.returncode != 0 and "manifest or record" in bad.stderr


def test_the_record_reader_at_its_edges(tmp_path: Path):
    from hub.batches.records import read_records

    jsonl = tmp_path / "records.jsonl"
    jsonl.write_bytes(b'{"a": NaN}\n{"b": "' + b"x" * 91 + b'"}\r\n{"c": "' + b"x" * 92 + b'"}\n\n{"d": 1}')
    lines = list(read_records(jsonl, encoding="UTF-8", limit=100))  # line 2 is exactly 100 bytes, line 3 101
    assert [(x.number, x.problem.en if x.problem else None) for x in lines] == [
        (1, "NaN and Infinity are not JSON"),
        (2, None),
        (3, "line too long"),
        (5, None),
    ]
    csv_file = tmp_path / "records.csv"
    csv_file.write_bytes("record_id,material.居民身份证\nR1,materials/a#1.pdf#abc\n".encode())
    (row,) = read_records(csv_file, encoding="UTF-8", limit=1000)
    assert row.data["materials"] == [{"name": "居民身份证", "file": "materials/a#1.pdf", "sha256": "abc"}]
    csv_file.write_bytes(b"record_id,subject,record_id\nR1,S,R1\n")
    (header,) = read_records(csv_file, encoding="UTF-8", limit=1000)
    assert header.number == 1 and header.problem.en == "duplicate columns: ['record_id']"
