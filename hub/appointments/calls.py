"""叫号: counter staff call the next ticket to their counter, recall it, mark a no-show (only after
recalls), start and finish the service, and link the ticket to the application it becomes.

Two counters never get the same ticket: the next one is claimed with SELECT … FOR UPDATE SKIP
LOCKED on PostgreSQL (a counter calling at the same moment skips the row the other holds and takes
the one after), and inside the write transaction SQLite serializes. Every call, recall and no-show
is a `queue_calls` row: what the 叫号屏 in any API process shows (hub.appointments.display)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hub import audit
from hub.applications.models import Actor
from hub.appointments.common import staff_at
from hub.appointments.tickets import TicketView, view
from hub.context import Hub
from hub.errors import InvalidInput, NotFound
from hub.storage.tables import Application, QueueBooking, QueueCall, QueueTicket, naive_utc

log = logging.getLogger(__name__)
COUNTER = re.compile(r"^[0-9A-Za-z\u4e00-\u9fff-]{1,16}$")  # 3, A2, 综合1 …
_listeners: list[Callable[[], None]] = []
_listeners_lock = threading.Lock()


def on_call(listener: Callable[[], None]) -> Callable[[], None]:
    """Run `listener` (no arguments, must not block) after each committed call, recall or
    no-show in this process: the display's broadcaster wakes at once instead of at its next poll."""
    with _listeners_lock:
        _listeners.append(listener)
    return listener


def off_call(listener: Callable[[], None]) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _notify() -> None:
    with _listeners_lock:
        current = list(_listeners)
    for listener in current:
        try:
            listener()
        except Exception:  # a closed event loop must not fail the call that was committed
            log.debug("queue call listener failed", exc_info=True)


def _counter(raw: str) -> str:
    value = (raw or "").strip()
    if not COUNTER.match(value):
        raise InvalidInput.field(
            "counter", "请填写窗口号（1–16 个字母、数字或汉字）", "counter: 1-16 letters or digits"
        )
    return value


def _record(session: Session, t: QueueTicket, kind: str, at: datetime) -> None:
    session.add(
        QueueCall(desk_code=t.desk_code, ticket_id=t.id, number=t.number, counter=t.counter or "", kind=kind, at=at)
    )


def call_next(hub: Hub, actor: Actor, counter: str, *, groups: list[str] | None = None) -> TicketView | None:
    """The next waiting ticket at the actor's desk (priority first, then arrival), now called to
    `counter`; None when nobody waits."""
    desk = actor.desk or ""
    staff_at(actor, desk, supervisor=False)
    counter = _counter(counter)
    now = naive_utc(hub.now())
    q = (
        select(QueueTicket)
        .where(QueueTicket.desk_code == desk, QueueTicket.day == hub.today(), QueueTicket.state == "waiting")
        .order_by(QueueTicket.priority.desc(), QueueTicket.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if groups:
        q = q.where(QueueTicket.group_code.in_(groups))
    with hub.transaction() as session:
        ticket = session.scalars(q).first()
        if ticket is None:
            return None
        ticket.state, ticket.counter, ticket.called_at, ticket.called_by = "called", counter, now, actor.name
        session.flush()
        _record(session, ticket, "call", now)
        audit.add(session, hub, actor, "queue_call", target=desk, number=ticket.number, counter=counter)
        result = view(ticket)
    _notify()
    return result


def _ticket(session: Session, actor: Actor, ticket_id: int | str) -> QueueTicket:
    try:
        tid = int(ticket_id)
    except (TypeError, ValueError):
        raise NotFound("没有这个号 (no such ticket)") from None
    t = session.scalars(select(QueueTicket).where(QueueTicket.id == tid).with_for_update()).first()
    if t is None or actor.desk != t.desk_code:
        raise NotFound("没有这个号 (no such ticket)")
    staff_at(actor, t.desk_code, supervisor=False)
    return t


def _wrong(t: QueueTicket, want: str) -> InvalidInput:
    return InvalidInput.field("ticket", f"{t.number} 当前状态为 {t.state}，不能{want}", f"ticket is {t.state}")


def recall(hub: Hub, actor: Actor, ticket_id: int | str) -> TicketView:
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        t = _ticket(session, actor, ticket_id)
        if t.state != "called":
            raise _wrong(t, "重呼")
        t.recalls += 1
        _record(session, t, "recall", now)
        result = view(t)
    _notify()
    return result


def no_show(hub: Hub, actor: Actor, ticket_id: int | str) -> TicketView:
    """过号: only a called ticket recalled at least settings.queue.no_show_after_recalls times. A
    booking behind it is marked no_show too."""
    now = naive_utc(hub.now())
    need = hub.settings.queue.no_show_after_recalls
    with hub.transaction() as session:
        t = _ticket(session, actor, ticket_id)
        if t.state != "called":
            raise _wrong(t, "标记过号")
        if t.recalls < need:
            raise InvalidInput.field(
                "ticket", f"请先重呼 {need} 次再标记过号（已重呼 {t.recalls} 次）", f"recall {need} times first"
            )
        t.state, t.finished_at = "no_show", now
        if t.booking_id is not None:
            session.execute(
                update(QueueBooking).where(QueueBooking.id == t.booking_id).values(state="no_show", changed_at=now)
            )
        _record(session, t, "no_show", now)
        audit.add(session, hub, actor, "queue_no_show", target=t.desk_code, number=t.number)
        result = view(t)
    _notify()
    return result


def start(hub: Hub, actor: Actor, ticket_id: int | str) -> TicketView:
    with hub.transaction() as session:
        t = _ticket(session, actor, ticket_id)
        if t.state != "called":
            raise _wrong(t, "开始办理")
        t.state, t.started_at = "serving", naive_utc(hub.now())
        return view(t)


def finish(hub: Hub, actor: Actor, ticket_id: int | str) -> TicketView:
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        t = _ticket(session, actor, ticket_id)
        if t.state not in ("called", "serving"):
            raise _wrong(t, "办结")
        t.state, t.finished_at = "done", now
        t.started_at = t.started_at or t.called_at
        return view(t)


def for_intake(hub: Hub, actor: Actor, ticket_id: int | str, *, source_ref: str | None = None) -> TicketView:
    """The called ticket an intake at the actor's desk will become (checked before receiving). A
    ticket already received is refused — unless it was received from this very form
    (`source_ref`: the same submission again, a double click or a retry, answered as before)."""
    with hub.sessions() as session:
        t = _ticket(session, actor, ticket_id)
        if t.state not in ("called", "serving"):
            raise _wrong(t, "收件")
        if t.application_id is not None:
            same_form = source_ref is not None and t.application_id == session.scalar(
                select(Application.id).where(Application.desk_code == t.desk_code, Application.source_ref == source_ref)
            )
            if not same_form:
                raise InvalidInput.field("ticket", f"{t.number} 已收件", "this ticket already became an application")
        return view(t)


def link(hub: Hub, actor: Actor, ticket_id: int | str, application_number: str) -> TicketView:
    """The ticket became this application (received at the same desk): recorded on the ticket,
    and its service starts if it had not. Idempotent for the same application."""
    now = naive_utc(hub.now())
    with hub.transaction() as session:
        t = _ticket(session, actor, ticket_id)
        app_id = session.scalar(
            select(Application.id).where(Application.number == application_number, Application.desk_code == t.desk_code)
        )
        if app_id is None:
            raise NotFound("没有这个办件 (no such application)")
        if t.application_id not in (None, app_id):
            raise InvalidInput.field("ticket", f"{t.number} 已关联其他办件", "ticket linked to another application")
        t.application_id = app_id
        if t.state == "called":
            t.state, t.started_at = "serving", now
        audit.add(session, hub, actor, "queue_linked", target=application_number, number=t.number)
        return view(t)


def recent(hub: Hub, desk: str, *, after: int = 0, limit: int = 10) -> list[dict]:
    """The display's rows: calls at the desk after id `after` (oldest first), at most `limit` —
    ticket numbers and counters only, never a name."""
    q = select(QueueCall).where(QueueCall.desk_code == desk, QueueCall.id > after)
    with hub.sessions() as session:
        rows = list(session.scalars(q.order_by(QueueCall.id.desc()).limit(limit)))
    return [event(r) for r in reversed(rows)]


def event(r: QueueCall) -> dict:
    return {"id": r.id, "number": r.number, "counter": r.counter, "kind": r.kind}


def calls_after(hub: Hub, after: int, limit: int = 1000) -> list[QueueCall]:
    """Every desk's calls after id `after`, for the broadcaster (bounded: it catches up in steps)."""
    with hub.sessions() as session:
        rows = list(session.scalars(select(QueueCall).where(QueueCall.id > after).order_by(QueueCall.id).limit(limit)))
        session.expunge_all()
    return rows


def last_call_id(hub: Hub) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.max(QueueCall.id))) or 0
