"""The main job (`make demo`): a fresh home, sample applications walked through the life cycle,
with the sandbox 医保 system answering over loopback as `make demo` runs it."""

import os
import socket
import subprocess
import sys

import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_on_a_fresh_home_with_real_department_traffic(tmp_path):
    home = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "hub", "init", str(home)], check=True, capture_output=True)
    port = _free_port()
    conn = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(conn.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = f"http://127.0.0.1:{port}/api"
    conn.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    soap_port, sftp_port = _free_port(), _free_port()
    conn = home / "connections" / "gongan-soap.yaml"
    conf = yaml.safe_load(conn.read_text(encoding="utf-8"))
    conf["config"]["wsdl"] = f"http://127.0.0.1:{soap_port}/gongan?wsdl"
    conn.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HUB_SANDBOX_TOKEN": "demo-test-token"}
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub",
            "sandbox",
            "run",
            "--port",
            str(port),
            "--soap-port",
            str(soap_port),
            "--sftp-port",
            str(sftp_port),
            "--sftp-dir",
            str(tmp_path / "sftp"),
            "--decide-after",
            "0.1",
            "--bank-port",
            str(_free_port()),
            "--bank-dir",
            str(tmp_path / "bank"),
            "--enclave-port",
            str(_free_port()),
            "--enclave-dir",
            str(tmp_path / "enclave"),
            "--sample-batches",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hub", "--home", str(home), "demo"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in (
        "下洪社区农商银行网点",
        "330105→330329",
        "310115→330329",
        "partial",
        "2027-01-05*",
        "校验码错误",
        "cannot deliver",
        "对方编号 YB-000001",
        "1 parts decided",
        "医保办理结果.pdf",
    ):
        assert needle in out, needle
    assert "✗" not in out  # every event chain verifies
    assert sandbox.poll() is not None  # the sandbox was stopped, not left running
