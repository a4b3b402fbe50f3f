"""The intake page when things go wrong, in Debian's Chromium (Playwright) against the real app:

- 网上核验 while the department's verifier is down, then while the network itself fails: a plain
  Chinese error and a 重试 button (never "核验中…" forever); once the verifier is back, the retry
  confirms. The material the agency obtains itself (免提交) asks nothing of the applicant.
- A file of the wrong type: refused in the page at once (its own input only), and a file the
  server refuses (its bytes are not what its name says) comes back as an error that names the
  material and the accepted extensions, with every other chosen file and typed value kept — the
  corrected submission then goes through with the file chosen before the error.

Screenshots go to test-artifacts/intake-*.png."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from hub import applications as svc
from hub.context import Hub
from hub.home import write_home
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.users import add_user
from plugins.sandbox.data_sharing import DataSharingGateway
from tests.conftest import CST, JPEG, PDF, Clock, make_id
from tests.support.samples import FUND_RETIRE
from tests.support.webserver import serving
from tests.test_browser import browser  # noqa: F401  (fixture: the module's one Chromium)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the `dev` extra (make installs it)")
expect = sync_api.expect

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 120_000  # a guard against a state that never comes (CI's cores are shared)
expect.set_options(timeout=TIMEOUT_MS)
TOKEN = "intake-browser-token"
CLERK = ("chenjing", "shanghai-飞地-2026")
TELLER = ("wangfang", "xiahong-柜台-2026")
ELDER_CARD = "GG00501000"  # 老年人优待证: 居民身份证, 近期免冠彩色证件照
FUND = ("陈志强", "330329199007010137")  # the sandbox gateway's record for 住房公积金账户信息
ACCOUNT = "住房公积金账户信息"  # supplied_by: agency in the sample catalogue
KINDS = "只接受 PDF、JPG、PNG、OFD 文件"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, browser) -> Iterator[dict]:  # noqa: F811 (the module's one Chromium)
    """One hub (SQLite), its web app and the shared browser (tests/test_browser.py) for the module. The data platform's
    verifier (irs-verify) points at a port where nothing runs yet: the tests start it there."""
    folder = tmp_path_factory.mktemp("intake")
    port = _free_port()
    home = write_home(folder / "home")
    path = home / "connections" / "irs-verify.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = f"http://127.0.0.1:{port}/irs/v1"
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    url = f"sqlite:///{folder / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HUB_SANDBOX_TOKEN", TOKEN)  # the connection reads its token from there
        hub = Hub.open(home, database_url=url, clock=Clock(datetime(2026, 9, 21, 10, tzinfo=CST)))
        add_user(hub, *CLERK, display_name="陈静", role=Role.enclave_clerk, desk="enclave-shanghai")
        add_user(hub, *TELLER, display_name="王芳", role=Role.teller, desk="bank-xiahong")
        try:
            with serving(hub) as base:
                yield {"hub": hub, "base": base, "browser": browser, "port": port}
        finally:
            hub.close()


@pytest.fixture
def page(setup) -> Iterator[object]:
    context = setup["browser"].new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))  # an uncaught "Failed to fetch" lands here
    p.on("dialog", lambda d: (errors.append(f"unexpected dialog: {d.message}"), d.dismiss()))
    yield p
    context.close()
    assert not errors, f"JavaScript errors or dialogs on the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"intake-{name}.png"), full_page=True)


def log_in(page, base: str, who: tuple[str, str]) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.locator("form[action='/login'] button").click()
    # logged in when the page we land on offers 退出 (a load state alone may be the login page's)
    expect(page.locator("header form[action='/logout'] button")).to_be_visible()


def test_online_check_fails_clearly_and_a_retry_confirms_once_the_verifier_is_back(page, setup):
    base = setup["base"]
    log_in(page, base, CLERK)
    page.goto(f"{base}/intake/{FUND_RETIRE}")
    row = page.locator(f"tr[data-material='{ACCOUNT}']")
    # 免提交: nothing to upload, nothing owed; the clerk may check it online
    expect(row).to_have_attribute("data-agency", "1")
    expect(row.locator(".tag.exempt")).to_have_text("免提交")
    expect(row.locator("input[type=file]")).to_have_count(0)
    expect(row.locator("input[name=missing]")).to_have_count(0)
    expect(row.locator(".req")).to_have_count(0)
    button, result = row.locator("button.verify"), row.locator(".verify-result")
    expect(button).to_have_text("核验")

    # before the applicant is entered there is nothing to check
    button.click()
    expect(result).to_have_text("请先填写申请人姓名和正确的身份号码，再核验")
    page.fill("input[name=applicant_name]", FUND[0])
    page.fill("input[name=applicant_id]", FUND[1])

    # the verifier is down: the hub cannot reach it
    button.click()
    expect(result).to_have_text("核验系统暂时无法连接，请点“重试”，或收取纸质材料")
    expect(button).to_have_text("重试")
    expect(button).to_be_enabled()
    shot(page, "1-verifier-down")

    # the network between the page and the hub fails (the fetch itself rejects)
    page.route("**/api/v1/verifications", lambda route: route.abort("internetdisconnected"))
    button.click()
    expect(result).to_have_text("网络连接失败，核验未完成，请检查网络后点“重试”，或收取纸质材料")
    expect(button).to_have_text("重试")
    page.unroute("**/api/v1/verifications")

    # the verifier is back: the retry confirms and carries a ticket into the submission
    gateway = DataSharingGateway(token=TOKEN, port=setup["port"]).start()
    try:
        button.click()
        expect(result).to_have_text("✓ 核验一致，无需纸质材料")
        expect(button).to_have_text("核验")
        assert row.locator("input[name=verified]").input_value().count(".") == 1  # a signed ticket
        assert gateway.asked == ["housing_fund_account"]
    finally:
        gateway.stop()
    shot(page, "2-verifier-back")


def test_a_refused_file_keeps_the_other_files_and_everything_typed(page, setup, tmp_path: Path):
    base, hub = setup["base"], setup["hub"]
    scan, exe, fake, photo = (tmp_path / n for n in ("身份证.pdf", "照片.exe", "照片.jpg", "证件照.jpg"))
    scan.write_bytes(PDF)
    exe.write_bytes(b"MZ" + b"\x00" * 64)
    fake.write_bytes(b"MZ" + b"\x00" * 64)  # named .jpg, but not a picture: the server sniffs it
    photo.write_bytes(JPEG)
    elder = make_id("330329", datetime(1950, 3, 15).date(), "024")

    log_in(page, base, TELLER)
    page.goto(f"{base}/intake/{ELDER_CARD}")
    page.fill("input[name=applicant_name]", "林阿婆")
    page.fill("input[name=applicant_id]", elder)
    page.select_option("select[name=f_delivery_method]", "窗口领取")
    page.fill("input[name=f_contact_phone]", "13905770001")
    page.fill("textarea[name=note]", "原件已核，复印件留存。")  # full-width punctuation, kept as written
    for box in page.locator("input[name=checklist]").all():
        box.check()
    page.set_input_files("input[name=file_0]", str(scan))
    id_row = page.locator("tr[data-material='居民身份证']")
    expect(id_row.locator(".chosen")).to_contain_text("身份证.pdf")
    photo_row = page.locator("tr[data-material='近期免冠彩色证件照']")

    # refused in the page: its own input is cleared, the message names the material and the extensions
    page.set_input_files("input[name=file_1]", str(exe))
    hint = photo_row.locator(".hint")
    expect(hint).to_contain_text("“近期免冠彩色证件照”不接受此类文件（照片.exe）")
    expect(hint).to_contain_text(KINDS)
    assert page.eval_on_selector("input[name=file_1]", "i => i.files.length") == 0
    assert page.eval_on_selector("input[name=file_0]", "i => i.files.length") == 1

    # refused by the server (the bytes are not a picture): the errors come into the page in place
    page.set_input_files("input[name=file_1]", str(fake))
    page.locator("#submit").click()
    errors = page.locator("#errors")
    expect(errors).to_contain_text("近期免冠彩色证件照 (照片.jpg)")
    expect(errors).to_contain_text(f"不接受的文件类型：{KINDS}")
    expect(errors).not_to_contain_text("application/")
    expect(errors).not_to_contain_text("image/")
    expect(page.locator("#submit")).to_be_enabled()
    expect(page).to_have_url(f"{base}/intake/{ELDER_CARD}")
    assert page.eval_on_selector("input[name=file_0]", "i => i.files.length") == 1  # the ID scan is kept
    assert page.eval_on_selector("input[name=file_1]", "i => i.files.length") == 0  # the refused one is not
    expect(photo_row.locator(".hint")).to_have_text("此文件未被接受，请重新选择")
    expect(page.locator("input[name=applicant_name]")).to_have_value("林阿婆")
    expect(page.locator("input[name=applicant_id]")).to_have_value(elder)
    expect(page.locator("input[name=f_contact_phone]")).to_have_value("13905770001")
    expect(page.locator("textarea[name=note]")).to_have_value("原件已核，复印件留存。")
    shot(page, "3-file-refused")
    with hub.sessions() as session:
        assert svc.list_applications(session, svc.SYSTEM, desk="bank-xiahong") == []  # nothing was saved

    # the right photo, and the same form goes through with the scan chosen before the error
    page.set_input_files("input[name=file_1]", str(photo))
    page.locator("#submit").click()
    page.wait_for_url(re.compile(r"/applications/[^/]+/receipt$"))
    number = page.url.split("/applications/")[1].split("/")[0]
    app = svc.read(hub, number, svc.SYSTEM)
    assert sorted(m.filename for m in app.materials if m.kind == "material") == ["证件照.jpg", "身份证.pdf"]
    review = next(e for e in app.events if e.action == "pre_review")
    assert review.reason == "原件已核，复印件留存。"  # the note is the first review's reason
    shot(page, "4-receipt")
