"""The offline kit's devices and sync (hub.kit, /api/v1/kit/…) on SQLite and PostgreSQL: enrolment
by a logged-in agent, the catalogue bundle for the agent's desk, each record received exactly once
(the same record again gets the same number; a record id reused with other content is a
conflict; a refusal leaves nothing behind and the fixed record goes through under the same id;
a crash between receiving and recording is answered from the application made), the request's
bounds, and revocation: a revoked device's sync is refused with 401 `device_revoked`."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub import users
from hub.applications.models import Actor
from hub.cli import app as cli
from hub.context import Hub
from hub.errors import NotFound
from hub.kit import devices
from hub.kit.bundle import items_for
from hub.kit.sync import MAX_RECORDS, sync
from hub.lifecycle import Role
from hub.storage.tables import AgentProfile, Application, KitRecord, User, naive_utc
from hub.web.app import create_app
from tests.conftest import JPEG, make_id

PASSWORD = "dongxi-代办-2026"
AGENT_ID = make_id("330329", date(1985, 6, 1), "021")
ELDER = make_id("330329", date(1950, 3, 15), "021")
ITEM = "GG00501000"  # 老年人优待证办理: delegated to the township channel
OPS = Actor(name="运维李工", role=Role.ops)
# a 1×1 PNG: what a kit's signature canvas exports
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def add_agent(
    hub: Hub, username: str = "zhouli", name: str = "周丽", desk: str = "township-dongxi", id_number: str = AGENT_ID
) -> Actor:
    """An agent who logs in (role agent, home desk) and is on the roster."""
    users.add_user(hub, username, PASSWORD, display_name=name, role=Role.agent, desk=desk)
    with hub.transaction() as session:
        uid = session.scalar(select(User.id).where(User.username == username))
        session.add(
            AgentProfile(
                user_id=uid,
                name=name,
                id_number=id_number,
                phone="13705770188",
                desks=[desk],
                townships=["330329205"],
                active=True,
                created_at=naive_utc(hub.now()),
            )
        )
    return Actor(name=name, role=Role.agent, desk=desk)


def record(**changes) -> dict:
    rec = {
        "id": str(uuid.uuid4()),
        "item": ITEM,
        "applicant": {"type": "person", "name": "林阿婆", "id": ELDER},
        "form": {"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        "photos": [
            {"name": "居民身份证", "filename": "id.jpg", "content_b64": base64.b64encode(JPEG).decode()},
            {"name": "近期免冠彩色证件照", "filename": "photo.jpg", "content_b64": base64.b64encode(JPEG).decode()},
        ],
        "signature_b64": base64.b64encode(PNG).decode(),
        "taken_at": "2026-09-21T09:30:00+08:00",
    }
    rec.update(changes)
    return rec


@pytest.fixture
def kit(hub: Hub) -> Iterator[tuple[Hub, devices.DeviceAuth, str]]:
    actor = add_agent(hub)
    _device, token = devices.enrol(hub, actor, "zhouli", "东溪乡平板1号")
    yield hub, devices.authenticate(hub, token), token


def _apps(hub: Hub) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(Application))


def test_bundle_offers_the_items_of_the_home_desks_channel(kit) -> None:
    hub, auth, _ = kit
    codes = {i.code for i in items_for(hub, auth.desk)}
    assert ITEM in codes
    assert all("township" in hub.catalog.items[c].channels for c in codes)
    assert {i.code for i in hub.catalog.items.values()} - codes  # some items are not for the door
    assert auth.agent.name == "周丽" and auth.agent.id_number == AGENT_ID and auth.desk == "township-dongxi"


def test_a_record_is_received_once_and_answered_the_same_again(kit) -> None:
    hub, auth, _ = kit
    rec = record()
    [first] = sync(hub, auth, [rec])
    assert first.status == "accepted" and first.number and not first.again
    [again] = sync(hub, auth, [rec])
    assert (again.status, again.number, again.again) == ("accepted", first.number, True)
    assert _apps(hub) == 1
    with hub.sessions() as session:
        app = session.scalar(select(Application).where(Application.number == first.number))
        assert app.source_ref == rec["id"] and app.desk_code == "township-dongxi"
        assert app.agent_name == "周丽" and app.agent_id == AGENT_ID
        assert {m.name for m in app.materials} == {"居民身份证", "近期免冠彩色证件照"}
        row = session.scalar(select(KitRecord).where(KitRecord.record_id == rec["id"]))
        assert row.application_number == first.number and row.signature_sha256
        assert hub.store.path_of(row.signature_sha256).read_bytes() == PNG


def test_a_record_id_reused_with_other_content_is_a_conflict(kit) -> None:
    hub, auth, _ = kit
    rec = record()
    [first] = sync(hub, auth, [rec])
    [clash] = sync(hub, auth, [rec | {"form": {"delivery_method": "窗口领取", "contact_phone": "13905770002"}}])
    assert clash.status == "conflict" and clash.number == first.number
    assert clash.errors[0]["field"] == "id" and clash.errors[0]["zh"] and clash.errors[0]["en"]
    assert _apps(hub) == 1


def test_a_refused_record_leaves_nothing_and_goes_through_when_fixed(kit) -> None:
    hub, auth, _ = kit
    bad = record(form={"delivery_method": "邮寄送达", "contact_phone": "1390577"})
    [refused] = sync(hub, auth, [bad])
    assert refused.status == "refused" and refused.number is None
    fields = {e["field"] for e in refused.errors}
    assert {"form.contact_phone", "form.mailing_address"} <= fields  # the hub's own errors, naming the field
    assert all(e["zh"] and e["en"] for e in refused.errors)
    assert _apps(hub) == 0
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(KitRecord)) == 0
    fixed = bad | {
        "form": {
            "delivery_method": "邮寄送达",
            "mailing_address": "泰顺县东溪乡东溪村5号",
            "contact_phone": "13905770001",
        }
    }
    [ok] = sync(hub, auth, [fixed])
    assert ok.status == "accepted" and _apps(hub) == 1


def test_a_crash_between_receiving_and_recording_is_answered_from_the_application(kit) -> None:
    hub, auth, _ = kit
    rec = record()
    [first] = sync(hub, auth, [rec])
    with hub.transaction() as session:  # as if the process died before the number was recorded
        row = session.scalar(select(KitRecord).where(KitRecord.record_id == rec["id"]))
        row.application_number = None
    [again] = sync(hub, auth, [rec])
    assert again.status == "accepted" and again.number == first.number
    assert _apps(hub) == 1


def test_one_bad_record_does_not_sink_the_batch(kit) -> None:
    hub, auth, _ = kit
    results = sync(hub, auth, [record(), {"id": "not-a-uuid", "item": ITEM}, record()])
    assert [r.status for r in results] == ["accepted", "refused", "accepted"]
    assert results[1].id == "not-a-uuid" and results[1].errors
    assert _apps(hub) == 2


def test_one_record_twice_in_a_request_is_received_once(kit) -> None:
    hub, auth, _ = kit
    rec = record()
    clash = rec | {"form": {"delivery_method": "窗口领取", "contact_phone": "13905770009"}}
    results = sync(hub, auth, [rec, rec, clash])
    assert [(r.status, r.again) for r in results] == [("accepted", False), ("accepted", True), ("conflict", False)]
    assert results[0].number == results[1].number
    assert _apps(hub) == 1


def test_the_same_record_from_racing_requests_is_received_once(kit) -> None:
    """A kit that retried while its first request still ran: both carry the record at once."""
    hub, auth, _ = kit
    rec = record()
    start = threading.Barrier(4)

    def send() -> list:
        start.wait()
        return sync(hub, auth, [rec])

    with ThreadPoolExecutor(4) as pool:
        results = [r for f in [pool.submit(send) for _ in range(4)] for r in f.result()]
    assert {r.status for r in results} == {"accepted"}
    assert len({r.number for r in results}) == 1 and sum(not r.again for r in results) <= 1
    assert _apps(hub) == 1


def test_photo_bytes_are_bounded_by_the_hubs_upload_limit(kit) -> None:
    hub, auth, _ = kit
    big = base64.b64encode(b"\xff\xd8\xff" + b"0" * (hub.settings.max_material_bytes + 1)).decode()
    [refused] = sync(hub, auth, [record(photos=[{"name": "居民身份证", "filename": "big.jpg", "content_b64": big}])])
    assert refused.status == "refused" and refused.errors[0]["field"].startswith("photos[0]")
    assert _apps(hub) == 0


def test_the_api_bounds_records_and_refuses_a_revoked_device(kit) -> None:
    hub, auth, token = kit
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        headers = {"authorization": f"Kit {token}"}
        bundle = client.get("/api/v1/kit/bundle", headers=headers).json()
        item = next(i for i in bundle["items"] if i["code"] == ITEM)
        assert item["schema"]["properties"]["contact_phone"]["allOf"]
        too_many = client.post("/api/v1/kit/sync", headers=headers, json={"records": [record()] * (MAX_RECORDS + 1)})
        assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "records"
        ok = client.post("/api/v1/kit/sync", headers=headers, json={"records": [record()]})
        assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "accepted"
        assert client.post("/api/v1/kit/sync", json={"records": []}).status_code == 401  # no token
        devices.revoke(hub, OPS, auth.device_id)
        refused = client.post("/api/v1/kit/sync", headers=headers, json={"records": [record()]})
        assert refused.status_code == 401 and refused.json()["detail"]["code"] == "device_revoked"
        assert client.get("/api/v1/kit/bundle", headers=headers).status_code == 401
    assert _apps(hub) == 1


def test_devices_are_scoped_to_their_agent(kit) -> None:
    hub, auth, _ = kit
    other = add_agent(hub, "wuqiang", "吴强", id_number=make_id("330329", date(1988, 2, 3), "035"))
    other_device, _ = devices.enrol(hub, other, "wuqiang", "吴强的手机")
    assert [d.name for d in devices.list_devices(hub, other, "wuqiang")] == ["吴强的手机"]
    with pytest.raises(NotFound):  # someone else's device: as if it did not exist
        devices.revoke(hub, other, auth.device_id, "wuqiang")
    assert devices.revoke(hub, other, other_device.id, "wuqiang").revoked_at is not None
    assert len(devices.list_devices(hub, OPS, None)) == 2
    with pytest.raises(devices.DeviceRefused) as refused:
        devices.authenticate(hub, "not-a-token")
    assert refused.value.code == "device_unknown"


def test_cli_lists_and_revokes_devices(kit) -> None:
    hub, auth, _ = kit
    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False)}

    def run(*args: str):
        return CliRunner().invoke(cli, ["--home", str(hub.settings.home), "kit", "devices", *args], env=env)

    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(r["id"], r["name"], r["revoked_at"]) for r in json.loads(listed.output)] == [
        (auth.device_id, "东溪乡平板1号", None)
    ]
    revoked = run("revoke", str(auth.device_id))
    assert revoked.exit_code == 0 and "已吊销" in revoked.output, revoked.output
    assert json.loads(run("list", "--json").output)[0]["revoked_by"].startswith("cli:")
    assert run("revoke", "999").exit_code != 0  # no such device: an error, nothing changed
    with pytest.raises(devices.DeviceRefused):
        devices.authenticate(hub, kit[2])


def _login(web: TestClient, username: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    data = {"username": username, "password": PASSWORD, "csrf_token": token}
    assert web.post("/login", data=data, follow_redirects=False).status_code == 303


def test_enrol_on_the_web_needs_the_agent_and_csrf_and_ops_revoke_on_the_page(hub: Hub) -> None:
    add_agent(hub)
    users.add_user(hub, "kitops", PASSWORD, display_name="运维李工", role=Role.ops)
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert web.post("/api/v1/kit/devices", json={"name": "平板"}).status_code == 401  # not logged in
        _login(web, "zhouli")
        me = web.get("/api/v1/kit/me").json()
        assert me["role"] == "agent" and me["csrf"]
        assert web.post("/api/v1/kit/devices", json={"name": "平板"}).status_code == 403  # no CSRF token
        bad = web.post("/api/v1/kit/devices", json={"name": "平板\u202e"}, headers={"x-csrf-token": me["csrf"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
        made = web.post("/api/v1/kit/devices", json={"name": "东溪乡平板1号"}, headers={"x-csrf-token": me["csrf"]})
        assert made.status_code == 201 and made.json()["token"]
        device_id = made.json()["device"]["id"]
        assert "东溪乡平板1号" in web.get("/kit/devices").text
        web.cookies.clear()
        _login(web, "kitops")
        assert web.post("/api/v1/kit/devices", json={"name": "x"}, headers={"x-csrf-token": "x"}).status_code == 403
        page = web.get("/kit/devices")
        assert page.status_code == 200 and "东溪乡平板1号" in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert web.post(f"/kit/devices/{device_id}/revoke", data={}).status_code == 403  # no CSRF token
        done = web.post(f"/kit/devices/{device_id}/revoke", data={"csrf_token": csrf}, follow_redirects=False)
        assert done.status_code == 303
        assert "已吊销" in web.get("/kit/devices").text
    headers = {"authorization": f"Kit {made.json()['token']}"}
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        assert client.get("/api/v1/kit/bundle", headers=headers).json()["detail"]["code"] == "device_revoked"
