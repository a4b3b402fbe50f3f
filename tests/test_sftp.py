"""The `sftp` connector against a real OpenSSH sshd on loopback (tests/support/sshd.py). sshd serves the
local file system, so "the department" writes its files straight to disk and the tests read what
the hub uploaded from disk too."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

import plugins.sftp as sftp_plugin
import plugins.sftp.client as sftp_client
import plugins.sftp.connector as sftp_connector
from hub.connection_config import load_connections
from hub.connectors import Batch, DeliveryError, PartMessage, PollFailure, Receipt, Update
from hub.errors import ConfigInvalid
from hub.plugins import PluginHost
from plugins.sftp.connector import SftpConnector
from plugins.sftp.spec import CUT_SECONDS
from tests.conftest import PDF
from tests.support.sshd import HOST_KEY, SshServer, command, free_port, running_sshd, write_config

TYPES = PluginHost.configured(None).connector_types  # registered through the `hub` entry points

Make = Callable[..., SftpConnector]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    (tmp_path / "outbox").mkdir()
    return tmp_path / "outbox"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    return tmp_path / "inbox"


def _connection_yaml(config: dict[str, object]) -> str:
    # JSON strings are valid YAML scalars: paths and fingerprints need no further quoting care
    lines = ["type: sftp", "config:"] + [
        f"  {key}: {json.dumps(value, ensure_ascii=False)}" for key, value in config.items()
    ]
    return "\n".join(lines) + "\n"


def _load(tmp_path: Path, config: dict[str, object], name: str = "shebao"):
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(_connection_yaml(config), encoding="utf-8")
    connections, problems = load_connections(folder, TYPES)
    assert problems == []
    return connections[name]


@pytest.fixture
def make(tmp_path: Path, sshd: SshServer, outbox: Path, inbox: Path) -> Iterator[Make]:
    """Build connectors the way the hub does (YAML file → Connection.make); closed afterwards.
    By default: key auth from a file: reference, host key pinned by fingerprint."""
    made: list[SftpConnector] = []

    def build(**overrides: object) -> SftpConnector:
        config: dict[str, object] = {
            "host": sshd.host,
            "port": sshd.port,
            "username": sshd.user,
            "auth": {"private_key": f"file:{sshd.client_key}"},
            "host_key_fingerprint": sshd.host_fingerprint,
            "outbox_dir": str(outbox),
            "inbox_dir": str(inbox),
            "connect_timeout_seconds": 5,
            "timeout_seconds": 5,
        }
        config.update(overrides)
        config = {k: v for k, v in config.items() if v is not None}
        connector = _load(tmp_path, config).make(TYPES)
        assert isinstance(connector, SftpConnector)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def part(i: int, **changes: object) -> PartMessage:
    fields: dict[str, object] = {
        "part_id": f"00000000-0000-0000-0000-{i:012d}",
        "application_number": f"330329-20261122-{i:05d}",
        "item_code": "GG00402001",
        "item_title": "城乡居民基本养老保险参保登记",
        "department": "ts-rsj",
        "channel": "bank",
        "desk": "bank-xiahong",
        "collecting_division": "330329",
        "deciding_division": "330329",
        "applicant_type": "person",
        "applicant_name": "林阿婆",
        "applicant_id": "330329195003150214",
        "form": {"contact_phone": "13905770001"},
    }
    fields.update(changes)
    return PartMessage.model_validate(fields)


def receipt(p: PartMessage) -> Receipt:
    return Receipt(part_id=p.part_id, remote_id=f"{p.part_id}.json")


def department_writes(inbox: Path, name: str, data: bytes, *, marker: bool = True) -> None:
    """What the department's system does: the file first, its `.ok` marker last."""
    (inbox / name).write_bytes(data)
    if marker:
        (inbox / f"{name}.ok").write_bytes(b"")


def result(
    status: str, reason: str | None = None, documents: list[dict] | None = None, encoding: str = "utf-8"
) -> bytes:
    body = {"status": status, "reason": reason, "documents": documents or []}
    return json.dumps(body, ensure_ascii=False).encode(encoding)


# ---------------------------------------------------------------------- host keys and credentials


def test_check_passes_with_fingerprint_or_known_hosts_pinning(tmp_path, sshd, make, inbox):
    by_fingerprint = make()
    assert by_fingerprint.check().ok
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    by_file = make(host_key_fingerprint=None, known_hosts=str(known_hosts))
    assert by_file.check().ok
    # the same check fails when a directory it must see is missing
    inbox.rmdir()
    missing = make().check()
    assert not missing.ok and "inbox_dir" in missing.message and "no such directory" in missing.message


def test_unknown_or_changed_host_key_is_refused(tmp_path, sshd, make, outbox):
    wrong_pin = make(host_key_fingerprint=sshd.impostor_fingerprint)
    result = wrong_pin.check()
    # the message shows what the server offered, so ops can compare it with the department's word
    assert not result.ok and "host key mismatch" in result.message and sshd.host_fingerprint in result.message
    with pytest.raises(DeliveryError, match="host key mismatch") as exc:
        wrong_pin.submit(part(1))
    assert not exc.value.retryable

    changed = sshd.write_known_hosts(tmp_path / "known_hosts_changed", public_key=sshd.impostor_public_key)
    result = make(host_key_fingerprint=None, known_hosts=str(changed)).check()
    assert not result.ok and "host key mismatch" in result.message

    elsewhere = sshd.write_known_hosts(tmp_path / "known_hosts_other", port=sshd.port + 1 if sshd.port < 65535 else 1)
    unknown = make(host_key_fingerprint=None, known_hosts=str(elsewhere))
    result = unknown.check()
    assert not result.ok and "unknown host key" in result.message
    with pytest.raises(DeliveryError, match="unknown host key") as exc:
        unknown.submit(part(1))
    assert not exc.value.retryable
    assert list(outbox.iterdir()) == []  # refused before anything was written


def test_wrong_key_or_password_is_an_authentication_failure_not_retryable(sshd, make, outbox, monkeypatch):
    stranger = make(auth={"private_key": f"file:{sshd.stranger_key}"})
    result = stranger.check()
    assert not result.ok and "authentication failed" in result.message
    with pytest.raises(DeliveryError, match="authentication failed") as exc:
        stranger.submit(part(1))
    assert not exc.value.retryable
    # the server takes keys only: a password is refused the same way
    monkeypatch.setenv("SB_SFTP_PASSWORD", "pa55-w0rd-不对")
    with pytest.raises(DeliveryError, match="authentication failed") as exc:
        make(auth={"password": "${SB_SFTP_PASSWORD}"}).submit(part(1))
    assert not exc.value.retryable
    assert "pa55-w0rd-不对" not in str(exc.value)
    assert list(outbox.iterdir()) == []


def test_encrypted_key_and_secrets_never_shown(sshd, make, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # paramiko's own debug logging included
    key_text = sshd.encrypted_client_key.read_text(encoding="utf-8")
    monkeypatch.setenv("SB_SFTP_KEY", key_text)
    monkeypatch.setenv("SB_SFTP_PASSPHRASE", sshd.passphrase)
    good = make(auth={"private_key": "${SB_SFTP_KEY}", "passphrase": "${SB_SFTP_PASSPHRASE}"})
    assert good.check().ok

    monkeypatch.setenv("SB_SFTP_PASSPHRASE", "wrong " + sshd.passphrase)
    wrong = make(auth={"private_key": "${SB_SFTP_KEY}", "passphrase": "${SB_SFTP_PASSPHRASE}"})
    checked = wrong.check()
    assert not checked.ok and "private key cannot be loaded" in checked.message
    with pytest.raises(DeliveryError) as wrong_error:
        wrong.submit(part(1))
    assert not wrong_error.value.retryable

    without = make(auth={"private_key": "${SB_SFTP_KEY}"})
    with pytest.raises(DeliveryError, match="passphrase required") as missing_error:
        without.submit(part(1))
    assert not missing_error.value.retryable

    stranger_text = sshd.stranger_key.read_text(encoding="utf-8")
    monkeypatch.setenv("SB_SFTP_KEY", stranger_text)
    refused = make(auth={"private_key": "${SB_SFTP_KEY}"}).check()
    assert not refused.ok

    shown = "\n".join(
        [
            checked.message,
            str(wrong_error.value),
            str(missing_error.value),
            refused.message,
            repr(wrong.spec),
            str(wrong.spec),
            caplog.text,
        ]
    )
    secrets = [sshd.passphrase, "wrong " + sshd.passphrase]
    secrets += [line for text in (key_text, stranger_text) for line in text.splitlines() if "PRIVATE KEY" not in line]
    assert [s for s in secrets if s in shown] == []
    assert caplog.text  # the log was captured (so the check above had something to look at)


# ---------------------------------------------------------------------- submit


def test_submit_uploads_atomically_with_marker_last_and_is_idempotent(sshd, make, outbox):
    connector = make()
    p = part(1)
    name = f"{p.part_id}.json"
    offset = sshd.log_offset()
    first = connector.submit(p)
    assert first.part_id == p.part_id and first.remote_id == name and first.received_at is not None
    assert sorted(os.listdir(outbox)) == [name, f"{name}.ok"]  # no temporary file left behind
    assert json.loads((outbox / name).read_text(encoding="utf-8")) == p.model_dump(mode="json")
    assert (outbox / f"{name}.ok").read_bytes() == b""

    # the order the server saw: upload to the hidden name, rename into place, then the marker
    ops = [line for line in sshd.wait_for_log(offset, f"{name}.ok") if p.part_id in line]
    kinds = [line.split()[0] + (" write" if "WRITE" in line else "") for line in ops]
    assert kinds == ["open write", "close", "posix-rename", "open write", "close"]
    assert f".{name}.tmp" in ops[0] and f'new "{outbox / name}"' in ops[2] and f"{name}.ok" in ops[3]

    # a retry after a lost answer: the same receipt, nothing rewritten
    before = {n: (outbox / n).stat() for n in os.listdir(outbox)}
    for n in before:
        os.utime(outbox / n, ns=(1_000_000_000, 1_000_000_000))  # a rewrite would move these
    offset = sshd.log_offset()
    again = connector.submit(p)
    assert (again.part_id, again.remote_id) == (first.part_id, first.remote_id)
    assert again.received_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)  # the marker's time, as found
    after = {n: (outbox / n).stat() for n in os.listdir(outbox)}
    assert sorted(after) == sorted(before)
    assert all(after[n].st_ino == before[n].st_ino and after[n].st_mtime_ns == 1_000_000_000 for n in after)
    assert [line for line in sshd.log_since(offset) if p.part_id in line] == []  # no open, no rename


def test_submit_replays_return_the_same_receipt(make):
    connector = make()
    first = connector.submit(part(2))
    assert connector.submit(part(2)) == first


def test_interrupted_upload_is_replaced_also_without_posix_rename(sshd, make, outbox, monkeypatch):
    # an earlier attempt renamed its file into place but stopped before the marker
    stale = part(3)
    (outbox / f"{stale.part_id}.json").write_text('{"stale": true}', encoding="utf-8")
    make().submit(stale)
    assert json.loads((outbox / f"{stale.part_id}.json").read_text(encoding="utf-8"))["part_id"] == stale.part_id

    # a server without the posix-rename extension: plain SFTP rename, which refuses an existing
    # target, so the leftover is removed first
    monkeypatch.setattr(sftp_client, "_parse_extensions", lambda data: {})
    other = part(4)
    (outbox / f"{other.part_id}.json").write_text('{"stale": true}', encoding="utf-8")
    offset = sshd.log_offset()
    make().submit(other)
    assert json.loads((outbox / f"{other.part_id}.json").read_text(encoding="utf-8"))["part_id"] == other.part_id
    assert (outbox / f"{other.part_id}.json.ok").exists()
    ops = [line.split()[0] for line in sshd.wait_for_log(offset, ".json.ok") if other.part_id in line]
    assert "rename" in ops and "posix-rename" not in ops and ops.index("remove") < ops.index("rename")


def test_gb18030_round_trip(make, outbox, inbox):
    connector = make(encoding="gb18030")
    p = part(5, applicant_name="叶䶮", item_title="城乡居民养老保险待遇领取资格认证", form={"地址": "泰顺县罗阳镇𠀋里"})
    r = connector.submit(p)
    raw = (outbox / r.remote_id).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really GB18030 on the wire, not UTF-8
    assert json.loads(raw.decode("gb18030")) == p.model_dump(mode="json")

    department_writes(
        inbox, f"{p.part_id}.result.json", result("denied", "缴费年限不足十五年（䶮）", encoding="gb18030")
    )
    [update] = connector.poll([r])
    assert isinstance(update, Update) and update.status == "denied" and update.reason == "缴费年限不足十五年（䶮）"


def test_concurrent_submits_share_a_pool_of_sessions(make, outbox):
    connector = make()
    parts = [part(i) for i in range(100, 112)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        receipts = list(pool.map(connector.submit, parts))
    assert [r.part_id for r in receipts] == [p.part_id for p in parts]
    assert len(os.listdir(outbox)) == 2 * len(parts)
    assert 1 <= len(connector._idle) <= 4  # sessions were reused, one per concurrent caller at most


# ---------------------------------------------------------------------- poll


def test_poll_reads_only_marked_results_with_their_documents(make, inbox, caplog):
    connector = make()
    approved, pending, broken, escaping, silent = (part(i) for i in range(10, 15))
    department_writes(inbox, "决定书-10.pdf", PDF)
    department_writes(
        inbox,
        f"{approved.part_id}.result.json",
        result(
            "approved", None, [{"name": "参保登记决定书", "file": "决定书-10.pdf", "media_type": "application/pdf"}]
        ),
    )
    department_writes(inbox, f"{pending.part_id}.result.json", result("approved"), marker=False)  # still writing
    department_writes(inbox, f"{broken.part_id}.result.json", result("lost_in_the_post"))
    department_writes(
        inbox, f"{escaping.part_id}.result.json", result("approved", None, [{"name": "x", "file": "../outbox/x"}])
    )
    receipts = [receipt(p) for p in (approved, pending, broken, escaping, silent)]

    answers = connector.poll(receipts)
    updates = [a for a in answers if isinstance(a, Update)]
    assert [(u.part_id, u.status) for u in updates] == [(approved.part_id, "approved")]
    [document] = updates[0].documents
    assert (document.name, document.media_type, document.content) == ("参保登记决定书", "application/pdf", PDF)
    # a result that cannot be read is that part's recorded failure, saying why; the others count
    failures = {a.part_id: a.message for a in answers if isinstance(a, PollFailure)}
    assert sorted(failures) == sorted([broken.part_id, escaping.part_id])
    assert 'unmapped status "lost_in_the_post"' in failures[broken.part_id]
    assert "connections/shebao.yaml:" in failures[broken.part_id]
    assert "unsafe document name" in failures[escaping.part_id]
    assert "unsafe document name" in caplog.text  # and logged

    (inbox / f"{pending.part_id}.result.json.ok").write_bytes(b"")  # the department finished writing
    again = connector.poll(receipts)
    assert {u.part_id for u in again if isinstance(u, Update)} == {approved.part_id, pending.part_id}


def test_poll_skips_results_too_large_to_hold(make, inbox, caplog, monkeypatch):
    # a result and its documents are held in memory: a result file over 1 MiB, or documents over
    # the budget for one result, are refused before they are read (and tried again next poll)
    monkeypatch.setattr(sftp_connector, "MAX_DOCUMENT_BYTES", 10_000)
    huge, heavy, fine = (part(i) for i in range(20, 23))
    department_writes(inbox, f"{huge.part_id}.result.json", result("approved", "x" * sftp_connector.MAX_RESULT_BYTES))
    department_writes(inbox, "a.pdf", PDF + b"0" * 6000)
    department_writes(inbox, "b.pdf", PDF + b"1" * 6000)
    documents = [{"name": name, "file": name} for name in ("a.pdf", "b.pdf")]
    department_writes(inbox, f"{heavy.part_id}.result.json", result("approved", None, documents))
    department_writes(inbox, f"{fine.part_id}.result.json", result("approved", None, documents[:1]))
    answers = make().poll([receipt(p) for p in (huge, heavy, fine)])
    assert [a.part_id for a in answers if isinstance(a, Update)] == [fine.part_id]
    failures = {a.part_id: a.message for a in answers if isinstance(a, PollFailure)}
    assert sorted(failures) == sorted([huge.part_id, heavy.part_id])
    assert all("file too large" in message for message in failures.values())
    assert caplog.text.count("file too large") == 2


# ---------------------------------------------------------------------- faults


def test_refused_writes_and_bad_paths_are_not_retryable(sshd, make, tmp_path, outbox):
    # We run as root, for whom a chmod 0500 outbox is still writable, so the refusal comes from the
    # server itself: the read-only port runs sftp-server -R, which answers every write with
    # SSH2_FX_PERMISSION_DENIED — what a department's server sends for a directory we may not write.
    readonly = make(port=sshd.readonly_port)
    assert readonly.check().ok  # reachable and readable...
    with pytest.raises(DeliveryError, match="permission denied") as exc:
        readonly.submit(part(20))  # ...but not writable
    assert not exc.value.retryable
    assert list(outbox.iterdir()) == []

    gone = make(outbox_dir=str(tmp_path / "no-such-outbox"))
    checked = gone.check()
    assert not checked.ok and "outbox_dir" in checked.message and "no such directory" in checked.message
    with pytest.raises(DeliveryError, match="no such file") as exc:
        gone.submit(part(20))
    assert not exc.value.retryable

    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    not_dir = make(outbox_dir=str(tmp_path / "a-file"))
    checked = not_dir.check()
    assert not checked.ok and "not a directory" in checked.message
    with pytest.raises(DeliveryError) as exc:
        not_dir.submit(part(20))
    assert not exc.value.retryable


def test_unreachable_or_silent_servers_are_retryable(make):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = make(port=port)  # nothing listens there
    checked = refused.check()
    assert not checked.ok and "connection failed" in checked.message
    with pytest.raises(DeliveryError, match="connection failed") as exc:
        refused.submit(part(30))
    assert exc.value.retryable

    # a server that accepts the TCP connection and never speaks SSH (a hung daemon)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = make(port=silent.getsockname()[1], connect_timeout_seconds=0.5)
        with pytest.raises(DeliveryError, match="timeout") as exc:
            hung.submit(part(30))
    assert exc.value.retryable


def _counting_stats(monkeypatch) -> list[str]:
    """The paths poll asks the server for one by one (each still a real SFTP stat)."""
    asked: list[str] = []
    real = sftp_connector._stat

    def stat(sftp, path):
        asked.append(path)
        return real(sftp, path)

    monkeypatch.setattr(sftp_connector, "_stat", stat)
    return asked


def test_poll_past_its_byte_budget_leaves_the_rest_for_the_next_sync(make, inbox, caplog):
    # the results a poll returns are held in memory until sync applies them: max_poll_bytes
    # (at least one result with all its documents, so every poll reads one) bounds them together
    parts = [part(i) for i in range(70, 73)]
    for p in parts:
        department_writes(inbox, f"doc-{p.part_id}.pdf", PDF + os.urandom(12_000))
        department_writes(
            inbox,
            f"{p.part_id}.result.json",
            result("approved", None, [{"name": "决定书", "file": f"doc-{p.part_id}.pdf"}]),
        )
    receipts = [receipt(p) for p in parts]
    connector = make()
    # the configured floor (65 MiB) is far above this test's files: lowered on the loaded spec
    connector.spec.max_poll_bytes = 30_000
    seen: set[str] = set()
    for _ in range(100):  # each poll starts at a random receipt: what one leaves, another reads
        answers = connector.poll(receipts)
        assert all(isinstance(a, Update) for a in answers)  # left over is not a failure
        assert len(answers) == 2 and all(len(a.documents[0].content) == len(PDF) + 12_000 for a in answers)
        seen |= {a.part_id for a in answers}
        if len(seen) == 3:
            break
    assert seen == {p.part_id for p in parts}
    assert "poll reached max_poll_bytes 30000: 1 receipts left for the next sync" in caplog.text
    assert all((inbox / f"{p.part_id}.result.json.ok").exists() for p in parts)  # nothing taken away
    connector.spec.max_poll_bytes = sftp_connector.SftpSpec.model_fields["max_poll_bytes"].default
    assert len(connector.poll(receipts)) == 3


def test_poll_asking_each_marker_stops_at_max_call_seconds(make, inbox, monkeypatch, caplog):
    # an inbox too long to list (here: over 5 names) makes poll ask for each marker by name, a
    # round trip each: the deadline counts there too, once one has been asked
    monkeypatch.setattr(sftp_connector, "MAX_LISTING", 5)
    for i in range(8):
        department_writes(inbox, f"other-{i}.txt", b"x", marker=False)
    parts = [part(i) for i in range(80, 86)]
    receipts = [receipt(p) for p in parts]
    asked = _counting_stats(monkeypatch)

    hurried = make(max_call_seconds=0.001)  # passed by the time the listing has been read
    assert hurried.poll(receipts) == []
    assert len(asked) == 1  # one marker asked, not all six
    assert "poll reached max_call_seconds 0.001 s: 5 receipts left for the next sync" in caplog.text

    # each poll starts at a random receipt, so an answer is reached within a few polls
    answered = parts[3]
    department_writes(inbox, f"{answered.part_id}.result.json", result("in_review"))
    answers: list = []
    for _ in range(100):
        if answers:
            break
        answers = hurried.poll(receipts)
    assert [(a.part_id, a.status) for a in answers] == [(answered.part_id, "in_review")]

    asked.clear()
    assert [a.part_id for a in make().poll(receipts)] == [answered.part_id]  # within its budget: every one
    assert len(asked) == len(parts)


@contextmanager
def _hung_sftp_server(sshd: SshServer, folder: Path) -> Iterator[int]:
    """A second OpenSSH sshd (the same host key and authorised keys) whose sftp subsystem takes the
    requests and never answers — a hung department sftp-server: the login succeeds, then paramiko
    waits for the SFTP VERSION with no timeout of its own. Yields its port."""
    folder.mkdir()
    for name in (HOST_KEY, "authorized_keys"):
        shutil.copy(sshd.client_key.parent / name, folder / name)
    port = free_port()
    config = write_config(folder, (port,), sshd.user, ["Subsystem sftp cat >/dev/null"])
    with (folder / "sshd.log").open("wb") as log:
        proc = subprocess.Popen(command(config), stdout=log, stderr=log)
    try:
        started = time.monotonic()
        while True:  # until it listens (a guard of 60 s)
            assert proc.poll() is None and time.monotonic() - started < 60, (folder / "sshd.log").read_text()
            try:
                socket.create_connection((sshd.host, port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cut_submit(connector: SftpConnector) -> float:
    """A submit that must end with the max_call_seconds error, within the connector's longest call."""
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="max_call_seconds") as exc:
        connector.submit(part(90))
    elapsed = time.monotonic() - started
    assert exc.value.retryable
    assert connector.spec.max_call_seconds <= elapsed <= connector.longest_call()[0], elapsed
    return elapsed


def test_longest_call_is_max_call_seconds_plus_the_cut_and_the_default_fits_the_lease(make):
    longest, key = make().longest_call()
    assert (longest, key) == (240 + CUT_SECONDS, ("max_call_seconds",))
    assert longest <= 0.9 * 300  # the hub's default dispatch lease, with the core's share of it
    assert make(max_call_seconds=30).longest_call() == (35, ("max_call_seconds",))


def test_a_submit_is_cut_at_max_call_seconds_wherever_the_server_stops(sshd, make, tmp_path, monkeypatch, outbox):
    # per-step timeouts are long here (60 s): only max_call_seconds (1 s) can end these submits
    slow_steps = {"connect_timeout_seconds": 60, "timeout_seconds": 60, "max_call_seconds": 1}

    # logged in, then the sftp-server never answers (paramiko has no timeout for that wait)
    with _hung_sftp_server(sshd, tmp_path / "hung") as port:
        _cut_submit(make(port=port, **slow_steps))
        # a check (no max_call_seconds) is bounded the same way by connect_timeout_seconds
        started = time.monotonic()
        checked = make(port=port, connect_timeout_seconds=1, timeout_seconds=60).check()
        assert not checked.ok and "timeout" in checked.message
        assert time.monotonic() - started <= 1 + CUT_SECONDS

    # a server that takes the TCP connection and never says a word (paramiko's banner wait: 60 s)
    with socket.socket() as silent:
        silent.bind((sshd.host, 0))
        silent.listen()
        _cut_submit(make(port=silent.getsockname()[1], **slow_steps))

    # a name lookup that does not come back (the system resolver's own bound can be minutes)
    release = threading.Event()
    resolve = socket.getaddrinfo

    def hung_lookup(host, *args, **kwargs):
        if host == "sftp.rsj.example.gov.cn":
            release.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hung_lookup)
    try:
        _cut_submit(make(host="sftp.rsj.example.gov.cn", **slow_steps))
    finally:
        release.set()
    assert list(outbox.iterdir()) == []
    assert make().submit(part(90)).remote_id == f"{part(90).part_id}.json"  # the real server, in time


# ---------------------------------------------------------------------- intake


def _batch(inbox: Path, name: str, files: dict[str, bytes], *, marker: bool = True) -> None:
    for relative, data in files.items():
        (inbox / name / relative).parent.mkdir(parents=True, exist_ok=True)
        (inbox / name / relative).write_bytes(data)
    if marker:
        (inbox / f"{name}.ok").write_bytes(b"")


def test_intake_lists_marked_batches_fetches_acks_and_rejects(make, inbox, tmp_path):
    connector = make()
    manifest = json.dumps({"outlet": "bank-xiahong", "count": 1}, ensure_ascii=False).encode()
    _batch(inbox, "20261122-001", {"manifest.json": manifest, "scans/身份证.pdf": PDF})
    _batch(inbox, "20261122-002", {"manifest.json": b"{}"}, marker=False)  # the bank is still writing
    _batch(inbox, "20261122-003", {"manifest.json": b"{broken"})
    _batch(inbox, "done", {"old.json": b"{}"})  # the hub's own folders are never batches
    (inbox / "20261122-004").write_bytes(b"a file, not a batch folder or archive")
    (inbox / "20261122-004.ok").write_bytes(b"")
    (inbox / "20261122-005.zip").write_bytes(b"PK an archive")
    (inbox / "20261122-005.zip.ok").write_bytes(b"")

    assert [(b.id, b.name) for b in connector.list_batches()] == [
        ("20261122-001", "20261122-001"),
        ("20261122-003", "20261122-003"),
        ("20261122-005", "20261122-005.zip"),
    ]
    first, third, fifth = connector.list_batches()
    connector.fetch(first, tmp_path / "first")
    assert (tmp_path / "first" / "manifest.json").read_bytes() == manifest
    assert (tmp_path / "first" / "scans" / "身份证.pdf").read_bytes() == PDF
    connector.fetch(fifth, tmp_path / "fifth")
    assert [p.name for p in (tmp_path / "fifth").iterdir()] == ["20261122-005.zip"]

    errors = tmp_path / "errors.jsonl"
    errors.write_text('{"line": 3, "field": "applicant.id"}\n', encoding="utf-8")
    connector.ack(first, errors)
    assert (inbox / "errors" / "20261122-001.jsonl").read_bytes() == errors.read_bytes()
    assert (inbox / "done" / "20261122-001" / "scans" / "身份证.pdf").read_bytes() == PDF
    assert (inbox / "done" / "20261122-001.ok").exists()
    assert not (inbox / "20261122-001").exists() and not (inbox / "20261122-001.ok").exists()
    connector.ack(first)  # repeated after a lost answer: already done, no error

    _batch(inbox, "20261122-001", {"manifest.json": manifest})  # the bank sends it again
    (again,) = [b for b in connector.list_batches() if b.id == "20261122-001"]
    connector.ack(again)
    assert (inbox / "done" / "20261122-001.2" / "manifest.json").exists()  # kept beside the first

    report = tmp_path / "report.jsonl"
    report.write_bytes(b'{"file": "manifest.json", "reason_en": "not valid JSON"}\n')
    connector.reject(third, report)
    assert (inbox / "errors" / "20261122-003.jsonl").read_bytes() == report.read_bytes()
    assert (inbox / "rejected" / "20261122-003" / "manifest.json").read_bytes() == b"{broken"
    connector.ack(fifth)
    assert (inbox / "done" / "20261122-005.zip").exists()
    assert [b.id for b in connector.list_batches()] == []
    assert sorted(p.name for p in (inbox / "errors").iterdir()) == ["20261122-001.jsonl", "20261122-003.jsonl"]

    with pytest.raises(ValueError, match="pattern"):  # a batch id is one safe path component
        Batch(id="../outbox", name="../outbox")
    with pytest.raises(DeliveryError, match="unsafe batch name") as exc:  # and fetch checks the name again
        connector.fetch(Batch(id="outbox", name="../outbox"), tmp_path / "escape")
    assert not exc.value.retryable


def _in_flight(log: list[str], folder: Path) -> int:
    """The most files of `folder` the server had open at once, from its operation log."""
    open_now = most = 0
    for line in log:
        if f'"{folder}/' in line:
            open_now += line.startswith("open ") - line.startswith("close ")
            most = max(most, open_now)
    return most


def _local_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_fetch_pipelines_many_files_with_exact_content(sshd, make, inbox, tmp_path):
    step = 255 * 1024  # OpenSSH's read size (limits@openssh.com)
    odd = [0, 1, step - 1, step, step + 1, sftp_client.SMALL_FILE, sftp_client.SMALL_FILE + 1, 3 * 2**20 + 7]
    files = {f"materials/{i // 100}/扫描件-{i:04d}.pdf": os.urandom(100 + i * 7) for i in range(400)}
    files |= {f"sizes/{size}.bin": os.urandom(size) for size in odd}  # the last two are streamed
    files |= {"manifest.json": b'{"count": 400}', "records.jsonl": os.urandom(2 * 2**20)}
    _batch(inbox, "20261122-020", files)
    connector = make()
    [batch] = connector.list_batches()
    offset = sshd.log_offset()
    connector.fetch(batch, tmp_path / "got")
    assert _local_files(tmp_path / "got") == files  # every byte, and no `.part` file left beside them
    log = sshd.wait_for_log(offset, f"sizes/{odd[-1]}.bin")  # the last file fetched
    assert _in_flight(log, inbox / "20261122-020" / "materials" / "1") > 1  # pipelined, not one by one
    assert len(connector._idle) == 1  # one session for the whole batch

    (tmp_path / "got" / "manifest.json").write_bytes(b"stale")  # a second fetch replaces what is there
    connector.fetch(batch, tmp_path / "got")
    assert _local_files(tmp_path / "got") == files


def test_fetch_asks_again_when_the_server_sends_less_than_asked(make, inbox, tmp_path, monkeypatch):
    # OpenSSH's sftp-server answers a read of more than 255 KiB with 255 KiB: ask for 1 MiB per read
    # and every file over 255 KiB comes back in short answers, each followed by a read for the rest
    monkeypatch.setattr(sftp_client._SFTPClient, "read_length", property(lambda sftp: sftp_client.SMALL_FILE))
    files = {f"{size}.bin": os.urandom(size) for size in (300_000, 600_001, sftp_client.SMALL_FILE)}
    _batch(inbox, "20261122-021", files)
    connector = make()
    [batch] = connector.list_batches()
    connector.fetch(batch, tmp_path / "got")
    assert _local_files(tmp_path / "got") == files


def test_fetch_refuses_unsafe_names_before_writing_anything(make, inbox, tmp_path):
    connector = make()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cases = {
        # a name the server lists that is not one path component here (a backslash)
        "20261122-030": ({"a.pdf": PDF, "z\\..\\x.pdf": PDF}, None),
        # a folder of ours that is a symlink out of the staging folder: its files would land outside
        "20261122-031": ({"a.pdf": PDF, "scans/x.pdf": PDF}, "scans"),
        # a file named like another one's temporary file: the two would write over each other
        "20261122-032": ({"x.pdf": PDF, ".x.pdf.part": b"not x.pdf"}, None),
    }
    for name, (files, link) in cases.items():
        _batch(inbox, name, files)
        into = tmp_path / f"into-{name}"
        into.mkdir()
        if link:
            (into / link).symlink_to(elsewhere, target_is_directory=True)
        with pytest.raises(DeliveryError, match="unsafe file name") as exc:
            connector.fetch(Batch(id=name, name=name), into)
        assert not exc.value.retryable
        assert [p.name for p in into.iterdir()] == ([link] if link else [])  # not even a.pdf
    assert list(elsewhere.iterdir()) == []


def test_a_file_that_vanishes_or_changes_mid_fetch_fails_the_fetch(make, inbox, tmp_path, monkeypatch):
    files = {f"materials/scan-{i:03d}.pdf": os.urandom(4096) for i in range(200)}
    files["records.jsonl"] = os.urandom(sftp_client.SMALL_FILE + 4096)  # streamed, after the small ones
    _batch(inbox, "20261122-040", files)
    folder = inbox / "20261122-040"
    connector = make()
    [batch] = connector.list_batches()
    victim: dict[str, Callable[[Path], object]] = {}

    # listed, then changed just before it is opened: after about 150 files have been fetched
    start = sftp_client._SmallFile.start

    def change_then_start(small: sftp_client._SmallFile) -> sftp_client._SmallFile:
        if small.remote.endswith("materials/scan-150.pdf"):
            victim["change"](folder / "materials" / "scan-150.pdf")
        return start(small)

    monkeypatch.setattr(sftp_client._SmallFile, "start", change_then_start)
    changes: list[tuple[Callable[[Path], object], str, bool]] = [
        (Path.unlink, "no such file", False),  # gone: as a missing path, not retryable
        (lambda path: os.truncate(path, 1000), "short download", True),
        (lambda path: path.write_bytes(os.urandom(5000)), "short download", True),  # grew
    ]
    for n, (change, message, retryable) in enumerate(changes):
        victim["change"] = change
        into = tmp_path / f"into-{n}"
        with pytest.raises(DeliveryError, match=message) as exc:
            connector.fetch(batch, into)
        assert exc.value.retryable is retryable and "scan-150.pdf" in str(exc.value)
        got = _local_files(into)
        assert set(got) <= set(files) - {"materials/scan-150.pdf", "records.jsonl"}  # and no `.part` file
        assert all(data == files[name] for name, data in got.items())  # what is there is complete
        assert len(got) >= 100  # the files fetched before it stay
        (folder / "materials" / "scan-150.pdf").write_bytes(files["materials/scan-150.pdf"])

    # the session was left clean (every reply read) and is used again
    assert len(connector._idle) == 1
    victim["change"] = lambda path: None
    connector.fetch(batch, tmp_path / "into-ok")
    assert _local_files(tmp_path / "into-ok") == files

    # a large file that shrank after it was listed: streamed in full, but not the listed size
    monkeypatch.setattr(sftp_client, "_fetch_small", lambda *args: os.truncate(folder / "records.jsonl", 2**20))
    with pytest.raises(DeliveryError, match="short download") as exc:
        connector.fetch(batch, tmp_path / "into-large")
    assert exc.value.retryable
    assert sorted(p.name for p in (tmp_path / "into-large").iterdir()) == ["materials"]  # empty folder, no records


# ---------------------------------------------------------------------- download


def test_download_copies_a_large_file_exactly(make, inbox, tmp_path):
    data = os.urandom(8 * 2**20 + 12345)  # several prefetch windows and an odd tail
    (inbox / "big.bin").write_bytes(data)
    connector = make()
    target = tmp_path / "local" / "big.bin"
    target.parent.mkdir()
    assert connector.download(str(inbox / "big.bin"), target) == len(data)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    with pytest.raises(DeliveryError, match="no such file") as exc:
        connector.download(str(inbox / "missing.bin"), tmp_path / "local" / "missing.bin")
    assert not exc.value.retryable
    assert sorted(p.name for p in target.parent.iterdir()) == ["big.bin"]  # no partial file left


# ---------------------------------------------------------------------- configuration and plugin


def test_spec_requires_a_pinned_host_key_and_secret_references(tmp_path, monkeypatch):
    monkeypatch.setenv("SB_SFTP_KEY", "unused")
    base = {
        "host": "sftp.rsj.example.gov.cn",
        "username": "hub",
        "auth": {"private_key": "${SB_SFTP_KEY}"},
        "outbox_dir": "/hub/out",
        "inbox_dir": "/hub/in",
    }
    with pytest.raises(ConfigInvalid, match="pin the host key"):
        _load(tmp_path, base).make(TYPES)
    both = {**base, "host_key_fingerprint": "SHA256:" + "A" * 43, "known_hosts": str(tmp_path)}
    with pytest.raises(ConfigInvalid):
        _load(tmp_path, both).make(TYPES)
    with pytest.raises(ConfigInvalid, match="host_key_fingerprint"):
        _load(tmp_path, {**base, "host_key_fingerprint": "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"}).make(
            TYPES
        )
    with pytest.raises(ConfigInvalid, match="known_hosts"):
        _load(tmp_path, {**base, "known_hosts": str(tmp_path / "no-such-file")}).make(TYPES)
    literal = {**base, "host_key_fingerprint": "SHA256:" + "A" * 43, "auth": {"password": "hunter2-literal"}}
    with pytest.raises(ConfigInvalid, match="literal secrets") as exc:
        _load(tmp_path, literal).make(TYPES)
    assert "hunter2-literal" not in str(exc.value)
    pinned = {**base, "host_key_fingerprint": "SHA256:" + "A" * 43}
    assert _load(tmp_path, pinned).make(TYPES).spec.port == 22
    with pytest.raises(ConfigInvalid, match="encoding"):
        _load(tmp_path, {**pinned, "encoding": "latin-1"}).make(TYPES)
    # a poll's byte budget holds at least one result with all its documents (1 + 64 MiB)
    with pytest.raises(ConfigInvalid, match="max_poll_bytes") as exc:
        _load(tmp_path, {**pinned, "max_poll_bytes": 64 * 2**20}).make(TYPES)
    assert "shebao.yaml:" in str(exc.value)
    assert _load(tmp_path, {**pinned, "max_poll_bytes": 65 * 2**20}).make(TYPES).spec.max_poll_bytes == 65 * 2**20


def test_plugin_registers_the_sftp_type():
    host = PluginHost({"sftp"})
    assert host.connector_types == {"sftp": SftpConnector}
    assert host.pm.get_plugin("sftp") is sftp_plugin
    assert SftpConnector.capabilities() == ["sink", "source"]
