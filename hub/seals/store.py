"""Where seals live: `<home>/seals/<authority>/` holds `seal.key` (PKCS#8, mode 0600, never
printed), `seal.crt` (the seal's certificate) and `chain.pem` (the CA certificates up to the
root); `<home>/seals/trust/*.pem` are the roots a verification trusts. The sandbox's test CA
lives in `<home>/seals/test-ca/` (its key too: a test CA is not a real one)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from hub import crypto

if TYPE_CHECKING:
    from hub.context import Hub

HUB_AUTHORITY = "hub"  # the hub's own seal, for intake notices (收件凭证)


class SealMissing(LookupError):
    """No seal for an authority: `hub seals test-ca` (sandbox) or `hub seals import` makes one."""


@dataclass(frozen=True)
class Seal:
    authority: str  # a department code, or HUB_AUTHORITY
    name: str  # the seal's holder as printed on it (县民政局)
    key: crypto.SigningKey
    certificate: x509.Certificate
    chain: list[x509.Certificate]  # issuers, up to the root

    @property
    def algorithm(self) -> str:
        return self.key.algorithm


def seals_dir(hub: Hub) -> Path:
    return hub.settings.home / "seals"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes()) if path.exists() else []


def load_seal(hub: Hub, authority: str) -> Seal:
    folder = seals_dir(hub) / authority
    if not (folder / "seal.key").exists() or not (folder / "seal.crt").exists():
        raise SealMissing(f"no seal for {authority!r} in {folder} (hub seals test-ca, or hub seals import)")
    key = crypto.load_private((folder / "seal.key").read_bytes())
    cert = x509.load_pem_x509_certificate((folder / "seal.crt").read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Seal(authority, str(cn[0].value) if cn else authority, key, cert, _pem_certs(folder / "chain.pem"))


def trust_roots(hub: Hub) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for path in sorted((seals_dir(hub) / "trust").glob("*.pem")):
        roots.extend(_pem_certs(path))
    return roots


def _name(common_name: str, county: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, county),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_test_seals(hub: Hub, *, algorithm: str = "ecdsa-p256") -> list[str]:
    """The sandbox's test CA and a seal for the hub and every department that has none yet:
    what `hub init` and the demo need. Returns the authorities it made seals for. Real seals are
    imported (`hub seals import`); a test CA's certificates say 测试 in their names."""
    if algorithm == "sm2":
        raise crypto.CryptoError("SM2 test seals are made by `hub seals test-ca --algorithm sm2`")
    county = hub.settings.county.name
    ca_dir = seals_dir(hub) / "test-ca"
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    if (ca_dir / "ca.key").exists():
        ca_key = crypto.load_private((ca_dir / "ca.key").read_bytes())
        ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    else:
        ca_key = crypto.generate(algorithm)
        subject = _name(f"{county}电子印章测试CA", county)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(ca_key.cryptography_key().public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key.cryptography_key(), hashes.SHA256())
        )
        _write_private(ca_dir / "ca.key", ca_key.pem())
        (ca_dir / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (seals_dir(hub) / "trust").mkdir(parents=True, exist_ok=True)
        (seals_dir(hub) / "trust" / "test-ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    made = []
    holders = {HUB_AUTHORITY: f"{county}政务服务中心"} | {code: d.name for code, d in hub.catalog.departments.items()}
    for authority, holder in holders.items():
        folder = seals_dir(hub) / authority
        if (folder / "seal.key").exists():
            continue
        key = crypto.generate(algorithm)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(holder, county))
            .issuer_name(ca_cert.subject)
            .public_key(key.cryptography_key().public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3 * 365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(ca_key.cryptography_key(), hashes.SHA256())
        )
        _write_private(folder / "seal.key", key.pem())
        (folder / "seal.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / "chain.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        made.append(authority)
    return made
