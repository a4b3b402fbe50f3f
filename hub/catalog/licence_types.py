"""Licence types (证照类型, config/licences.yaml): what a department issues, to whom, for how long,
and what is printed on it. Loaded with the catalogue (hub.catalog.loader), which checks the file
with its lines and cross-checks the items and materials that name a type."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SOURCES = ("holder_name", "holder_id", "issued_on", "valid_from", "valid_until")
FORM_SOURCE = re.compile(r"^form\.[a-z][a-z0-9_]*$")
LONG_TERM = "长期"


class PrintedField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(min_length=1, max_length=30)
    source: str

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v not in SOURCES and not FORM_SOURCE.match(v):
            raise ValueError(f"未知来源 (unknown source) {v!r}; 可选: {', '.join(SOURCES)}, form.FIELD")
        return v


class LicenceType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[A-Z]{2,10}$")  # 证照类型代码: begins every number of the type
    name: str = Field(min_length=1, max_length=50)
    issuer: str  # a department code
    holder: Literal["resident_id", "credit_code"]
    holder_name: str = "applicant"  # applicant | form.FIELD
    holder_id: str = "applicant"  # applicant | form.FIELD | assign (credit_code only)
    validity: int | Literal["长期"] = Field(default=LONG_TERM)  # whole years, or 长期
    sequence_digits: int = Field(default=6, ge=4, le=9)
    fields: list[PrintedField] = Field(min_length=1)

    @field_validator("validity")
    @classmethod
    def _years(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 100:
            raise ValueError("有效期为1至100年，或“长期” (validity: 1-100 years, or 长期)")
        return v

    @model_validator(mode="after")
    def _sources(self) -> LicenceType:
        if self.holder_name != "applicant" and not FORM_SOURCE.match(self.holder_name):
            raise ValueError("holder_name 应为 applicant 或 form.字段名 (applicant or form.FIELD)")
        if self.holder_id == "assign":
            if self.holder != "credit_code":
                raise ValueError("只有 credit_code 类证照可以 holder_id: assign (assign is for credit codes only)")
        elif self.holder_id != "applicant" and not FORM_SOURCE.match(self.holder_id):
            raise ValueError("holder_id 应为 applicant、assign 或 form.字段名 (applicant, assign or form.FIELD)")
        return self

    @property
    def years(self) -> int | None:
        return self.validity if isinstance(self.validity, int) else None

    def form_fields(self) -> list[str]:
        """Form fields this type reads: they must be on every item that issues it."""
        named = [self.holder_name, self.holder_id, *(f.source for f in self.fields)]
        return sorted({s.removeprefix("form.") for s in named if FORM_SOURCE.match(s)})


class LicenceTypesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    types: list[LicenceType] = []
