"""`daily_report(day)`: the figures the seed reports quote, for one day, per channel, desk and
department, written to `reports/daily-<day>.json` and `.csv` in the hub home.

Definitions (also in docs/airflow.md):

- received (收件量): applications submitted that day (an intake batch's records count on the day
  they were received by the hub);
- accepted (受理量): applications accepted that day;
- completed (办结量): applications decided that day;
- completion rate (办结率): of the applications accepted that day, the share decided by the time
  the report is made;
- on-time rate (按时办结率): of those completed that day, the share decided on or before the due date;
- instant ratio (即办件占比): of those received that day, the share whose every item is instant
  (promised in 0 working days).

Per department the unit is the part (one item of an application) rather than the application."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select

from hub.context import Hub
from hub.storage.tables import Application, Event, Part

DONE = ("decided", "issued", "delivered")


@dataclass
class Figures:
    received: int = 0
    accepted: int = 0
    completed: int = 0
    accepted_completed: int = 0
    on_time: int = 0
    instant: int = 0

    @property
    def completion_rate(self) -> float | None:
        return round(self.accepted_completed / self.accepted, 4) if self.accepted else None

    @property
    def on_time_rate(self) -> float | None:
        return round(self.on_time / self.completed, 4) if self.completed else None

    @property
    def instant_ratio(self) -> float | None:
        return round(self.instant / self.received, 4) if self.received else None

    def as_dict(self) -> dict:
        return asdict(self) | {
            "completion_rate": self.completion_rate,
            "on_time_rate": self.on_time_rate,
            "instant_ratio": self.instant_ratio,
        }


@dataclass
class DailyReport:
    day: date
    total: Figures
    by: dict[str, dict[str, Figures]]  # dimension -> key -> figures
    json_path: Path
    csv_path: Path

    def line(self) -> str:
        t = self.total
        rate = f"{t.completion_rate:.1%}" if t.completion_rate is not None else "-"
        return (
            f"report {self.day}: {t.received} received, {t.accepted} accepted, {t.completed} completed, "
            f"completion rate {rate}; written {self.json_path.name}, {self.csv_path.name}"
        )


def _utc_range(hub: Hub, day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=hub.settings.tz).astimezone(UTC).replace(tzinfo=None)
    return start, start + timedelta(days=1)


def daily_report(hub: Hub, day: date) -> DailyReport:
    start, end = _utc_range(hub, day)
    total = Figures()
    by: dict[str, dict[str, Figures]] = {d: defaultdict(Figures) for d in ("channel", "desk", "department")}
    with hub.sessions() as session:
        rows = session.execute(
            select(Event.action, Event.data, Application.id, Application.channel, Application.desk_code)
            .join(Application, Application.id == Event.application_id)
            .where(Event.at >= start, Event.at < end, Event.action.in_(("submit", "accept", "decide")))
        ).all()
        ids = {r.id for r in rows}
        parts: dict[int, list[Part]] = defaultdict(list)
        states: dict[int, str] = {}
        for chunk in _chunks(sorted(ids), 900):
            for p in session.scalars(select(Part).where(Part.application_id.in_(chunk))):
                parts[p.application_id].append(p)
            for app_id, state in session.execute(
                select(Application.id, Application.state).where(Application.id.in_(chunk))
            ):
                states[app_id] = state
    for action, data, app_id, channel, desk in rows:
        app_parts = parts[app_id]
        targets = [total, by["channel"][channel], by["desk"][desk]]
        dept_targets = [by["department"][p.department_code] for p in app_parts]
        if action == "submit":
            instant = all(p.promised_days == 0 for p in app_parts)
            for f in targets:
                f.received += 1
                f.instant += instant
            for p, f in zip(app_parts, dept_targets, strict=True):
                f.received += 1
                f.instant += p.promised_days == 0
        elif action == "accept":
            done = states.get(app_id) in DONE
            for f in targets + dept_targets:
                f.accepted += 1
                f.accepted_completed += done
        else:  # decide
            on_time = bool((data or {}).get("on_time", True))
            for f in targets + dept_targets:
                f.completed += 1
                f.on_time += on_time
    folder = hub.settings.path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    report = DailyReport(day, total, by, folder / f"daily-{day}.json", folder / f"daily-{day}.csv")
    _write(report)
    return report


def _chunks(items: list[int], size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


COLUMNS = [
    "dimension",
    "key",
    "received",
    "accepted",
    "completed",
    "completion_rate",
    "on_time_rate",
    "instant_ratio",
]


def _write(report: DailyReport) -> None:
    body = {
        "day": report.day.isoformat(),
        "total": report.total.as_dict(),
        **{dim: {k: f.as_dict() for k, f in sorted(keys.items())} for dim, keys in report.by.items()},
    }
    tmp = report.json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(report.json_path)
    tmp = report.csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as f:  # with BOM: Excel opens Chinese correctly
        w = csv.writer(f)
        w.writerow(COLUMNS)
        rows = [("total", "all", report.total)] + [
            (dim, key, fig) for dim, keys in report.by.items() for key, fig in sorted(keys.items())
        ]
        for dim, key, fig in rows:
            d = fig.as_dict()
            w.writerow([dim, key] + [d[c] if d[c] is not None else "" for c in COLUMNS[2:]])
    tmp.replace(report.csv_path)
