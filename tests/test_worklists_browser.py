"""The to-do pages in Chromium (issue 21), one browser and one served hub for the module, with a
fixed clock (Tue 2026-09-29, the scene of tests/test_worklists.py) so days left and overdue are
exact: the enclave clerk's home, the officer's inbox (tabs, search by a full ID number — a partial
one finds nothing —, filters, sort), the application list's filters, the supervisor's open work
by card. Screenshots go to test-artifacts/ (worklist-*.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime

import pytest

from hub.context import Hub
from hub.lifecycle import Role
from hub.users import add_user
from tests.conftest import CST, Clock, make_id
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import browser, expect, log_in, page, shot  # noqa: F401  (fixtures)
from tests.test_worklists import Scene, build_scene

PASSWORD = "gongjijin-审批-2026"
OFFICER = ("gjj-officer", PASSWORD)
CLERK = ("hz-clerk", PASSWORD)
SUPERVISOR = ("supervisor", PASSWORD)
FULL_ID = make_id(born=date(1990, 7, 1), seq="201")  # the red case's applicant


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Hub, Scene]]:
    clock = Clock(datetime(2026, 9, 21, 10, tzinfo=CST))
    with sqlite_hub(tmp_path_factory.mktemp("worklists"), clock) as hub:
        scene = build_scene(hub, clock)
        add_user(hub, OFFICER[0], PASSWORD, display_name="郑敏", role=Role.officer, department="ts-gjj")
        add_user(hub, CLERK[0], PASSWORD, display_name="陈静", role=Role.enclave_clerk, desk="enclave-hangzhou")
        add_user(hub, SUPERVISOR[0], PASSWORD, display_name="吴督查", role=Role.supervisor)
        with serving(hub) as url:
            yield url, hub, scene


def row(p, number: str):
    return p.locator(f"tr[data-number='{number}']")


def test_the_enclave_clerks_home(page, served):  # noqa: F811
    base, _, scene = served
    log_in(page, base, CLERK, "/")
    expect(page).to_have_title(re.compile("^今日待办 · "))
    expect(page.locator("[data-count=supplement]")).to_have_text("1")
    expect(page.locator("[data-count=today]")).to_have_text("2")
    expect(page.locator("[data-count=handover]")).to_have_text("0")
    expect(page.locator("#supplement").locator(f"a[href='/applications/{scene.paused}']")).to_be_visible()
    expect(row(page, scene.paused)).to_contain_text("停表自 2026-09-29")
    expect(page.locator("#today tbody tr")).to_have_count(2)
    shot(page, "worklist-clerk-home.png")
    page.get_by_role("link", name="开始收件").click()
    page.wait_for_url(f"{base}/intake")


def test_the_officers_inbox_tabs_search_and_filters(page, served):  # noqa: F811
    base, _, scene = served
    log_in(page, base, OFFICER, "/inbox")
    expect(page).to_have_title(re.compile("^待办件 · "))
    tabs = page.locator("nav.tabs")
    expect(tabs.locator("[data-tab=all] .count")).to_have_text("6")
    expect(tabs.locator("[data-tab=to_accept] .count")).to_have_text("1")
    expect(tabs.locator("[data-tab=in_review] .count")).to_have_text("3")
    rows = page.locator("table.inbox tbody tr")
    expect(rows).to_have_count(6)
    # the most urgent first: the red card, 2 working days overdue (中秋 Fri 09-25 is no working day)
    expect(rows.first).to_have_attribute("data-number", scene.red)
    expect(rows.first.locator(".card-cell")).to_have_text("红牌")
    expect(rows.first.locator(".days")).to_have_text("超期 2 个工作日")
    expect(row(page, scene.yellow).locator(".days")).to_have_text("剩 2 个工作日")
    expect(row(page, scene.green).locator(".days")).to_have_text("剩 3 个工作日")
    expect(row(page, scene.paused).locator(".days")).to_have_text("停表中")
    expect(row(page, scene.red).locator(".received")).to_have_text("2026-09-21 10:00")  # Beijing time
    shot(page, "worklist-officer-inbox.png")

    tabs.locator("[data-tab=to_accept]").click()
    page.wait_for_url(re.compile(r"/inbox\?tab=to_accept"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-number", scene.waiting)

    # search: the full ID number finds its case (typed with 全角 digits), a partial one nothing
    tabs.locator("[data-tab=all]").click()
    page.wait_for_url(re.compile(r"tab=all"))
    search = page.locator("form.filters input[name=q]")
    search.fill(FULL_ID.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")))
    page.locator("form.filters button").click()
    page.wait_for_url(re.compile(r"q="))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-number", scene.red)
    expect(rows.first).not_to_contain_text(FULL_ID)  # masked in the list
    shot(page, "worklist-officer-search.png")
    search.fill(FULL_ID[:14])
    page.locator("form.filters button").click()
    page.wait_for_url(re.compile(r"q=" + FULL_ID[:14]))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_text("暂无待办")

    # filters and sort together: by received time, desk and channel kept
    search.fill("")
    page.select_option("select[name=desk]", "enclave-hangzhou")
    page.select_option("select[name=channel]", "enclave")
    page.select_option("select[name=sort]", "received")
    page.locator("form.filters button").click()
    page.wait_for_url(re.compile(r"sort=received"))
    expect(rows).to_have_count(6)
    expect(rows.first).to_have_attribute("data-number", scene.red)
    expect(rows.last).to_have_attribute("data-number", scene.green)
    page.select_option("select[name=desk]", "bank-xiahong")
    page.locator("form.filters button").click()
    page.wait_for_url(re.compile(r"desk=bank-xiahong"))
    expect(rows.first).to_have_text("暂无待办")
    shot(page, "worklist-officer-filtered.png")


def test_the_application_list_filters(page, served):  # noqa: F811
    base, _, scene = served
    log_in(page, base, OFFICER, "/inbox")
    page.goto(f"{base}/applications")
    expect(page.locator("table.applications tbody tr")).to_have_count(6)
    page.select_option("select[name=state]", "supplement_requested")
    page.locator("form.filters button").click()
    page.wait_for_url(re.compile(r"state=supplement_requested"))
    expect(page.locator("table.applications tbody tr")).to_have_count(1)
    expect(row(page, scene.paused)).to_be_visible()
    page.goto(f"{base}/applications?received_from=2026-09-30&received_to=2026-09-01")
    expect(page.locator("ul.errors")).to_contain_text("收件日期（起）：开始日期不能晚于结束日期")
    expect(page.locator("table.applications tbody tr")).to_have_text(["查询条件有误，请修改后重试"])
    shot(page, "worklist-applications-error.png")


def test_the_supervisors_open_work_by_card(page, served):  # noqa: F811
    base, _, _ = served
    log_in(page, base, SUPERVISOR, "/")
    gjj = page.locator("tr[data-department=ts-gjj]")
    expect(gjj.locator(".red")).to_have_text("1")
    expect(gjj.locator(".yellow")).to_have_text("1")
    expect(gjj.locator(".paused")).to_have_text("1")
    expect(gjj.locator(".open")).to_have_text("4")
    expect(page.locator("main a[href='/dashboard']")).to_be_visible()
    shot(page, "worklist-supervisor-home.png")
