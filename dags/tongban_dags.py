"""Tongban Hub's scheduled work as Airflow DAGs (Airflow 3 Task SDK). Thin: every task calls a
plain hub job (`hub.jobs.*`), the same one `hub run …` runs, so Airflow adds scheduling, retries
and pools — never business logic. Parsing reads YAML only (dags/tongban_config.py).

- `tongban_intake_<source>`: one per intake source, on the source's `intake.schedule`; emits the
  Asset `tongban://intake/<source>` when it has taken batches (a run that found none is skipped,
  which emits nothing).
- `tongban_dispatch`: on any intake Asset, and every 5 minutes for what officers accepted in
  between; one task per department connection, each in that connection's pool.
- `tongban_sync`: every 10 minutes, one task per department connection, in its pool.
- `tongban_deadlines`: hourly sweep of yellow/red cards, as of the run's logical time (or, for a
  manual run without one, its start); the supervisors' list goes to `reports/alerts.csv`.
- `tongban_daily_report`: at 01:30, the previous day's figures to `reports/daily-<day>.json/.csv`."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetAny, AssetOrTimeSchedule, task
from airflow.sdk.exceptions import AirflowSkipException

sys.path.insert(0, str(Path(__file__).parent))
import tongban_config as config  # beside this file in the DAG folder

START = datetime(2026, 1, 1)
DEFAULT_ARGS = {
    "owner": "tongban-ops",
    "retries": 4,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,  # 30 s, 1 min, 2 min, 4 min (jittered by Airflow)
    "max_retry_delay": timedelta(minutes=30),
}
CONNECTIONS = config.connections()
SOURCES = [c for c in CONNECTIONS if c.intake_schedule]
SINKS = [c for c in CONNECTIONS if not c.intake_schedule]


def _as_of(logical_date, dag_run) -> datetime:
    """The run's logical time; a manual run may have none (Airflow 3), then its start."""
    return logical_date or dag_run.run_after


def _counts(summary) -> dict:
    return {k: v for k, v in vars(summary).items() if isinstance(v, int) and not k.startswith("_")}


ASSETS = {s.name: Asset(s.asset_uri) for s in SOURCES}

for source in SOURCES:
    with DAG(
        dag_id=f"tongban_intake_{source.name}",
        description=f"受理批次 intake from {source.name}",
        schedule=config.cron(source.intake_schedule),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["tongban", "intake"],
        doc_md=f"""### 受理批次接收 Intake from `{source.name}`
Takes every complete batch (`.ok` marker) from this source: good records become applications
*pre-reviewed* by their desk; bad records are reported back on the source (`errors/<batch>.jsonl`);
a batch that does not match its manifest is quarantined whole. Same as `hub run ingest --source
{source.name}`. Emits `{source.asset_uri}`, which triggers `tongban_dispatch`; a run that found
no batch is *skipped* and emits nothing. A failed run (the source unreachable) is retried with
exponential backoff; whatever was committed stays.""",
    ):

        @task(task_id="ingest", outlets=[ASSETS[source.name]], pool=source.pool)
        def ingest_batches(name: str = source.name) -> dict:
            from hub.jobs.ingest import ingest

            summary = config.run(ingest, name)
            print(summary.line())
            if summary.errors:
                raise RuntimeError(summary.line())  # retried with backoff
            if not summary.batches:
                raise AirflowSkipException("没有新批次 (no complete batch on the source)")
            return _counts(summary)

        ingest_batches()


intake_assets = list(ASSETS.values())
with DAG(
    dag_id="tongban_dispatch",
    description="派件 deliver accepted parts to department systems",
    schedule=AssetOrTimeSchedule(timetable=config.cron("*/5 * * * *"), assets=AssetAny(*intake_assets))
    if intake_assets
    else config.cron("*/5 * * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tongban", "dispatch"],
    doc_md="""### 派件 Dispatch
Delivers every accepted part owed to a department system through the outbox, one task per
connection, each in its own pool (`tongban_<connection>`, slots = the connection's concurrency)
so a slow department is never flooded and never holds up the others. Runs on every intake Asset
and every 5 minutes. Same as `hub run dispatch --connection NAME`. Failed deliveries wait for
their own backoff in the outbox; dead letters: `hub outbox list --state dead`.""",
):
    for sink in SINKS:

        @task(task_id=f"dispatch_{sink.name}", pool=sink.pool)
        def dispatch_connection(name: str = sink.name) -> dict:
            from hub.jobs.dispatch import dispatch

            summary = config.run(dispatch, connection=name)
            print(summary.line())
            return {"delivered": summary.delivered, "retrying": summary.retrying, "dead": summary.dead}

        dispatch_connection()


with DAG(
    dag_id="tongban_sync",
    description="状态回流 bring department decisions back",
    schedule=config.cron("*/10 * * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tongban", "sync"],
    doc_md="""### 状态回流 Status sync
Polls each department connection for the parts it holds and maps its statuses onto the life
cycle (review started, approved/denied with result documents, 补正 requested). Same as `hub run
sync --connection NAME`; a connection that cannot be reached fails its task, which is retried.""",
):
    for sink in SINKS:

        @task(task_id=f"sync_{sink.name}", pool=sink.pool)
        def sync_connection(name: str = sink.name) -> dict:
            from hub.jobs.sync import sync

            summary = config.run(sync, connection=name)
            print(summary.line())
            if summary.errors:
                raise RuntimeError(summary.line())
            return _counts(summary)

        sync_connection()


with DAG(
    dag_id="tongban_deadlines",
    description="红黄牌 hourly deadline sweep",
    schedule=config.cron("0 * * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tongban", "supervision"],
    doc_md="""### 红黄牌 Deadline sweep
Hourly, as of the run's logical time: records a `warning` event when an application turns yellow
(few working days left) or red (overdue), once per change, and writes every open alert to
`reports/alerts.csv` for supervisors. Same as `hub run deadlines --list`.""",
):

    @task(task_id="sweep")
    def sweep(logical_date=None, dag_run=None) -> dict:
        from hub.jobs.deadlines import sweep_deadlines

        as_of = _as_of(logical_date, dag_run)
        summary = config.run(sweep_deadlines, clock=lambda: as_of)
        print(summary.line())
        return {"checked": summary.checked, "yellow": summary.yellow, "red": summary.red}

    sweep()


with DAG(
    dag_id="tongban_documents",
    description="文书签发 sealed notices",
    schedule=config.cron("*/5 * * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tongban", "documents"],
    doc_md="""### 文书签发 Sealed notices
Every five minutes: the notices recent events made owed (收件凭证, 受理通知书, 补正告知书, 决定书 …)
and nobody opened yet are rendered, sealed by their authority and stored, so each is sealed near
the time it speaks of. One that cannot be sealed (no seal, a broken template) fails the run, named;
the others are issued. Same as `hub run documents`.""",
):

    @task(task_id="issue")
    def issue_documents() -> str:
        from hub.jobs.documents import documents

        summary = config.run(documents)
        print(summary.line())
        if summary.errors:
            raise RuntimeError(summary.line())
        return summary.line()

    issue_documents()


with DAG(
    dag_id="tongban_reminders",
    description="预约提醒 appointment reminders",
    schedule=config.cron("0 16 * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tongban", "appointments"],
    doc_md="""### 预约提醒 Appointment reminders
At 16:00 (county time): every booking of the next working day is reminded once per slot it holds —
through the SMS gateway when `queue.sms_url` is set (only a 2xx counts as sent), else recorded and
shown to the resident. A gateway that refused some fails the run, named; the next run retries
them and never reminds twice. Same as `hub run reminders`.""",
):

    @task(task_id="remind")
    def remind() -> str:
        from hub.jobs.reminders import reminders

        summary = config.run(reminders)
        print(summary.line())
        if summary.errors:
            raise RuntimeError(summary.line())
        return summary.line()

    remind()


with DAG(
    dag_id="tongban_daily_report",
    description="日报 daily figures",
    schedule=config.cron("30 1 * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["tongban", "report"],
    doc_md="""### 日报 Daily report
At 01:30 (county time), the previous day's figures — received, accepted, completed, completion
rate, on-time rate, instant ratio — in total and per channel, desk and department, to
`reports/daily-<day>.json` and `.csv`. Same as `hub run report --day DAY`. Beside it, housekeeping:
material files no application refers to, abandoned uploads, recordings past their retention
(`hub run housekeeping`).""",
):

    @task(task_id="report")
    def report(logical_date=None, dag_run=None) -> str:
        from hub.jobs.report import daily_report

        as_of = _as_of(logical_date, dag_run)

        def previous_day(hub):  # in the county's time zone, whatever Airflow's default is
            return daily_report(hub, as_of.astimezone(hub.settings.tz).date() - timedelta(days=1))

        result = config.run(previous_day)
        print(result.line())
        return str(result.json_path)

    @task(task_id="housekeeping")
    def tidy() -> str:
        from hub.jobs.housekeeping import housekeeping

        return config.run(housekeeping).line()

    report()
    tidy()
