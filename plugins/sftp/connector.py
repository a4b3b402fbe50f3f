"""`sftp` connector: department and bank systems that exchange batch files over SFTP
(社保 batch exchange; bank outlets dropping intake batches).

Security: the server's host key is always pinned — by a `known_hosts` file or by the
`host_key_fingerprint` that `ssh-keygen -lf` prints — and an unknown or changed key is refused,
never added. A server with several host keys is asked for Ed25519 first, then ECDSA, then RSA
(paramiko's order): pin that key's fingerprint (a mismatch message names the key the server
offered). Authentication is by private key (PEM/OpenSSH text, optionally with a passphrase) or
password, both given as secret references; no agent, no ~/.ssh keys.

The exchange (file names are UTF-8, contents are in the configured `encoding`; the names and
shapes below are the default preset, each one configurable — see `spec` and docs/connect/sftp.md):

- **submit** writes, in `outbox_dir`: in `files` mode each material first (`outgoing.material_name`,
  default `<part_id>_<n>_<filename>`), streamed from the hub's store with its sha256 checked and
  its size confirmed by the server; then the part file (`outgoing.name`, default `<part_id>.json`;
  `outgoing.format` json, xml or csv; `outgoing.body` a template, default the whole part); then
  the empty marker `<name><marker_suffix>` last: the department reads a file only once its
  marker exists, and by then every file is whole. Each file goes to `.<name>.tmp` and is renamed
  into place (posix-rename where the server offers it, so an interrupted earlier attempt is
  replaced atomically). A part whose marker exists is not written again (the part id is the
  idempotency key); the receipt's remote id is the part file's name and its time the marker's.
- **poll** reads each receipt's result (`results.name`, default `<part_id>.result.json`) once
  its marker exists, as `results.format` (json; xml without DTDs or entities; csv with a header
  and one record); `results.status`/`reason`/`documents` select from it and `status_map` maps the
  status (default: `{"status", "reason", "documents": [{"name", "file", "media_type"}]}` in the
  hub's words), each document `file` a name in `inbox_dir`. A result that cannot be read or
  mapped is that receipt's PollFailure (the others still count); it is read again on the next
  poll. Results are held in memory, so a result file over 1 MiB, or documents over 64 MiB
  together, count as unreadable (never read); all of one poll's together stop at
  `max_poll_bytes`, and a poll stops at `max_call_seconds` (the rest is left for the next sync);
  the inbox listing stops at MAX_LISTING names (past it each marker is asked for by name).
- **intake**: a batch is a directory `inbox_dir/<batch>/`, or an archive `inbox_dir/<batch>.zip`
  (`.tar.gz`, `.tgz`), with the marker `<name><marker_suffix>` beside it (written last by the
  bank). `fetch(batch, into)` downloads every file of it under a local folder, to disk, after
  checking every name: small files (up to 1 MiB: the scans) several at a time on the one
  channel — opens, reads and closes of different files sent without waiting for each other, as
  per-file round trips are what a batch of thousands of scans spends its time on — then large
  ones streamed one at a time; each checked against the size the listing gave.
  `ack(batch, report)` writes the error report (bad records), if any, to
  `inbox_dir/errors/<batch>.jsonl`, then moves the marker and the batch to `inbox_dir/done/`;
  `reject(batch, report)` writes the report likewise and moves the batch to `inbox_dir/rejected/`.
- **download(remote, local)** copies one file; like every read here (results, documents, large
  batch files) it uses paramiko's prefetch — all read requests sent up front — with reads as large
  as the server announces (limits@openssh.com; 255 KiB on OpenSSH), else 32 KiB. A local file
  appears complete or not at all (written to `.NAME.part`, renamed when its size is checked).

Faults are DeliveryError: a refused host key, failed authentication, an unreadable private key,
permission denied and a missing path are not retryable (ops must act); timeouts, refused or reset
connections and other SSH/SFTP failures are. No message contains a secret.

Time: connecting (name lookup, TCP, SSH handshake, login, opening SFTP) takes at most
`connect_timeout_seconds` in total, and one submit — connect included — at most
`max_call_seconds`: a timer shuts the connection's socket down when either passes, whatever
paramiko is waiting for (some of its waits have no timeout). `longest_call()` is that plus the
unwinding (CUT_SECONDS), which the hub keeps well below its dispatch lease.

Sessions are pooled (one per concurrent caller; dispatch submits from several threads) and closed
by `close()`."""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import logging
import mimetypes
import os
import posixpath
import random
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
from pydantic import BaseModel, ValidationError

from hub import mapping
from hub.connectors import (
    BATCH_ID,
    Batch,
    CheckResult,
    Connector,
    DeliveryError,
    Document,
    MaterialRef,
    PartMessage,
    PollFailure,
    Preview,
    Receipt,
    Update,
)
from hub.mapping import MappingError
from plugins.sftp import formats
from plugins.sftp.client import SMALL_FILE, OverBudget, _SFTPClient
from plugins.sftp.errors import _error, _safe_name
from plugins.sftp.keys import _load_key, _PinnedFingerprint, _RefuseUnknownHost
from plugins.sftp.spec import CUT_SECONDS, MAX_DOCUMENT_BYTES, MAX_RESULT_BYTES, KeyAuth, SftpSpec

log = logging.getLogger(__name__)

RESERVED_DIRS = ("done", "rejected", "errors")  # inside inbox_dir; never batches
ARCHIVES = (".zip", ".tar.gz", ".tgz")


def _strip_archive(name: str) -> str:
    for ext in ARCHIVES:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


CHUNK = 2**20  # local write size in download()
# MAX_RESULT_BYTES and MAX_DOCUMENT_BYTES (from spec): a result file, and one result's documents
# together, held in memory; module globals here, so a test may lower them
MAX_DOCUMENTS = 50  # named by one result
MAX_LISTING = 100_000  # names of inbox_dir read by a poll; beyond, each result's marker is asked for
CHECK_LISTING = 100  # a check reads this many names of each folder at most (it proves the right to list)
MAX_REASON_CHARS = 2000
MAX_NAME_BYTES = 255  # a file name's length limit on every common file system
# what makes one department result unreadable (ValueError: bad JSON/XML/CSV, encoding or fields;
# DeliveryError: too large, an unsafe document name, a mapping that finds no status)
_UNREADABLE = (ValueError, DeliveryError, FileNotFoundError, PermissionError)


@dataclass
class _Session:
    client: paramiko.SSHClient
    sftp: _SFTPClient
    sock: socket.socket  # shut down by a submit's deadline to cut whatever the session waits for

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        with suppress(Exception):
            self.sftp.close()
        self.client.close()


class _ResultDocument(BaseModel):
    file: str
    name: str | None = None
    media_type: str | None = None  # else from the file name's extension


@dataclass
class _Plan:
    """What submit writes for one part: its file, and its materials' files (files mode)."""

    name: str
    data: bytes
    materials: list[tuple[MaterialRef, str]]


class SftpConnector(Connector):
    type = "sftp"
    Spec = SftpSpec
    description = "batch files over SFTP: pinned host key, atomic upload with .ok markers, intake batches"

    def __init__(self, name: str, spec: SftpSpec):
        super().__init__(name, spec)
        self.spec: SftpSpec = spec
        self._idle: list[_Session] = []
        self._lock = threading.Lock()
        self._key: paramiko.PKey | None = None

    # ------------------------------------------------------------------ sessions

    def _connect(self, deadline: _Deadline | None = None) -> _Session:
        """A new logged-in SFTP session, within `connect_timeout_seconds` in total: name lookup, TCP
        connect, banner, key exchange, login, the sftp subsystem and its VERSION. paramiko bounds
        some of these steps one by one and waits for the last two with no timeout at all, so the
        connection is watched from its first byte and cut when the time is up. A submit's
        `deadline` watches it too (and bounds the lookup and TCP connect by what is left of it)."""
        spec = self.spec
        client = paramiko.SSHClient()
        if spec.known_hosts is not None:
            client.load_host_keys(str(spec.known_hosts))
            client.set_missing_host_key_policy(_RefuseUnknownHost())
        else:
            client.set_missing_host_key_policy(_PinnedFingerprint(spec.host_key_fingerprint or ""))
        if isinstance(spec.auth, KeyAuth):
            self._key = self._key or _load_key(spec.auth)
            credentials: dict[str, Any] = {"pkey": self._key}
        else:
            credentials = {"password": spec.auth.password.get_secret_value()}
        timeout = spec.connect_timeout_seconds
        login = _Deadline(timeout, watch=True)
        sock: socket.socket | None = None
        try:
            sock = _open_socket(spec.host, spec.port, timeout, deadline)
            login.watch(sock)
            if deadline is not None:
                deadline.watch(sock)
            client.connect(
                spec.host,
                spec.port,
                spec.username,
                sock=sock,  # ours: opened within the deadline, and it can be cut
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=False,  # only the configured credentials, never the operator's
                look_for_keys=False,
                **credentials,
            )
            sftp = _SFTPClient.from_transport(client.get_transport())
            sftp.get_channel().settimeout(spec.timeout_seconds)
            if login.stop():  # cut just as it finished: the connection is going down
                raise TimeoutError("SSH login")
        except BaseException as exc:
            client.close()
            if sock is not None:
                sock.close()
            if login.stop():  # whatever paramiko said of the connection we cut
                raise TimeoutError("SSH login") from None
            # paramiko reports a server that never finishes the handshake as an SSHException: a
            # banner read that timed out, or (when its own wait runs out first) "No existing session"
            if isinstance(exc, paramiko.SSHException) and (
                isinstance(exc.__context__, TimeoutError) or str(exc) == "No existing session"
            ):
                raise TimeoutError("SSH handshake") from None
            raise
        return _Session(client, sftp, sock)

    @contextmanager
    def _session(self, action: str, fresh: bool = False, deadline: _Deadline | None = None) -> Iterator[_SFTPClient]:
        """A live session from the pool (or a new one; always a new one when `fresh`), given back
        after use and discarded after a transport or server fault; every fault leaves as a
        DeliveryError. With a watching `deadline` (submit), the session is cut when it passes —
        whatever it waits for — and a fault after that is the deadline's error (retryable)."""
        if fresh:
            self.close()  # idle sessions are suspect too; dropping them keeps the pool from growing
        try:
            session = (None if fresh else self._take()) or self._connect(deadline)
        except Exception as exc:
            raise self._fault(action, exc, deadline) from None
        if deadline is not None:
            deadline.watch(session.sock)  # a pooled one too
        try:
            yield session.sftp
        except DeliveryError as exc:  # our own refusal (unsafe name, missing batch): the session is fine
            if deadline is not None and deadline.cut:
                session.close()
                raise self._fault(action, exc, deadline) from None
            self._give(session)
            raise
        except Exception as exc:
            session.close()
            raise self._fault(action, exc, deadline) from None
        except BaseException:  # e.g. a read() generator closed half way: state unknown
            session.close()
            raise
        else:
            if deadline is not None and deadline.stop():
                session.close()  # done, but cut as it finished: its transport is going down
            else:
                self._give(session)

    def _fault(self, action: str, exc: BaseException, deadline: _Deadline | None) -> DeliveryError:
        if deadline is not None and (deadline.cut or deadline.over()):
            # whatever the cut session said (EOF, "authentication failed", a closed socket)
            return deadline.error(self.name, action)
        return _error(self.name, action, exc)

    def _give(self, session: _Session) -> None:
        with self._lock:
            self._idle.append(session)

    def _take(self) -> _Session | None:
        with self._lock:
            while self._idle:
                session = self._idle.pop()
                if session.alive:
                    return session
                session.close()
        return None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()

    # ------------------------------------------------------------------ verbs

    def check(self) -> CheckResult:
        """Logs in (the configured credentials: a wrong password or key is FAIL here, not a dead
        letter later) and lists both folders (a folder we may not read is FAIL too)."""
        try:
            # a fresh connection: a check answers "can we connect now?", and a pooled session the
            # server has just cut can still look alive for a moment
            with self._session("检查 check", fresh=True) as sftp:
                for label, path in (("outbox_dir", self.spec.outbox_dir), ("inbox_dir", self.spec.inbox_dir)):
                    attrs = _stat(sftp, path)
                    if attrs is None:
                        return CheckResult(
                            ok=False, message=f"{self.name}: {label} {path}: 路径不存在 no such directory"
                        )
                    if not stat.S_ISDIR(attrs.st_mode or 0):
                        return CheckResult(ok=False, message=f"{self.name}: {label} {path}: 不是目录 not a directory")
                    sftp.list_names(path, CHECK_LISTING)  # permission denied raises (not retryable)
        except DeliveryError as exc:
            return CheckResult(ok=False, message=str(exc))
        return CheckResult(ok=True, message=f"{self.spec.username}@{self.spec.host}:{self.spec.port} OK")

    def longest_call(self) -> tuple[float, tuple[str | int, ...]]:
        """One submit is watched by its deadline from the start — name lookup, TCP connect, SSH
        handshake, login, the sftp subsystem, every material, the part file, the renames and the
        marker — and cut at `max_call_seconds`; unwinding a cut session takes at most CUT_SECONDS.
        No retries inside a submit (dispatch retries on a later run)."""
        return self.spec.max_call_seconds + CUT_SECONDS, ("max_call_seconds",)

    def submit(self, part: PartMessage) -> Receipt:
        """The materials (files mode), then the part file, each uploaded to a hidden name and
        renamed into place, then the marker: when the marker is there, everything is. A part
        whose marker is there already is not written again. The whole of it within
        `max_call_seconds` (see `longest_call`)."""
        deadline = _Deadline(self.spec.max_call_seconds, watch=True)
        try:
            plan = self._plan(part)
            outbox = self.spec.outbox_dir
            marker = posixpath.join(outbox, plan.name + self.spec.marker_suffix)
            action = f"提交 submit {plan.name}"
            with self._session(action, deadline=deadline) as sftp:
                done = _stat(sftp, marker)
                if done is None:  # not (completely) delivered before: (re)write, marker last
                    for ref, file_name in plan.materials:
                        self._put_material(sftp, outbox, file_name, ref, deadline)
                    self._put(sftp, outbox, plan.name, plan.data, deadline)
                    with sftp.open(marker, "wb"):
                        pass
                    done = sftp.stat(marker)
        finally:
            deadline.stop()
        return Receipt(part_id=part.part_id, remote_id=plan.name, received_at=_mtime(done))

    def preview(self, part: PartMessage) -> list[Preview]:
        plan = self._plan(part)
        outbox = self.spec.outbox_dir
        attachments = [
            f"{posixpath.join(outbox, file_name)} ({ref.size} bytes, sha256 {ref.sha256})"
            for ref, file_name in plan.materials
        ]
        attachments.append(f"{posixpath.join(outbox, plan.name + self.spec.marker_suffix)} (marker, last)")
        return [
            Preview(
                summary=f"SFTP {self.spec.username}@{self.spec.host}:{posixpath.join(outbox, plan.name)} "
                f"({self.spec.outgoing.format}, {self.spec.encoding})",
                body=plan.data.decode(self.spec.encoding),
                attachments=attachments,
            )
        ]

    def poll(self, receipts: list[Receipt]) -> list[Update | PollFailure]:
        """For each receipt whose result file's marker is there: the result read, its status
        mapped. A result that cannot be read or mapped is that receipt's PollFailure (the others
        still count; it is read again next time); a result not there yet is no answer.

        Bounded by `max_call_seconds` (at least one receipt is looked at, and one result read, per
        poll, so a slow server still progresses) and `max_poll_bytes` (what the results and their
        documents hold in memory until sync applies them): past either, the remaining receipts are
        left for the next sync — not answered, not failed; their results stay on the server. Each
        poll starts at a random receipt, so what one poll leaves is not what every poll leaves."""
        inbox = self.spec.inbox_dir
        answers: list[Update | PollFailure] = []
        wanted: list[tuple[Receipt, str]] = []
        for receipt in receipts:
            try:
                wanted.append((receipt, self._result_name(receipt)))
            except DeliveryError as exc:
                answers.append(self._failure(receipt, str(exc)))
        if not wanted:
            return answers
        start = random.randrange(len(wanted))  # an order, not a secret
        wanted = wanted[start:] + wanted[:start]
        deadline = _Deadline(self.spec.max_call_seconds)
        budget = _Budget(self.spec.max_poll_bytes)
        read = asked = 0
        with self._session("查询 poll") as sftp:
            listed = sftp.list_names(inbox, MAX_LISTING)
            present = set(listed) if listed is not None else None  # None: too many to list, ask each
            for n, (receipt, name) in enumerate(wanted):
                # past the deadline, stop once one result is read — or, where each marker is asked
                # for by name (a round trip each), once one is asked
                if deadline.over() and (read or (present is None and asked)):
                    self._left(len(wanted) - n, f"max_call_seconds {self.spec.max_call_seconds:g} s")
                    break
                marker = name + self.spec.marker_suffix
                if present is None:
                    asked += 1
                    there = _stat(sftp, posixpath.join(inbox, marker)) is not None
                else:
                    there = marker in present
                if not there:
                    continue  # not there, or still being written
                read += 1
                try:
                    answers.append(self._read_result(sftp, receipt, posixpath.join(inbox, name), deadline, budget))
                except _Overtime:  # the session was cut (see _Deadline): the answers so far still count
                    answers.append(self._failure(receipt, str(deadline.error(self.name, f"查询 poll {name}"))))
                    break
                except OverBudget:  # this result does not fit what is left: it waits, whole, on the server
                    self._left(len(wanted) - n, f"max_poll_bytes {self.spec.max_poll_bytes}")
                    break
        return answers

    def _left(self, count: int, bound: str) -> None:
        log.warning(
            "%s: 查询达到 %s，余下 %d 个留待下次 (poll reached %s: %d receipts left for the next sync)",
            self.name,
            bound,
            count,
            bound,
            count,
        )

    def list_batches(self) -> list[Batch]:
        """Batches whose marker is there: folders, or archives (.zip, .tar.gz, .tgz)."""
        with self._session("列出批次 list batches") as sftp:
            entries = {a.filename: a for a in sftp.listdir_attr(self.spec.inbox_dir)}
        found = []
        for name, attrs in sorted(entries.items()):
            if name in RESERVED_DIRS or name.startswith(".") or name + self.spec.marker_suffix not in entries:
                continue
            if stat.S_ISDIR(attrs.st_mode or 0):
                batch_id = name
            elif stat.S_ISREG(attrs.st_mode or 0) and name.endswith(ARCHIVES):
                batch_id = _strip_archive(name)
            else:
                continue
            if not BATCH_ID.fullmatch(batch_id):  # it becomes a folder name on our side too
                log.warning("%s: batch %r is not a safe name; left on the server", self.name, name)
                continue
            found.append(Batch(id=batch_id, name=name))
        return found

    def fetch(self, batch: Batch, into: Path) -> None:
        """Every file of the batch under `into` (an archive as one file): every name checked first,
        then the small files pipelined, then the large ones streamed; each checked against the size
        the listing gave."""
        path = posixpath.join(self.spec.inbox_dir, _safe_name(batch.name, "batch"))
        with self._session(f"读取批次 read batch {batch.id}") as sftp:
            attrs = _stat(sftp, path)
            if attrs is None:
                raise DeliveryError(f"{self.name}: 批次不存在 no such batch: {batch.name}", retryable=False)
            if stat.S_ISDIR(attrs.st_mode or 0):
                files = list(_walk(sftp, path, ""))
            else:
                files, path = [(batch.name, attrs.st_size)], self.spec.inbox_dir
            targets = self._targets(batch, into, [relative for relative, _ in files])
            for folder in sorted({target.parent for target in targets}):
                folder.mkdir(parents=True, exist_ok=True)
            plan = [
                (posixpath.join(path, relative), size, target)
                for (relative, size), target in zip(files, targets, strict=True)
            ]
            sftp.fetch_small(self.name, [(r, size, t) for r, size, t in plan if _small(size)])
            for remote, size, target in plan:
                if not _small(size):  # large, or of a size the listing did not give: streamed
                    self._download(sftp, remote, target, expected=size)

    def _targets(self, batch: Batch, into: Path, names: list[str]) -> list[Path]:
        """Where the batch's files go, all checked before anything is written: inside `into` (not
        out through a symlink there), and none onto another one's temporary `.NAME.part` (files in
        flight together would write over each other)."""
        root = into.resolve()
        targets = [into / name for name in names]
        partials = {target.with_name(f".{target.name}.part") for target in targets}
        for target in targets:
            if target in partials or not target.resolve().is_relative_to(root):
                raise DeliveryError(
                    f"{self.name}: 不安全的文件名 unsafe file name in batch {batch.id}", retryable=False
                )
        return targets

    def ack(self, batch: Batch, report: Path | None = None) -> None:
        """The batch is taken: its error report (bad records) to `errors/<batch>.jsonl`, then the
        batch to `done/`."""
        with self._session(f"确认批次 ack batch {batch.id}") as sftp:
            if report is not None:
                self._put_report(sftp, batch, report)
            self._move_batch(sftp, batch, "done")

    def reject(self, batch: Batch, report: Path) -> None:
        """The whole batch is quarantined: the report to `errors/<batch>.jsonl`, the batch to `rejected/`."""
        with self._session(f"退回批次 reject batch {batch.id}") as sftp:
            self._put_report(sftp, batch, report)
            self._move_batch(sftp, batch, "rejected")

    def _put_report(self, sftp: _SFTPClient, batch: Batch, report: Path) -> None:
        errors = posixpath.join(self.spec.inbox_dir, "errors")
        _mkdir(sftp, errors)
        name = f"{_safe_name(batch.id, 'batch')}.jsonl"
        temporary = posixpath.join(errors, f".{name}.tmp")
        with open(report, "rb") as f:
            sftp.putfo(f, temporary, file_size=report.stat().st_size, confirm=True)
        _rename(sftp, temporary, posixpath.join(errors, name), replace=True)

    def download(self, remote_path: str, local_path: str | os.PathLike[str]) -> int:
        """Copy one remote file with pipelined reads; the local file appears complete or not at
        all. Returns the number of bytes."""
        with self._session(f"下载 download {remote_path}") as sftp:
            return self._download(sftp, remote_path, Path(local_path))

    def _download(self, sftp: _SFTPClient, remote_path: str, target: Path, expected: int | None = None) -> int:
        """Stream one file to `.NAME.part` and rename it into place once its size is the server's
        (and `expected`, the size a listing gave, when there was one)."""
        partial = target.with_name(f".{target.name}.part")
        try:
            remote, size = sftp.open_for_download(remote_path)
            copied = 0
            with remote, partial.open("wb") as local:
                while chunk := remote.read(CHUNK):
                    local.write(chunk)
                    copied += len(chunk)
            if copied != size or expected not in (None, size):
                raise DeliveryError(f"{self.name}: 下载不完整 short download {remote_path}", retryable=True)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return copied

    # ------------------------------------------------------------------ the exchange's files

    def _plan(self, part: PartMessage) -> _Plan:
        """The part's file (name and bytes, from the `outgoing` templates) and its materials' names
        (files mode), checked before anything is sent: every name one safe file name, no two alike."""
        spec, out = self.spec, self.spec.outgoing
        context = mapping.part_context(part, spec.materials, self.materials)
        materials: list[tuple[MaterialRef, str]] = []
        if spec.materials.mode == "files":
            for index, (ref, entry) in enumerate(zip(part.materials, context["materials"], strict=True), start=1):
                scope = {"part": context["part"], "material": entry, "index": index}
                entry["file"] = self._file_name(out.material_name, scope, ("outgoing", "material_name"))
                materials.append((ref, entry["file"]))
        name = self._file_name(out.name, context, ("outgoing", "name"))
        taken = [file_name for _, file_name in materials]
        clash = {n for n in taken if taken.count(n) > 1 or n in (name, name + spec.marker_suffix)}
        if clash:
            raise MappingError(
                f"{self.where('outgoing', 'material_name')}: 材料文件名重复 (two files of part {part.part_id} "
                f"would have the same name): {sorted(clash)[0]!r}"
            )
        if out.body is None:  # the default preset: the part as the hub sends it
            body: Any = {**context["part"], "materials": context["materials"]}
        else:
            body = mapping.render(out.body, context, lambda: self.where("outgoing", "body"))
        try:
            data = formats.dump(body, out.format, spec.encoding, out.root)
        except formats.FormatError as exc:
            raise MappingError(f"{self.where('outgoing', 'body')}: {exc}") from None
        return _Plan(name, data, materials)

    def _file_name(self, template: Any, context: dict[str, Any], loc: tuple[str, ...]) -> str:
        rendered = mapping.render(template, context, lambda: self.where(*loc))
        name = "" if rendered is None else str(rendered)
        try:
            _safe_name(name, "file")
        except DeliveryError as exc:
            raise MappingError(f"{self.where(*loc)}: {exc}") from None
        # a name no file system takes would fail on every retry: refused here, once, for ops
        if len(name.encode("utf-8")) > MAX_NAME_BYTES or any(ord(c) < 0x20 or c == "\x7f" for c in name):
            raise MappingError(
                f"{self.where(*loc)}: 文件名过长或含控制字符 (file name over {MAX_NAME_BYTES} bytes or with "
                f"control characters): {name[:60]!r}"
            )
        return name

    def _put_material(
        self, sftp: _SFTPClient, folder: str, name: str, ref: MaterialRef, deadline: _Deadline | None = None
    ) -> None:
        """One material streamed from the store (its sha256 checked as it is read) to a hidden
        name, its size confirmed by the server, then renamed into place."""
        temporary = posixpath.join(folder, f".{name}.tmp")
        try:
            with self.materials.open(ref) as source:
                sftp.putfo(source, temporary, file_size=ref.size, callback=_progress(sftp, deadline), confirm=True)
        except BaseException:
            if deadline is None or not deadline.cut:  # a cut session takes nothing more
                with suppress(Exception):  # a fault of the session itself is raised anyway
                    sftp.remove(temporary)
            raise
        _rename(sftp, temporary, posixpath.join(folder, name), replace=True)

    def _result_name(self, receipt: Receipt) -> str:
        stem = receipt.remote_id.rsplit(".", 1)[0] if "." in receipt.remote_id else receipt.remote_id
        context = {
            "part_id": receipt.part_id,
            "remote_id": receipt.remote_id,
            "remote_stem": stem,
            "part": {"part_id": receipt.part_id},
        }
        return self._file_name(self.spec.results.name, context, ("results", "name"))

    def _failure(self, receipt: Receipt, message: str) -> PollFailure:
        log.warning("%s", message)
        return PollFailure(part_id=receipt.part_id, remote_id=receipt.remote_id, message=message)

    def _read_result(
        self,
        sftp: _SFTPClient,
        receipt: Receipt,
        path: str,
        deadline: _Deadline | None = None,
        budget: _Budget | None = None,
    ) -> Update | PollFailure:
        """One receipt's answer; raises OverBudget (nothing of it kept) when the result file or
        one of its documents does not fit what is left of `budget`."""
        results = self.spec.results
        try:
            data = _read_bytes(sftp, path, MAX_RESULT_BYTES, deadline, budget)
            record = formats.load(data, results.format, self.spec.encoding)
        except _UNREADABLE as exc:
            # one bad result must not hold back the others; it is read again next time
            return self._failure(
                receipt,
                f"{self.name}: 结果文件 {path} 无法读取 (unreadable {results.format} result, "
                f"{self.where('results', 'format')}): {_summary(exc)}",
            )
        try:
            at = lambda *loc: lambda: self.where("results", *loc)  # noqa: E731
            raw = mapping.search(results.status, record, at("status"), required=True)
            status = mapping.status(raw, self.spec.status_map, lambda: self.where("status_map"))
            reason = mapping.search(results.reason, record, at("reason")) if results.reason else None
            found = mapping.search(results.documents, record, at("documents")) if results.documents else None
            documents = self._documents(sftp, found, at("documents"), deadline, budget)
        except _UNREADABLE as exc:
            return self._failure(receipt, f"{self.name}: 结果文件 {path}: {_summary(exc)}")
        return Update(
            part_id=receipt.part_id,
            remote_id=receipt.remote_id,
            status=status,  # type: ignore[arg-type]  # one of the hub's: mapping.status checked it
            reason=_reason(reason),
            documents=documents,
        )

    def _documents(
        self,
        sftp: _SFTPClient,
        found: Any,
        where: Callable[[], str],
        deadline: _Deadline | None = None,
        poll_budget: _Budget | None = None,
    ) -> list[Document]:
        """The result documents a result names: file names in inbox_dir, or {name, file,
        media_type} objects; all of one result's together held to MAX_DOCUMENT_BYTES."""
        if found in (None, "", []):
            return []
        entries = found if isinstance(found, list) else [found]
        if len(entries) > MAX_DOCUMENTS:
            raise MappingError(f"{where()}: 结果文书过多 (more than {MAX_DOCUMENTS} documents)")
        documents: list[Document] = []
        budget = MAX_DOCUMENT_BYTES  # for all of one result's documents together: held in memory
        for entry in entries:
            doc = _ResultDocument.model_validate({"file": entry} if isinstance(entry, str) else entry)
            file_name = _safe_name(doc.file, "document")
            content = _read_bytes(sftp, posixpath.join(self.spec.inbox_dir, file_name), budget, deadline, poll_budget)
            budget -= len(content)
            media_type = doc.media_type or mimetypes.guess_type(file_name)[0] or "application/pdf"
            documents.append(Document(name=doc.name or file_name, media_type=media_type, content=content))
        return documents

    # ------------------------------------------------------------------ helpers

    def _put(self, sftp: _SFTPClient, folder: str, name: str, data: bytes, deadline: _Deadline | None = None) -> None:
        """Upload to a hidden temporary name, then rename into place: readers never see a partial file."""
        final = posixpath.join(folder, name)
        temporary = posixpath.join(folder, f".{name}.tmp")
        sftp.putfo(io.BytesIO(data), temporary, file_size=len(data), callback=_progress(sftp, deadline), confirm=True)
        _rename(sftp, temporary, final, replace=True)

    def _move_batch(self, sftp: _SFTPClient, batch: Batch, destination: str) -> None:
        """Marker first, then the batch: if we stop in between, the batch is no longer offered
        (no marker) and is not read twice. A batch of the same name already there (the desk sent
        it again) is kept; this one gets a numbered name beside it."""
        name = _safe_name(batch.name, "batch")
        inbox = self.spec.inbox_dir
        target = posixpath.join(inbox, destination)
        _mkdir(sftp, target)
        marker = name + self.spec.marker_suffix
        source = posixpath.join(inbox, name)
        if _stat(sftp, posixpath.join(inbox, marker)) is None and _stat(sftp, source) is None:
            if _stat(sftp, posixpath.join(target, name)) is not None:
                return  # already moved: an ack repeated after a lost answer
            raise DeliveryError(f"{self.name}: 批次不存在 no such batch: {name}", retryable=False)
        final, n = name, 1
        while _stat(sftp, posixpath.join(target, final)) is not None:
            n += 1
            final = f"{name}.{n}"
        if _stat(sftp, posixpath.join(inbox, marker)) is not None:
            _rename(
                sftp,
                posixpath.join(inbox, marker),
                posixpath.join(target, final + self.spec.marker_suffix),
                replace=True,
            )
        if _stat(sftp, source) is not None:
            _rename(sftp, source, posixpath.join(target, final), replace=False)


def _stat(sftp: _SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.stat(path)
    except FileNotFoundError:
        return None


def _mkdir(sftp: _SFTPClient, path: str) -> None:
    if _stat(sftp, path) is None:
        sftp.mkdir(path)


def _rename(sftp: _SFTPClient, source: str, target: str, *, replace: bool) -> None:
    if "posix-rename@openssh.com" in getattr(sftp, "extensions", {}):
        sftp.posix_rename(source, target)  # atomic, and replaces an existing target
        return
    # plain SFTP rename refuses an existing target: remove it first (a leftover of an attempt
    # that stopped before its marker)
    if replace and _stat(sftp, target) is not None:
        sftp.remove(target)
    sftp.rename(source, target)


class _Overtime(Exception):
    """A call ran past max_call_seconds; its session has been cut."""


class _Deadline:
    """max_call_seconds for one submit or poll. A server that answers, but slowly (a trickle),
    never trips the per-operation timeout; this does. Once passed, the session's connection is
    cut at once — waiting for a slow server to acknowledge what is in flight would take as long
    again — so the pool discards it.

    A poll's deadline is looked at between steps (`over`, `check`). A submit's also `watch`es:
    a timer shuts the session's socket down when it passes, which ends whatever paramiko waits
    for (the banner, key exchange, login, the subsystem request and the SFTP VERSION — the last
    two with no timeout of paramiko's — or one write of many): the submit's longest call is then
    the deadline plus the unwinding (CUT_SECONDS), whatever the server does."""

    def __init__(self, seconds: float, *, watch: bool = False):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._cut = False
        self._stopped = False
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        if watch:
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    @property
    def cut(self) -> bool:
        """The deadline passed and the session was (or is being) cut."""
        return self._cut

    def over(self) -> bool:
        return time.monotonic() > self.end

    def watch(self, sock: socket.socket) -> None:
        """The socket to shut down when the deadline passes (at once, if it has)."""
        with self._lock:
            self._sock = sock
            late = self._cut
        if late:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._cut = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def stop(self) -> bool:
        """The call is over: no cut from now on. True if it was cut before that."""
        with self._lock:
            self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        return self._cut

    def check(self, sftp: _SFTPClient) -> None:
        """Between two steps: past the deadline, the session is cut and _Overtime raised."""
        if self.over():
            with self._lock:
                self._cut = True
            channel = sftp.get_channel()
            transport = channel.get_transport() if channel is not None else None
            if transport is not None:
                transport.close()
            raise _Overtime()

    def error(self, connector: str, action: str) -> DeliveryError:
        return DeliveryError(
            f"{connector}: {action}: 超过 max_call_seconds {self.seconds:g} s (too slow; tried again later)",
            retryable=True,
        )


def _shutdown(sock: socket.socket) -> None:
    """Ends every wait on the connection: paramiko's reader sees EOF, the transport stops, and each
    wait on it (a channel read, an event) gives up within its 0.1 s poll."""
    with suppress(OSError):  # not connected yet, or already closed
        sock.shutdown(socket.SHUT_RDWR)


def _open_socket(host: str, port: int, timeout: float, deadline: _Deadline | None) -> socket.socket:
    """A TCP connection to the server, within `timeout` in total (every address tried included)
    and within what is left of `deadline`. paramiko would do this itself, but with `timeout` per
    address and a name lookup of no bound of ours."""
    end = time.monotonic() + timeout
    if deadline is not None:
        end = min(end, deadline.end)
    addresses = _resolve(host, port, end)
    refused: dict[tuple[str, int], Exception] = {}
    for family, kind, proto, _, address in addresses:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("connect")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if not isinstance(exc, ConnectionRefusedError) and exc.errno != errno.EHOSTUNREACH:
                raise
            refused[address[:2]] = exc  # as paramiko does: try the next address
            continue
        return sock
    raise paramiko.ssh_exception.NoValidConnectionsError(refused)


def _resolve(host: str, port: int, end: float) -> list[tuple[Any, ...]]:
    """getaddrinfo, given up on at `end`: the system resolver's own bound (resolv.conf timeouts
    times attempts times servers) can be far longer than a submit may take. The lookup thread
    is left to finish on its own (a daemon; the resolver does end)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address: nothing to look up
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Any] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=lookup, name=f"sftp-resolve-{host}", daemon=True)
    thread.start()
    thread.join(max(end - time.monotonic(), 0))
    if thread.is_alive():
        raise TimeoutError("name lookup")
    if failed:
        raise failed[0]
    return found


def _progress(sftp: _SFTPClient, deadline: _Deadline | None) -> Callable[[int, int], None] | None:
    """putfo's callback, called after each write: where the deadline is checked during an upload."""
    if deadline is None:
        return None
    return lambda done, total: deadline.check(sftp)


READ_STEP = 64 * 1024  # a result or document is read in steps of this, the deadline checked between them


class _Budget:
    """Bytes one poll may still read (max_poll_bytes): a file is counted before it is read."""

    def __init__(self, size: int):
        self.left = size


def _read_bytes(
    sftp: _SFTPClient, path: str, max_size: int, deadline: _Deadline | None = None, budget: _Budget | None = None
) -> bytes:
    """The whole file, refused over `max_size` (DeliveryError) and over what is left of `budget`
    (OverBudget), both before it is read."""
    remote, size = sftp.open_for_download(path, max_size, budget.left if budget is not None else None)
    if budget is not None:
        budget.left -= size
    chunks: list[bytes] = []
    got = 0
    try:
        while got < size:
            if got and deadline is not None:
                deadline.check(sftp)  # raises _Overtime, the session cut
            chunk = remote.read(min(READ_STEP, size - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except _Overtime:
        with suppress(Exception):  # the transport is closed: nothing to say goodbye to
            remote.close()
        raise
    remote.close()
    if got != size:
        raise DeliveryError(f"短读 short read: {path}", retryable=True)
    return b"".join(chunks)


def _small(size: int | None) -> bool:
    return size is not None and size <= SMALL_FILE


def _walk(sftp: _SFTPClient, root: str, prefix: str) -> Iterator[tuple[str, int | None]]:
    """Relative names and sizes (None where the server gives none) of the regular files under
    root, in name order."""
    for attrs in sorted(sftp.listdir_attr(posixpath.join(root, prefix) if prefix else root), key=lambda a: a.filename):
        name = attrs.filename  # as the server sends it: one component, or we stop here
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            raise DeliveryError(f"不安全的文件名 unsafe file name in batch: {name!r}", retryable=False)
        relative = posixpath.join(prefix, name) if prefix else name
        if stat.S_ISDIR(attrs.st_mode or 0):
            yield from _walk(sftp, root, relative)
        elif stat.S_ISREG(attrs.st_mode or 0):
            yield relative, attrs.st_size


def _mtime(attrs: paramiko.SFTPAttributes) -> datetime | None:
    return datetime.fromtimestamp(attrs.st_mtime, UTC) if attrs.st_mtime is not None else None


def _reason(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:MAX_REASON_CHARS]


def _summary(exc: Exception) -> str:
    """What was wrong with a result file, without echoing its contents."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return str(exc)[:200]
