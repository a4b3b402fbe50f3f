"""A real RFC 3161 timestamp authority on loopback, for tests: built from asn1crypto's RFC 3161 and
CMS definitions, it signs its tokens (OpenSSL and pyHanko verify them), and can misbehave on
purpose (`Authority.mode`): another digest, another nonce, no nonce, a refusal or garbage.
Signing evidence (tests/test_timestamps.py) and PDF seals (tests/test_seals.py) use it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from asn1crypto import cms, core, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class TimeStampResp(core.Sequence):
    """RFC 3161 §2.4.2's TimeStampResp with the token OPTIONAL, as the RFC has it (asn1crypto's
    declares it required, so a refusal could not be written with it)."""

    _fields: ClassVar[list] = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


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
            return TimeStampResp({"status": {"status": "granted"}}).dump()
        if self.mode == "rejection":
            return TimeStampResp({"status": {"status": "rejection", "status_string": ["policy not supported"]}}).dump()
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


@contextmanager
def serving(authority: Authority | None = None) -> Iterator[tuple[Authority, str]]:
    """A TSA answering on 127.0.0.1 until the block ends: (the authority, its URL)."""
    authority = authority or Authority.make()

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
