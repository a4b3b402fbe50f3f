"""The queue's web surfaces through the app (TestClient, SQLite and PostgreSQL): booking from an
application's status link, the API for desk staff and signed-in residents (the same rules and
errors as the core, a resident probing another's booking gets 404), the desk's pages, and the
figures on the supervisors' dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from hub import applications as svc
from hub.applications import Actor
from hub.appointments import bookings, calls, slots, tickets
from hub.context import Hub
from hub.lifecycle import Role
from hub.tokens import create_token
from hub.web.app import create_app
from hub.web.applicant_status import status_path
from hub.web.resident_session import RESIDENT_COOKIE, open_resident_session, resident_of
from tests.conftest import make_id
from tests.support.samples import ELDER_ID, elderly_card

HALL = Actor(name="窗口人员张敏", role=Role.clerk, desk="hall-county")
HTML = {"accept": "text/html"}
OTHER = make_id("330329", date(1990, 7, 1), "013")


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


def _token(hub: Hub, name: str, role: Role, desk: str | None, scopes: list[str]) -> dict[str, str]:
    secret, _ = create_token(hub, name, role=role, desk=desk, department=None, scopes=scopes, created_by="test")
    return {"authorization": f"Bearer {secret}"}


def _slot(hub: Hub, group: str = "zonghe", capacity: int = 1) -> int:
    return slots.publish(
        hub, HALL, desk="hall-county", group=group, day="2026-09-22", starts="09:00", ends="09:30", capacity=capacity
    )[0].id


def test_booking_from_the_status_link(web: TestClient, hub: Hub):
    number = svc.create(hub, elderly_card(desk="hall-county"), HALL).number
    slot = _slot(hub)
    path = status_path(web.app.state.secret, number)
    k = path.split("k=")[1]
    page = web.get(path, headers=HTML)
    assert f"/s/{number}/book?k={k}" in page.text
    form = web.get(f"/s/{number}/book?k={k}", headers=HTML)
    assert form.status_code == 200 and "2026-09-22 09:00–09:30" in form.text
    done = web.post(f"/s/{number}/book?k={k}", data={"slot": str(slot)}, follow_redirects=False)
    assert done.status_code == 303 and "booked=" in done.headers["location"]
    shown = web.get(done.headers["location"], headers=HTML)
    assert "预约成功" in shown.text and "已预约" in shown.text
    again = web.post(f"/s/{number}/book?k={k}", data={"slot": str(slot)}, headers=HTML)
    assert again.status_code == 422 and "已约满" in again.text
    later = slots.publish(
        hub, HALL, desk="hall-county", group="zonghe", day="2026-09-22", starts="10:00", ends="10:30", capacity=1
    )[0].id
    code = bookings.of_person(hub, ELDER_ID)[0].code
    page = web.get(f"/s/{number}/book?k={k}", headers=HTML)
    assert f"/s/{number}/book/{code}/move?k={k}" in page.text  # 改约 offered: the 10:00 slot has room
    moved = web.post(f"/s/{number}/book/{code}/move?k={k}", data={"slot": str(later)}, follow_redirects=False)
    assert moved.status_code == 303
    assert [(b.code, b.starts) for b in bookings.of_person(hub, ELDER_ID)] == [(code, "10:00")]
    cancelled = web.post(f"/s/{number}/book/{code}/cancel?k={k}", follow_redirects=False)
    assert cancelled.status_code == 303 and bookings.of_person(hub, ELDER_ID)[0].state == "cancelled"
    assert web.get(f"/s/{number}/book?k=wrong", headers=HTML).status_code == 404


def test_api_for_staff_and_residents_same_rules(web: TestClient, hub: Hub):
    slot = _slot(hub, capacity=2)
    staff = _token(hub, "hall", Role.clerk, "hall-county", ["applications:read", "applications:write"])
    made = web.post(
        "/api/v1/appointments",
        json={"slot_id": slot, "name": "林阿婆", "id_number": ELDER_ID, "phone": "13905770001"},
        headers=staff,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["id_number"] != ELDER_ID and body["state"] == "booked"
    bad = web.post("/api/v1/appointments", json={"slot_id": slot, "name": "", "id_number": "123"}, headers=staff)
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"id_number", "name"}
    # a resident signed in online: their own identity, CSRF header on writes
    cookie = open_resident_session(hub, provider="sandbox", subject="s", id_number=OTHER, name="陈志强")
    web.cookies.set(RESIDENT_COOKIE, cookie)
    no_csrf = web.post("/api/v1/appointments", json={"slot_id": slot})
    assert no_csrf.status_code == 403
    resident = resident_of(hub, cookie)
    assert resident is not None
    csrf = resident.csrf
    mine = web.post("/api/v1/appointments", json={"slot_id": slot}, headers={"x-csrf-token": csrf})
    assert mine.status_code == 201, mine.text
    full = web.post("/api/v1/appointments", json={"slot_id": slot, "name": "x", "id_number": ELDER_ID}, headers=staff)
    assert full.status_code == 422 and full.json()["errors"][0]["zh"].startswith("该时段已约满")
    # the resident probing the desk's booking of someone else: 404, as if it did not exist
    assert web.get(f"/api/v1/appointments/{body['code']}").status_code == 404
    assert web.get(f"/api/v1/appointments/{mine.json()['code']}").json()["state"] == "booked"
    cancelled = web.post(f"/api/v1/appointments/{mine.json()['code']}/cancel", headers={"x-csrf-token": csrf})
    assert cancelled.json()["state"] == "cancelled"
    web.cookies.clear()
    # tickets and calls over the API
    took = web.post("/api/v1/tickets", json={"code": body["code"]}, headers=staff)
    assert took.status_code == 422  # the booking is for tomorrow, not today
    took = web.post("/api/v1/tickets", json={"group": "zonghe"}, headers=staff)
    assert took.json()["number"] == "E001"
    called = web.post("/api/v1/tickets/call", json={"counter": "2"}, headers=staff)
    assert called.json()["number"] == "E001" and called.json()["state"] == "called"
    assert web.post("/api/v1/tickets/call", json={"counter": "2"}, headers=staff).json() is None
    other_desk = _token(hub, "dongxi", Role.clerk, "township-dongxi", ["applications:read", "applications:write"])
    assert web.post(f"/api/v1/tickets/{took.json()['id']}/recall", headers=other_desk).status_code == 404


def test_desk_pages_and_the_dashboard(web: TestClient, hub: Hub, clock):
    staff = _token(hub, "hall", Role.clerk, "hall-county", ["applications:read", "applications:write"])
    page = web.get("/queue", headers=HTML | staff)
    assert page.status_code == 200 and "现场取号" in page.text
    took = web.post("/queue/tickets", data={"group": "shebao-yibao"}, headers=staff, follow_redirects=False)
    assert took.status_code == 303
    refused = web.post("/queue/tickets", data={}, headers=HTML | staff)
    assert refused.status_code == 422 and "请选择事项类别" in refused.text
    published = web.post(
        "/queue/slots",
        data={"group": "zonghe", "day": "2026-09-26", "starts": "09:00", "ends": "10:00", "capacity": "3"},
        headers=HTML | staff,
    )
    assert published.status_code == 422 and "不是工作日" in published.text
    teller = _token(hub, "bank", Role.teller, "bank-xiahong", ["applications:read", "applications:write"])
    assert web.get("/queue", headers=HTML | teller).status_code == 404  # no queue at a bank outlet
    t = tickets.waiting(hub, HALL, "hall-county")[0]
    calls.call_next(hub, HALL, "1")
    clock.advance(seconds=240)
    calls.finish(hub, HALL, t.id)
    boss = _token(hub, "boss", Role.supervisor, None, ["applications:read", "reports:read"])
    dash = web.get("/dashboard?period=day", headers=HTML | boss)
    assert dash.status_code == 200 and 'id="queue-by-desk"' in dash.text and "社保医保类" in dash.text
