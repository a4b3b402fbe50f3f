"""`ingest(source)`: intake batches from a bank outlet's SFTP drop or an enclave window's system
become applications in state `pre_reviewed` (the desk's 初审 done), ready for county acceptance.

Per batch (only those the source lists as complete, i.e. with their `.ok` marker):

1. fetch it into a local staging folder (streamed: memory stays bounded) and unpack it;
2. check it against its manifest — files, hashes, record count, a desk this source serves. Any
   mismatch quarantines the **whole** batch: the report goes back to the source, nothing is read;
3. read the records one line at a time and check each (catalogue item delegated to the desk's
   channel, GB 11643 ID, form, materials present with matching hashes). Good records are
   received `chunk` at a time, each chunk in one transaction; bad ones go to the error report
   (line, field, reason in Chinese and English) and change nothing;
4. hand the error report (if any) back to the source and acknowledge the batch.

Idempotent and resumable: a record is keyed by (desk, record id), so a batch read twice, a
record in two batches, or a run killed halfway and started again creates no duplicate. A batch
is acknowledged only after all its records are committed."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy import select

from hub import applications as svc
from hub.applications import Actor
from hub.connections import IntakeSettings
from hub.connectors import Batch, Connector, DeliveryError
from hub.context import Hub
from hub.errors import FieldError, HubError, Reason
from hub.intake import staging
from hub.intake.format import Manifest, Record, reason_for
from hub.intake.records import Line, read_records
from hub.jobs.locks import exclusive
from hub.lifecycle import Role
from hub.materials import Stored
from hub.storage.tables import Application, IntakeBatch

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    batches: int = 0
    records: int = 0
    created: int = 0
    duplicates: int = 0
    bad: int = 0
    quarantined: int = 0
    errors: int = 0  # batches left on the source for the next run (source unreachable, …)
    busy: bool = False  # another run was taking this source's batches: this one did nothing

    def line(self) -> str:
        if self.busy:
            return "ingest: another run is taking this source's batches; nothing done"
        return (
            f"ingest: {self.batches} batches, {self.records} records: {self.created} received, "
            f"{self.duplicates} already received, {self.bad} refused; {self.quarantined} batches quarantined, "
            f"{self.errors} left for the next run"
        )


Progress = Callable[[int], None]


def ingest(hub: Hub, source: str, *, progress: Progress | None = None) -> IngestSummary:
    conn = hub.connections.get(source)
    if conn is None or conn.intake is None:
        known = ", ".join(sorted(n for n, c in hub.connections.items() if c.intake)) or "none"
        raise HubError(f"{source} 不是受理批次来源 (not an intake source; configured: {known})")
    summary = IngestSummary()
    with exclusive(hub, f"ingest:{source}") as held:
        if not held:
            summary.busy = True
            return summary
        staging_root = hub.settings.path("intake") / source
        staging.clear(staging_root)  # what a killed run left; we hold the lock, so no one else's
        connector = hub.connector(source)
        try:
            try:
                batches = connector.list_batches()
            except DeliveryError as exc:
                log.warning("ingest: %s", exc)
                summary.errors += 1
                return summary
            for batch in batches:
                try:
                    _batch(hub, connector, conn.intake, batch, summary, progress or (lambda n: None))
                except DeliveryError as exc:  # the source went away mid-batch: what was committed stays
                    log.warning("ingest: batch %s: %s", batch.id, exc)
                    summary.errors += 1
                except Exception:  # one batch must never stop the others, now or on every later run
                    log.exception("ingest: batch %s failed; left on the source", batch.id)
                    summary.errors += 1
        finally:
            connector.close()
    return summary


def _batch(
    hub: Hub, connector: Connector, intake: IntakeSettings, batch: Batch, summary: IngestSummary, progress: Progress
) -> None:
    base = hub.settings.path("intake") / connector.name
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{batch.id}.", dir=base))
    (work / "batch").mkdir()
    try:
        staged = _fetch_and_check(connector, intake, batch, work / "batch")
        m = staged.manifest
        if m is not None and not staged.problems and m.batch_id != batch.id:
            staged.problems.append(
                staging.Problem(
                    "manifest.json",
                    Reason(
                        f"清单的批次号 {m.batch_id} 与批次名 {batch.id} 不符", "batch_id differs from the batch's name"
                    ),
                    field="batch_id",
                )
            )
        if m is not None and not staged.problems and m.desk not in intake.desks:
            staged.problems.append(
                staging.Problem(
                    "manifest.json",
                    Reason(f"来源 {connector.name} 不代收窗口 {m.desk} 的批次", "this source does not serve that desk"),
                    field="desk",
                )
            )
        if m is not None and not staged.problems and m.desk not in hub.catalog.desks:
            staged.problems.append(
                staging.Problem("manifest.json", Reason(f"窗口 {m.desk} 不存在", "unknown desk"), field="desk")
            )
        summary.batches += 1
        if staged.problems:
            report = work / "report.jsonl"
            _write_jsonl(report, ({"batch": batch.id} | p.as_json() for p in staged.problems))
            connector.reject(batch, report)
            _log_batch(hub, connector.name, batch.id, m, "quarantined", None, staged.problems[0])
            summary.quarantined += 1
            log.warning("ingest: batch %s quarantined: %s", batch.id, staged.problems[0].reason.en)
            return
        report = work / "errors.jsonl"
        counts = IngestSummary()
        with open(report, "w", encoding="utf-8") as errors:
            _records(hub, connector.name, intake, staged, batch, counts, errors, progress)
        connector.ack(batch, report if counts.bad else None)
        _log_batch(hub, connector.name, batch.id, m, "received", counts, None)
        for name in ("records", "created", "duplicates", "bad"):
            setattr(summary, name, getattr(summary, name) + getattr(counts, name))
    finally:
        staging.clear(work)


def _fetch_and_check(connector: Connector, intake: IntakeSettings, batch: Batch, folder: Path) -> staging.Staged:
    try:
        connector.fetch(batch, folder)
    except DeliveryError as exc:
        if exc.retryable:
            raise  # the source may be back next run
        # the batch itself cannot be read as it stands (an unsafe file name, a broken listing)
        reason = Reason(f"无法读取批次: {exc}", f"cannot fetch the batch: {exc}")
        return staging.Staged(folder, problems=[staging.Problem("(batch)", reason)])
    limits = staging.Limits(intake.max_record_bytes, intake.max_batch_bytes, intake.max_files)
    return staging.check(folder, limits)


def _records(
    hub: Hub,
    source: str,
    intake: IntakeSettings,
    staged: staging.Staged,
    batch: Batch,
    counts: IngestSummary,
    errors: IO[str],
    progress: Progress,
) -> None:
    m = staged.manifest
    assert m is not None
    actor = Actor(name=f"intake:{source}", role=Role.system, desk=m.desk)
    lines = read_records(staged.records_path, encoding=m.encoding, limit=intake.max_record_bytes)
    while chunk := list(islice(lines, intake.chunk)):
        kept: dict[Path, Stored] = {}  # staged file -> its copy in the store: records in a row share scans
        entries: list[svc.Received] = []
        keys: list[tuple[int, str]] = []
        seen = _already_received(hub, m.desk, chunk)
        for line in chunk:
            counts.records += 1
            if line.data is not None and seen.get(_record_id(line)) == _identity(line.data):
                counts.duplicates += 1  # received before (a batch sent again, a resumed run): not re-checked
                continue
            checked = _check(hub, staged.root, m, line, kept)
            if isinstance(checked, list):
                _refuse(errors, batch, line.number, _record_id(line), checked)
                counts.bad += 1
                continue
            entries.append(checked)
            keys.append((line.number, checked.new.source_ref or ""))
        for (number, record_id), outcome in zip(keys, svc.receive_batch(hub, entries, actor), strict=True):
            if outcome == "created":
                counts.created += 1
            elif outcome == "duplicate":
                counts.duplicates += 1
            else:
                _refuse(errors, batch, number, record_id, [outcome])
                counts.bad += 1
        progress(len(chunk))


def _already_received(hub: Hub, desk: str, chunk: list[Line]) -> dict[str, tuple[str, str]]:
    """record id -> (item, applicant id) of the chunk's records already received from this desk.
    A record seen before counts as a duplicate even if it would not pass today (a promised date
    now past, a catalogue changed since): it was good when it came."""
    ids = [r for r in (_record_id(line) for line in chunk) if r]
    if not ids:
        return {}
    with hub.sessions() as session:
        rows = session.execute(
            select(Application.source_ref, Application.subject_code, Application.applicant_id).where(
                Application.desk_code == desk, Application.source_ref.in_(ids)
            )
        )
        return {ref: (subject, applicant) for ref, subject, applicant in rows}


def _identity(data: dict[str, Any]) -> tuple[str, str] | None:
    applicant = data.get("applicant")
    if not isinstance(applicant, dict) or not isinstance(applicant.get("id"), str):
        return None
    return (str(data.get("subject")), applicant["id"].strip().upper())


# NUL, other C0 controls but tab and line ends, DEL, and lone surrogates: no database or
# department system takes them, and one would fail the whole chunk at commit.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _control_chars(value: Any, path: str = "") -> list[FieldError]:
    if isinstance(value, str):
        if _CONTROL.search(value):
            return [
                FieldError(
                    path or "(record)", Reason("含有控制字符或无效字符", "contains control or invalid characters")
                )
            ]
        return []
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            found += _control_chars(str(k), path or "(record)") + _control_chars(v, f"{path}.{k}" if path else str(k))
        return found
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _control_chars(v, f"{path}[{i}]")]
    return []


def _record_id(line: Line) -> str | None:
    value = (line.data or {}).get("record_id")
    return value if isinstance(value, str) else None


def _check(hub: Hub, root: Path, m: Manifest, line: Line, kept: dict[Path, Stored]) -> svc.Received | list[FieldError]:
    if line.problem:
        return [FieldError("(line)", line.problem)]
    if found := _control_chars(line.data):
        return found
    try:
        record = Record.model_validate(line.data)
    except ValidationError as exc:
        return [FieldError(".".join(str(x) for x in e["loc"]) or "(record)", reason_for(e)) for e in exc.errors()]
    problems: list[FieldError] = []
    materials = []
    for i, mat in enumerate(record.materials):
        listed = m.files.get(mat.file)
        if listed is None or mat.file == m.records:
            problems.append(
                FieldError(f"materials[{i}].file", Reason(f"批次中没有文件 {mat.file}", "no such file in the batch"))
            )
        elif listed != mat.sha256:
            problems.append(
                FieldError(f"materials[{i}].sha256", Reason("SHA-256与文件不符", "sha256 does not match the file"))
            )
        else:
            materials.append(svc.MaterialIn(name=mat.name, filename=PurePosixPath(mat.file).name, path=root / mat.file))
    new = svc.NewApplication(
        subject=record.subject,
        desk=m.desk,
        applicant=svc.Applicant(type=record.applicant.type, name=record.applicant.name, id=record.applicant.id),
        agent=svc.Agent(name=record.agent.name, id_number=record.agent.id_number) if record.agent else None,
        form=dict(record.form),
        materials=materials,
        source_ref=record.record_id,
    )
    subject, form, found = svc.check_new(hub, new)
    problems.extend(found)
    if subject is not None and not problems:  # the desk's first review: the file is complete (or 容缺)
        problems.extend(
            svc.check_complete(hub, subject, {x.name for x in materials}, record.commitment_due, hub.today())[1]
        )
    if problems or subject is None:
        return problems
    pre_review: dict[str, Any] = {
        "by": record.pre_review.by,
        "at": record.pre_review.at.isoformat(),
        "batch": m.batch_id,
        "line": line.number,
        "note": record.pre_review.note,
    }
    if record.commitment_due:
        pre_review["commitment_due"] = record.commitment_due.isoformat()
    stored = []
    for x in materials:  # staged files match the manifest: one copy into the store per file and chunk
        assert x.path is not None
        if x.path not in kept:
            kept[x.path] = hub.store.put(x.path)
        stored.append(kept[x.path])
    return svc.Received(new=new, subject=subject, form=form, stored=stored, pre_review=pre_review)


def _refuse(errors: IO[str], batch: Batch, line: int, record_id: str | None, problems: list[FieldError]) -> None:
    for p in problems:
        row = {
            "batch": batch.id,
            "line": line,
            "record_id": record_id,
            "field": p.field,
            "reason_zh": p.reason.zh,  # reasons never quote an ID number
            "reason_en": p.reason.en,
        }
        errors.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _log_batch(
    hub: Hub,
    source: str,
    batch_id: str,
    m: Manifest | None,
    state: str,
    counts: IngestSummary | None,
    problem: staging.Problem | None,
) -> None:
    now = hub.now().replace(tzinfo=None)
    with hub.transaction() as session:
        row = session.scalars(
            select(IntakeBatch).where(IntakeBatch.source == source, IntakeBatch.batch_id == batch_id)
        ).one_or_none()
        if row is None:
            row = IntakeBatch(source=source, batch_id=batch_id, first_seen_at=now, runs=0)
            session.add(row)
        row.runs += 1
        row.desk_code = m.desk if m else None
        row.state, row.finished_at = state, now
        row.problem = f"{problem.file}: {problem.reason}"[:1000] if problem else None
        if counts:
            row.records, row.created, row.duplicates, row.bad = (
                counts.records,
                counts.created,
                counts.duplicates,
                counts.bad,
            )
