"""`ingest(source)`: intake batches from a bank outlet's SFTP drop or an enclave window's system
become applications in state `pre_reviewed` (the desk's 初审 done), ready for county acceptance.

Per batch (only those the source lists as complete, i.e. with their `.ok` marker):

1. fetch it into a local staging folder (streamed: memory stays bounded) and unpack it;
2. check it against its manifest — files, hashes, record count, a desk this source serves. Any
   mismatch quarantines the **whole** batch: the report goes back to the source, nothing is read;
3. read the records one line at a time and check each (catalogue item delegated to the desk's
   channel, GB 11643 ID, form, materials present with matching hashes). Good records are
   received `chunk` at a time, each chunk in one transaction; bad ones go to the error report
   (line, field, reason in Chinese and English) and change nothing. `hub.jobs.ingest_records` does
   this part, in worker processes for a large batch on PostgreSQL;
4. hand the error report (if any) back to the source and acknowledge the batch.

Idempotent and resumable: a record is keyed by (desk, record id), so a batch read twice, a
record in two batches, or a run killed halfway and started again creates no duplicate. A batch
is acknowledged only after all its records are committed."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from hub.batches import staging
from hub.batches.format import Manifest
from hub.batches.records import Line, raw_records
from hub.connection_config import IntakeSettings
from hub.connectors import Batch, Connector, DeliveryError
from hub.context import Hub
from hub.errors import HubError, Reason
from hub.jobs import ingest_records
from hub.jobs.locks import exclusive
from hub.storage.tables import IntakeBatch, naive_utc

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

    def add_records(self, other: IngestSummary | ingest_records.ChunkOutcome) -> None:
        """Add another batch's (or chunk's) record counts to these."""
        self.records += other.records
        self.created += other.created
        self.duplicates += other.duplicates
        self.bad += other.bad

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
    started = time.perf_counter()
    try:
        staged = _fetch_and_check(connector, intake, batch, work / "batch")
        checked = time.perf_counter()
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
        received = time.perf_counter()
        connector.ack(batch, report if counts.bad else None)
        _log_batch(hub, connector.name, batch.id, m, "received", counts, None)
        log.info(
            "ingest: batch %s: %d records (%d received, %d already, %d refused); fetched and checked in %.1f s, "
            "records in %.1f s, acknowledged in %.1f s",
            batch.id,
            counts.records,
            counts.created,
            counts.duplicates,
            counts.bad,
            checked - started,
            received - checked,
            time.perf_counter() - received,
        )
        summary.add_records(counts)
    finally:
        staging.clear(work)


def _fetch_and_check(connector: Connector, intake: IntakeSettings, batch: Batch, folder: Path) -> staging.Staged:
    started = time.perf_counter()
    try:
        connector.fetch(batch, folder)
        log.info("ingest: batch %s fetched in %.1f s", batch.id, time.perf_counter() - started)
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
    with open(staged.records_path, "rb") as f:
        parser, lines = raw_records(
            f, csv=m.records.endswith(".csv"), encoding=m.encoding, limit=intake.max_record_bytes
        )
        if isinstance(parser, Line):  # staging.check quarantines a batch whose CSV header is unreadable
            raise HubError(f"{m.records}: {parser.problem}")
        job = ingest_records.Job(source=source, batch_id=batch.id, manifest=m, root=staged.root, parser=parser)
        workers = ingest_records.worker_count(hub, intake.workers, m.record_count, intake.chunk)
        pids = set()
        for outcome in ingest_records.receive(hub, job, lines, chunk=intake.chunk, workers=workers):
            counts.add_records(outcome)
            errors.writelines(text + "\n" for _, text in outcome.refused)
            pids.add(outcome.pid)
            progress(outcome.records)
    if workers > 1:
        log.info("ingest: batch %s: worked by %d worker processes (%s)", batch.id, workers, sorted(pids))


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
    now = naive_utc(hub.now())
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
