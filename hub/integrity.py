"""Whole-hub integrity: every application's event chain and every material file the database
refers to (present in the store, the right size, the right sha256). What a restore drill must
prove, and what `hub apps verify-all` prints. Signing evidence is the `video` plugin's
(`hub evidence verify --all`): the core does not read recordings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from hub.batches.staging import sha256_of
from hub.context import Hub
from hub.events import verify_chain
from hub.storage.tables import Application, AttachedMaterial, Blob

CHUNK = 500  # applications (with their events) or blobs read at a time: memory stays flat

# Told after each chunk: (phase "chains" | "materials", done so far, total when it started).
Progress = Callable[[str, int, int], None]


def _silent(phase: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Failure:
    kind: str  # chain | material
    subject: str  # an application number, or a material file relative to the hub home
    problem: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}"


@dataclass
class Tally:
    checked: int = 0
    failed: int = 0


@dataclass
class IntegrityReport:
    chains: Tally = field(default_factory=Tally)
    events: int = 0
    materials: Tally = field(default_factory=Tally)
    bytes_hashed: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _applications(hub: Hub) -> Iterator[Application]:
    """Every application with its events, by id, a chunk at a time (keyset: no OFFSET scans)."""
    last = 0
    while True:
        with hub.sessions() as session:
            rows = list(
                session.scalars(
                    select(Application)
                    .where(Application.id > last)
                    .options(selectinload(Application.events))
                    .order_by(Application.id)
                    .limit(CHUNK)
                )
            )
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _count(hub: Hub, table: type[Application] | type[Blob]) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def check_chains(hub: Hub, report: IntegrityReport, progress: Progress = _silent) -> None:
    total = _count(hub, Application)
    for app in _applications(hub):
        result = verify_chain(app)
        report.chains.checked += 1
        if report.chains.checked % CHUNK == 0:
            progress("chains", report.chains.checked, total)
        report.events += result.events
        if not result.ok:
            report.chains.failed += 1
            report.failures.append(Failure("chain", app.number, result.problem or "chain broken"))
    progress("chains", report.chains.checked, total)


def _blobs(hub: Hub) -> Iterator[Blob]:
    last = ""
    while True:
        with hub.sessions() as session:
            rows = list(session.scalars(select(Blob).where(Blob.sha256 > last).order_by(Blob.sha256).limit(CHUNK)))
        if not rows:
            return
        yield from rows
        last = rows[-1].sha256


def _used_by(hub: Hub, sha256: str) -> str:
    """Which application refers to a file, for the message: the number and the material's name."""
    with hub.sessions() as session:
        row = session.execute(
            select(Application.number, AttachedMaterial.name, func.count().over())
            .join(AttachedMaterial, AttachedMaterial.application_id == Application.id)
            .where(AttachedMaterial.sha256 == sha256)
            .order_by(AttachedMaterial.id)
            .limit(1)
        ).first()
    if row is None:
        return "no application refers to it"
    number, name, uses = row
    return f"application {number}, {name}" + (f" and {uses - 1} more" if uses > 1 else "")


def check_materials(hub: Hub, report: IntegrityReport, progress: Progress = _silent) -> None:
    """Every blob row's file: present, its size, its sha256 (the store is content-addressed, so
    the name is the hash the bytes must have)."""
    home = hub.settings.home
    total = _count(hub, Blob)
    for blob in _blobs(hub):
        path = hub.store.path_of(blob.sha256)
        shown = path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path)
        report.materials.checked += 1
        if report.materials.checked % CHUNK == 0:
            progress("materials", report.materials.checked, total)
        problem = None
        if not path.is_file():
            problem = "missing"
        elif (size := path.stat().st_size) != blob.size:
            problem = f"{size} bytes, the database says {blob.size}"
        else:
            report.bytes_hashed += size
            if sha256_of(path) != blob.sha256:
                problem = "sha256 does not match (the file's name is its hash)"
        if problem:
            report.materials.failed += 1
            report.failures.append(Failure("material", shown, f"{problem} ({_used_by(hub, blob.sha256)})"))
    progress("materials", report.materials.checked, total)


def verify_hub(hub: Hub, *, materials: bool = True, progress: Progress = _silent) -> IntegrityReport:
    """Check every chain, then (unless told not to) every material file. Never stops at the
    first failure: a restore drill wants the whole count. Re-hashing every event in Python is
    the cost (~1,000 applications a second, docs/scaling.md): `progress` hears of each chunk."""
    report = IntegrityReport()
    check_chains(hub, report, progress)
    if materials:
        check_materials(hub, report, progress)
    return report
