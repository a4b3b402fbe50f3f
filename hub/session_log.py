"""A signing session's event log (`events.jsonl` in the session's folder): written here while the
session runs (`EventLog.append`) and verified here (`verify_events`) — by the hub before it seals,
and by `video.evidence` when anyone checks sealed evidence. One module for the format, so the
writer and the verifier cannot disagree.

Each line is one event, `{"seq", "at", "kind", "by", "data", "prev", "hash"}`: `hash` is the
sha256 of the canonical JSON (`hub.hashchain`) of every other field, `prev` the hash of the line
before (GENESIS for the first). A log hashed in another algorithm than sha256 (`crypto.hash: sm3`,
密评) carries `"alg": "sm3"` in every event, under the hash; absent means sha256, so logs written
before stay as they were. A log keeps the algorithm its first event has. `video/verify_evidence.py` repeats `verify_events` for auditors
without the hub; tests/test_session_log.py runs both over the same logs."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.crypto import HASH_ALGORITHMS
from hub.hashchain import GENESIS, canonical, hash_hex

EVENTS = "events.jsonl"


def event_hash(event: dict[str, Any]) -> str:
    """What an event's hash covers: every field but the hash itself, as canonical JSON, in the
    event's `alg` (sha256 when absent)."""
    return hash_hex(str(event.get("alg", "sha256")), canonical({k: v for k, v in event.items() if k != "hash"}))


# ---------------------------------------------------------------- writing


_LOGS: dict[Path, EventLog] = {}
_LOGS_LOCK = threading.Lock()


def log_at(folder: Path, algorithm: str = "sha256") -> EventLog:
    """The event log of the session folder `folder` (one writer per file in this process).
    `algorithm`: the hash a new log is chained with; an existing log keeps its own."""
    path = folder / EVENTS
    with _LOGS_LOCK:
        if path not in _LOGS:
            _LOGS[path] = EventLog(path, algorithm)
        return _LOGS[path]


class EventLog:
    """Append-only, hash-chained JSON lines, each synced to disk before `append` returns: a crash
    loses at most the event being written. Appends take an exclusive lock on the file and read
    the chain's end from it, so threads and processes writing one session's log (the recorder's
    segment events, the web requests' steps, a recovering process) never fork the chain. Lines
    are plain ASCII (\\u escapes): no character in an event can pass for a line break."""

    def __init__(self, path: Path, algorithm: str = "sha256"):
        self.path = path
        self.algorithm = algorithm  # for a new log; one with events keeps its first event's
        self._lock = threading.Lock()

    def append(self, kind: str, by: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                seq, head, end = _tail(fd)
                algorithm = _first_algorithm(fd) if seq else self.algorithm
                at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                event = {"seq": seq + 1, "at": at, "kind": kind, "by": by, "data": data or {}, "prev": head}
                if algorithm != "sha256":
                    event["alg"] = algorithm
                event["hash"] = event_hash(event)
                os.ftruncate(fd, end)  # a line a crash cut off was never acknowledged: it goes
                os.lseek(fd, end, os.SEEK_SET)
                os.write(fd, (json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii"))
                os.fsync(fd)
                return event
            finally:
                os.close(fd)  # and with it the lock


def _tail(fd: int) -> tuple[int, str, int]:
    """(seq, hash) of the last complete event and where it ends, read from the end of the file."""
    size = os.fstat(fd).st_size
    block, pos, data = 65536, size, b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        data = os.pread(fd, step, pos) + data
        lines = data.split(b"\n")
        complete = lines[:-1]  # what follows the last newline is unfinished
        if len(complete) >= 2 or (len(complete) == 1 and pos == 0):
            last = complete[-1]
            end = pos + len(data) - len(lines[-1])
            event = json.loads(last)
            return event["seq"], event["hash"], end
    return 0, GENESIS, 0


def _first_algorithm(fd: int) -> str:
    """The hash algorithm of the log's first event (its first line)."""
    data = b""
    while b"\n" not in data:
        more = os.pread(fd, 65536, len(data))
        if not more:
            break
        data += more
    return str(json.loads(data.split(b"\n", 1)[0]).get("alg", "sha256"))


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events as written, split on newlines only; a last line cut off by a crash (never
    acknowledged) is left out."""
    lines = path.read_bytes().split(b"\n")
    for line in lines[:-1]:
        yield json.loads(line)


# ---------------------------------------------------------------- verifying


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    count: int
    head: str
    problem: str | None = None
    algorithm: str = "sha256"  # the chain's hash


def verify_events(path: Path, *, sealed: bool = True) -> ChainCheck:
    """Recompute the chain; name the first line that does not fit. Lines end at newlines only
    (not at the other characters Python would take for line breaks). In sealed evidence every
    byte belongs to a complete line; a log still being written may end in a cut-off one."""
    prev, count, algorithm = GENESIS, 0, None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return ChainCheck(False, 0, prev, f"{path.name}: cannot be read ({exc.strerror})")
    lines = raw.split(b"\n")
    if lines[-1] and sealed:
        return ChainCheck(False, 0, prev, f"{path.name} line {len(lines)}: incomplete (no newline at the end)")
    for number, line in enumerate(lines[:-1], start=1):
        try:
            event = json.loads(line)
        except ValueError:
            return ChainCheck(False, count, prev, f"{path.name} line {number}: not JSON")
        where = f"{path.name} line {number} (#{event.get('seq')} {event.get('kind')})"
        if event.get("seq") != number:
            return ChainCheck(False, count, prev, f"{where}: out of sequence (expected #{number})")
        if event.get("prev") != prev:
            return ChainCheck(False, count, prev, f"{where}: does not follow the event before it")
        alg = event.get("alg", "sha256")
        algorithm = algorithm or alg
        if alg != algorithm or alg not in HASH_ALGORITHMS:
            return ChainCheck(False, count, prev, f"{where}: hash algorithm {alg!r}, the log's is {algorithm!r}")
        if event_hash(event) != event.get("hash"):
            return ChainCheck(False, count, prev, f"{where}: content does not match its hash")
        prev, count = event["hash"], number
    return ChainCheck(True, count, prev, algorithm=algorithm or "sha256")


def recorded_files(path: Path) -> dict[str, tuple[int, str]]:
    """path -> (event seq, sha256) for every file an event recorded as it was written (segments,
    the signature, the read-back, stills): sealed evidence must hold the same bytes."""
    out: dict[str, tuple[int, str]] = {}

    def visit(seq: int, value: Any) -> None:
        if isinstance(value, dict):
            name = value.get("path") or value.get("file")
            if isinstance(name, str) and isinstance(value.get("sha256"), str):
                out[name] = (seq, value["sha256"])
            for v in value.values():
                visit(seq, v)
        elif isinstance(value, list):
            for v in value:
                visit(seq, v)

    for line in path.read_bytes().split(b"\n")[:-1]:
        event = json.loads(line)
        visit(event["seq"], event.get("data"))
    return out
