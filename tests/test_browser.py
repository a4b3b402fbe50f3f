"""The web UI in a real browser: Debian's chromium driven by Playwright against the real app under
uvicorn on loopback (tests/support/webserver.py), SQLite only.

One walk through the pages people use: a bank teller's intake of an 老年人优待证 with the photo
owed under 容缺 (live ID check, sha256 of the chosen file, commitment date), the receipt with its
QR code; a 民政 officer accepts, reviews, approves and issues it from the inbox; the teller sees it
issued. A double click and replayed posts of the same form make one application. Screenshots go
to test-artifacts/ at the repository root.

Never downloads a browser: without /usr/bin/chromium the test skips locally (apt-get install -y
chromium) and fails under CI=true."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hub import applications as svc
from hub.context import Hub
from hub.lifecycle import Role
from hub.users import Person, add_user
from tests.conftest import CST, IN_CI, PDF, Clock, make_id
from tests.support.webserver import CHROMIUM_ARGS, serving, sqlite_hub

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the `dev` extra (make installs it)")
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Every action and assertion waits on the page's state (Playwright's auto-waiting); this is the
# guard against one that never comes, generous because CI's 2 cores are shared with other work.
TIMEOUT_MS = 120_000
expect.set_options(timeout=TIMEOUT_MS)  # assertions too (their own default is 5 s)

TELLER = ("wangfang", "xiahong-柜台-2026")
OFFICER = ("linxiao", "minzheng-审批-2026")
ITEM = "GG00501000"
ID_MATERIAL, PHOTO = "居民身份证", "近期免冠彩色证件照"
PROMISED = "2026-09-28"  # a week after the test's "today" (2026-09-21)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def web_hub(tmp_path: Path) -> Iterator[Hub]:
    clock = Clock(datetime(2026, 9, 21, 10, tzinfo=CST))
    with sqlite_hub(tmp_path, clock) as hub:
        yield hub


@pytest.fixture
def people(web_hub: Hub) -> dict[str, Person]:
    return {
        "teller": add_user(web_hub, TELLER[0], TELLER[1], display_name="王芳", role=Role.teller, desk="bank-xiahong"),
        "officer": add_user(
            web_hub, OFFICER[0], OFFICER[1], display_name="林晓", role=Role.officer, department="ts-mzj"
        ),
    }


@pytest.fixture
def base_url(web_hub: Hub) -> Iterator[str]:
    with serving(web_hub) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found (apt-get install -y --no-install-recommends chromium)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}; the browser test must run", pytrace=False)
        pytest.skip(message)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}, accept_downloads=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    # loopback only: any request elsewhere (a CDN font, a tracker) is a bug and fails loudly
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("dialog", lambda d: (errors.append(f"unexpected dialog: {d.message}"), d.dismiss()))
    yield p
    context.close()
    assert not errors, f"JavaScript errors or dialogs on the pages: {errors}"


# ---------------------------------------------------------------- helpers


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def log_in(page, base_url: str, who: tuple[str, str], lands_on: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.locator("form[action='/login'] button").click()
    page.wait_for_url(f"{base_url}{lands_on}")


def log_out(page, base_url: str) -> None:
    button = page.locator("header form[action='/logout'] button")
    expect(button).to_have_text("退出")
    button.click()
    page.wait_for_url(f"{base_url}/login")
    # the session is gone on the server too: a page behind the login sends us back to it
    page.goto(f"{base_url}/applications")
    expect(page).to_have_url(re.compile(r"/login\?next=/applications"))


def id_hint(page, name: str):
    return page.locator(f"label:has(> input[name={name}]) .hint")


# ---------------------------------------------------------------- the walk


def test_intake_receipt_decision_issue(page, base_url: str, web_hub: Hub, people: dict[str, Person], tmp_path: Path):
    scan = tmp_path / "身份证正反面.pdf"
    scan.write_bytes(PDF)
    good_id = make_id()
    bad_id = good_id[:-1] + ("1" if good_id[-1] != "1" else "2")  # the same number, wrong check digit

    # ---- the teller finds the item by its pinyin initials
    log_in(page, base_url, TELLER, "/")  # the desk's to-do page, with the way to start an intake
    expect(page.locator("header .who")).to_contain_text("王芳")
    page.get_by_role("link", name="开始收件").click()
    page.wait_for_url(f"{base_url}/intake")
    page.fill("input[name=q]", "lnrydz")
    page.locator("form.search button").click()
    page.wait_for_url(re.compile(r"/intake\?q=lnrydz"))
    subject = page.locator(f"a.subject[href='/intake/{ITEM}']")
    expect(subject).to_contain_text("老年人优待证办理")
    expect(subject.locator(".code")).to_have_text(ITEM)
    subject.click()
    page.wait_for_url(f"{base_url}/intake/{ITEM}")
    expect(page.locator("h1")).to_contain_text("老年人优待证办理")

    # ---- applicant, with the live check of the ID number (hub/web/static/app.js)
    page.fill("input[name=applicant_name]", "林阿婆")
    applicant_id = page.locator("input[name=applicant_id]")
    applicant_id.fill(bad_id)
    applicant_id.blur()
    expect(id_hint(page, "applicant_id")).to_have_text("身份号码校验码错误，请核对")
    expect(applicant_id).to_have_attribute("aria-invalid", "true")
    applicant_id.fill(good_id)
    applicant_id.blur()
    expect(id_hint(page, "applicant_id")).to_have_text("✓ 校验通过")
    expect(applicant_id).to_have_attribute("aria-invalid", "false")

    # ---- the application form
    page.select_option("select[name=f_delivery_method]", "窗口领取")
    page.fill("input[name=f_contact_phone]", "13905770001")

    # ---- materials: the ID card scanned, the photo owed under 容缺 with a promised date
    id_row = page.locator(f"tr[data-material='{ID_MATERIAL}']")
    expect(id_row.locator("input[type=file]")).to_have_attribute("name", "file_0")
    page.set_input_files("input[name=file_0]", str(scan))
    expect(id_row.locator(".chosen")).to_have_text("身份证正反面.pdf（1 KB）")  # a name and size, not a hash
    commitment = page.locator("#commitment")
    expect(commitment).to_be_hidden()
    photo_row = page.locator(f"tr[data-material='{PHOTO}']")
    expect(photo_row).to_have_attribute("data-deferrable", "1")
    photo_row.locator("input[name=missing]").check()
    expect(commitment).to_be_visible()
    expect(commitment.locator("input[name=commitment_due]")).to_have_attribute("min", "2026-09-21")
    page.fill("input[name=commitment_due]", PROMISED)

    # ---- first review
    boxes = page.locator("input[name=checklist]")
    expect(boxes).to_have_count(4)
    for i in range(4):
        boxes.nth(i).check()
    shot(page, "01-intake-form.png")

    # ---- the same form posted twice behind the page's back (a retried request), then a double
    # click: the server dedupes on the form's source_ref, the page disables the button
    replayed = page.evaluate(
        """async () => {
            const form = document.getElementById("intake");
            const post = () => fetch(location.href, { method: "POST", body: new FormData(form) });
            const answers = await Promise.all([post(), post()]);
            return answers.map((r) => [r.status, new URL(r.url).pathname]);
        }"""
    )
    page.locator("#submit").dblclick()
    page.wait_for_url(re.compile(r"/applications/[^/]+/receipt$"))
    number = page.url.split("/applications/")[1].split("/")[0]
    assert replayed == [[200, f"/applications/{number}/receipt"]] * 2

    # ---- the receipt
    expect(page.locator("#receipt-number")).to_have_text(number)
    receipt = page.locator("#receipt")
    expect(receipt).to_contain_text("老年人优待证办理（GG00501000）")
    expect(receipt).to_contain_text("林阿婆")
    expect(receipt).not_to_contain_text(good_id)  # masked on the receipt
    expect(receipt).to_contain_text(ID_MATERIAL)
    owed = receipt.locator("dd.missing")
    expect(owed).to_contain_text(PHOTO)
    expect(owed).to_contain_text(PROMISED)
    qr = receipt.locator("figure.qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box and box["width"] >= 100 and box["height"] >= 100, box  # big enough to scan
    link = receipt.locator("figure.qr figcaption small").inner_text()
    status_path = urlsplit(link).path + "?" + urlsplit(link).query
    assert status_path.startswith(f"/s/{number}?k="), link
    assert link.startswith(f"{base_url}/s/"), link  # public_url unset: the address the teller used
    expect(receipt.locator("#lookup-hint")).to_contain_text(f"{base_url}/s ")  # for those who cannot scan
    shot(page, "02-receipt.png")
    log_out(page, base_url)

    # ---- the county officer: inbox, accept, review, approve, issue
    log_in(page, base_url, OFFICER, "/inbox")
    row = page.locator("table.inbox tbody tr", has=page.locator(f"a[href='/applications/{number}']"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("林阿婆")
    expect(row).to_contain_text("下洪社区农商银行网点")
    expect(row.locator(".state")).to_have_text("已初审")
    shot(page, "03-inbox.png")
    row.locator(f"a[href='/applications/{number}']").click()
    page.wait_for_url(f"{base_url}/applications/{number}")
    state = page.locator("#state")
    expect(state).to_have_text("已初审")
    for action, after in [("accept", "已受理"), ("start_review", "审查中"), ("approve", "已办结"), ("issue", "已出件")]:
        page.locator(f"button[data-action={action}]").click()
        expect(state).to_have_text(after)
        page.wait_for_load_state()
    expect(page.locator("button[data-action]")).to_have_count(1)  # only 送达 is left, for the desk or officer
    owed_here = page.locator("li", has_text=f"{PHOTO} · 承诺 {PROMISED}")
    expect(owed_here).to_contain_text("待补交")
    # one line a step: the hub's own follow-ups (entering review, 办结) fold into the press that caused them
    # and a desk's 提交 of the draft it has just registered
    steps = [e for e in _events(web_hub, number) if not (e.actor == "hub" and e.action in ("start", "decide"))]
    steps = [e for e in steps if e.action != "submit"]
    expect(page.locator(".timeline li")).to_have_count(len(steps))
    expect(page.locator("h2 .ok")).to_have_text("事件链校验通过")
    shot(page, "04-issued-officer.png")
    log_out(page, base_url)

    # ---- the teller sees it issued
    log_in(page, base_url, TELLER, "/")
    expect(page.locator("[data-count=handover]")).to_have_text("1")  # to hand over at the desk
    page.goto(f"{base_url}/applications")
    mine = page.locator("table.list tbody tr", has=page.locator(f"a[href='/applications/{number}']"))
    expect(mine).to_have_count(1)
    expect(mine.locator(".state")).to_have_text("已出件")
    shot(page, "05-teller-sees-issued.png")

    # ---- one application for everything posted above
    with web_hub.sessions() as session:
        apps = svc.list_applications(session, people["teller"].actor(), desk="bank-xiahong")
        assert [a.number for a in apps] == [number]
        assert apps[0].state == "issued"

    # ---- the applicant follows the receipt's QR link, without logging in
    anonymous = page.context.browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    try:
        status = anonymous.new_page()
        status.goto(link)
        expect(status.locator("h1")).to_have_text("老年人优待证办理")
        expect(status.locator(".state")).to_have_text("已办结，可领取")  # in words for residents
        expect(status.locator("main")).not_to_contain_text(good_id)
        shot(status, "06-status-page.png")
    finally:
        anonymous.close()


def _events(hub: Hub, number: str) -> list[object]:
    return list(svc.read(hub, number, svc.SYSTEM).events)
