"""`housekeeping()`: the daily tidy-up. Material files no application refers to (a write that
failed after its files were put in the store; the store never deletes in the failing request,
because another request may be adopting the same bytes at that moment) are removed once they are
an hour old, as are uploads a crash left half-received; recordings of signing sessions past
their retention are deleted, each deletion an audit event (hub.signing.purge)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from hub import signing
from hub.applications import Actor
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import Blob

KEEPER = Actor(name="housekeeping", role=Role.system)
ORPHAN_AGE = 3600  # seconds: older than any request that could still be committing its blob row
INCOMING_AGE = 86_400  # seconds: a half-received upload no request is still writing
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class HousekeepingSummary:
    orphans: int = 0
    incoming: int = 0
    recordings: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"housekeeping: {self.orphans} unreferenced material file(s) and {self.incoming} abandoned upload(s) "
            f"removed; {len(self.recordings)} recording(s) past retention deleted"
        )


def sweep_store(hub: Hub, now: float | None = None) -> tuple[int, int]:
    """(orphans, abandoned uploads) removed from the material store."""
    now = now if now is not None else time.time()
    root = hub.store.root
    if not root.is_dir():
        return 0, 0
    candidates: dict[str, Path] = {}
    incoming = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        age = now - path.stat().st_mtime
        if path.name.startswith(".incoming-"):
            if age > INCOMING_AGE:
                path.unlink(missing_ok=True)
                incoming += 1
        elif _SHA.match(path.name) and age > ORPHAN_AGE:
            candidates[path.name] = path
    orphans = 0
    names = sorted(candidates)
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        with hub.sessions() as session:
            known = set(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(chunk))))
        for sha in chunk:
            if sha not in known:
                candidates[sha].unlink(missing_ok=True)
                orphans += 1
    return orphans, incoming


def housekeeping(hub: Hub) -> HousekeepingSummary:
    orphans, incoming = sweep_store(hub)
    return HousekeepingSummary(orphans, incoming, signing.purge(hub, KEEPER))
