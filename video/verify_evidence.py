#!/usr/bin/env python3
"""Verify an exported remote-signing evidence folder with the hub's public key.

    python3 verify_evidence.py FOLDER HUB_PUBLIC_KEY.pem

Use a public key obtained from the hub itself (/api/v1/signing/public-key), not the copy inside
the folder: whoever could change the folder could change that copy too. Checks the Ed25519
signature over manifest.json (with the `cryptography` package if installed, else `openssl
pkeyutl`) and that the manifest names this key; every file's size and sha256; that every file
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
OWN |= {"verify_evidence.py", "hub-signing-public-key.pem"}


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key_id(pem: bytes) -> str:
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return hashlib.sha256(base64.b64decode(body)).hexdigest()  # sha256 of the key's DER


def signature_ok(folder: Path, key: Path) -> bool:
    body, signature = (folder / "manifest.json").read_bytes(), (folder / "manifest.sig").read_bytes()
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:  # no cryptography: OpenSSL 3 checks Ed25519 too
        run = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
             "-in", str(folder / "manifest.json"), "-sigfile", str(folder / "manifest.sig")],
            capture_output=True,
        )  # fmt: skip
        return run.returncode == 0
    try:
        load_pem_public_key(key.read_bytes()).verify(signature, body)  # type: ignore[union-attr]
    except InvalidSignature:
        return False
    return True


def chain(path: Path) -> tuple[int, str, dict[str, tuple[int, str]], str | None]:
    """(count, head, files the events recorded, the first problem) — lines end at newlines only."""
    prev, count, recorded = GENESIS, 0, {}
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
        body = canonical({k: v for k, v in event.items() if k != "hash"}).encode()
        if hashlib.sha256(body).hexdigest() != event.get("hash"):
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
    if not signature_ok(folder, key):
        problems.append("manifest.json: the signature does not verify with this public key")
    manifest = json.loads((folder / "manifest.json").read_bytes())
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
    count, head, recorded, problem = chain(folder / "events.jsonl")
    if problem:
        problems.append(problem)
    elif (count, head) != (manifest["events"]["count"], manifest["events"]["head"]):
        problems.append("events.jsonl: not the event log the manifest was sealed with")
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
            f"OK: signature (key {key_id(key.read_bytes())[:16]}…), {len(manifest['files'])} files and {count} events match ({manifest.get('outcome')})"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
