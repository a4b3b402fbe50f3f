"""A SOAP department connected by configuration only: the VIES-shaped test department
(tests/support/soap_vat_department.py) over loopback, its WSDL a file in the hub home whose
public https soap:address is replaced by `endpoint`; per-verb templates, typed answers (a boolean
through the status map), a verify rule, a stateless decision at submit, check proving the
WS-Security credentials, materials inline and as pull links (sha256 checked by the department),
imports refused outside the WSDL's folder or server, and mapping errors with FILE:LINE."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.connection_config import load_connections
from hub.connectors import DeliveryError, MaterialRef, PartMessage, PollFailure, Update
from hub.errors import ConfigInvalid
from hub.plugins import PluginHost
from tests.support.soap_vat_department import DATA, PATH, PUBLIC_ADDRESS, VatDepartment

TYPES = PluginHost.configured(None).connector_types
PASSWORD = "vat-wsse-pw"
RESIDENT = "330329195003150214"
BINDING = "{urn:ec.europa.eu:taxud:vies:services:checkVat}checkVatBinding"


@pytest.fixture
def vat():
    d = VatDepartment(password=PASSWORD, registry={("CN", RESIDENT): ("林阿婆", "浙江省温州市泰顺县罗阳镇")}).start()
    yield d
    d.stop()


def wsdl_folder(home: Path) -> Path:
    folder = home / "wsdl"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vies_vat.wsdl", "vies_vat_types.xsd"):
        shutil.copy(DATA / name, folder / name)
    return folder


def config(dept: VatDepartment, **changes: Any) -> dict[str, Any]:
    """The connection as docs/connect/soap.md writes it (stateful: getCase polled)."""
    conf: dict[str, Any] = {
        "wsdl": "wsdl/vies_vat.wsdl",  # relative to the hub home
        "endpoint": dept.endpoint,
        "binding": BINDING,
        "wsse": {"username": "tongban", "password": "${VAT_WSSE_PASSWORD}"},
        "timeout_seconds": 10,
        "materials": {"mode": "inline"},
        "check": {"operation": "checkVat", "message": {"countryCode": "DE", "vatNumber": "000000000"}},
        "submit": {
            "operation": "submitCase",
            "message": {
                "reference": "{{ part.part_id }}",
                "countryCode": "CN",
                "vatNumber": "{{ part.applicant_id }}",
                "applicantName": "{{ part.applicant_name }}",
                "attachment": "{{ materials[*].{fileName: filename, mediaType: media_type, sha256: sha256, "
                "content: content} }}",
            },
            "remote_id": "caseRef",
        },
        "status": {
            "operation": "getCase",
            "message": {"caseRef": "{{ remote_id }}"},
            "status": "state",
            "reason": "remark",
        },
        "verify": {
            "operation": "checkVat",
            "message": {"countryCode": "{{ subject.country || 'CN' }}", "vatNumber": "{{ subject.id_number }}"},
            "ok": "valid == `true`",
            "detail": {"name": "name", "address": "address"},
        },
        "status_map": {"OPEN": "in_review", "DONE": "approved", "REJ": "denied", "BZ": "supplement_requested"},
    }
    for key, value in changes.items():
        if value is None:
            conf.pop(key, None)
        else:
            conf[key] = value
    return conf


def connect(home: Path, conf: dict[str, Any], monkeypatch, name: str = "vat-soap"):
    monkeypatch.setenv("VAT_WSSE_PASSWORD", PASSWORD)
    monkeypatch.setenv("HUB_HOME", str(home))  # a connector made outside a hub finds its home here
    wsdl_folder(home)
    folder = home / "connections"
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"type": "soap", "config": conf}, allow_unicode=True, sort_keys=False)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    conns, problems = load_connections(folder, TYPES)
    assert problems == []
    return conns[name].make(TYPES)


def line_of(home: Path, name: str, needle: str, after: str = "") -> int:
    """The line of the first `needle` (after the first `after`) in a connection file."""
    lines = (home / "connections" / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines[start:], start + 1) if needle in line)


class Store:
    """Material bytes as the hub hands them to a connector (MaterialAccess), kept in memory."""

    def __init__(self, files: dict[str, bytes]):
        self.by_sha = {hashlib.sha256(b).hexdigest(): b for b in files.values()}
        self.refs = [
            MaterialRef(
                name=name,
                filename=f"{i}.pdf",
                sha256=hashlib.sha256(b).hexdigest(),
                media_type="application/pdf",
                size=len(b),
            )
            for i, (name, b) in enumerate(files.items())
        ]

    def read(self, ref: MaterialRef) -> bytes:
        return self.by_sha[ref.sha256]


def part(i: int = 1, applicant_id: str = RESIDENT, materials: list[MaterialRef] | None = None) -> PartMessage:
    return PartMessage(
        part_id=f"part-{i}",
        application_number=f"330329-20261204-{i:05d}",
        item_code="QR00117001",
        item_title="户口登记（出生登记）",
        department="ts-sw",
        channel="bank",
        desk="bank-xiahong",
        collecting_division="330329",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="林阿婆",
        applicant_id=applicant_id,
        form={},
        materials=materials or [],
    )


# ---------------------------------------------------------------- check


def test_check_proves_the_credentials_through_the_endpoint_override(tmp_path, vat, monkeypatch):
    import socket

    looked_up: list[str] = []
    real = socket.getaddrinfo

    def recorded(host, *args, **kwargs):  # every name the process resolves (the calls still go through)
        looked_up.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recorded)
    c = connect(tmp_path, config(vat), monkeypatch)
    result = c.check()
    assert looked_up and set(looked_up) == {"127.0.0.1"}  # ec.europa.eu was never even resolved
    assert result.ok and "probe checkVat OK (credentials accepted)" in result.message
    # requests went to the loopback endpoint, not to the WSDL's public https address
    assert c.address == vat.endpoint and PUBLIC_ADDRESS not in result.message
    assert vat.calls == [(PATH, "checkVat")]


def test_check_fails_with_a_wrong_password(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat), monkeypatch)
    vat.password = "rotated-by-the-department"
    result = c.check()
    assert not result.ok
    assert "probe failed" in result.message and "WS-Security authentication failed" in result.message
    assert PASSWORD not in result.message and vat.calls == []


def test_check_without_a_probe_fails_when_there_are_credentials_to_prove(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat, check=None), monkeypatch)
    vat.password = "anything"  # a wrong password must not check OK
    result = c.check()
    line = line_of(tmp_path, "vat-soap", "wsse:")
    assert not result.ok and "credentials configured but no check probe" in result.message
    assert f"connections/vat-soap.yaml:{line} (config.wsse)" in result.message and vat.calls == []
    assert PASSWORD not in result.message


def test_check_without_a_probe_or_credentials_has_nothing_to_prove(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat, check=None, wsse=None), monkeypatch)
    result = c.check()
    assert result.ok and "no credentials to prove" in result.message and vat.calls == []


def test_check_names_a_verb_whose_operation_the_wsdl_lacks(tmp_path, vat, monkeypatch):
    conf = config(vat)
    conf["status"]["operation"] = "GetCaseStatus"
    c = connect(tmp_path, conf, monkeypatch)
    result = c.check()
    line = line_of(tmp_path, "vat-soap", "operation: GetCaseStatus")
    assert not result.ok and f"status.operation GetCaseStatus (connections/vat-soap.yaml:{line}" in result.message


def test_the_wsdls_own_address_must_be_https_off_loopback(tmp_path, vat, monkeypatch):
    with pytest.raises(ConfigInvalid, match="https required"):
        connect(tmp_path, config(vat, endpoint="http://10.1.2.3/vat"), monkeypatch)
    # no override: the WSDL's public https address is used (and not contacted by a check without a probe)
    c = connect(tmp_path, config(vat, endpoint=None, check=None, wsse=None), monkeypatch, name="vat-public")
    result = c.check()
    assert result.ok and PUBLIC_ADDRESS in result.message and vat.calls == []


# ---------------------------------------------------------------- submit, status, verify


def test_submit_sends_inline_materials_whose_sha256_the_department_checks(tmp_path, vat, monkeypatch):
    scans = {"营业执照": b"%PDF-1.4 licence " + bytes(range(256)) * 40, "身份证": b"%PDF-1.4 id \x00\xff"}
    store = Store(scans)
    c = connect(tmp_path, config(vat), monkeypatch)
    c.materials = store
    receipt = c.submit(part(1, materials=store.refs))
    assert receipt.remote_id == "VAT-00001" and receipt.update is None  # stateful: decided later
    assert c.submit(part(1, materials=store.refs)).remote_id == "VAT-00001"  # idempotent on the reference
    assert vat.received == {"part-1": 2} and vat.submissions == {"part-1": 1}
    case = vat.cases["VAT-00001"]
    assert (case.country, case.vat_number, case.applicant) == ("CN", RESIDENT, "林阿婆")
    assert [(a.how, a.content, a.sha256) for a in case.attachments] == [
        ("inline", data, ref.sha256) for data, ref in zip(scans.values(), store.refs, strict=True)
    ]
    assert all(a.claimed_sha256 == a.sha256 for a in case.attachments)


def test_a_material_over_max_inline_bytes_is_a_clear_error(tmp_path, vat, monkeypatch):
    store = Store({"扫描件": b"x" * 2048})
    c = connect(tmp_path, config(vat, materials={"mode": "inline", "max_inline_bytes": 1024}), monkeypatch)
    c.materials = store
    with pytest.raises(DeliveryError, match="max_inline_bytes 1024") as exc:
        c.submit(part(2, materials=store.refs))
    assert not exc.value.retryable and vat.calls == []


def test_status_is_polled_and_mapped_and_an_unmapped_one_names_the_value(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat), monkeypatch)
    first, second = c.submit(part(1)), c.submit(part(2))
    vat.decide(first.remote_id, "REJ", "税号与名称不符")
    vat.decide(second.remote_id, "WEIRD")
    answers = {a.part_id: a for a in c.poll([first, second])}  # polled in a random order
    done, odd = answers["part-1"], answers["part-2"]
    assert isinstance(done, Update) and (done.status, done.reason) == ("denied", "税号与名称不符")
    assert isinstance(odd, PollFailure) and odd.part_id == "part-2"
    line = line_of(tmp_path, "vat-soap", "status: state")
    assert f"connections/vat-soap.yaml:{line} (config.status.status)" in odd.message
    assert 'unmapped status "WEIRD"' in odd.message


def test_a_stateless_service_decides_at_submit_and_has_nothing_to_poll(tmp_path, vat, monkeypatch):
    conf = config(vat, status=None, status_map={True: "approved", False: "denied"})
    conf["submit"]["decision"] = {"status": "valid", "reason": "remark"}
    c = connect(tmp_path, conf, monkeypatch)
    good = c.submit(part(1))
    bad = c.submit(part(2, applicant_id="330329199001010011"))
    # the boolean <valid> maps through the status map as `true`/`false` (never the string "True")
    assert good.update is not None and (good.update.status, good.update.reason) == ("approved", None)
    assert bad.update is not None and (bad.update.status, bad.update.reason) == ("denied", "VAT number not registered")
    assert good.update.remote_id == good.remote_id == "VAT-00001"
    assert c.poll([good, bad]) == []  # no status operation: nothing to poll, not a failure
    assert [op for _, op in vat.calls] == ["submitCase", "submitCase"]


def test_no_decision_value_at_submit_is_not_decided_yet(tmp_path, vat, monkeypatch):
    # a department that writes a remark only when it refuses: no remark, no decision yet
    conf = config(vat, status=None, status_map={"VAT number not registered": "denied"})
    conf["submit"]["decision"] = {"status": "remark"}
    c = connect(tmp_path, conf, monkeypatch)
    undecided = c.submit(part(1))
    refused = c.submit(part(2, applicant_id="330329199001010011"))
    assert undecided.update is None and undecided.decision_error is None
    assert refused.update is not None and refused.update.status == "denied"


def test_an_unmapped_decision_at_submit_keeps_the_delivery_and_names_the_value(tmp_path, vat, monkeypatch):
    conf = config(vat, status=None, status_map={True: "approved"})  # `false` forgotten
    conf["submit"]["decision"] = {"status": "valid", "reason": "remark"}
    c = connect(tmp_path, conf, monkeypatch)
    receipt = c.submit(part(2, applicant_id="330329199001010011"))  # not registered: <valid>false</valid>
    assert receipt.remote_id == "VAT-00001" and receipt.update is None  # the case is open: no raise
    line = line_of(tmp_path, "vat-soap", "status: valid")
    assert receipt.decision_error is not None
    assert f"connections/vat-soap.yaml:{line} (config.submit.decision.status)" in receipt.decision_error
    assert "unmapped status false" in receipt.decision_error
    assert vat.received == {"part-2": 1}


def test_a_poll_stops_at_max_poll_seconds_and_the_rest_wait_for_the_next_sync(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat, max_poll_seconds=0.25), monkeypatch)
    receipts = [c.submit(part(i)) for i in range(8)]
    vat.latency = 0.1  # every answer slow but in time: 8 of them would take 0.8 s
    seen: set[str] = set()
    for _ in range(60):  # a random order: every receipt is reached within a few polls
        asked = len(vat.calls)
        started = time.monotonic()
        updates = c.poll(receipts)
        elapsed = time.monotonic() - started
        # the poll stops at its deadline; only the call under way then finishes
        assert elapsed < 0.25 + 0.1 + 1.0
        assert 1 <= len(updates) < len(receipts) and all(isinstance(u, Update) for u in updates)
        assert len(vat.calls) - asked == len(updates)  # the rest were not asked: not failed, not returned
        seen |= {u.part_id for u in updates}
        if len(seen) == len(receipts):
            break
    assert seen == {r.part_id for r in receipts}


def test_max_poll_seconds_and_timeout_seconds_are_bounded(tmp_path, vat, monkeypatch):
    with pytest.raises(ConfigInvalid, match="max_poll_seconds"):
        connect(tmp_path, config(vat, max_poll_seconds=86400), monkeypatch)
    with pytest.raises(ConfigInvalid, match="timeout_seconds"):
        connect(tmp_path, config(vat, timeout_seconds=600), monkeypatch)


def test_longest_call_is_one_call_and_a_connect_plus_a_wsdl_read_from_a_url(tmp_path, vat, monkeypatch):
    local = connect(tmp_path, config(vat, timeout_seconds=20, connect_timeout_seconds=4), monkeypatch)
    assert local.longest_call() == (24, ("timeout_seconds",))
    short = connect(tmp_path, config(vat, timeout_seconds=1), monkeypatch, name="vat-short")
    assert short.longest_call() == (2, ("timeout_seconds",))  # connecting within timeout_seconds
    url = connect(tmp_path, config(vat, wsdl=f"{vat.base}/docs/vies_vat.wsdl"), monkeypatch, name="vat-url")
    assert url.longest_call() == (2 * (10 + 5), ("timeout_seconds",))


def test_verify_reads_a_typed_boolean_through_the_configured_rule(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat), monkeypatch)
    yes = c.verify("business_licence", {"id_number": RESIDENT})
    no = c.verify("business_licence", {"id_number": "330329199001010011"})
    assert yes.ok and yes.detail == {"name": "林阿婆", "address": "浙江省温州市泰顺县罗阳镇"}
    assert not no.ok and no.detail == {"name": "---", "address": "---"}  # `false` is not truthy text


def test_a_department_that_is_down_is_a_retryable_error(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat), monkeypatch)
    vat.down = True
    with pytest.raises(DeliveryError, match="HTTP 503") as exc:
        c.submit(part(1))
    assert exc.value.retryable


def test_a_200_that_is_not_soap_is_a_recorded_error_not_a_success(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat), monkeypatch)
    vat.maintenance = True
    with pytest.raises(DeliveryError, match="malformed message") as exc:
        c.submit(part(1))
    assert not exc.value.retryable and vat.cases == {}


def test_a_redirect_is_not_followed_and_not_a_success(tmp_path, vat, monkeypatch):
    other = VatDepartment(password=PASSWORD, registry=vat.registry).start()
    try:
        c = connect(tmp_path, config(vat), monkeypatch)
        vat.redirect_to = other.endpoint
        with pytest.raises(DeliveryError, match="HTTP 302") as exc:
            c.submit(part(1))
        assert not exc.value.retryable and other.calls == [] and vat.cases == {}
    finally:
        other.stop()


def test_an_answer_trickling_past_the_timeout_is_cut_off(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat, timeout_seconds=1), monkeypatch)
    vat.trickle = 0.05  # each byte well within the read timeout; the whole answer would take ~30 s
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timeout_seconds") as exc:
        c.verify("business_licence", {"id_number": RESIDENT})
    assert exc.value.retryable and time.monotonic() - started < 5


@pytest.mark.parametrize("slow", ["late-headers-then-a-trickle", "trickling-headers"])
def test_timeout_seconds_bounds_the_whole_call_from_before_sending(tmp_path, vat, monkeypatch, slow):
    c = connect(tmp_path, config(vat, timeout_seconds=1), monkeypatch)
    assert c.verify("business_licence", {"id_number": RESIDENT}).ok  # the WSDL read, a connection pooled
    if slow == "late-headers-then-a-trickle":
        # the headers at 0.9 s (within the read timeout), then the body byte by byte: a clock
        # started at the headers would let the call run ~1.9 s
        vat.latency, vat.trickle = 0.9, 0.05
    else:
        # every header byte within the read timeout, the headers alone ~5 s
        vat.trickle, vat.trickle_headers = 0.05, True
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timeout_seconds") as exc:
        c.verify("business_licence", {"id_number": RESIDENT})
    elapsed = time.monotonic() - started
    assert exc.value.retryable and elapsed < 1.5
    assert elapsed <= c.longest_call()[0]
    vat.latency, vat.trickle, vat.trickle_headers = 0.0, 0.0, False
    assert c.verify("business_licence", {"id_number": RESIDENT}).ok  # the cut connection is not reused


def test_timeout_seconds_bounds_sending_a_request_the_department_does_not_read(tmp_path, vat, monkeypatch):
    scan = b"%PDF-1.4 " + bytes(range(256)) * (48 * 2**10)  # 12 MiB: more than the socket buffers hold
    store = Store({"扫描件": scan})
    conf = config(vat, timeout_seconds=2, materials={"mode": "inline", "max_inline_bytes": 2**25})
    c = connect(tmp_path, conf, monkeypatch)
    c.materials = store
    vat.stall_reading = 30  # takes the connection, never reads the request
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timeout_seconds") as exc:
        c.submit(part(1, materials=store.refs))
    assert exc.value.retryable and time.monotonic() - started < 3 and vat.cases == {}


def _loopback_certificate(folder: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "department.crt", folder / "department.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_timeout_seconds_bounds_the_whole_call_over_tls_too(tmp_path, monkeypatch):
    cert, key = _loopback_certificate(tmp_path)
    vat = VatDepartment(password=PASSWORD, registry={("CN", RESIDENT): ("林阿婆", "泰顺")}, tls=(cert, key)).start()
    try:
        c = connect(tmp_path, config(vat, timeout_seconds=1, ca_file=str(cert)), monkeypatch)
        assert vat.endpoint.startswith("https://") and c.verify("business_licence", {"id_number": RESIDENT}).ok
        vat.latency, vat.trickle = 0.9, 0.05
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timeout_seconds") as exc:
            c.verify("business_licence", {"id_number": RESIDENT})
        assert exc.value.retryable and time.monotonic() - started < 1.5
        vat.latency, vat.trickle = 0.0, 0.0
        assert c.verify("business_licence", {"id_number": RESIDENT}).ok
    finally:
        vat.stop()


def test_gzip_answers_are_read_and_counted_unpacked(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat, max_answer_bytes=2**20), monkeypatch)
    vat.gzip = True
    assert c.verify("business_licence", {"id_number": RESIDENT}).ok
    vat.padding = 8 * 2**20  # 8 MiB unpacked, a few KiB on the wire
    with pytest.raises(DeliveryError, match=r"answer larger than max_answer_bytes \(1048576\)") as exc:
        c.verify("business_licence", {"id_number": RESIDENT})
    assert not exc.value.retryable


# ---------------------------------------------------------------- mapping errors name FILE:LINE


def test_a_selector_that_finds_nothing_names_the_file_line_and_expression(tmp_path, vat, monkeypatch):
    conf = config(vat)
    conf["submit"]["remote_id"] = "caseNumber"
    c = connect(tmp_path, conf, monkeypatch)
    with pytest.raises(DeliveryError) as exc:
        c.submit(part(1))
    line = line_of(tmp_path, "vat-soap", "remote_id: caseNumber")
    assert f"connections/vat-soap.yaml:{line} (config.submit.remote_id)" in str(exc.value)
    assert "'caseNumber'" in str(exc.value) and not exc.value.retryable


def test_a_message_element_the_wsdl_lacks_names_the_message(tmp_path, vat, monkeypatch):
    conf = config(vat)
    conf["submit"]["message"]["caseType"] = "VAT"
    c = connect(tmp_path, conf, monkeypatch)
    with pytest.raises(DeliveryError) as exc:
        c.submit(part(1))
    line = line_of(tmp_path, "vat-soap", "message:", after="submit:")
    assert f"connections/vat-soap.yaml:{line} (config.submit.message)" in str(exc.value)
    assert "caseType" in str(exc.value) and vat.calls == []


def test_a_bad_expression_is_a_config_error_with_its_line(tmp_path, vat, monkeypatch):
    conf = config(vat)
    conf["verify"]["ok"] = "valid == "
    with pytest.raises(ConfigInvalid) as exc:
        connect(tmp_path, conf, monkeypatch)
    line = line_of(tmp_path, "vat-soap", "ok: 'valid == '")
    assert f"connections/vat-soap.yaml:{line}" in str(exc.value) and "verify.ok" in str(exc.value)


def test_a_mode_the_soap_transport_cannot_carry_is_refused_at_load(tmp_path, vat, monkeypatch):
    with pytest.raises(ConfigInvalid, match="inline as base64 or as pull links"):
        connect(tmp_path, config(vat, materials={"mode": "multipart"}), monkeypatch)


# ---------------------------------------------------------------- imports


def _import(home: Path, location: str) -> None:
    """The test WSDL in the hub home, its types imported from `location` instead."""
    folder = wsdl_folder(home)
    text = (folder / "vies_vat.wsdl").read_text(encoding="utf-8")
    (folder / "vies_vat.wsdl").write_text(
        text.replace('schemaLocation="vies_vat_types.xsd"', f'schemaLocation="{location}"'), encoding="utf-8"
    )


@pytest.mark.parametrize("where", ["file-url", "parent-folder"])
def test_a_local_wsdl_importing_from_outside_its_folder_is_refused(tmp_path, vat, monkeypatch, where):
    c = connect(tmp_path, config(vat), monkeypatch)
    # the imported schema exists and is valid: were it read, the check would pass
    shutil.copy(DATA / "vies_vat_types.xsd", tmp_path / "elsewhere.xsd")
    location = (tmp_path / "elsewhere.xsd").as_uri() if where == "file-url" else "../elsewhere.xsd"
    _import(tmp_path, location)
    result = c.check()
    shown = location if where == "file-url" else str(tmp_path / "elsewhere.xsd")
    assert not result.ok and "import refused" in result.message and shown in result.message
    line = line_of(tmp_path, "vat-soap", "wsdl:")
    assert f"connections/vat-soap.yaml:{line} (config.wsdl)" in result.message
    with pytest.raises(DeliveryError, match="import refused") as exc:
        c.submit(part(1))
    assert not exc.value.retryable and vat.calls == []


def test_a_wsdl_from_a_url_imports_only_from_its_own_server(tmp_path, vat, monkeypatch):
    wsdl = (DATA / "vies_vat.wsdl").read_bytes()
    vat.documents = {"vies_vat.wsdl": wsdl, "vies_vat_types.xsd": (DATA / "vies_vat_types.xsd").read_bytes()}
    c = connect(tmp_path, config(vat, wsdl=f"{vat.base}/docs/vies_vat.wsdl"), monkeypatch, name="vat-url")
    assert c.check().ok  # the relative import, from the same server, is read
    # the same schema from another origin (localhost is another host name for the same socket)
    other = vat.base.replace("127.0.0.1", "localhost") + "/docs/vies_vat_types.xsd"
    vat.documents["moved.wsdl"] = wsdl.replace(
        b'schemaLocation="vies_vat_types.xsd"', f'schemaLocation="{other}"'.encode()
    )
    fetched = len(vat.fetched)
    c2 = connect(tmp_path, config(vat, wsdl=f"{vat.base}/docs/moved.wsdl"), monkeypatch, name="vat-moved")
    result = c2.check()
    assert not result.ok and "import refused" in result.message and other in result.message
    assert vat.fetched[fetched:] == ["/docs/moved.wsdl"]  # the schema was never asked for


def test_a_wsdl_file_that_is_not_there_names_the_path(tmp_path, vat, monkeypatch):
    c = connect(tmp_path, config(vat, wsdl="wsdl/missing.wsdl"), monkeypatch)
    result = c.check()
    assert (
        not result.ok and "no such file" in result.message and str(tmp_path / "wsdl" / "missing.wsdl") in result.message
    )


def test_the_old_shape_is_refused_with_a_pointer_to_the_docs(tmp_path, vat, monkeypatch):
    conf = config(vat)
    conf["operations"] = {"submit": "submitCase"}
    with pytest.raises(ConfigInvalid, match=r"docs/connect/soap\.md"):
        connect(tmp_path, conf, monkeypatch)


def test_preview_shows_the_envelope_without_the_token(tmp_path, vat, monkeypatch):
    store = Store({"营业执照": b"%PDF-1.4 licence"})
    c = connect(
        tmp_path,
        config(vat, wsse={"username": "tongban", "password": "${VAT_WSSE_PASSWORD}", "digest": False}),
        monkeypatch,
    )
    c.materials = store
    (preview,) = c.preview(part(1, materials=store.refs))
    assert preview.summary == f"SOAP submitCase at {vat.endpoint}"
    assert "<ns0:reference>part-1</ns0:reference>" in preview.body and PASSWORD not in preview.body
    assert "***" in preview.body and vat.calls == []


def test_hub_connectors_check_finds_a_relative_wsdl_in_the_home_given_by_home(tmp_path, vat, monkeypatch):
    """`hub --home HOME connectors check` from elsewhere: the WSDL path is relative to HOME."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "hub", "init", str(home)], check=True, capture_output=True)
    connect(home, config(vat), monkeypatch, name="shuiwu-vat")
    env = {k: v for k, v in os.environ.items() if k != "HUB_HOME"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env["VAT_WSSE_PASSWORD"] = PASSWORD
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), "connectors", "check", "shuiwu-vat"],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "credentials" in result.stdout and vat.calls == [(PATH, "checkVat")]


def test_several_bindings_need_a_name_and_the_named_one_is_used(tmp_path, vat, monkeypatch):
    folder = wsdl_folder(tmp_path)
    text = (folder / "vies_vat.wsdl").read_text(encoding="utf-8")
    binding = text[text.index('  <wsdl:binding name="checkVatBinding"') : text.index("</wsdl:binding>") + 15]
    soap12 = (
        binding.replace('name="checkVatBinding"', 'name="checkVatBinding12"')
        .replace("wsdlsoap:", "soap12:")
        .replace(
            '<soap12:binding style="document"',
            '<soap12:binding xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" style="document"',
        )
        .replace("<soap12:operation ", '<soap12:operation xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" ')
        .replace("<soap12:body ", '<soap12:body xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" ')
    )
    (folder / "two.wsdl").write_text(text.replace(binding, binding + "\n" + soap12), encoding="utf-8")
    unnamed = connect(tmp_path, config(vat, wsdl="wsdl/two.wsdl", binding=None), monkeypatch, name="vat-two")
    result = unnamed.check()
    assert not result.ok and "several bindings" in result.message and "checkVatBinding12" in result.message
    named = connect(tmp_path, config(vat, wsdl="wsdl/two.wsdl"), monkeypatch, name="vat-named")
    assert named.check().ok and vat.calls == [(PATH, "checkVat")]
