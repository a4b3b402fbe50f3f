"""The decision page and the 补正 loop in a real browser (Debian's chromium, Playwright, the real app
under uvicorn on loopback, SQLite): a 容缺 case seen whole before 受理 (first review, promised
material, online verification, the PDF inline); an accidental 不予受理 blocked (Enter in the reason
box does nothing, cancel leaves the case as it was, without JS a page asks first); the 补正 loop
(the officer names a field and a material, the teller corrects the field and brings the material,
the officer accepts). One browser and one hub for the module; screenshots in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from hub import applications as svc
from hub.context import Hub
from hub.lifecycle import Role
from hub.users import add_user
from hub.web.app import load_secret
from hub.web.security import status_key
from tests.conftest import CST, JPEG, PDF, Clock
from tests.support.samples import ELDER_ID
from tests.support.samples import TELLER as TELLER_ACTOR
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, log_in, log_out, shot  # noqa: F401 (fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the `dev` extra (make installs it)")
expect = sync_api.expect

TELLER = ("wangfang", "xiahong-柜台-2026")
OFFICER = ("linxiao", "minzheng-审批-2026")
ITEM, ID_CARD, PHOTO = "GG00501000", "居民身份证", "近期免冠彩色证件照"
PROMISED = "2026-09-28"
NOTE = "申请人行动不便，由女儿陪同；电话请拨（白天）。"  # full-width punctuation, kept as written


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Hub, str]]:
    folder = tmp_path_factory.mktemp("decision")
    clock = Clock(datetime(2026, 9, 21, 10, tzinfo=CST))
    with sqlite_hub(folder, clock) as hub:
        add_user(hub, TELLER[0], TELLER[1], display_name="王芳", role=Role.teller, desk="bank-xiahong")
        add_user(hub, OFFICER[0], OFFICER[1], display_name="林晓", role=Role.officer, department="ts-mzj")
        with serving(hub) as url:
            yield hub, url


@pytest.fixture
def page(browser, site) -> Iterator[object]:  # noqa: F811 (a page per test, the module's browser)
    context = browser.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}, accept_downloads=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("dialog", lambda d: (errors.append(f"unexpected dialog: {d.message}"), d.dismiss()))
    yield p
    context.close()
    assert not errors, f"JavaScript errors or dialogs on the pages: {errors}"


def owed_case(hub: Hub, seq: int) -> str:
    """An 老年人优待证 taken at the bank with the photo owed under 容缺 and the ID card verified
    online, first-reviewed with a note: waiting for the county's 受理."""
    new = svc.NewApplication(
        subject=ITEM,
        desk="bank-xiahong",
        applicant=svc.Applicant(name=f"林阿婆{seq}", id=ELDER_ID),
        form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        materials=[svc.MaterialIn(name=ID_CARD, filename="身份证.pdf", content=PDF + str(seq).encode())],
        source_ref=f"decision-test-{seq}",
    )
    review = svc.FirstReview(
        checklist=["identity", "materials", "signature", "informed"],
        commitment_due=date.fromisoformat(PROMISED),
        note=NOTE,
        verified={
            ID_CARD: {"ok": True, "kind": "identity_card", "connection": "irs-verify", "detail": "公安人口库一致"}
        },
    )
    app, _ = svc.receive(hub, new, TELLER_ACTOR, first_review=review)
    return app.number


def state_of(hub: Hub, number: str) -> str:
    return svc.read(hub, number, svc.SYSTEM).state


def test_a_tolerant_case_is_seen_whole_before_acceptance(page, site) -> None:
    hub, url = site
    number = owed_case(hub, 1)
    log_in(page, url, OFFICER, "/inbox")
    page.goto(f"{url}/applications/{number}")
    expect(page.locator("#state")).to_have_text("已初审")
    expect(page.locator("#parts .state")).to_have_text("待受理")  # agrees with the case: not 待审查
    # one line a step: 收件登记 and 提交 by the same hand at the same moment are one
    expect(page.locator(".timeline li")).to_have_count(2)
    expect(page.locator(".timeline li").first).to_contain_text(
        "收件登记 · 银行柜员王芳（下洪社区农商银行网点） → 草稿，提交 → 已收件"
    )
    # the desk's first review: checklist, note as written, the online check with its source
    review = page.locator("#first-review")
    expect(review.locator(".checklist li.ok")).to_have_count(4)
    expect(page.locator("#review-note")).to_have_text(NOTE)
    expect(page.locator("#verified")).to_contain_text("居民身份证 · 核验一致 · 公安人口库一致 · 来源：irs-verify")
    # 容缺 owed before 受理, with the promise
    expect(page.locator("#owed")).to_contain_text(f"{PHOTO} · 承诺 {PROMISED} · 待补交")
    # the PDF inline, served for a same-origin frame only
    frame = page.locator(f"#materials figure[data-material='{ID_CARD}'] iframe.preview")
    expect(frame).to_be_visible()
    answer = page.request.get(url + frame.get_attribute("src"))
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert "frame-ancestors 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    assert answer.body() == PDF + b"1"
    # officers see digests and the chain; the receipt opens for them too
    expect(page.locator("#materials code.digest")).to_have_count(1)
    shot(page, "decision-01-tolerant-case.png")
    page.locator("a[href$='/receipt']").click()
    expect(page.locator("#receipt-number")).to_have_text(number)
    page.goto(f"{url}/applications/{number}")
    page.locator("button[data-action=accept]").click()
    expect(page.locator("#flash")).to_have_text("已办理：受理")
    expect(page.locator("#state")).to_have_text("已受理")
    expect(page.locator("#parts .state")).to_have_text("待审查")
    expect(page.locator("#owed")).to_contain_text(f"{PHOTO} · 承诺 {PROMISED} · 待补交")
    shot(page, "decision-02-accepted.png")
    # 补正 after 受理 stops the clock, and the page says since when
    ask = page.locator("#ask-supplement")
    ask.locator("summary").click()
    ask.locator("textarea[name=reason]").fill("照片模糊，请重新拍摄。")
    ask.locator("button[data-action=request_supplement]").click()
    expect(page.locator("#state")).to_have_text("待补正")
    expect(page.locator("#clock-stopped")).to_have_text("停表 自 2026-09-21")
    expect(page.locator("#parts .state")).to_have_text("待补正")
    expect(page.locator("#supplement")).to_contain_text("办理时限自 2026-09-21 起停表")
    log_out(page, url)
    # the teller: no digests, no chain verdict
    log_in(page, url, TELLER, "/")
    page.goto(f"{url}/applications/{number}")
    expect(page.locator("#state")).to_have_text("待补正")
    expect(page.locator("main")).not_to_contain_text("事件链")
    expect(page.locator("#materials code.digest")).to_have_count(0)


def test_an_accidental_rejection_is_blocked(page, site) -> None:
    hub, url = site
    number = owed_case(hub, 2)
    log_in(page, url, OFFICER, "/inbox")
    page.goto(f"{url}/applications/{number}")
    form = page.locator("form.action:has(button[data-action=reject])")
    box = form.locator("textarea[name=reason]")
    # 常用语: a click inserts it; Enter in the box is a new line, never the action
    form.locator("button.phrase", has_text="非本县户籍").click()
    expect(box).to_have_value("非本县户籍，请向户籍所在地申请。")
    box.press("End")
    box.press("Enter")
    expect(box).to_have_value("非本县户籍，请向户籍所在地申请。\n")
    expect(page.locator("#confirm-dialog")).not_to_be_visible()
    assert state_of(hub, number) == "pre_reviewed"
    # the button asks first; cancel leaves everything as it was
    form.locator("button[data-action=reject]").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".message")).to_have_text("确认“不予受理”？此操作不可撤销。")
    shot(page, "decision-03-confirm-reject.png")
    page.keyboard.press("Enter")  # focus is on 取消: Enter cancels too
    expect(dialog).not_to_be_visible()
    expect(page.locator("#state")).to_have_text("已初审")
    assert state_of(hub, number) == "pre_reviewed"
    expect(form.locator("button[data-action=reject]")).to_be_enabled()
    # without JS: the server answers a page that asks first; nothing is done until it is confirmed
    plain = page.context.browser.new_context(locale="zh-CN", java_script_enabled=False)
    try:
        nojs = plain.new_page()
        log_in(nojs, url, OFFICER, "/inbox")
        nojs.goto(f"{url}/applications/{number}")
        nojs.locator("form.action:has(button[data-action=reject]) textarea").fill("不符合条件，")
        nojs.locator("button[data-action=reject]").click()
        expect(nojs.locator("#confirm-title")).to_have_text("确认“不予受理”？")
        expect(nojs.locator(".confirm-page .reason")).to_have_text("不符合条件，")
        shot(nojs, "decision-03b-confirm-page-nojs.png")
        assert state_of(hub, number) == "pre_reviewed"
        nojs.locator("#confirm-no").click()
        expect(nojs.locator("#state")).to_have_text("已初审")
    finally:
        plain.close()
    assert state_of(hub, number) == "pre_reviewed"
    # confirmed: done, and said so
    form.locator("button[data-action=reject]").click()
    dialog.locator("button.confirm-ok").click()
    expect(page.locator("#flash")).to_have_text("已办理：不予受理")
    expect(page.locator("#state")).to_have_text("不予受理")
    expect(page.locator("#parts .state")).to_have_text("不予受理")
    expect(page.locator(".timeline .reason").last).to_have_text("非本县户籍，请向户籍所在地申请。")
    assert state_of(hub, number) == "rejected"
    shot(page, "decision-04-rejected.png")


def test_the_supplement_loop(page, site, tmp_path: Path) -> None:
    hub, url = site
    number = owed_case(hub, 3)
    # ---- the officer names a field and a material, each with a note
    log_in(page, url, OFFICER, "/inbox")
    page.goto(f"{url}/applications/{number}")
    ask = page.locator("#ask-supplement")
    ask.locator("summary").click()
    ask.locator("input[name=ask_field][value=contact_phone]").check()
    ask.locator("input[name=note_field_contact_phone]").fill("电话无法接通，请核对。")
    row = ask.locator(".ask-row", has_text=PHOTO)
    row.locator("input[name=ask_material]").check()
    row.locator("input[type=text], input:not([type])").fill("须近期免冠彩色照片")
    expect(ask.locator("input[name=supplement_due]")).to_have_value("2026-09-29")  # 5 working days; 25th 中秋
    ask.locator("button.phrase", has_text="证件照不符合要求").click()
    shot(page, "decision-05-ask-supplement.png")
    ask.locator("button[data-action=request_supplement]").click()
    expect(page.locator("#flash")).to_have_text("已办理：要求补正")
    expect(page.locator("#state")).to_have_text("待补正")
    expect(page.locator("#supplement li.todo")).to_have_count(2)
    expect(page.locator("#supplement-due")).to_have_text("2026-09-29")
    log_out(page, url)

    # ---- the resident's status page says what, where and by when
    status = page.context.new_page()
    status.goto(f"{url}/s/{number}?k={status_key(load_secret(hub), number)}")
    block = status.locator("#supplement")
    expect(block).to_contain_text("联系电话（电话无法接通，请核对。）")
    expect(block).to_contain_text(f"{PHOTO}（须近期免冠彩色照片）")
    expect(block.locator("#supplement-place")).to_contain_text("下洪社区农商银行网点")
    shot(status, "decision-06-status-supplement.png")
    status.close()

    # ---- the teller corrects the field (a wrong value first) and brings the photo
    log_in(page, url, TELLER, "/")
    page.goto(f"{url}/applications/{number}")
    phone = page.locator("#correct input[name=f_contact_phone]")
    expect(phone).to_have_value("13905770001")
    phone.fill("12345")
    page.locator("#correct button").click()
    expect(page.locator("#errors")).to_contain_text("联系电话")
    expect(page.locator("#correct input[name=f_contact_phone]")).to_have_value("12345")  # what was typed stays
    page.locator("#correct input[name=f_contact_phone]").fill("13905770002")
    page.locator("#correct button").click()
    expect(page.locator("#flash")).to_have_text("已办理：表单已更正")
    expect(page.locator("#supplement li[data-field=contact_phone]")).to_contain_text("已更正")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(JPEG + b"new")
    upload = page.locator("form.supplement-file", has=page.locator(f"input[value='{PHOTO}']"))
    upload.locator("input[type=file]").set_input_files(str(photo))
    upload.locator("button").click()
    expect(page.locator("#flash")).to_have_text("已办理：材料已上传")
    expect(page.locator("#supplement li.done")).to_have_count(2)
    change = page.locator(".timeline li[data-action=correct] .change")
    expect(change).to_have_text("联系电话：13905770001 → 13905770002")
    shot(page, "decision-07-teller-corrected.png")
    page.locator("button[data-action=resume]").click()
    expect(page.locator("#state")).to_have_text("已初审")
    log_out(page, url)

    # ---- the officer sees the change and accepts
    log_in(page, url, OFFICER, "/inbox")
    page.goto(f"{url}/applications/{number}")
    expect(page.locator("#form-values dd[data-field=contact_phone]")).to_have_text("13905770002")
    page.locator("button[data-action=accept]").click()
    expect(page.locator("#state")).to_have_text("已受理")
    expect(page.locator("#owed")).to_have_count(0)  # the photo brought in 补正: nothing owed at 受理
    shot(page, "decision-08-accepted-after-supplement.png")
    assert state_of(hub, number) == "accepted"
