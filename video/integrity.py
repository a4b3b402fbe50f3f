"""Every evidence package of a hub at once (`hub evidence verify --all`, the restore drill): each
session whose evidence was sealed is checked as `hub evidence verify SESSION` checks one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from hub import signing
from hub.context import Hub
from hub.crypto import VerifyKey
from hub.storage.tables import SigningSession
from video import evidence


@dataclass(frozen=True)
class SessionFailure:
    session: str
    number: str
    problems: list[str]


@dataclass
class EvidenceReport:
    sealed: int = 0  # sessions with a recorded manifest whose recordings are kept: checked
    ok: int = 0
    files: int = 0  # files whose hash was compared
    open: int = 0  # still running (or left by a dead process): nothing sealed to check yet
    unsealed: int = 0  # ended, evidence not sealed (`hub signing recover` seals it)
    purged: int = 0  # recordings deleted after their retention (audited)
    failures: list[SessionFailure] = field(default_factory=list)


def verify_all(hub: Hub, public_key: Callable[[], VerifyKey]) -> EvidenceReport:
    """`public_key`: asked for only when there is a package to check (a hub that never sealed
    one may have no key at all)."""
    report = EvidenceReport()
    key: VerifyKey | None = None
    with hub.sessions() as session:
        rows = list(session.scalars(select(SigningSession).order_by(SigningSession.created_at, SigningSession.id)))
    for s in rows:
        if s.purged_at is not None:
            report.purged += 1
            continue
        if s.manifest_sha256 is None:
            if s.state == "open":
                report.open += 1
            else:
                report.unsealed += 1
            continue
        report.sealed += 1
        folder = signing.folder_of(hub, s)
        if not folder.is_dir():
            shown = f"{hub.settings.signing.recordings_dir}/{s.id}/"
            report.failures.append(SessionFailure(s.id, s.number, [f"{shown}: missing (the whole folder)"]))
            continue
        key = key or public_key()
        verdict = evidence.verify_folder(folder, key, expected={"session": s.id, "manifest_sha256": s.manifest_sha256})
        report.files += verdict.checked
        if verdict.ok:
            report.ok += 1
        else:
            report.failures.append(SessionFailure(s.id, s.number, verdict.problems))
    return report
