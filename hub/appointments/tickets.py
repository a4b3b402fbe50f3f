"""取号: a ticket at a desk — a walk-in for an item group, or a booking checked in (by its code or
the resident's ID number). Numbers run per desk, day and group: the group's letter and a count
(A001, B014 …). Priority (called before the others, in order of arrival):

- 老年人: 65 or older (settings.queue.elderly_age) on the day, from the ID number's birth date;
- 优先办 at an enclave window (窗口飞地): a resident of the county the window acts for (the ID
  number's address code is the county's), since the window exists to serve them away from home;
- an appointment checked in within its slot (from a quarter of an hour before it starts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub import audit
from hub.applications.models import Actor
from hub.appointments.common import group_at, groups_of, local_now, parse_hhmm, queue_desk, staff_at
from hub.catalog.models import Channel, Desk
from hub.context import Hub
from hub.errors import FieldError, InvalidInput
from hub.ids import check_id_number, mask_id
from hub.storage.tables import QueueBooking, QueueSlot, QueueTicket, naive_utc

EARLY = timedelta(minutes=15)  # a check-in this early still counts as on time
REASON_ZH = {"elderly": "老年人优先", "enclave": "飞地优先办", "appointment": "预约按时签到"}


@dataclass(frozen=True)
class TicketView:
    id: int
    desk: str
    day: date
    group: str
    number: str
    priority: int
    priority_reason: str | None
    state: str
    counter: str | None
    recalls: int
    id_number: str | None  # masked
    booking_code: str | None
    application_id: int | None


def view(t: QueueTicket, booking_code: str | None = None) -> TicketView:
    return TicketView(
        t.id,
        t.desk_code,
        t.day,
        t.group_code,
        t.number,
        t.priority,
        t.priority_reason,
        t.state,
        t.counter,
        t.recalls,
        mask_id(t.id_number) if t.id_number else None,
        booking_code,
        t.application_id,
    )


def age_on(id_number: str, day: date) -> int | None:
    """Age in whole years on `day` from a GB 11643 number's birth date (None: not a valid number)."""
    if check_id_number(id_number, today=day) is not None:
        return None
    born = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def priority_of(hub: Hub, desk: Desk, id_number: str | None, on_time: bool) -> str | None:
    """The reason a ticket goes first, or None. The one rule for every surface."""
    if id_number:
        age = age_on(id_number, hub.today())
        if age is not None and age >= hub.settings.queue.elderly_age:
            return "elderly"
        if desk.channel is Channel.enclave and id_number[:6] == desk.acts_for:
            return "enclave"
    return "appointment" if on_time else None


def _booking_for(hub: Hub, desk: str, code: str | None, id_number: str | None) -> QueueBooking:
    today = hub.today()
    q = select(QueueBooking).where(QueueBooking.desk_code == desk, QueueBooking.day == today)
    if code:
        q = q.where(QueueBooking.code == code.strip().upper())
        field = "code"
    else:
        q = q.where(QueueBooking.id_number == (id_number or "").strip().upper(), QueueBooking.state == "booked")
        field = "id_number"
    with hub.sessions() as session:
        row = session.scalars(q.order_by(QueueBooking.slot_id)).first()
        if row is not None:
            session.expunge(row)
    if row is None:
        raise InvalidInput.field(field, "没有找到本窗口今天的预约", "no booking at this desk today")
    if row.state != "booked":
        raise InvalidInput.field(field, "该预约已签到、已取消或已改约", "this booking is not open for check-in")
    return row


def take(
    hub: Hub,
    actor: Actor,
    desk: str,
    *,
    group: str | None = None,
    code: str | None = None,
    id_number: str | None = None,
) -> TicketView:
    """A ticket: with `code` (or `id_number` and no `group`) a booking's check-in; else a walk-in
    for `group` (the ID number, when given, decides priority)."""
    d = queue_desk(hub, desk)
    staff_at(actor, desk, supervisor=False)
    ident = (id_number or "").strip().upper() or None
    if ident and (reason := check_id_number(ident, today=hub.today())):
        raise InvalidInput([FieldError("id_number", reason)])
    booking = None
    on_time = False
    if code or (ident and not group):
        booking = _booking_for(hub, desk, code, ident)
        ident = booking.id_number
        group_code = booking.group_code
        with hub.sessions() as session:
            slot = session.get(QueueSlot, booking.slot_id)
            assert slot is not None
            now = local_now(hub)
            starts = datetime.combine(slot.day, parse_hhmm(slot.starts, "starts"))
            ends = datetime.combine(slot.day, parse_hhmm(slot.ends, "ends"))
            on_time = starts - EARLY <= now <= ends
    elif group:
        group_code = group_at(hub, desk, group).code
    else:
        raise InvalidInput.field("group", "请选择事项类别，或输入预约码", "choose an item group or give a booking code")
    reason = priority_of(hub, d, ident, on_time)
    letter = groups_of(hub).by_code[group_code].letter
    today, now_utc = hub.today(), naive_utc(hub.now())
    for _attempt in range(5):  # two desks' terminals numbering at once on PostgreSQL: try the next
        try:
            with hub.transaction() as session:
                if booking is not None:
                    done = session.execute(
                        QueueBooking.__table__.update()
                        .where(QueueBooking.id == booking.id, QueueBooking.state == "booked")
                        .values(state="checked_in", active_key=None, changed_at=now_utc)
                    ).rowcount
                    if not done:
                        raise InvalidInput.field("code", "该预约已签到", "already checked in")
                n = session.scalar(
                    select(func.count(QueueTicket.id)).where(
                        QueueTicket.desk_code == desk, QueueTicket.day == today, QueueTicket.group_code == group_code
                    )
                )
                ticket = QueueTicket(
                    desk_code=desk,
                    day=today,
                    group_code=group_code,
                    number=f"{letter}{(n or 0) + 1:03d}",
                    priority=1 if reason else 0,
                    priority_reason=reason,
                    booking_id=booking.id if booking else None,
                    id_number=ident,
                    state="waiting",
                    recalls=0,
                    created_at=now_utc,
                )
                session.add(ticket)
                session.flush()
                audit.add(session, hub, actor, "queue_ticket", target=desk, number=ticket.number, reason=reason)
                return view(ticket, booking.code if booking else None)
        except IntegrityError as exc:
            if "number" not in str(exc.orig) and "queue_tickets" not in str(exc.orig):
                raise
    raise InvalidInput.field("group", "取号繁忙，请重试", "busy, please try again")


def waiting(hub: Hub, actor: Actor, desk: str) -> list[TicketView]:
    """Today's tickets at the desk not yet done: waiting in call order, then called and serving."""
    staff_at(actor, desk)
    q = (
        select(QueueTicket, QueueBooking.code)
        .outerjoin(QueueBooking, QueueBooking.id == QueueTicket.booking_id)
        .where(
            QueueTicket.desk_code == desk,
            QueueTicket.day == hub.today(),
            QueueTicket.state.in_(("waiting", "called", "serving")),
        )
        .order_by(QueueTicket.priority.desc(), QueueTicket.id)
    )
    with hub.sessions() as session:
        return [view(t, c) for t, c in session.execute(q)]
