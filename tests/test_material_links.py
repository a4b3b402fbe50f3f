"""Signed pull links (`materials: {mode: pull}`): a department fetches a part's material from
the hub with the link alone; a link altered, expired, or naming a file that is not that part's
material gets nothing, and every fetch is audited."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from hub import applications as svc
from hub import audit
from hub.connectors import DeliveryError, MaterialRef
from hub.context import Hub
from hub.jobs.dispatch import part_message
from hub.outgoing_materials import OutgoingMaterials, make_token
from hub.secret_key import load
from hub.web.app import create_app
from tests.support.samples import HZ_CLERK, officer
from tests.test_dispatch import filing


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    hub.settings.public_url = "https://hub.example.gov.cn"
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


def _part(hub: Hub):
    app = svc.create(hub, filing(7), HZ_CLERK)
    svc.transition(hub, app.number, "accept", officer("ts-ybj"))
    with hub.sessions() as s:
        stored = svc.get(s, app.number, officer("ts-ybj"))
        return part_message(stored, stored.parts[0])


def _path(url: str) -> str:
    return url.removeprefix("https://hub.example.gov.cn")


def test_a_link_serves_exactly_the_stored_bytes_and_is_audited(hub, web):
    part = _part(hub)
    access = OutgoingMaterials(hub.store, hub.settings, "yibao-rest")
    for ref in part.materials:
        answer = web.get(_path(access.url(ref, part.part_id)))
        assert answer.status_code == 200
        assert hashlib.sha256(answer.content).hexdigest() == ref.sha256
        assert answer.headers["cache-control"] == "no-store"
        assert access.read(ref) == answer.content
    pulls = [e for e in audit.entries(hub, target=part.application_number) if e.action == "pull_material"]
    assert len(pulls) == len(part.materials)


def test_altered_expired_or_foreign_links_get_nothing(hub, web):
    part = _part(hub)
    ref = part.materials[0]
    access = OutgoingMaterials(hub.store, hub.settings, "yibao-rest")
    good = _path(access.url(ref, part.part_id))
    token = good.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    secret = load(hub.settings)
    now = int(hub.now().timestamp())
    for bad in (
        f"{payload}.{'0' * 32}",  # forged signature
        f"{payload[:-2]}AA.{mac}",  # altered body
        make_token(secret, part.part_id, ref.sha256, now - 1),  # expired
        make_token(secret, "another-part", ref.sha256, now + 3600),  # another part's
        make_token(secret, part.part_id, hashlib.sha256(b"x").hexdigest(), now + 3600),  # not its material
        make_token(b"another hub's secret", part.part_id, ref.sha256, now + 3600),
        "not-a-token",
    ):
        assert web.get(f"/materials/{bad}").status_code == 404, bad
    assert web.get(good).status_code == 200
    # a link outlives nothing: its time is part of what is signed
    past = OutgoingMaterials(hub.store, hub.settings, "yibao-rest", now=hub.now() - timedelta(hours=100))
    assert web.get(_path(past.url(ref, part.part_id, ttl_hours=72))).status_code == 404


def test_bytes_that_do_not_match_their_sha256_are_never_sent(hub):
    part = _part(hub)
    ref = part.materials[0]
    hub.store.path_of(ref.sha256).write_bytes(b"%PDF-1.4 changed on disk")
    access = OutgoingMaterials(hub.store, hub.settings, "yibao-rest")
    with pytest.raises(DeliveryError, match="sha256"):
        access.read(ref)
    missing = MaterialRef(name="x", filename="x.pdf", sha256="a" * 64, media_type="application/pdf", size=1)
    with pytest.raises(DeliveryError, match="not in the store"):
        access.read(missing)


def test_links_need_the_public_address(hub):
    hub.settings.public_url = None
    part = _part(hub)
    with pytest.raises(DeliveryError, match="public_url"):
        OutgoingMaterials(hub.store, hub.settings, "yibao-rest").url(part.materials[0], part.part_id)


def test_a_link_never_reaches_a_log_line(hub):
    from hub.logs import mask_text

    part = _part(hub)
    hub.settings.public_url = "https://hub.example.gov.cn"
    url = OutgoingMaterials(hub.store, hub.settings, "yibao-rest").url(part.materials[0], part.part_id)
    token = url.rsplit("/", 1)[1]
    line = mask_text(f'127.0.0.1:5123 - "GET /materials/{token} HTTP/1.1" 200')
    assert token not in line and "/materials/[redacted]" in line


def test_a_department_key_in_a_query_string_never_reaches_a_log_line():
    import logging

    from hub.logs import configure, mask_text

    for param in ("appkey", "api_key", "X-Api-Key", "access_token", "AppSecret"):
        assert "s3cret" not in mask_text(f"GET https://dept.example/api?{param}=s3cret&page=2"), param
    assert mask_text("GET /parts?page=2&page_size=100") == "GET /parts?page=2&page_size=100"
    root, httpx_log = logging.getLogger(), logging.getLogger("httpx")
    saved = (list(root.handlers), root.level, httpx_log.level)
    configure("INFO", force=True)
    try:
        # httpx logs each request's whole URL at INFO; the hub keeps it quiet below WARNING
        assert not httpx_log.isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        httpx_log.setLevel(saved[2])
