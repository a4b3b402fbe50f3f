"""查询电子证照 at the desk, in Debian's Chromium (Playwright) against the real app: the clerk
looks up the applicant's licences for 营业执照 (the hub's own library and the sandbox 电子证照
platform on 127.0.0.1), sees number, issuer, validity and status — a cancelled one cannot be
picked — picks a valid one, and submits with no copy of it; the application carries the licence
by reference. Screenshots go to test-artifacts/intake-licence-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from hub import applications as svc
from hub.context import Hub
from hub.home import write_home
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import Licence
from hub.users import add_user
from plugins.sandbox.data_sharing import ZHIQIANG_USCC, DataSharingGateway
from tests.conftest import CST, PDF, Clock, make_id
from tests.support.webserver import serving
from tests.test_browser import browser  # noqa: F401  (fixture: the module's one Chromium)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the `dev` extra (make installs it)")
expect = sync_api.expect

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 120_000  # a guard against a state that never comes (CI's cores are shared)
expect.set_options(timeout=TIMEOUT_MS)
TOKEN = "intake-licences-browser-token"
CLERK = ("zhangmin", "hall-综合窗口-2026")
INVOICE = "QT00901000"  # 发票领用: 营业执照 is `licence: YYZZ`
LICENCE = "营业执照"
OWNER = ("陈志强", make_id("330329", date(1990, 7, 1), "013"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, browser) -> Iterator[dict]:  # noqa: F811 (the module's one Chromium)
    folder = tmp_path_factory.mktemp("intake-licences")
    gateway = DataSharingGateway(token=TOKEN).start()
    home = write_home(folder / "home")
    path = home / "connections" / "irs-licences.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = gateway.url
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    url = f"sqlite:///{folder / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HUB_SANDBOX_TOKEN", TOKEN)
        hub = Hub.open(home, database_url=url, clock=Clock(datetime(2026, 9, 21, 10, tzinfo=CST)))
        add_user(hub, *CLERK, display_name="张敏", role=Role.clerk, desk="hall-county")
        with hub.transaction() as session:  # one of ours, issued last year
            session.add(
                Licence(
                    number="YYZZ-2025-0100",
                    code="browser-yyzz-0100",
                    type_code="YYZZ",
                    type_name="营业执照",
                    holder_name="泰顺县志强农家乐",
                    holder_id=ZHIQIANG_USCC,
                    holder_id_type="credit_code",
                    issuer="ts-scjg",
                    issuer_name="泰顺县市场监督管理局",
                    issued_on=date(2025, 1, 6),
                    valid_from=date(2025, 1, 6),
                    valid_until=date(2030, 1, 5),
                    data={},
                    created_at=datetime(2025, 1, 6, 9),
                )
            )
        try:
            with serving(hub) as base:
                yield {"hub": hub, "base": base, "browser": browser, "gateway": gateway}
        finally:
            hub.close()
            gateway.stop()


@pytest.fixture
def page(setup) -> Iterator[object]:
    context = setup["browser"].new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("dialog", lambda d: (errors.append(f"unexpected dialog: {d.message}"), d.dismiss()))
    yield p
    context.close()
    assert not errors, f"JavaScript errors or dialogs on the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"intake-licence-{name}.png"), full_page=True)


def test_the_clerk_looks_up_picks_and_submits_without_a_copy(page, setup, tmp_path):
    base, hub = setup["base"], setup["hub"]
    page.goto(f"{base}/login")
    page.fill("input[name=username]", CLERK[0])
    page.fill("input[name=password]", CLERK[1])
    page.locator("form[action='/login'] button").click()
    expect(page.locator("header form[action='/logout'] button")).to_be_visible()
    page.goto(f"{base}/intake/{INVOICE}")
    row = page.locator(f"tr[data-material='{LICENCE}']")
    button, said, listing = (
        row.locator("button.licence-lookup"),
        row.locator(".licence-chosen"),
        row.locator(".licence-list"),
    )
    expect(button).to_have_text("查询电子证照")

    button.click()  # nobody entered yet
    expect(said).to_have_text("请先填写正确的申请人身份号码，再查询")

    page.fill("input[name=applicant_name]", OWNER[0])
    page.fill("input[name=applicant_id]", OWNER[1])
    for name, value in {
        "enterprise_name": "泰顺县志强农家乐",
        "uscc": ZHIQIANG_USCC,
        "tax_agent_name": OWNER[0],
        "tax_agent_id_number": OWNER[1],
        "tax_agent_phone": "13857712345",
        "contact_phone": "13857712345",
    }.items():
        page.fill(f"input[name=f_{name}]", value)
    page.select_option("select[name=f_taxpayer_type]", "小规模纳税人")
    page.select_option("select[name=f_invoice_type]", "数电发票（普通发票）")

    button.click()
    expect(said).to_have_text("请选择一个有效的电子证照")
    choices = listing.locator("label.licence")
    # the platform's valid one and its cancelled one (they name 陈志强 as the operator); the
    # company's licence in our library names no representative ID, so it is withheld for him
    expect(choices).to_have_count(2)
    expect(choices.nth(0)).to_contain_text("330329600123456")
    expect(choices.nth(0)).to_contain_text("泰顺县志强农家乐 · 泰顺县市场监督管理局 · 长期有效 · 有效 · ")
    expect(listing).to_contain_text("1 个证照的持证人与申请人姓名（名称）不符或未载明申请人为法定代表人，未列出")
    cancelled = listing.locator("label.licence", has_text="330329600099999")
    expect(cancelled).to_contain_text("已注销")
    expect(cancelled.locator("input")).to_be_disabled()
    assert ZHIQIANG_USCC not in listing.inner_text()  # holder IDs masked
    shot(page, "1-lookup")

    listing.locator("label.licence", has_text="330329600123456").locator("input").check()
    expect(said).to_have_text("✓ 已选电子证照 330329600123456，无需纸质材料")
    assert setup["gateway"].asked.count("licences:YYZZ") >= 1

    (tmp_path / "id.pdf").write_bytes(PDF)
    page.locator("tr[data-material='办税人员居民身份证'] input[type=file]").set_input_files(str(tmp_path / "id.pdf"))
    for box in page.locator("input[name=checklist]").all():
        box.check()
    shot(page, "2-picked")
    page.locator("#submit").click()
    page.wait_for_url(re.compile(r"/applications/[^/]+/receipt$"))
    number = page.url.split("/")[-2]
    expect(page.locator("body")).to_contain_text("电子证照（免交纸质材料）：营业执照（330329600123456）")
    clerk = svc.Actor(name="张敏", role=Role.clerk, desk="hall-county")
    app = svc.read(hub, number, clerk)
    [ref] = next(e for e in app.events if e.action == "create").data["licences"]
    assert (ref["material"], ref["number"], ref["source"]) == (LICENCE, "330329600123456", "irs-licences")
    assert LICENCE not in {m.name for m in app.materials}
    shot(page, "3-receipt")
