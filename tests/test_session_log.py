"""The signing session event log: one module writes and verifies it (hub/session_log.py), and
the standalone verifier copied into every export (video/verify_evidence.py, which may import
nothing from the hub) reaches the same verdict on the same logs — intact, edited, reordered,
cut off, re-encoded. Known hashes of both chain formats are pinned: a change to the shared
canonical JSON would make every stored chain fail."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from hub import events, hashchain, session_log
from video import verify_evidence


def test_known_hashes_of_both_chain_formats_are_unchanged():
    # computed before hub/hashchain.py existed: stored chains of either kind still verify
    fields = {
        "seq": 3,
        "part_id": None,
        "action": "accept",
        "from_state": "pre_reviewed",
        "to_state": "accepted",
        "actor": "柜员王芳",
        "role": "officer",
        "desk": "bank-xiahong",
        "at": datetime(2026, 12, 2, 4, 5, 7, 123456),
        "reason": 'line\u2028break "q"',
        "data": {"channel": "bank", "n": [1, 2.5, None]},
        "prev_hash": hashchain.GENESIS,
    }
    assert (
        events.fields_hash("330329-20261202-00001", fields)
        == "7876e4164899ec9ada405dce53b6c7a230ac39f9d1aad31237ca31ee0fe54ba3"
    )
    event = {
        "seq": 1,
        "at": "2026-12-02T04:05:07.123Z",
        "kind": "created",
        "by": "公积金审批员 (officer, -)",
        "data": {"title": "退休提取\u2028", "n": [1, 2.5, None]},
        "prev": hashchain.GENESIS,
    }
    assert session_log.event_hash(event) == "273329e6e8bc4aeec85fa81f083025d35b951b784024fbf437670b96185a2c56"
    # and the standalone verifier's own copy of the encoding gives the same text
    assert verify_evidence.canonical(event) == hashchain.canonical(event)
    assert verify_evidence.GENESIS == hashchain.GENESIS == events.GENESIS


def test_the_standalone_verifier_imports_nothing_of_the_hub():
    tree = ast.parse(Path(verify_evidence.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"hub", "video", "tests"}, imported


# ---------------------------------------------------------------- the same logs through both verifiers


def _log(folder: Path) -> Path:
    log = session_log.EventLog(folder / session_log.EVENTS)
    log.append("created", "公积金审批员 (officer, 公积金中心)", {"application": "330329-20261202-00001"})
    log.append("segment", "hub", {"participant": "desk", "path": "desk/000001.webm", "sha256": "ab" * 32})
    log.append("readback_show", "officer", {"file": "readback.json", "sha256": "cd" * 32, "note": "行\u2028分隔"})
    log.append("quality", "hub", {"rtt": 0.25, "big": 2**70, "tiny": 1e-300, "neg": -0.0, "list": [None, True]})
    log.append("signature", "desk", {"file": "signature.png", "sha256": "ef" * 32, "bytes": 72})
    return log.path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes], end: bytes = b"\n") -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines[:-1]) + (lines[-1] + end if lines else b""))


def _edit(line: bytes, change: Callable[[dict], None], *, rehash: bool = False) -> bytes:
    event = json.loads(line)
    change(event)
    if rehash:
        event["hash"] = session_log.event_hash(event)
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda e: e.__setitem__(key, value)


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "intact": lambda p: None,
    "empty": lambda p: p.write_bytes(b""),
    "data edited": lambda p: _write(
        p, [*_lines(p)[:2], _edit(_lines(p)[2], lambda e: e["data"].update(note="改")), *_lines(p)[3:]]
    ),
    "edited and rehashed": lambda p: _write(
        p, [_lines(p)[0], _edit(_lines(p)[1], _set("by", "someone"), rehash=True), *_lines(p)[2:]]
    ),
    "last edited and rehashed": lambda p: _write(
        p, [*_lines(p)[:-1], _edit(_lines(p)[-1], _set("by", "x"), rehash=True)]
    ),
    "field added and rehashed": lambda p: _write(
        p, [*_lines(p)[:-1], _edit(_lines(p)[-1], _set("extra", "新"), rehash=True)]
    ),
    "middle line removed": lambda p: _write(p, [*_lines(p)[:2], *_lines(p)[3:]]),
    "newest line removed": lambda p: _write(p, _lines(p)[:-1]),
    "lines swapped": lambda p: _write(p, [_lines(p)[0], _lines(p)[2], _lines(p)[1], *_lines(p)[3:]]),
    "cut off last line": lambda p: p.write_bytes(p.read_bytes()[:-9]),
    "no newline at the end": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "not JSON": lambda p: _write(p, [*_lines(p)[:3], b"{not json", *_lines(p)[4:]]),
    "UTF-8 instead of escapes": lambda p: _write(
        p, [json.dumps(json.loads(line), ensure_ascii=False).encode() for line in _lines(p)]
    ),
    "a raw U+2028 inside a line": lambda p: p.write_bytes(p.read_bytes().replace(b"\\u2028", "\u2028".encode())),
    "seq renumbered": lambda p: _write(p, [_edit(_lines(p)[0], _set("seq", 0), rehash=True), *_lines(p)[1:]]),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_the_hub_and_the_standalone_verifier_agree(name: str, tmp_path: Path):
    path = _log(tmp_path)
    MUTATIONS[name](path)
    hub = session_log.verify_events(path)
    count, head, recorded, problem = verify_evidence.chain(path)
    assert (hub.ok, hub.count, hub.head) == (problem is None, count, head), (hub, problem)
    if hub.ok:
        assert recorded == session_log.recorded_files(path)
    # and the cases are what their names say: only these keep a valid chain
    valid = {"intact", "empty", "last edited and rehashed", "field added and rehashed", "newest line removed"}
    assert hub.ok == (name in valid | {"UTF-8 instead of escapes", "a raw U+2028 inside a line"}), hub.problem


def test_appends_after_a_crash_cut_a_line_keep_the_chain(tmp_path: Path):
    path = _log(tmp_path)
    with open(path, "ab") as f:
        f.write(b'{"seq":6,"kin')  # the process died mid-write: never acknowledged
    assert not session_log.verify_events(path).ok and session_log.verify_events(path, sealed=False).ok
    session_log.EventLog(path).append("aborted", "hub", {"reason": "x"})
    check = session_log.verify_events(path)
    assert check.ok and check.count == 6
    assert verify_evidence.chain(path)[:2] == (check.count, check.head)
