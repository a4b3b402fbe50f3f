"""The `soap` connector (zeep) against the sandbox 公安 SOAP system over loopback: WSDL parsed
once, WS-Security digest, config-defined message mapping, faults and hostile XML as delivery
errors, online verification."""

import logging
from pathlib import Path

import pytest
import yaml

from hub.connection_config import load_connections
from hub.connectors import DeliveryError, PartMessage
from hub.errors import ConfigInvalid
from hub.home import sample_config_dir
from hub.plugins import PluginHost
from plugins.sandbox.soap_department import SoapDepartment

PASSWORD = "gongan-wsse-pw"
TYPES = PluginHost.configured(None).connector_types
RESIDENT = "330329195003150214"


@pytest.fixture
def gongan():
    d = SoapDepartment(password=PASSWORD, households={RESIDENT: ("林阿婆", "浙江省温州市泰顺县罗阳镇下洪社区")}).start()
    yield d
    d.stop()


def soap(tmp_path: Path, dept: SoapDepartment, monkeypatch, name: str = "gongan-soap", **config):
    """The shipped sample connection, pointed at this sandbox (and `config` changed)."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", PASSWORD)
    conf = yaml.safe_load((sample_config_dir() / "connections" / "gongan-soap.yaml").read_text(encoding="utf-8"))
    conf["config"]["wsdl"] = dept.wsdl_url
    for key, value in config.items():
        conf["config"][key] = conf["config"][key] | value if isinstance(value, dict) else value
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    conns, problems = load_connections(folder, TYPES)
    assert problems == []
    return conns[name].make(TYPES)


def part(i: int = 1) -> PartMessage:
    return PartMessage(
        part_id=f"part-{i}",
        application_number=f"330329-20261122-{i:05d}",
        item_code="QR00117001",
        item_title="户口登记（出生登记）",
        department="ts-gaj",
        channel="bank",
        desk="bank-xiahong",
        collecting_division="330329",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="林阿婆",
        applicant_id=RESIDENT,
        form={"household_address": "罗阳镇下洪社区"},
    )


def test_submit_maps_the_message_is_idempotent_and_polls(tmp_path, gongan, monkeypatch):
    c = soap(tmp_path, gongan, monkeypatch)
    assert c.check().ok
    receipt = c.submit(part())
    assert c.submit(part()).remote_id == receipt.remote_id == "GA-000001"
    assert gongan.received == {"part-1": 2} and gongan.submissions == {"part-1": 1}  # the replay made no case
    assert gongan.cases["GA-000001"].fields == {
        "partId": "part-1",
        "itemCode": "QR00117001",
        "applicantName": "林阿婆",
        "applicantId": RESIDENT,
        "detail": "罗阳镇下洪社区",
    }
    gongan.decide("GA-000001", "rejected", "户籍信息不符")
    (update,) = c.poll([receipt])
    assert (update.status, update.reason) == ("denied", "户籍信息不符")  # mapped by status_map


def test_the_sample_checks_the_password_with_a_probe(tmp_path, gongan, monkeypatch):
    c = soap(tmp_path, gongan, monkeypatch)
    result = c.check()
    assert result.ok and "probe VerifyHousehold OK (credentials accepted)" in result.message
    gongan.password = "rotated-by-the-department"
    wrong = c.check()
    assert not wrong.ok and "probe failed" in wrong.message and "WS-Security authentication failed" in wrong.message
    assert PASSWORD not in wrong.message and gongan.cases == {}


def test_wsdl_is_parsed_once_per_connection(tmp_path, gongan, monkeypatch):
    for _ in range(3):
        c = soap(tmp_path, gongan, monkeypatch, name="gongan-once")
        assert c.check().ok
        c.submit(part(7))
    assert gongan.wsdl_fetches == 1


def test_online_verification_of_household_registration(tmp_path, gongan, monkeypatch):
    c = soap(tmp_path, gongan, monkeypatch)
    ok = c.verify("household_registration", {"id_number": RESIDENT, "name": "林阿婆"})
    assert ok.ok and ok.detail["address"] == "浙江省温州市泰顺县罗阳镇下洪社区"
    assert not c.verify("household_registration", {"id_number": RESIDENT, "name": "张三"}).ok


@pytest.mark.parametrize(
    ("setup", "retryable", "needle"),
    [
        ({"fault": "Server"}, True, "SOAP fault"),
        ({"fault": "Client"}, False, "SOAP fault"),
        ({"password": "changed"}, False, "authentication failed"),
        ({"hostile": True}, False, "hostile XML refused"),
        ({"down": True}, True, "HTTP 503"),
        ({"failure_rate": 1.0}, True, "HTTP 503"),
    ],
)
def test_faults_are_delivery_errors(tmp_path, gongan, monkeypatch, setup, retryable, needle):
    c = soap(tmp_path, gongan, monkeypatch)
    c.check()  # WSDL loaded while the department is healthy
    for key, value in setup.items():
        setattr(gongan, key, value)
    with pytest.raises(DeliveryError) as exc:
        c.submit(part(3))
    assert exc.value.retryable is retryable and needle in str(exc.value)
    assert PASSWORD not in str(exc.value)


def test_unreachable_wsdl_fails_the_check_not_the_caller(tmp_path, gongan, monkeypatch):
    c = soap(tmp_path, gongan, monkeypatch, name="gongan-gone")
    gongan.stop()
    result = c.check()
    assert not result.ok and "connection failed" in result.message


def test_an_answer_over_max_answer_bytes_is_refused(tmp_path, gongan, monkeypatch):
    c = soap(tmp_path, gongan, monkeypatch, name="gongan-small", max_answer_bytes=1024)  # the WSDL is larger
    result = c.check()
    assert not result.ok and "answer larger than max_answer_bytes (1024)" in result.message
    with pytest.raises(DeliveryError, match="answer larger") as exc:
        c.submit(part(4))
    assert not exc.value.retryable


def test_verify_from_the_cli_masks_the_id(tmp_path, gongan):
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "hub", "init", str(home)], check=True, capture_output=True)
    path = home / "connections" / "gongan-soap.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["wsdl"] = gongan.wsdl_url
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HUB_SANDBOX_TOKEN": PASSWORD}

    def verify(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "hub",
                "--home",
                str(home),
                "connectors",
                "verify",
                "gongan-soap",
                "household_registration",
                "-s",
                f"id_number={RESIDENT}",
                "-s",
                f"name={name}",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    ok = verify("林阿婆")
    assert ok.returncode == 0 and '"ok": true' in ok.stdout and "罗阳镇下洪社区" in ok.stdout
    assert RESIDENT not in ok.stdout and "3303**********0214" in ok.stdout
    assert verify("张三").returncode == 1


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = folder / f"{name}.key", folder / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def test_x509_signed_requests(tmp_path, monkeypatch):
    hub_key, hub_cert = _self_signed(tmp_path, "tongban-hub")
    _, other_cert = _self_signed(tmp_path, "someone-else")
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", PASSWORD)
    for trusted, expect_ok in ((hub_cert, True), (other_cert, False)):
        dept = SoapDepartment(password=PASSWORD, trusted_cert=str(trusted)).start()
        try:
            conf = yaml.safe_load(
                (sample_config_dir() / "connections" / "gongan-soap.yaml").read_text(encoding="utf-8")
            )
            conf["config"]["wsdl"] = dept.wsdl_url
            conf["config"]["signature"] = {"key_file": str(hub_key), "cert_file": str(hub_cert)}
            folder = tmp_path / f"connections-{expect_ok}"
            folder.mkdir()
            (folder / "signed.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
            conns, _ = load_connections(folder, TYPES)
            c = conns["signed"].make(TYPES)
            if expect_ok:
                assert c.submit(part(11)).remote_id == "GA-000001"
            else:
                with pytest.raises(DeliveryError, match="signature invalid") as exc:
                    c.submit(part(11))
                assert not exc.value.retryable and dept.submissions.total() == 0
        finally:
            dept.stop()


def test_debug_logs_hold_no_password_and_no_resident_data(tmp_path, gongan, monkeypatch, caplog):
    """zeep logs whole envelopes at DEBUG: a plain-text UsernameToken, names and ID numbers."""
    caplog.set_level(logging.DEBUG)
    c = soap(tmp_path, gongan, monkeypatch)
    c.submit(part())
    assert c.verify("household", {"id_number": RESIDENT, "name": "林阿婆"}).ok
    plain = soap(tmp_path, gongan, monkeypatch, name="gongan-plain", wsse={"digest": False})
    with pytest.raises(DeliveryError, match="authentication failed"):  # the sandbox takes digests only
        plain.submit(part(2))
    assert gongan.received == {"part-1": 1}
    for needle in (PASSWORD, RESIDENT, "林阿婆"):
        assert needle not in caplog.text


def test_tls_is_required_off_loopback_for_the_wsdl_and_the_service(tmp_path, gongan, monkeypatch):
    with pytest.raises(ConfigInvalid) as exc:
        soap(tmp_path, gongan, monkeypatch, name="gongan-plain-http", wsdl="http://gaj.example.gov.cn/ws?wsdl")
    assert "config.wsdl" in str(exc.value) and "https required" in str(exc.value)
    # a WSDL fetched over loopback that sends requests elsewhere in the clear is refused too
    gongan.location = "http://10.20.30.40/gongan"
    c = soap(tmp_path, gongan, monkeypatch, name="gongan-elsewhere")
    result = c.check()
    assert not result.ok and "10.20.30.40" in result.message and "https required" in result.message
    with pytest.raises(DeliveryError) as refused:
        c.submit(part())
    assert not refused.value.retryable and gongan.received.total() == 0
