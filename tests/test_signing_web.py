"""Remote signing's routes, in-process: who may see and do what. Only the application's desk
and the part's department take part; anyone else is told the session does not exist;
supervisors and ops may look but see no ID numbers and touch nothing; cookie-borne writes need
the CSRF token; a step out of turn is refused before anything is captured for it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hub import applications as svc
from hub import signing
from hub.context import Hub
from hub.hookspecs import hookimpl
from hub.lifecycle import Role
from hub.tokens import create_token
from hub.users import add_user
from hub.web.app import create_app
from tests.support.samples import SH_CLERK, fund_retire, officer

GJJ = officer("ts-gjj", "公积金审批员")
WHO = {
    "desk": (Role.enclave_clerk, "enclave-shanghai", None),
    "officer": (Role.officer, None, "ts-gjj"),
    "other_desk": (Role.teller, "bank-xiahong", None),
    "other_officer": (Role.officer, None, "ts-mzj"),
    "supervisor": (Role.supervisor, None, None),
}


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def heads(hub: Hub) -> dict[str, dict[str, str]]:
    out = {}
    for name, (role, desk, dept) in WHO.items():
        scopes = ["applications:read"] + ([] if role is Role.supervisor else ["applications:write"])
        secret, _ = create_token(hub, name, role=role, desk=desk, department=dept, scopes=scopes, created_by="t")
        out[name] = {"authorization": f"Bearer {secret}"}
    return out


@pytest.fixture
def session_id(hub: Hub, web: TestClient, heads) -> str:
    number = svc.create(hub, fund_retire(), SH_CLERK).number
    svc.transition(hub, number, "pre_review", SH_CLERK)
    svc.transition(hub, number, "accept", GJJ)
    r = web.post(f"/api/v1/applications/{number}/signing", json={}, headers=heads["officer"])
    assert r.status_code == 201, r.text
    assert web.post(f"/api/v1/applications/{number}/signing", json={}, headers=heads["desk"]).status_code == 403
    return r.json()["id"]


def test_outsiders_are_told_nothing_and_observers_touch_nothing(web: TestClient, heads, session_id: str, hub: Hub):
    base = f"/api/v1/signing/{session_id}"
    for outsider in ("other_desk", "other_officer"):
        assert web.get(base, headers=heads[outsider]).status_code == 404
        assert web.post(f"{base}/offer", json={"sdp": "v=0"}, headers=heads[outsider]).status_code == 404
        assert web.post(f"{base}/steps/abort", json={"reason": "x"}, headers=heads[outsider]).status_code == 404
    assert web.get(base, headers=heads["supervisor"]).json()["role"] == "observer"
    assert web.post(f"{base}/steps/abort", json={"reason": "x"}, headers=heads["supervisor"]).status_code == 403
    # the officer shows the read-back: the desk sees it, with the full ID number; the supervisor does not
    signing.system_step(hub, session_id, "preflight_passed", {}, ready=True)
    signing.advance(hub, session_id, SH_CLERK, "consent")
    signing.advance(hub, session_id, GJJ, "identity", {"face_matches_photo": True, "id_details_read_aloud": True})
    snapshot = {"applicant": {"name": "吴建国", "id": "330329196610080355"}}
    signing.advance(hub, session_id, GJJ, "readback_show", {"snapshot": snapshot})
    assert web.get(base, headers=heads["desk"]).json()["readback"]["applicant"]["id"] == "330329196610080355"
    assert "readback" not in web.get(base, headers=heads["supervisor"]).json()


def test_a_step_out_of_turn_captures_nothing(web: TestClient, heads, session_id: str, hub: Hub):
    base = f"/api/v1/signing/{session_id}/steps"
    signing.system_step(hub, session_id, "preflight_passed", {}, ready=True)
    signing.advance(hub, session_id, SH_CLERK, "consent")
    r = web.post(
        f"{base}/identity", json={"face_matches_photo": True, "id_details_read_aloud": True}, headers=heads["desk"]
    )
    assert r.status_code == 403, r.text
    assert web.post(f"{base}/signature", json={"png": "AAAA"}, headers=heads["desk"]).status_code == 409
    assert not (signing.recordings_root(hub) / session_id / "stills").exists()
    r = web.post(
        f"{base}/identity", json={"face_matches_photo": True, "id_details_read_aloud": True}, headers=heads["officer"]
    )
    assert r.status_code == 409 and "media" in r.text  # in turn, but no call is running in this process


def test_cookie_writes_need_the_csrf_token(web: TestClient, hub: Hub, session_id: str):
    add_user(hub, "lina", "shanghai-飞地-2026", display_name="李娜", role=Role.enclave_clerk, desk="enclave-shanghai")
    page = web.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    web.post("/login", data={"username": "lina", "password": "shanghai-飞地-2026", "csrf_token": token})
    r = web.post(f"/api/v1/signing/{session_id}/steps/abort", json={"reason": "伪造的请求"})
    assert r.status_code == 403 and "CSRF" in r.text
    page = web.get(f"/signing/{session_id}", headers={"accept": "text/html"})
    assert page.status_code == 200 and "远程面签" in page.text
    csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)
    r = web.post(
        f"/api/v1/signing/{session_id}/steps/abort", json={"reason": "申请人改日再来"}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 200 and r.json()["state"] == "aborted"


def test_the_public_key_is_published(web: TestClient):
    r = web.get("/api/v1/signing/public-key")
    assert r.status_code == 200 and r.text.startswith("-----BEGIN PUBLIC KEY-----")


def test_the_desk_is_alerted_and_no_one_else(web: TestClient, heads, session_id: str, hub: Hub):
    """`GET /api/v1/signing/alerts`: the open sessions for the caller's desk's applications (what
    the desk's pages poll); another desk, an officer and a supervisor get none; once the session
    ends it is gone."""
    r = web.get("/api/v1/signing/alerts", headers=heads["desk"])
    assert r.status_code == 200, r.text
    [alert] = r.json()
    assert alert["session"] == session_id and alert["page"] == f"/signing/{session_id}"
    assert alert["title"] == "住房公积金提取（退休提取）" and alert["application"].startswith("330329-")
    for other in ("other_desk", "officer", "other_officer", "supervisor"):
        assert web.get("/api/v1/signing/alerts", headers=heads[other]).json() == [], other
    r = web.post(f"/api/v1/signing/{session_id}/steps/abort", json={"reason": "申请人未到场"}, headers=heads["officer"])
    assert r.status_code == 200, r.text
    assert web.get("/api/v1/signing/alerts", headers=heads["desk"]).json() == []


def test_the_officer_sees_the_id_details_beside_the_video(web: TestClient, heads, session_id: str, hub: Hub):
    """The officer's page shows the applicant's name and masked ID number with their source: the
    desk's ID-card reader when a plugin answers `read_id_card`, else the desk's entry."""
    page = web.get(f"/signing/{session_id}", headers=heads["officer"] | {"accept": "text/html"}).text
    card = page.split('id="id-card"', 1)[1].split("</aside>", 1)[0]
    assert "吴建国" in card and "窗口录入的申请人信息（未经核验）" in card
    assert re.search(r"3303\*{10}\d{3}[\dX]", card) and not re.search(r"\d{18}", card)  # masked
    assert "查看身份证件扫描件" in card  # the desk's ID scan is a PDF here: a link, not a photo
    desk_page = web.get(f"/signing/{session_id}", headers=heads["desk"] | {"accept": "text/html"}).text
    assert 'id="id-card"' not in desk_page

    class Reader:
        @hookimpl
        def read_id_card(self, desk):
            return {"name": "吴建国", "id_number": "330329196610080355", "address": "浙江省泰顺县罗阳镇"}

    hub.plugins.pm.register(Reader(), name="test-id-reader")
    try:
        card = web.get(f"/signing/{session_id}", headers=heads["officer"] | {"accept": "text/html"}).text
        card = card.split('id="id-card"', 1)[1].split("</aside>", 1)[0]
        assert "窗口身份证读卡器" in card and "浙江省泰顺县罗阳镇" in card and "330329196610080355" not in card
    finally:
        hub.plugins.pm.unregister(name="test-id-reader")


def test_what_beside_the_video_never_shows_an_id_number_in_full():
    from video.web import VERIFIED_FIELDS, _shown

    assert "196610080" not in _shown("330329196610080355")
    assert all("\u4e00" <= zh[0] <= "\u9fff" for _, zh, _ in VERIFIED_FIELDS)  # labels people read
