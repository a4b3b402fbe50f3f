"""The supervisor in Chromium with a fixed clock (issue 21): a case 52 days overdue with a red card
shows as open overdue on the dashboard and lowers 按时办结率; the page's table and its CSV carry
the same columns and figures; trends are charts with a table beside; the Chinese page has no
English; no serious accessibility violation (axe-core). Then a bad rating's 整改 goes through its
four steps on the follow-ups page, and a second supervisor closes it — the one who did 整改 may
not. Screenshots in test-artifacts/."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from hub import applications as svc
from hub import ratings
from hub.context import Hub
from hub.lifecycle import Role
from hub.users import add_user
from tests.conftest import CST, Clock
from tests.support.page_checks import accessible, no_english
from tests.support.samples import HZ_CLERK, TELLER, elderly_card, fund_rent, officer
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import browser  # noqa: F401  (fixture: the module's one Chromium)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the `dev` extra (make installs it)")
expect = sync_api.expect

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 120_000
expect.set_options(timeout=TIMEOUT_MS)

MZJ, GJJ = officer("ts-mzj"), officer("ts-gjj")
LIU = ("liuyang", "duchá-督查-2026")
CHEN = ("chenjing", "duchá-审核-2026")
TODAY = date(2026, 11, 15)  # 52 days after the late case's due date (2026-09-24)
CORE = ["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明", "房屋租赁合同"]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Hub, str, dict[str, str]]]:
    """A hub whose clock stands at TODAY: one 租房提取 accepted on 2026-09-21 and left (due 09-24:
    52 days overdue), one 优待证 decided on time the same day and rated 非常不满意."""
    clock = Clock(datetime(2026, 9, 21, 10, tzinfo=CST))
    with sqlite_hub(tmp_path, clock) as hub:
        late = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK).number
        svc.transition(hub, late, "accept", GJJ)
        done = svc.create(hub, elderly_card(), TELLER).number
        for actor, action in [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")]:
            svc.transition(hub, done, action, actor)
        clock.set(TODAY)
        ratings.rate(hub, done, 1, "材料反复要求提交，跑了三趟。")
        add_user(hub, LIU[0], LIU[1], display_name="督查科刘洋", role=Role.supervisor)
        add_user(hub, CHEN[0], CHEN[1], display_name="督查科陈静", role=Role.supervisor)
        with serving(hub) as url:
            yield hub, url, {"late": late, "done": done}


@pytest.fixture
def page(browser) -> Iterator[object]:  # noqa: F811 (the module's browser)
    # bypass_csp: axe-core is injected by the test; the app's own pages keep their policy
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1366, "height": 900}, bypass_csp=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def log_in(page, base_url: str, who: tuple[str, str], lands_on: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.locator("form[action='/login'] button").click()
    page.wait_for_url(f"{base_url}{lands_on}")


def test_the_supervisor_sees_the_late_case_and_the_page_matches_its_csv(site, page):
    _hub, url, _numbers = site
    log_in(page, url, LIU, "/")  # the supervisor's home: open work by card
    page.goto(f"{url}/dashboard")
    overdue = page.locator("[data-kpi=overdue_open]")
    expect(overdue.locator(".kpi-value")).to_have_text("1")
    expect(overdue).to_contain_text("最长超期 52 天")
    # November: nothing completed, one case open and overdue — 0 %, not "100 %" or "—"
    expect(page.locator("[data-kpi=on_time_rate] .kpi-value")).to_have_text("0.0%")
    # 服务渠道 (hub.supervision.service): no visits, no tickets this month — 0 and "—", not an error
    strip = page.locator("#service-counts")
    expect(strip.locator("[data-figure=visits]")).to_have_text("0")
    expect(strip.locator("[data-figure=wait_avg]")).to_have_text("—")
    expect(page.locator("#open-work tr[data-department=ts-gjj] td").nth(2)).to_have_text("1")
    expect(page.locator("#open-work tr[data-department=ts-gjj] td").nth(3)).to_have_text("52")
    expect(page.locator("figure.chart svg[role=img]")).to_have_count(5)
    no_english(page)
    accessible(page)
    shot(page, "supervision-dashboard-month.png")

    # September by department: one on time, one open overdue — 50 %
    page.goto(f"{url}/dashboard?by=department&start=2026-09-01&end=2026-09-30")
    gjj = page.locator("#figures tr[data-key=ts-gjj]")
    expect(gjj.locator("td[data-col=overdue_open]")).to_have_text("1")
    expect(gjj.locator("td[data-col=on_time_rate]")).to_have_text("0.0%")
    expect(page.locator("#figures tr[data-key=total] td[data-col=on_time_rate]")).to_have_text("50.0%")
    page.locator("details.trend-table summary").first.click()
    expect(page.locator("#trend-week")).to_be_visible()
    shot(page, "supervision-dashboard-september-by-department.png")

    # the CSV: the page's columns, the page's figures (rates as fractions there, percentages here)
    headers = page.eval_on_selector_all("#figures thead th", "els => els.map(e => e.textContent.trim())")
    cells = page.eval_on_selector_all(
        "#figures tbody tr",
        "rows => rows.map(r => [r.dataset.key, ...Array.from(r.children).map(c => c.textContent.trim())])",
    )
    response = page.request.get(f"{url}/dashboard.csv?by=department&start=2026-09-01&end=2026-09-30")
    assert response.status == 200
    table = list(csv.reader(io.StringIO(response.text().removeprefix("\ufeff"))))
    assert [h.split(" ")[0] for h in table[0][1:]] == headers  # the key column is the CSV's own
    assert len(table) - 1 == len(cells)
    for line, (key, *shown) in zip(table[1:], cells, strict=True):
        assert line[0] == key
        for header, value, text in zip(table[0][2:], line[2:], shown[1:], strict=True):
            if value == "":
                assert text == "—", (key, header)
            elif "率" in header or "占比" in header:
                assert text == f"{float(value) * 100:.1f}%", (key, header)
            elif "平均" in header:
                assert text == f"{float(value):.2f}", (key, header)
            else:
                assert text == value, (key, header)


def test_a_bad_rating_goes_through_the_four_steps_and_another_supervisor_closes_it(site, page):
    hub, url, numbers = site
    log_in(page, url, LIU, "/")
    page.goto(f"{url}/follow-ups")
    card = page.locator(f"article.follow-up:has(a:text('{numbers['done']}'))")
    expect(card).to_have_attribute("data-step", "verify")
    expect(card.locator("li.current")).to_contain_text("当前承办：泰顺县民政局")
    no_english(page)
    accessible(page)
    shot(page, "supervision-follow-up-verify.png")
    for step, note, owner in (
        ("verify", "已核实：窗口三次要求补交租赁合同", "民政局王科长"),
        ("rectify", "已整改：一次性告知清单重新公示", ""),
        ("revisit", "已电话回访，申请人认可", ""),
    ):
        expect(card).to_have_attribute("data-step", step)
        card.locator("textarea[name=note]").fill(note)
        if owner:
            card.locator("input[name=next_owner]").fill(owner)
        card.locator("button.primary").click()
        page.wait_for_url(re.compile(r"/follow-ups\?done=done"))
        expect(page.get_by_role("status")).to_have_text("已提交，转入下一步。")
        card = page.locator(f"article.follow-up:has(a:text('{numbers['done']}'))")
    expect(card).to_have_attribute("data-step", "review")
    expect(card.locator(".step-record")).to_have_count(3)
    expect(card.locator("li.done").nth(1)).to_contain_text("承办 民政局王科长 · 经办 督查科刘洋")
    expect(card).to_contain_text("您办理了整改，须由其他督查人员审核。")  # 刘洋 did 整改: no review form
    expect(card.locator("button[value=closed]")).to_have_count(0)
    shot(page, "supervision-follow-up-review-own-work.png")

    log_in(page, url, CHEN, "/")
    page.goto(f"{url}/follow-ups")
    card = page.locator(f"article.follow-up:has(a:text('{numbers['done']}'))")
    card.locator("textarea[name=note]").fill("整改到位，同意办结。")
    card.locator("button[value=closed]").click()
    page.wait_for_url(re.compile(r"/follow-ups\?done=closed"))
    expect(page.get_by_role("status")).to_have_text("已提交：审核通过，整改办结。")
    expect(page.locator("article.follow-up")).to_have_count(0)  # open ones only
    page.goto(f"{url}/follow-ups?all=1")
    card = page.locator(f"article.follow-up:has(a:text('{numbers['done']}'))")
    expect(card).to_have_attribute("data-step", "closed")
    expect(card.locator("li").nth(3)).to_contain_text("审核通过，办结 · 承办 督查室 · 经办 督查科陈静")
    no_english(page)
    shot(page, "supervision-follow-up-closed.png")
    [f] = ratings.follow_ups(hub, svc.SYSTEM, open_only=False)
    assert (f.closed_by, f.response) == ("督查科陈静", "已整改：一次性告知清单重新公示")
