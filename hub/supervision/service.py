"""The counts the seeds quote about the service channels (服务渠道): trips saved, door-to-door
visits, agency tasks, applications collected by agents, the online share, waiting time, tickets
served and no-shows — for a period of local days [start, end], both included.

One function, `service_counts`, read by the dashboard's "服务渠道" strip, the daily report's
`service` block and its `daily-<day>-service.csv`. It defines nothing twice: each figure comes from
the module that owns it —

- trips saved and the online share from the dashboard's channel rows (`hub.supervision.figures`,
  the rollups), so the strip agrees with the table under it;
- visits and tasks from `hub.agency.figures.counts`;
- tickets, served, no-shows from `hub.appointments.figures.queue_figures` (summed over desks),
  and the waiting time over all tickets with its `p90` (see `_waits` for why the total is read
  here).

The counts are the whole hub's: the dashboard and the report are for supervisors (the pages ask
for `reports:read` and the supervisor role). Every definition is in docs/dashboard.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from hub.agency.figures import counts as agency_counts
from hub.appointments.figures import QueueFigures, p90, queue_figures
from hub.catalog.models import Channel
from hub.context import Hub
from hub.storage.tables import AgencyTaskApplication, KitRecord, QueueTicket
from hub.supervision.figures import TOTAL_KEY, Row, figures, utc_bounds

ONLINE = Channel.online.value


@dataclass
class ServiceCounts:
    """The service channels' counts over [start, end]. None = nothing to average or divide."""

    start: date
    end: date
    trips_saved: int = 0  # 少跑次数: the dashboard's total row (就近收件 + 容缺受理 + 邮寄送达)
    visits: int = 0  # 上门服务次数: agency visits made in the period
    tasks_opened: int = 0  # 代办任务（新建）
    tasks_done: int = 0  # 代办任务（办结）
    agent_applications: int = 0  # 代办员收件: distinct applications from the kit or from tasks
    agent_applications_kit: int = 0  # of which synced from an offline kit (政务背包)
    agent_applications_tasks: int = 0  # of which produced by an agency task
    received: int = 0  # 收件量 (all channels)
    received_online: int = 0  # 网上收件: received at desks of the online channel
    tickets: int = 0  # 取号
    served: int = 0  # 办结的号
    no_shows: int = 0  # 过号
    wait_avg: float | None = None  # 平均等候, minutes (ticket → call)
    wait_p90: float | None = None  # 等候P90, minutes

    @property
    def online_share(self) -> float | None:
        """网办率: received online / all received (a fraction, 4 decimals); None when nothing came in."""
        return round(self.received_online / self.received, 4) if self.received else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d | {"online_share": self.online_share}


# (name, 中文, English): the strip's order, the report CSV's rows
FIGURES: list[tuple[str, str, str]] = [
    ("trips_saved", "少跑次数", "trips saved"),
    ("visits", "上门服务次数", "door-to-door visits"),
    ("tasks_opened", "代办任务（新建）", "agency tasks opened"),
    ("tasks_done", "代办任务（办结）", "agency tasks done"),
    ("agent_applications", "代办员收件", "applications collected by agents"),
    ("agent_applications_kit", "其中政务背包", "of which by the offline kit"),
    ("agent_applications_tasks", "其中代办任务", "of which by agency tasks"),
    ("received", "收件量", "received"),
    ("received_online", "网上收件", "received online"),
    ("online_share", "网办率", "online share"),
    ("tickets", "取号", "tickets"),
    ("served", "办结的号", "tickets served"),
    ("no_shows", "过号", "no-shows"),
    ("wait_avg", "平均等候（分）", "average wait (min)"),
    ("wait_p90", "等候P90（分）", "wait p90 (min)"),
]


def service_counts(
    hub: Hub,
    start: date,
    end: date,
    *,
    channel_rows: list[Row] | None = None,
    queue: QueueFigures | None = None,
) -> ServiceCounts:
    """The counts for the local days [start, end]. `channel_rows` and `queue`: the dashboard's
    rows by channel (`figures(hub, start, end, "channel")`) and the queue's figures
    (`queue_figures(hub, start, end)`) for the same period when the caller has them already, so
    the page does not run those queries twice."""
    rows = channel_rows if channel_rows is not None else figures(hub, start, end, "channel", ratings=False)
    total = next(r for r in rows if r.key == TOTAL_KEY)
    out = ServiceCounts(start, end)
    out.trips_saved = total.trips_saved
    out.received = total.received
    out.received_online = sum(r.received for r in rows if r.key == ONLINE)

    lo, hi = utc_bounds(hub, start, end)
    with hub.sessions() as session:
        agency = agency_counts(session, start, end)
        kit = select(KitRecord.application_number.label("number")).where(
            KitRecord.application_number.is_not(None), KitRecord.synced_at >= lo, KitRecord.synced_at < hi
        )
        tasks = select(AgencyTaskApplication.application_number.label("number")).where(
            AgencyTaskApplication.created_at >= lo, AgencyTaskApplication.created_at < hi
        )
        # an application can come from a task *and* through the kit: counted once (UNION is distinct)
        both = union(kit, tasks).subquery()
        out.agent_applications = int(session.scalar(select(func.count()).select_from(both)) or 0)
        out.agent_applications_kit = int(session.scalar(select(func.count()).select_from(kit.subquery())) or 0)
        out.agent_applications_tasks = agency["applications"]
        waits = _waits(session, start, end)
    out.visits, out.tasks_opened, out.tasks_done = agency["visits"], agency["tasks_opened"], agency["tasks_done"]

    queue = queue if queue is not None else queue_figures(hub, start, end)
    out.tickets = sum(r.tickets for r in queue.by_desk)
    out.served = sum(r.served for r in queue.by_desk)
    out.no_shows = sum(r.no_shows for r in queue.by_desk)
    if waits:
        out.wait_avg = round(sum(waits) / len(waits), 1)
        out.wait_p90 = round(p90(waits) or 0.0, 1)
    return out


def _waits(session: Session, start: date, end: date) -> list[float]:
    """Every called ticket's wait in minutes, as hub.appointments.figures measures it (created →
    called, tickets of the days start..end). Its figures are per desk, group and item with no
    total row, and a p90 over all desks cannot be made from the desks' p90s, so the waits are
    read here; a test checks that with one desk this equals its desk row."""
    stmt = select(QueueTicket.created_at, QueueTicket.called_at).where(
        QueueTicket.day >= start, QueueTicket.day <= end, QueueTicket.called_at.is_not(None)
    )
    return [(r.called_at - r.created_at).total_seconds() / 60 for r in session.execute(stmt)]


def shown(counts: ServiceCounts, name: str) -> str:
    """A figure as the page shows it: the share as a percentage, minutes with one decimal, none as "—"."""
    value = counts.as_dict()[name]
    if value is None:
        return "—"
    if name == "online_share":
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def csv_value(counts: ServiceCounts, name: str) -> str:
    """A figure in the CSV: the share as a fraction (0.3333), none as empty."""
    value = counts.as_dict()[name]
    return "" if value is None else str(value)


__all__ = ["FIGURES", "ServiceCounts", "csv_value", "service_counts", "shown"]
