"""Receiving a checked batch's records: each record checked as the county would check it at the
desk, the good ones received `chunk` at a time (one transaction per chunk) as applications in
state `pre_reviewed`, the bad ones returned as error report lines.

Chunks are worked in this process, or — for a large batch on PostgreSQL — by worker
processes, each checking and receiving whole chunks while the others do the same: the checks
are Python work, and one process uses one core. Outcomes come back in file order either way,
so the error report reads top to bottom and progress counts up. Every chunk commits on its own;
if anything fails, the chunks not yet committed are dropped and the batch stays on the source,
to be read again: what was committed is then recognised as duplicates."""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import types
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hub import applications as svc
from hub import text
from hub.applications import Actor
from hub.applications.models import identity_key
from hub.batches.format import Manifest, Record, reason_for
from hub.batches.records import Line, Parser, RawLine
from hub.context import Hub
from hub.errors import FieldError, Reason
from hub.lifecycle import Role
from hub.materials import Stored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What a chunk's worker needs to know of its batch (plain data: it goes to other processes)."""

    source: str
    batch_id: str
    manifest: Manifest
    root: Path  # the staged batch
    parser: Parser


@dataclass
class ChunkOutcome:
    records: int = 0
    created: int = 0
    duplicates: int = 0
    bad: int = 0
    pid: int = field(default_factory=os.getpid)  # the process that worked the chunk
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, error report line as JSON)


def receive(hub: Hub, job: Job, lines: Iterator[RawLine], *, chunk: int, workers: int) -> Iterator[ChunkOutcome]:
    """Check and receive the batch's records chunk by chunk; one outcome per chunk, in order."""
    chunks = iter(lambda: list(islice(lines, chunk)), [])
    if workers <= 1:
        files = _Files(hub, job.root)
        for raw in chunks:
            yield _receive_chunk(hub, job, files, raw)
        return
    initargs = (hub.settings.home, hub.engine.url.render_as_string(hide_password=False), hub.clock, job)
    if problem := _unpicklable(initargs):
        log.warning("ingest: batch %s worked in this process: cannot start workers (%s)", job.batch_id, problem)
        yield from receive(hub, job, lines, chunk=chunk, workers=1)
        return
    pool = ProcessPoolExecutor(
        workers,
        # spawn, not fork: this process may hold threads (an SFTP session's) and database connections
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=initargs,
    )
    pending: deque[Future[ChunkOutcome]] = deque()
    try:
        for raw in chunks:
            with _main_script_hidden():  # a submit may start a worker
                pending.append(pool.submit(_in_worker, raw))
            if len(pending) >= 2 * workers:  # enough queued to keep every worker busy; memory stays bounded
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure: what is running finishes, the rest is dropped


def worker_count(hub: Hub, configured: int, records: int, chunk: int) -> int:
    """How many processes to work a batch with: `configured` if set, else one per core for a batch
    of four chunks or more (starting a worker takes a second or two). Always one on SQLite
    (one writer at a time) and inside a daemon process (which may not start processes)."""
    if hub.engine.dialect.name != "postgresql" or multiprocessing.current_process().daemon:
        return 1
    if configured:
        return configured
    return min(os.cpu_count() or 1, 4) if records >= 4 * chunk else 1


# ---------------------------------------------------------------- worker processes


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """A spawned process first runs its parent's main script again (its imports, not its
    `if __name__ == "__main__"` part), in case the work is a function defined there: the `hub`
    command's whole CLI, or Airflow's, seconds of imports per worker. The work here is in this
    module, so while a worker starts, the main script is not there to be found."""
    with _MAIN_SWAP:  # two ingests in threads of one process must not undo each other's swap
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


_MAIN_SWAP = threading.Lock()


def _unpicklable(initargs: tuple[Any, ...]) -> str | None:
    """Why what a worker starts with cannot reach it (say, a clock defined in the main script), or None."""
    try:
        with _main_script_hidden():
            pickle.dumps(initargs)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_worker: tuple[Hub, Job, _Files] | None = None


def _start_worker(home: Path, database_url: str, clock: Callable[[], datetime], job: Job) -> None:
    global _worker
    _exit_with_parent()
    hub = Hub.open(home, database_url=database_url, clock=clock, connectors=False)
    _worker = (hub, job, _Files(hub, job.root))
    gc.freeze()  # what start-up loaded lives as long as the worker: collections need not look at it


def _exit_with_parent() -> None:
    """A worker whose parent was killed (SIGKILL, the OOM killer) would wait for work for ever,
    holding database connections, and could still be writing when the next run starts: it ends
    as soon as the parent is gone (a chunk it was writing is rolled back; the next run reads the
    batch again)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns once the parent has gone
        os._exit(1)

    threading.Thread(target=watch, name="ingest-parent-watch", daemon=True).start()


def _in_worker(raw: list[RawLine]) -> ChunkOutcome:
    assert _worker is not None, "worker not started"
    return _receive_chunk(*_worker, raw)


# ---------------------------------------------------------------- one chunk


def _receive_chunk(hub: Hub, job: Job, files: _Files, raw: list[RawLine]) -> ChunkOutcome:
    m = job.manifest
    actor = Actor(name=f"intake:{job.source}", role=Role.system, desk=m.desk)
    outcome = ChunkOutcome()
    chunk = [line for number, data in raw if (line := job.parser.parse(number, data)) is not None]
    files.forget_if_full()
    seen = _already_received(hub, m.desk, chunk)
    today = hub.today()
    entries: list[svc.Received] = []
    keys: list[tuple[int, str]] = []
    for line in chunk:
        outcome.records += 1
        identity = _identity(line.data) if line.data is not None else None
        if identity is not None and seen.get(_record_id(line)) == identity:
            outcome.duplicates += 1  # received before (a batch sent again, a resumed run): not re-checked
            continue
        checked = _check(hub, m, line, files, today)
        if isinstance(checked, list):
            outcome.refused += _report(job, line.number, _record_id(line), checked)
            outcome.bad += 1
            continue
        entries.append(checked)
        keys.append((line.number, checked.new.source_ref or ""))
    files.keep(entries)  # the chunk's files into the material store before its rows commit
    for (number, record_id), result in zip(keys, svc.receive_batch(hub, entries, actor), strict=True):
        if result == "created":
            outcome.created += 1
        elif result == "duplicate":
            outcome.duplicates += 1
        else:
            outcome.refused += _report(job, number, record_id, [result])
            outcome.bad += 1
    outcome.refused.sort(key=lambda refusal: refusal[0])  # those refused when written came last
    return outcome


def _check(hub: Hub, m: Manifest, line: Line, files: _Files, today: date) -> svc.Received | list[FieldError]:
    """One record checked as the county would check it at the desk; its files are stored later."""
    if line.problem:
        return [FieldError("(line)", line.problem)]
    if line.suspect and (found := _refused_chars(line.data)):
        return found
    try:
        record = Record.model_validate(line.data)
    except ValidationError as exc:
        return [FieldError(".".join(str(x) for x in e["loc"]) or "(record)", reason_for(e)) for e in exc.errors()]
    problems: list[FieldError] = text.check_all({"pre_review.by": record.pre_review.by})
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
            materials.append(files.material(mat.name, mat.file))
    a = record.applicant
    new = svc.NewApplication(
        subject=record.subject,
        desk=m.desk,
        applicant=svc.Applicant(type=a.type, name=a.name, id=a.id),
        agent=svc.Agent(name=record.agent.name, id_number=record.agent.id_number) if record.agent else None,
        form=dict(record.form),
        materials=materials,
        source_ref=record.record_id,
    )
    subject, form, found = svc.check_new(hub, new, files.verdicts, today)
    problems.extend(found)
    if subject is not None and not problems:  # the desk's first review: the file is complete (or 容缺)
        have = {x.name for x in materials}
        problems.extend(svc.check_complete(hub, subject, have, record.commitment_due, today)[1])
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
    return svc.Received(new=new, subject=subject, form=form, stored=[], pre_review=pre_review)


def _report(job: Job, line: int, record_id: str | None, problems: list[FieldError]) -> list[tuple[int, str]]:
    return [
        (
            line,
            json.dumps(
                {
                    "batch": job.batch_id,
                    "line": line,
                    "record_id": record_id,
                    "field": p.field,
                    "reason_zh": p.reason.zh,  # reasons never quote an ID number
                    "reason_en": p.reason.en,
                },
                ensure_ascii=False,
            ),
        )
        for p in problems
    ]


class _Files:
    """The batch's material files, each looked at once however many records refer to it (a
    household's or a company's scans are often shared): its `MaterialIn`, the store's verdict
    on it, its copy in the store. Staged files do not change while the batch is read. Past
    `LIMIT` files it forgets, so memory stays bounded for batches of very many files."""

    LIMIT = 20_000

    def __init__(self, hub: Hub, root: Path) -> None:
        self.material_store = hub.store
        self.root = root
        self.materials: dict[tuple[str, str], svc.MaterialIn] = {}  # (material name, file) ->
        self.verdicts: dict[str, Reason | None] = {}  # staged path -> why the store refuses it, or None
        self.stored: dict[str, Stored] = {}  # staged path -> its copy in the store

    def forget_if_full(self) -> None:
        if len(self.materials) + len(self.verdicts) + len(self.stored) > self.LIMIT:
            self.materials.clear()
            self.verdicts.clear()
            self.stored.clear()

    def material(self, name: str, file: str) -> svc.MaterialIn:
        found = self.materials.get((name, file))
        if found is None:
            path = self.root / file
            found = self.materials[name, file] = svc.MaterialIn(name=name, filename=path.name, path=path)
        return found

    def keep(self, entries: list[svc.Received]) -> None:
        """Copy the files these entries refer to into the store (each once, several at a time:
        each copy ends in an fsync that waits on the disk, not the CPU) and note them on the entries."""
        todo = {str(m.path): m.path for e in entries for m in e.new.materials if str(m.path) not in self.stored}
        if todo:
            with ThreadPoolExecutor(4, thread_name_prefix="ingest-store") as pool:
                for key, stored in zip(todo, pool.map(self.material_store.put, todo.values()), strict=True):
                    self.stored[key] = stored
        for e in entries:
            e.stored = [self.stored[str(m.path)] for m in e.new.materials]


def _already_received(hub: Hub, desk: str, chunk: list[Line]) -> dict[str, tuple[str, str]]:
    """record id -> (item, applicant id) of the chunk's records already received from this desk.
    A record seen before counts as a duplicate even if it would not pass today (a promised date
    now past, a catalogue changed since): it was good when it came."""
    with hub.sessions() as session:
        return svc.received_refs(session, desk, [r for r in (_record_id(line) for line in chunk) if r])


def _identity(data: dict[str, Any]) -> tuple[str, str] | None:
    applicant = data.get("applicant")
    if not isinstance(applicant, dict) or not isinstance(applicant.get("id"), str):
        return None
    return identity_key(str(data.get("subject")), applicant["id"])


def _record_id(line: Line) -> str | None:
    """The record's id, if it can be one: an id the hub refuses (hub.text) was never received, and
    must not reach the query that looks for ids received before (PostgreSQL cannot hold a NUL)."""
    value = (line.data or {}).get("record_id")
    return value if isinstance(value, str) and text.problem(value) is None else None


def _refused_chars(value: Any, path: str = "") -> list[FieldError]:
    """Every string of the record, keys too, under the hub's rule for characters (hub.text) as
    far as it holds for any field: what no field takes. Single-line fields (names, ids) are held
    to the stricter rule where the record is checked as an application, as on every surface."""
    if isinstance(value, str):
        reason = text.problem(value, multiline=True)
        return [FieldError(path or "(record)", reason)] if reason else []
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            found += _refused_chars(str(k), path or "(record)") + _refused_chars(v, f"{path}.{k}" if path else str(k))
        return found
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _refused_chars(v, f"{path}[{i}]")]
    return []
