"""A kit's records into applications, each exactly once (POST /api/v1/kit/sync).

Idempotent on (device, record id): a `kit_records` row (unique) is written *before* the
application is received, holding the sha256 of the record's content, and completed with the
application number after. So:
- the same record again (the kit never saw the answer and resends) gets the same number back;
- a record id reused with other content is a `conflict`, nothing is created;
- a crash between the two writes leaves the row pending; the resend receives again, and
  `hub.applications.receive` answers it from the application it made (`source_ref` = record id
  at the agent's desk is unique) — never a second application;
- a refused record (the hub's own field errors, bilingual) leaves nothing behind: the agent fixes
  it in the kit and sends it again under the same id.

The application is received as the agent (role agent, the agent's home desk), with the agent's
name and ID number from the roster as the application's `agent`, the photos as its materials."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hub import hashchain
from hub.applications import Applicant, MaterialIn, NewApplication, receive
from hub.context import Hub
from hub.errors import FieldError, Forbidden, InvalidInput, Reason
from hub.kit.devices import DeviceAuth
from hub.storage.tables import KitDevice, KitRecord, naive_utc

MAX_RECORDS = 20  # per request: a kit sends more in several calls
MAX_PHOTOS = 20  # per record
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class KitPhoto(BaseModel):
    name: str = Field(min_length=1, max_length=200)  # the catalogue's material name
    filename: str = Field(min_length=1, max_length=255)
    content_b64: str


class KitRecordIn(BaseModel):
    id: str = Field(pattern=UUID)
    item: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    form: dict[str, Any] = Field(default_factory=dict)
    photos: list[KitPhoto] = Field(default_factory=list, max_length=MAX_PHOTOS)
    signature_b64: str | None = None  # the resident's signature, PNG
    taken_at: datetime | None = None


@dataclass
class Result:
    id: str | None
    status: Literal["accepted", "conflict", "refused"]
    number: str | None = None
    again: bool = False  # accepted before: this is the same answer
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "number": self.number, "again": self.again, "errors": self.errors}


def content_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(hashchain.canonical(record).encode()).hexdigest()


def _pydantic_errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "record"
        out.append(FieldError.of(where, f"内容不符合要求: {e['msg']}", e["msg"]).as_dict())
    return out


def _decode(hub: Hub, where: str, value: str) -> tuple[bytes | None, FieldError | None]:
    # bound before decoding: base64 is 4/3 of the bytes
    if len(value) > (hub.settings.max_material_bytes * 4) // 3 + 4:
        limit = hub.settings.max_material_bytes / 1024 / 1024
        return None, FieldError.of(where, f"文件超过大小上限 {limit:g} MB", f"file larger than {limit:g} MB")
    try:
        content = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None, FieldError.of(where, "文件内容不是有效的 base64", "not valid base64")
    if reason := hub.store.check(content):
        return None, FieldError(where, reason)
    return content, None


def _new_application(hub: Hub, auth: DeviceAuth, rec: KitRecordIn) -> tuple[NewApplication, bytes | None]:
    errors: list[FieldError] = []
    materials = []
    for i, photo in enumerate(rec.photos):
        content, bad = _decode(hub, f"photos[{i}] ({photo.filename})", photo.content_b64)
        if bad:
            errors.append(bad)
        else:
            materials.append(MaterialIn(name=photo.name, filename=photo.filename, content=content))
    signature = None
    if rec.signature_b64 is not None:
        signature, bad = _decode(hub, "signature", rec.signature_b64)
        if bad:
            errors.append(bad)
        elif not signature.startswith(b"\x89PNG\r\n\x1a\n"):
            errors.append(FieldError.of("signature", "签名应为 PNG 图片", "signature must be a PNG"))
    if errors:
        raise InvalidInput(errors)
    new = NewApplication(
        subject=rec.item,
        desk=auth.desk,
        applicant=rec.applicant,
        agent=auth.agent,
        form=rec.form,
        materials=materials,
        source_ref=rec.id,
    )
    return new, signature


def _claim_all(hub: Hub, device_id: int, wanted: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Record id -> ('new'|'pending'|'done'|'conflict', number) for the batch's records, writing
    the pending rows of the new ones — one transaction for the whole batch. Two requests racing
    with the same record (a kit that retried while its first request still ran) meet the unique
    constraint: the loser reads what the winner wrote."""
    for _ in range(3):
        try:
            with hub.transaction() as session:
                rows = session.scalars(
                    select(KitRecord).where(KitRecord.device_id == device_id, KitRecord.record_id.in_(list(wanted)))
                )
                out: dict[str, tuple[str, str | None]] = {}
                for row in rows:
                    if row.content_sha256 != wanted[row.record_id]:
                        out[row.record_id] = ("conflict", row.application_number)
                    else:
                        out[row.record_id] = ("done" if row.application_number else "pending", row.application_number)
                now = naive_utc(hub.now())
                for rid, digest in wanted.items():
                    if rid not in out:
                        session.add(
                            KitRecord(device_id=device_id, record_id=rid, content_sha256=digest, created_at=now)
                        )
                        out[rid] = ("new", None)
            return out
        except IntegrityError:
            continue
    raise RuntimeError("kit records could not be claimed")


@dataclass
class _Outcome:
    """What receiving did, written back in one transaction for the batch."""

    numbers: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> (number, signature sha)
    refused: list[str] = field(default_factory=list)


def _finish(hub: Hub, device_id: int, outcome: _Outcome) -> None:
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        if outcome.numbers:
            rows = session.scalars(
                select(KitRecord).where(
                    KitRecord.device_id == device_id, KitRecord.record_id.in_(list(outcome.numbers))
                )
            )
            for row in rows:
                row.application_number, row.signature_sha256 = outcome.numbers[row.record_id]
                row.synced_at = now
        if outcome.refused:  # a refused record leaves nothing: fixed, it is sent again under its id
            session.execute(
                delete(KitRecord).where(
                    KitRecord.device_id == device_id,
                    KitRecord.record_id.in_(outcome.refused),
                    KitRecord.application_number.is_(None),
                )
            )
        if (device := session.get(KitDevice, device_id)) is not None:
            device.last_sync_at = now


def _receive(hub: Hub, auth: DeviceAuth, rec: KitRecordIn, outcome: _Outcome) -> Result:
    try:
        new, signature = _new_application(hub, auth, rec)
        app, made = receive(hub, new, auth.actor, brief=True)
    except InvalidInput as exc:
        outcome.refused.append(rec.id)
        return Result(rec.id, "refused", errors=[e.as_dict() for e in exc.errors])
    except Forbidden as exc:
        outcome.refused.append(rec.id)
        return Result(rec.id, "refused", errors=[FieldError("item", Reason(str(exc), str(exc))).as_dict()])
    sig_hash = hub.store.put(signature).sha256 if signature is not None else None
    outcome.numbers[rec.id] = (app.number, sig_hash)
    return Result(rec.id, "accepted", number=app.number, again=not made)


def sync(hub: Hub, auth: DeviceAuth, records: list[Any]) -> list[Result]:
    """Each record's result, in order. The caller bounds the request's size; this its count."""
    if len(records) > MAX_RECORDS:
        raise InvalidInput.field(
            "records", f"每次最多同步 {MAX_RECORDS} 条记录", f"at most {MAX_RECORDS} records per request"
        )
    results: list[Result | None] = [None] * len(records)
    parsed: list[tuple[int, KitRecordIn, str]] = []
    for i, raw in enumerate(records):
        try:
            rec = KitRecordIn.model_validate(raw)
        except ValidationError as exc:
            rid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            results[i] = Result(rid, "refused", errors=_pydantic_errors(exc))
            continue
        parsed.append((i, rec, content_hash(rec.model_dump(mode="json"))))
    wanted: dict[str, str] = {}
    for i, rec, digest in parsed:
        if rec.id in wanted and wanted[rec.id] != digest:  # one id twice in a request, different content
            results[i] = Result(rec.id, "conflict", errors=[_conflict(rec.id, None).as_dict()])
        wanted.setdefault(rec.id, digest)
    claimed = _claim_all(hub, auth.device_id, wanted) if wanted else {}
    outcome = _Outcome()
    for i, rec, _digest in parsed:
        if results[i] is not None:
            continue
        state, number = claimed[rec.id]
        if state == "conflict":
            results[i] = Result(rec.id, "conflict", number=number, errors=[_conflict(rec.id, number).as_dict()])
        elif state == "done" or rec.id in outcome.numbers:
            results[i] = Result(rec.id, "accepted", number=number or outcome.numbers[rec.id][0], again=True)
        else:  # new, or pending: a request that died before recording its number (receive answers it)
            results[i] = _receive(hub, auth, rec, outcome)
    _finish(hub, auth.device_id, outcome)
    return [r for r in results if r is not None]


def _conflict(record_id: str, number: str | None) -> FieldError:
    return FieldError.of(
        "id",
        f"记录编号 {record_id} 已用于内容不同的另一条记录" + (f"（办件 {number}）" if number else ""),
        "this record id was already sent with other content",
    )
