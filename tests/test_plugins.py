"""The plugin host: built-ins load through entry points like anyone's, an allowlist keeps stray
packages out, and a separately installed package's connector works with no change to the hub."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub import plugins
from hub.connectors import connector_types

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
def register_connectors(register):
    register(CountySeal)
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
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert infos["rest"].loaded and infos["rest"].distribution == "tongban-hub"
    assert infos["rest"].registers == ("register_connectors",)
    assert "rest" in connector_types(plugins.manager())


def test_allowlist_keeps_plugins_out():
    pm, infos = plugins.make_manager({"sandbox"})
    assert "rest" not in connector_types(pm)
    assert {i.name: i.loaded for i in infos}["rest"] is False


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
