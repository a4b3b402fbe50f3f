"""The resident's side without a login (issue 21, Deliver 9): the public lookup by 办件号 with the
applicant's name or phone — the same answer for a number nobody holds and a wrong name, throttled
per client and per number, guarded by a double-submit token; the plain-language state names; a bad
status link landing on the lookup; the promise of contact after a bad rating; the public base URL
setting every status link starts with."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub import applications as svc
from hub import ratings
from hub.context import Hub
from hub.errors import ConfigInvalid
from hub.health import check_public_url
from hub.lifecycle import STATE_ZH, State
from hub.resident_states import ALL, MILESTONE, resident_state
from hub.settings import load_settings, public_url_problem
from hub.web.app import create_app
from hub.web.applicant_status import NO_MATCH, TOO_MANY, LookupThrottle, lookup, status_link, status_view
from hub.web.security import status_key
from tests.support.samples import ELDER_ID, TELLER, elderly_card, officer
from tests.test_websec import redis_url  # noqa: F401  (a private redis-server, as the login throttle tests use)

MZJ = officer("ts-mzj")
PHONE = "13905770001"  # elderly_card()'s contact_phone
HTML = {"accept": "text/html"}


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def number(hub: Hub) -> str:
    return svc.create(hub, elderly_card(), TELLER).number


def _token(page_html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert found, page_html
    return found.group(1)


def _look(web: TestClient, number: str, who: str, **headers: str):
    form = web.get("/s", headers=HTML)
    assert form.status_code == 200
    return web.post(
        "/s",
        data={"csrf_token": _token(form.text), "number": number, "who": who},
        headers=HTML | headers,
        follow_redirects=False,
    )


# ---------------------------------------------------------------- plain words


def test_every_state_has_plain_words_without_staff_jargon():
    for state in State:
        plain = resident_state(state)
        assert plain.zh and plain.en and plain.next_zh and plain.tone in ("wait", "act", "done", "stop"), state
    for words in ALL:
        assert not re.search("出件|初审|补正|受理回执|待审查", words.zh + words.next_zh), words
    assert resident_state("issued", "approved", "窗口领取").zh == "已办结，可领取"
    assert resident_state("issued", "approved", "邮寄送达").zh == "已办结，已寄出"
    assert resident_state("supplement_requested").zh == "需要补充材料"
    assert resident_state("decided", "denied").zh == "已办结，未获批准"
    assert resident_state("decided", "approved").zh != resident_state("decided", "denied").zh
    assert set(MILESTONE) >= {"submit", "accept", "request_supplement", "issue", "deliver"}
    assert "出件" not in "".join(zh for zh, _ in MILESTONE.values())
    assert STATE_ZH["issued"] == "已出件"  # the staff keep their word; residents get theirs


# ---------------------------------------------------------------- the lookup itself


def test_lookup_by_name_or_phone_as_typed_on_a_phone(hub: Hub, number: str):
    assert lookup(hub, number, "林阿婆").number == number
    assert lookup(hub, number.lower(), " 林 阿婆 ").number == number  # lower case, spaces
    assert lookup(hub, number, PHONE).number == number
    assert lookup(hub, number, "１３９０５７７０００１").number == number  # 全角 digits
    assert lookup(hub, number, "139-0577-0001").number == number
    for wrong in ("林阿公", "13905770002", "林", "*", ELDER_ID, ""):
        assert lookup(hub, number, wrong).number is None, wrong
    missing = number[:-1] + ("9" if number[-1] != "9" else "8")
    assert lookup(hub, missing, "林阿婆").number is None
    assert lookup(hub, "'; drop table applications; --", "林阿婆").number is None


def test_no_such_number_and_wrong_name_get_the_same_answer(web: TestClient, number: str):
    missing = re.sub(r"\d+$", "999999", number)
    wrong_name, no_number = _look(web, number, "王五"), _look(web, missing, "林阿婆")
    assert wrong_name.status_code == no_number.status_code == 200
    for r in (wrong_name, no_number):
        assert NO_MATCH in r.text

    # the very same page but for the number typed back and the fresh token
    def same_page(r, typed: str) -> str:
        return r.text.replace(_token(r.text), "TOKEN").replace(typed, "NUMBER")

    assert same_page(wrong_name, number) == same_page(no_number, missing)


def test_lookup_opens_the_status_page_by_name_and_by_phone(web: TestClient, number: str, hub: Hub):
    for who in ("林阿婆", PHONE):
        r = _look(web, number, who)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"/s/{number}?k={status_key(web.app.state.secret, number)}"
        page = web.get(r.headers["location"], headers=HTML)
        assert page.status_code == 200 and "林**" in page.text and ELDER_ID not in page.text


def test_lookup_form_needs_its_double_submit_token(web: TestClient, number: str):
    web.get("/s", headers=HTML)  # the cookie, but a forged form has not the token
    r = web.post("/s", data={"csrf_token": "forged", "number": number, "who": "林阿婆"}, headers=HTML)
    assert r.status_code == 403 and "页面已过期" in r.text
    web.cookies.clear()
    r = web.post("/s", data={"csrf_token": "x", "number": number, "who": "林阿婆"}, headers=HTML)
    assert r.status_code == 403


def test_failed_lookups_are_throttled_per_client_and_per_number(hub: Hub, number: str):
    web = TestClient(create_app(hub), base_url="http://127.0.0.1")
    web.app.state.lookup_throttle = LookupThrottle(None, per_client=5, per_number=3, window=600)
    with web:
        for _ in range(3):
            assert _look(web, number, "王五").status_code == 200
        # the number is held now, even with the right name: a guesser learns nothing more
        r = _look(web, number, "林阿婆")
        assert r.status_code == 429 and TOO_MANY in r.text
        other = re.sub(r"\d+$", "888888", number)
        assert _look(web, other, "王五").status_code == 200  # the 5th attempt from this client
        assert _look(web, other, "林阿婆").status_code == 429  # the client is held too


def test_throttle_counts_each_key_apart():
    t = LookupThrottle(None, per_client=2, per_number=5, window=600)
    assert t.attempt("10.0.0.1", "XH-2026-000001")
    assert t.attempt("10.0.0.1", "XH-2026-000002")
    assert not t.attempt("10.0.0.1", "XH-2026-000003")
    assert t.attempt("10.0.0.2", "XH-2026-000001")


def test_parallel_guesses_cannot_pass_the_limit_together():
    """Counted before the lookup, in one step: twenty guesses at once get exactly the five the
    number allows (a check, then a count after each failed lookup, let them all through)."""
    t = LookupThrottle(None, per_client=1000, per_number=5, window=600)
    start = threading.Barrier(20)

    def guess(i: int) -> bool:
        start.wait()
        return t.attempt(f"10.1.0.{i}", "XH-2026-000001")

    with ThreadPoolExecutor(20) as pool:
        allowed = list(pool.map(guess, range(20)))
    assert allowed.count(True) == 5


# ---------------------------------------------------------------- links


def test_a_bad_link_lands_on_the_lookup_not_the_staff_login(web: TestClient, number: str):
    for path in (f"/s/{number}?k=0000", f"/s/{number}", "/s/NO-SUCH-1?k=abc"):
        r = web.get(path, headers=HTML, follow_redirects=False)
        assert r.status_code == 404, path
        assert "链接无效" in r.text and 'action="/s"' in r.text and "/login" not in r.text, path
    r = web.get(f"/s/{number}?k=0000", headers=HTML)
    assert f'value="{number}"' in r.text  # the number given, typed in for them
    assert web.get("/status", follow_redirects=False).headers["location"] == "/s"


def test_language_switch_keeps_the_status_key(web: TestClient, number: str):
    path = f"/s/{number}?k={status_key(web.app.state.secret, number)}"
    page = web.get(path, headers=HTML).text
    link = re.search(r'class="lang" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "k=" in link and "lang=en" in link
    english = web.get(f"/s/{number}{link}", headers=HTML)
    assert english.status_code == 200 and "Application received" in english.text


def test_public_url_is_https_except_on_loopback(monkeypatch, home: Path):
    assert public_url_problem("https://tongban.example.gov.cn") is None
    assert public_url_problem("http://127.0.0.1:8000") is None
    assert public_url_problem("http://localhost:8000") is None
    for bad in ("http://tongban.example.gov.cn", "tongban.example.gov.cn", "https://x.cn/?a=1", "ftp://x.cn"):
        assert public_url_problem(bad), bad
    text = (home / "hub.yaml").read_text()
    (home / "hub.yaml").write_text(text + "\npublic_base_url: https://tongban.example.gov.cn/\n")
    assert load_settings(home).public_url == "https://tongban.example.gov.cn"
    monkeypatch.setenv("HUB_PUBLIC_URL", "https://qr.example.gov.cn")
    assert load_settings(home).public_url == "https://qr.example.gov.cn"
    monkeypatch.setenv("HUB_PUBLIC_URL", "http://qr.example.gov.cn")
    with pytest.raises(ConfigInvalid, match="HUB_PUBLIC_URL"):
        load_settings(home)
    monkeypatch.delenv("HUB_PUBLIC_URL")
    (home / "hub.yaml").write_text(text + "\npublic_url: http://tongban.example.gov.cn\n")
    with pytest.raises(ConfigInvalid, match="https"):
        load_settings(home)


def test_receipt_qr_link_starts_with_the_public_url(web: TestClient, hub: Hub, number: str):
    hub.settings.public_url = "https://tongban.example.gov.cn"
    key = status_key(web.app.state.secret, number)
    assert status_link(hub, web.app.state.secret, number, "http://10.0.0.5/") == (
        f"https://tongban.example.gov.cn/s/{number}?k={key}"
    )
    hub.settings.public_url = None
    assert status_link(hub, web.app.state.secret, number, "http://127.0.0.1/").startswith("http://127.0.0.1/s/")


# ---------------------------------------------------------------- rating


def test_a_bad_rating_is_promised_contact_within_the_configured_days(web: TestClient, hub: Hub, number: str):
    hub.settings.follow_up_workdays = 5
    for actor, action in [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")]:
        svc.transition(hub, number, action, actor)
    path = f"/s/{number}?k={status_key(web.app.state.secret, number)}"
    page = web.get(path, headers=HTML)
    assert "5 个工作日内联系您" in page.text  # said before choosing, too
    r = web.post(f"/s/{number}/rating?k={path.split('k=')[1]}", data={"level": "1"}, headers=HTML)
    assert r.status_code == 200 and "感谢您的评价" in r.text
    rating = ratings.rating_of(hub, number, svc.SYSTEM)
    # Monday 21 Sep 2026 + 5 working days: 22-24, (25 Sep 中秋 off) 28, 29 Sep
    assert rating.follow_up_due.isoformat() == "2026-09-29"
    assert "将在 5 个工作日内（2026-09-29 前）联系您" in r.text
    event = svc.read(hub, number, svc.SYSTEM).events[-1]
    assert (event.action, event.data["contact_workdays"], event.data["follow_up_due"]) == ("rate", 5, "2026-09-29")
    again = web.post(f"/s/{number}/rating?k={path.split('k=')[1]}", data={"level": "5"}, headers=HTML)
    assert again.status_code == 422 and "已评价" in again.text and "/login" not in again.text


def test_doctor_warns_of_an_unset_public_url_on_postgresql(home: Path):
    settings = load_settings(home)
    quiet = check_public_url(settings, "sqlite:///hub.db")
    warned = check_public_url(settings, "postgresql://hub@db/hub")
    assert quiet.ok and warned.ok  # a warning, not a failure: the hub works, its QR codes may not
    assert "warning" not in quiet.detail and "warning" in warned.detail and "public_url" in warned.detail
    done = check_public_url(
        settings.model_copy(update={"public_url": "https://tongban.example.gov.cn"}), "postgresql://"
    )
    assert done.ok and "warning" not in done.detail and "example" not in done.detail  # no URL in a check's detail


def test_while_papers_are_awaited_the_view_has_the_request_and_the_pause(hub: Hub, number: str):
    svc.transition(hub, number, "pre_review", TELLER)
    svc.transition(hub, number, "accept", MZJ)
    assert svc.supplement_request(svc.read(hub, number, svc.SYSTEM)) is None
    reason = "照片背景不符，请补交白底照片（6个月内）。"
    svc.transition(hub, number, "request_supplement", MZJ, reason=reason)
    app = svc.read(hub, number, svc.SYSTEM)
    view = status_view(hub, app)
    assert (view["state_zh"], view["tone"]) == ("需要补充材料", "act")
    assert svc.supplement_request(app)["reason"] == reason  # 全角 punctuation as written
    assert view["paused_since"] == "2026-09-21" and view["place"] == "下洪社区农商银行网点"
    assert [t["label"] for t in view["timeline"]][-1] == "通知补充材料"


def test_lookup_throttle_is_shared_through_redis_apart_from_logins(redis_url: str):  # noqa: F811
    import redis

    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter("tbh-lookup*"):  # what an earlier run left
        r.delete(key)
    # two API processes of one deployment: each its own throttle, one Redis
    a, b = (LookupThrottle(redis_url, per_client=3, per_number=50) for _ in range(2))
    assert a.attempt("10.9.0.1", "XH-2026-000001")
    assert b.attempt("10.9.0.1", "XH-2026-000002")
    assert a.attempt("10.9.0.1", "XH-2026-000003")
    assert not a.attempt("10.9.0.1", "XH-2026-000004") and not b.attempt("10.9.0.1", "XH-2026-000005")
    keys = {k.decode() for k in r.scan_iter("tbh-*")}
    assert keys and all(k.startswith(("tbh-lookup-ip", "tbh-lookup-no")) for k in keys), keys
    for key in keys:
        r.delete(key)
    down = LookupThrottle("redis://127.0.0.1:1/0", per_client=1, per_number=5)  # Redis down: counted here
    assert down.attempt("10.9.0.2", "XH-2026-000001")
    assert not down.attempt("10.9.0.2", "XH-2026-000009")
