"""What comes in at the edge of applications (办件): who acts, for whom, with which form and
files, and the desk's first review — pydantic models every surface (web, API, CLI, batch) builds."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub import text
from hub.lifecycle import Role
from hub.materials import Staged


class Actor(BaseModel):
    """Who is acting, in which role, from which desk or department."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1, max_length=100)
    role: Role
    desk: str | None = None
    department: str | None = None
    applicant_id: str | None = None  # for role applicant
    agent_id: str | None = None  # for role agent: the 代办员's ID number (the `agents` roster)

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # recorded as `by` on every event: the same rule as any name (a NUL would fail the
        # commit on PostgreSQL, a bidi override would make the record read otherwise)
        if reason := text.problem(value):
            raise ValueError(str(reason))
        return value

    @property
    def place(self) -> str | None:
        return self.desk or self.department


SYSTEM = Actor(name="hub", role=Role.system)


def _code(value: Any) -> Any:
    return text.fold_code(value).upper() if isinstance(value, str) else value


class Applicant(BaseModel):
    type: Literal["person", "company"] = "person"
    name: str = Field(min_length=1, max_length=200)
    id: str  # resident ID number (person) or unified social credit code (company)

    # 全角 digits and Ｘ folded the same for the web, the API, the CLI and a batch
    _id_folded = field_validator("id", mode="before")(_code)


class Agent(BaseModel):
    """帮代办: the person who acts for the applicant."""

    name: str = Field(min_length=1, max_length=100)
    id_number: str

    _id_folded = field_validator("id_number", mode="before")(_code)


class MaterialIn(BaseModel):
    """A material's file: a path, bytes, or an upload already received into the store's staging
    area (`staged`, from the web API, which streams uploads to disk as they arrive)."""

    name: str  # the catalogue's material name
    filename: str = Field(min_length=1, max_length=255)
    path: Path | None = None
    content: bytes | None = None
    staged: Staged | None = None

    @property
    def source(self) -> Path | bytes | Staged:
        if self.staged is not None:
            return self.staged
        return self.path if self.path is not None else (self.content or b"")


class LicenceRef(BaseModel):
    """电子证照 instead of a paper copy: the licence a material is satisfied by, by reference.
    `source`: "library" (the hub's own), a connection of `licence_sources`, or None (ours first,
    then the one configured for the material's licence type)."""

    model_config = ConfigDict(extra="forbid")
    material: str = Field(min_length=1, max_length=200)
    number: str = Field(min_length=1, max_length=64)
    source: str | None = Field(default=None, max_length=64)


class NewApplication(BaseModel):
    subject: str  # item code or bundle code
    desk: str
    applicant: Applicant
    agent: Agent | None = None
    form: dict[str, Any] = Field(default_factory=dict)
    materials: list[MaterialIn] = Field(default_factory=list)
    licences: list[LicenceRef] = Field(default_factory=list, max_length=20)  # 电子证照 by reference
    source_ref: str | None = Field(default=None, max_length=128)  # idempotency key of the sender
    draft: bool = False


class FirstReview(BaseModel):
    """The desk's 初审 done with the receipt (a teller or enclave clerk at the window): the
    checklist they ticked and, for deferrable materials missing (容缺), the applicant's promise."""

    checklist: list[str] = Field(default_factory=list, max_length=20)
    commitment_due: date | None = None
    # materials replaced by 网上核验 (online verification with the owning department): name -> result
    verified: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=20)
    note: str | None = Field(default=None, max_length=1000)
    # 取号: the queue ticket this application was received from (hub.appointments), e.g. A001
    queue_ticket: str | None = Field(default=None, pattern=r"^[A-Z][0-9]{3,6}$")


def identity_key(subject: str, applicant_id: str) -> tuple[str, str]:
    """What a sender's retry must match to count as the same application: the item or bundle
    and the applicant's ID number as the hub stores it (folded as `Applicant.id` folds it)."""
    return (subject, _code(applicant_id))
