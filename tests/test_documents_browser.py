"""The resident's documents on a phone (390×844) in Chromium, against the real app under uvicorn:
the status page lists their notices and opens the sealed PDF; the public check a notice's QR code
opens shows the kind, authority, a masked name and a valid seal, and refuses an unknown code. No
page scrolls sideways, axe-core finds no serious violation, no English on the Chinese pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from hub import applications as svc
from hub import documents, seals
from hub.secret_key import load as load_secret
from hub.secret_key import status_path
from tests.conftest import CST, Clock
from tests.support.page_checks import accessible, loopback_page, no_english, no_sideways_scroll
from tests.support.samples import TELLER, elderly_card, officer
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, expect, shot  # noqa: F401  (browser: the module's one Chromium)
from tests.test_status_browser import PHONE

MZJ = officer("ts-mzj")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, str, str]]:
    """An accepted 老年人优待证 with its 受理通知书 issued: (url, status path, notice code)."""
    folder = tmp_path_factory.mktemp("documents")
    with sqlite_hub(folder, Clock(datetime(2026, 9, 21, 10, tzinfo=CST))) as hub:
        seals.ensure_test_seals(hub)
        number = svc.create(hub, elderly_card(), TELLER).number
        svc.transition(hub, number, "accept", MZJ)
        notice = {d.kind: d for d in documents.documents_of(hub, svc.read(hub, number, svc.SYSTEM))}["acceptance"]
        # in a thread of its own: pyHanko's synchronous signer runs an event loop, and Playwright's
        # sync API already runs one in this thread
        with ThreadPoolExecutor(1) as pool:
            pool.submit(documents.issue, hub, notice.id).result()
        path = status_path(load_secret(hub.settings), number)
        with serving(hub) as url:
            yield url, path, notice.code


@pytest.fixture
def phone(browser) -> Iterator[object]:  # noqa: F811
    with loopback_page(browser, TIMEOUT_MS, viewport=PHONE, is_mobile=True) as page:
        yield page


def test_status_page_offers_the_residents_notices(phone, site) -> None:
    url, path, _code = site
    phone.goto(url + path)
    expect(phone.locator("#documents h2")).to_have_text("我的办件文书")
    link = phone.locator("#documents a", has_text="受理通知书")
    expect(link).to_have_count(1)
    no_sideways_scroll(phone)
    accessible(phone)
    no_english(phone)
    shot(phone, "documents-01-status-390.png")
    answer = phone.request.get(url + link.get_attribute("href"))
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.body().startswith(b"%PDF")


def test_public_check_from_the_qr_code(phone, site) -> None:
    url, _path, code = site
    phone.goto(f"{url}/d/{code}")
    expect(phone).to_have_title(re.compile("^文书核验"))
    expect(phone.locator("#doc-kind")).to_have_text("受理通知书")
    expect(phone.locator("#doc-authority")).to_have_text("泰顺县民政局")
    expect(phone.locator("#doc-seal")).to_contain_text("有效")
    expect(phone.locator("main")).to_contain_text("林**")
    no_sideways_scroll(phone)
    accessible(phone)
    no_english(phone)
    shot(phone, "documents-02-check-390.png")
    phone.fill("input[name=code]", "abcd efgh jkmn pqrs")  # typed from paper: found or not, never an error
    phone.locator("#doc-lookup button").click()
    expect(phone.locator("#doc-message")).to_contain_text("没有这个核验码的文书")
    no_english(phone)
