"""`daily_report(day)`: the day's figures (`hub.supervision.report`, the dashboard's query for
one day), per channel, desk and department, written to `reports/daily-<day>.json` and `.csv` in
the hub home; the service channels' counts (`hub.supervision.service`, the dashboard's 服务渠道)
as the JSON's `service` block and `reports/daily-<day>-service.csv` (figure, name, value: the
main CSV keeps its columns). The definitions are in `hub.supervision.figures`, docs/airflow.md
and docs/dashboard.md."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from hub.context import Hub
from hub.supervision.figures import Figures
from hub.supervision.report import day_figures
from hub.supervision.service import FIGURES as SERVICE_FIGURES
from hub.supervision.service import ServiceCounts, csv_value, service_counts


@dataclass
class DailyReport:
    day: date
    total: Figures
    by: dict[str, dict[str, Figures]]  # dimension -> key -> figures
    json_path: Path
    csv_path: Path
    service: ServiceCounts
    service_csv_path: Path

    def line(self) -> str:
        t = self.total
        rate = f"{t.completion_rate:.1%}" if t.completion_rate is not None else "-"
        return (
            f"report {self.day}: {t.received} received, {t.accepted} accepted, {t.completed} completed, "
            f"completion rate {rate}; written {self.json_path.name}, {self.csv_path.name}, "
            f"{self.service_csv_path.name}"
        )


def daily_report(hub: Hub, day: date) -> DailyReport:
    figures = day_figures(hub, day)
    folder = hub.settings.path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    report = DailyReport(
        day,
        figures.total,
        figures.by,
        folder / f"daily-{day}.json",
        folder / f"daily-{day}.csv",
        service_counts(hub, day, day),
        folder / f"daily-{day}-service.csv",
    )
    _write(report)
    return report


COLUMNS = [
    "dimension",
    "key",
    "received",
    "accepted",
    "completed",
    "completion_rate",
    "overdue_open",
    "on_time_rate",
    "instant_ratio",
]


def _write(report: DailyReport) -> None:
    body = {
        "day": report.day.isoformat(),
        "total": report.total.as_dict(),
        **{dim: {k: f.as_dict() for k, f in sorted(keys.items())} for dim, keys in report.by.items()},
        "service": report.service.as_dict(),
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
    tmp = report.service_csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(SERVICE_COLUMNS)
        for name, zh, _ in SERVICE_FIGURES:
            w.writerow([name, zh, csv_value(report.service, name)])
    tmp.replace(report.service_csv_path)


SERVICE_COLUMNS = ["figure", "name", "value"]  # one row per figure of hub.supervision.service
