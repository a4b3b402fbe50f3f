"""RFC 3161 timestamps of sealed evidence, against a real timestamp authority on loopback: a TSA
built from asn1crypto's RFC 3161 and CMS definitions that signs its tokens (OpenSSL verifies
them), and variants of it that answer with another digest, another nonce, no nonce, a refusal or
garbage — each refused, nothing kept beside the evidence."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from hub import signing
from hub.cli import app as cli
from hub.signing_key import signing_key
from tests.test_signing import GJJ, accepted_case, fake_segments, walk_to_seal
from video import evidence, timestamps
from video.evidence import SIGNATURE, TIMESTAMP
from video.sessions import seal_session


@dataclass
class Authority:
    """The TSA's key and certificate (self-signed, extended key usage timeStamping, as RFC 3161
    §2.3 requires), and how it misbehaves: `mode`."""

    key: ec.EllipticCurvePrivateKey
    cert_pem: bytes
    cert: x509.Certificate
    mode: str = "good"
    requests: list[tsp.TimeStampReq] = field(default_factory=list)

    @classmethod
    def make(cls) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "Test TSA 测试时间戳")])
        now = datetime.now(UTC)
        cert = (
            cx509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(cx509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(key, cert.public_bytes(serialization.Encoding.PEM), x509.Certificate.load(der))

    def reply(self, body: bytes) -> bytes:
        req = tsp.TimeStampReq.load(body)
        self.requests.append(req)
        if self.mode == "garbage":
            return b"\x30\x03\x02\x01"
        if self.mode == "granted, no token":
            return timestamps.TimeStampResp({"status": {"status": "granted"}}).dump()
        if self.mode == "rejection":
            return timestamps.TimeStampResp(
                {"status": {"status": "rejection", "status_string": ["policy not supported"]}}
            ).dump()
        imprint = req["message_imprint"]
        if self.mode == "wrong imprint":  # e.g. an answer meant for another request
            imprint = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"other").digest()}
        info = {
            "version": "v1",
            "policy": "1.2.3.4.1",
            "message_imprint": imprint,
            "serial_number": len(self.requests),
            "gen_time": datetime.now(UTC),
        }
        if self.mode == "wrong nonce":
            info["nonce"] = req["nonce"].native + 1
        elif self.mode != "no nonce":
            info["nonce"] = req["nonce"].native
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": self._token(info)}).dump()

    def _token(self, info: dict) -> cms.ContentInfo:
        """A CMS SignedData over the TSTInfo, signed by the TSA as RFC 3161 §2.4.2 and RFC 5816
        want it: content type and digest as signed attributes, and the signing certificate's hash."""
        tst = tsp.TSTInfo(info)
        content = tst.dump()
        attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(self.cert.dump()).digest()}]}],
                },
            ]
        )
        signature = self.key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))  # over the attributes as a SET
        signer = {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                "issuer_and_serial_number",
                {"issuer": self.cert.issuer, "serial_number": self.cert.serial_number},
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature,
        }
        signed = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": "sha256"}],
                "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(content)},
                "certificates": [self.cert],
                "signer_infos": [signer],
            }
        )
        return cms.ContentInfo({"content_type": "signed_data", "content": signed})


@pytest.fixture
def tsa() -> Iterator[tuple[Authority, str]]:
    authority = Authority.make()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            assert self.headers["content-type"] == "application/timestamp-query"
            out = authority.reply(body)
            self.send_response(200)
            self.send_header("content-type", "application/timestamp-reply")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield authority, f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()
        server.server_close()


def sealed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / SIGNATURE).write_bytes(b"\x01" * 64)  # what is time-stamped: the manifest's signature
    return folder


def test_a_granted_timestamp_of_the_signature_is_kept_and_openssl_verifies_it(tsa, tmp_path: Path):
    authority, url = tsa
    folder = sealed_folder(tmp_path)
    kept = timestamps.timestamp(folder, url)
    assert kept == folder / TIMESTAMP and kept.is_file()
    [req] = authority.requests
    digest = hashlib.sha256((folder / SIGNATURE).read_bytes()).digest()
    assert req["message_imprint"]["hashed_message"].native == digest and req["cert_req"].native is True
    info = timestamps.check_reply(kept.read_bytes(), digest, req["nonce"].native)
    assert info["serial_number"].native == 1
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to check the token independently")
    (tmp_path / "tsa.pem").write_bytes(authority.cert_pem)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(folder / SIGNATURE), "-in", str(kept),
         "-CAfile", str(tmp_path / "tsa.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("wrong imprint", "another digest"),
        ("wrong nonce", "nonce"),
        ("no nonce", "nonce"),
        ("rejection", r"refused \(rejection: policy not supported\)"),
        ("garbage", "not a TimeStampResp"),
        ("granted, no token", "sent no token"),
    ],
)
def test_a_reply_that_is_not_a_timestamp_of_what_was_asked_is_refused(tsa, tmp_path: Path, mode: str, message: str):
    authority, url = tsa
    authority.mode = mode
    folder = sealed_folder(tmp_path)
    with pytest.raises(timestamps.TimestampRefused, match=message):
        timestamps.timestamp(folder, url)
    assert not (folder / TIMESTAMP).exists()


def test_a_reply_kept_for_one_request_does_not_pass_for_another(tsa, tmp_path: Path):
    authority, url = tsa
    folder = sealed_folder(tmp_path)
    token = timestamps.timestamp(folder, url).read_bytes()
    [req] = authority.requests
    digest, nonce = req["message_imprint"]["hashed_message"].native, req["nonce"].native
    timestamps.check_reply(token, digest, nonce)
    with pytest.raises(timestamps.TimestampRefused, match="nonce"):
        timestamps.check_reply(token, digest, nonce ^ 1)
    with pytest.raises(timestamps.TimestampRefused, match="another digest"):
        timestamps.check_reply(token, hashlib.sha256(b"x").digest(), nonce)


def test_the_request_is_a_standard_timestampreq():
    digest = hashlib.sha256(b"manifest signature").digest()
    der = timestamps.request(digest, 12345)
    parsed = tsp.TimeStampReq.load(der, strict=True)
    assert parsed.native == {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256", "parameters": None}, "hashed_message": digest},
        "req_policy": None,
        "nonce": 12345,
        "cert_req": True,
        "extensions": None,
    }
    # and OpenSSL reads it as one
    if shutil.which("openssl"):
        done = subprocess.run(["openssl", "ts", "-query", "-in", "/dev/stdin", "-text"], input=der, capture_output=True)
        assert done.returncode == 0 and b"Nonce: 0x3039" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------- sealing with a TSA configured


@pytest.mark.parametrize("mode", ["good", "wrong nonce"])
def test_sealing_asks_the_configured_tsa_and_keeps_only_a_token_that_checks_out(hub, tsa, mode: str):
    authority, url = tsa
    authority.mode = mode
    hub.settings.signing.tsa_url = url
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    seal_session(hub, s.id, GJJ)  # the seal stands either way
    folder = signing.folder_of(hub, s)
    assert len(authority.requests) == 1
    assert (folder / TIMESTAMP).is_file() == (mode == "good")
    assert evidence.verify_folder(folder, signing_key(hub).public_key()).ok


def test_hub_evidence_timestamp_asks_again(hub, tsa, monkeypatch: pytest.MonkeyPatch):
    """A TSA that failed at sealing time is asked again from the command line."""
    authority, url = tsa
    authority.mode = "wrong imprint"
    hub.settings.signing.tsa_url = url
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    seal_session(hub, s.id, GJJ)
    folder = signing.folder_of(hub, s)
    assert not (folder / TIMESTAMP).exists()
    monkeypatch.setattr("video.cli.open_hub", lambda ctx: hub)
    refused = CliRunner().invoke(cli, ["evidence", "timestamp", s.id[:8]])
    assert refused.exit_code == 1 and not (folder / TIMESTAMP).exists()
    authority.mode = "good"
    done = CliRunner().invoke(cli, ["evidence", "timestamp", s.id[:8]])
    assert done.exit_code == 0, done.output
    assert (folder / TIMESTAMP).is_file() and len(authority.requests) == 3
