"""The queue in Chromium against the real app under uvicorn (one server for the module): a
resident signed in online books a slot on a phone, checks in at the desk for a ticket, is called to
a counter — the 叫号屏, already open on a second page, shows it live without a reload (server-sent
events) — and the ticket becomes the application the clerk receives. Then the display's stream
itself: a reconnect with Last-Event-ID gets what it missed, and the stream never carries a name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.applications import Actor
from hub.appointments import calls, slots, tickets
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import Application, Event, QueueTicket
from hub.users import add_user
from hub.web.resident_session import RESIDENT_COOKIE, open_resident_session
from tests.conftest import CST, PDF, Clock, make_id
from tests.support.page_checks import accessible
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, expect, log_in, shot  # noqa: F401  (browser: the module's one Chromium)

CLERK = ("zhangmin", "大厅-窗口-2026")
HALL = "hall-county"
RESIDENT_ID = make_id("330329", date(1958, 3, 15), "002")  # 68: elderly, so the ticket goes first
RESIDENT_NAME = "林阿婆"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Hub]]:
    folder = tmp_path_factory.mktemp("queue")
    with sqlite_hub(folder, Clock(datetime(2026, 9, 21, 9, 30, tzinfo=CST))) as hub:
        add_user(hub, CLERK[0], CLERK[1], display_name="张敏", role=Role.clerk, desk=HALL)
        clerk = Actor(name="张敏", role=Role.clerk, desk=HALL)
        slots.publish(
            hub,
            clerk,
            desk=HALL,
            group="zonghe",
            day="2026-09-21",
            starts="10:00",
            ends="11:00",
            capacity=3,
            every_minutes=30,
        )
        with serving(hub) as url:
            yield url, hub


def _context(browser, **kw):  # noqa: F811
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **kw)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    return context


def test_book_check_in_called_live_on_the_display_and_received(browser, site, tmp_path: Path):  # noqa: F811
    url, hub = site
    errors: list[str] = []

    # ---- the 叫号屏, open before anything happens (no login)
    screen_ctx = _context(browser, viewport={"width": 1280, "height": 720})
    screen = screen_ctx.new_page()
    screen.on("pageerror", lambda exc: errors.append(str(exc)))
    loads: list[str] = []
    screen.on("load", lambda _p: loads.append(screen.url))
    screen.goto(f"{url}/display/{HALL}")
    expect(screen.locator("h1")).to_have_text("泰顺县政务服务中心综合受理窗口")
    expect(screen.locator("#now-number")).to_have_text("—")

    # ---- a resident signed in online (网办) books on a phone
    cookie = open_resident_session(
        hub, provider="sandbox", subject="u-1", id_number=RESIDENT_ID, name=RESIDENT_NAME, phone="13905770001"
    )
    phone_ctx = _context(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone_ctx.add_cookies([{"name": RESIDENT_COOKIE, "value": cookie, "url": url}])
    phone = phone_ctx.new_page()
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    phone.goto(f"{url}/appointments?desk={HALL}&group=zonghe")
    first = phone.locator("#book-form input[name=slot]").first
    expect(phone.locator("#book-form")).to_contain_text("2026-09-21 10:00–10:30")
    first.check()
    phone.fill("#book-form input[name=phone]", "13905770001")
    phone.locator("#book-form button").click()
    expect(phone.locator("#booked")).to_contain_text("预约成功")
    code = phone.locator(".my-bookings .code").first.inner_text()
    assert re.fullmatch(r"[2-9A-Z]{8}", code)
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1]
    accessible(phone)
    shot(phone, "queue-01-booked-390.png")

    # ---- at the desk: check in with the booking code, call the next ticket to counter 3
    desk_ctx = _context(browser, viewport={"width": 1280, "height": 900})
    desk = desk_ctx.new_page()
    desk.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(desk, url, CLERK, "/")
    desk.goto(f"{url}/queue")
    desk.fill("#check-in input[name=code]", code.lower())
    desk.locator("#check-in button").click()
    expect(desk.locator("#queue-notice")).to_have_text("已取号 E001")
    row = desk.locator("#queue-tickets tr[data-number='E001']")
    expect(row).to_contain_text("老年人优先")
    expect(row).not_to_contain_text(RESIDENT_ID)  # masked
    desk.fill("#call-next input[name=counter]", "3")
    desk.locator("#call-next button").click()
    expect(desk.locator("#queue-notice")).to_have_text("请 E001 号到 3 号窗口")
    accessible(desk)
    shot(desk, "queue-03-desk.png")

    # ---- the screen shows it live, without a reload, and no name
    expect(screen.locator("#now-number")).to_have_text("E001")
    expect(screen.locator("#now-counter")).to_have_text("3")
    expect(screen.locator("#calls li").first).to_contain_text("E001")
    expect(screen.locator("body")).not_to_contain_text(RESIDENT_NAME)
    assert loads == [f"{url}/display/{HALL}"]
    accessible(screen)
    shot(screen, "queue-02-display.png")

    # ---- the ticket becomes an application: intake from the queue page
    desk.locator("#queue-tickets tr[data-number='E001'] a.action-intake").click()
    expect(desk.locator("#queue-ticket")).to_contain_text("E001")
    desk.fill("input[name=q]", "lnrydz")
    desk.locator("form.search button").click()
    desk.locator("a.subject[href^='/intake/GG00501000?ticket=']").click()
    expect(desk.locator("#queue-ticket")).to_contain_text("E001")
    desk.fill("input[name=applicant_name]", RESIDENT_NAME)
    desk.fill("input[name=applicant_id]", RESIDENT_ID)
    desk.select_option("select[name=f_delivery_method]", "窗口领取")
    desk.fill("input[name=f_contact_phone]", "13905770001")
    scan = tmp_path / "身份证.pdf"
    scan.write_bytes(PDF)
    desk.set_input_files("input[name=file_0]", str(scan))
    desk.locator("tr[data-material='近期免冠彩色证件照'] input[name=missing]").check()
    desk.fill("input[name=commitment_due]", "2026-09-28")
    boxes = desk.locator("input[name=checklist]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    # the same form posted twice behind the page's back (a retried request), then the click: one
    # application, the ticket linked once, every answer the same receipt
    replayed = desk.evaluate(
        """async () => {
            const form = document.getElementById("intake");
            const post = () => fetch(location.href, { method: "POST", body: new FormData(form) });
            const answers = await Promise.all([post(), post()]);
            return answers.map((r) => [r.status, new URL(r.url).pathname]);
        }"""
    )
    desk.locator("#submit").click()
    desk.wait_for_url(re.compile(r"/applications/[^/]+/receipt$"))
    number = desk.url.split("/applications/")[1].split("/")[0]
    assert replayed == [[200, f"/applications/{number}/receipt"]] * 2

    with hub.sessions() as s:
        app_id = s.scalar(select(Application.id).where(Application.number == number))
        ticket = s.scalar(select(QueueTicket).where(QueueTicket.number == "E001"))
        review = s.scalar(select(Event).where(Event.application_id == app_id, Event.action == "pre_review"))
        assert ticket.application_id == app_id and ticket.state == "serving"
        assert review.data["queue_ticket"] == "E001"
    for ctx in (screen_ctx, phone_ctx, desk_ctx):
        ctx.close()
    assert not errors, errors


def test_the_display_stream_replays_after_last_event_id_and_carries_no_names(site):
    url, hub = site
    clerk = Actor(name="张敏", role=Role.clerk, desk=HALL)
    tickets.take(hub, clerk, HALL, group="zonghe", id_number=RESIDENT_ID)
    called = calls.call_next(hub, clerk, "5")
    assert called is not None
    last = calls.recent(hub, HALL)[-1]["id"]
    with httpx.Client(base_url=url, timeout=30) as client:
        with client.stream("GET", f"/display/{HALL}/events", headers={"Last-Event-ID": str(last - 1)}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            seen: list[dict] = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    break
        assert seen == [{"id": last, "number": called.number, "counter": "5", "kind": "call"}]
        assert client.get("/display/bank-xiahong").status_code == 404  # no queue at a bank outlet
