"""Agency figures for the supervisors' dashboard and the daily report: door-to-door visits, tasks
opened and done, applications produced by tasks — counted by the county's calendar day
(Asia/Shanghai), `start` and `end` both included."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.storage.tables import AgencyTask, AgencyTaskApplication, AgencyVisit

COUNTY_TZ = ZoneInfo("Asia/Shanghai")


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The naive-UTC instants the tables store for [start 00:00, end+1 00:00) Beijing time."""
    lo = datetime.combine(start, time(), COUNTY_TZ).astimezone(UTC).replace(tzinfo=None)
    hi = datetime.combine(end + timedelta(days=1), time(), COUNTY_TZ).astimezone(UTC).replace(tzinfo=None)
    return lo, hi


def counts(session: Session, start: date, end: date) -> dict[str, int]:
    lo, hi = _bounds(start, end)

    def n(stmt) -> int:
        return int(session.scalar(stmt) or 0)

    return {
        "visits": n(
            select(func.count(AgencyVisit.id)).where(AgencyVisit.visited_at >= lo, AgencyVisit.visited_at < hi)
        ),
        "tasks_opened": n(
            select(func.count(AgencyTask.id)).where(AgencyTask.created_at >= lo, AgencyTask.created_at < hi)
        ),
        "tasks_done": n(
            select(func.count(AgencyTask.id)).where(
                AgencyTask.state == "done", AgencyTask.closed_at >= lo, AgencyTask.closed_at < hi
            )
        ),
        "applications": n(
            select(func.count(AgencyTaskApplication.id)).where(
                AgencyTaskApplication.created_at >= lo, AgencyTaskApplication.created_at < hi
            )
        ),
    }
