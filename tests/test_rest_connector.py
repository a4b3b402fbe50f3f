"""The `rest` connector against the sandbox 医保 system, over real loopback sockets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.connection_config import load_connections
from hub.connectors import DeliveryError, PartMessage
from hub.errors import ConfigInvalid
from hub.plugins import PluginHost
from plugins.sandbox.rest_department import RestDepartment

TOKEN = "sandbox-token-5f3a9c"
TYPES = PluginHost.configured(None).connector_types


@pytest.fixture
def dept():
    d = RestDepartment(token=TOKEN, hmac_keys={"hub-1": "hmac-secret-77"}, seed=7).start()
    yield d
    d.stop()


def connection(tmp_path: Path, text: str, name: str = "yibao"):
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    conns, problems = load_connections(folder, TYPES)
    assert problems == []
    return conns[name]


def rest(tmp_path, dept, monkeypatch, *, auth: str = 'bearer: "${YB_TOKEN}"', extra: str = ""):
    monkeypatch.setenv("YB_TOKEN", TOKEN)
    conn = connection(
        tmp_path, f"type: rest\nconfig:\n  profile: hub-api\n  base_url: {dept.url}\n  auth: {{{auth}}}\n{extra}"
    )
    return conn.make(TYPES)


def part(i: int) -> PartMessage:
    return PartMessage(
        part_id=f"00000000-0000-0000-0000-{i:012d}",
        application_number=f"330329-20261122-{i:05d}",
        item_code="GG00301001",
        item_title="基本医疗保险异地就医备案",
        department="ts-ybj",
        channel="enclave",
        desk="enclave-hangzhou",
        collecting_division="330105",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="陈志强",
        applicant_id="330329199007010137",
        form={"contact_phone": "13857712345"},
    )


def test_check_submit_is_idempotent_and_poll_pages(tmp_path, dept, monkeypatch):
    c = rest(tmp_path, dept, monkeypatch, extra="  page_size: 2\n")
    assert c.check().ok
    receipts = [c.submit(part(i)) for i in range(5)]
    again = c.submit(part(0))  # a retry after a lost answer: same remote id, not a second case
    assert again.remote_id == receipts[0].remote_id and dept.submissions[part(0).part_id] == 1
    assert dept.received[part(0).part_id] == 2  # the replay reached the department, which kept one case
    dept.decide(receipts[1].remote_id, "approved")
    dept.decide(receipts[4].remote_id, "denied", "不符合异地长期居住条件")
    updates = {u.remote_id: u for u in c.poll(receipts)}
    assert len(updates) == 5  # three pages of two
    assert updates[receipts[1].remote_id].status == "approved"
    assert updates[receipts[1].remote_id].documents[0].content.startswith(b"%PDF")
    assert updates[receipts[4].remote_id].reason == "不符合异地长期居住条件"
    c.close()


def test_hmac_signed_requests(tmp_path, dept, monkeypatch):
    monkeypatch.setenv("YB_HMAC", "hmac-secret-77")
    c = rest(tmp_path, dept, monkeypatch, auth='key_id: hub-1, secret: "${YB_HMAC}"')
    assert c.check().ok
    receipt = c.submit(part(9))
    # a signed GET with a query string (ids=…%2C…&page_size=…): the department checks the same bytes
    (update,) = c.poll([receipt, receipt.model_copy(update={"remote_id": "YB-404"})])
    assert update.status == "received"
    monkeypatch.setenv("YB_HMAC", "wrong")
    bad = rest(tmp_path, dept, monkeypatch, auth='key_id: hub-1, secret: "${YB_HMAC}"')
    result = bad.check()
    assert not result.ok and "401" in result.message


def test_faults_become_delivery_errors(tmp_path, dept, monkeypatch):
    c = rest(tmp_path, dept, monkeypatch, extra="  retries: 2\n")
    dept.down = True
    with pytest.raises(DeliveryError) as exc:
        c.submit(part(1))
    assert exc.value.retryable and "503" in str(exc.value)
    dept.down = False
    dept.failure_rate = 0.3  # flaky (seeded): retries inside the call ride it out
    patient = rest(tmp_path, dept, monkeypatch, extra="  retries: 6\n")
    assert all(patient.submit(part(i)).remote_id for i in range(10, 20))
    assert dept.submissions.total() == 10
    dept.failure_rate = 0.0
    dept.token = "rotated"  # the department changed the token: a refusal, not worth retrying
    with pytest.raises(DeliveryError) as exc:
        c.submit(part(3))
    assert not exc.value.retryable and "401" in str(exc.value)
    dept.token = TOKEN
    dept.stop()
    with pytest.raises(DeliveryError) as exc:
        c.submit(part(2))
    assert exc.value.retryable and "connection failed" in str(exc.value)


def test_spec_refuses_plain_http_off_loopback_and_literal_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("YB_TOKEN", TOKEN)
    conn = connection(
        tmp_path, 'type: rest\nconfig:\n  base_url: http://ybj.example.gov.cn/api\n  auth: {bearer: "${YB_TOKEN}"}\n'
    )
    with pytest.raises(ConfigInvalid) as exc:
        conn.make(TYPES)
    assert str(exc.value.problems[0]).startswith("connections/yibao.yaml:3: config.base_url")
    conn = connection(
        tmp_path,
        "type: rest\nconfig:\n  base_url: https://ybj.example.gov.cn/api\n  auth:\n    bearer: s3cr3t-literal\n",
    )
    with pytest.raises(ConfigInvalid) as exc:
        conn.make(TYPES)
    message = str(exc.value)
    assert "connections/yibao.yaml:5" in message and "literal secrets" in message and "s3cr3t-literal" not in message
    monkeypatch.delenv("YB_TOKEN")
    conn = connection(
        tmp_path, 'type: rest\nconfig:\n  base_url: https://ybj.example.gov.cn/api\n  auth: {bearer: "${YB_TOKEN}"}\n'
    )
    with pytest.raises(ConfigInvalid, match="YB_TOKEN is not set"):
        conn.make(TYPES)


def test_cli_check_never_prints_the_secret(tmp_path, dept):
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "hub", "init", str(home)], check=True, capture_output=True)
    yaml = (home / "connections" / "yibao-rest.yaml").read_text(encoding="utf-8")
    (home / "connections" / "yibao-rest.yaml").write_text(
        yaml.replace("http://127.0.0.1:8701/api", dept.url), encoding="utf-8"
    )
    env = {**os.environ, "HUB_SANDBOX_TOKEN": TOKEN}
    ok = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), "connectors", "check", "yibao-rest"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0 and "OK" in ok.stdout
    env["HUB_SANDBOX_TOKEN"] = TOKEN + "-wrong"
    failed = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), "connectors", "check", "yibao-rest"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 1 and "FAIL" in failed.stdout and "401" in failed.stdout
    everything = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), "connectors", "check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    # the sample gongan-soap points at a sandbox that is not running here: the whole check fails
    assert (
        everything.returncode == 1 and "gongan-soap" in everything.stdout and "connection failed" in everything.stdout
    )
    for out in (ok, failed, everything):
        assert TOKEN not in out.stdout + out.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), "connectors", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "yibao-rest" in listed.stdout and TOKEN not in listed.stdout
