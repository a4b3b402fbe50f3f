"""Prometheus metrics (`/metrics`, docs/operations.md).

`HubCollector` computes the hub's figures from the database at scrape time, so every API replica
reports the same truth and nothing is lost when one restarts: applications by channel and
state, received in the last hour, overdue (red) and due soon (yellow), the outbox per connection
(depth, dead letters, oldest waiting, delivery latency over the last hour), open signing
sessions, the jobs' last runs, and per partner hub (跨省通办) its backlog, dead letters, last
signed answer, last message each way and item list's age. Each figure is one aggregate query over an index; on PostgreSQL
the scrape's transaction gives up after `STATEMENT_TIMEOUT_MS`.

`RequestMetrics` is per process (HTTP requests by route template and status, and their
latency): with several API processes Prometheus scrapes each and sums them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, case, extract, func, literal, select, text
from sqlalchemy.sql.elements import ColumnElement

from hub.lifecycle import State
from hub.storage.tables import (
    Application,
    Event,
    JobRun,
    MessageLogEntry,
    OutboxRow,
    PartnerCatalogue,
    PartnerMessage,
    SigningSession,
    naive_utc,
)
from hub.supervision import figures

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)  # "last hour" figures: received, delivered
# delivery latency buckets (seconds): a minute … a day; departments that batch take hours
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
JOBS = ("ingest", "dispatch", "sync", "deadlines", "report", "housekeeping", "exchange", "sync_catalogues")
OUTBOX_STATES = ("pending", "dead")  # what is still owed; delivered and cancelled rows are history
STATEMENT_TIMEOUT_MS = 5000


def _epoch(stored: datetime) -> float:
    return stored.replace(tzinfo=UTC).timestamp()


class HubCollector(Collector):
    """The hub's figures from the database. `hub` is a `hub.context.Hub` (its engine, catalogue,
    calendar, settings, connections and clock)."""

    def __init__(self, hub: Any):
        self.hub = hub

    def describe(self) -> list[Metric]:
        return []  # figures are computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("hub_database_up", "1 when the scrape could read the hub's database")
        try:
            figures = list(self._figures())
        except Exception as exc:
            log.warning("metrics: database figures unavailable: %s", type(exc).__name__)
            figures = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield from figures
        yield up
        yield self._configured()
        yield self._partners_configured()
        yield GaugeMetricFamily(
            "hub_metrics_scrape_duration_seconds",
            "Time the database figures of this scrape took",
            value=time.perf_counter() - started,
        )

    def _configured(self) -> Metric:
        """1 for each connection the hub can use, 0 for one whose file is broken (its type's
        plugin missing or not allowed, bad YAML): alert on `hub_connection_configured == 0`."""
        gauge = GaugeMetricFamily(
            "hub_connection_configured",
            "1 when the connection's file loaded (0: broken: see `hub connectors check`)",
            labels=["connection"],
        )
        for name in sorted(set(self.hub.connections) | set(self.hub.connection_problems)):
            gauge.add_metric([name], 0 if name in self.hub.connection_problems else 1)
        return gauge

    def _partners_configured(self) -> Metric:
        """跨省通办: one sample per partner file, `usable` "true" or "false" (a broken file: see
        `hub partners check`): alert on `hub_partner_configured{usable="false"}`."""
        gauge = GaugeMetricFamily(
            "hub_partner_configured",
            "1 per partner hub file (partners/NAME.yaml); usable=false: broken, see `hub partners check`",
            labels=["partner", "usable"],
        )
        partners = self.hub.partners
        for name in sorted({*partners.by_name, *partners.problems}):
            gauge.add_metric([name, "false" if name in partners.problems else "true"], 1)
        return gauge

    def _figures(self) -> Iterator[Metric]:
        hub = self.hub
        now = naive_utc(hub.now())
        with hub.engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            figures = [
                *self._applications(conn, now),
                *self._deadlines(conn, hub.today()),
                *self._outbox(conn, now),
                *self._signing(conn),
                *self._jobs(conn, now),
                *self._partners(conn, now),
            ]
        yield from figures

    # -------------------------------------------------------------- applications

    def _channel_of(self) -> Callable[[str], str]:
        desks = self.hub.catalog.desks
        return lambda code: desks[code].channel.value if code in desks else "unknown"

    def _applications(self, conn: Connection, now: datetime) -> Iterator[Metric]:
        channel_of = self._channel_of()
        by_state: dict[tuple[str, str], int] = {}
        # grouped by desk (the (desk_code, state) index covers it), the channel is the desk's
        stmt = select(Application.desk_code, Application.state, func.count()).group_by(
            Application.desk_code, Application.state
        )
        for desk, state, n in conn.execute(stmt):
            key = (channel_of(desk), state)
            by_state[key] = by_state.get(key, 0) + n
        channels = sorted({d.channel.value for d in self.hub.catalog.desks.values()} | {c for c, _ in by_state})
        gauge = GaugeMetricFamily(
            "hub_applications", "Applications (办件) by channel and life-cycle state", labels=["channel", "state"]
        )
        for (channel, state), n in sorted(by_state.items()):
            gauge.add_metric([channel, state], n)
        yield gauge
        received = CounterMetricFamily(
            "hub_applications_received",
            "Applications received (submitted, not drafts) since the hub began, by channel",
            labels=["channel"],
        )
        for channel in channels:
            total = sum(n for (c, s), n in by_state.items() if c == channel and s != State.draft.value)
            received.add_metric([channel], total)
        yield received
        # the `submit` event of each application received in the window (the (action, at) index)
        recent = (
            select(Application.channel, func.count())
            .select_from(Event)
            .join(Application, Application.id == Event.application_id)
            .where(Event.action == "submit", Event.at >= now - WINDOW)
            .group_by(Application.channel)
        )
        counts = dict(conn.execute(recent).all())
        hour = GaugeMetricFamily(
            "hub_applications_received_last_hour",
            "Applications received in the last hour, by channel",
            labels=["channel"],
        )
        for channel in sorted(set(channels) | set(counts)):
            hour.add_metric([channel], counts.get(channel, 0))
        yield hour

    def _deadlines(self, conn: Connection, today: date) -> Iterator[Metric]:
        """Red and yellow cards as `hub.timelimits.signal` gives them, counted in SQL with the
        dashboard's own conditions (hub.supervision.figures): two counts, each filtered in its
        WHERE so the plan starts from the state and due-date indexes and the yellow card's
        EXISTS over parts is probed only for the few applications due within the horizon (as one
        CASE over every clocked application it ran a subplan per row and hit the timeout at
        200,000 applications, and the hub reported itself down)."""
        red = select(func.count()).select_from(Application).where(figures.clocked(), figures.open_overdue(today))
        yellow = (
            select(func.count()).select_from(Application).where(figures.clocked(), figures.yellow_card(self.hub, today))
        )
        yield GaugeMetricFamily(
            "hub_applications_overdue",
            "Applications past their due date (red card, 红牌)",
            value=int(conn.execute(red).scalar_one()),
        )
        yield GaugeMetricFamily(
            "hub_applications_due_soon",
            "Applications with yellow_days or fewer working days left (yellow card, 黄牌)",
            value=int(conn.execute(yellow).scalar_one()),
        )
        # per department: its parts still to decide in red-card applications (the open parts'
        # partial index), every configured department with a sample, zeros too
        per_department = figures.open_work_stmt("department", None).where(figures.open_overdue(today))
        counts = {r.key: r.n for r in conn.execute(per_department)}
        gauge = GaugeMetricFamily(
            "hub_parts_overdue",
            "Parts still to be decided in applications past their due date (红牌), by department",
            labels=["department"],
        )
        for department in sorted(set(self.hub.catalog.departments) | set(counts)):
            gauge.add_metric([department], counts.get(department, 0))
        yield gauge

    # -------------------------------------------------------------- outbox

    def _outbox(self, conn: Connection, now: datetime) -> Iterator[Metric]:
        names = set(self.hub.connections)
        depth: dict[tuple[str, str], int] = {}
        oldest: dict[str, datetime] = {}
        stmt = (
            select(OutboxRow.connection, OutboxRow.state, func.count(), func.min(OutboxRow.created_at))
            .where(OutboxRow.state.in_(OUTBOX_STATES))  # the (state, next_attempt_at) index
            .group_by(OutboxRow.connection, OutboxRow.state)
        )
        for connection, state, n, first in conn.execute(stmt):
            names.add(connection)
            depth[(connection, state)] = n
            if state == "pending" and first is not None:
                oldest[connection] = first
        latency = self._latency(conn, now)
        names |= set(latency)
        gauge = GaugeMetricFamily(
            "hub_outbox_depth",
            "Deliveries still owed to department systems, by connection and state (pending, dead)",
            labels=["connection", "state"],
        )
        dead = GaugeMetricFamily(
            "hub_outbox_dead_letters", "Dead letters (deliveries given up on) by connection", labels=["connection"]
        )
        age = GaugeMetricFamily(
            "hub_outbox_oldest_pending_seconds",
            "Age of the oldest delivery still pending, by connection (0: none)",
            labels=["connection"],
        )
        for name in sorted(names):
            for state in OUTBOX_STATES:
                gauge.add_metric([name, state], depth.get((name, state), 0))
            dead.add_metric([name], depth.get((name, "dead"), 0))
            first = oldest.get(name)
            age.add_metric([name], max((now - first).total_seconds(), 0.0) if first else 0.0)
        yield gauge
        yield dead
        yield age
        hist = GaugeHistogramMetricFamily(
            "hub_outbox_delivery_latency_seconds",
            "From acceptance (outbox row written) to the department's receipt, deliveries of the last hour",
            labels=["connection"],
        )
        for name in sorted(names):
            buckets, total, count = latency.get(name, ([0] * len(LATENCY_BUCKETS), 0.0, 0))
            hist.add_metric(
                [name],
                [(_le(b), n) for b, n in zip(LATENCY_BUCKETS, buckets, strict=True)] + [("+Inf", count)],
                gsum_value=total,
            )
        yield hist

    def _latency(self, conn: Connection, now: datetime) -> dict[str, tuple[list[int], float, int]]:
        """Per connection: cumulative bucket counts, sum and count of the delivery latencies of
        the rows delivered in the window — found through their `dispatch` events (the (action, at)
        index), each row by its (part_id, kind) key."""
        seconds = _seconds_between(conn, OutboxRow.created_at, Event.at)
        columns: list[Any] = [OutboxRow.connection, func.count(), func.coalesce(func.sum(seconds), 0.0)]
        columns += [func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0) for b in LATENCY_BUCKETS]
        stmt = (
            select(*columns)
            .select_from(Event)
            .join(OutboxRow, and_(OutboxRow.part_id == Event.part_id, OutboxRow.kind == literal("submit")))
            .where(Event.action == "dispatch", Event.at >= now - WINDOW)
            .group_by(OutboxRow.connection)
        )
        out = {}
        for connection, count, total, *buckets in conn.execute(stmt):
            out[connection] = ([int(b) for b in buckets], float(total), int(count))
        return out

    # -------------------------------------------------------------- partner hubs (跨省通办)

    def _partners(self, conn: Connection, now: datetime) -> Iterator[Metric]:
        """Per partner hub: messages owed (backlog), dead letters, the oldest message waiting,
        when it last answered with a signature we verified, the last message each way, and the
        age of its item list. Every configured partner has a sample (0 or absent timestamps)."""
        names = {*self.hub.partners.by_name, *self.hub.partners.problems}
        depth: dict[tuple[str, str], int] = {}
        oldest: dict[str, datetime] = {}
        stmt = (
            select(PartnerMessage.partner, PartnerMessage.state, func.count(), func.min(PartnerMessage.created_at))
            .where(PartnerMessage.state.in_(OUTBOX_STATES))
            .group_by(PartnerMessage.partner, PartnerMessage.state)
        )
        for partner, state, n, first in conn.execute(stmt):
            names.add(partner)
            depth[(partner, state)] = n
            if state == "pending" and first is not None:
                oldest[partner] = first
        # per partner, newest first on the (partner, at) index: the log only grows
        entry = MessageLogEntry
        latest = {}
        for name in sorted(names):

            def newest(*where: Any, name: str = name) -> Any:
                return (
                    select(entry.at)
                    .where(entry.partner == name, *where)
                    .order_by(entry.at.desc())
                    .limit(1)
                    .scalar_subquery()
                )

            latest[name] = conn.execute(
                select(
                    newest(entry.direction == "in"),
                    newest(entry.direction == "out"),
                    newest(entry.direction == "in", entry.signer.is_not(None)),
                )
            ).one()
        lists = dict(conn.execute(select(PartnerCatalogue.partner, PartnerCatalogue.fetched_at)).all())
        backlog = GaugeMetricFamily(
            "hub_partner_backlog", "Messages owed to each partner hub, not yet delivered", labels=["partner"]
        )
        dead = GaugeMetricFamily(
            "hub_partner_dead_letters",
            "Messages to each partner hub given up on (`hub partners retry` once the cause is fixed)",
            labels=["partner"],
        )
        age = GaugeMetricFamily(
            "hub_partner_oldest_pending_seconds",
            "Age of the oldest message still owed to each partner hub (0: none)",
            labels=["partner"],
        )
        answered = GaugeMetricFamily(
            "hub_partner_last_signed_answer_timestamp_seconds",
            "When each partner hub last sent a message or answer whose signature we verified (Unix time)",
            labels=["partner"],
        )
        message = GaugeMetricFamily(
            "hub_partner_last_message_timestamp_seconds",
            "The last message logged with each partner hub, by direction (in, out) (Unix time)",
            labels=["partner", "direction"],
        )
        fetched = GaugeMetricFamily(
            "hub_partner_catalogue_fetched_timestamp_seconds",
            "When each partner hub's cross-region item list was last fetched (Unix time)",
            labels=["partner"],
        )
        for name in sorted(names):
            backlog.add_metric([name], depth.get((name, "pending"), 0))
            dead.add_metric([name], depth.get((name, "dead"), 0))
            first = oldest.get(name)
            age.add_metric([name], max((now - first).total_seconds(), 0.0) if first else 0.0)
        for name, (got, sent, verified) in latest.items():
            if verified is not None:
                answered.add_metric([name], _epoch(verified))
            for direction, at in (("in", got), ("out", sent)):
                if at is not None:
                    message.add_metric([name, direction], _epoch(at))
        for name, at in sorted(lists.items()):
            if at is not None:
                fetched.add_metric([name], _epoch(at))
        yield from (backlog, dead, age, answered, message, fetched)

    # -------------------------------------------------------------- signing, jobs

    def _signing(self, conn: Connection) -> Iterator[Metric]:
        stmt = (
            select(SigningSession.step, func.count())
            .where(SigningSession.state == "open")  # the state index
            .group_by(SigningSession.step)
        )
        counts = dict(conn.execute(stmt).all())
        gauge = GaugeMetricFamily(
            "hub_signing_sessions_open", "Remote signing sessions (远程面签) not yet ended, by step", labels=["step"]
        )
        for step, n in sorted(counts.items()):
            gauge.add_metric([step], n)
        yield gauge

    def _jobs(self, conn: Connection, now: datetime) -> Iterator[Metric]:
        """Per job and per source or connection it ran for (`target`, empty for whole-hub jobs):
        one connection failing every run must not hide behind another one's success. Over the
        last 7 days of runs (the (job, started_at) index), so the scrape stays cheap."""
        labels = ["job", "target"]
        last_ok = GaugeMetricFamily(
            "hub_job_last_success_timestamp_seconds",
            "When the last successful run of each job (per source or connection) started (Unix time)",
            labels=labels,
        )
        last = GaugeMetricFamily(
            "hub_job_last_run_ok",
            "1 if the latest run of each job (per source or connection) succeeded, 0 if it failed",
            labels=labels,
        )
        since = now - timedelta(days=7)
        recent = (JobRun.job.in_(JOBS), JobRun.started_at >= since, JobRun.finished_at.is_not(None))
        newest = (
            select(JobRun.job, JobRun.target, func.max(JobRun.started_at).label("at"))
            .where(*recent)
            .group_by(JobRun.job, JobRun.target)
            .subquery()
        )
        rows = conn.execute(
            select(JobRun.job, JobRun.target, JobRun.ok).join(
                newest,
                (JobRun.job == newest.c.job)
                & (func.coalesce(JobRun.target, "") == func.coalesce(newest.c.target, ""))
                & (JobRun.started_at == newest.c.at),
            )
        )
        for job, target, ok in rows:
            last.add_metric([job, target or ""], 1 if ok else 0)
        good = select(JobRun.job, JobRun.target, func.max(JobRun.started_at)).where(*recent, JobRun.ok.is_(True))
        for job, target, at in conn.execute(good.group_by(JobRun.job, JobRun.target)):
            last_ok.add_metric([job, target or ""], _epoch(at))
        yield last_ok
        yield last


def _le(bound: float) -> str:
    return repr(float(bound))


def _seconds_between(conn: Connection, start: Any, end: Any) -> ColumnElement[float]:
    """`end - start` in seconds, for naive UTC timestamps (SQLite keeps them as text)."""
    if conn.dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return extract("epoch", end - start)


# ---------------------------------------------------------------- HTTP, per process


class RequestMetrics:
    """HTTP requests this process served, by method, route template and status, and how long
    they took. Route templates keep the label set small (`/api/v1/applications/{number}`);
    paths that match no route are counted as `unmatched`."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "hub_http_requests",
            "HTTP requests served by this process",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "hub_http_request_duration_seconds",
            "Time to the end of the response, by route template (this process)",
            ["method", "route"],
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
