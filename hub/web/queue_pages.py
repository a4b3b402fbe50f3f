"""Appointments and the queue on the web (hub.appointments; docs/appointments.md):

- residents: /appointments signed in online (网办, hub.web.resident_session), and /s/NUMBER/book
  from an application's status page (the status link's key is the capability, as for rating);
- desk staff: /queue (take a ticket, check in, call the next one to a counter, recall, no-show,
  start, finish, receive: /intake/CODE?ticket=ID), /queue/slots (publish, capacity, close) and
  phone bookings;
- anyone: /display/DESK, the 叫号屏 (ticket numbers and counters only), updated live by
  server-sent events from /display/DESK/events (hub.appointments.display);
- the API: /api/v1/appointments and /api/v1/tickets.

Every rule is the core's; these routes parse, call and show."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from hub.applications.models import Actor
from hub.appointments import bookings, calls, slots, tickets
from hub.appointments.bookings import Person
from hub.appointments.common import groups_of, queue_desk
from hub.appointments.display import Broadcaster, TooManyStreams, frame
from hub.appointments.groups import QUEUE_CHANNELS
from hub.appointments.tickets import REASON_ZH
from hub.context import Hub
from hub.errors import InvalidInput, NotFound
from hub.lifecycle import FRONT, Role
from hub.web.applicant_status import open_status, status_path
from hub.web.deps import PasswordChangeRequired, get_hub, need, optional_principal
from hub.web.render import render
from hub.web.resident_session import Resident, optional_resident
from hub.web.security import CSRF_FIELD, CSRF_HEADER, Principal, check_csrf, same

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["appointments"])
HubDep = Annotated[Hub, Depends(get_hub)]
Front = Annotated[Principal, Depends(need("applications:write", *FRONT))]
SlotKeeper = Annotated[Principal, Depends(need("applications:read", *FRONT, Role.supervisor))]
ResidentDep = Annotated[Resident | None, Depends(optional_resident)]
STATE_ZH = {
    "booked": "已预约",
    "checked_in": "已签到",
    "cancelled": "已取消",
    "moved": "已改约",
    "no_show": "过号未到",
    "waiting": "等候中",
    "called": "已叫号",
    "serving": "办理中",
    "done": "已办结",
}


def _booked_notice(code: str | None) -> tuple[str, str] | None:
    if not code:
        return None
    code = code[:12]
    return f"预约成功，预约码 {code}。请按时到窗口取号签到。", f"Booked: your code is {code}."


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _errors(exc: InvalidInput) -> list[dict[str, str]]:
    return [e.as_dict() for e in exc.errors]


def _desks(hub: Hub) -> list[Any]:
    return [d for d in hub.catalog.desks.values() if d.channel in QUEUE_CHANNELS]


def _globals(hub: Hub) -> dict[str, Any]:
    return {"groups": groups_of(hub), "STATE_ZH_Q": STATE_ZH, "REASON_ZH": REASON_ZH}


# ---------------------------------------------------------------- residents online (网办)


def _move_targets(hub: Hub, mine: list[bookings.BookingView]) -> dict[str, list[slots.SlotView]]:
    """For each open booking, the other slots it may move to (same desk and group, with room)."""
    days = hub.settings.queue.book_days_ahead + 1
    return {
        b.code: [s for s in slots.listing(hub, b.desk, group=b.group, bookable=True, days=days) if s.id != b.slot_id]
        for b in mine
        if b.state == "booked"
    }


def _resident_page(
    request: Request, hub: Hub, resident: Resident | None, *, status: int = 200, errors=None, notice=None
) -> Response:
    desk = request.query_params.get("desk") or ""
    group = request.query_params.get("group") or ""
    found = []
    if resident and desk and group:
        try:
            queue_desk(hub, desk)
            found = slots.listing(hub, desk, group=group, bookable=True, days=hub.settings.queue.book_days_ahead + 1)
        except InvalidInput as exc:
            errors = (errors or []) + _errors(exc)
    mine = bookings.of_person(hub, resident.id_number) if resident else []
    return render(
        request,
        "queue_resident.html",
        status,
        resident=resident,
        desks=_desks(hub),
        desk=desk,
        group=group,
        slots=found,
        mine=mine,
        moves=_move_targets(hub, mine),
        errors=errors or [],
        notice=notice,
        action="/appointments",
        token=resident.csrf if resident else "",
        status_link=None,
        **_globals(hub),
    )


def _resident_form(resident: Resident, form) -> None:
    if not same(str(form.get(CSRF_FIELD) or ""), resident.csrf):
        raise HTTPException(403, "CSRF 校验失败，请刷新页面后重试 (CSRF token missing or wrong)")


@router.get("/appointments")
def resident_appointments(request: Request, hub: HubDep, resident: ResidentDep) -> Response:
    booked = request.query_params.get("booked")
    notice = _booked_notice(booked)
    return _resident_page(request, hub, resident, notice=notice)


@router.post("/appointments")
async def resident_book(request: Request, hub: HubDep, resident: ResidentDep) -> Response:
    if resident is None:
        raise HTTPException(401, "请先登录 (resident not signed in)")
    form = await request.form()
    _resident_form(resident, form)
    person = Person(resident.id_number, resident.name, str(form.get("phone") or "") or resident.phone)
    try:
        made = await run_in_threadpool(
            bookings.book, hub, resident.actor, str(form.get("slot") or ""), person, channel="online"
        )
    except InvalidInput as exc:
        return await run_in_threadpool(_resident_page, request, hub, resident, status=422, errors=_errors(exc))
    return _see_other(f"/appointments?booked={made.code}")


@router.post("/appointments/{code}/{action}")
async def resident_change(code: str, action: str, request: Request, hub: HubDep, resident: ResidentDep) -> Response:
    if resident is None:
        raise HTTPException(401, "请先登录 (resident not signed in)")
    form = await request.form()
    _resident_form(resident, form)
    try:
        if action == "cancel":
            await run_in_threadpool(bookings.cancel, hub, resident.actor, code)
        elif action == "move":
            await run_in_threadpool(bookings.move, hub, resident.actor, code, str(form.get("slot") or ""))
        else:
            raise HTTPException(404)
    except InvalidInput as exc:
        return await run_in_threadpool(_resident_page, request, hub, resident, status=422, errors=_errors(exc))
    return _see_other("/appointments")


# ---------------------------------------------------------------- from the status page (/s/NUMBER?k=…)


def _status_context(request: Request, hub: Hub, number: str, k: str):
    try:
        app = open_status(hub, request.app.state.secret, number, k)
    except NotFound:
        raise HTTPException(404, "办件不存在或链接无效 (no such application or invalid link)") from None
    actor = Actor(name=app.applicant_name, role=Role.applicant, applicant_id=app.applicant_id)
    group = groups_of(hub).of_item(app.subject_code)
    return app, actor, group


def _status_page(request: Request, hub: Hub, number: str, k: str, *, status: int = 200, errors=None, notice=None):
    app, _actor, group = _status_context(request, hub, number, k)
    found, desks = [], []
    if group is not None:
        desks = [d for d in _desks(hub) if d.code in groups_of(hub).desks_of[group.code]]
        chosen = request.query_params.get("desk") or (
            app.desk_code if any(d.code == app.desk_code for d in desks) else (desks[0].code if desks else "")
        )
        if chosen in {d.code for d in desks}:
            found = slots.listing(
                hub, chosen, group=group.code, bookable=True, days=hub.settings.queue.book_days_ahead + 1
            )
    else:
        chosen = ""
    mine = [b for b in bookings.of_person(hub, app.applicant_id) if b.application_number == app.number]
    return render(
        request,
        "queue_resident.html",
        status,
        resident=None,
        application=app,
        desks=desks,
        desk=chosen,
        group=group.code if group else "",
        slots=found,
        mine=mine,
        moves=_move_targets(hub, mine),
        errors=errors or [],
        notice=notice,
        action=f"/s/{app.number}/book?k={k}",
        token="",
        status_link=status_path(request.app.state.secret, app.number),
        **_globals(hub),
    )


@router.get("/s/{number}/book")
def status_book_page(number: str, request: Request, hub: HubDep, k: str = "") -> Response:
    booked = request.query_params.get("booked")
    notice = _booked_notice(booked)
    return _status_page(request, hub, number, k, notice=notice)


@router.post("/s/{number}/book")
async def status_book(number: str, request: Request, hub: HubDep, k: str = "") -> Response:
    app, actor, _group = await run_in_threadpool(_status_context, request, hub, number, k)
    form = await request.form()
    person = Person(app.applicant_id, app.applicant_name, str(form.get("phone") or "") or app.form.get("contact_phone"))
    try:
        made = await run_in_threadpool(
            lambda: bookings.book(
                hub, actor, str(form.get("slot") or ""), person, channel="status", application_number=app.number
            )
        )
    except InvalidInput as exc:
        return await run_in_threadpool(_status_page, request, hub, number, k, status=422, errors=_errors(exc))
    return _see_other(f"/s/{app.number}/book?k={k}&booked={made.code}")


@router.post("/s/{number}/book/{code}/{action}")
async def status_change(number: str, code: str, action: str, request: Request, hub: HubDep, k: str = "") -> Response:
    _app, actor, _group = await run_in_threadpool(_status_context, request, hub, number, k)
    form = await request.form()
    try:
        if action == "cancel":
            await run_in_threadpool(bookings.cancel, hub, actor, code)
        elif action == "move":
            await run_in_threadpool(bookings.move, hub, actor, code, str(form.get("slot") or ""))
        else:
            raise HTTPException(404)
    except InvalidInput as exc:
        return await run_in_threadpool(_status_page, request, hub, number, k, status=422, errors=_errors(exc))
    return _see_other(f"/s/{number}/book?k={k}")


# ---------------------------------------------------------------- at the desk


def _desk_page(request: Request, hub: Hub, principal: Principal, *, status: int = 200, errors=None, notice=None):
    actor = principal.actor
    desk = hub.catalog.desks[actor.desk]
    if desk.channel not in QUEUE_CHANNELS:
        raise HTTPException(404, "本窗口不设排队叫号 (no queue at this desk)")
    return render(
        request,
        "queue_desk.html",
        status,
        desk=desk,
        desk_groups=groups_of(hub).at(desk.code),
        queue=tickets.waiting(hub, actor, desk.code),
        booked=bookings.of_desk(hub, actor, desk.code, hub.today()),
        bookable=slots.listing(hub, desk.code, bookable=True, days=hub.settings.queue.book_days_ahead + 1),
        errors=errors or [],
        notice=notice,
        counter=request.cookies.get("tbh_counter", ""),
        **_globals(hub),
    )


@router.get("/queue")
def desk_queue(request: Request, hub: HubDep, principal: Front) -> Response:
    notice = request.query_params.get("notice")
    return _desk_page(request, hub, principal, notice=(notice[:80], notice[:80]) if notice else None)


async def _staff_form(request: Request, principal: Principal):
    form = await request.form()
    check_csrf(principal, str(form.get(CSRF_FIELD) or ""))
    return form


async def _desk_action(request: Request, hub: Hub, principal: Principal, work) -> Response:
    try:
        said = await run_in_threadpool(work)
    except InvalidInput as exc:
        return await run_in_threadpool(_desk_page, request, hub, principal, status=422, errors=_errors(exc))
    return _see_other(f"/queue?notice={said}" if said else "/queue")


@router.post("/queue/tickets")
async def desk_take(request: Request, hub: HubDep, principal: Front) -> Response:
    form = await _staff_form(request, principal)
    desk = principal.actor.desk or ""

    def work() -> str:
        t = tickets.take(
            hub,
            principal.actor,
            desk,
            group=str(form.get("group") or "") or None,
            code=str(form.get("code") or "") or None,
            id_number=str(form.get("id_number") or "") or None,
        )
        return f"已取号 {t.number}"

    return await _desk_action(request, hub, principal, work)


@router.post("/queue/call")
async def desk_call(request: Request, hub: HubDep, principal: Front) -> Response:
    form = await _staff_form(request, principal)
    counter = str(form.get("counter") or "")

    def work() -> str:
        t = calls.call_next(hub, principal.actor, counter)
        return f"请 {t.number} 号到 {t.counter} 号窗口" if t else "当前无人等候"

    response = await _desk_action(request, hub, principal, work)
    if response.status_code == 303:
        response.set_cookie("tbh_counter", counter.strip()[:16], samesite="strict", httponly=True, max_age=36000)
    return response


ACTIONS = {"recall": calls.recall, "no_show": calls.no_show, "start": calls.start, "finish": calls.finish}


@router.post("/queue/tickets/{ticket_id}/{action}")
async def desk_ticket(ticket_id: int, action: str, request: Request, hub: HubDep, principal: Front) -> Response:
    if action not in ACTIONS:
        raise HTTPException(404)
    await _staff_form(request, principal)
    return await _desk_action(request, hub, principal, lambda: ACTIONS[action](hub, principal.actor, ticket_id) and "")


@router.post("/queue/bookings")
async def desk_book(request: Request, hub: HubDep, principal: Front) -> Response:
    """A phone booking for a resident: name, ID number, phone."""
    form = await _staff_form(request, principal)
    person = Person(str(form.get("id_number") or ""), str(form.get("name") or ""), str(form.get("phone") or "") or None)

    def work() -> str:
        b = bookings.book(hub, principal.actor, str(form.get("slot") or ""), person, channel="desk")
        return f"已预约，预约码 {b.code}"

    return await _desk_action(request, hub, principal, work)


@router.post("/queue/bookings/{code}/cancel")
async def desk_cancel(code: str, request: Request, hub: HubDep, principal: Front) -> Response:
    await _staff_form(request, principal)
    return await _desk_action(
        request, hub, principal, lambda: bookings.cancel(hub, principal.actor, code) and "已取消预约"
    )


def _slots_page(request: Request, hub: Hub, principal: Principal, desk: str, *, status: int = 200, errors=None):
    queue_desk(hub, desk)
    return render(
        request,
        "queue_slots.html",
        status,
        desk=hub.catalog.desks[desk],
        desks=_desks(hub) if principal.role is Role.supervisor else [],
        desk_groups=groups_of(hub).at(desk),
        slots=slots.listing(hub, desk, days=hub.settings.queue.book_days_ahead + 1),
        errors=errors or [],
        today=hub.today().isoformat(),
        **_globals(hub),
    )


def _slot_desk(principal: Principal, asked: str | None) -> str:
    if principal.role is Role.supervisor:
        return asked or "hall-county"
    return principal.actor.desk or ""


@router.get("/queue/slots")
def desk_slots(request: Request, hub: HubDep, principal: SlotKeeper, desk: str | None = None) -> Response:
    return _slots_page(request, hub, principal, _slot_desk(principal, desk))


@router.post("/queue/slots")
async def desk_publish(request: Request, hub: HubDep, principal: SlotKeeper) -> Response:
    form = await _staff_form(request, principal)
    desk = _slot_desk(principal, str(form.get("desk") or "") or None)
    try:
        await run_in_threadpool(
            lambda: slots.publish(
                hub,
                principal.actor,
                desk=desk,
                group=str(form.get("group") or ""),
                day=str(form.get("day") or ""),
                starts=str(form.get("starts") or ""),
                ends=str(form.get("ends") or ""),
                capacity=str(form.get("capacity") or ""),
                every_minutes=str(form.get("every") or "") or None,
            )
        )
    except InvalidInput as exc:
        return await run_in_threadpool(_slots_page, request, hub, principal, desk, status=422, errors=_errors(exc))
    return _see_other(f"/queue/slots?desk={desk}")


@router.post("/queue/slots/{slot_id}/{action}")
async def desk_slot_change(slot_id: int, action: str, request: Request, hub: HubDep, principal: SlotKeeper) -> Response:
    form = await _staff_form(request, principal)
    try:
        if action == "capacity":
            view = await run_in_threadpool(
                slots.set_capacity, hub, principal.actor, slot_id, str(form.get("capacity") or "")
            )
        elif action == "close":
            view = await run_in_threadpool(slots.close, hub, principal.actor, slot_id)
        else:
            raise HTTPException(404)
    except InvalidInput as exc:
        desk = _slot_desk(principal, str(form.get("desk") or "") or None)
        return await run_in_threadpool(_slots_page, request, hub, principal, desk, status=422, errors=_errors(exc))
    return _see_other(f"/queue/slots?desk={view.desk}")


# ---------------------------------------------------------------- the 叫号屏 (public)


def broadcaster_of(request: Request) -> Broadcaster:
    state = request.app.state
    b = getattr(state, "queue_broadcaster", None)
    if b is None:
        hub: Hub = state.hub
        b = state.queue_broadcaster = Broadcaster(
            hub, poll_seconds=hub.settings.queue.poll_seconds, max_streams=hub.settings.queue.max_display_streams
        )
    return b


def _public_desk(hub: Hub, desk: str):
    try:
        return queue_desk(hub, desk)
    except InvalidInput:
        raise HTTPException(404, "没有这个窗口 (no such desk)") from None


@router.get("/display/{desk}")
def display_page(desk: str, request: Request, hub: HubDep) -> Response:
    d = _public_desk(hub, desk)
    shown = calls.recent(hub, desk, limit=8)
    return render(
        request,
        "queue_display.html",
        desk=d,
        shown=list(reversed(shown)),
        after=calls.last_call_id(hub),
    )


@router.get("/display/{desk}/events")
async def display_events(desk: str, request: Request, hub: HubDep) -> Response:
    """text/event-stream of the desk's calls after Last-Event-ID (a reconnect) or `after` (the
    page's last shown); a comment every heartbeat_seconds keeps proxies from closing it."""
    _public_desk(hub, desk)
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or ""
    after = int(raw) if raw.isdigit() else None
    b = broadcaster_of(request)
    try:
        stream = await b.subscribe(desk)
    except TooManyStreams:
        raise HTTPException(
            503, "叫号屏连接已满，请稍后重试 (too many display streams)", headers={"Retry-After": "5"}
        ) from None
    heartbeat = hub.settings.queue.heartbeat_seconds

    async def events():
        try:
            yield "retry: 2000\n\n"
            if after is not None:
                for e in await run_in_threadpool(lambda: calls.recent(hub, desk, after=after, limit=20)):
                    if stream.first_time(e["id"]):
                        yield frame(e)
            while stream in b.streams.get(desk, ()):
                try:
                    event_id, text = await asyncio.wait_for(stream.queue.get(), timeout=heartbeat)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if stream.first_time(event_id):  # not sent already by the catch-up read
                    yield text
        finally:
            b.unsubscribe(stream)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"}
    )


# ---------------------------------------------------------------- API


class BookingIn(BaseModel):
    slot_id: int
    name: str | None = Field(default=None, max_length=100)
    id_number: str | None = Field(default=None, max_length=18)
    phone: str | None = Field(default=None, max_length=20)


class MoveIn(BaseModel):
    slot_id: int


class TicketIn(BaseModel):
    group: str | None = Field(default=None, max_length=32)
    code: str | None = Field(default=None, max_length=12)
    id_number: str | None = Field(default=None, max_length=18)


class CallIn(BaseModel):
    counter: str = Field(max_length=16)


async def api_caller(
    request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]
) -> tuple[Actor, Person | None]:
    """Desk staff (token or session) or a signed-in resident (cookie; x-csrf-token on writes):
    the actor, and for a resident who they are."""
    write = request.method != "GET"
    if principal is not None:
        if principal.must_change_password:
            raise PasswordChangeRequired()
        if "applications:write" not in principal.scopes or principal.role not in FRONT:
            raise HTTPException(403, "无权访问：需要窗口人员 (forbidden: desk staff only)")
        if write:
            check_csrf(principal, request.headers.get(CSRF_HEADER))
        return principal.actor, None
    resident = await optional_resident(request)
    if resident is None:
        raise HTTPException(401, "请先登录 (not logged in)")
    if write and not same(request.headers.get(CSRF_HEADER) or "", resident.csrf):
        raise HTTPException(403, "CSRF 校验失败 (CSRF token missing or wrong)")
    return resident.actor, Person(resident.id_number, resident.name, resident.phone)


Caller = Annotated[tuple[Actor, Person | None], Depends(api_caller)]


def _booking_json(b: bookings.BookingView) -> dict[str, Any]:
    return {
        "code": b.code,
        "desk": b.desk,
        "group": b.group,
        "day": b.day.isoformat(),
        "starts": b.starts,
        "ends": b.ends,
        "state": b.state,
        "name": b.name,
        "id_number": b.id_number,
        "application_number": b.application_number,
        "reminded": b.reminded,
    }


def _ticket_json(t: tickets.TicketView | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "id": t.id,
        "number": t.number,
        "desk": t.desk,
        "group": t.group,
        "state": t.state,
        "counter": t.counter,
        "priority_reason": t.priority_reason,
        "recalls": t.recalls,
        "application_id": t.application_id,
    }


@api.get("/appointments/slots")
def api_slots(hub: HubDep, desk: str, group: str | None = None) -> list[dict[str, Any]]:
    """Bookable slots of a desk (public: what anyone may book)."""
    queue_desk(hub, desk)
    found = slots.listing(hub, desk, group=group, bookable=True, days=hub.settings.queue.book_days_ahead + 1)
    return [
        {"id": s.id, "group": s.group, "day": s.day.isoformat(), "starts": s.starts, "ends": s.ends, "free": s.free}
        for s in found
    ]


@api.post("/appointments", status_code=201)
async def api_book(body: BookingIn, hub: HubDep, caller: Caller) -> dict[str, Any]:
    actor, person = caller
    channel = "online" if person is not None else "desk"
    who = person or Person(body.id_number or "", body.name or "", body.phone)
    if person is not None and body.phone:
        who = Person(person.id_number, person.name, body.phone)
    made = await run_in_threadpool(lambda: bookings.book(hub, actor, body.slot_id, who, channel=channel))
    return _booking_json(made)


@api.get("/appointments/{code}")
async def api_booking(code: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    return _booking_json(await run_in_threadpool(bookings.find, hub, caller[0], code))


@api.post("/appointments/{code}/move")
async def api_move(code: str, body: MoveIn, hub: HubDep, caller: Caller) -> dict[str, Any]:
    return _booking_json(await run_in_threadpool(bookings.move, hub, caller[0], code, body.slot_id))


@api.post("/appointments/{code}/cancel")
async def api_cancel(code: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    return _booking_json(await run_in_threadpool(bookings.cancel, hub, caller[0], code))


@api.post("/tickets", status_code=201)
async def api_take(body: TicketIn, request: Request, hub: HubDep, principal: Front) -> dict[str, Any]:
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    made = await run_in_threadpool(
        lambda: tickets.take(
            hub, principal.actor, principal.actor.desk or "", group=body.group, code=body.code, id_number=body.id_number
        )
    )
    return _ticket_json(made) or {}


@api.post("/tickets/call")
async def api_call(body: CallIn, request: Request, hub: HubDep, principal: Front) -> dict[str, Any] | None:
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    return _ticket_json(await run_in_threadpool(calls.call_next, hub, principal.actor, body.counter))


@api.post("/tickets/{ticket_id}/{action}")
async def api_ticket(ticket_id: int, action: str, request: Request, hub: HubDep, principal: Front) -> dict[str, Any]:
    check_csrf(principal, request.headers.get(CSRF_HEADER))
    if action not in ACTIONS:
        raise HTTPException(404)
    return _ticket_json(await run_in_threadpool(ACTIONS[action], hub, principal.actor, ticket_id)) or {}
