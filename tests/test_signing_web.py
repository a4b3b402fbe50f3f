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
