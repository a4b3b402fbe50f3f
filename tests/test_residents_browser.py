"""Residents online (网办) on a phone (390×844) in Chromium, against the real app under uvicorn and
the sandbox identity service (OpenID Connect) on loopback, one of each for the module: a resident
signs in through the provider's page (a wrong password first), sees only their own applications,
probes another resident's number and gets the same 404 as a number nobody holds, applies online
(the ID never typed) and the application is in the online desk's list for staff; a provider that
vouches for a bad ID number gets a refusal page and no session; a forged callback opens nothing;
forms without the session's CSRF token change nothing; logins and views are audited, ID masked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from hub import applications as svc
from hub import audit
from hub.context import Hub
from hub.home import write_home
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.users import add_user
from hub.web.resident_session import open_resident_session, resident_of
from plugins.sandbox.oidc_provider import PASSWORD, SandboxIdentityProvider
from tests.conftest import CST, Clock
from tests.support.oidc_plugin import oidc_entry_point
from tests.support.page_checks import accessible, english_on, loopback_page, no_sideways_scroll
from tests.support.samples import TELLER, elderly_card, fund_rent, officer
from tests.support.webserver import serving
from tests.test_browser import TIMEOUT_MS, browser, expect, shot  # noqa: F401  (browser: the module's one Chromium)

PHONE = {"width": 390, "height": 844}
ONLINE_STAFF = svc.Actor(name="网办受理员周敏", role=Role.clerk, desk="online-zlb")
STAFF_LOGIN = ("zhoumin", "Wangban-2026-zm")
MZJ = officer("ts-mzj")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict]:
    """One sandbox provider, one hub (its hub.yaml pointing at the provider) and one server: 林阿婆
    has an application from the bank outlet, 陈志强 one from the Hangzhou enclave window."""
    folder = tmp_path_factory.mktemp("residents")
    idp = SandboxIdentityProvider().start()
    with oidc_entry_point(folder / "site"):
        home = write_home(folder / "home")
        settings = home / "hub.yaml"
        # beside the sandbox: a province whose service is down, and one whose type no plugin provides
        others = (
            "  - {name: down, type: oidc, label: 随申办, config: {issuer: 'http://127.0.0.1:1', client_id: c}}\n"
            "  - {name: gov, type: saml, label: 国家政务服务平台}\n"
        )
        text = settings.read_text(encoding="utf-8").replace("http://127.0.0.1:8707", idp.issuer)
        settings.write_text(text.rstrip("\n") + "\n" + others, encoding="utf-8")
        url = f"sqlite:///{folder / 'hub.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        hub = Hub.open(home, database_url=url, clock=Clock(datetime(2026, 9, 21, 10, tzinfo=CST)))
        try:
            lin, chen = idp.resident("linapo"), idp.resident("chenzhiqiang")
            own = elderly_card().model_copy(update={"applicant": svc.Applicant(name=lin.name, id=lin.id_number)})
            other = fund_rent().model_copy(update={"applicant": svc.Applicant(name=chen.name, id=chen.id_number)})
            numbers = {
                "own": svc.create(hub, own, TELLER).number,
                "other": svc.create(
                    hub, other, svc.Actor(name="飞地专员陈静", role=Role.enclave_clerk, desk="enclave-hangzhou")
                ).number,
            }
            add_user(hub, *STAFF_LOGIN, display_name="周敏", role=Role.clerk, desk="online-zlb")
            with serving(hub) as base:
                yield {"url": base, "hub": hub, "idp": idp, "numbers": numbers}
        finally:
            hub.close()
            idp.stop()


@pytest.fixture
def phone(browser) -> Iterator[object]:  # noqa: F811
    with loopback_page(browser, TIMEOUT_MS, viewport=PHONE, is_mobile=True, has_touch=True) as page:
        yield page


def sign_in(page, url: str, who: str, *, wrong_password_first: bool = False) -> None:
    page.goto(f"{url}/my")
    expect(page).to_have_url(re.compile(r"/my/login\?next=/my$"))
    if wrong_password_first:
        shot(page, "residents-00-login-390.png")
    page.locator("#login-zlb").click()
    expect(page.locator("h1")).to_have_text("统一身份认证（沙箱）")
    page.locator(f"input[name=resident][value={who}]").check()
    if wrong_password_first:
        page.fill("input[name=password]", "654321")
        page.locator("#sandbox-login").click()
        expect(page.locator(".error")).to_have_text("用户名或密码错误，请重新输入。")
        page.locator(f"input[name=resident][value={who}]").check()
    page.fill("input[name=password]", PASSWORD)
    page.locator("#sandbox-login").click()


def test_a_resident_signs_in_sees_only_their_own_and_another_number_is_404(phone, site):
    url, numbers, hub = site["url"], site["numbers"], site["hub"]
    sign_in(phone, url, "linapo", wrong_password_first=True)
    expect(phone).to_have_url(f"{url}/my")
    expect(phone.locator("#resident-name")).to_have_text("林阿婆")
    expect(phone.locator("#my-apps li")).to_have_count(1)
    expect(phone.locator("#my-apps")).to_contain_text(numbers["own"])
    expect(phone.locator("main")).not_to_contain_text(numbers["other"])
    expect(phone.locator("#book-link")).to_have_attribute("href", "/book")
    no_sideways_scroll(phone)
    accessible(phone)
    assert not english_on(phone), english_on(phone)
    shot(phone, "residents-01-my-390.png")
    phone.goto(f"{url}/my?lang=en")
    expect(phone.locator("h1")).to_have_text("My applications")
    phone.goto(f"{url}/my?lang=zh")

    phone.locator(f"#my-apps a[href='/my/apps/{numbers['own']}']").click()
    expect(phone.locator("#app-number")).to_have_text(numbers["own"])
    expect(phone.locator("#plain-state")).to_be_visible()
    no_sideways_scroll(phone)

    answers = []
    for number in (numbers["other"], re.sub(r"\d+$", "99999", numbers["other"])):
        response = phone.goto(f"{url}/my/apps/{number}")
        answers.append((response.status, phone.locator("#refusal").inner_text()))
    assert answers[0] == answers[1] == (404, "未找到该办件。")  # someone else's is no one's
    shot(phone, "residents-02-probe-404-390.png")

    entries = audit.entries(hub, limit=50)
    login = next(e for e in entries if e.action == "resident_login")
    lin = site["idp"].resident("linapo").id_number
    assert login.data["id_number"] != lin and login.data["id_number"].endswith(lin[-4:])
    assert login.actor != "林阿婆" and login.role == "applicant"  # the name masked too
    viewed = [e.target for e in entries if e.action == "view_detail" and e.role == "applicant"]
    assert numbers["own"] in viewed and numbers["other"] not in viewed

    phone.locator("#resident-logout").click()
    expect(phone).to_have_url(f"{url}/my/login?out=1")
    phone.goto(f"{url}/my/apps/{numbers['own']}")
    expect(phone).to_have_url(re.compile(r"/my/login\?next="))  # the session is gone


def test_applying_online_end_to_end(phone, site, tmp_path: Path):
    url, hub = site["url"], site["hub"]
    sign_in(phone, url, "linapo")
    phone.locator("#online-items a[href='/my/apply/GG00501000']").click()
    expect(phone.locator("h1")).to_have_text("老年人优待证办理")
    expect(phone.locator("main")).not_to_contain_text("公民身份号码 *")  # the ID comes from the provider
    expect(phone.locator("input[name=f_contact_phone]")).to_have_value("13705770101")  # as the provider vouched
    expect(phone.locator("input[name=f_emergency_contact_phone]")).to_have_value("")
    phone.select_option("select[name=f_delivery_method]", "邮寄送达")
    phone.locator("#apply-submit").click()  # no mailing address: the catalogue's rule, said on the page
    expect(phone.locator("#errors")).to_contain_text("邮寄地址")
    phone.fill("textarea[name=f_mailing_address]", "泰顺县罗阳镇新城路12号")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    phone.set_input_files("input[name=file_1]", str(photo))
    no_sideways_scroll(phone)
    accessible(phone)
    assert not english_on(phone), english_on(phone)
    shot(phone, "residents-03-apply-390.png")
    phone.locator("#apply-submit").click()
    expect(phone.locator("#applied")).to_have_text("申请已提交，我们会尽快审核。")
    number = phone.locator("#app-number").inner_text()
    shot(phone, "residents-04-applied-390.png")

    with hub.sessions() as session:
        listed = {a.number: a for a in svc.list_applications(session, ONLINE_STAFF)}
    assert number in listed  # in the online desk's list for its staff
    app = listed[number]
    lin = site["idp"].resident("linapo")
    assert (app.applicant_id, app.applicant_name, app.desk_code) == (lin.id_number, "林阿婆", "online-zlb")
    assert app.state == "received" and app.form["mailing_address"] == "泰顺县罗阳镇新城路12号"
    full = svc.read(hub, number, ONLINE_STAFF)
    assert [m.name for m in full.materials] == ["近期免冠彩色证件照"]
    phone.goto(f"{url}/my")
    expect(phone.locator("#my-apps li")).to_have_count(2)

    # the online desk's staff see it in their list, on their own page
    with httpx.Client(base_url=url, follow_redirects=False) as staff:
        login = staff.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)[1]
        form = {"username": STAFF_LOGIN[0], "password": STAFF_LOGIN[1], "csrf_token": token, "next": "/applications"}
        assert staff.post("/login", data=form).status_code == 303
        listed = staff.get("/applications")
        assert listed.status_code == 200 and number in listed.text


def signed_in(site, who: str) -> httpx.Client:
    """A resident's browser, played over HTTP: the login, the provider's page, the callback."""
    client = httpx.Client(base_url=site["url"], follow_redirects=False)
    start = client.get("/my/login/zlb")
    page = httpx.get(start.headers["location"])
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    granted = httpx.post(f"{site['idp'].issuer}/authorize", data=form | {"resident": who, "password": PASSWORD})
    assert client.get(granted.headers["location"].removeprefix(site["url"])).status_code == 303
    return client


def test_answering_a_supplement_request_and_rating(site):
    hub = site["hub"]
    lin = site["idp"].resident("linapo")
    me = resident_of(
        hub, open_resident_session(hub, provider="zlb", subject="s", id_number=lin.id_number, name=lin.name)
    )
    new = elderly_card(desk="online-zlb").model_copy(
        update={"applicant": svc.Applicant(name=lin.name, id=lin.id_number), "source_ref": "online:supplement"}
    )
    number = svc.create(hub, new, me.actor).number
    svc.transition(hub, number, "pre_review", ONLINE_STAFF)
    svc.transition(hub, number, "accept", MZJ)
    ask = svc.SupplementAsk(materials=[svc.Wanted(name="近期免冠彩色证件照", note="须白底")])
    svc.transition(hub, number, "request_supplement", MZJ, reason="证件照不符合要求，请补交。", ask=ask)
    client = signed_in(site, "linapo")
    try:
        page = client.get(f"/my/apps/{number}")
        assert page.status_code == 200 and "需要您补充或更正的内容" in page.text and "须白底" in page.text
        csrf = CSRF.search(page.text)[1]
        photo = {"file_1": ("white.jpg", b"\xff\xd8\xff\xe0" + b"\x01" * 64, "image/jpeg")}
        assert client.post(f"/my/apps/{number}/materials", files=photo).status_code == 403  # no CSRF token
        bad = client.post(
            f"/my/apps/{number}/materials",
            data={"csrf_token": csrf},
            files={"file_1": ("x.exe", b"MZ\x90", "application/octet-stream")},
        )
        assert bad.status_code == 422 and "white.jpg" not in bad.text
        done = client.post(f"/my/apps/{number}/materials", data={"csrf_token": csrf}, files=photo)
        assert done.status_code == 303, done.text
        assert 'id="attached"' in client.get(done.headers["location"]).text
        assert svc.supplement_request(svc.read(hub, number, me.actor))["complete"]
        assert client.post(f"/my/apps/{number}/resume", data={"csrf_token": csrf}).status_code == 303
        assert svc.read(hub, number, me.actor).state == "accepted"
        for action in ("start_review", "approve"):
            svc.transition(hub, number, action, MZJ)
        rated = client.post(f"/my/apps/{number}/rating", data={"csrf_token": csrf, "level": "2", "comment": "等太久"})
        assert rated.status_code == 303
        page = client.get(rated.headers["location"])
        assert "感谢您的评价" in page.text and 'id="promise"' in page.text
        again = client.post(f"/my/apps/{number}/rating", data={"csrf_token": csrf, "level": "5"})
        assert again.status_code == 422 and "已评价" in again.text
    finally:
        client.close()


def test_a_bad_id_from_the_provider_is_refused_and_opens_no_session(phone, site):
    url = site["url"]
    sign_in(phone, url, "badid")
    expect(phone.locator("#refusal")).to_contain_text("身份认证返回的身份证号无效")
    assert phone.context.cookies(url) == [] or all(c["name"] != "tbh_resident" for c in phone.context.cookies(url))
    no_sideways_scroll(phone)
    shot(phone, "residents-05-refused-390.png")
    phone.goto(f"{url}/my")
    expect(phone).to_have_url(re.compile(r"/my/login"))


def test_the_login_page_lists_every_provider_and_one_down_stops_only_itself(site):
    with httpx.Client(base_url=site["url"], follow_redirects=False) as client:
        page = client.get("/my/login")
        assert page.status_code == 200
        assert re.findall(r'id="login-(\w+)"', page.text) == ["zlb", "down"]  # hub.yaml's order
        assert "国家政务服务平台（暂不可用）" in page.text
        down = client.get("/my/login/down")
        assert down.status_code == 502 and "身份认证服务暂时无法访问" in down.text
        assert "tbh_resident_login" not in down.cookies
        assert client.get("/my/login/gov").status_code == 404
        assert client.get("/my/login/zlb").status_code == 303  # the others still sign in


def test_forged_callbacks_and_forms_without_csrf_change_nothing(site):
    url, hub, numbers = site["url"], site["hub"], site["numbers"]
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        # a callback no login of this browser waits for: refused, no session
        answer = client.get("/my/callback", params={"code": "x", "state": "y"})
        assert answer.status_code == 400 and "tbh_resident" not in answer.cookies
        # a real login, then the same callback replayed: the state cookie is spent
        start = client.get("/my/login/zlb")
        assert start.status_code == 303
        authorize = httpx.get(start.headers["location"])
        form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', authorize.text))
        granted = httpx.post(
            f"{site['idp'].issuer}/authorize", data=form | {"resident": "chenzhiqiang", "password": PASSWORD}
        )
        callback = granted.headers["location"].removeprefix(url)
        signed_in = client.get(callback)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/my"
        assert client.get(callback).status_code == 400  # replayed: the login cookie is gone
        mine = client.get("/my")
        assert mine.status_code == 200 and numbers["other"] in mine.text and numbers["own"] not in mine.text
        count = len(audit.entries(hub, limit=500))
        rated = client.post(f"/my/apps/{numbers['other']}/rating", data={"level": "5"})  # no CSRF token
        assert rated.status_code == 403
        logout = client.post("/my/logout", data={})
        assert logout.status_code == 403 and client.get("/my").status_code == 200  # still signed in
        assert len(audit.entries(hub, limit=500)) == count


def _property_licence(hub, number: str, holder: tuple[str, str]) -> None:
    from datetime import date

    from hub.storage.tables import Licence

    values = {
        "number": number,
        "code": f"code-{number}",
        "type_code": "BDCQZS",
        "type_name": "不动产权证书",
        "holder_name": holder[0],
        "holder_id": holder[1],
        "holder_id_type": "resident_id",
        "issuer": "ts-bdc",
        "issuer_name": "泰顺县不动产登记中心",
        "issued_on": date(2024, 5, 6),
        "valid_from": date(2024, 5, 6),
        "valid_until": None,
        "data": {},
        "created_at": datetime(2024, 5, 6, 9),
    }
    with hub.transaction() as session:
        session.add(Licence(**values))


def test_applying_online_with_ones_own_licence_by_reference(site):
    import html as htmllib

    hub, idp = site["hub"], site["idp"]
    chen, wang = idp.resident("chenzhiqiang"), idp.resident("wangxiaohong")
    _property_licence(hub, "BDCQZS-2024-0007", (chen.name, chen.id_number))
    _property_licence(hub, "BDCQZS-2024-0099", (wang.name, wang.id_number))  # someone else's
    client = signed_in(site, "chenzhiqiang")
    try:
        page = client.get("/my/apply/QR00702001")
        assert page.status_code == 200
        assert "BDCQZS-2024-0007" in page.text and "BDCQZS-2024-0099" not in page.text  # their own only
        (name, value) = next(
            (n, htmllib.unescape(v)) for n, v in re.findall(r'name="(licence_\d+)" value="([^"]+)"', page.text)
        )
        form = {
            "csrf_token": CSRF.search(page.text)[1],
            "source_ref": "online:property-1",
            name: value,
            "f_property_cert_no": "浙(2024)泰顺县不动产权第0000007号",
            "f_property_location": "泰顺县罗阳镇新城路8号",
            "f_property_use": "住宅",
            "f_transferee_name": wang.name,
            "f_transferee_id_number": wang.id_number,
            "f_transaction_price": "85.5",
            "f_contact_phone": chen.phone,
        }
        files = {"file_0": ("application.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")}
        done = client.post("/my/apply/QR00702001", data=form, files=files)
        assert done.status_code == 303, done.text
        number = done.headers["location"].rsplit("/", 1)[1].split("?")[0]
    finally:
        client.close()
    app = svc.read(hub, number, ONLINE_STAFF)
    assert app.applicant_id == chen.id_number and "不动产权证书" in svc.verified_materials(app)
    [ref] = next(e for e in app.events if e.action == "create").data["licences"]
    assert ref["number"] == "BDCQZS-2024-0007" and ref["source"] == "library"
    assert any(e.action == "licence_lookup" and e.role == "applicant" for e in audit.entries(hub, limit=100))
