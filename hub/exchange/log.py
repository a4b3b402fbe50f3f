"""The message log: every message sent to and received from a partner, the body byte for byte
with its signature, in one hash chain. `verify` checks it offline: the chain (an edited, inserted
or removed entry breaks it), and each signature with the key of whoever signed it — ours for what
we sent, the partner's (as configured, rotated keys included) for what we took from it.

Each entry's hash is in the entry's `hash_alg` (`crypto.hash` when it was written: sha256, or sm3
for 密评), covered by the hash itself when it is not sha256, so entries written before a switch
keep their hashes and the chain runs on across it. A signature's algorithm is its key's (the
key id names the key; the key's PEM names the algorithm). `body_sha256` stays sha256: it is the
body's address (a retry is known by it), not a seal.

Entries are numbered by one counter row bumped in the writing transaction, so concurrent writers
(dispatcher threads, API processes) queue for the number and each sees its predecessor's hash."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from hub.exchange.envelope import signature_ok
from hub.hashchain import GENESIS, canonical, hash_hex
from hub.storage.tables import MessageLogEntry, naive_utc

SIGNATURE_CHARS = 600  # base64 of an RSA-3072 signature is 512; Ed25519, SM2, ECDSA under 100
MAX_KEPT_BODY = 2 * 1024 * 1024  # a larger body (never one of ours) is kept as its sha256 only
# a body nobody's key vouches for (refused as unsigned, from an unknown sender or key) is kept
# only this far: enough to see what was tried, not a way for anyone to fill the log
MAX_KEPT_UNVERIFIED = 64 * 1024
_BUMP = sql(
    "INSERT INTO counters (name, value) VALUES ('partner_message_log', :n) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + :n RETURNING value"
)


def _stored_body(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode("ascii")


def body_bytes(stored: str) -> bytes:
    if stored.startswith("base64:"):
        return base64.b64decode(stored[7:])
    return stored.encode("utf-8")


def _entry_hash(fields: dict[str, Any]) -> str:
    return hash_hex(fields.get("hash_alg", "sha256"), canonical(fields))


def _fields(e: MessageLogEntry | dict[str, Any]) -> dict[str, Any]:
    get = e.get if isinstance(e, dict) else lambda k: getattr(e, k)
    at = get("at")
    return {
        "seq": get("seq"),
        "at": at if isinstance(at, str) else at.isoformat(timespec="microseconds") + "Z",
        "direction": get("direction"),
        "partner": get("partner"),
        "message_id": get("message_id"),
        "kind": get("kind"),
        "signer": get("signer"),
        "key_id": get("key_id"),
        "verdict": get("verdict"),
        "body_sha256": get("body_sha256"),
        "body_kept": get("body_kept"),
        "signature": get("signature"),
        "prev_hash": get("prev_hash"),
        # under the hash only when not sha256: entries from before 密评 hash as they always did
        **({"hash_alg": alg} if (alg := get("hash_alg") or "sha256") != "sha256" else {}),
    }


@dataclass(frozen=True)
class Entry:
    """One message to log: what it is, its bytes and signature, and the verdict on it. `signer`:
    whose signature the body carries and was found good (our hub id for what we sign); None when
    it was not (a message refused as unsigned or from an unknown key)."""

    direction: str
    partner: str
    body: bytes
    signature: str | None
    verdict: str
    message_id: str | None = None
    kind: str | None = None
    signer: str | None = None
    key_id: str | None = None


def append(session: Session, at: datetime, *entries: Entry, hash_alg: str = "sha256") -> None:
    """Log entries (a message and its answer) in this order, numbered by one bump of the counter.
    Call it last in a transaction: the counter row stays locked until the commit, and every other
    writer of the log waits for it."""
    last = session.execute(_BUMP, {"n": len(entries)}).scalar_one()
    seq = last - len(entries) + 1
    prev = session.scalar(select(MessageLogEntry.hash).where(MessageLogEntry.seq == seq - 1)) if seq > 1 else None
    prev = prev or GENESIS
    for e in entries:
        row = {
            "seq": seq,
            "at": naive_utc(at),
            "direction": e.direction,
            "partner": e.partner,
            "message_id": (e.message_id or None) and e.message_id[:64],
            "kind": (e.kind or None) and e.kind[:24],
            "signer": e.signer,
            "key_id": e.key_id,
            "verdict": e.verdict[:48],
            "body_sha256": hashlib.sha256(e.body).hexdigest(),
            "body_kept": len(e.body) <= (MAX_KEPT_BODY if e.signer else MAX_KEPT_UNVERIFIED),
            "signature": (e.signature or None) and e.signature[:SIGNATURE_CHARS],
            "prev_hash": prev,
            **({"hash_alg": hash_alg} if hash_alg != "sha256" else {}),  # else the column's default
        }
        prev = _entry_hash(_fields(row))
        session.add(MessageLogEntry(**row, body=_stored_body(e.body) if row["body_kept"] else "", hash=prev))
        seq += 1


@dataclass
class LogReport:
    entries: int = 0
    signatures_checked: int = 0
    not_checked: int = 0  # refused as unsigned or badly signed when received: recorded, not verifiable
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    entries: Iterable[MessageLogEntry | dict[str, Any]],
    keys: dict[str, list[tuple[str, Any]]],
    *,
    last_seq: int | None = None,
) -> LogReport:
    """Check a log (rows, or dicts as `hub partners log --export` writes them) with `keys`:
    signer (a hub id) -> [(key id, public key)]. Needs no database and no network. `last_seq`:
    the number the log's counter has reached — entries removed from the end show only there."""
    report = LogReport()
    prev, expected_seq = GENESIS, None
    for e in entries:
        f = _fields(e)
        get = e.get if isinstance(e, dict) else lambda k, e=e: getattr(e, k)
        report.entries += 1
        where = f"#{f['seq']}"
        if expected_seq is not None and f["seq"] != expected_seq:
            report.problems.append(f"{where}: 序号不连续，缺少 #{expected_seq} (entry missing before this one)")
        expected_seq = f["seq"] + 1
        if f["prev_hash"] != prev:
            report.problems.append(f"{where}: 前一条的哈希不符 (chain broken: an entry was edited or removed)")
        if _entry_hash(f) != get("hash"):
            report.problems.append(f"{where}: 条目哈希不符 (entry edited)")
        prev = get("hash")
        body = get("body")
        if not f["body_kept"]:  # only its hash was kept (the flag is under the entry's hash)
            report.not_checked += 1
            continue
        raw = body_bytes(body)
        if hashlib.sha256(raw).hexdigest() != f["body_sha256"]:
            report.problems.append(f"{where}: 报文内容与哈希不符 (body edited)")
            continue
        if not f["signer"]:  # refused before its signature could be trusted: kept as evidence only
            report.not_checked += 1
            continue
        candidates = [k for kid, k in keys.get(f["signer"] or "", []) if kid == f["key_id"]]
        if not candidates:
            report.problems.append(f"{where}: 没有 {f['signer']} 的公钥 {str(f['key_id'])[:12]}… (no such public key)")
        elif not signature_ok(candidates[0], raw, f["signature"], _sig_alg(raw)):
            report.problems.append(f"{where}: 签名无效 (signature does not verify: body or signature edited)")
        else:
            report.signatures_checked += 1
    seen = (expected_seq or 1) - 1
    if last_seq is not None and seen != last_seq:
        report.problems.append(
            f"日志应有 {last_seq} 条，只见到 {seen} 条 (entries #{seen + 1}–#{last_seq} removed from the end)"
        )
    return report


def _sig_alg(body: bytes) -> str | None:
    """The algorithm a logged message names (`sig_alg`, Ed25519 when absent); None when the body
    is no message (then the key's own algorithm is taken)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return str(doc.get("sig_alg") or "ed25519") if isinstance(doc, dict) else None


def last_seq(session: Session) -> int:
    """How far the log's counter has counted (0: nothing logged yet)."""
    return session.scalar(sql("SELECT value FROM counters WHERE name = 'partner_message_log'")) or 0


def entries(session: Session, *, partner: str | None = None, batch: int = 500) -> Iterator[MessageLogEntry]:
    """The whole log in order, read in batches (it may be long)."""
    last = 0
    while True:
        stmt = select(MessageLogEntry).where(MessageLogEntry.seq > last).order_by(MessageLogEntry.seq).limit(batch)
        rows = session.scalars(stmt).all()
        if not rows:
            return
        for row in rows:
            if partner is None or row.partner == partner:
                yield row
        last = rows[-1].seq
        session.expunge_all()


TRAILER = "log_end"  # the last line of an export: how many entries the counter had reached


def export_row(e: MessageLogEntry) -> dict[str, Any]:
    """An entry as `hub partners log --export` writes it (one JSON object per line)."""
    return {**_fields(e), "hash": e.hash, "body": e.body}
