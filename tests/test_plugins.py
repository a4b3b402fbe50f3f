"""The plugin host: built-ins load through entry points like anyone's, an allowlist keeps stray
packages out, and a separately installed package's connector works with no change to the hub."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub.hookspecs import hookimpl
from hub.plugins import PluginHost

THIRD_PARTY = """
from pydantic import BaseModel
from hub.connectors import CheckResult, Connector
from hub.hookspecs import hookimpl


class CountySealSpec(BaseModel):
    endpoint: str


class CountySeal(Connector):
    type = "county-seal"
    Spec = CountySealSpec
    description = "a third party's connector"

    def check(self):
        return CheckResult(ok=True, message=f"reached {self.spec.endpoint}")


@hookimpl
def register_connectors():
    return [CountySeal]
"""


@pytest.fixture
def third_party(tmp_path) -> Path:
    """A distribution on sys.path, as pip would leave it: a module plus its dist-info."""
    site = tmp_path / "site"
    (site / "hub_county_seal").mkdir(parents=True)
    (site / "hub_county_seal" / "__init__.py").write_text(THIRD_PARTY, encoding="utf-8")
    info = site / "hub_county_seal-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hub-county-seal\nVersion: 1.2.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[hub]\ncounty_seal = hub_county_seal\n", encoding="utf-8")
    return site


def _hub(site: Path, *args: str, allow: str | None = None, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_PLUGINS", "HUB_HOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    if allow is not None:
        env["HUB_PLUGINS"] = allow
    cmd = [sys.executable, "-m", "hub", *(["--home", str(home)] if home else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def test_built_in_plugins_come_from_entry_points():
    host = PluginHost.configured(None)
    infos = {i.name: i for i in host.infos}
    assert infos["rest"].loaded and infos["rest"].distribution == "tongban-hub"
    assert infos["rest"].registers == ("register_connectors",)
    assert "rest" in host.connector_types


def test_allowlist_keeps_plugins_out():
    host = PluginHost({"sandbox"})
    assert "rest" not in host.connector_types
    assert {i.name: i.loaded for i in host.infos}["rest"] is False


def test_installed_third_party_plugin_is_discovered_but_loads_only_when_allowed(third_party, tmp_path):
    listed = json.loads(_hub(third_party, "plugins", "list", "--json").stdout)
    seal = next(p for p in listed if p["name"] == "county_seal")
    assert seal["distribution"] == "hub-county-seal 1.2.0" and seal["loaded"] is False  # not on the allowlist

    listed = json.loads(_hub(third_party, "plugins", "list", "--json", allow="rest,county_seal").stdout)
    seal = next(p for p in listed if p["name"] == "county_seal")
    assert seal["loaded"] and seal["connector_types"] == ["county-seal"]

    schema = json.loads(_hub(third_party, "connectors", "spec", "county-seal", allow="rest,county_seal").stdout)
    assert schema["required"] == ["endpoint"]

    home = tmp_path / "home"
    assert _hub(third_party, "init", str(home)).returncode == 0
    (home / "connections" / "seal.yaml").write_text(
        textwrap.dedent("""\
            type: county-seal
            config: {endpoint: 县印章系统}
        """),
        encoding="utf-8",
    )
    checked = _hub(third_party, "connectors", "check", "seal", allow="rest,soap,sftp,county_seal", home=home)
    assert checked.returncode == 0 and "reached 县印章系统" in checked.stdout
    refused = _hub(third_party, "connectors", "check", "seal", home=home)  # not allowed: unknown type
    assert refused.returncode == 2 and "connections/seal.yaml:1: 未知连接器类型" in refused.stderr


# ---------------------------------------------------------------- one host, hooks the core calls


def test_a_plugins_cli_module_imports_on_its_own():
    """The `hub` CLI loads plugin commands when a command line is parsed, not at import: a
    plugin module that imports hub.cli (video.cli does) no longer meets itself half-loaded."""
    done = subprocess.run([sys.executable, "-c", "import video.cli"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_plugin_commands_follow_the_homes_allowlist(tmp_path):
    home = tmp_path / "home"
    assert _hub(Path(), "init", str(home)).returncode == 0
    assert _hub(Path(), "sandbox", "--help", home=home).returncode == 0  # the sample home lists sandbox
    settings = home / "hub.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace(
            "plugins: [rest, sftp, soap, video, oidc, sandbox]", "plugins: [rest]"
        ),
        encoding="utf-8",
    )
    refused = _hub(Path(), "sandbox", "--help", home=home)
    assert refused.returncode == 2 and "No such command 'sandbox'" in refused.stderr
    listed = {p["name"]: p["loaded"] for p in json.loads(_hub(Path(), "plugins", "list", "--json", home=home).stdout)}
    assert listed["rest"] and not listed["video"] and not listed["sandbox"]


class _Reader:
    def __init__(self, answer):
        self.answer = answer
        self.asked = 0

    @hookimpl
    def read_id_card(self, desk):
        self.asked += 1
        return self.answer


def test_the_first_id_card_reader_that_answers_wins():
    host = PluginHost(set())
    silent, first, second = _Reader(None), _Reader({"name": "林阿婆"}), _Reader({"name": "别人"})
    for n, p in (("second", second), ("first", first), ("silent", silent)):  # pluggy calls the last added first
        host.pm.register(p, name=n)
    assert host.hook.read_id_card(desk="bank-xiahong") == {"name": "林阿婆"}
    assert second.asked == 0  # firstresult: nobody asked after the first answer


class _Lifecycle:
    def __init__(self, log, fail=False):
        self.log, self.fail = log, fail

    @hookimpl
    def startup(self, hub):
        async def later():
            self.log.append(("startup", id(self)))

        return later()

    @hookimpl
    def shutdown(self, hub):
        if self.fail:
            raise RuntimeError("boom")
        self.log.append(("shutdown", id(self)))


def test_startup_and_shutdown_hooks_run_with_the_app_and_one_failure_does_not_stop_the_others(hub):
    from fastapi.testclient import TestClient

    from hub.web.app import create_app

    log: list = []
    good, bad = _Lifecycle(log), _Lifecycle(log, fail=True)
    hub.plugins.pm.register(good, name="good")
    hub.plugins.pm.register(bad, name="bad")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert ("startup", id(good)) in log and ("startup", id(bad)) in log  # awaited before serving
        assert web.get("/healthz").status_code == 200
    assert ("shutdown", id(good)) in log  # after `bad` raised


def test_the_application_page_shows_what_plugins_add_and_nothing_without_them(hub, tmp_path):
    """The signing button and sessions card come from the video plugin's hooks; the core's page
    names no plugin, so a hub without it shows neither."""
    from fastapi.testclient import TestClient

    from hub import applications as svc
    from hub.lifecycle import Role
    from hub.tokens import create_token
    from hub.web.app import create_app
    from tests.support.samples import SH_CLERK, fund_retire, officer

    gjj = officer("ts-gjj", "公积金审批员")
    number = svc.create(hub, fund_retire(), SH_CLERK).number
    svc.transition(hub, number, "pre_review", SH_CLERK)
    secret, _ = create_token(
        hub, "o", role=Role.officer, department="ts-gjj", scopes=["applications:read"], created_by="t"
    )
    head = {"authorization": f"Bearer {secret}", "accept": "text/html"}
    if not any(hub.catalog.items[p.item_code].signature_required for p in svc.read(hub, number, gjj).parts):
        pytest.fail("the sample 退休一件事 needs a signature: the test's premise")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        page = web.get(f"/applications/{number}", headers=head).text
    assert f'action="/applications/{number}/signing"' in page and "发起远程面签" in page
    hub.plugins = PluginHost({"rest"})  # remote signing not installed on this hub
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        page = web.get(f"/applications/{number}", headers=head).text
        assert web.post(f"/applications/{number}/signing", headers=head).status_code in (404, 405)
    assert "/signing" not in page and "面签" not in page


def test_a_connection_whose_plugin_is_missing_stops_only_itself(tmp_path):
    """A connection file naming a type no loaded plugin provides is that connection's problem:
    dispatch runs, the other connections are listed and checked, the broken one says why."""
    home = tmp_path / "home"
    assert _hub(Path(), "init", str(home)).returncode == 0
    (home / "connections" / "seal.yaml").write_text("type: county-seal\nconfig: {endpoint: x}\n", encoding="utf-8")
    dispatched = _hub(Path(), "run", "dispatch", home=home)
    assert dispatched.returncode == 0, dispatched.stderr
    listed = _hub(Path(), "connectors", "list", home=home)
    assert listed.returncode == 0 and "yibao-rest" in listed.stdout and "seal" in listed.stdout, listed.stderr
    other = _hub(Path(), "connectors", "check", "yibao-rest", home=home)  # no sandbox running: unreachable
    assert other.returncode == 1 and "未知连接器类型" not in other.stdout + other.stderr, other.stderr
    everything = _hub(Path(), "connectors", "check", home=home)
    assert everything.returncode == 1 and "connections/seal.yaml:1: 未知连接器类型" in everything.stdout
    broken = _hub(Path(), "connectors", "check", "seal", home=home)
    assert broken.returncode == 2 and "connections/seal.yaml:1: 未知连接器类型" in broken.stderr


def test_a_type_whose_plugin_is_installed_but_not_allowed_says_so(third_party, tmp_path):
    home = tmp_path / "home"
    assert _hub(Path(), "init", str(home)).returncode == 0
    (home / "connections" / "seal.yaml").write_text("type: county-seal\nconfig: {endpoint: x}\n", encoding="utf-8")
    refused = _hub(third_party, "connectors", "check", "seal", home=home, allow="rest,sftp,soap")
    assert refused.returncode == 2
    assert "插件 county-seal 已安装但未启用" in refused.stderr and "installed but not allowed" in refused.stderr
    allowed = _hub(third_party, "connectors", "check", "seal", home=home, allow="rest,sftp,soap,county_seal")
    assert allowed.returncode == 0 and "reached x" in allowed.stdout, allowed.stderr
    nowhere = _hub(Path(), "connectors", "check", "seal", home=home, allow="rest,sftp,soap")
    assert nowhere.returncode == 2 and "no installed and allowed plugin provides type county-seal" in nowhere.stderr


def test_beside_a_broken_connection_the_working_ones_deliver_and_metrics_tell_which(home, db_url, clock, monkeypatch):
    """A real department (the sandbox 医保 REST system on loopback) keeps receiving parts while
    another connection's plugin is missing; the summary and /metrics name the broken one."""
    import yaml
    from prometheus_client import CollectorRegistry, generate_latest

    from hub import applications as svc
    from hub.context import Hub
    from hub.jobs.dispatch import dispatch
    from hub.metrics import HubCollector
    from plugins.sandbox.rest_department import RestDepartment
    from tests.support.samples import HZ_CLERK, officer
    from tests.test_dispatch import filing

    dept = RestDepartment(token="t-broken-beside").start()
    try:
        monkeypatch.setenv("HUB_SANDBOX_TOKEN", "t-broken-beside")
        path = home / "connections" / "yibao-rest.yaml"
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
        conf["config"]["base_url"] = dept.url
        path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
        (home / "connections" / "seal.yaml").write_text("type: county-seal\nconfig: {}\n", encoding="utf-8")
        hub = Hub.open(home, database_url=db_url, clock=clock)
        try:
            app = svc.create(hub, filing(1), HZ_CLERK)
            svc.transition(hub, app.number, "accept", officer("ts-ybj"))
            summary = dispatch(hub)
            assert summary.delivered == 1 and summary.by_connection == {"yibao-rest": 1}
            assert len(dept.parts) == 1
            registry = CollectorRegistry()
            registry.register(HubCollector(hub))
            metrics = generate_latest(registry).decode()
            assert 'hub_connection_configured{connection="seal"} 0.0' in metrics
            assert 'hub_connection_configured{connection="yibao-rest"} 1.0' in metrics
        finally:
            hub.close()
    finally:
        dept.stop()


ARCHIVE_DROP = Path(__file__).parent / "data" / "hub_archive_drop"  # docs/plugins.md's worked example


def test_the_guides_third_party_connector_receives_parts_with_their_materials(
    tmp_path, home, db_url, clock, monkeypatch
):
    """The complete package of docs/plugins.md, installed as pip would leave it, allowed, and given
    the 医保 items' connection: dispatch drops each part with the very bytes the hub stored, sync
    brings the archive's receipt back as the decision."""
    import hashlib

    from hub import applications as svc
    from hub import plugins
    from hub.context import Hub
    from hub.jobs.dispatch import dispatch
    from hub.jobs.sync import sync
    from tests.support.samples import HZ_CLERK, officer
    from tests.test_dispatch import filing

    site = tmp_path / "site"
    info = site / "hub_archive_drop-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hub-archive-drop\nVersion: 1.0.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[hub]\narchive_drop = hub_archive_drop\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(ARCHIVE_DROP))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("HUB_PLUGINS", "rest,sftp,soap,archive_drop")
    monkeypatch.setenv("ARCHIVE_KEY", "k" * 32)
    plugins._entry_points.cache_clear()
    drop = tmp_path / "archive-import"
    drop.mkdir()
    (home / "connections" / "yibao-rest.yaml").write_text(
        f"type: archive-drop\nconfig:\n  folder: {drop}\n  signing_key: ${{ARCHIVE_KEY}}\n", encoding="utf-8"
    )
    hub = Hub.open(home, database_url=db_url, clock=clock)
    try:
        app = svc.create(hub, filing(3), HZ_CLERK)
        svc.transition(hub, app.number, "accept", officer("ts-ybj"))
        assert dispatch(hub).delivered == 1
        (folder,) = [p for p in drop.iterdir() if p.is_dir()]
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        stored = {m.sha256 for m in app.materials}
        assert {f["sha256"] for f in manifest["files"]} == stored
        for f in manifest["files"]:
            assert hashlib.sha256((folder / f["file"]).read_bytes()).hexdigest() == f["sha256"]
        (folder / "receipt.json").write_text('{"status": "filed", "note": "已归档"}', encoding="utf-8")
        assert sync(hub).decided == 1
    finally:
        hub.close()
        plugins._entry_points.cache_clear()
