"""The sample intake sources as `make airflow` runs them: `hub sandbox run` offers a sample batch
on the bank outlet's SFTP drop and on the enclave window's REST system; a fresh hub home's
sample connections (pointed at the test's ports) check OK and `hub run ingest` takes both."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hub(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=60
    )


def _point(home: Path, name: str, **changes: object) -> None:
    path = home / "connections" / f"{name}.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"].update(changes)
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")


def test_sandbox_sources_offer_sample_batches_that_the_sample_connections_take(tmp_path: Path):
    home = tmp_path / "home"
    env = {**os.environ, "HUB_SANDBOX_TOKEN": "sources-test-token"}
    assert _hub(home, "init", str(home), env=env).returncode == 0
    # every port of its own (the data platform's gateway, --irs-port, defaults to 8706, and the
    # identity service, --oidc-port, to 8707, which another sandbox running at the same time may hold)
    ports = {
        k: _free_port()
        for k in ("port", "soap-port", "sftp-port", "bank-port", "enclave-port", "irs-port", "oidc-port")
    }
    bank_dir, enclave_dir = tmp_path / "bank", tmp_path / "enclave"
    _point(home, "bank-xiahong-sftp", port=ports["bank-port"], known_hosts=str(bank_dir / "known_hosts"))
    _point(home, "enclave-hangzhou-rest", base_url=f"http://127.0.0.1:{ports['enclave-port']}/api")
    command = [sys.executable, "-m", "hub", "--home", str(home), "sandbox", "run", "--sample-batches", "4"]
    command += [x for k, v in ports.items() for x in (f"--{k}", str(v))]
    command += ["--sftp-dir", str(tmp_path / "shebao"), "--bank-dir", str(bank_dir), "--enclave-dir", str(enclave_dir)]
    sandbox = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (bank_dir / "known_hosts").exists() or not list(enclave_dir.glob("*.ok")):
            assert sandbox.poll() is None and time.monotonic() < deadline, sandbox.stderr.read()
            time.sleep(0.1)
        checked = _hub(home, "connectors", "check", env=env)
        rows = {line.split("│")[1].strip(): line for line in checked.stdout.splitlines() if line.count("│") > 3}
        for name in ("bank-xiahong-sftp", "enclave-hangzhou-rest"):
            assert "│ OK" in rows[name], checked.stdout + checked.stderr
        for source in ("bank-xiahong-sftp", "enclave-hangzhou-rest"):
            done = _hub(home, "run", "ingest", "--source", source, env=env)
            assert done.returncode == 0, done.stderr
            assert "4 records: 4 received, 0 already received, 0 refused" in done.stdout, done.stdout
        listed = _hub(home, "apps", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.count("pre_reviewed") == 8
        assert list((bank_dir / "root" / "batches" / "done").glob("XH-*.ok"))  # acknowledged on the bank's side
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert sandbox.returncode == 0, sandbox.stderr.read()  # SIGTERM stops every server cleanly
