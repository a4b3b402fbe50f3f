"""`sync`: bring departments' decisions back. For every delivered part not yet decided, ask its
connection for updates and map them onto the hub's life cycle:

    in_review             → start_review (the part)
    approved / denied     → approve / deny (the part), with reason and result documents
    supplement_requested  → request_supplement (the application; the clock stops)

Only a change of the department's status is applied (the last one seen is kept on the outbox
row, written in the transaction that applies it), so a 补正 the department still shows after
the applicant answered is not requested again, and polling twice changes nothing. A change the
hub cannot apply yet (e.g. a decision while the application waits for 补正) stays unseen and is
tried again on the next run."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import applications as svc
from hub import text
from hub.applications import Actor
from hub.connectors import DeliveryError, Document, PollFailure, Receipt, Unsupported, Update
from hub.context import Hub
from hub.errors import ConfigInvalid, HubError, Reason
from hub.lifecycle import PartState, Role, State
from hub.storage.tables import Application, OutboxRow, Part, naive_utc

log = logging.getLogger(__name__)


@dataclass
class SyncSummary:
    updates: int = 0
    decided: int = 0
    supplements: int = 0
    documents: int = 0
    refused: int = 0
    errors: int = 0
    by_connection: dict[str, int] = field(default_factory=dict)  # errors, per connection

    def error(self, conn: str, n: int = 1) -> None:
        self.errors += n
        self.by_connection[conn] = self.by_connection.get(conn, 0) + n

    def line(self) -> str:
        return (
            f"sync: {self.updates} updates, {self.decided} parts decided, {self.supplements} supplements "
            f"requested, {self.documents} result documents ({self.refused} refused), {self.errors} connection errors"
            + (
                f" ({', '.join(f'{c}: {n}' for c, n in sorted(self.by_connection.items()))})"
                if self.by_connection
                else ""
            )
        )


def sync(hub: Hub, *, connection: str | None = None, progress: Callable[[int], None] | None = None) -> SyncSummary:
    summary = SyncSummary()
    advance = progress or (lambda n: None)
    with hub.sessions() as session:
        stmt = select(OutboxRow).where(OutboxRow.state == "delivered", OutboxRow.synced_at.is_(None))
        if connection:
            stmt = stmt.where(OutboxRow.connection == connection)
        waiting: dict[str, list[Receipt]] = defaultdict(list)
        last_seen: dict[str, str | None] = {}
        for row in session.scalars(stmt):
            waiting[row.connection].append(Receipt(part_id=row.part_id, remote_id=row.remote_id))
            last_seen[row.part_id] = row.remote_status
    for conn, receipts in waiting.items():
        for update in _poll(hub, conn, receipts, summary, advance):
            if update.status == last_seen.get(update.part_id):
                continue
            summary.updates += 1
            try:
                _apply(hub, conn, update, summary)
            except HubError as exc:  # e.g. withdrawn meanwhile: the department's word no longer applies
                log.info("sync: %s on part %s not applied: %s", update.status, update.part_id, exc)
            except Exception as exc:  # one update the hub cannot take must not stop the others
                log.exception("sync: %s on part %s failed", update.status, update.part_id)
                summary.error(conn)
                _note(hub, {update.part_id: f"{conn}: 内部错误 internal error ({type(exc).__name__})"})
    return summary


def _poll(
    hub: Hub, conn: str, receipts: list[Receipt], summary: SyncSummary, advance: Callable[[int], None]
) -> list[Update]:
    """The connection's updates for `receipts`. Whatever goes wrong is recorded (the summary, the
    log, and the outbox rows' last error for ops) and stops only this connection; one receipt's
    unreadable answer stops only that receipt. A connection with nothing to poll (a submit-only
    or stateless system) is not a failure."""
    try:
        connector = hub.connector(conn)
    except (ConfigInvalid, HubError) as exc:
        return _failed(hub, conn, receipts, f"连接不可用 connection unusable: {exc}", summary)
    except Exception as exc:
        log.exception("sync: connection %s cannot be made", conn)
        return _failed(hub, conn, receipts, f"连接不可用 connection unusable ({type(exc).__name__})", summary)
    try:
        answers = list(connector.poll(receipts))
    except Unsupported:
        log.debug("sync: %s has no status operation; nothing to poll", conn)
        return []
    except DeliveryError as exc:
        return _failed(hub, conn, receipts, str(exc), summary)
    except Exception as exc:  # a connector's bug must not stop the other connections
        log.exception("sync: connector %s failed", conn)
        return _failed(hub, conn, receipts, f"{conn}: 内部错误 internal error ({type(exc).__name__})", summary)
    finally:
        connector.close()
        advance(len(receipts))
    asked = {r.part_id: r.remote_id for r in receipts}
    # only answers about the receipts asked about: a connector never decides another part
    answers = [a for a in answers if asked.get(a.part_id, object()) == a.remote_id]
    updates = [a for a in answers if isinstance(a, Update)]
    failures = [a for a in answers if isinstance(a, PollFailure)]
    for f in failures:
        log.warning("sync: %s part %s: %s", conn, f.part_id, f.message)
    if failures:
        summary.error(conn, len(failures))
    # a receipt read cleanly again loses the sync problem recorded on it earlier
    _note(hub, {u.part_id: None for u in updates} | {f.part_id: f.message for f in failures})
    return updates


def _failed(hub: Hub, conn: str, receipts: list[Receipt], message: str, summary: SyncSummary) -> list[Update]:
    log.warning("sync: %s", message)
    summary.error(conn)
    _note(hub, {r.part_id: message for r in receipts})
    return []


def _note(hub: Hub, messages: dict[str, str | None]) -> None:
    """The sync problem on each delivered row (ops see it in `hub outbox list` and on the ops
    page), by part id; None clears an earlier sync problem (the answer read cleanly again) but
    never a delivery's own error."""
    if not messages:
        return
    with hub.transaction() as session:
        for row in session.scalars(select(OutboxRow).where(OutboxRow.part_id.in_(list(messages)))):
            message = messages[row.part_id]
            if row.state != "delivered":
                continue
            if message is not None:
                row.last_error = text.clean(f"sync: {message}"[:1000])
            elif row.last_error and row.last_error.startswith("sync: "):
                row.last_error = None


def _apply(hub: Hub, conn: str, update: Update, summary: SyncSummary) -> None:
    """One department status change, applied in one transaction with the record that it was
    seen: a crash leaves either both or neither, so nothing is applied twice."""
    checked = check_documents(hub, update)
    with hub.transaction() as session:
        row = session.scalars(select(OutboxRow).where(OutboxRow.part_id == update.part_id).with_for_update()).one()
        apply_in(session, hub, conn, row, update, checked, summary)


@dataclass
class CheckedDocuments:
    documents: list[Document]
    refused: list[tuple[str, Reason]]


def check_documents(hub: Hub, update: Update) -> CheckedDocuments:
    """Result documents are checked (and stored, content-addressed) before the transaction. One
    the hub must refuse (too large, wrong type) does not hold the decision back: it is recorded
    as refused, for the officer to fetch from the department by hand."""
    checked = CheckedDocuments([], [])
    for doc in update.documents if update.status in ("approved", "denied") else []:
        if problem := hub.store.check(doc.content):
            checked.refused.append((doc.name, problem))
        else:
            checked.documents.append(doc)
    return checked


def apply_in(
    session: Session,
    hub: Hub,
    conn: str,
    row: OutboxRow,
    update: Update,
    checked: CheckedDocuments,
    summary: SyncSummary,
) -> None:
    """Apply `update` to its part in the caller's transaction, `row` (its outbox row) locked."""
    actor = Actor(name=f"sync:{conn}", role=Role.system)
    decision = update.status in ("approved", "denied")
    documents, refused = checked.documents, checked.refused
    if row.remote_status == update.status:
        return  # another sync applied it meanwhile
    part = session.get(Part, update.part_id)
    app: Application = part.application
    number, code = app.number, part.item_code
    open_part = part.state in (PartState.pending, PartState.in_review)
    if update.status in ("in_review", "approved", "denied") and part.state == PartState.pending:
        svc.transition(hub, number, "start_review", actor, part=code, session=session)
    if decision and open_part:
        for doc in documents:
            svc.attach_result(hub, number, update.part_id, doc.name, doc.content, actor, session=session)
            summary.documents += 1
        for name, problem in refused:
            log.warning("sync: result document %r for part %s refused: %s", name, update.part_id, problem.en)
            svc.record_event(
                session,
                number,
                "result_refused",
                actor,
                part_id=update.part_id,
                now=hub.now(),
                reason=str(problem),
                data={"name": name, "connection": conn},
            )
            summary.refused += 1
        svc.transition(
            hub,
            number,
            "approve" if update.status == "approved" else "deny",
            actor,
            part=code,
            reason=(update.reason and text.clean(update.reason))  # the department's words, made storable
            or ("部门系统不予批准 (denied by the department system)" if update.status == "denied" else None),
            session=session,
        )
        summary.decided += 1
    elif update.status == "supplement_requested" and app.state in (State.accepted, State.in_review):
        svc.transition(
            hub,
            number,
            "request_supplement",
            actor,
            reason=(update.reason and text.clean(update.reason)) or "部门要求补正 (department asks for more)",
            session=session,
        )
        summary.supplements += 1
    row.remote_status = update.status
    if decision or not open_part:
        row.synced_at = naive_utc(hub.now())
