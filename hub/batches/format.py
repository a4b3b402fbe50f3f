"""The intake batch format (docs/batch-format.md). A batch is a folder — or a .zip / .tar.gz of
one — holding:

    manifest.json        batch id, desk, created-at, record count, encoding, sha256 of every file
    records.jsonl        one record per line (or records.csv: one per line, a header row first)
    materials/...        the files records refer to (any layout inside the batch)

and, beside it on the source, the `.ok` marker written last. The JSON Schemas of the manifest
and of one record ship in `hub/batches/schema/` (`hub intake schema` prints them)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from hub.errors import Reason

FORMAT = "tongban-intake/1"
SCHEMA_DIR = Path(__file__).parent / "schema"
RECORD_FILES = ("records.jsonl", "records.csv")


def _relative(name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"文件名须为批次内的相对路径 (a relative path inside the batch): {name!r}")
    return name


class Manifest(BaseModel):
    """`manifest.json`, always UTF-8 JSON; `encoding` is that of the records file."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["tongban-intake/1"] = Field(description="format version")
    batch_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="unique per source")
    desk: str = Field(description="the desk (bank outlet, enclave window) whose records these are")
    created_at: AwareDatetime
    record_count: int = Field(ge=0, description="records in the records file (header and blank lines not counted)")
    encoding: Literal["UTF-8", "GB18030"] = "UTF-8"
    records: Literal["records.jsonl", "records.csv"] = "records.jsonl"
    files: dict[str, str] = Field(description="every file of the batch but the manifest -> lowercase hex sha256")

    @field_validator("files")
    @classmethod
    def _files(cls, v: dict[str, str]) -> dict[str, str]:
        for name, digest in v.items():
            _relative(name)
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{name}: sha256 须为64位小写十六进制 (64 lowercase hex digits)")
        return v


class RecordApplicant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["person", "company"] = "person"
    name: str = Field(min_length=1, max_length=200)
    id: str = Field(min_length=1, max_length=32, description="resident ID number (GB 11643) or USCC (GB 32100)")


class RecordAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    id_number: str = Field(min_length=1, max_length=32)


class RecordMaterial(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="the catalogue's material name, e.g. 居民身份证")
    file: str = Field(min_length=1, max_length=255, description="path of the file inside the batch")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    _file = field_validator("file")(classmethod(lambda cls, v: _relative(v)))


class PreReview(BaseModel):
    """The desk's first review (初审), done before the batch was written."""

    model_config = ConfigDict(extra="forbid")
    by: str = Field(min_length=1, max_length=100, description="who did it (teller or clerk)")
    at: AwareDatetime
    note: str | None = Field(default=None, max_length=1000)


class Record(BaseModel):
    """One application as the desk took it."""

    model_config = ConfigDict(extra="forbid")
    record_id: str = Field(
        min_length=1, max_length=128, description="the desk system's own id: the same record twice is one application"
    )
    subject: str = Field(min_length=1, max_length=32, description="item or bundle code from the catalogue")
    applicant: RecordApplicant
    agent: RecordAgent | None = None
    form: dict[str, object] = Field(default_factory=dict)
    materials: list[RecordMaterial] = Field(default_factory=list)
    pre_review: PreReview
    commitment_due: date | None = Field(
        default=None, description="容缺: date the applicant promised the missing material by"
    )


# Chinese for the validation errors a desk system's developer will meet (English is pydantic's own).
_ZH = {
    "missing": "必填项缺失",
    "extra_forbidden": "不允许的字段",
    "string_type": "应为文本",
    "string_too_short": "内容过短",
    "string_too_long": "内容过长",
    "string_pattern_mismatch": "格式不符",
    "string_unicode": "不是有效的文本",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "greater_than_equal": "数值过小",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_type": "日期格式应为 YYYY-MM-DD",
    "datetime_parsing": "时间格式应为 ISO 8601（含时区）",
    "datetime_from_date_parsing": "时间格式应为 ISO 8601（含时区）",
    "datetime_type": "时间格式应为 ISO 8601（含时区）",
    "timezone_aware": "时间须带时区",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "list_type": "应为数组",
    "value_error": "取值无效",
}


def reason_for(error: Any) -> Reason:
    """A pydantic error (one item of `ValidationError.errors()`) as a bilingual reason."""
    zh = _ZH.get(error["type"], "取值无效")
    if error["type"] == "value_error":  # our own validators write Chinese (English) messages
        return Reason(str(error["msg"]).removeprefix("Value error, "), error["msg"])
    return Reason(zh, error["msg"])


def schemas() -> dict[str, dict]:
    return {
        "manifest.schema.json": Manifest.model_json_schema(),
        "record.schema.json": Record.model_json_schema(),
    }


def write_schemas(folder: Path = SCHEMA_DIR) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (folder / name).write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
