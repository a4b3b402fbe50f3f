#!/usr/bin/env python3
"""Verify an electronic licence (电子证照) PDF the hub issued, offline, without the hub.

    python3 verify_licence.py LICENCE.pdf --trust ROOT.pem
        [--status STATUS.json --status-signer SIGNER.pem|KEYID] [--max-age DAYS] [--today YYYY-MM-DD] [--json]

ROOT.pem: the county CA's root certificate(s), obtained from the county (not from the file).
STATUS.json: the hub's signed revocation list (GET /l/status.json, `hub licences export-status`).
SIGNER: the hub's own seal certificate (status-signer.pem in the kit), or its key id (sha256 of
its SubjectPublicKeyInfo, hex): a list signed by any other certificate is refused, even one the
county CA issued (a department's seal). A list older than --max-age days (default 7) is stale.

Checks that the file carries seals (PAdES signatures), every one intact, mathematically valid,
chaining to ROOT and covering the whole file; that it carries the licence's metadata record
(licence.json, attached before sealing, so the seal covers it) and that the record names the
sealing department as its issuer; then, with a status list whose signature chains to ROOT too,
whether the licence was revoked; and whether it has expired (`valid_until`). Prints the verdict —
valid, revoked, expired, not_yet_valid, stale (the status list is too old to rule out a
revocation) or tampered — and every problem; exits 0 for valid, 1 otherwise. Needs pyHanko
(`pip install pyhanko`), which brings `cryptography` and asn1crypto. SM2 seals (GB/T 38540: SM3
digests, SM2 signatures), which pyHanko does not know, are checked here: SM3 by `cryptography`,
SM2 by gmssl_pyx when it is installed, else by the OpenSSL command line (1.1.1 or later).

Standalone on purpose: give it to another agency as it is. The hub's own `hub licences verify`
imports its rules (hub.licences.verify: `verdict`), and checks the seals with hub.seals.verify_pdf;
tests/test_licences.py checks both say the same for ECDSA and SM2 seals.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

METADATA_NAME = "licence.json"
STATUS_FORMAT = "tongban-licence-status/1"


def canonical(value: Any) -> bytes:
    """The bytes a status list's signature covers: its payload as canonical JSON."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def embedded_metadata(pdf: bytes) -> dict[str, Any] | None:
    """The licence.json attachment of `pdf`, parsed; None when there is none or it is not JSON."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        for i in range(0, len(names) - 1, 2):
            if str(names[i]) == METADATA_NAME:
                spec = names[i + 1].get_object()
                data = spec["/EF"]["/F"].get_object().data
                record = json.loads(data.decode("utf-8"))
                return record if isinstance(record, dict) else None
    except Exception:  # a broken or hostile file: no metadata we can vouch for
        return None
    return None


MAX_SIGNATURES = 20  # a licence carries one seal; a file with more is not checked (bounded work)
SM2_SM3_OID = "1.2.156.10197.1.501"  # SM2 signature with SM3
SM3_OID = "1.2.156.10197.1.401"
SM2_CURVE_OID = "1.2.156.10197.1.301"
SM2_SIGNER_ID = b"1234567812345678"  # GB/T 35276's default distinguishing identifier
MAX_CHAIN = 8


def _sm2_verify(spki_der: bytes, data: bytes, signature: bytes) -> bool:
    """SM2 with SM3 and the default signer ID over `data`: gmssl_pyx when installed, else the
    OpenSSL command line."""
    from asn1crypto import keys

    try:
        point = bytes(keys.PublicKeyInfo.load(spki_der)["public_key"])
    except (ValueError, TypeError):
        return False
    if len(point) != 65 or point[0] != 4:
        return False
    try:
        from gmssl_pyx import sm2_verify
    except ImportError:
        return _sm2_verify_openssl(spki_der, data, signature)
    try:
        return bool(sm2_verify(point[1:], data, signature, SM2_SIGNER_ID))
    except Exception:  # gmssl's own errors on a malformed signature
        return False


def _sm2_verify_openssl(spki_der: bytes, data: bytes, signature: bytes) -> bool:
    import subprocess
    import tempfile

    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki_der) + b"-----END PUBLIC KEY-----\n"
    with tempfile.TemporaryDirectory() as tmp:
        pub, body, sig = Path(tmp, "pub.pem"), Path(tmp, "data"), Path(tmp, "sig")
        pub.write_bytes(pem)
        body.write_bytes(data)
        sig.write_bytes(signature)
        try:
            run = subprocess.run(
                ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", body, "-sigfile", sig,
                 "-digest", "sm3", "-pkeyopt", "distid:" + SM2_SIGNER_ID.decode()],
                capture_output=True,
                timeout=60,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
    return run.returncode == 0


def _is_sm2_key(spki_der: bytes) -> bool:
    from asn1crypto import keys

    try:
        algorithm = keys.PublicKeyInfo.load(spki_der)["algorithm"]
        params = algorithm["parameters"]
        return (
            algorithm["algorithm"].native == "ec" and params.name == "named" and params.chosen.dotted == SM2_CURVE_OID
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return False


def signature_ok(spki_der: bytes, algorithm_oid: str, signature: bytes, data: bytes) -> bool:
    """A signature by the key `spki_der` over `data`, by the algorithm the OID names: SM2 with SM3,
    ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512, or Ed25519. Anything else: False."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if algorithm_oid == SM2_SM3_OID:
        return _is_sm2_key(spki_der) and _sm2_verify(spki_der, data, signature)
    if _is_sm2_key(spki_der):
        return False  # an SM2 key signs with SM2 only
    ecdsa = {"1.2.840.10045.4.3.2": hashes.SHA256, "1.2.840.10045.4.3.3": hashes.SHA384,
             "1.2.840.10045.4.3.4": hashes.SHA512}  # fmt: skip
    pkcs1 = {"1.2.840.113549.1.1.11": hashes.SHA256, "1.2.840.113549.1.1.12": hashes.SHA384,
             "1.2.840.113549.1.1.13": hashes.SHA512}  # fmt: skip
    try:
        key = serialization.load_der_public_key(spki_der)
        if algorithm_oid in ecdsa and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(ecdsa[algorithm_oid]()))
        elif algorithm_oid in pkcs1 and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), pkcs1[algorithm_oid]())
        elif algorithm_oid == "1.3.101.112" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _cn(cert: Any) -> str:
    native = cert.subject.native
    return str(native.get("common_name", "")) if isinstance(native, dict) else ""


def _issued_by(cert: Any, issuer: Any) -> bool:
    """`issuer` (asn1crypto) signed `cert` (asn1crypto)."""
    if cert.issuer != issuer.subject:
        return False
    return signature_ok(
        issuer["tbs_certificate"]["subject_public_key_info"].dump(),
        cert["signature_algorithm"]["algorithm"].dotted,
        cert["signature_value"].native,
        cert["tbs_certificate"].dump(),
    )


def _is_ca(cert: Any) -> bool:
    constraints = cert.basic_constraints_value
    if constraints is None or not constraints["ca"].native:
        return False
    usage = cert.key_usage_value
    return usage is None or "key_cert_sign" in usage.native


def chain_problems(cert: Any, pool: list[Any], roots: list[Any], at: datetime | None) -> list[str]:
    """Why `cert` does not chain to one of `roots` through `pool` (asn1crypto certificates): every
    issuer's signature, every certificate valid at `at` (None: dates not checked), every issuer
    (intermediate or root) a CA (basicConstraints cA, keyCertSign). Empty: it chains."""
    problems: list[str] = []
    current = cert
    for _depth in range(MAX_CHAIN):
        if at is not None and not (current.not_valid_before <= at <= current.not_valid_after):
            problems.append(f"certificate {_cn(current)!r} not valid at {at.isoformat()}")
        if any(current.dump() == r.dump() for r in roots):
            return problems  # a trusted root itself
        root = next((r for r in roots if _issued_by(current, r)), None)
        if root is not None:
            if not _is_ca(root):
                problems.append(f"root {_cn(root)!r} is not a CA")
            return problems
        issuer = next((c for c in pool if c.dump() != current.dump() and _issued_by(current, c)), None)
        if issuer is None:
            problems.append(f"the certificate {_cn(current)!r} does not chain to the trusted root")
            return problems
        if not _is_ca(issuer):
            problems.append(f"issuer {_cn(issuer)!r} is not a CA")
            return problems
        current = issuer
    problems.append("certificate chain too long")
    return problems


def _register_sm_names() -> None:
    """Teach asn1crypto the names of SM3 and SM2-with-SM3, so pyHanko's integrity analysis can
    hash an SM2 seal's byte range (as hub.seals.certs does on the hub)."""
    from asn1crypto import algos

    for cls, oid, name in (
        (algos.DigestAlgorithmId, SM3_OID, "sm3"),
        (algos.SignedDigestAlgorithmId, SM2_SM3_OID, "sm2_sm3"),
    ):
        if oid not in cls._map:
            cls._map[oid] = name
            if cls._reverse_map is not None:
                cls._reverse_map[name] = oid


def _signed_bytes(sig: Any) -> bytes:
    stream = sig.reader.stream
    start1, len1, start2, len2 = sig.byte_range
    stream.seek(start1)
    first = stream.read(len1)
    stream.seek(start2)
    return first + stream.read(len2)


def _check_sm2_seal(sig: Any, roots: list[Any]) -> dict[str, Any]:
    """An SM2 seal (pyHanko cannot check one): SM3 of the signed bytes is the messageDigest
    attribute, the SM2 signature over the signed attributes verifies with the signer's key, the
    signer's certificate chains to a root, and the signature covers the whole file."""
    from cryptography.hazmat.primitives import hashes

    info = sig.signer_info
    cert = sig.signer_cert
    problems: list[str] = []
    if cert is None:
        return {"field": sig.field_name, "signer": "", "ok": False, "problem": "no signer certificate"}
    attrs = info["signed_attrs"]
    by_type = {a["type"].native: a["values"][0] for a in attrs}
    if info["digest_algorithm"]["algorithm"].dotted != SM3_OID:
        problems.append("an SM2 seal must digest with SM3")
    elif "message_digest" not in by_type:
        problems.append("no messageDigest attribute")
    else:
        h = hashes.Hash(hashes.SM3())
        h.update(_signed_bytes(sig))
        if h.finalize() != by_type["message_digest"].native:
            problems.append("altered")
    spki = cert["tbs_certificate"]["subject_public_key_info"].dump()
    if not problems and not signature_ok(spki, SM2_SM3_OID, info["signature"].native, attrs.untag().dump()):
        problems.append("bad signature")
    signed_at = by_type["signing_time"].native if "signing_time" in by_type else sig.self_reported_timestamp
    pool = [c.chosen for c in (sig.signed_data["certificates"] or []) if c.name == "certificate"]
    if chain := chain_problems(cert, pool, roots, signed_at or datetime.now(UTC)):
        problems.append("untrusted (" + "; ".join(chain) + ")")
    sig.compute_integrity_info()
    coverage = sig.summarise_integrity_info().get("coverage")
    if coverage is None or coverage.name != "ENTIRE_FILE":
        problems.append("changed after sealing")
    return {"field": sig.field_name, "signer": _cn(cert), "ok": not problems, "problem": ", ".join(problems) or None}


def check_seals(pdf: bytes, roots: list[Any]) -> list[dict[str, Any]]:
    """Every signature in `pdf` against `roots` (asn1crypto certificates): signer, and whether it
    is intact, valid, trusted and covers the whole file. SM2 seals by `_check_sm2_seal`, the
    others by pyHanko's validator. At most MAX_SIGNATURES are looked at."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _register_sm_names()  # before any signature is read: pyHanko takes the digest's name then
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except Exception:
        return []
    if len(signatures) > MAX_SIGNATURES:  # bounded work for a file anyone may hand in
        return [
            {"field": "", "signer": "", "ok": False, "problem": f"more than {MAX_SIGNATURES} signatures (not checked)"}
        ]
    out = []
    for sig in signatures:
        try:
            if sig.signer_info["signature_algorithm"]["algorithm"].dotted == SM2_SM3_OID:
                out.append(_check_sm2_seal(sig, roots))
                continue
            st = validate_pdf_signature(sig, ValidationContext(trust_roots=roots, allow_fetching=False))
        except Exception as exc:  # a signature we cannot even read
            out.append({"field": sig.field_name, "signer": "", "ok": False, "problem": type(exc).__name__})
            continue
        cert = st.signing_cert
        coverage = getattr(st, "coverage", None)
        whole = coverage is not None and coverage.name == "ENTIRE_FILE"
        ok = bool(st.intact and st.valid and st.trusted and whole)
        problem = None
        if not ok:
            problem = ", ".join(
                word
                for word, bad in (
                    ("altered", not st.intact),
                    ("bad signature", not st.valid),
                    ("untrusted", not st.trusted),
                    ("changed after sealing", not whole),
                )
                if bad
            )
        out.append(
            {
                "field": sig.field_name,
                "signer": cert.subject.native.get("common_name", "") if cert is not None else "",
                "ok": ok,
                "problem": problem,
            }
        )
    return out


def key_id(spki_der: bytes) -> str:
    """A key's id as the hub writes it: the sha256 of its DER SubjectPublicKeyInfo, hex."""
    import hashlib

    return hashlib.sha256(spki_der).hexdigest()


def signer_pins(value: str) -> set[str]:
    """The key ids `--status-signer` names: a 64-hex key id, or a PEM file of certificates."""
    text = value.strip().lower()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return {text}
    return {
        key_id(c["tbs_certificate"]["subject_public_key_info"].dump()) for c in _load_certs(Path(value).read_bytes())
    }


def _load_certs(data: bytes) -> list[Any]:
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509

    if not asn1_pem.detect(data):
        return [asn1_x509.Certificate.load(data)] if data else []
    return [asn1_x509.Certificate.load(der) for _t, _h, der in asn1_pem.unarmor(data, multiple=True)]


SIGNATURE_OIDS = {  # the status list's recorded algorithm → the OID its signature is checked as
    "sm2": SM2_SM3_OID,
    "ecdsa-p256": "1.2.840.10045.4.3.2",
    "rsa-2048": "1.2.840.113549.1.1.11",
    "rsa-3072": "1.2.840.113549.1.1.11",
    "ed25519": "1.3.101.112",
}


def status_signature_problem(document: dict[str, Any], roots_pem: bytes, pins: set[str] | None = None) -> str | None:
    """Why a status list is not to be trusted (None: its signature is good, its certificate is the
    hub's seal — one of `pins`, by key id — and chains to one of the roots through CAs)."""
    try:
        payload, sig = document["payload"], document["signature"]
        if payload.get("format") != STATUS_FORMAT:
            return "not a licence status list"
        [cert] = _load_certs(sig["certificate"].encode())[:1]
        pool = [c for pem in sig.get("chain", []) for c in _load_certs(pem.encode())]
        value = base64.b64decode(sig["value"])
        algorithm = sig["algorithm"]
        _issued_at(payload)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "malformed status list"
    spki = cert["tbs_certificate"]["subject_public_key_info"].dump()
    if not pins:
        return "no pinned signer (--status-signer): cannot tell the hub's seal from a department's"
    if key_id(spki) not in pins:
        return f"signed by {_cn(cert)!r}, not by the hub's seal (key {key_id(spki)[:16]}… is not pinned)"
    # the signer is pinned, so its dates add little; the list's own age is what --max-age bounds
    if chain := chain_problems(cert, pool, _load_certs(roots_pem), None):
        return "; ".join(chain)
    oid = SIGNATURE_OIDS.get(algorithm)
    if oid is None:
        return f"unsupported signature algorithm {algorithm!r}"
    if not signature_ok(spki, oid, value, canonical(payload)):
        return "status list signature does not match (altered)"
    return None


def _issued_at(payload: dict[str, Any]) -> datetime:
    issued = datetime.fromisoformat(payload["issued_at"])
    if issued.tzinfo is None:
        raise ValueError("issued_at without a time zone")
    return issued


def verdict(
    pdf: bytes,
    roots_pem: bytes,
    status_list: dict[str, Any] | None,
    today: date,
    *,
    pins: set[str] | None = None,
    now: datetime | None = None,
    max_age: timedelta = timedelta(days=7),
    seals: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any] | None, list[str]]:
    """(verdict, metadata, problems): valid, revoked, expired, not_yet_valid, stale or tampered.
    `seals`: the seal checks already made (the hub passes hub.seals.verify_pdf's); else made
    here. A revocation or the dates decide before the list's age: a licence a list names as
    revoked stays revoked, and an expired one is expired whatever the list's age; only "valid"
    needs a fresh list (issued within `max_age` of `now`)."""
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509

    problems: list[str] = []
    if seals is None:
        roots = [asn1_x509.Certificate.load(der) for _t, _h, der in asn1_pem.unarmor(roots_pem, multiple=True)]
        seals = check_seals(pdf, roots)
    if not seals:
        problems.append("no seal (PDF signature) in the file")
    problems += [f"seal {s['field']} ({s['signer']}): {s['problem']}" for s in seals if not s["ok"]]
    meta = embedded_metadata(pdf)
    if meta is None:
        problems.append(f"no {METADATA_NAME} metadata attached")
    elif seals and not any(s["ok"] and s["signer"] == meta.get("issuer_name") for s in seals):
        problems.append(f"not sealed by its issuer {meta.get('issuer_name')!r}")
    if problems or meta is None:
        return "tampered", meta, problems
    stale = None
    if status_list is not None:
        if problem := status_signature_problem(status_list, roots_pem, pins):
            return "tampered", meta, [f"status list: {problem}"]
        entries = status_list["payload"].get("revoked")
        revoked = {e.get("number") for e in entries if isinstance(e, dict)} if isinstance(entries, list) else set()
        if meta.get("number") in revoked:
            return "revoked", meta, []
        issued = _issued_at(status_list["payload"])
        if (now or datetime.now(issued.tzinfo)) - issued > max_age:
            stale = f"stale status list: issued at {issued.isoformat()}, older than {max_age.days} days"
    try:
        start = date.fromisoformat(meta["valid_from"])
        end = date.fromisoformat(meta["valid_until"]) if meta.get("valid_until") else None
    except (KeyError, TypeError, ValueError):
        return "tampered", meta, ["metadata without valid dates"]
    if start > today:
        return "not_yet_valid", meta, []
    if end is not None and end < today:
        return "expired", meta, []
    if stale:
        return "stale", meta, [stale]
    return "valid", meta, []


def mask(value: str) -> str:
    return value[:4] + "*" * (len(value) - 8) + value[-4:] if len(value) > 8 else "*" * len(value)


def masked(meta: dict[str, Any]) -> dict[str, Any]:
    """The record as printed: the holder's ID number masked, on its own and among the fields."""
    full = meta["holder_id"]
    fields = [[label, mask(value) if value == full else value] for label, value in meta.get("fields") or []]
    return meta | {"holder_id": mask(full), "fields": fields}


WORDS = {
    "valid": "有效",
    "revoked": "已注销",
    "expired": "已过期",
    "not_yet_valid": "未生效",
    "stale": "无法确认（状态列表过旧，请获取最新列表）",
    "tampered": "无效（被篡改或印章不可信）",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Tongban Hub electronic licence PDF offline.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--trust", type=Path, required=True, help="the county CA's root certificate(s), PEM")
    parser.add_argument("--status", type=Path, help="the hub's signed status list (status.json)")
    parser.add_argument(
        "--status-signer",
        help="the hub's seal certificate (PEM, status-signer.pem in the kit) or its key id: the only signer of a list",
    )
    parser.add_argument(
        "--max-age", type=int, default=7, help="days a status list stays fresh (older: verdict stale; default 7)"
    )
    parser.add_argument(
        "--today", type=date.fromisoformat, default=None, help="check as of this day (default: today in Beijing)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.status is not None and not args.status_signer:
        print("error: --status needs --status-signer (the hub's seal certificate: status-signer.pem)", file=sys.stderr)
        return 2
    if args.max_age < 0:
        print("error: --max-age must be 0 or more days", file=sys.stderr)
        return 2
    try:
        pdf, roots = args.file.read_bytes(), args.trust.read_bytes()
        status_list = json.loads(args.status.read_text(encoding="utf-8")) if args.status else None
        pins = signer_pins(args.status_signer) if args.status_signer else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    county = ZoneInfo("Asia/Shanghai")  # the county's day, as the hub's
    today = args.today or datetime.now(county).date()
    # a list's age as of the end of --today when given (checking as of a past day), else now
    now = datetime.combine(args.today, time(23, 59, 59), county) if args.today else datetime.now(county)
    result, meta, problems = verdict(
        pdf, roots, status_list, today, pins=pins, now=now, max_age=timedelta(days=args.max_age)
    )
    if meta and isinstance(meta.get("holder_id"), str):  # shown masked, as everywhere
        meta = masked(meta)
    if args.json:
        print(json.dumps({"verdict": result, "metadata": meta, "problems": problems}, ensure_ascii=False, indent=2))
    else:
        print(f"verdict: {result} {WORDS[result]}")
        if meta:
            for key in ("type_name", "number", "issuer_name", "issued_on", "valid_until"):
                print(f"{key}: {meta.get(key) or '长期'}")
        if status_list is None:
            print("note: no status list given: revocation not checked")
        else:
            print(f"status list of: {status_list.get('payload', {}).get('issued_at')}")
        for p in problems:
            print(f"problem: {p}")
    return 0 if result == "valid" else 1


if __name__ == "__main__":
    sys.exit(main())
