#!/usr/bin/env python3
"""Verify an exported remote-signing evidence folder with the hub's public key.

    python3 verify_evidence.py FOLDER HUB_PUBLIC_KEY.pem

Use a public key obtained from the hub itself (/api/v1/signing/public-key), not the copy inside
the folder: whoever could change the folder could change that copy too. Checks the signature
over manifest.json in the algorithm the manifest names (Ed25519, ECDSA P-256 or RSA with the
`cryptography` package if installed, else `openssl`; SM2 — GB/T 32918 with SM3 and the default
id 1234567812345678 — with `gmssl_pyx` if installed, else `openssl pkeyutl`) and that the
manifest names this key; every file's size and sha256, and its SM3 when the manifest's
`hash_alg` is sm3; that every file
the event log recorded as written is the file listed; the hash chain of events.jsonl and the
head the manifest pins; and that the folder holds nothing else. Exits 0 if all match;
otherwise prints every problem and exits 1. Standalone on purpose: copied into every export,
it needs nothing from the hub.

So it carries its own copy of what the hub defines once elsewhere — GENESIS and the canonical
JSON (hub/hashchain.py), the event log's chain check (`verify_events` and `recorded_files` in
hub/session_log.py), the key id (hub/signing_key.py). An auditor's laptop has no hub to import
them from. tests/test_session_log.py and tests/test_signing_key.py run this script's checks and
the hub's over the same logs and keys and require the same results, so the copies cannot drift
apart unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

GENESIS = "0" * 64
OWN = {"manifest.json", "manifest.sig", "manifest.tsr", "events.jsonl", ".live", "README.txt", "SHA256SUMS"}
OWN |= {"verify_evidence.py", "hub-signing-public-key.pem", "SM3SUMS"}


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


SM2_ID = b"1234567812345678"  # GB/T 35276's default distinguishing identifier
OPENSSL_DIGEST = ["openssl", "dgst", "-sha256", "-verify"]  # ECDSA P-256 and RSA: over SHA-256


def _new_hash(algorithm: str):
    if algorithm == "sha256":
        return hashlib.sha256()
    return hashlib.new(algorithm)  # sm3: Python's hashlib over OpenSSL 1.1.1+ has it


def file_digest(algorithm: str, path: Path) -> str:
    try:
        digest = _new_hash(algorithm)
    except ValueError:  # a Python without SM3 in its OpenSSL: ask the openssl command
        out = subprocess.run(["openssl", "dgst", "-" + algorithm, "-r", str(path)], capture_output=True, check=True)
        return out.stdout.split()[0].decode()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def text_digest(algorithm: str, data: bytes) -> str:
    try:
        digest = _new_hash(algorithm)
    except ValueError:
        out = subprocess.run(["openssl", "dgst", "-" + algorithm, "-r"], input=data, capture_output=True, check=True)
        return out.stdout.split()[0].decode()
    digest.update(data)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest("sha256", path)


def key_id(pem: bytes) -> str:
    return hashlib.sha256(_der(pem)).hexdigest()  # sha256 of the key's DER, whatever its algorithm


def key_algorithm(manifest: dict) -> str:
    """The manifest's key algorithm, as the hub names it (absent: Ed25519, as before SM2)."""
    name = str(manifest.get("key", {}).get("algorithm") or "Ed25519")
    return "ed25519" if name == "Ed25519" else name


def _openssl(args: list[str]) -> bool:
    return subprocess.run(args, capture_output=True).returncode == 0


def signature_ok(folder: Path, key: Path, algorithm: str = "ed25519") -> bool:
    body, signature = (folder / "manifest.json").read_bytes(), (folder / "manifest.sig").read_bytes()
    manifest, sig = str(folder / "manifest.json"), str(folder / "manifest.sig")
    if algorithm == "sm2":
        try:
            from gmssl_pyx import sm2_verify
        except ImportError:  # OpenSSL 3 checks SM2 with SM3 and the distinguishing id
            return _openssl(
                ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin", "-digest", "sm3",
                 "-pkeyopt", "distid:" + SM2_ID.decode(), "-in", manifest, "-sigfile", sig]
            )  # fmt: skip
        der = _der(key.read_bytes())
        if len(der) < 65 or der[-65] != 4:
            return False  # an SM2 public key ends in its uncompressed point 04 || X || Y
        try:
            return bool(sm2_verify(der[-64:], body, signature, SM2_ID))
        except Exception:  # gmssl's errors on a malformed signature
            return False
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:  # no cryptography: OpenSSL 3 checks them too
        if algorithm == "ed25519":
            return _openssl(
                ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin", "-in", manifest, "-sigfile", sig]
            )  # fmt: skip
        return _openssl([*OPENSSL_DIGEST, str(key), "-signature", sig, manifest])
    public = load_pem_public_key(key.read_bytes())
    try:
        if algorithm == "ed25519" and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, body)
        elif algorithm == "ecdsa-p256" and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        elif algorithm in ("rsa-2048", "rsa-3072") and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False  # the key is not of the algorithm the manifest names
    except InvalidSignature:
        return False
    return True


def _der(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return base64.b64decode(body)


def chain(path: Path) -> tuple[int, str, dict[str, tuple[int, str]], str | None]:
    """(count, head, files the events recorded, the first problem) — lines end at newlines only."""
    prev, count, recorded, algorithm = GENESIS, 0, {}, None
    lines = path.read_bytes().split(b"\n")
    if lines[-1]:
        return 0, prev, recorded, f"events.jsonl line {len(lines)}: incomplete (no newline at the end)"

    def visit(seq: int, value: object) -> None:
        if isinstance(value, dict):
            name = value.get("path") or value.get("file")
            if isinstance(name, str) and isinstance(value.get("sha256"), str):
                recorded[name] = (seq, value["sha256"])
            for v in value.values():
                visit(seq, v)
        elif isinstance(value, list):
            for v in value:
                visit(seq, v)

    for number, line in enumerate(lines[:-1], start=1):
        try:
            event = json.loads(line)
        except ValueError:
            return count, prev, recorded, f"events.jsonl line {number}: not JSON"
        where = f"events.jsonl line {number} (#{event.get('seq')} {event.get('kind')})"
        if event.get("seq") != number or event.get("prev") != prev:
            return count, prev, recorded, f"{where}: out of sequence"
        alg = event.get("alg", "sha256")  # absent: sha256, as every log before SM3
        algorithm = algorithm or alg
        if alg != algorithm or alg not in ("sha256", "sm3"):
            return count, prev, recorded, f"{where}: hash algorithm {alg!r}, the log's is {algorithm!r}"
        body = canonical({k: v for k, v in event.items() if k != "hash"}).encode()
        if text_digest(alg, body) != event.get("hash"):
            return count, prev, recorded, f"{where}: content does not match its hash"
        visit(number, event.get("data"))
        prev, count = event["hash"], number
    return count, prev, recorded, None


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    folder, key = Path(argv[1]), Path(argv[2])
    problems = []
    manifest = json.loads((folder / "manifest.json").read_bytes())
    algorithm = key_algorithm(manifest)
    if not signature_ok(folder, key, algorithm):
        problems.append(f"manifest.json: the {algorithm} signature does not verify with this public key")
    hash_alg = manifest.get("hash_alg", "sha256")
    if hash_alg not in ("sha256", "sm3"):
        problems.append(f"manifest.json: unknown hash algorithm {hash_alg!r}")
        hash_alg = "sha256"
    if manifest.get("key", {}).get("id") != key_id(key.read_bytes()):
        problems.append("manifest.json: sealed with another key than this one")
    listed = {}
    for entry in manifest["files"]:
        name = entry["path"]
        path = folder / name
        listed[name] = entry["sha256"]
        if name.startswith("/") or ".." in Path(name).parts:
            problems.append(f"{name}: not a path inside the folder")
        elif not path.is_file() or path.is_symlink():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 does not match the manifest")
        elif hash_alg != "sha256" and file_digest(hash_alg, path) != entry.get(hash_alg):
            problems.append(f"{name}: {hash_alg} does not match the manifest")
    count, head, recorded, problem = chain(folder / "events.jsonl")
    if problem:
        problems.append(problem)
    elif (count, head) != (manifest["events"]["count"], manifest["events"]["head"]):
        problems.append("events.jsonl: not the event log the manifest was sealed with")
    elif hash_alg != "sha256" and file_digest(hash_alg, folder / "events.jsonl") != manifest["events"].get(hash_alg):
        problems.append(f"events.jsonl: {hash_alg} does not match the manifest")
    for name, (seq, sha) in recorded.items():
        if listed.get(name) != sha:
            problems.append(f"{name}: not the file event #{seq} recorded as written")
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in listed and rel not in OWN:
            problems.append(f"{rel}: not in the manifest")
    for p in problems:
        print("FAIL", p)
    if not problems:
        print(
            f"OK: {algorithm} signature (key {key_id(key.read_bytes())[:16]}…), {hash_alg} digests, {len(manifest['files'])} files and {count} events match ({manifest.get('outcome')})"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
