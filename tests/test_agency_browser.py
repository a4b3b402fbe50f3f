"""An agent takes a task on the board in Chromium (real app under uvicorn, one server for the
module): records a visit, collects a material, the resident and the agent both sign the 委托书 on
the canvas pads (pointer strokes), and the agent starts the application from the task — received
at the agent's home desk with the agent on it, listed on the task. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime

import pytest

from hub import applications as svc
from hub.agency import projects, roster, tasks
from hub.applications import Actor
from hub.lifecycle import Role
from hub.storage.tables import AgencyTask
from hub.users import add_user
from hub.web.resident_session import RESIDENT_COOKIE, open_resident_session
from tests.conftest import CST, PDF, Clock, make_id
from tests.support.page_checks import accessible, loopback_page, no_english
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, expect, shot  # noqa: F401  (browser: the module's one Chromium)

AGENT = ("wugang", "daiban-帮办-2026")
BOSS = ("liuqiang", "duocha-督查-2026")
TABLET = {"width": 820, "height": 1180}
DONGXI = "330329201"
RESIDENT_ID = make_id("330329", date(1946, 4, 3), "027")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, object, int]]:
    folder = tmp_path_factory.mktemp("agency")
    with sqlite_hub(folder, Clock(datetime(2026, 9, 21, 10, tzinfo=CST))) as hub:
        add_user(hub, AGENT[0], AGENT[1], display_name="吴刚", role=Role.agent, desk="township-dongxi")
        ops = Actor(name="运维", role=Role.ops)
        roster.add(
            hub, ops, AGENT[0], name="吴刚", id_number=make_id("330329", date(1985, 6, 1), "013"), townships=[DONGXI]
        )
        clerk = tasks.Who(Actor(name="东溪乡窗口吴丽", role=Role.clerk, desk="township-dongxi"))
        task = tasks.open_task(
            hub,
            clerk,
            tasks.NewTask(
                subject="GG00501000",
                resident_name="林阿公",
                resident_id=RESIDENT_ID,
                phone="13905770002",
                township=DONGXI,
                address="东溪乡东溪村12号",
                preferred_time="周三上午",
            ),
        )
        add_user(hub, BOSS[0], BOSS[1], display_name="刘强", role=Role.supervisor)
        boss = tasks.Who(Actor(name="刘强", role=Role.supervisor))
        project = projects.create(
            hub,
            boss,
            projects.NewProject(
                name="泰顺县氡泉康养综合体项目",
                company_name="泰顺县文旅投资有限公司",
                credit_code="91330329MA2K7Q8L1X",
                investment_wan=120000,
                agent=AGENT[0],
            ),
        )
        projects.add_milestone(hub, boss, project.id, "用地预审与选址意见书", date(2026, 9, 1))
        projects.add_milestone(hub, boss, project.id, "施工许可", date(2026, 12, 31))
        with serving(hub) as url:
            yield url, hub, task.id


@pytest.fixture
def tablet(browser) -> Iterator[object]:  # noqa: F811
    with loopback_page(browser, TIMEOUT_MS, viewport=TABLET) as page:
        yield page


def sign(page, field: str) -> None:
    """A signature drawn with the pointer: three strokes across the pad."""
    box = page.locator(f"canvas[data-signature-for={field}]").bounding_box()
    assert box is not None
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    for i in range(3):
        page.mouse.move(x + w * (0.1 + 0.25 * i), y + h * 0.7)
        page.mouse.down()
        for step in range(1, 9):
            page.mouse.move(x + w * (0.1 + 0.25 * i + 0.02 * step), y + h * (0.7 - 0.06 * step), steps=2)
        page.mouse.up()
    expect(page.locator(f"input[name={field}]")).to_have_value(re.compile(r"^data:image/png;base64,"))


def test_an_agent_takes_a_task_visits_gets_the_consent_signed_and_starts_the_application(tablet, site):
    url, hub, task_id = site
    page = tablet
    page.goto(f"{url}/login")
    page.fill("input[name=username]", AGENT[0])
    page.fill("input[name=password]", AGENT[1])
    page.locator("form[action='/login'] button").click()
    page.wait_for_url(f"{url}/agency")  # the agent lands on the board
    card = page.locator(f"#open-tasks [data-task='{task_id}']")
    expect(card).to_contain_text("林阿公")
    expect(card).to_contain_text("东溪乡")
    accessible(page)
    no_english(page)
    shot(page, "agency-01-board.png")
    card.get_by_role("button", name="接单").click()

    page.wait_for_url(f"{url}/agency/tasks/{task_id}")
    expect(page.locator("#task-state")).to_have_attribute("data-state", "taken")
    expect(page.locator("#task-agent")).to_have_text("吴刚")
    expect(page.locator("#consent-first")).to_be_visible()  # no application before the 委托书
    expect(page.locator("#start-application")).to_have_count(0)

    page.locator("#visit-form select[name=outcome]").select_option("collected")
    page.fill("#visit-form textarea[name=note]", "已核对身份证原件")
    page.locator("#visit-form button").click()
    expect(page.locator("#task-state")).to_have_attribute("data-state", "visiting")
    expect(page.locator("#visit-count")).to_have_text("1")
    expect(page.locator("#visits tbody tr")).to_contain_text("东溪乡东溪村12号")

    page.locator("#material-form select[name=material]").select_option("居民身份证")
    page.set_input_files(
        "#material-form input[name=file]", files=[{"name": "id.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.locator("#material-form button").click()
    expect(page.locator("#materials")).to_contain_text("居民身份证 · id.pdf")

    # an unsigned pad keeps the form from going (the hub refuses it too)
    page.locator("#consent-form button.primary").click()
    expect(page.locator("#consent-form .signature-missing")).to_be_visible()
    sign(page, "resident_signature")
    sign(page, "agent_signature")
    accessible(page)
    no_english(page)
    shot(page, "agency-02-signatures.png")
    page.locator("#consent-form button.primary").click()
    expect(page.locator("#consent-state")).to_contain_text("已签署")
    with hub.sessions() as session:
        sha = session.get(AgencyTask, task_id).consent_sha256
    assert sha and hub.store.path_of(sha).read_bytes().startswith(b"%PDF")
    letter = page.request.get(f"{url}/agency/tasks/{task_id}/consent.pdf")
    assert (
        letter.ok
        and letter.headers["content-type"] == "application/pdf"
        and letter.body() == hub.store.path_of(sha).read_bytes()
    )

    page.locator("#start-application").click()
    page.wait_for_url(f"{url}/agency/tasks/{task_id}/apply")
    page.locator("#apply-form select[name='f.delivery_method']").select_option("窗口领取")
    expect(page.locator("#apply-form input[name='f.contact_phone']")).to_have_value("13905770002")
    page.locator("#apply-form button.primary").click()
    page.wait_for_url(re.compile(rf"/agency/tasks/{task_id}\?done=application"))
    row = page.locator("#task-applications tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("已收件")
    number = row.locator("a").inner_text()
    shot(page, "agency-03-application.png")
    me = tasks.who(hub, Actor(name="吴刚", role=Role.agent, desk="township-dongxi"), AGENT[0])
    app = svc.read(hub, number, me.actor)
    assert (app.desk_code, app.agent_name, app.applicant_id) == ("township-dongxi", "吴刚", RESIDENT_ID)
    assert [m.name for m in app.materials] == ["居民身份证"]
    expect(page.locator("#history")).to_contain_text("发起办件")


def test_a_resident_asks_for_help_on_a_phone(browser, site):  # noqa: F811
    url, hub, _ = site
    cookie = open_resident_session(
        hub, provider="sandbox", subject="u-52", id_number=make_id("330329", date(1952, 8, 8), "046"), name="陈阿婆"
    )
    context = browser.new_context(
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    context.add_cookies([{"name": RESIDENT_COOKIE, "value": cookie, "url": url}])
    page = context.new_page()
    try:
        page.goto(f"{url}/help")
        expect(page.locator("h1")).to_have_text("帮您办")
        page.locator("#help-form select[name=township]").select_option(label="东溪乡")
        page.fill("#help-form input[name=phone]", "１３９０５７７００５２")  # 全角, as a phone keyboard may give
        page.fill("#help-form input[name=preferred_time]", "周五下午")
        page.locator("#help-form button.primary").click()
        expect(page.locator("#help-sent")).to_be_visible()
        expect(page.locator("#my-requests li")).to_have_count(1)
        expect(page.locator("#my-requests")).to_contain_text("待接单")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
        accessible(page)
        no_english(page)
        shot(page, "agency-04-help-390.png")
    finally:
        context.close()
    agent = tasks.who(hub, Actor(name="吴刚", role=Role.agent, desk="township-dongxi"), AGENT[0])
    asked = [t for t in tasks.listing(hub, agent, state="open") if t["resident_name"] == "陈阿婆"]
    assert [(t["origin"], t["preferred_time"]) for t in asked] == [("resident", "周五下午")]  # on the agent's board


def test_a_supervisor_reads_the_ledger_and_its_overdue_steps(tablet, site):
    url, _, _ = site
    page = tablet
    page.goto(f"{url}/login")
    page.fill("input[name=username]", BOSS[0])
    page.fill("input[name=password]", BOSS[1])
    page.locator("form[action='/login'] button").click()
    page.wait_for_url(f"{url}/")
    page.goto(f"{url}/projects")
    page.locator("#only-overdue").click()
    row = page.locator("#projects tbody tr.overdue")
    expect(row).to_have_count(1)
    expect(row.locator(".overdue-count")).to_have_text("1")
    accessible(page)
    no_english(page)
    row.locator("a").click()
    expect(page.locator("#overdue li")).to_have_count(1)
    expect(page.locator("#overdue")).to_contain_text("用地预审与选址意见书")
    expect(page.locator("#overdue")).to_contain_text("已逾期 20 天")
    accessible(page)
    no_english(page)
    shot(page, "agency-05-project.png")
    page.locator("#milestones tr.overdue button").click()  # done today: no longer overdue
    expect(page.locator("#overdue li")).to_have_text("无")
