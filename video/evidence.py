"""The evidence of a remote signing session (远程面签), and how anyone checks it.

A session's folder holds its recordings (segments, hashed as each closes), the signature image,
stills, the application snapshot that was read back, and `events.jsonl` — the session's event
log, each line hash-chained to the one before. Sealing writes `manifest.json` (the sha256 of
every file — and its SM3 too when `crypto.hash` is sm3, named by the manifest's `hash_alg` —
and the head of the event chain) and `manifest.sig`, the hub's signature over the manifest's
exact bytes, in the key's algorithm (`key.algorithm`: Ed25519 by default; SM2, ECDSA P-256 or
RSA by `crypto.signature`). With the public key alone, an auditor can check that nothing was
changed, added to the chain, or taken out of it: `verify_folder`, or `verify_evidence.py` in an
exported folder, or openssl and sha256sum by hand (the README an export carries says how).

Nothing here imports aiortc; `verify_evidence.py`, copied into every export, repeats the checks
with nothing but Python (and `cryptography` or OpenSSL) for a court's or an auditor's laptop.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub import crypto
from hub.batches.staging import sha256_of as sha256_file
from hub.session_log import EVENTS, recorded_files, verify_events
from hub.signing import write_synced

# the key is the core's (backups and restores check it too); public_pem and signing_key are
# re-exported for video/web.py
from hub.signing_key import key_id as key_id
from hub.signing_key import public_pem as public_pem
from hub.signing_key import signing_key as signing_key

FORMAT = "tongban-signing-evidence/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
TIMESTAMP = "manifest.tsr"  # an RFC 3161 timestamp of the signature, when a TSA is configured (video.timestamps)
PUBLIC_KEY = "hub-signing-public-key.pem"


def utc_text(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- sealing


# what a session folder holds besides its evidence: the manifest and what is made of it, the lock
# of the process running the session
NOT_EVIDENCE = {MANIFEST, SIGNATURE, EVENTS, TIMESTAMP, ".live"}


def evidence_files(folder: Path) -> list[Path]:
    """Every file of the session the manifest lists: all but the manifest, its signature, the
    timestamp, the event log (pinned by its hash and chain head instead) and the `.live` lock."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in NOT_EVIDENCE)


# how a manifest names the key's algorithm: "Ed25519" as manifests always did, else hub.crypto's name
_MANIFEST_NAMES = {"ed25519": "Ed25519"}


def algorithm_named(name: object) -> str:
    """hub.crypto's name of a manifest's `key.algorithm` (absent: Ed25519, as before 密评)."""
    text = str(name or "Ed25519")
    return {v: k for k, v in _MANIFEST_NAMES.items()}.get(text, text)


def file_digest(algorithm: str, path: Path) -> str:
    if algorithm == "sha256":
        return sha256_file(path)
    return crypto.file_hexdigest(algorithm, path)


def _digests(path: Path, hash_alg: str) -> dict[str, str]:
    """sha256 always (what the event log recorded as each file was written, and what sha256sum
    checks), plus the manifest's `hash_alg` when it is another."""
    out = {"sha256": sha256_file(path)}
    if hash_alg != "sha256":
        out[hash_alg] = file_digest(hash_alg, path)
    return out


def seal(folder: Path, key: object, about: dict[str, Any], hash_alg: str = "sha256") -> dict[str, Any]:
    """Write and sign the manifest of a session folder whose files are final. `about`: the
    session, application, outcome and times, as the manifest states them. `key`: a hub.crypto
    key (or a pyca/cryptography one); `hash_alg`: `crypto.hash`."""
    key = crypto.signing_key_of(key)
    if hash_alg not in crypto.HASH_ALGORITHMS:
        raise ValueError(f"cannot seal: unknown hash algorithm {hash_alg!r}")
    chain = verify_events(folder / EVENTS)
    if not chain.ok:
        raise ValueError(f"cannot seal: {chain.problem}")
    for name, (seq, sha) in recorded_files(folder / EVENTS).items():
        if not (folder / name).is_file() or sha256_file(folder / name) != sha:
            raise ValueError(f"cannot seal: {name} is not the file event #{seq} recorded")
    manifest = {
        "format": FORMAT,
        **about,
        "hash_alg": hash_alg,
        "files": [
            {"path": p.relative_to(folder).as_posix(), **_digests(p, hash_alg), "bytes": p.stat().st_size}
            for p in evidence_files(folder)
        ],
        "events": {
            "file": EVENTS,
            "count": chain.count,
            "head": chain.head,
            "hash_alg": chain.algorithm,  # the chain's own (the log's first event says)
            **_digests(folder / EVENTS, hash_alg),  # so sha256sum alone covers the log too
        },
        "key": {"algorithm": _MANIFEST_NAMES.get(key.algorithm, key.algorithm), "id": key.key_id},
        "sealed_at": utc_text(),
    }
    body = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    write_synced(folder / MANIFEST, body)
    write_synced(folder / SIGNATURE, key.sign(body))
    return manifest


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: list[str]
    checked: int  # files whose hash was compared
    manifest: dict[str, Any] | None

    @property
    def first(self) -> str | None:
        return self.problems[0] if self.problems else None


def verify_folder(folder: Path, public_key: object, *, expected: dict[str, str] | None = None) -> Verdict:
    """Check a sealed session folder with a public key obtained apart from it (never a key the
    folder itself brings): the manifest's signature and key id, every file's size and sha256,
    that every file an event recorded is the file listed, the event chain and its head, and
    that nothing else is in the folder. `expected`: what the hub's database says (session id,
    manifest sha256). The signature is checked in the key's algorithm, the files in sha256 and
    in the manifest's `hash_alg`. Problems are named in the order checked, the first first."""
    problems: list[str] = []
    public_key = crypto.verify_key_of(public_key)
    try:
        body = (folder / MANIFEST).read_bytes()
        signature = (folder / SIGNATURE).read_bytes()
    except OSError as exc:
        return Verdict(
            False, [f"{Path(exc.filename or '').name or MANIFEST}: missing — the session was not sealed"], 0, None
        )
    if not public_key.verify(signature, body):
        problems.append(f"{MANIFEST}: the signature does not verify with this public key (changed, or another key)")
    try:
        manifest = json.loads(body)
    except ValueError:
        return Verdict(False, [*problems, f"{MANIFEST}: not JSON"], 0, None)
    named = algorithm_named(manifest.get("key", {}).get("algorithm"))
    if named != public_key.algorithm:
        problems.append(f"{MANIFEST}: signed with {named}, but this public key is {public_key.algorithm}")
    hash_alg = str(manifest.get("hash_alg", "sha256"))
    if hash_alg not in crypto.HASH_ALGORITHMS:
        return Verdict(False, [*problems, f"{MANIFEST}: unknown hash algorithm {hash_alg!r}"], 0, manifest)
    if manifest.get("key", {}).get("id") != public_key.key_id:
        problems.append(
            f"{MANIFEST}: sealed with key {str(manifest.get('key', {}).get('id'))[:16]}…, not this one ({public_key.key_id[:16]}…)"
        )
    if expected:
        if expected.get("session") and manifest.get("session") != expected["session"]:
            problems.append(f"{MANIFEST}: the evidence of session {manifest.get('session')}, not {expected['session']}")
        if expected.get("manifest_sha256") and hashlib.sha256(body).hexdigest() != expected["manifest_sha256"]:
            problems.append(f"{MANIFEST}: not the manifest the hub recorded when it sealed this session")
    checked = 0
    for entry in manifest.get("files", []):
        name = str(entry.get("path", ""))
        if name.startswith("/") or ".." in Path(name).parts:
            problems.append(f"{name}: not a path inside the folder")
            continue
        path = folder / name
        if not path.is_file() or path.is_symlink():
            problems.append(f"{name}: missing")
            continue
        checked += 1
        if path.stat().st_size != entry["bytes"]:
            problems.append(f"{name}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 does not match the manifest")
        elif hash_alg != "sha256" and file_digest(hash_alg, path) != entry.get(hash_alg):
            problems.append(f"{name}: {hash_alg} does not match the manifest")
    chain = verify_events(folder / EVENTS)
    expected_chain = manifest.get("events", {})
    if not chain.ok:
        problems.append(chain.problem or EVENTS)
    elif (chain.count, chain.head) != (expected_chain.get("count"), expected_chain.get("head")):
        problems.append(
            f"{EVENTS}: {chain.count} events ending in {chain.head[:12]}…, the manifest says "
            f"{expected_chain.get('count')} ending in {str(expected_chain.get('head'))[:12]}…"
        )
    elif hash_alg != "sha256" and file_digest(hash_alg, folder / EVENTS) != expected_chain.get(hash_alg):
        problems.append(f"{EVENTS}: {hash_alg} does not match the manifest")
    else:
        listed = {e["path"]: e["sha256"] for e in manifest.get("files", [])}
        for name, (seq, sha) in recorded_files(folder / EVENTS).items():
            if listed.get(name) != sha:
                problems.append(f"{name}: not the file event #{seq} recorded as written")
    listed_paths = {e["path"] for e in manifest.get("files", [])}
    extra = [p.relative_to(folder).as_posix() for p in evidence_files(folder)]
    problems += [f"{p}: not in the manifest" for p in extra if p not in listed_paths and not _exported_extra(p)]
    return Verdict(not problems, problems, checked, manifest)


def _exported_extra(relative: str) -> bool:
    return relative in {PUBLIC_KEY, "README.txt", "SHA256SUMS", "SM3SUMS", "verify_evidence.py"}


# ---------------------------------------------------------------- export


README = """远程面签证据包 / Remote signing evidence package
==================================================

会话 session: {session}
办件 application: {number}
结果 outcome: {outcome}
签名密钥 signing key id (sha256 of the public key, DER): {key_id}
签名算法 signature algorithm: {algorithm}; 摘要算法 digests: sha256{also}

核验时请使用从通办枢纽另行取得的公钥（/api/v1/signing/public-key，或向运维索取），并核对其
密钥标识与上面一致；本文件夹内的 {key} 仅为副本，不能单独作为依据。
Check with the hub's public key obtained apart from this folder (/api/v1/signing/public-key, or
from the hub's operators) and compare its key id with the one above: the copy {key} in this
folder is a convenience, not proof.

1. 全部 Everything — signature, key id, every file, the event chain (Python 3 with `cryptography`,
   or OpenSSL for the signature; SM2 with `gmssl_pyx` or OpenSSL):
     python3 verify_evidence.py . HUB_PUBLIC_KEY.pem
   It exits 0 when everything matches, and names every problem otherwise.
2. 手工 By hand:
     {openssl}
     sha256sum -c SHA256SUMS      (the hashes manifest.json lists, events.jsonl included){sm3_sums}
   "Signature Verified Successfully" (or "Verified OK") means manifest.json is exactly what the
   hub sealed; compare the checksum files with manifest.json before relying on them.

manifest.json 的 sha256: {manifest_sha256}
"""


# checking manifest.sig by hand, per key algorithm (SM2: SM3 digest, the GB/T 35276 default id)
OPENSSL_VERIFY = {
    "ed25519": "openssl pkeyutl -verify -pubin -inkey HUB_PUBLIC_KEY.pem -rawin -in manifest.json -sigfile manifest.sig",
    "sm2": (
        "openssl pkeyutl -verify -pubin -inkey HUB_PUBLIC_KEY.pem -rawin -digest sm3 "
        "-pkeyopt distid:1234567812345678 -in manifest.json -sigfile manifest.sig"
    ),
    "ecdsa-p256": "openssl dgst -sha256 -verify HUB_PUBLIC_KEY.pem -signature manifest.sig manifest.json",
    "rsa-2048": "openssl dgst -sha256 -verify HUB_PUBLIC_KEY.pem -signature manifest.sig manifest.json",
    "rsa-3072": "openssl dgst -sha256 -verify HUB_PUBLIC_KEY.pem -signature manifest.sig manifest.json",
}


def export(folder: Path, destination: Path, public_key_pem: bytes) -> Path:
    """A self-contained copy a court or an auditor can check with the public key alone."""
    if destination.exists() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} is not empty")
    shutil.copytree(folder, destination, dirs_exist_ok=True)
    (destination / PUBLIC_KEY).write_bytes(public_key_pem)
    manifest = json.loads((destination / MANIFEST).read_bytes())
    listed = [(e["sha256"], e["path"]) for e in manifest["files"]]
    if manifest.get("events", {}).get("sha256"):
        listed.append((manifest["events"]["sha256"], EVENTS))
    sums = "".join(f"{sha}  {path}\n" for sha, path in listed)
    (destination / "SHA256SUMS").write_text(sums, encoding="utf-8")
    hash_alg = manifest.get("hash_alg", "sha256")
    if hash_alg == "sm3":  # `openssl dgst -sm3 -r FILE` prints "DIGEST *FILE": compare with these lines
        listed3 = [(e["sm3"], e["path"]) for e in manifest["files"]] + [(manifest["events"]["sm3"], EVENTS)]
        (destination / "SM3SUMS").write_text("".join(f"{h} *{p}\n" for h, p in listed3), encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name("verify_evidence.py"), destination / "verify_evidence.py")
    (destination / "README.txt").write_text(
        README.format(
            session=manifest.get("session"),
            number=manifest.get("application", {}).get("number"),
            outcome=manifest.get("outcome"),
            key=PUBLIC_KEY,
            key_id=manifest.get("key", {}).get("id"),
            algorithm=manifest.get("key", {}).get("algorithm", "Ed25519"),
            also="" if hash_alg == "sha256" else f" + {hash_alg}",
            openssl=OPENSSL_VERIFY.get(
                algorithm_named(manifest.get("key", {}).get("algorithm")), OPENSSL_VERIFY["ed25519"]
            ),
            sm3_sums=(
                '\n     cut -c67- SM3SUMS | while read -r f; do openssl dgst -sm3 -r "$f"; done | diff - SM3SUMS'
                if hash_alg == "sm3"
                else ""
            ),
            manifest_sha256=sha256_file(destination / MANIFEST),
        ),
        encoding="utf-8",
    )
    return destination
