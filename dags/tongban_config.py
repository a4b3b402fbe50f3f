"""What the Tongban Hub DAGs need from the hub's configuration, read at DAG parse time: YAML files
only — no database, no network, no hub import (parsing stays well under a second).

The hub home is $HUB_HOME. `python dags/tongban_config.py pools` prints the Airflow pools (one per
connection, as many slots as the connection's `limits.concurrency`) for `airflow pools import`."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Conn:
    name: str
    concurrency: int
    intake_schedule: str | None  # set for intake sources

    @property
    def pool(self) -> str:
        return f"tongban_{self.name}"

    @property
    def asset_uri(self) -> str:
        return f"tongban://intake/{self.name}"


def home() -> Path | None:
    value = os.environ.get("HUB_HOME")
    return Path(value) if value else None


def timezone() -> str:
    h = home()
    if h is None or not (h / "hub.yaml").is_file():
        return DEFAULT_TZ
    data = yaml.safe_load((h / "hub.yaml").read_text(encoding="utf-8")) or {}
    return str(data.get("timezone") or DEFAULT_TZ)


def connections() -> list[Conn]:
    h = home()
    folder = h / "connections" if h else None
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            limits, intake = data.get("limits") or {}, data.get("intake")
            conn = Conn(
                name=path.stem,
                concurrency=max(1, int(limits.get("concurrency", 2))),
                intake_schedule=str(intake.get("schedule", "*/15 * * * *")) if isinstance(intake, dict) else None,
            )
        except (yaml.YAMLError, AttributeError, TypeError, ValueError):
            # a broken file must not take every DAG down with it; `hub connectors check` names its
            # file and line, and the hub refuses to open with it, so its tasks fail loudly
            continue
        found.append(conn)
    return found


def partners() -> list[str]:
    """The partner hubs (跨省通办) by file name: `partners/NAME.yaml` in the hub home. Names only:
    a broken file still gets its tasks, which fail naming it (`hub partners check` says why)."""
    h = home()
    folder = h / "partners" if h else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.yaml"))


def cron(expression: str):
    """A cron schedule in the county's time zone (what every Tongban DAG runs on)."""
    from airflow.sdk import CronTriggerTimetable

    return CronTriggerTimetable(expression, timezone=timezone())


def run(job, *args, clock=None, **kwargs):
    """Inside a task (never at parse time): open the hub, run one `hub.jobs` job, close it. The run
    is recorded in job_runs, for the ops page, as `hub run` records it."""
    from hub.context import Hub
    from hub.ops import run_job
    from hub.settings import find_home

    found = find_home(home())
    hub = Hub.open(found, clock=clock) if clock else Hub.open(found)
    try:
        return run_job(hub, job, *args, **kwargs)
    finally:
        hub.close()


def worker_hostname() -> str:
    """`[core] hostname_callable` for several Celery workers on one machine (scripts/prodlike):
    each names itself with TONGBAN_WORKER_NAME, so task instances say which worker ran them. In
    containers every worker has its own hostname and this falls back to it."""
    import socket

    return os.environ.get("TONGBAN_WORKER_NAME") or socket.getfqdn()


def pools() -> dict[str, dict]:
    return {
        c.pool: {"slots": c.concurrency, "description": f"Tongban Hub connection {c.name}", "include_deferred": False}
        for c in connections()
    }


if __name__ == "__main__" and sys.argv[1:] == ["pools"]:
    print(json.dumps(pools(), ensure_ascii=False, indent=2))
