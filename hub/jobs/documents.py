"""The documents job (`hub run documents`): owe and issue the notices recent events made owed
and nobody has asked for yet, so each is sealed near the time it speaks of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.documents.issue import issue_pending

if TYPE_CHECKING:
    from hub.context import Hub


@dataclass
class DocumentsSummary:
    owed: int = 0
    issued: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        failed = f"; {len(self.errors)} failed: {self.errors[0]}" if self.errors else ""
        return f"documents: {self.owed} owed, {self.issued} issued{failed}"


def documents(hub: Hub, *, limit: int = 500) -> DocumentsSummary:
    s = issue_pending(hub, limit=limit)
    return DocumentsSummary(s.owed, s.issued, s.failed)
