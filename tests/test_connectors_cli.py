"""Trying a connection before going live, as ops do from a terminal: `hub connectors render`
prints what a submission would send (a sample part, or a real application's), credentials masked
and nothing sent; `hub connectors poll` asks about one receipt and prints the update as the hub
reads it, applying nothing. Against the sandbox 医保 system on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from hub import applications as svc
from hub.context import Hub
from hub.jobs.dispatch import dispatch
from hub.storage.tables import OutboxRow
from plugins.sandbox.rest_department import RestDepartment
from tests.support.samples import HZ_CLERK, officer
from tests.test_dispatch import filing

TOKEN = "render-poll-t0ken"


def hub_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_DATABASE_URL")}
    env["HUB_SANDBOX_TOKEN"] = TOKEN
    cmd = [sys.executable, "-m", "hub", "--home", str(home), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def dept():
    d = RestDepartment(token=TOKEN).start()
    yield d
    d.stop()


@pytest.fixture
def home(tmp_path, dept) -> Path:
    home = tmp_path / "home"
    assert hub_cli(Path(), "init", str(home)).returncode == 0
    path = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = dept.url
    conf["config"]["retries"] = 0
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    return home


def test_render_a_sample_part_masks_the_token_and_sends_nothing(home, dept):
    done = hub_cli(home, "connectors", "render", "yibao-rest")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    (message,) = shown["messages"]
    assert message["summary"] == f"POST {dept.url}/parts"
    assert message["headers"]["authorization"] == "Bearer ***"
    assert message["body"]["part_id"] == "sample-part-0001" and message["body"]["materials"]
    assert TOKEN not in done.stdout
    assert not dept.received  # nothing sent


def test_render_a_real_application_then_poll_its_receipt(home, dept, monkeypatch):
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    hub = Hub.open(home)
    try:
        app = svc.create(hub, filing(4), HZ_CLERK)
        svc.transition(hub, app.number, "accept", officer("ts-ybj"))
        rendered = hub_cli(home, "connectors", "render", "yibao-rest", "--application", app.number)
        assert rendered.returncode == 0, rendered.stderr
        body = json.loads(rendered.stdout)["messages"][0]["body"]
        assert body["application_number"] == app.number
        assert {m["sha256"] for m in body["materials"]} == {m.sha256 for m in app.materials}
        assert not dept.received

        assert dispatch(hub).delivered == 1
        with hub.sessions() as s:
            remote = s.scalars(select(OutboxRow.remote_id)).one()
        dept.decide(remote, "approved", "同意备案")
        polled = hub_cli(home, "connectors", "poll", "yibao-rest", "--receipt", remote)
        assert polled.returncode == 0, polled.stderr
        (update,) = json.loads(polled.stdout)["updates"]
        assert (update["status"], update["reason"], update["remote_id"]) == ("approved", "同意备案", remote)
        with hub.sessions() as s:  # shown, not applied
            assert s.scalars(select(OutboxRow.remote_status)).one() is None

        dept.decide(remote, "WEIRD")
        odd = hub_cli(home, "connectors", "poll", "yibao-rest", "--receipt", remote)
        assert odd.returncode == 1
        (failure,) = json.loads(odd.stdout)["updates"]
        assert "WEIRD" in failure["error"] and "profiles/hub-api.yaml" in failure["error"]  # where the status words are
    finally:
        hub.close()


def test_render_never_prints_a_live_pull_link(home, dept, monkeypatch):
    """A pull link is a credential: render shows where it would go, with its token masked."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    path = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["materials"] = {"mode": "pull"}
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    settings = yaml.safe_load((home / "hub.yaml").read_text(encoding="utf-8"))
    settings["public_url"] = "https://hub.example.gov.cn"
    (home / "hub.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    hub = Hub.open(home)
    try:
        app = svc.create(hub, filing(5), HZ_CLERK)
        svc.transition(hub, app.number, "accept", officer("ts-ybj"))
    finally:
        hub.close()
    rendered = hub_cli(home, "connectors", "render", "yibao-rest", "--application", app.number)
    assert rendered.returncode == 0, rendered.stderr
    urls = [m["url"] for m in json.loads(rendered.stdout)["messages"][0]["body"]["materials"]]
    assert urls and all(u == "https://hub.example.gov.cn/materials/***" for u in urls)
