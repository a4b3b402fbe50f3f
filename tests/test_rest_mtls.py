"""Mutual TLS: the case department over HTTPS with its own CA, requiring a client certificate.
A test CA, server and client certificates are made here with `cryptography`."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from plugins.rest.connector import RestConnector
from plugins.rest.spec import RestSpec
from tests.support.rest_case_department import CaseDepartment


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any], *, ca: bool = False, usage=None
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0])
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer[1], hashes.SHA256())


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    crt, pem = folder / f"{stem}.crt", folder / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pem.chmod(0o600)
    return crt, pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("县医保测试CA", ca_key, (_name("县医保测试CA"), ca_key), ca=True)
    out = {"ca": _write(folder, "ca", ca, ca_key)[0]}
    for stem, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        out[f"{stem}.crt"], out[f"{stem}.key"] = _write(
            folder, stem, _issue(stem, key, (ca.subject, ca_key), usage=usage), key
        )
    # a client certificate from a CA the department does not trust
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _issue("rogue", rogue_key, (_name("rogue"), rogue_key), ca=True, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    out["rogue.crt"], out["rogue.key"] = _write(folder, "rogue", rogue, rogue_key)
    return out


@pytest.fixture
def dept(pki: dict[str, Path]) -> Iterator[CaseDepartment]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED  # no certificate, no connection
    with CaseDepartment(tls=context) as d:
        yield d


def connection(dept: CaseDepartment, pki: dict[str, Path], client: str | None, **over: Any) -> RestConnector:
    spec: dict[str, Any] = {
        "base_url": dept.url,
        "ca_file": str(pki["ca"]),
        "auth": {
            "oauth2": {
                "token_url": f"{dept.root}/oauth/token",
                "client_id": dept.client_id,
                "client_secret": SecretStr(dept.client_secret),
            }
        },
        "retries": 0,
        "check": {"path": "/me"},
        **over,
    }
    if client:
        spec["client_cert"] = {"cert_file": str(pki[f"{client}.crt"]), "key_file": str(pki[f"{client}.key"])}
    return RestConnector("case-tls", RestSpec.model_validate(spec))


def test_check_passes_with_the_client_certificate(dept: CaseDepartment, pki: dict[str, Path]) -> None:
    assert dept.url.startswith("https://")
    result = connection(dept, pki, "client").check()
    assert result.ok, result.message


def test_check_fails_without_a_trusted_client_certificate(dept: CaseDepartment, pki: dict[str, Path]) -> None:
    for client in (None, "rogue"):
        result = connection(dept, pki, client).check()
        assert not result.ok and "connection failed" in result.message
    assert dept.issued == 0  # the handshake failed before any token was asked for


def test_the_department_certificate_is_verified(dept: CaseDepartment, pki: dict[str, Path]) -> None:
    result = connection(dept, pki, "client", ca_file=None).check()  # the system CAs do not know the county CA
    assert not result.ok and "connection failed" in result.message


def test_a_client_certificate_alone_authenticates(dept: CaseDepartment, pki: dict[str, Path]) -> None:
    c = connection(dept, pki, "client", auth=None)  # no header credential: the department then answers 401
    assert c.spec.auth is None and "401" in c.check().message
    with pytest.raises(ValueError, match="auth or client_cert"):
        connection(dept, pki, None, auth=None)
