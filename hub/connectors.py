"""The connector contract, after Airbyte's spec / check / read / write:

- `Spec` — the pydantic model of a connection's configuration; its JSON Schema is the documentation.
- `check()` — reachability and credentials; returns a CheckResult, never raises for a normal failure.
- department sink: `submit(part) -> Receipt` (idempotent on part.part_id), `poll(receipts) -> [Update]`.
- intake source: `list_batches()` (complete batches only: the `.ok` marker is there), `fetch(batch, into)`
  (every file of the batch into a local folder, streamed), `ack(batch, report)` (taken; the report of
  bad records, if any, goes back to the source), `reject(batch, report)` (quarantined as a whole).
- verifier: `verify(kind, subject) -> Verification` (网上核验).
- licence library: `licences(holder_id, type_code) -> [LicenceRecord]` (a department's 电子证照库:
  the holder's licences of one type, for intake to take by reference instead of a paper copy).

A connector type implements the verbs it supports; the rest raise Unsupported. The core talks to
departments only through this module's types and never imports a connector.

What a connector gets from the hub besides its Spec: `self.materials` (the bytes of a part's
materials, verified against their sha256, and signed pull links; see `MaterialAccess`) and
`self.where(*loc)` (the connection file and line of a config key, for error messages)."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A delivery did not happen. `retryable` says whether trying again later can help
    (timeouts, 5xx, 429) or not (a 4xx refusal, a SOAP client fault)."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class Unsupported(Exception):
    pass


class CheckResult(BaseModel):
    ok: bool
    message: str


class MaterialRef(BaseModel):
    name: str
    filename: str
    sha256: str
    media_type: str
    size: int


class LicenceRef(BaseModel):
    """A material the desk took as an electronic licence (电子证照) instead of a file: what the
    department needs to look it up itself (number, type, issuer, validity, where it was found)."""

    material: str
    type_code: str
    number: str
    issuer: str
    valid_until: date | None = None
    source: str  # "library" (the hub's own) or the connection of the department library it came from
    checked_at: datetime


class PartMessage(BaseModel):
    """What a department receives for one part: the hub's view, before the connection's mapping."""

    part_id: str  # the idempotency key
    application_number: str
    item_code: str
    item_title: str
    department: str
    channel: str
    desk: str
    collecting_division: str
    deciding_division: str
    applicant_type: str
    applicant_name: str
    applicant_id: str
    form: dict[str, Any]
    materials: list[MaterialRef] = Field(default_factory=list)
    licences: list[LicenceRef] = Field(default_factory=list)  # 电子证照 taken by reference, no file
    accepted_on: date | None = None
    due_date: date | None = None


class Document(BaseModel):
    name: str
    media_type: str
    content: bytes


class Update(BaseModel):
    part_id: str
    remote_id: str
    status: Literal["received", "in_review", "approved", "denied", "supplement_requested"]
    reason: str | None = None
    documents: list[Document] = Field(default_factory=list)


class Receipt(BaseModel):
    part_id: str
    remote_id: str
    received_at: datetime | None = None
    # a stateless system answers the submission with its decision at once (it has no status
    # operation to poll): the hub applies it together with the delivery
    update: Update | None = None
    # the department took the part but its decision could not be read (an unmapped value): the
    # delivery stands, and the message is recorded for ops and the officer, who decides by hand
    decision_error: str | None = None


class PollFailure(BaseModel):
    """One receipt whose answer could not be read (an unmapped status, a missing field): recorded
    on its outbox row for ops; the other receipts of the same poll still count."""

    part_id: str
    remote_id: str
    message: str


class Preview(BaseModel):
    """One message a submission would send, for `hub connectors render` (no network; secrets
    shown as ***)."""

    summary: str  # e.g. "POST https://…/cases", "SOAP SubmitCase at https://…", "SFTP /upload/SB_1.xml"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""  # the serialised message as it would go out
    attachments: list[str] = Field(default_factory=list)  # materials sent beside it (multipart parts, files)


class Verification(BaseModel):
    kind: str
    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)


class LicenceRecord(BaseModel):
    """One licence a department's licence library holds (GB/T 36901 metadata, as much as intake
    needs). Bounded: it comes from another system."""

    source: str = Field(default="", max_length=64)  # the connection it came from (set by the hub)
    type_code: str = Field(max_length=32)
    type_name: str = Field(default="", max_length=100)
    number: str = Field(min_length=1, max_length=64)
    holder_name: str = Field(max_length=200)
    holder_id: str = Field(max_length=64)
    issuer: str = Field(max_length=100)
    issued_on: date | None = None
    valid_from: date | None = None
    valid_until: date | None = None  # None: 长期有效
    # required, no default: a record that does not say its status is refused, never taken as valid
    status: Literal["valid", "revoked", "suspended", "expired"]
    # the legal representative's / operator's ID number (法定代表人证件号码), when the library gives
    # it: how a company's licence counts as the applicant's (hub.applications.licence_refs.Asker)
    representative_id: str | None = Field(default=None, max_length=64)
    document_url: str | None = Field(default=None, max_length=2000)


MAX_LICENCES = 50  # licences one lookup may return (one holder, one type): more is refused


# A batch id is also a folder name on the hub's disk and on the source: one safe path component.
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Batch(BaseModel):
    id: str = Field(pattern=f"^{BATCH_ID.pattern}$")  # a folder's name; an archive's without its extension
    name: str  # what it is called on the source


class Connector:
    """Base for connector types. Subclasses set `type`, `Spec` and `description`."""

    type: ClassVar[str]
    Spec: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""

    def __init__(self, name: str, spec: BaseModel):
        self.name = name
        self.spec = spec
        self.materials: MaterialAccess = NoMaterials()
        # the hub home, for relative paths in a connection's config (a WSDL file, say); None
        # for a connector made outside a hub
        self.home: Path | None = None
        self._locate: Callable[[tuple[str | int, ...]], str] = lambda loc: ""

    def longest_call(self) -> tuple[float, tuple[str | int, ...]] | None:
        """The longest one delivery (submit) can take, in seconds, worst case (retries, token
        fetches, connect and every read included), and the config key that sets it (for
        FILE:LINE); None if unknown. The hub refuses a connection whose longest call is not well
        below the dispatch claim lease: a delivery that outlives its claim can be made twice."""
        return None

    def where(self, *loc: str | int) -> str:
        """`connections/NAME.yaml:LINE (config.a.b)` for a key of this connection's config."""
        line = self._locate(loc)
        return f"{line or self.name} (config.{'.'.join(str(p) for p in loc)})"

    # -- every connector
    def check(self) -> CheckResult:
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- department sink
    def submit(self, part: PartMessage) -> Receipt:
        raise Unsupported(f"{self.type} connector cannot submit")

    def preview(self, part: PartMessage) -> list[Preview]:
        """What `submit(part)` would send, without sending it (and without secrets)."""
        raise Unsupported(f"{self.type} connector cannot show what it would send")

    def poll(self, receipts: list[Receipt]) -> Sequence[Update | PollFailure]:
        """The receipts' current states; nothing (an empty list) for a system that has no
        status operation — not a failure."""
        raise Unsupported(f"{self.type} connector cannot poll")

    # -- intake source
    def list_batches(self) -> list[Batch]:
        raise Unsupported(f"{self.type} connector is not an intake source")

    def fetch(self, batch: Batch, into: Path) -> None:
        raise Unsupported(f"{self.type} connector is not an intake source")

    def ack(self, batch: Batch, report: Path | None = None) -> None:
        raise Unsupported(f"{self.type} connector is not an intake source")

    def reject(self, batch: Batch, report: Path) -> None:
        raise Unsupported(f"{self.type} connector is not an intake source")

    # -- verifier
    def verify(self, kind: str, subject: dict[str, Any]) -> Verification:
        raise Unsupported(f"{self.type} connector cannot verify")

    # -- licence library
    def licences(self, holder_id: str, type_code: str) -> list[LicenceRecord]:
        """The holder's licences of one type in the department's licence library (at most
        MAX_LICENCES); an empty list when it holds none."""
        raise Unsupported(f"{self.type} connector is not a licence library")

    @classmethod
    def capabilities(cls) -> list[str]:
        verbs = {
            "submit": "sink",
            "poll": "sink",
            "list_batches": "source",
            "verify": "verifier",
            "licences": "licence_library",
        }
        return sorted({role for verb, role in verbs.items() if getattr(cls, verb) is not getattr(Connector, verb)})


class MaterialAccess(Protocol):
    """How a connector reaches the bytes of a part's materials (given to it by the hub)."""

    def read(self, ref: MaterialRef) -> bytes:
        """The whole file, checked against `ref.sha256` (a DeliveryError if it is not there or
        does not match)."""
        ...

    def open(self, ref: MaterialRef) -> BinaryIO:
        """The file to stream; reading past its end raises a DeliveryError if the bytes read do
        not match `ref.sha256`."""
        ...

    def url(self, ref: MaterialRef, part_id: str, ttl_hours: float = 72) -> str:
        """A signed link the department can fetch the file from, valid for `ttl_hours`."""
        ...


class NoMaterials:
    """A connector made outside a hub (a unit test, a plugin's own tooling): no material store."""

    def _none(self, *args: Any) -> Any:
        raise DeliveryError("材料库不可用 (no material store here)", retryable=False)

    read = open = url = _none


class MaterialDelivery(BaseModel):
    """How a connection sends a part's materials (the same config key for every connector type;
    each type supports the modes its transport can carry):

    - `none`: names and sha256 only (the default: a department that fetches nothing);
    - `inline`: base64 inside the message (`materials[*].content` in templates), each file up to
      `max_inline_bytes`;
    - `multipart`: REST, the part as one form field and every file as another;
    - `files`: SFTP, beside the part file, each completed before the part's `.ok` marker;
    - `pull`: a signed link served by the hub (`materials[*].url`), valid `link_ttl_hours`."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["none", "inline", "multipart", "files", "pull"] = "none"
    max_inline_bytes: int = Field(default=10 * 2**20, ge=1, description="largest file sent inline")
    link_ttl_hours: float = Field(default=72, gt=0, le=24 * 30)


class Limits(BaseModel):
    """Delivery limits per connection (ops tune these to what a department system can take)."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(default=2, ge=1, le=64)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_seconds: float = Field(default=30, gt=0)  # first retry after about this long
    max_backoff_seconds: float = Field(default=3600, gt=0)


def in_turn(name: str, receipts: Sequence[Receipt], deadline: float, limit: str) -> Iterator[Receipt]:
    """`receipts` in a random order, while `time.monotonic()` is before `deadline` (a poll's time
    budget, named `limit` in the log): those left when it runs out wait for the next sync, neither
    returned nor failed — and as the order changes, none waits behind the others for ever."""
    order = random.sample(list(receipts), len(receipts))
    for i, receipt in enumerate(order):
        if time.monotonic() > deadline:
            log.warning("%s: poll stopped at %s; %d receipts left for the next sync", name, limit, len(order) - i)
            return
        yield receipt
