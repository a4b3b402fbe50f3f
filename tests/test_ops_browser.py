"""The ops pages in a real browser (Debian's chromium, Playwright, the real app under uvicorn on
loopback): ops creates a teller's login with a supervisor approving at the ops screen, the teller
logs in with the temporary password and must set her own first; ops disables her and her login is
refused, enables her again; five wrong passwords lock her out and ops lifts the lockout; ops
creates a desk system's token (shown once), the API takes it, ops revokes it and the API refuses
it. Every form carries the session's CSRF token (tests/test_ops_accounts.py forges them).
Screenshots go to test-artifacts/ops-*.png."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime

import pytest

from hub.context import Hub
from hub.lifecycle import Role
from hub.users import MAX_FAILURES, add_user
from tests.conftest import CST, Clock
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, expect, shot  # noqa: F401  (the module's one browser)

OPS = ("zhouqiang", "ops-运维-2026-zhou")
BOSS = ("chenjing", "dubanshi-督查-2026")
TELLER_NEW_PASSWORD = "xiahong-自己的-2026"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Hub, str]]:
    clock = Clock(datetime(2026, 9, 21, 10, tzinfo=CST))
    with sqlite_hub(tmp_path_factory.mktemp("ops-browser"), clock) as hub:
        add_user(hub, OPS[0], OPS[1], display_name="周强", role=Role.ops)
        add_user(hub, BOSS[0], BOSS[1], display_name="陈静", role=Role.supervisor)
        with serving(hub) as url:
            yield hub, url


@pytest.fixture
def pages(browser):  # noqa: F811
    """New browser contexts (one per person, cookies apart); fails the test on any page error or dialog."""
    contexts, errors = [], []

    def new_page():
        context = browser.new_context(
            locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
        contexts.append(context)
        p = context.new_page()
        p.on("pageerror", lambda exc: errors.append(str(exc)))
        p.on("dialog", lambda d: (errors.append(f"unexpected dialog: {d.message}"), d.dismiss()))
        return p

    yield new_page
    for c in contexts:
        c.close()
    assert not errors, f"JavaScript errors or dialogs on the pages: {errors}"


def log_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form[action='/login'] button").click()


def approve(form, who: tuple[str, str]) -> None:
    form.locator("input[name=approver]").fill(who[0])
    form.locator("input[name=approver_password]").fill(who[1])


def test_ops_creates_disables_and_unlocks_a_teller(site, pages):
    _, url = site
    ops = pages()
    log_in(ops, url, *OPS)
    ops.wait_for_url(f"{url}/ops")
    expect(ops.locator("#jobs")).to_be_visible()
    shot(ops, "ops-home.png")
    ops.locator("header nav a[href='/ops/users']").click()
    ops.wait_for_url(f"{url}/ops/users")
    expect(ops).to_have_title(re.compile("^运维 · 用户与锁定"))

    form = ops.locator("#new-user form")
    form.locator("input[name=username]").fill("wangfang")
    form.locator("input[name=display_name]").fill("王芳")
    form.locator("select[name=role]").select_option("teller")
    form.locator("select[name=desk]").select_option("bank-xiahong")
    form.locator("button").click()  # no approver: refused, named, nothing written, the entries kept
    expect(ops.locator("#errors li[data-field=approver]")).to_contain_text("授权")
    expect(form.locator("input[name=display_name]")).to_have_value("王芳")
    shot(ops, "ops-user-refused.png")
    approve(form, BOSS)
    form.locator("select[name=desk]").select_option("bank-xiahong")
    form.locator("button").click()
    temporary = ops.locator("#temp-password").inner_text()
    expect(ops.locator("tr.user[data-username=wangfang] .account-state")).to_contain_text("待修改临时密码")
    shot(ops, "ops-user-created.png")

    teller = pages()
    log_in(teller, url, "wangfang", temporary)
    teller.wait_for_url(f"{url}/account/password")
    expect(teller.locator("#must-change")).to_be_visible()
    teller.goto(f"{url}/intake")  # nothing else until the temporary password is replaced
    expect(teller).to_have_url(f"{url}/account/password")
    teller.fill("input[name=current]", temporary)
    teller.fill("input[name=new]", TELLER_NEW_PASSWORD)
    teller.fill("input[name=again]", TELLER_NEW_PASSWORD)
    shot(teller, "ops-teller-change-password.png")
    teller.locator("#change-password button").click()
    teller.wait_for_url(f"{url}/")  # her to-do page

    ops.goto(f"{url}/ops/users/wangfang")
    expect(ops.locator("dl.facts")).to_contain_text("2026-09-21 10:00")  # last login, Beijing time
    disable = ops.locator("#disable form")
    disable.locator("input[name=confirm]").check()
    disable.locator("button").click()
    expect(ops.locator("#done")).to_contain_text("账号已停用")
    expect(ops.locator("#account-state")).to_have_text("已停用")
    shot(ops, "ops-user-disabled.png")
    teller.goto(f"{url}/intake")  # her session ended with the account
    expect(teller).to_have_url(re.compile(r"/login\?next=/intake"))
    log_in(teller, url, "wangfang", TELLER_NEW_PASSWORD)
    expect(teller.locator("p.error[role=alert]")).to_contain_text("用户名或密码错误")

    enable = ops.locator("#enable form")
    approve(enable, BOSS)
    enable.locator("button").click()
    expect(ops.locator("#done")).to_contain_text("重新启用")

    for _ in range(MAX_FAILURES):
        log_in(teller, url, "wangfang", "not-her-password")
        expect(teller.locator("p.error[role=alert]")).to_be_visible()
    log_in(teller, url, "wangfang", TELLER_NEW_PASSWORD)  # locked: the right password is refused too
    expect(teller.locator("p.error[role=alert]")).to_be_visible()
    ops.goto(f"{url}/ops/users")
    expect(ops.locator("tr.user[data-username=wangfang] .account-state")).to_contain_text("已锁定至 2026-09-21 10:15")
    shot(ops, "ops-user-locked.png")
    ops.locator("tr.user[data-username=wangfang] a").click()
    ops.locator("#unlock button").click()
    expect(ops.locator("#done")).to_contain_text("已解除锁定")
    log_in(teller, url, "wangfang", TELLER_NEW_PASSWORD)
    teller.wait_for_url(f"{url}/")


def _api(url: str, secret: str) -> int:
    request = urllib.request.Request(f"{url}/api/v1/applications", headers={"authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_MS / 1000) as answer:
            json.load(answer)
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_ops_creates_and_revokes_a_desk_token(site, pages):
    hub, url = site
    add_user(hub, "lixia", "baizhang-柜台-2026", display_name="李霞", role=Role.teller, desk="bank-baizhang")
    ops = pages()
    log_in(ops, url, *OPS)
    ops.goto(f"{url}/ops/tokens")
    form = ops.locator("#new-token form")
    form.locator("input[name=name]").fill("白彰网点收件系统")
    form.locator("select[name=role]").select_option("teller")
    form.locator("select[name=desk]").select_option("bank-baizhang")
    approve(form, ("lixia", "baizhang-柜台-2026"))
    form.locator("button").click()
    secret = ops.locator("#token-secret").inner_text()
    assert secret.startswith("tbh_")
    shot(ops, "ops-token-created.png")
    assert _api(url, secret) == 200
    ops.goto(f"{url}/ops/tokens")
    row = ops.locator("tr.token", has_text="白彰网点收件系统")
    expect(row.locator(".last-used")).to_have_text("2026-09-21 10:00")
    expect(ops.locator("body")).not_to_contain_text(secret)  # shown once only
    row.locator("input[name=confirm]").check()
    row.locator("button").click()
    expect(ops.locator("#done")).to_contain_text("令牌已吊销")
    expect(ops.locator("tr.token", has_text="白彰网点收件系统").locator(".token-state")).to_contain_text("已吊销")
    shot(ops, "ops-token-revoked.png")
    assert _api(url, secret) == 401
