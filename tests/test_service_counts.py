"""The service channels' counts (hub.supervision.service) on SQLite and PostgreSQL: one day with
a booking checked in, called and served, a walk-in called and not there, an agency task with a
visit and its application (also synced through a kit), an online and a hall application — the
exact numbers from the function, on the dashboard's 服务渠道 strip (by channel and by desk), in
the daily report's JSON and its service CSV; a day with nothing gives zeros and "—", not errors;
the strip is for supervisors only."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub import applications as svc
from hub.applications import Actor
from hub.appointments import bookings, calls, slots, tickets
from hub.appointments.figures import queue_figures
from hub.context import Hub
from hub.jobs.report import daily_report
from hub.lifecycle import Role
from hub.storage.tables import KitDevice, KitRecord, User
from hub.supervision import figures as dashboard
from hub.supervision.service import FIGURES, service_counts
from hub.tokens import create_token
from hub.web.app import create_app
from tests.conftest import Clock, make_id
from tests.support.samples import elderly_card
from tests.test_agency import FORM, PDF, agent, desk_task, signature_png
from tests.test_agency import tasks as agency_tasks

DAY = date(2026, 9, 22)  # a Tuesday
QUIET = date(2026, 9, 23)
HALL = Actor(name="县中心窗口张敏", role=Role.clerk, desk="hall-county")
ONLINE = Actor(name="网办受理员周敏", role=Role.clerk, desk="online-zlb")
HTML = {"accept": "text/html"}

EXPECTED = {
    "trips_saved": 2,  # received at the online desk and at the township desk (not the county hall)
    "visits": 1,
    "tasks_opened": 1,
    "tasks_done": 1,
    "agent_applications": 1,  # the task's application, also synced by a kit: once
    "agent_applications_kit": 1,
    "agent_applications_tasks": 1,
    "received": 3,  # hall, online, the agent's
    "received_online": 1,
    "online_share": 0.3333,
    "tickets": 2,
    "served": 1,
    "no_shows": 1,
    "wait_avg": 8.0,  # waits of 6 and 10 minutes
    "wait_p90": 10.0,
}
SHOWN = EXPECTED | {"online_share": "33.3%", "wait_avg": "8.0", "wait_p90": "10.0"}


def _seed(hub: Hub, clock: Clock) -> None:
    clock.set(DAY, hour=8)
    slot = slots.publish(
        hub, HALL, desk="hall-county", group="zonghe", day=DAY.isoformat(), starts="09:00", ends="09:30", capacity=2
    )[0].id
    person = bookings.Person(make_id("330329", date(1980, 3, 2), "015"), "陈志强", "13905770003")
    code = bookings.book(hub, HALL, slot, person, channel="desk").code
    clock.set(DAY, hour=9)
    booked = tickets.take(hub, HALL, "hall-county", code=code)
    walk_in = tickets.take(hub, HALL, "hall-county", group="zonghe")
    clock.advance(seconds=6 * 60)
    first = calls.call_next(hub, HALL, "1")
    assert first is not None and first.id == booked.id  # the appointment goes first
    clock.advance(seconds=4 * 60)
    calls.finish(hub, HALL, booked.id)
    second = calls.call_next(hub, HALL, "2")
    assert second is not None and second.id == walk_in.id
    for _ in range(hub.settings.queue.no_show_after_recalls):  # 过号 only after the recalls
        calls.recall(hub, HALL, walk_in.id)
    calls.no_show(hub, HALL, walk_in.id)

    me = agent(hub, "agent-a", "代办员甲", "013", townships=["330329201"])
    task_id = desk_task(hub)
    agency_tasks.take(hub, me, task_id)
    agency_tasks.record_visit(hub, me, task_id, agency_tasks.VisitIn(place="东溪村12号", outcome="collected"))
    for name, content in (("居民身份证", PDF), ("近期免冠彩色证件照", b"\xff\xd8\xff\xe0" + b"\x00" * 32)):
        agency_tasks.collect_material(hub, me, task_id, name, f"{name}.bin", content)
    agency_tasks.sign_consent(hub, me, task_id, signature_png(), signature_png(2))
    produced = agency_tasks.start_application(hub, me, task_id, FORM, "form-1")
    agency_tasks.finish(hub, me, task_id)
    now = datetime(2026, 9, 22, 3)  # 11:00 Beijing time, naive UTC as stored
    with hub.transaction() as s:
        user = s.scalar(select(User.id).where(User.username == "agent-a"))
        device = KitDevice(user_id=user, name="背包1", token_hash="0" * 64, created_at=now)
        s.add(device)
        s.flush()
        # the same application through the kit, and a record still being received: neither adds one
        synced = KitRecord(device_id=device.id, record_id="r-1", content_sha256="a" * 64, created_at=now)
        synced.application_number, synced.synced_at = produced.number, now
        s.add(synced)
        s.add(KitRecord(device_id=device.id, record_id="r-2", content_sha256="b" * 64, created_at=now))

    svc.create(hub, elderly_card(desk="online-zlb"), ONLINE)
    svc.create(hub, elderly_card(desk="hall-county"), HALL)


@pytest.fixture
def seeded(hub: Hub, clock: Clock) -> Hub:
    _seed(hub, clock)
    return hub


@pytest.fixture
def web(seeded: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(seeded), base_url="http://127.0.0.1") as client:
        yield client


def _token(hub: Hub, name: str, role: Role, desk: str | None, scopes: list[str]) -> dict[str, str]:
    secret, _ = create_token(hub, name, role=role, desk=desk, department=None, scopes=scopes, created_by="test")
    return {"authorization": f"Bearer {secret}"}


def _strip(html: str) -> dict[str, str]:
    section = html.split('id="service-counts"', 1)[1].split("</section>", 1)[0]
    return dict(re.findall(r'data-figure="(\w+)">([^<]*)<', section))


def test_the_counts_of_a_day_from_every_channel(seeded: Hub):
    counts = service_counts(seeded, DAY, DAY).as_dict()
    assert {k: counts[k] for k in EXPECTED} == EXPECTED
    # one definition: trips saved and received are the dashboard's, the queue's counts its own
    total = dashboard.figures(seeded, DAY, DAY, "total")[0]
    assert (counts["trips_saved"], counts["received"]) == (total.trips_saved, total.received)
    (desk,) = queue_figures(seeded, DAY, DAY).by_desk  # one desk: its row is the total
    assert (desk.tickets, desk.served, desk.no_shows, desk.wait_avg, desk.wait_p90) == (2, 1, 1, 8.0, 10.0)
    # a period holding the day counts the same; the next day alone counts nothing
    assert service_counts(seeded, date(2026, 9, 21), QUIET).as_dict() | {"start": "", "end": ""} == counts | {
        "start": "",
        "end": "",
    }
    quiet = service_counts(seeded, QUIET, QUIET)
    assert quiet.online_share is None and quiet.wait_avg is None and quiet.wait_p90 is None
    assert all(quiet.as_dict()[k] == 0 for k in EXPECTED if k not in ("online_share", "wait_avg", "wait_p90"))

    # a kit record synced at 23:30 Beijing time (15:30 UTC) is the 22nd's, not the 23rd's
    late = datetime(2026, 9, 22, 15, 30)
    with seeded.transaction() as s:
        device = s.scalar(select(KitDevice.id))
        record = KitRecord(device_id=device, record_id="r-3", content_sha256="c" * 64, created_at=late)
        record.application_number, record.synced_at = "TS-LATE-1", late
        s.add(record)
    after = service_counts(seeded, DAY, DAY)
    assert (after.agent_applications, after.agent_applications_kit, after.agent_applications_tasks) == (2, 2, 1)
    assert service_counts(seeded, QUIET, QUIET).agent_applications == 0


def test_the_dashboard_strip_shows_the_same_numbers_to_supervisors_only(web: TestClient, seeded: Hub):
    boss = _token(seeded, "boss", Role.supervisor, None, ["applications:read", "reports:read"])
    for by in ("channel", "desk"):  # by channel the page's rows are reused; by desk they are read again
        page = web.get(f"/dashboard?by={by}&start={DAY}&end={DAY}", headers=HTML | boss)
        assert page.status_code == 200 and "服务渠道" in page.text
        assert _strip(page.text) == {k: str(v) for k, v in SHOWN.items()}
    quiet = web.get(f"/dashboard?start={QUIET}&end={QUIET}&lang=en", headers=HTML | boss)
    assert quiet.status_code == 200 and "Service channels" in quiet.text
    shown = _strip(quiet.text)
    assert shown["online_share"] == shown["wait_avg"] == shown["wait_p90"] == "—"
    assert shown["visits"] == shown["tickets"] == shown["trips_saved"] == "0"
    clerk = _token(seeded, "hall", Role.clerk, "hall-county", ["applications:read", "reports:read"])
    assert web.get(f"/dashboard?start={DAY}&end={DAY}", headers=HTML | clerk).status_code in (403, 404)


def test_the_daily_report_carries_the_same_counts(seeded: Hub):
    report = daily_report(seeded, DAY)
    body = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert {k: body["service"][k] for k in EXPECTED} == EXPECTED
    assert body["service"]["start"] == body["service"]["end"] == DAY.isoformat()
    assert body["total"]["received"] == 3  # the main figures are untouched
    with open(report.service_csv_path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["figure", "name", "value"]
    assert [r[0] for r in rows[1:]] == [name for name, _, _ in FIGURES]
    assert {r[0]: r[2] for r in rows[1:]} == {k: str(v) for k, v in EXPECTED.items()}
    with open(report.csv_path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f))
    assert header[:2] == ["dimension", "key"]  # the main CSV keeps its columns
    assert report.service_csv_path.name in report.line()

    quiet = daily_report(seeded, QUIET)
    service = json.loads(quiet.json_path.read_text(encoding="utf-8"))["service"]
    assert service["online_share"] is None and service["visits"] == 0 and service["tickets"] == 0
    with open(quiet.service_csv_path, encoding="utf-8-sig", newline="") as f:
        values = {r[0]: r[2] for r in list(csv.reader(f))[1:]}
    assert values["online_share"] == values["wait_p90"] == "" and values["served"] == "0"
