"""The offline kit (政务背包) in Chromium against the real app under uvicorn, one hub and server for
the module:
- the vendored validator (@cfworker/json-schema with the kit's formats, under the real CSP) gives
  the verdicts Python gives for the same forms and schemas;
- an agent enrols the browser, the service worker takes over, the network is cut
  (`context.set_offline(True)`), the page reloads from the worker's cache, the kit unlocks with
  its PIN and takes two applications (a wrong phone number refused on the spot by the schema);
  the network returns and the kit syncs — the first sync reaches the hub but its answer is killed
  (`route.fetch()` then `route.abort()`), the kit retries — and the database holds exactly two
  applications, whose numbers the kit shows;
- a record the hub refuses (eligibility, which only the hub checks) shows the hub's reason; the
  agent fixes it and it goes through under the same record id;
- revoked, the kit wipes its IndexedDB database at its next contact with the hub;
- IndexedDB holds nothing in clear (the applicant's name is not in any stored value)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from hub.catalog import jsonschema as js
from hub.kit import devices
from hub.storage.tables import Application, KitRecord
from tests.conftest import CST, JPEG, Clock, make_id
from tests.support.page_checks import accessible, no_english
from tests.support.webserver import serving, sqlite_hub
from tests.test_browser import TIMEOUT_MS, browser, expect, shot  # noqa: F401  (browser: the module's one Chromium)
from tests.test_kit_schema import _forms
from tests.test_kit_sync import ELDER, ITEM, OPS, PASSWORD, add_agent

PIN = "246810"
TABLET = {"width": 800, "height": 1100}
YOUNG = make_id("330329", date(1990, 7, 1), "041")  # too young for a 老年人优待证
OLDER = make_id("330329", date(1951, 7, 1), "041")
RESIDENTS = [("林阿婆", ELDER), ("陈阿公", make_id("330329", date(1948, 5, 2), "031"))]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[object, str]]:
    folder = tmp_path_factory.mktemp("kit")
    with sqlite_hub(folder, Clock(datetime(2026, 9, 21, 10, tzinfo=CST))) as hub:
        add_agent(hub)
        with serving(hub) as url:
            yield hub, url


@pytest.fixture
def context(browser) -> Iterator[object]:  # noqa: F811
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport=TABLET, has_touch=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    yield ctx
    ctx.close()


def _page(context) -> tuple[object, list[str]]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (errors.append(f"unexpected dialog: {d.message}"), d.dismiss()))
    return page, errors


def test_the_vendored_validator_gives_pythons_verdicts(site, context) -> None:
    hub, url = site
    page, errors = _page(context)
    page.goto(f"{url}/kit/")
    rng = random.Random(3)
    cases, expected = [], []
    for code in ("GG00501000", "JF00502000", "GG00301001", "QR00117001", "XK00602000"):
        item = hub.catalog.items[code]
        fields = list(item.form)
        schema = js.item_schema(item)
        check = js.validator(schema)
        slim = [{"name": f.name, "type": f.type} for f in fields]
        for form in _forms(fields, rng)[:80]:
            cases.append({"schema": schema, "fields": slim, "form": form})
            expected.append(check.is_valid(js.normalize(fields, form)))
    got = page.evaluate(
        """async (cases) => {
            const forms = await import('/static/kit/forms.js');
            return cases.map((c) => forms.valid(c.schema, forms.normalize(c.fields, c.form)));
        }""",
        cases,
    )
    mismatches = [(c["form"], e, g) for c, e, g in zip(cases, expected, got, strict=True) if e != g]
    assert not mismatches, mismatches[:5]
    assert 50 < sum(expected) < len(expected) - 50  # both verdicts exercised
    assert not errors, errors


def _take(page, name: str, id_number: str) -> None:
    page.click("#new-record")
    page.select_option("#item-select", ITEM)
    page.fill("input[name='applicant.name']", name)
    page.fill("input[name='applicant.id']", id_number)
    page.select_option("select[name='form.delivery_method']", "窗口领取")
    page.fill("input[name='form.contact_phone']", "1390577")  # too short: refused by the schema, offline
    page.set_input_files(
        "input[data-material='居民身份证']", files=[{"name": "id.jpg", "mimeType": "image/jpeg", "buffer": JPEG}]
    )
    page.locator("#signature").scroll_into_view_if_needed()
    box = page.locator("#signature").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 90, steps=8)
    page.mouse.move(box["x"] + 260, box["y"] + 50, steps=8)
    page.mouse.up()
    page.click("#record-form button[type=submit]")
    expect(page.locator(".hint[data-for='form.contact_phone']")).to_contain_text("格式不正确")
    page.fill("input[name='form.contact_phone']", "13905770001")
    page.click("#record-form button[type=submit]")
    expect(page.locator("#view-main")).to_be_visible()


def test_offline_intake_then_sync_exactly_once_with_the_first_answer_lost(site, context) -> None:
    hub, url = site
    page, errors = _page(context)
    page.goto(f"{url}/login")
    page.fill("input[name=username]", "zhouli")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form[action='/login'] button").click()
    page.wait_for_url(lambda u: "/login" not in u)

    page.goto(f"{url}/kit/")
    page.fill("#enrol-form input[name=name]", "东溪乡平板1号")
    page.fill("#enrol-form input[name=pin]", PIN)
    page.fill("#enrol-form input[name=pin2]", PIN)
    page.click("#enrol-form button[type=submit]")
    expect(page.locator("#view-main")).to_be_visible()
    expect(page.locator("#desk")).to_contain_text("东溪乡便民服务中心")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    accessible(page)
    no_english(page)
    page.goto(f"{url}/kit/devices")  # the agent's own devices, with the revoke button
    expect(page.locator("tr[data-device]")).to_contain_text("东溪乡平板1号")
    accessible(page)
    no_english(page)

    # no network: the shell and scripts come from the service worker, the data from IndexedDB
    context.set_offline(True)
    page.goto(f"{url}/kit/")
    page.fill("#unlock-form input[name=pin]", "000000")
    page.click("#unlock-form button[type=submit]")
    expect(page.locator(".hint[data-for=unlock]")).to_contain_text("口令不正确")
    page.fill("#unlock-form input[name=pin]", PIN)
    page.click("#unlock-form button[type=submit]")
    expect(page.locator("#net")).to_have_text("离线")
    for name, id_number in RESIDENTS:
        _take(page, name, id_number)
    expect(page.locator("#records li.pending")).to_have_count(2)
    accessible(page)
    shot(page, "kit-offline-two-records.png")
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 0

    # nothing in clear at rest: no stored value holds the applicant's name or ID number
    stored = page.evaluate(
        """() => new Promise((resolve) => {
            const open = indexedDB.open('tbh-kit');
            open.onsuccess = () => {
                const tx = open.result.transaction(['meta', 'records']);
                const out = [];
                let left = 2;
                for (const name of ['meta', 'records']) {
                    const req = tx.objectStore(name).getAll();
                    req.onsuccess = () => {
                        for (const v of req.result) {
                            // every value twice: its text with the binary parts left out, and
                            // each binary part's bytes (as decimal numbers)
                            const bin = (x) => x instanceof ArrayBuffer || ArrayBuffer.isView(x);
                            out.push(JSON.stringify(v, (k, x) => (bin(x) ? '[bytes]' : x)));
                            for (const x of Object.values(v)) {
                                if (bin(x)) out.push(',' + Array.from(new Uint8Array(x.buffer || x)).join(',') + ',');
                            }
                        }
                        if (--left === 0) { open.result.close(); resolve(out); }  // an open one would block the wipe
                    };
                }
            };
        })"""
    )
    assert len(stored) >= 10  # keyring, device, bundle, two records: text and bytes each
    for name, id_number in RESIDENTS:
        for needle in (name, id_number, "13905770001"):
            as_bytes = "," + ",".join(str(b) for b in needle.encode()) + ","
            assert all(needle not in s and as_bytes not in s for s in stored), needle

    # the network returns; the first sync reaches the hub, its answer never reaches the kit
    lost: list[int] = []

    def lose_the_first_answer(route) -> None:
        if not lost:
            response = route.fetch()
            lost.append(response.status)
            route.abort()
        else:
            route.continue_()

    page.route("**/api/v1/kit/sync", lose_the_first_answer)
    context.set_offline(False)
    expect(page.locator("#records .number")).to_have_count(2)
    assert lost == [200]
    shown = sorted(page.locator("#records .number").all_inner_texts())
    with hub.sessions() as session:
        numbers = sorted(session.scalars(select(Application.number)))
        kit_rows = session.scalar(select(func.count()).select_from(KitRecord))
    assert numbers == shown and len(numbers) == 2 and kit_rows == 2
    shot(page, "kit-synced.png")

    # a record the schema passes but the hub refuses (the resident is under 60: eligibility is the
    # hub's): the hub's reason is shown on the record; fixed, it is sent again and accepted
    page.unroute("**/api/v1/kit/sync")
    _take(page, "周小妹", YOUNG)
    refused = page.locator("#records li.refused")
    expect(refused).to_contain_text("被退回")
    expect(refused.locator("ul.errors")).to_contain_text("applicant")
    refused.locator("button").click()
    expect(page.locator(".hint[data-for='applicant.id']")).not_to_be_empty()
    page.fill("input[name='applicant.id']", OLDER)
    page.locator("#signature").scroll_into_view_if_needed()
    page.click("#record-form button[type=submit]")
    expect(page.locator("#records .number")).to_have_count(3)
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 3

    # the device is lost: ops revoke it; the kit's next contact wipes what it holds
    [device] = devices.list_devices(hub, OPS, None)
    devices.revoke(hub, OPS, device.id)
    page.click("#sync-now")
    expect(page.locator("#flash")).to_contain_text("已被吊销")
    expect(page.locator("#view-login")).to_be_visible()
    names = page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)")
    assert "tbh-kit" not in names
    assert not errors, errors
