"""What ops look at: connections with their last check, plugins, job runs. `recorded_run` wraps a
job so its start, end, outcome and one-line summary land in job_runs (CLI and Airflow alike)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select

from hub import audit, logs, outbox
from hub.applications import Actor
from hub.context import Hub
from hub.errors import NotFound
from hub.plugins import PluginHost
from hub.storage.tables import Application, JobRun, OutboxRow, Part, naive_utc

CHECK = "check"  # the job name a connection check is recorded under


def plugin_rows(host: PluginHost) -> list[dict[str, Any]]:
    """Each plugin: entry point, module, distribution, loaded (allowlist), hooks, connector types."""
    return [
        {
            "name": i.name,
            "module": i.module,
            "distribution": f"{i.distribution} {i.version}",
            "loaded": i.loaded,
            "hooks": list(i.registers),
            "connector_types": list(i.connector_types),
        }
        for i in host.infos
    ]


@contextmanager
def recorded_run(hub: Hub, job: str, target: str | None = None) -> Iterator[JobRun]:
    """Record a job run; the caller sets `.summary` (and `.ok = False` for a partial failure).
    An exception marks it failed with the exception's message, and is re-raised."""
    with hub.transaction() as session:
        run = JobRun(job=job, target=target, started_at=naive_utc(hub.now()))
        session.add(run)
        session.flush()
        run_id = run.id
    outcome = JobRun(job=job, target=target, started_at=run.started_at, ok=True)
    try:
        with logs.job_context(f"{job}:{run_id}"):  # log lines of the run carry its job_runs id
            yield outcome
    except BaseException as exc:
        outcome.ok, outcome.summary = False, f"{type(exc).__name__}: {exc}"[:1000]
        raise
    finally:
        with hub.transaction() as session:
            row = session.get(JobRun, run_id)
            row.finished_at = naive_utc(hub.now())
            row.ok = outcome.ok
            row.summary = (outcome.summary or "")[:1000] or None


def last_runs(hub: Hub, job: str | None = None, limit: int = 100) -> list[JobRun]:
    with hub.sessions() as session:
        stmt = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
        if job:
            stmt = stmt.where(JobRun.job == job)
        return list(session.scalars(stmt))


def job_rows(hub: Hub, limit: int = 100) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "job": r.job,
            "target": r.target,
            "started_at": r.started_at.isoformat() + "Z",
            "finished_at": r.finished_at.isoformat() + "Z" if r.finished_at else None,
            "ok": r.ok,
            "summary": r.summary,
        }
        for r in last_runs(hub, limit=limit)
    ]


def connection_rows(hub: Hub) -> list[dict[str, Any]]:
    """Every configured connection with the result of its last check."""
    checks: dict[str, JobRun] = {}
    for r in last_runs(hub, CHECK, limit=500):
        checks.setdefault(r.target or "", r)
    rows = []
    for name, c in sorted(hub.connections.items()):
        last = checks.get(name)
        rows.append(
            {
                "name": name,
                "type": c.type,
                "description": c.description,
                "intake": bool(c.intake),
                "last_check_at": last.started_at.isoformat() + "Z" if last else None,
                "last_check_ok": last.ok if last else None,
                "last_check_detail": last.summary if last else None,
            }
        )
    for name, found in sorted(hub.connection_problems.items()):  # shown, not hidden: ops must fix it
        rows.append(
            {
                "name": name,
                "type": "?",
                "description": None,
                "intake": False,
                "last_check_at": None,
                "last_check_ok": False,
                "last_check_detail": "; ".join(str(p) for p in found),
            }
        )
    return rows


def run_check(hub: Hub, name: str, actor: Actor) -> dict[str, Any]:
    """Check one connection now (as `hub connectors check` does) and record the result."""
    with recorded_run(hub, CHECK, name) as run:
        try:
            connector = hub.connector(name)
            try:
                result = connector.check()
            finally:
                connector.close()
            ok, detail = result.ok, result.message
        except Exception as exc:  # a broken config or an unreachable system is a failed check, not a 500
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        run.ok, run.summary = ok, detail
    audit.record(hub, actor, "connection_check", target=name, ok=ok)
    return {"name": name, "ok": ok, "detail": detail}


def outbox_page(
    hub: Hub, state: str | None = None, connection: str | None = None, *, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of outbox rows with their application and item, dead letters first then newest
    first (a stable order: ids are unique), and how many rows match in all (CLI, API, /ops)."""
    with hub.sessions() as session:
        stmt = (
            select(OutboxRow, Application.number, Part.item_code)
            .join(Application, Application.id == OutboxRow.application_id)
            .join(Part, Part.id == OutboxRow.part_id)
            .order_by((OutboxRow.state != "dead"), OutboxRow.id.desc())
        )
        counted = select(func.count()).select_from(OutboxRow)
        if state:
            stmt, counted = stmt.where(OutboxRow.state == state), counted.where(OutboxRow.state == state)
        if connection:
            stmt = stmt.where(OutboxRow.connection == connection)
            counted = counted.where(OutboxRow.connection == connection)
        total = session.scalar(counted) or 0
        rows = [
            {
                "id": r.id,
                "application": number,
                "item": item,
                "connection": r.connection,
                "state": r.state,
                "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at.isoformat() + "Z",
                "remote_id": r.remote_id,
                "remote_status": r.remote_status,
                "last_error": r.last_error,
            }
            for r, number, item in session.execute(stmt.limit(limit).offset(offset))
        ]
        return rows, total


def retry_dead(hub: Hub, row_id: int, actor: Actor) -> int:
    """Send a dead letter again (as `hub outbox retry`), audited."""
    with hub.transaction() as session:
        n = outbox.retry(session, hub.now(), ids=[row_id])
        if n:
            audit.add(session, hub, actor, "outbox_retry", target=str(row_id))
    if not n:
        raise NotFound(f"死信 {row_id} 不存在或不在死信状态 (no dead letter {row_id})")
    return n


def run_job(hub: Hub, job: Callable[..., Any], *args: Any, target: str | None = None, **kwargs: Any) -> Any:
    """Run one job (`hub.jobs.*`) and record the run: its summary line, failed if it reports errors."""
    name = {"sweep_deadlines": "deadlines", "daily_report": "report"}.get(job.__name__, job.__name__)
    with recorded_run(hub, name, target or kwargs.get("connection")) as run:
        result = job(hub, *args, **kwargs)
        run.summary = result.line() if hasattr(result, "line") else None
        run.ok = not getattr(result, "errors", None)
    return result


# What the ops pages show for the raw states and job names they list: (Chinese, English). The
# English is for ?lang=en only; an unknown code is shown as it is (a new job must not break a page).
STATE_LABELS: dict[str, tuple[str, str]] = {
    "pending": ("待推送", "pending"),
    "delivered": ("已推送", "delivered"),
    "dead": ("死信", "dead letter"),
    "cancelled": ("已取消", "cancelled"),
    "accepted": ("已接收", "accepted"),
    "answered": ("已应答", "answered"),
    "refused": ("已拒收", "refused"),
}
JOB_LABELS: dict[str, tuple[str, str]] = {
    CHECK: ("连接检查", "connection check"),
    "deadlines": ("时限巡检", "deadline sweep"),
    "report": ("日报", "daily report"),
    "dispatch": ("推送部门", "dispatch"),
    "ingest": ("批量收件", "batch intake"),
    "housekeeping": ("清理", "housekeeping"),
    "documents": ("文书签发", "notices issued"),
    "exchange": ("跨省通办收发", "partner exchange"),
    "sync_catalogues": ("同步对方事项清单", "partner item lists"),
    "sync": ("同步部门结果", "department results"),
}

ACCOUNT_ACTIONS: dict[str, tuple[str, str]] = {  # the audit log's account entries (hub.users)
    "user_add": ("创建账号", "created"),
    "user_disabled": ("停用", "disabled"),
    "user_enabled": ("重新启用", "enabled"),
    "password_reset": ("重置密码", "password reset"),
    "password_changed": ("本人修改密码", "password changed by the user"),
    "user_unlocked": ("解除锁定", "unlocked"),
}
KIND_LABELS: dict[str, tuple[str, str]] = {  # the exchange's message kinds (hub.exchange.envelope.KINDS)
    "application": ("申请", "application"),
    "status": ("办理进度", "status"),
    "result": ("结果文书", "result"),
    "withdraw": ("撤回", "withdrawal"),
    "supplement": ("补正材料", "supplement"),
    "catalogue_request": ("请求事项清单", "item list request"),
    "catalogue": ("事项清单", "item list"),
    "ping": ("连通检查", "ping"),
    "ack": ("确认", "acknowledgement"),
    "refusal": ("拒收", "refusal"),
}


def label(labels: dict[str, tuple[str, str]], code: str | None) -> tuple[str, str]:
    """(Chinese, English) for a code; `refused:CODE` keeps its code after the label."""
    if not code:
        return ("", "")
    head, _, tail = code.partition(":")
    if head not in labels:
        return (code, code)
    zh, en = labels[head]
    return (f"{zh}（{tail}）", f"{en} ({tail})") if tail else (zh, en)
