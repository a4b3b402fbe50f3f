"""`dispatch`: deliver owed parts to their departments' systems, through the outbox.

Per connection, at most `limits.concurrency` deliveries run at once, so a slow department is
never flooded; each row is claimed just before its delivery and its outcome is recorded only
under that claim. A connector that raises anything is recorded as a failed delivery, never a crash."""

from __future__ import annotations

import contextvars  # worker threads log with the job's id (hub.logs)
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from hub import applications, outbox, text
from hub.applications import Actor
from hub.connectors import Connector, DeliveryError, LicenceRef, Limits, MaterialRef, PartMessage, Update
from hub.context import Hub
from hub.errors import ConfigInvalid, HubError
from hub.jobs import sync
from hub.lifecycle import PartState, Role
from hub.outgoing_materials import SAMPLE_BYTES, SAMPLE_SHA256
from hub.storage.tables import Application, OutboxRow, Part

log = logging.getLogger(__name__)


@dataclass
class DispatchSummary:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    cancelled: int = 0
    decided: int = 0  # decisions a stateless system gave with its receipt
    unusable: dict[str, str] = field(default_factory=dict)  # connection -> why (its file is broken)
    by_connection: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcome: str, connection: str) -> None:
        with self._lock:  # deliveries finish on several threads
            setattr(self, outcome, getattr(self, outcome) + 1)
            if outcome == "delivered":
                self.by_connection[connection] += 1

    def count_decided(self, n: int) -> None:
        with self._lock:
            self.decided += n

    def line(self) -> str:
        line = f"dispatch: {self.delivered} delivered, {self.retrying} to retry, {self.dead} dead-lettered"
        line += f", {self.cancelled} withdrawn before delivery" if self.cancelled else ""
        line += f", {self.decided} decided at once (stateless)" if self.decided else ""
        for conn, why in sorted(self.unusable.items()):
            line += f"\n  连接 {conn} 不可用 unusable: {why}"
        return line


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
        licences=[
            LicenceRef(
                material=r["material"],
                type_code=r["type_code"],
                number=r["number"],
                issuer=r["issuer"],
                valid_until=r.get("valid_until"),
                source=r["source"],
                checked_at=r["checked_at"],
            )
            for e in app.events
            if e.action in ("create", "attach_licence")
            for r in e.data.get("licences") or []
        ],
    )


_SAMPLE_VALUES: dict[str, Any] = {
    "string": "示例",
    "text": "示例文字",
    "integer": 1,
    "decimal": 1.5,
    "date": "2026-01-05",
    "boolean": True,
    "phone": "13800000000",
    "id_number": "330329195003150214",
    "uscc": "91330329MA2ABCDE0X",
    "division": "330329",
}


def sample_part(hub: Hub, connection: str) -> PartMessage:
    """A made-up part of the first catalogue item routed to `connection` (every form field filled
    with a placeholder of its type, one sample material), for trying a mapping before any real
    application exists: `hub connectors render NAME`."""
    item = next((i for i in hub.catalog.items.values() if i.connection == connection), None)
    if item is None:
        raise HubError(f"目录中没有事项发往 {connection} (no catalogue item routes to {connection}): use --application")
    dept = hub.catalog.departments.get(item.department)
    division = dept.division if dept else "330329"
    return PartMessage(
        part_id="sample-part-0001",
        application_number="SAMPLE-0001",
        item_code=item.code,
        item_title=item.name,
        department=item.department,
        channel="window",
        desk="sample-desk",
        collecting_division=division,
        deciding_division=division,
        applicant_type="person",
        applicant_name="张示例",
        applicant_id="330329195003150214",
        form={f.name: (f.options[0] if f.options else _SAMPLE_VALUES[f.type]) for f in item.form},
        materials=[
            MaterialRef(
                name=m.name,
                filename="sample.pdf",
                sha256=SAMPLE_SHA256,
                media_type="application/pdf",
                size=len(SAMPLE_BYTES),
            )
            for m in item.materials[:1]
        ],
        accepted_on=hub.today(),
        due_date=hub.today(),
    )


def dispatch(
    hub: Hub, *, connection: str | None = None, progress: Callable[[int], None] | None = None
) -> DispatchSummary:
    """Deliver everything due now; rows that fail wait for their backoff (a later run).
    Connections are served side by side, so a slow department holds up only its own parts."""
    summary = DispatchSummary()
    advance = progress or (lambda n: None)
    with hub.sessions() as session:
        conns = outbox.due_connections(session, hub.now())
    if connection:
        conns = [c for c in conns if c == connection]
    if conns:
        with ThreadPoolExecutor(max_workers=len(conns), thread_name_prefix="dispatch") as pool:
            for future in [
                pool.submit(contextvars.copy_context().run, _drain, hub, conn, summary, advance) for conn in conns
            ]:
                future.result()
    return summary


@dataclass(frozen=True)
class Claim:
    row_id: int
    token: str
    part_id: str


def _claim(hub: Hub, conn: str) -> Claim | None:
    lease = timedelta(seconds=hub.settings.dispatch_lease_seconds)
    with hub.transaction() as session:
        row = outbox.claim_one(session, hub.now(), lease=lease, connection=conn)
        return Claim(row.id, row.claim_token, row.part_id) if row else None


def _drain(hub: Hub, conn: str, summary: DispatchSummary, advance: Callable[[int], None]) -> None:
    """`limits.concurrency` workers, each claiming one row right before delivering it, until
    none is due: a lease only ever has to cover a single delivery."""
    try:
        connector = hub.connector(conn)
    except Exception as exc:  # a broken connection (config, a CA file gone, …): waits for ops, with backoff
        if not isinstance(exc, (ConfigInvalid, HubError)):
            log.exception("dispatch: connection %s cannot be made", conn)
        summary.unusable[conn] = str(exc) if isinstance(exc, (ConfigInvalid, HubError)) else type(exc).__name__
        while claim := _claim(hub, conn):
            _finish(hub, claim, None, f"{conn}: 连接配置错误 configuration: {exc}", True, summary)
            advance(1)
        return
    try:
        workers = hub.connections[conn].limits.concurrency
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"dispatch-{conn}") as pool:
            for future in [
                pool.submit(contextvars.copy_context().run, _work, hub, connector, summary, advance)
                for _ in range(workers)
            ]:
                future.result()
    finally:
        connector.close()


def _work(hub: Hub, connector: Connector, summary: DispatchSummary, advance: Callable[[int], None]) -> None:
    while claim := _claim(hub, connector.name):
        _deliver(hub, connector, claim, summary)
        advance(1)


def _deliver(hub: Hub, connector: Connector, claim: Claim, summary: DispatchSummary) -> None:
    with hub.sessions() as session:
        part = session.get(Part, claim.part_id)
        app = applications.get(session, part.application.number, _actor(connector.name))
        part = next(p for p in app.parts if p.id == part.id)
        still_open = part.state in (PartState.pending, PartState.in_review)
        message = part_message(app, part) if still_open else None
    if message is None:  # withdrawn (or closed in the hub) since it was queued: owed no more
        return _cancel(hub, claim, summary)
    try:
        receipt = connector.submit(message)
    except DeliveryError as exc:
        _finish(hub, claim, None, str(exc), exc.retryable, summary)
    except Exception as exc:  # a connector bug must not stop the other deliveries
        log.exception("connector %s failed on outbox row %s", connector.name, claim.row_id)
        _finish(hub, claim, None, f"{connector.name}: 内部错误 internal error ({type(exc).__name__})", True, summary)
    else:
        decision, problem, checked = receipt.update, receipt.decision_error, None
        if decision is not None and decision.part_id != claim.part_id:  # never decide another part
            decision, problem = (
                None,
                f"{connector.name}: 回执中的决定属于另一部分 (a decision for another part) — ignored",
            )
        try:
            # a stateless system's decision: its documents checked before the transaction, as sync does
            checked = sync.check_documents(hub, decision) if decision is not None else None
        except Exception as exc:
            log.exception("dispatch: result documents of part %s unreadable", claim.part_id)
            decision, problem = (
                None,
                f"{connector.name}: 结果文件无法检查 (result documents unreadable: {type(exc).__name__})",
            )
        _finish(hub, claim, receipt.remote_id, None, False, summary, decision, checked, problem)


def _decided(
    session: Session,
    hub: Hub,
    row: OutboxRow,
    decision: Update,
    checked: sync.CheckedDocuments,
    summary: DispatchSummary,
) -> None:
    """Apply the decision a stateless system gave with its receipt, in the delivery's own
    transaction: there is no status operation to ask again, so it is kept with the delivery or
    not at all. If the hub cannot apply it (withdrawn meanwhile), the delivery still stands."""
    applied = sync.SyncSummary()
    try:
        with session.begin_nested():
            sync.apply_in(session, hub, row.connection, row, decision, checked, applied)
    except HubError as exc:  # e.g. withdrawn meanwhile: said where ops and the officer will see it
        log.info("dispatch: %s on part %s not applied: %s", decision.status, row.part_id, exc)
        applications.record_event(
            session,
            session.get(Application, row.application_id).number,
            "decision_not_applied",
            _actor(row.connection),
            part_id=row.part_id,
            now=hub.now(),
            reason=text.clean(f"部门系统的决定未能适用 (the department's decision was not applied): {exc}"[:500]),
            data={"connection": row.connection, "status": decision.status, "remote_id": row.remote_id},
        )
        return
    summary.count_decided(applied.decided + applied.supplements)


def _actor(conn: str) -> Actor:
    return Actor(name=f"dispatch:{conn}", role=Role.system)


def _cancel(hub: Hub, claim: Claim, summary: DispatchSummary) -> None:
    with hub.transaction() as session:
        row = session.get(OutboxRow, claim.row_id, with_for_update=True)
        if row is not None and row.state == "pending" and row.claim_token == claim.token:
            outbox.cancel(session, [row.part_id])
            summary.count("cancelled", row.connection)


def _finish(
    hub: Hub,
    claim: Claim,
    remote_id: str | None,
    error: str | None,
    retryable: bool,
    summary: DispatchSummary,
    decision: Update | None = None,
    checked: sync.CheckedDocuments | None = None,
    problem: str | None = None,
) -> None:
    """Record a delivery's outcome under its claim. `decision` (with its `checked` documents): a
    stateless system's decision given with the receipt; `problem`: the system took the part but
    its decision could not be read — the delivery stands and the problem is recorded."""
    now = hub.now()
    with hub.transaction() as session:
        row = session.get(OutboxRow, claim.row_id, with_for_update=True)
        if row is None:
            return
        number = session.get(Application, row.application_id).number
        actor = _actor(row.connection)
        if row.state == "cancelled" and remote_id is not None:
            # withdrawn while the department was taking it: they now hold a case the hub no
            # longer owes — say so where ops and the officer will see it
            log.warning("outbox row %s: %s took part %s after it was withdrawn", row.id, row.connection, row.part_id)
            applications.record_event(
                session,
                number,
                "dispatch_after_withdrawal",
                actor,
                part_id=row.part_id,
                now=now,
                reason="撤回时部门系统已收件，请联系部门撤件 (the department received it as it was withdrawn)",
                data={"connection": row.connection, "remote_id": remote_id},
            )
            row.remote_id = remote_id
            return
        if row.state != "pending" or row.claim_token != claim.token:
            # our lease ran out and another dispatcher has the row: its outcome is the one recorded
            log.info("outbox row %s: claim lost, outcome left to its new holder", row.id)
            return
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
            if decision is not None and checked is not None:
                _decided(session, hub, row, decision, checked, summary)
            if problem:
                row.last_error = text.clean(problem[:1000])
                applications.record_event(
                    session,
                    number,
                    "decision_unreadable",
                    actor,
                    part_id=row.part_id,
                    now=now,
                    reason=text.clean(problem[:500]),
                    data={"connection": row.connection, "remote_id": remote_id},
                )
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
