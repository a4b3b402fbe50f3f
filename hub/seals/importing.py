"""Importing a real seal (from the county's or province's CA) into `<home>/seals/<authority>/`,
and trusting a root. Every check names the file it is about; nothing is written unless all pass:

- the key reads (PKCS#12 with its password file, or PEM PKCS#8 / SEC1), and is one a seal can
  sign with (ECDSA P-256, RSA 2048/3072, SM2);
- it matches the certificate's public key;
- the certificate is valid now and, when it says what it is for (keyUsage), it may sign
  (digitalSignature or nonRepudiation);
- it chains (through the given chain) to a root in `<home>/seals/trust/` — `hub seals trust`
  adds one first;
- the image, when given, is a PNG."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from asn1crypto import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from hub import crypto
from hub.errors import HubError
from hub.seals import certs
from hub.seals.image import check_image
from hub.seals.store import DEFAULT_TYPE, SEAL_ALGORITHMS, TEST_CA, TRUST, trust_certs, write_seal

AUTHORITY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


class SealImportError(HubError):
    """A seal or root that cannot be imported; the message names the file and why."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SealImportError(f"{path}: cannot read ({e.strerror})") from None


def _certs_from(path: Path) -> list[x509.Certificate]:
    try:
        found = certs.load_pem_certs(_read(path))
    except (ValueError, TypeError) as e:
        raise SealImportError(f"{path}: not a PEM or DER certificate ({e})") from None
    if not found:
        raise SealImportError(f"{path}: no certificate in the file")
    return found


def _pkcs12(
    p12: Path, password_file: Path | None
) -> tuple[crypto.SigningKey, x509.Certificate, list[x509.Certificate]]:
    password = _read(password_file).rstrip(b"\r\n") if password_file else None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(_read(p12), password)
    except ValueError as e:
        raise SealImportError(f"{p12}: not a PKCS#12 file this password opens ({e})") from None
    if key is None or cert is None:
        raise SealImportError(f"{p12}: the PKCS#12 file holds no key and certificate")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signing = crypto.load_private(der)
    pem = serialization.Encoding.DER
    return (
        signing,
        x509.Certificate.load(cert.public_bytes(pem)),
        [x509.Certificate.load(c.public_bytes(pem)) for c in extra or []],
    )


def check_authority(authority: str) -> None:
    if not authority or set(authority) - AUTHORITY_CHARS or authority in (TEST_CA, TRUST) or len(authority) > 40:
        raise SealImportError(
            f"AUTHORITY {authority!r}: a department code or 'hub' (lower-case letters, digits, '-', '_')"
        )


def import_seal(
    root: Path,
    authority: str,
    *,
    p12: Path | None = None,
    password_file: Path | None = None,
    key_file: Path | None = None,
    cert_file: Path | None = None,
    chain_file: Path | None = None,
    image_file: Path | None = None,
    kind: str = DEFAULT_TYPE,
    holder: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Check and store a real seal for `authority` under `root` (`<home>/seals`); returns the
    holder's name. Replaces the authority's seal (test or not) only when every check passes."""
    check_authority(authority)
    for option, value, most in (("--type", kind, 12), ("--holder", holder, 40)):
        if value is not None and (not value.strip() or len(value) > most or not value.isprintable()):
            raise SealImportError(f"{option}: 1 to {most} printable characters")
    if p12 is not None:
        if key_file or cert_file:
            raise SealImportError("--p12 or --key/--cert, not both")
        key, cert, chain = _pkcs12(p12, password_file)
        key_name, cert_name = str(p12), str(p12)
    else:
        if key_file is None or cert_file is None:
            raise SealImportError("either --p12 FILE, or --key FILE and --cert FILE")
        try:
            key = crypto.load_private(_read(key_file))
        except crypto.CryptoError as e:
            raise SealImportError(f"{key_file}: {e}") from None
        cert, *chain = _certs_from(cert_file)
        key_name, cert_name = str(key_file), str(cert_file)
    if chain_file is not None:
        chain = chain + _certs_from(chain_file)
    if key.algorithm not in SEAL_ALGORITHMS:
        raise SealImportError(f"{key_name}: a {key.algorithm} key cannot seal PDFs ({', '.join(SEAL_ALGORITHMS)})")
    try:
        cert_key = certs.public_key(cert)
    except crypto.CryptoError as e:
        raise SealImportError(f"{cert_name}: {e}") from None
    if cert_key.der != key.public().der:
        raise SealImportError(f"{key_name}: the key does not match the certificate in {cert_name}")
    at = now or dt.datetime.now(dt.UTC)
    if not (cert.not_valid_before <= at <= cert.not_valid_after):
        raise SealImportError(
            f"{cert_name}: the certificate is valid from {cert.not_valid_before:%Y-%m-%d} to "
            f"{cert.not_valid_after:%Y-%m-%d}, not now"
        )
    usage = cert.key_usage_value
    if usage is not None and not ({"digital_signature", "non_repudiation"} & set(usage.native)):
        raise SealImportError(f"{cert_name}: keyUsage does not allow signing (digitalSignature or nonRepudiation)")
    roots = trust_certs(root)
    problems = certs.chain_problems(cert, chain, roots, at)
    if problems:
        raise SealImportError(
            f"{cert_name}: {'; '.join(problems)} (trusted roots: seals/trust/*.pem; add one with `hub seals trust ROOT.pem`)"
        )
    image = None
    if image_file is not None:
        image = _read(image_file)
        try:
            check_image(image, str(image_file))
        except ValueError as e:
            raise SealImportError(str(e)) from None
    name = holder or str(cert.subject.native.get("organization_name") or "")
    cn = str(cert.subject.native.get("common_name") or "")
    name = holder or cn or name or authority
    # the chain kept is what leads to the root (the root itself included), nothing unrelated
    stored = [c for c in chain if c.dump() != cert.dump()]
    write_seal(root / authority, key, cert, stored, holder=name, kind=kind, image=image, test=False)
    return name


def trust_root(root: Path, pem_file: Path) -> list[str]:
    """Add the CA certificate(s) in `pem_file` to `<home>/seals/trust/`; returns their names."""
    found = _certs_from(pem_file)
    for c in found:
        bc = c.basic_constraints_value
        if bc is None or not bc["ca"].native:
            raise SealImportError(f"{pem_file}: {c.subject.human_friendly} is not a CA certificate")
        # an intermediate may be trusted directly (an anchor), but a self-signed one must check
        if c.self_signed != "no" and not certs.signature_ok(c, c):
            raise SealImportError(f"{pem_file}: the self-signature of {c.subject.human_friendly} does not verify")
    folder = root / TRUST
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for c in found:
        (folder / f"{c.sha256.hex()[:16]}.pem").write_bytes(certs.to_pem(c))
        names.append(str(c.subject.native.get("common_name") or c.subject.human_friendly))
    return names
