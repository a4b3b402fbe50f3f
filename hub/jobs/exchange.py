"""`exchange`: send what partner hubs are owed (跨省通办), and keep their item lists fresh.
Thin: the work is `hub.exchange`'s."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.context import Hub
from hub.errors import HubError
from hub.exchange import catalogue
from hub.exchange.send import SendSummary, send


def exchange(hub: Hub, *, partner: str | None = None) -> SendSummary:
    return send(hub, partner=partner)


@dataclass
class CatalogueSummary:
    synced: dict[str, str] = field(default_factory=dict)  # partner -> version
    failed: dict[str, str] = field(default_factory=dict)  # partner -> why

    @property
    def errors(self) -> int:
        return len(self.failed)

    def line(self) -> str:
        parts = [f"{name} {version}" for name, version in sorted(self.synced.items())]
        line = f"catalogues: {len(self.synced)} synced" + (f" ({', '.join(parts)})" if parts else "")
        for name, why in sorted(self.failed.items()):
            line += f"\n  对方 {name} 未同步 not synced: {why}"
        return line


def sync_catalogues(hub: Hub, *, partner: str | None = None) -> CatalogueSummary:
    summary = CatalogueSummary()
    for name, p in sorted(hub.partners.by_name.items()):
        if partner and name != partner:
            continue
        try:
            version, _, _ = catalogue.sync(hub, p)
            summary.synced[name] = version
        except HubError as exc:
            summary.failed[name] = str(exc)
    for name, problems in hub.partners.problems.items():
        if not partner or name == partner:
            summary.failed[name] = "; ".join(str(p) for p in problems)
    return summary
