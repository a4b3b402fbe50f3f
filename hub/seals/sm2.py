"""Verifying SM2 seals (GB/T 38540 style: a CMS SignedData with SM3 digests and an SM2 signature)
ourselves, since pyHanko, poppler's pdfsig and Adobe Reader do not implement SM2:

1. SM3 over the bytes the signature's /ByteRange covers equals the signed messageDigest attribute;
2. the SM2 signature (with the default distinguishing identifier) over the DER signed attributes
   verifies with the signer certificate's key;
3. the certificate chain — each certificate's SM2 signature by its issuer, validity at the
   signing time, CA flags — ends at a root in `<home>/seals/trust/`;
4. coverage and what was added after the seal: pyHanko's own analysis (it needs no crypto).

Each step is done through hub.crypto (gmssl); tests check the same signature and chain with the
OpenSSL command line."""

from __future__ import annotations

from datetime import UTC, datetime

from asn1crypto import x509

from hub import crypto
from hub.seals import certs
from hub.seals.verdict import SealCheck, coverage_ok


def _signed_bytes(sig) -> bytes:
    stream = sig.reader.stream
    start1, len1, start2, len2 = sig.byte_range
    stream.seek(start1)
    first = stream.read(len1)
    stream.seek(start2)
    return first + stream.read(len2)


def check_sm2(sig, roots: list[x509.Certificate]):
    signer_info = sig.signer_info
    cert = sig.signer_cert
    problems: list[str] = []
    attrs = signer_info["signed_attrs"]
    by_type = {a["type"].native: a["values"][0] for a in attrs}
    # PAdES puts the signing time in the signature dictionary (/M), not in a signed attribute
    signed_at = by_type["signing_time"].native if "signing_time" in by_type else sig.self_reported_timestamp
    digest_alg = signer_info["digest_algorithm"]["algorithm"].dotted
    intact = False
    if digest_alg != certs.SM3_OID:
        problems.append(f"an SM2 seal must digest with SM3, not {digest_alg}")
    elif "message_digest" not in by_type:
        problems.append("no messageDigest attribute")
    else:
        intact = crypto.digest("sm3", _signed_bytes(sig)) == by_type["message_digest"].native
        if not intact:
            problems.append("the signed bytes were changed")
    key = certs.public_key(cert)
    valid = key.algorithm == "sm2" and key.verify(signer_info["signature"].native, attrs.untag().dump())
    if intact and not valid:
        problems.append("the signature does not verify")
    pool = list(sig.signed_data["certificates"] or [])
    pool = [c.chosen for c in pool if c.name == "certificate"]
    at = signed_at or datetime.now(UTC)
    chain = certs.chain_problems(cert, pool, roots, at)
    problems += chain
    sig.compute_integrity_info()
    summary = sig.summarise_integrity_info()
    diff = summary.get("diff_result")
    level = getattr(diff, "modification_level", None)
    whole = coverage_ok(summary.get("coverage"), level)
    if not whole:
        problems.append("modified after sealing")
    subject = cert.subject.native
    check = SealCheck(
        field=sig.field_name,
        signer=certs.cn(cert),
        algorithm="sm2_sm3",
        signed_at=signed_at,
        intact=intact,
        valid=valid,
        trusted=not chain,
        whole_document=whole,
        problems=problems,
        holder=str(subject.get("common_name", "")),
        issuer=str(cert.issuer.native.get("common_name", "")),
        serial=format(cert.serial_number, "x"),
    )
    _timestamp(sig, roots, check)
    return check


def _timestamp(sig, roots: list[x509.Certificate], check: SealCheck) -> None:
    """PAdES B-T: the TSA's token over the SM2 signature value, validated by pyHanko (the TSA
    signs with an algorithm pyHanko knows; its imprint is SM3 or SHA-256 of our signature)."""
    import asyncio

    from pyhanko.sign.validation.generic_cms import (
        extract_tst_data_iter,
        message_imprint_checker,
        validate_tst_signed_data,
    )
    from pyhanko_certvalidator import ValidationContext

    if sig.signer_info["unsigned_attrs"].native is None:
        return
    for tst in extract_tst_data_iter(sig.signer_info, signed=False):
        context = ValidationContext(trust_roots=roots, allow_fetching=False)
        status = asyncio.run(validate_tst_signed_data(tst, context, message_imprint_checker(sig.signer_info)))
        check.level = "B-T"
        check.timestamp_at = status.get("timestamp")
        check.timestamp_ok = bool(status.get("intact") and status.get("valid"))
        if not status.get("trusted"):
            check.problems.append("timestamp authority not trusted")
        if not check.timestamp_ok:
            check.problems.append("the timestamp does not verify")
        return
