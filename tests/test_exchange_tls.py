"""TLS trust towards a partner hub (跨省通办): the partner file trusts its authority's CA
(`tls.ca_file`) or pins its server certificate (`tls.pinned_certificate`) — a self-signed one or
one a CA issued that we do not otherwise trust. 福鼎 is served over HTTPS by a real uvicorn
process with a certificate made here; 泰顺 pings it (a signed request, a signed answer)."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from hub.context import Hub
from hub.errors import HubError
from hub.exchange import catalogue
from hub.home import write_home
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import MessageLogEntry
from plugins.sandbox.partner_hub import pair, write_partner_home
from tests.support.partner_hubs import free_port, hub_env

HOST = "127.0.0.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("福建政务测试CA", ca_key, _name("福建政务测试CA"), ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(HOST, leaf_key, ca.subject, ca_key, ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert(HOST, other_key, _name(HOST), other_key, ca=False)  # self-signed, not the server's
    (root / "ca.pem").write_bytes(_pem(ca))
    (root / "server.pem").write_bytes(_pem(leaf) + _pem(ca))
    (root / "leaf.pem").write_bytes(_pem(leaf))
    (root / "other.pem").write_bytes(_pem(other))
    (root / "server.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    a, b = write_home(root / "taishun"), write_partner_home(root / "fuding")
    urls = {}
    for name, home in (("a", a), ("b", b)):
        url = f"sqlite:///{home / 'hub.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        urls[name] = url
    port = free_port()
    pair(a, f"http://{HOST}:{free_port()}", b, f"https://{HOST}:{port}")
    env = {**hub_env(urls["b"]), "HUB_HOME": str(b)}
    log = (root / "b.log").open("wb")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "hub.web.asgi:app", "--host", HOST, "--port", str(port)),
            *("--ssl-keyfile", str(root / "server.key"), "--ssl-certfile", str(root / "server.pem")),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:  # up when its TLS port answers (verified against the CA we made)
        try:
            trust = ssl.create_default_context(cafile=str(root / "ca.pem"))
            if httpx.get(f"https://{HOST}:{port}/healthz", verify=trust, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (root / "b.log").read_text(errors="replace")
        time.sleep(0.05)
    try:
        yield root, a, urls["a"], urls["b"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _ping(root: Path, home: Path, db_url: str, tls: dict | None) -> None:
    path = home / "partners" / "fuding.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc.pop("tls", None)
    if tls:
        doc["tls"] = {k: str(root / v) for k, v in tls.items()}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    hub = Hub.open(home, database_url=db_url)
    try:
        got = catalogue.ask(hub, hub.partners.by_name["fuding"], "ping", {})
        assert got.refused is None and got.answer.payload == {"result": "pong"}
    finally:
        hub.close()


@pytest.mark.parametrize(
    "tls",
    [{"ca_file": "ca.pem"}, {"pinned_certificate": "leaf.pem"}],
    ids=["the authority's CA", "the server certificate pinned (CA-issued)"],
)
def test_a_trusted_partner_answers_over_tls(tls_pair, tls):
    root, home, db_url, _ = tls_pair
    _ping(root, home, db_url, tls)


@pytest.mark.parametrize(
    "tls",
    [None, {"pinned_certificate": "other.pem"}],
    ids=["system trust only", "another certificate pinned"],
)
def test_an_untrusted_certificate_is_refused_before_anything_is_sent(tls_pair, tls):
    root, home, db_url, partner_db = tls_pair
    before = _logged(partner_db)
    with pytest.raises(HubError, match="CERTIFICATE_VERIFY_FAILED"):
        _ping(root, home, db_url, tls)
    assert _logged(partner_db) == before  # the handshake failed: the partner never saw a message


def _logged(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(MessageLogEntry)).scalar_one()
    finally:
        engine.dispose()
