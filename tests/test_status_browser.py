"""The resident's pages on a phone (390×844) in Chromium, against the real app under uvicorn: the
lookup by 办件号 + name and by 办件号 + phone, the same answer for a wrong name as for a number
nobody holds, the throttle holding a guessed number, a bad status link landing on the lookup (not
the staff login), plain-language states, and the promise of contact after a 非常不满意 rating.
Nothing on these pages may scroll sideways, and axe-core finds no serious violation. Screenshots go to test-artifacts/ (shot())."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import date, datetime

import pytest

from hub import applications as svc
from hub.context import Hub
from hub.web.applicant_status import NO_MATCH
from tests.conftest import CST, Clock, make_id
from tests.support.page_checks import accessible, loopback_page, no_sideways_scroll
from tests.support.samples import TELLER, elderly_card, officer
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, expect, shot  # noqa: F401  (browser: the module's one Chromium)

PHONE = {"width": 390, "height": 844}
MZJ = officer("ts-mzj")
POSTED_PHONE = "13705770123"
SUPPLEMENT_REASON = "证件照背景不符合要求，请重新提交白底照片（6个月内）。"
CLIENTS = itertools.count(2)  # the last part of each test's client address


def _posted_card() -> svc.NewApplication:
    """An 老年人优待证 for 陈阿公, the card to be posted (邮寄送达)."""
    base = elderly_card()
    form = {"delivery_method": "邮寄送达", "mailing_address": "泰顺县罗阳镇新城路12号", "contact_phone": POSTED_PHONE}
    applicant = svc.Applicant(name="陈阿公", id=make_id("330329", date(1948, 5, 2), "031"))
    return base.model_copy(update={"form": form, "applicant": applicant})


def _advance(hub: Hub, number: str, *actions: str) -> None:
    for action in actions:
        svc.transition(hub, number, action, TELLER if action == "pre_review" else MZJ)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """One hub and server for the module: a card waiting for the department, one posted, one
    decided and not yet rated, one whose number the throttle test guesses at."""
    folder = tmp_path_factory.mktemp("status")
    with sqlite_hub(folder, Clock(datetime(2026, 9, 21, 10, tzinfo=CST))) as hub:
        numbers = {
            "waiting": svc.create(hub, elderly_card(), TELLER).number,
            "posted": svc.create(hub, _posted_card(), TELLER).number,
            "decided": svc.create(hub, elderly_card(), TELLER).number,
            "guessed": svc.create(hub, elderly_card(), TELLER).number,
            "supplement": svc.create(hub, elderly_card(), TELLER).number,
        }
        _advance(hub, numbers["waiting"], "pre_review")
        _advance(hub, numbers["posted"], "pre_review", "accept", "start_review", "approve", "issue")
        _advance(hub, numbers["decided"], "pre_review", "accept", "start_review", "approve")
        _advance(hub, numbers["supplement"], "pre_review", "accept")
        svc.transition(hub, numbers["supplement"], "request_supplement", MZJ, reason=SUPPLEMENT_REASON)
        with serving(hub) as url:
            yield url, numbers


@pytest.fixture
def phone(browser) -> Iterator[object]:  # noqa: F811
    """A phone-sized page; each test a client address of its own (the proxy header uvicorn trusts
    from loopback), so the throttle's count per client is the test's own."""
    client = f"10.21.0.{next(CLIENTS)}"
    with loopback_page(
        browser,
        TIMEOUT_MS,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        extra_http_headers={"x-forwarded-for": client},
    ) as page:
        yield page


def look_up(page, url: str, number: str, who: str) -> None:
    page.goto(f"{url}/s")
    expect(page).to_have_title(re.compile("^办件进度查询"))
    page.fill("input[name=number]", number)
    page.fill("input[name=who]", who)
    page.locator("#lookup button").click()
    page.wait_for_load_state()


def test_lookup_by_number_and_name_then_by_number_and_phone(phone, site):
    url, numbers = site
    look_up(phone, url, numbers["waiting"].lower(), "林阿婆")  # as typed on a phone: lower case
    expect(phone).to_have_url(re.compile(rf"/s/{numbers['waiting']}\?k=\w+$"))
    expect(phone.locator("h1")).to_have_text("老年人优待证办理")
    expect(phone.locator("#plain-state .state")).to_have_text("材料已核对，等待审批部门受理")
    expect(phone.locator("main")).to_contain_text("林**")
    expect(phone.locator("main")).not_to_contain_text("已初审")  # staff words stay with the staff
    no_sideways_scroll(phone)
    accessible(phone)
    shot(phone, "status-01-by-name-390.png")

    look_up(phone, url, numbers["posted"], "１３７ ０５７７ ０１２３")  # 全角 digits and spaces
    expect(phone).to_have_url(re.compile(rf"/s/{numbers['posted']}\?k=\w+$"))
    expect(phone.locator("#plain-state .state")).to_have_text("已办结，已寄出")
    expect(phone.locator(".timeline")).not_to_contain_text("出件")
    expect(phone.locator(".timeline li")).to_have_count(5)  # 提交 … 结果可领取或已寄出
    no_sideways_scroll(phone)
    shot(phone, "status-02-by-phone-posted-390.png")


def test_a_wrong_name_gets_the_same_answer_as_no_such_number(phone, site):
    url, numbers = site
    number = numbers["waiting"]
    look_up(phone, url, number, "王五")
    wrong_name = phone.locator("#lookup-message")
    expect(wrong_name).to_have_text(NO_MATCH)
    expect(phone.locator("input[name=number]")).to_have_value(number)
    no_sideways_scroll(phone)
    accessible(phone)  # the lookup form, with its message
    shot(phone, "status-03-no-match-390.png")
    missing = re.sub(r"\d+$", "99999", number)
    look_up(phone, url, missing, "林阿婆")
    expect(phone.locator("#lookup-message")).to_have_text(NO_MATCH)
    expect(phone).to_have_url(f"{url}/s")  # no redirect, no status page, nothing about which was wrong


def test_guessing_at_one_number_is_held(phone, site):
    url, numbers = site
    number = numbers["guessed"]
    for guess in ("张三", "李四", "王五", "赵六", "钱七"):
        look_up(phone, url, number, guess)
        expect(phone.locator("#lookup-message")).to_have_text(NO_MATCH)
    look_up(phone, url, number, "林阿婆")  # even the right name, now: the guesser learns nothing more
    expect(phone.locator("#lookup-message")).to_contain_text("查询次数过多")
    expect(phone).to_have_url(f"{url}/s")
    shot(phone, "status-04-throttled-390.png")


def test_a_bad_link_lands_on_the_lookup_not_the_login(phone, site):
    url, numbers = site
    number = numbers["waiting"]
    phone.goto(f"{url}/s/{number}?k=0123456789abcdef0123")
    expect(phone.locator("#lookup-notice")).to_contain_text("链接无效")
    expect(phone.locator("input[name=number]")).to_have_value(number)
    expect(phone.locator("input[name=password]")).to_have_count(0)
    expect(phone.locator("a.brand")).to_have_attribute("href", "/s")
    no_sideways_scroll(phone)
    shot(phone, "status-05-bad-link-390.png")
    phone.fill("input[name=who]", "13905770001")
    phone.locator("#lookup button").click()
    expect(phone.locator("#status-number")).to_have_text(number)


def test_a_very_bad_rating_is_promised_contact(phone, site):
    url, numbers = site
    look_up(phone, url, numbers["decided"], "林阿婆")
    expect(phone.locator("#plain-state .state")).to_have_text("已办结，正在准备结果")
    expect(phone.locator("#rating")).to_contain_text("15 个工作日内联系您")
    phone.get_by_label("非常不满意").check()
    phone.fill("textarea[name=comment]", "等了很久，窗口说法不一致，“材料”要求反复变。")
    no_sideways_scroll(phone)
    accessible(phone)
    shot(phone, "status-06-rating-390.png")
    phone.locator("#rating button").click()
    expect(phone.locator("#promise")).to_contain_text(re.compile(r"将在 15 个工作日内（\d{4}-\d{2}-\d{2} 前）联系您"))
    expect(phone.locator("#rating")).to_have_count(0)
    no_sideways_scroll(phone)
    shot(phone, "status-07-promise-390.png")


def test_a_case_waiting_for_papers_says_so_and_that_the_clock_stands(phone, site):
    url, numbers = site
    look_up(phone, url, numbers["supplement"], "林阿婆")
    expect(phone.locator("#plain-state .state")).to_have_text("需要补充材料")
    expect(phone.locator("#plain-state")).to_contain_text("暂停计算")
    expect(phone.locator("#paused")).to_contain_text("2026-09-21 起暂停计算")
    expect(phone.locator("main")).to_contain_text("下洪社区农商银行网点")  # where to bring them
    # 补正 is the staff's word: the page says it plainly; only the notice's legal title, printed on
    # the paper the resident holds, keeps it
    documents = phone.locator("#documents").inner_text()
    assert "补正告知书" in documents
    assert "补正" not in phone.locator("main").inner_text().replace(documents, "")
    no_sideways_scroll(phone)
    accessible(phone)
    shot(phone, "status-08-supplement-390.png")
