"""跨省通办 as people see it: two real hubs (泰顺 and the sandbox 福鼎), each serving its web app
on a loopback port with its own database, paired as two authorities would pair them. A teller
finds and takes a 福鼎 item like a local one, labelled with the deciding region; the receipt says
where it was collected and where it is decided; once the application crossed, the detail page
shows 福鼎's number and the timeline says so in Chinese, and 福鼎's officer sees the row marked
跨省 with the collecting desk. An item 福鼎 withdrew is refused at intake with the core's reason.
Ops see each partner (reachability, backlog, dead letters, item list) and the message log, with
whatever a partner supplied escaped; /metrics carries the per-partner figures."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from hub.context import Hub
from hub.exchange import catalogue, log
from hub.exchange.send import send
from hub.home import write_home
from hub.lifecycle import Role
from hub.partners import keys, load_partners
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import PartnerCatalogue, PartnerLink
from hub.tokens import create_token
from hub.web.app import create_app
from plugins.sandbox.partner_hub import pair, write_partner_home
from tests.conftest import JPEG, PDF, make_id
from tests.support.webserver import serving

FAST = {"backoff_seconds": 0.5, "max_backoff_seconds": 2}
SCOPES = ["applications:read", "applications:write", "reports:read", "ops"]
ITEM = "fuding:GG00501000"


@dataclass
class Pair:
    a: Hub  # 泰顺: the sample home, collecting
    b: Hub  # 福鼎: the sandbox partner home, deciding
    url_a: str
    url_b: str
    home_a: Path
    home_b: Path

    def repair(self, **kwargs) -> None:
        """Write both partner files again (keys kept) and have both hubs read them."""
        pair(self.home_a, self.url_a, self.home_b, self.url_b, limits=FAST, **kwargs)
        for hub in (self.a, self.b):
            reload_partners(hub)


def reload_partners(hub: Hub) -> None:
    """What a restart does with partners/*.yaml (the hubs here serve from this process)."""
    hub.partners = load_partners(hub.settings.partners_dir, home=hub.settings.home)
    hub._lists_seen = None
    hub.partner_lists_current(force=True)


@pytest.fixture
def hubs(tmp_path: Path, db_url: str) -> Iterator[Pair]:
    home_a = write_home(tmp_path / "taishun")
    home_b = write_partner_home(tmp_path / "fuding")
    url_db_b = f"sqlite:///{tmp_path / 'fuding.db'}"
    engine = make_engine(url_db_b)
    migrate.upgrade(engine)
    engine.dispose()
    # the ports are known once serving: pair now (keys, files), then again with the real URLs
    pair(home_a, "http://127.0.0.1:9", home_b, "http://127.0.0.1:9", limits=FAST)
    a = Hub.open(home_a, database_url=db_url)  # the real clock: signed messages carry their time
    b = Hub.open(home_b, database_url=url_db_b)
    try:
        with serving(a) as url_a, serving(b) as url_b:
            both = Pair(a, b, url_a, url_b, home_a, home_b)
            both.repair()
            yield both
    finally:
        a.close()
        b.close()


def client(hub: Hub) -> TestClient:
    return TestClient(create_app(hub), base_url="http://127.0.0.1", client=("127.0.0.1", 50000))


def bearer(hub: Hub, name: str, role: Role, desk: str | None = None, department: str | None = None) -> dict:
    secret, _ = create_token(hub, name, role=role, desk=desk, department=department, scopes=SCOPES, created_by="test")
    return {"authorization": f"Bearer {secret}", "accept": "text/html"}


def synced(hubs: Pair) -> None:
    catalogue.sync(hubs.a, hubs.a.partners.by_name["fuding"])


def take(web: TestClient, headers: dict, subject: str = ITEM, seq: str = "201"):
    data = {
        "subject": subject,
        "applicant": {"name": "林阿婆", "id": make_id("350982", seq=seq)},
        "form": {"delivery_method": "代收窗口领取", "contact_phone": "13905770001"},
        "materials": ["居民身份证", "近期免冠彩色证件照"],
        "checklist": ["identity", "materials", "signature", "informed"],
    }
    files = [("files", ("id.pdf", PDF, "application/pdf")), ("files", ("photo.jpg", JPEG, "image/jpeg"))]
    return web.post(
        "/api/v1/applications",
        data={"data": json.dumps(data, ensure_ascii=False)},
        files=files,
        headers={"authorization": headers["authorization"]},
    )


def text_of(html: str) -> str:
    """The page's text, tags dropped and spaces squeezed (what a reader sees)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ---------------------------------------------------------------- the teller, the officer


def test_partner_items_are_found_labelled_and_taken_like_local_ones(hubs: Pair):
    synced(hubs)
    teller = bearer(hubs.a, "teller", Role.teller, desk="bank-xiahong")
    with client(hubs.a) as web:
        page = web.get("/intake", params={"q": "福鼎"}, headers=teller)
        assert page.status_code == 200
        found = text_of(page.text)
        assert ITEM in page.text and "fuding:GG00201000" in page.text
        assert "福鼎市 · 异地代收代办" in found
        assert "福鼎市 · 异地代收代办、多地联办" in found
        assert "老年人优待证办理" in text_of(web.get("/intake", params={"q": "lnrydz"}, headers=teller).text)
        assert ITEM in {s["code"] for s in web.get("/api/v1/catalog/items?q=福鼎", headers=teller).json()}
        clerk = bearer(hubs.a, "clerk", Role.clerk, desk="hall-county")  # 多地联办 bundles are taken in the hall
        joint = text_of(web.get("/intake", params={"q": "跨省养老"}, headers=clerk).text)
        assert "YJS-KSYL" in joint and "一件事 福鼎市 · 多地联办" in joint
        both = web.get("/intake", params={"q": "优待证"}, headers=teller).text
        ours, theirs = (
            re.search(rf'<li><a class="subject" href="/intake/{c}">.*?</li>', both).group(0)
            for c in ("GG00501000", ITEM)
        )
        assert "tag region" not in ours and "福鼎市 · 异地代收代办" in text_of(theirs)  # ours carries no badge
        form = web.get(f"/intake/{ITEM}", headers=teller)
        assert form.status_code == 200 and "由福鼎市审批" in text_of(form.text)

        made = take(web, teller)
        assert made.status_code == 201, made.text
        number = made.json()["number"]
        receipt = text_of(web.get(f"/applications/{number}/receipt", headers=teller).text)
        assert "收件地 泰顺县 · 下洪社区农商银行网点" in receipt
        assert "审批地 福鼎市（跨省通办）" in receipt
        assert "办理时限按审批地（福鼎市）的工作日计算" in receipt
        assert "按本地工作日历估算" in receipt
        before = text_of(web.get(f"/applications/{number}", headers=teller).text)
        assert "审批地 · 福鼎市" in before and "尚未送达审批地" in before

        assert send(hubs.a).delivered == 1
        detail = web.get(f"/applications/{number}", headers=teller)
        shown = text_of(detail.text)
        theirs = re.search(r"对方办件号：\s*(\S+)", shown).group(1)
        assert theirs != number and "对方状态：已初审" in shown  # 福鼎's number and state, from its acknowledgement
        assert "跨省通办：审批地已接收申请" in shown
        assert "partner_received" not in shown  # the event has its Chinese label
        api = web.get(f"/api/v1/applications/{number}", headers={"authorization": teller["authorization"]}).json()
        (part,) = api["parts"]
        assert part["partner"]["remote_number"] == theirs and part["partner"]["region"] == "福鼎市"

    officer = bearer(hubs.b, "fd-officer", Role.officer, department="fd-mzj")
    with client(hubs.b) as web_b:
        inbox = web_b.get("/inbox", headers=officer)
        assert inbox.status_code == 200
        assert "跨省 · 泰顺县 下洪社区农商银行网点" in text_of(inbox.text)
        row = web_b.get(f"/applications/{theirs}", headers=officer)
        seen = text_of(row.text)
        assert "跨省 · 泰顺县" in seen and "浙江省温州市泰顺县" in seen and number in seen
        assert "跨省通办：审批地已接收申请" in seen
        origin = web_b.get(f"/api/v1/applications/{theirs}", headers={"authorization": officer["authorization"]})
        assert origin.json()["origin"] == {
            "partner": "taishun",
            "region": "泰顺县",
            "region_full": "浙江省温州市泰顺县",
            "desk": "下洪社区农商银行网点",
            "number": number,
            "label": "跨省 · 泰顺县 下洪社区农商银行网点",
        }
        accepted = web_b.post(
            f"/api/v1/applications/{theirs}/actions",
            json={"action": "accept"},
            headers={"authorization": officer["authorization"]},
        )
        assert accepted.status_code == 200, accepted.text
    assert send(hubs.b).delivered >= 1
    with client(hubs.a) as web:
        now = text_of(web.get(f"/applications/{number}", headers=teller).text)
        assert "对方状态：已受理" in now
        # what a partner answers is data, never markup (its number and state come from its acks)
        with hubs.a.transaction() as session:
            session.execute(update(PartnerLink).values(remote_number="<b>N</b>", remote_state="<script>s()</script>"))
        html = web.get(f"/applications/{number}", headers=teller).text
        assert "<b>N</b>" not in html and "<script>s()" not in html
        assert "&lt;b&gt;N&lt;/b&gt;" in html and "&lt;script&gt;s()&lt;/script&gt;" in html


def test_an_item_the_partner_withdrew_is_refused_at_intake_with_the_reason(hubs: Pair):
    synced(hubs)
    teller = bearer(hubs.a, "teller", Role.teller, desk="bank-xiahong")
    ops = bearer(hubs.a, "ops", Role.ops)
    with client(hubs.a) as web:
        earlier = take(web, teller, seq="203").json()["number"]  # taken while 福鼎 still listed it
    # 福鼎 stops accepting 老年人优待证 from 泰顺; our copy of its list is older than allowed
    hubs.repair(b_accepts=[{"item": "GG00201000", "modes": ["proxy", "joint"]}])
    assert send(hubs.a).dead == 1  # 福鼎 refuses the one taken before: the desk sees why
    with client(hubs.a) as web:
        shown = text_of(web.get(f"/applications/{earlier}", headers=teller).text)
        assert "跨省通办：审批地拒收（未送达）" in shown and "partner_refused" not in shown
        assert "本地不接受泰顺县代收事项 GG00501000" in shown.split("审批地拒收", 1)[1]  # 福鼎's reason, as text
        ops_page = web.get("/ops/partners", headers=ops).text
        assert re.search(r'data-partner="fuding">.*?<td><span class="late">1</span></td>', ops_page, re.S)
        (dead,) = re.findall(r'<tr class="message">(.*?)</tr>', ops_page, re.S)  # dead letters are listed first
        assert earlier in dead and "application" in dead and "本地不接受泰顺县代收事项 GG00501000" in text_of(dead)
    old = hubs.a.now().replace(tzinfo=None) - timedelta(seconds=hubs.a.settings.exchange.catalogue_max_age_seconds + 60)
    with hubs.a.transaction() as session:
        session.execute(update(PartnerCatalogue).where(PartnerCatalogue.partner == "fuding").values(fetched_at=old))
    hubs.a.partner_lists_current(force=True)
    assert ITEM in hubs.a.catalog.items  # still in the old list: intake must look again first
    with client(hubs.a) as web:
        refused = take(web, teller, seq="202")
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == "subject" and "福鼎市当前不受理事项 GG00501000" in error["zh"]
        page = web.get(f"/intake/{ITEM}", headers=teller)
        assert page.status_code == 404 and "福鼎市当前不受理事项 GG00501000" in page.text
        assert ITEM not in web.get("/intake", params={"q": "福鼎"}, headers=teller).text
    assert ITEM not in hubs.a.catalog.items


def test_a_list_synced_by_another_process_shows_in_the_search(hubs: Pair, db_url: str):
    teller = bearer(hubs.a, "teller", Role.teller, desk="bank-xiahong")
    with client(hubs.a) as web:
        assert ITEM not in web.get("/intake", params={"q": "福鼎"}, headers=teller).text
        other = Hub.open(hubs.home_a, database_url=db_url)  # `hub partners sync-catalogue`, say
        try:
            catalogue.sync(other, other.partners.by_name["fuding"])
        finally:
            other.close()
        hubs.a._lists_checked = 0.0  # the serving process looks at most every few seconds
        assert ITEM in web.get("/intake", params={"q": "福鼎"}, headers=teller).text


# ---------------------------------------------------------------- ops: the partners page, the log, metrics


def write_untrusted_partner(home: Path) -> None:
    """A partner whose name, as it gave it, is markup: it must be shown as text."""
    key = keys.public_b64(keys.load_private_key(home / "other-partner.pem", create=True).public_key())
    (home / "partners" / "evil.yaml").write_text(
        "name: '<script>alert(\"name\")</script>'\n"
        "region: '<b>bold</b>'\n"
        "hub_id: evil\n"
        "url: http://127.0.0.1:9\n"
        "divisions: ['330326']\n"
        f"keys: [{{public_key: '{key}'}}]\n",
        encoding="utf-8",
    )
    (home / "partners" / "broken.yaml").write_text("name: broken\nurl: '<img src=x onerror=alert(1)>'\n")


def test_ops_see_each_partner_and_the_message_log_escaped(hubs: Pair):
    synced(hubs)
    teller = bearer(hubs.a, "teller", Role.teller, desk="bank-xiahong")
    ops = bearer(hubs.a, "ops", Role.ops)
    write_untrusted_partner(hubs.home_a)
    reload_partners(hubs.a)
    with hubs.a.transaction() as session:
        log.append(
            session,
            hubs.a.now(),
            log.Entry(
                direction="in",
                partner="evil",
                body=b'{"kind": "x"}',
                signature=None,
                verdict="refused:unknown_key",
                kind="<img src=x onerror=f()>",  # 24 characters: the log keeps no more
            ),
        )
    with client(hubs.a) as web:
        assert take(web, teller).status_code == 201  # one message owed to 福鼎
        assert 'href="/ops/partners"' in web.get("/ops", headers=ops).text
        assert web.get("/ops/partners", headers=teller).status_code == 403
        assert web.get("/ops/partners/log", headers=teller).status_code == 403
        page = web.get("/ops/partners", headers=ops)
        assert page.status_code == 200
        html = page.text
        assert "<script>alert" not in html and "<b>bold</b>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
        rows = {
            m.group(1): text_of(m.group(2))
            for m in re.finditer(r'<tr class="partner" data-partner="([^"]+)">(.*?)</tr>', html, re.S)
        }
        assert set(rows) == {"broken", "evil", "fuding"}
        fuding = rows["fuding"]
        assert "福鼎市" in fuding and "福建省宁德市福鼎市" in fuding and hubs.url_b in fuding
        with hubs.a.sessions() as session:
            stored = session.get(PartnerCatalogue, "fuding").fetched_at  # naive UTC
        beijing = stored.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        assert "正常" in fuding and f"同步于 {beijing}" in fuding  # shown in Beijing time
        # 11 columns before the log link: backlog 1, dead 0, delivered 0
        cells = [
            text_of(c).strip() for c in re.findall(r"<td>(.*?)</td>", html.split('data-partner="fuding"')[1], re.S)
        ]
        assert cells[7:10] == ["1", "0", "0"], cells
        assert "配置有误" in rows["broken"] and "尚未联通" in rows["evil"]

        assert send(hubs.a).delivered == 1
        after = web.get("/ops/partners", headers=ops).text
        cells = [
            text_of(c).strip() for c in re.findall(r"<td>(.*?)</td>", after.split('data-partner="fuding"')[1], re.S)
        ]
        assert cells[7:10] == ["0", "0", "1"], cells

        logged = web.get("/ops/partners/log", headers=ops)
        assert logged.status_code == 200
        assert "<img src=x" not in logged.text and "&lt;img src=x onerror=f()&gt;" in logged.text
        only = web.get("/ops/partners/log", params={"partner": "fuding"}, headers=ops)
        entries = re.findall(r"<tr><td>(\d+)</td>", only.text)
        assert entries and "unknown_key" not in only.text
        # kinds and verdicts as Chinese labels (the codes with ?lang=en)
        assert "请求事项清单" in only.text and "<td>申请</td>" in only.text and "catalogue_request" not in only.text
        english_log = web.get("/ops/partners/log", params={"partner": "fuding", "lang": "en"}, headers=ops).text
        assert "item list request" in english_log
        web.get("/ops/partners/log?lang=zh", headers=ops)  # back to Chinese for the rest
        assert "共 " in text_of(only.text)
        english = web.get("/ops/partners?lang=en", headers=ops).text
        assert "Partner hubs" in english and "Last signed answer" in english

        assert "天未同步" not in text_of(after)
        long_ago = hubs.a.now().replace(tzinfo=None) - timedelta(
            days=hubs.a.settings.exchange.catalogue_stale_days, hours=1
        )
        with hubs.a.transaction() as session:
            session.execute(update(PartnerCatalogue).values(fetched_at=long_ago))
        stale = web.get("/ops/partners?lang=zh", headers=ops).text  # the English choice is remembered: back
        assert "已超过 7 天未同步，对方事项暂停收件" in text_of(stale)


def scrape(web: TestClient) -> dict:
    response = web.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_per_partner(hubs: Pair):
    synced(hubs)
    teller = bearer(hubs.a, "teller", Role.teller, desk="bank-xiahong")
    (hubs.home_a / "partners" / "broken.yaml").write_text("name: broken\n", encoding="utf-8")
    reload_partners(hubs.a)
    with client(hubs.a) as web:
        assert take(web, teller).status_code == 201
        got = scrape(web)
        fuding = (("partner", "fuding"),)
        assert got[("hub_partner_backlog", fuding)] == 1
        assert got[("hub_partner_dead_letters", fuding)] == 0
        assert got[("hub_partner_oldest_pending_seconds", fuding)] >= 0
        assert got[("hub_partner_configured", (("partner", "fuding"), ("usable", "true")))] == 1
        assert got[("hub_partner_configured", (("partner", "broken"), ("usable", "false")))] == 1
        assert got[("hub_partner_backlog", (("partner", "broken"),))] == 0
        answered = got[("hub_partner_last_signed_answer_timestamp_seconds", fuding)]
        assert abs(answered - hubs.a.now().timestamp()) < 600  # the item list's signed answer
        assert ("hub_partner_catalogue_fetched_timestamp_seconds", fuding) in got
        assert send(hubs.a).delivered == 1
        got = scrape(web)
        assert got[("hub_partner_backlog", fuding)] == 0
        assert got[("hub_partner_last_message_timestamp_seconds", (("direction", "out"), ("partner", "fuding")))] > 0
        assert got[("hub_partner_last_signed_answer_timestamp_seconds", fuding)] >= answered
