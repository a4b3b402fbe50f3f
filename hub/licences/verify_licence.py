#!/usr/bin/env python3
"""Verify an electronic licence (电子证照) PDF the hub issued, offline, without the hub.

    python3 verify_licence.py LICENCE.pdf --trust ROOT.pem [--status STATUS.json] [--today YYYY-MM-DD] [--json]

ROOT.pem: the county CA's root certificate(s), obtained from the county (not from the file).
STATUS.json: the hub's signed revocation list (GET /l/status.json, `hub licences export-status`).

Checks that the file carries seals (PAdES signatures), every one intact, mathematically valid,
chaining to ROOT and covering the whole file; that it carries the licence's metadata record
(licence.json, attached before sealing, so the seal covers it) and that the record names the
sealing department as its issuer; then, with a status list whose signature chains to ROOT too,
whether the licence was revoked; and whether it has expired (`valid_until`). Prints the verdict —
valid, revoked, expired, not_yet_valid or tampered — and every problem; exits 0 for valid, 1
otherwise. Needs pyHanko (`pip install pyhanko`), which brings `cryptography` and asn1crypto.

Standalone on purpose: give it to another agency as it is. The hub's own `hub licences verify`
imports its functions (hub.licences.verify), so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from datetime import date, datetime
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


def check_seals(pdf: bytes, roots: list[Any]) -> list[dict[str, Any]]:
    """Every signature in `pdf` against `roots` (asn1crypto certificates): signer, and whether it
    is intact, valid, trusted and covers the whole file."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except Exception:
        return []
    out = []
    for sig in signatures:
        try:
            st = validate_pdf_signature(sig, ValidationContext(trust_roots=roots))
        except Exception as exc:  # a signature pyHanko cannot even read
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


def _load_pem_certs(data: bytes) -> list[Any]:
    from cryptography import x509

    return x509.load_pem_x509_certificates(data)


def status_signature_problem(document: dict[str, Any], roots_pem: bytes) -> str | None:
    """Why a status list is not to be trusted (None: its signature is good and its certificate
    chains to one of the roots)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        payload, sig = document["payload"], document["signature"]
        if payload.get("format") != STATUS_FORMAT:
            return "not a licence status list"
        chain = _load_pem_certs(sig["certificate"].encode()) + [
            c for pem in sig.get("chain", []) for c in _load_pem_certs(pem.encode())
        ]
        value = base64.b64decode(sig["value"])
        algorithm = sig["algorithm"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return "malformed status list"
    roots = _load_pem_certs(roots_pem)
    # the signer's certificate, issued by the next one in the chain, ..., issued by a root
    current = chain[0]
    for issuer in [*chain[1:], None]:
        if any(_issued_by(current, r) or current == r for r in roots):
            break
        if issuer is None or not _issued_by(current, issuer):
            return "status list signed by a certificate that does not chain to the trusted root"
        current = issuer
    key = chain[0].public_key()
    body = canonical(payload)
    try:
        if algorithm == "sm2":
            return _sm2_problem(chain[0], value, body)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(value, body)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(value, body, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(value, body, padding.PKCS1v15(), hashes.SHA256())
        else:
            return f"unsupported key in the status list's certificate ({algorithm})"
    except InvalidSignature:
        return "status list signature does not match (altered)"
    return None


def _issued_by(cert: Any, issuer: Any) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:
        return False


def _sm2_problem(cert: Any, value: bytes, body: bytes) -> str | None:
    """SM2 with SM3 and the default signer ID (GB/T 35276), checked by the OpenSSL command line."""
    import subprocess
    import tempfile

    from cryptography.hazmat.primitives import serialization

    with tempfile.TemporaryDirectory() as tmp:
        pub, data, sig = Path(tmp, "pub.pem"), Path(tmp, "data"), Path(tmp, "sig")
        pub.write_bytes(
            cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        data.write_bytes(body)
        sig.write_bytes(value)
        run = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", data, "-sigfile", sig,
             "-digest", "sm3", "-pkeyopt", "distid:1234567812345678"],
            capture_output=True,
        )  # fmt: skip
    return None if run.returncode == 0 else "status list signature does not match (altered)"


def verdict(
    pdf: bytes, roots_pem: bytes, status_list: dict[str, Any] | None, today: date
) -> tuple[str, dict[str, Any] | None, list[str]]:
    """(verdict, metadata, problems): valid, revoked, expired, not_yet_valid or tampered."""
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509

    roots = [asn1_x509.Certificate.load(der) for _t, _h, der in asn1_pem.unarmor(roots_pem, multiple=True)]
    problems: list[str] = []
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
    if status_list is not None:
        if problem := status_signature_problem(status_list, roots_pem):
            return "tampered", meta, [f"status list: {problem}"]
        entries = status_list["payload"].get("revoked")
        revoked = {e.get("number") for e in entries if isinstance(e, dict)} if isinstance(entries, list) else set()
        if meta.get("number") in revoked:
            return "revoked", meta, []
    try:
        start = date.fromisoformat(meta["valid_from"])
        end = date.fromisoformat(meta["valid_until"]) if meta.get("valid_until") else None
    except (KeyError, TypeError, ValueError):
        return "tampered", meta, ["metadata without valid dates"]
    if start > today:
        return "not_yet_valid", meta, []
    if end is not None and end < today:
        return "expired", meta, []
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
    "tampered": "无效（被篡改或印章不可信）",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Tongban Hub electronic licence PDF offline.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--trust", type=Path, required=True, help="the county CA's root certificate(s), PEM")
    parser.add_argument("--status", type=Path, help="the hub's signed status list (status.json)")
    parser.add_argument(
        "--today", type=date.fromisoformat, default=None, help="check as of this day (default: today in Beijing)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        pdf, roots = args.file.read_bytes(), args.trust.read_bytes()
        status_list = json.loads(args.status.read_text(encoding="utf-8")) if args.status else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    today = args.today or datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the county's day, as the hub's
    result, meta, problems = verdict(pdf, roots, status_list, today)
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
