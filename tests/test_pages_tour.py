"""Every main page, as each role sees it, in a real browser: no serious accessibility violation
(axe-core, run in the page), no English on a Chinese page, a title that says where you are, and a
screenshot of each page kept in test-artifacts/tour/.

The hub holds a few cases in different states (received, 容缺 accepted, 补正, decided with a bad
rating) so the pages show real rows, not empty tables. Debian's chromium only; never downloads a
browser (without /usr/bin/chromium the test skips locally and fails under CI=true)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from hub import applications as svc
from hub import ratings, secret_key
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import Licence
from hub.users import add_user
from hub.web.security import status_key
from tests.conftest import CST, Clock
from tests.support.page_checks import english_on, english_words, serious_violations
from tests.support.samples import HZ_CLERK, TELLER, elderly_card, fund_rent
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import browser  # noqa: F401  (fixture: the module's one Chromium)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the `dev` extra (make installs it)")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "tour"
TIMEOUT_MS = 120_000
# officers as people are named on a real hub (tests' officer() adds "@department" to the name)
MZJ = svc.Actor(name="民政审批员林晓", role=Role.officer, department="ts-mzj")
GJJ = svc.Actor(name="公积金审批员郑伟", role=Role.officer, department="ts-gjj")

# (username, password, display name, role, desk, department)
STAFF = {
    "teller": ("wangfang", "xiahong-柜台-2026", "王芳", Role.teller, "bank-xiahong", None),
    "clerk": ("chenjing", "feidi-杭州-2026", "陈静", Role.enclave_clerk, "enclave-hangzhou", None),
    "officer": ("linxiao", "minzheng-审批-2026", "林晓", Role.officer, None, "ts-mzj"),
    "supervisor": ("zhoujian", "dujian-督查-2026", "周健", Role.supervisor, None, None),
    "ops": ("yunwei", "xitong-运维-2026", "运维小李", Role.ops, None, None),
}


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> Iterator[tuple[Hub, str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("tour")
    clock = Clock(datetime(2026, 10, 12, 10, tzinfo=CST))
    with sqlite_hub(folder, clock) as hub:
        for username, password, name, role, desk, department in STAFF.values():
            add_user(hub, username, password, display_name=name, role=role, desk=desk, department=department)
        received = svc.create(hub, elderly_card(), TELLER).number
        owed = svc.create(
            hub, fund_rent(materials=["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明"]), HZ_CLERK
        ).number
        svc.transition(hub, owed, "accept", GJJ, commitment_due=date(2026, 10, 19))
        supplement = svc.create(hub, elderly_card(source_ref="tour-supplement"), TELLER).number
        svc.transition(hub, supplement, "request_supplement", MZJ, reason="照片不清晰，请重新提供近期免冠彩色证件照。")
        decided = svc.create(hub, elderly_card(source_ref="tour-decided"), TELLER).number
        for action in ("accept", "start_review", "approve", "issue"):
            svc.transition(hub, decided, action, MZJ)
        svc.transition(hub, decided, "deliver", TELLER)
        ratings.rate(hub, decided, 1, "等了很久，窗口说法不一致。")
        numbers = {"received": received, "owed": owed, "supplement": supplement, "decided": decided}
        with hub.sessions() as session:  # the 老年人优待证 its approval issued (hub.applications.licences)
            licence = session.scalars(select(Licence).where(Licence.application_number == decided)).one()
            numbers |= {"licence": licence.number, "licence_code": licence.code}
        with serving(hub) as url:
            yield hub, url, numbers


def _session(chromium, base_url: str, who: str | None):
    context = chromium.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    page = context.new_page()
    if who:
        username, password = STAFF[who][:2]
        page.goto(f"{base_url}/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.locator("form[action='/login'] button").click()
        page.wait_for_load_state()
        sync_api.expect(page.locator("header form[action='/logout'] button")).to_be_visible()
    return context, page


def _check(page, name: str) -> list[str]:
    """Screenshot, then what is wrong with the page as a list of findings (empty: fine)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    found: list[str] = []
    title = page.title()
    if "·" not in title and title != "通办枢纽":
        found.append(f"{name}: title {title!r} does not say where you are")
    found += [f"{name}: {v}" for v in serious_violations(page)]
    if words := english_on(page):
        found.append(f"{name}: English on a Chinese page: {words[:12]}")
    return found


def _pages(numbers: dict[str, str], secret: bytes) -> dict[str | None, list[tuple[str, str]]]:
    n = numbers
    link = f"/s/{n['supplement']}?k={status_key(secret, n['supplement'])}"
    return {
        None: [
            ("login", "/login"),
            ("status-supplement", link),
            ("status-bad-link", f"/s/{n['received']}?k=0"),
            ("licence-public", f"/l/{n['licence_code']}"),
            ("licence-unknown", "/l/" + "x" * 32),
        ],
        "teller": [
            ("teller-home", "/"),
            ("teller-intake", "/intake"),
            ("teller-intake-form", "/intake/GG00501000"),
            ("teller-list", "/applications"),
            ("teller-application", f"/applications/{n['supplement']}"),
            ("teller-receipt", f"/applications/{n['received']}/receipt"),
        ],
        "clerk": [("clerk-home", "/"), ("clerk-application", f"/applications/{n['owed']}")],
        "officer": [
            ("officer-inbox", "/inbox"),
            ("officer-application", f"/applications/{n['received']}"),
            ("officer-decided", f"/applications/{n['decided']}"),
            ("officer-licences", "/licences"),
            ("officer-licence", f"/licences/{n['licence']}"),
        ],
        "supervisor": [("supervisor-dashboard", "/dashboard"), ("supervisor-follow-ups", "/follow-ups")],
        "ops": [("ops", "/ops"), ("ops-partners", "/ops/partners")],
    }


def test_every_main_page_is_accessible_chinese_and_titled(tour, browser):  # noqa: F811 (fixture)
    hub, base_url, numbers = tour
    findings: list[str] = []
    for who, pages in _pages(numbers, secret_key.load(hub.settings)).items():
        context, page = _session(browser, base_url, who)
        try:
            for name, path in pages:
                response = page.goto(f"{base_url}{path}")
                assert response is not None
                if response.status >= 500:
                    findings.append(f"{name}: {path} answered {response.status}")
                    continue
                findings += _check(page, name)
        finally:
            context.close()
    assert not findings, "\n".join(findings)


def test_the_english_check_catches_a_tail():
    """The check above is only worth something if it finds what it looks for."""
    assert english_words("办件不存在 (no such application)") == {"such", "application"}
    assert english_words("上传 PDF 或 JPG 文件；办件号 TS2026100001，摘要 caf9f713679af") == set()
    assert english_words("状态 pending") == {"pending"}
