"""`dispatch`: deliver owed parts to their departments' systems, through the outbox.

Per connection, at most `limits.concurrency` deliveries run at once, so a slow department is
never flooded. A connector that raises anything is recorded as a failed delivery, never a crash."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from hub import applications, outbox
from hub.applications import Actor
from hub.connectors import Connector, DeliveryError, Limits, MaterialRef, PartMessage
from hub.context import Hub
from hub.errors import ConfigInvalid, HubError
from hub.lifecycle import Role
from hub.storage.tables import Application, OutboxRow, Part

log = logging.getLogger(__name__)


@dataclass
class DispatchSummary:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    by_connection: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str, connection: str) -> None:
        with self._lock:  # deliveries finish on several threads
            setattr(self, outcome, getattr(self, outcome) + 1)
            if outcome == "delivered":
                self.by_connection[connection] += 1

    def line(self) -> str:
        return f"dispatch: {self.delivered} delivered, {self.retrying} to retry, {self.dead} dead-lettered"


def part_message(app: Application, part: Part) -> PartMessage:
    return PartMessage(
        part_id=part.id,
        application_number=app.number,
        item_code=part.item_code,
        item_title=part.title,
        department=part.department_code,
        channel=app.channel,
        desk=app.desk_code,
        collecting_division=app.collecting_division,
        deciding_division=app.deciding_division,
        applicant_type=app.applicant_type,
        applicant_name=app.applicant_name,
        applicant_id=app.applicant_id,
        form=app.form,
        accepted_on=app.accepted_on,
        due_date=part.due_date,
        materials=[
            MaterialRef(
                name=m.name, filename=m.filename, sha256=m.sha256, media_type=m.blob.media_type, size=m.blob.size
            )
            for m in app.materials
            if m.kind == "material"
        ],
    )


def dispatch(hub: Hub, *, connection: str | None = None, batch: int = 100) -> DispatchSummary:
    """Deliver everything due now; rows that fail wait for their backoff (a later run)."""
    summary = DispatchSummary()
    while True:
        with hub.transaction() as session:
            lease = timedelta(seconds=hub.settings.dispatch_lease_seconds)
            rows = outbox.claim(session, hub.now(), lease=lease, connection=connection, limit=batch)
            claimed = [(r.id, r.connection) for r in rows]
        if not claimed:
            return summary
        groups: dict[str, list[int]] = defaultdict(list)
        for row_id, conn in claimed:
            groups[conn].append(row_id)
        for conn, row_ids in groups.items():
            _deliver_group(hub, conn, row_ids, summary)


def _deliver_group(hub: Hub, conn: str, row_ids: list[int], summary: DispatchSummary) -> None:
    try:
        connector = hub.connector(conn)
    except (ConfigInvalid, HubError) as exc:  # a broken connection config: wait for ops, do not burn attempts fast
        for row_id in row_ids:
            _finish(hub, row_id, None, f"{conn}: 连接配置错误 configuration: {exc}", True, summary)
        return
    limits = hub.connections[conn].limits
    try:
        with ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix=f"dispatch-{conn}") as pool:
            list(pool.map(lambda row_id: _deliver(hub, connector, row_id, summary), row_ids))
    finally:
        connector.close()


def _deliver(hub: Hub, connector: Connector, row_id: int, summary: DispatchSummary) -> None:
    with hub.sessions() as session:
        row = session.get(OutboxRow, row_id)
        part = session.get(Part, row.part_id)
        app = applications.get(session, part.application.number, _actor(connector.name))
        message = part_message(app, next(p for p in app.parts if p.id == part.id))
    try:
        receipt = connector.submit(message)
    except DeliveryError as exc:
        _finish(hub, row_id, None, str(exc), exc.retryable, summary)
    except Exception as exc:  # a connector bug must not stop the other deliveries
        log.exception("connector %s failed on outbox row %s", connector.name, row_id)
        _finish(hub, row_id, None, f"{connector.name}: 内部错误 internal error ({type(exc).__name__})", True, summary)
    else:
        _finish(hub, row_id, receipt.remote_id, None, False, summary)


def _actor(conn: str) -> Actor:
    return Actor(name=f"dispatch:{conn}", role=Role.system)


def _finish(
    hub: Hub, row_id: int, remote_id: str | None, error: str | None, retryable: bool, summary: DispatchSummary
) -> None:
    now = hub.now()
    with hub.transaction() as session:
        row = session.get(OutboxRow, row_id, with_for_update=True)
        if row is None or row.state != "pending":
            return
        number = session.get(Application, row.application_id).number
        actor = _actor(row.connection)
        if remote_id is not None:
            outbox.delivered(row, remote_id, now)
            applications.record_event(
                session,
                number,
                "dispatch",
                actor,
                part_id=row.part_id,
                now=now,
                data={"connection": row.connection, "remote_id": remote_id, "attempts": row.attempts},
            )
            summary.count("delivered", row.connection)
            return
        conn = hub.connections.get(row.connection)
        outbox.failed(row, error or "", retryable=retryable, limits=conn.limits if conn else Limits(), now=now)
        if row.state == "dead":
            applications.record_event(
                session,
                number,
                "dispatch_dead",
                actor,
                part_id=row.part_id,
                now=now,
                reason=row.last_error,
                data={"connection": row.connection, "attempts": row.attempts},
            )
            summary.count("dead", row.connection)
        else:
            summary.count("retrying", row.connection)
