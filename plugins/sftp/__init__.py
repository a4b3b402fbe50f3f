"""`sftp` connector: department and bank systems that exchange batch files over SFTP
(社保 batch exchange; bank outlets dropping intake batches).

Security: the server's host key is always pinned — by a `known_hosts` file or by the
`host_key_fingerprint` that `ssh-keygen -lf` prints — and an unknown or changed key is refused,
never added. A server with several host keys is asked for Ed25519 first, then ECDSA, then RSA
(paramiko's order): pin that key's fingerprint (a mismatch message names the key the server
offered). Authentication is by private key (PEM/OpenSSH text, optionally with a passphrase) or
password, both given as secret references; no agent, no ~/.ssh keys.

The exchange (file names are UTF-8, contents are in the configured `encoding`):

- **submit** writes the part as JSON to `outbox_dir/.<part_id>.json.tmp`, renames it to
  `<part_id>.json` (posix-rename where the server offers it, so an interrupted earlier attempt is
  replaced atomically), then creates the empty marker `<part_id>.json<marker_suffix>` last: the
  department reads a file only once its marker exists. A part whose marker exists is not written
  again (the part id is the idempotency key); the receipt's remote id is the file name and its
  time the marker's.
- **poll** reads `inbox_dir/<part_id>.result.json` once `<part_id>.result.json<marker_suffix>`
  exists: `{"status": ..., "reason": ..., "documents": [{"name", "file", "media_type"}]}`, each
  `file` a name in `inbox_dir`. A result that cannot be read is logged and skipped (the others
  still count); it is read again on the next poll.
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

Sessions are pooled (one per concurrent caller; dispatch submits from several threads) and closed
by `close()`."""

from __future__ import annotations

import io
import json
import logging
import os
import posixpath
import socket
import stat
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import paramiko
from paramiko.message import Message
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    CMD_VERSION,
    SFTP_FLAG_READ,
    SFTPError,
    int64,
)
from paramiko.sftp_attr import SFTPAttributes
from pydantic import BaseModel, ConfigDict, Discriminator, Field, FilePath, Tag, ValidationError, model_validator

from hub.connectors import (
    BATCH_ID,
    Batch,
    CheckResult,
    Connector,
    DeliveryError,
    Document,
    PartMessage,
    Receipt,
    Update,
)
from hub.hookspecs import hookimpl
from hub.secrets import Secret

log = logging.getLogger(__name__)

RESERVED_DIRS = ("done", "rejected", "errors")  # inside inbox_dir; never batches
ARCHIVES = (".zip", ".tar.gz", ".tgz")


def _strip_archive(name: str) -> str:
    for ext in ARCHIVES:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


DEFAULT_READ_LENGTH = 32768  # the read size every SFTP server takes (paramiko's default)
MAX_READ_LENGTH = 2**20  # never ask for more per read, whatever a server announces
CHUNK = 2**20  # local write size in download()
SMALL_FILE = 2**20  # fetch() pipelines files up to this size; larger ones are streamed one at a time
# small files in flight at once on the channel. 2,000 files of 4 KiB over loopback (2 cores): 9.0 s
# with 1, 6.2 s with 16, no better with 64 — paramiko's per-packet work is the limit there; over a
# WAN every round trip not waited for saves the whole RTT
FILES_IN_FLIGHT = 16
# what makes one department result unreadable (ValueError: bad JSON, encoding or fields)
_UNREADABLE = (ValueError, DeliveryError, FileNotFoundError, PermissionError)


# ---------------------------------------------------------------------- configuration


class PasswordAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Secret


class KeyAuth(BaseModel):
    """An Ed25519, ECDSA or RSA private key in OpenSSH or PEM form, e.g. `file:/run/secrets/sb_key`."""

    model_config = ConfigDict(extra="forbid")
    private_key: Secret
    passphrase: Secret | None = None


def _auth_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "key" if "private_key" in value else "password"
    return "key" if isinstance(value, KeyAuth) else "password"


Auth = Annotated[Annotated[PasswordAuth, Tag("password")] | Annotated[KeyAuth, Tag("key")], Discriminator(_auth_kind)]


class SftpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    auth: Auth = Field(description="{private_key: file:/path, passphrase: ${ENV}} or {password: ${ENV}}")
    known_hosts: FilePath | None = Field(default=None, description="known_hosts file naming the server's key")
    host_key_fingerprint: str | None = Field(
        default=None,
        pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$",
        description="the server's key as `ssh-keygen -lf` prints it, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
    )
    outbox_dir: str = Field(min_length=1, description="remote directory the hub uploads parts to")
    inbox_dir: str = Field(min_length=1, description="remote directory the department writes results (or batches) to")
    encoding: Literal["utf-8", "gb18030"] = "utf-8"
    connect_timeout_seconds: float = Field(default=10, gt=0)
    timeout_seconds: float = Field(default=30, gt=0, description="per SFTP operation")
    marker_suffix: str = Field(default=".ok", pattern=r"^\.[A-Za-z0-9_-]+$")

    @model_validator(mode="after")
    def _host_key_pinned(self) -> SftpSpec:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "须且只须设置 known_hosts 或 host_key_fingerprint 之一以固定主机密钥 "
                "(pin the host key with exactly one of known_hosts or host_key_fingerprint)"
            )
        return self


# ---------------------------------------------------------------------- SSH plumbing


class _Refused(Exception):
    """A connection we refuse or cannot make for a reason ops must fix (never retried)."""


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """known_hosts pinning: a server not in the file is refused, never added."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _Refused(
            f"未知主机密钥 unknown host key: {hostname} is not in known_hosts (server offered "
            f"{key.get_name()} {key.fingerprint})"
        )


class _PinnedFingerprint(paramiko.MissingHostKeyPolicy):
    """Fingerprint pinning: no host keys are loaded, so every connection comes here."""

    def __init__(self, expected: str):
        self.expected = expected.rstrip("=")

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if key.fingerprint != self.expected:
            raise _Refused(
                f"主机密钥不符 host key mismatch: {hostname} offered {key.get_name()} {key.fingerprint}, "
                f"pinned {self.expected}"
            )


class _SFTPClient(paramiko.SFTPClient):
    """Remembers the extensions the server announces in its VERSION packet (paramiko reads and
    drops them), so posix-rename is used only where it is offered, and reads are as large as the
    server says it takes (limits@openssh.com)."""

    extensions: dict[str, bytes]
    _read_length: int | None = None

    def _read_packet(self) -> tuple[int, bytes]:
        kind, data = super()._read_packet()
        if kind == CMD_VERSION:
            self.extensions = _parse_extensions(data)
        return kind, data

    @property
    def read_length(self) -> int:
        """Bytes per read request. Larger reads matter: with OpenSSH's 255 KiB instead of 32 KiB a
        download runs about 1.5x faster (about OpenSSH's own sftp client's speed)."""
        if self._read_length is None:
            self._read_length = DEFAULT_READ_LENGTH
            if "limits@openssh.com" in self.extensions:
                try:
                    kind, reply = self._request(CMD_EXTENDED, "limits@openssh.com")
                except OSError:  # announced but refused: keep the size every server takes
                    return self._read_length
                if kind == CMD_EXTENDED_REPLY:
                    reply.get_int64()  # max packet length
                    announced = reply.get_int64()  # max read length; 0 = not said
                    if announced:
                        self._read_length = max(1024, min(announced, MAX_READ_LENGTH))
        return self._read_length

    def open_for_download(self, path: str) -> tuple[paramiko.SFTPFile, int]:
        """Open `path` with every read of the file requested up front (prefetch) and return it with
        its size. The requests are not capped: paramiko's cap polls every 10 ms and made downloads
        about ten times slower (12 vs 140 MB/s on loopback); its own get() does the same."""
        remote = self.open(path, "rb")
        try:
            size = remote.stat().st_size or 0
            remote.MAX_REQUEST_SIZE = self.read_length  # per file: prefetch splits the file by it
            remote.prefetch(size)
        except BaseException:
            remote.close()
            raise
        return remote, size


def _parse_extensions(data: bytes) -> dict[str, bytes]:
    message = Message(data)
    message.get_int()  # protocol version
    found: dict[str, bytes] = {}
    while message.get_remainder():
        name = message.get_string().decode("utf-8", "replace")
        found[name] = message.get_string()
    return found


@dataclass
class _Session:
    client: paramiko.SSHClient
    sftp: _SFTPClient

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        with suppress(Exception):
            self.sftp.close()
        self.client.close()


def _load_key(auth: KeyAuth) -> paramiko.PKey:
    text = auth.private_key.get_secret_value()
    passphrase = auth.passphrase.get_secret_value() if auth.passphrase else None
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise _Refused("私钥已加密但未给口令 private key is encrypted: passphrase required") from None
        except (paramiko.SSHException, ValueError, TypeError):
            continue  # not this key type, or a wrong passphrase; fixed messages only (no key text)
    raise _Refused("无法读取私钥 private key cannot be loaded (not an Ed25519/ECDSA/RSA key, or wrong passphrase)")


def _error(name: str, action: str, exc: BaseException) -> DeliveryError:
    """A fault as a DeliveryError. Messages are built here from fixed texts, paths and the server's
    status text, never from exception text that could carry key material."""
    prefix = f"{name}: {action}"
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, _Refused):
        return DeliveryError(f"{prefix}: {exc}", retryable=False)
    if isinstance(exc, paramiko.BadHostKeyException):
        return DeliveryError(
            f"{prefix}: 主机密钥不符 host key mismatch: {exc.hostname} offered {exc.key.get_name()} "
            f"{exc.key.fingerprint}, known_hosts has {exc.expected_key.fingerprint}",
            retryable=False,
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return DeliveryError(f"{prefix}: 认证失败 authentication failed", retryable=False)
    if isinstance(exc, PermissionError):
        return DeliveryError(f"{prefix}: 权限不足 permission denied{_where(exc)}", retryable=False)
    if isinstance(exc, FileNotFoundError):
        return DeliveryError(f"{prefix}: 路径不存在 no such file or directory{_where(exc)}", retryable=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{prefix}: 超时 timeout", retryable=True)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionError):
        return DeliveryError(f"{prefix}: 连接失败 connection failed ({type(exc).__name__})", retryable=True)
    if isinstance(exc, socket.gaierror):
        return DeliveryError(f"{prefix}: 无法解析主机名 cannot resolve host", retryable=True)
    if isinstance(exc, OSError) and exc.errno is None and exc.args:
        # an SFTP status other than "no such file"/"permission denied": the server's own text
        return DeliveryError(f"{prefix}: SFTP 失败 failure: {str(exc.args[0])[:200]}", retryable=True)
    return DeliveryError(f"{prefix}: SSH 错误 error ({type(exc).__name__})", retryable=True)


def _where(exc: OSError) -> str:
    return f": {exc.filename}" if exc.filename else ""


def _safe_name(name: str, what: str) -> str:
    """One path component, not hidden: a name from a part, a batch or a department's result file
    must not lead out of its directory (`../`, `/etc/...`) or onto our temporary files."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise DeliveryError(f"不安全的名称 unsafe {what} name: {name!r}", retryable=False)
    return name


# ---------------------------------------------------------------------- pipelined small files


class _SmallFile:
    """One small file of a batch, fetched without waiting on each round trip: OPEN; on its handle,
    every read at once, covering the size the listing gave and one byte past it (a file that grew
    answers with too much); each answer written where it belongs in `.NAME.part`, which is renamed
    into place once exactly that many bytes are there; then CLOSE.

    paramiko hands each reply to `_async_response` (the interface its own prefetch uses; paramiko's
    version is pinned) from inside `SFTPClient._read_response`, which only `_fetch_small` calls: all
    of this runs on the fetching thread. The server refusing this file or a short read is kept in
    `error`, and the file settles (handle closed, partial file removed); anything else (a transport
    fault, a local write error) is raised, and the session is discarded."""

    def __init__(self, sftp: _SFTPClient, connector: str, read_length: int, remote: str, size: int, target: Path):
        self.sftp, self.connector, self.read_length = sftp, connector, read_length
        self.remote, self.size, self.target = remote, size, target
        self.partial = target.with_name(f".{target.name}.part")
        self.local: IO[bytes] | None = None
        self.handle: bytes | None = None
        self.opening: int | None = None  # the OPEN's request number
        self.reads: dict[int, tuple[int, int]] = {}  # request number -> (offset, length), unanswered
        self.waiting = 0  # requests not yet answered, CLOSE included
        self.received = 0
        self.done = False
        self.error: DeliveryError | None = None

    @property
    def settled(self) -> bool:
        return self.waiting == 0 and (self.done or self.error is not None)

    def start(self) -> _SmallFile:
        self.opening = self._send(CMD_OPEN, self.remote.encode("utf-8"), SFTP_FLAG_READ, SFTPAttributes())
        return self

    def discard(self) -> None:
        """Close and remove the partial file (what a fault leaves behind)."""
        if self.local is not None:
            self.local.close()
            self.local = None
        if not self.done:
            self.partial.unlink(missing_ok=True)

    def _send(self, kind: int, *args: Any) -> int:
        self.waiting += 1
        return self.sftp._async_request(self, kind, *args)

    def _read(self, offset: int, length: int) -> None:
        self.reads[self._send(CMD_READ, self.handle, int64(offset), length)] = (offset, length)

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        self.waiting -= 1
        if self.error is not None or self.done:
            return  # CLOSE's answer, or answers to reads sent before the file failed
        try:
            if num == self.opening:
                self._opened(kind, msg)
            elif num in self.reads:
                self._answered(kind, msg, *self.reads.pop(num))
            if self.handle is not None and not self.reads:
                self._finish()
        except DeliveryError as exc:  # this file's fault only: the channel is fine
            self.error = exc
            self.discard()
            self._close_remote()

    def _opened(self, kind: int, msg: Message) -> None:
        if kind != CMD_HANDLE:
            if kind == CMD_STATUS:
                self._status(msg)  # raises the refusal (no such file, permission denied)
            raise SFTPError("Expected handle")
        self.handle = msg.get_binary()
        self.local = self.partial.open("wb")
        end = self.size + 1
        for offset in range(0, end, self.read_length):
            self._read(offset, min(self.read_length, end - offset))

    def _answered(self, kind: int, msg: Message, offset: int, length: int) -> None:
        if kind == CMD_STATUS:
            self._status(msg)  # end of file (or OK), else raises the server's error
            if offset < self.size:
                raise self._short("it ended early")
            return  # the end of the file, just past its size: as it should be
        if kind != CMD_DATA:
            raise SFTPError("Expected data")
        data = msg.get_string()
        end = offset + len(data)
        if end > self.size:
            raise self._short("it grew")
        assert self.local is not None
        self.local.seek(offset)
        self.local.write(data)
        self.received += len(data)
        if len(data) < length and end < self.size:  # a server may send less than asked: ask again
            if not data:
                raise self._short("an empty read")
            self._read(end, length - len(data))

    def _status(self, msg: Message) -> None:
        """Returns for OK and end of file; raises the error a STATUS carries as a DeliveryError."""
        try:
            self.sftp._convert_status(msg)
        except EOFError:
            pass
        except OSError as exc:
            raise _error(self.connector, f"下载 download {self.remote}", exc) from None

    def _finish(self) -> None:
        assert self.local is not None
        self.local.close()
        self.local = None
        if self.received != self.size:
            raise self._short("bytes missing")
        self.partial.replace(self.target)
        self.done = True
        self._close_remote()

    def _close_remote(self) -> None:
        if self.handle is not None:
            self._send(CMD_CLOSE, self.handle)  # answered after the reads sent before it
            self.handle = None

    def _short(self, why: str) -> DeliveryError:
        return DeliveryError(
            f"{self.connector}: 下载不完整 short download {self.remote} (changed while read: {why})", retryable=True
        )


def _fetch_small(sftp: _SFTPClient, connector: str, files: list[tuple[str, int, Path]]) -> None:
    """(remote path, listed size, target) each, FILES_IN_FLIGHT at a time on one channel. After a
    file fails no more are started and those in flight are settled, so nothing is left pending on
    the channel (the session stays usable); then the first error is raised."""
    read_length = sftp.read_length  # asked now: a request of its own, answered before ours are sent
    queue = deque(files)
    active: list[_SmallFile] = []
    errors: list[DeliveryError] = []
    try:
        while active or (queue and not errors):
            while queue and not errors and len(active) < FILES_IN_FLIGHT:
                active.append(_SmallFile(sftp, connector, read_length, *queue.popleft()).start())
            sftp._read_response()  # one reply, handed to the file it belongs to
            errors += [f.error for f in active if f.settled and f.error is not None]
            active = [f for f in active if not f.settled]
    except BaseException:
        for f in active:
            f.discard()
        raise
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------- the connector


class _ResultDocument(BaseModel):
    name: str
    file: str
    media_type: str = "application/pdf"


class _ResultFile(BaseModel):
    status: str
    reason: str | None = None
    documents: list[_ResultDocument] = Field(default_factory=list)


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

    def _connect(self) -> _Session:
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
        try:
            client.connect(
                spec.host,
                spec.port,
                spec.username,
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
        except paramiko.SSHException as exc:
            client.close()
            # paramiko reports a server that never finishes the handshake as an SSHException: a
            # banner read that timed out, or (when its own wait runs out first) "No existing session"
            if isinstance(exc.__context__, TimeoutError) or str(exc) == "No existing session":
                raise TimeoutError("SSH handshake") from None
            raise
        except BaseException:
            client.close()
            raise
        return _Session(client, sftp)

    @contextmanager
    def _session(self, action: str, fresh: bool = False) -> Iterator[_SFTPClient]:
        """A live session from the pool (or a new one; always a new one when `fresh`), given back
        after use and discarded after a transport or server fault; every fault leaves as a
        DeliveryError."""
        if fresh:
            self.close()  # idle sessions are suspect too; dropping them keeps the pool from growing
        try:
            session = (None if fresh else self._take()) or self._connect()
        except Exception as exc:
            raise _error(self.name, action, exc) from None
        try:
            yield session.sftp
        except DeliveryError:  # our own refusal (unsafe name, missing batch): the session is fine
            self._give(session)
            raise
        except Exception as exc:
            session.close()
            raise _error(self.name, action, exc) from None
        except BaseException:  # e.g. a read() generator closed half way: state unknown
            session.close()
            raise
        else:
            self._give(session)

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
        except DeliveryError as exc:
            return CheckResult(ok=False, message=str(exc))
        return CheckResult(ok=True, message=f"{self.spec.username}@{self.spec.host}:{self.spec.port} OK")

    def submit(self, part: PartMessage) -> Receipt:
        name = f"{_safe_name(part.part_id, 'part id')}.json"
        outbox = self.spec.outbox_dir
        marker = posixpath.join(outbox, name + self.spec.marker_suffix)
        with self._session(f"提交 submit {name}") as sftp:
            done = _stat(sftp, marker)
            if done is None:  # not (completely) delivered before: (re)write, marker last
                body = json.dumps(part.model_dump(mode="json"), ensure_ascii=False, indent=2)
                self._put(sftp, outbox, name, body.encode(self.spec.encoding))
                with sftp.open(marker, "wb"):
                    pass
                done = sftp.stat(marker)
        return Receipt(part_id=part.part_id, remote_id=name, received_at=_mtime(done))

    def poll(self, receipts: list[Receipt]) -> list[Update]:
        inbox = self.spec.inbox_dir
        updates: list[Update] = []
        with self._session("查询 poll") as sftp:
            present = set(sftp.listdir(inbox))
            for receipt in receipts:
                result = f"{receipt.part_id}.result.json"
                if result + self.spec.marker_suffix not in present:
                    continue  # not there, or still being written
                update = self._read_result(sftp, receipt, posixpath.join(inbox, result))
                if update is not None:
                    updates.append(update)
        return updates

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
            _fetch_small(sftp, self.name, [(r, size, t) for r, size, t in plan if _small(size)])
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

    # ------------------------------------------------------------------ helpers

    def _put(self, sftp: _SFTPClient, folder: str, name: str, data: bytes) -> None:
        """Upload to a hidden temporary name, then rename into place: readers never see a partial file."""
        final = posixpath.join(folder, name)
        temporary = posixpath.join(folder, f".{name}.tmp")
        sftp.putfo(io.BytesIO(data), temporary, file_size=len(data), confirm=True)
        _rename(sftp, temporary, final, replace=True)

    def _read_result(self, sftp: _SFTPClient, receipt: Receipt, path: str) -> Update | None:
        try:
            raw = json.loads(_read_bytes(sftp, path).decode(self.spec.encoding))
            result = _ResultFile.model_validate(raw)
            documents = [
                Document(
                    name=doc.name,
                    media_type=doc.media_type,
                    content=_read_bytes(sftp, posixpath.join(self.spec.inbox_dir, _safe_name(doc.file, "document"))),
                )
                for doc in result.documents
            ]
            return Update(
                part_id=receipt.part_id,
                remote_id=receipt.remote_id,
                status=result.status,
                reason=result.reason,
                documents=documents,
            )
        except _UNREADABLE as exc:
            # one bad result must not hold back the others; it is read again next time
            log.warning("%s: skipping unreadable result %s (%s)", self.name, path, _summary(exc))
            return None

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


def _read_bytes(sftp: _SFTPClient, path: str) -> bytes:
    remote, size = sftp.open_for_download(path)
    with remote:
        data = remote.read(size)
    if len(data) != size:
        raise DeliveryError(f"短读 short read: {path}", retryable=True)
    return data


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


def _summary(exc: Exception) -> str:
    """What was wrong with a result file, without echoing its contents."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}"
    return str(exc)[:200]


@hookimpl
def register_connectors() -> list[type[Connector]]:
    return [SftpConnector]
