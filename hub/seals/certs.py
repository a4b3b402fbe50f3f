"""X.509 certificates for seals, built with asn1crypto and signed through hub.crypto — one way for
every algorithm, SM2 included (pyca/cryptography cannot sign an SM2 certificate), and checked
the same way: `signature_ok(cert, issuer)` verifies an issuer's signature over `tbs_certificate`."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from datetime import datetime

from asn1crypto import algos, core, keys, x509

from hub import crypto

SM3_OID = crypto.HASH_OIDS["sm3"]
SM2_SM3_OID = crypto.SIGNATURE_OIDS["sm2"]


def _register() -> None:
    """Teach asn1crypto the names of SM3 and SM2-with-SM3 so pyHanko's CMS code can name them."""
    for cls, oid, name in (
        (algos.DigestAlgorithmId, SM3_OID, "sm3"),
        (algos.SignedDigestAlgorithmId, SM2_SM3_OID, "sm2_sm3"),
    ):
        if oid not in cls._map:
            cls._map[oid] = name
            if cls._reverse_map is not None:
                cls._reverse_map[name] = oid


_register()


def signature_algorithm(algorithm: str) -> algos.SignedDigestAlgorithm:
    """The AlgorithmIdentifier a signature by a key of `algorithm` carries (hub.crypto signs
    ECDSA and RSA with SHA-256, SM2 with SM3)."""
    if algorithm == "sm2":
        return algos.SignedDigestAlgorithm({"algorithm": "sm2_sm3"})
    if algorithm == "ecdsa-p256":
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    if algorithm in ("rsa-2048", "rsa-3072"):
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
    raise crypto.CryptoError(f"{algorithm} cannot sign seals (ecdsa-p256, rsa-2048, rsa-3072 or sm2)")


def digest_of(algorithm: str) -> str:
    """The digest a seal of `algorithm` signs PDFs with."""
    return "sm3" if algorithm == "sm2" else "sha256"


def name(common_name: str, county: str, unit: str | None = None) -> x509.Name:
    attrs = {"country_name": "CN", "organization_name": county, "common_name": common_name}
    if unit:
        attrs["organizational_unit_name"] = unit
    return x509.Name.build(attrs, use_printable=False)


def _time(t: dt.datetime) -> x509.Time:
    return x509.Time({"utc_time": t} if t.year < 2050 else {"general_time": t})


def issue(
    *,
    subject: x509.Name,
    public: crypto.VerifyKey,
    issuer: x509.Name,
    issuer_key: crypto.SigningKey,
    days: int,
    ca: bool,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A certificate for `public`, signed by `issuer_key`: a CA (keyCertSign, cRLSign) or a seal
    (digitalSignature, nonRepudiation)."""
    start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0) - dt.timedelta(minutes=5)
    spki = keys.PublicKeyInfo.load(public.der)
    issuer_spki = keys.PublicKeyInfo.load(issuer_key.public().der)
    usage = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"}
    extensions = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": ca, "path_len_constraint": 0 if ca else None},
        },
        {"extn_id": "key_usage", "critical": True, "extn_value": usage},
        {"extn_id": "key_identifier", "critical": False, "extn_value": _key_id(spki)},
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": _key_id(issuer_spki)},
        },
    ]
    sig_alg = signature_algorithm(issuer_key.algorithm)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": int.from_bytes(secrets.token_bytes(16), "big") >> 1,
            "signature": sig_alg,
            "issuer": issuer,
            "validity": {"not_before": _time(start), "not_after": _time(start + dt.timedelta(days=days))},
            "subject": subject,
            "subject_public_key_info": spki,
            "extensions": extensions,
        }
    )
    signature = issuer_key.sign(tbs.dump())
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": sig_alg, "signature_value": signature})


def _key_id(spki: keys.PublicKeyInfo) -> bytes:
    return hashlib.sha1(bytes(spki["public_key"])).digest()  # RFC 5280 §4.2.1.2 method 1


def public_key(cert: x509.Certificate) -> crypto.VerifyKey:
    return crypto.load_public(cert["tbs_certificate"]["subject_public_key_info"].dump())


def signature_ok(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer`'s key signed `cert` (ECDSA/RSA with SHA-256, or SM2 with SM3)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        key = public_key(issuer)
    except crypto.CryptoError:
        return False
    oid = cert["signature_algorithm"]["algorithm"].dotted
    expected = {
        "sm2": SM2_SM3_OID,
        "ecdsa-p256": "1.2.840.10045.4.3.2",
        "rsa-2048": "1.2.840.113549.1.1.11",
        "rsa-3072": "1.2.840.113549.1.1.11",
    }.get(key.algorithm)
    if oid != expected:
        return False
    return key.verify(cert["signature_value"].native, cert["tbs_certificate"].dump())


def to_pem(cert: x509.Certificate) -> bytes:
    from asn1crypto import pem

    return pem.armor("CERTIFICATE", cert.dump())


def load_pem_certs(data: bytes) -> list[x509.Certificate]:
    from asn1crypto import pem

    if not pem.detect(data):
        return [x509.Certificate.load(data)] if data else []
    return [x509.Certificate.load(der) for _t, _h, der in pem.unarmor(data, multiple=True)]


def chain_problems(
    cert: x509.Certificate, pool: list[x509.Certificate], roots: list[x509.Certificate], at: datetime
) -> list[str]:
    """Why `cert` does not chain to one of `roots` through `pool` (empty: it does)."""
    problems = []
    current = cert
    for _depth in range(8):
        if not (current.not_valid_before <= at <= current.not_valid_after):
            problems.append(f"certificate {cn(current)!r} not valid at {at.isoformat()}")
        root = next((r for r in roots if r.subject == current.issuer and signature_ok(current, r)), None)
        if root is not None:
            if root.dump() != current.dump() and not _is_ca(root):
                problems.append(f"root {cn(root)!r} is not a CA")
            return problems
        issuer = next((c for c in pool if c.subject == current.issuer and signature_ok(current, c)), None)
        if issuer is None or issuer.dump() == current.dump():
            problems.append(f"the certificate {cn(current)!r} does not chain to a trusted root")
            return problems
        if not _is_ca(issuer):
            problems.append(f"issuer {cn(issuer)!r} is not a CA")
            return problems
        current = issuer
    problems.append("certificate chain too long")
    return problems


def _is_ca(cert: x509.Certificate) -> bool:
    bc = cert.basic_constraints_value
    return bool(bc is not None and bc["ca"].native)


def cn(cert: x509.Certificate) -> str:
    return str(cert.subject.native.get("common_name", ""))
