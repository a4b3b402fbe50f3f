"""The SFTP client: paramiko's SFTPClient with what its public API does not offer.

paramiko (pinned in pyproject.toml) has no public way to

- see the extensions a server announces in its VERSION packet: `SFTPClient.__init__` reads them
  in `BaseSFTP._send_version` and drops them. We override `_read_packet` to keep them, so that
  posix-rename is used only where offered and reads are as large as `limits@openssh.com` says;
- send a request it has no method for (`limits@openssh.com`): `_request(CMD_EXTENDED, ...)`;
- keep many small files in flight on one channel. `SFTPFile.prefetch`/`readv` pipeline the reads
  of ONE file already open; open and close stay one round trip each, which is what a batch of
  thousands of scans spends its time on. `_SmallFile` sends OPEN, READ and CLOSE of several files
  with `_async_request` and takes each reply through `_read_response` -> `_async_response` (the
  interface paramiko's own prefetch uses) and `_convert_status`.

Everything that touches those private names is in this module; tests/test_sftp_paramiko.py fails
loudly if paramiko changes them."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import IO, Any

import paramiko
from paramiko.message import Message
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_HANDLE,
    CMD_NAME,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_STATUS,
    CMD_VERSION,
    SFTP_FLAG_READ,
    SFTPError,
    int64,
)
from paramiko.sftp_attr import SFTPAttributes

from hub.connectors import DeliveryError
from plugins.sftp.errors import _error

DEFAULT_READ_LENGTH = 32768  # the read size every SFTP server takes (paramiko's default)
MAX_READ_LENGTH = 2**20  # never ask for more per read, whatever a server announces
SMALL_FILE = 2**20  # fetch() pipelines files up to this size; larger ones are streamed one at a time
# small files in flight at once on the channel. 2,000 files of 4 KiB over loopback (2 cores): 9.0 s
# with 1, 6.2 s with 16, no better with 64 — paramiko's per-packet work is the limit there; over a
# WAN every round trip not waited for saves the whole RTT
FILES_IN_FLIGHT = 16


class OverBudget(Exception):  # not an error: the caller stops and leaves the rest for later
    """A file within its own limit that does not fit what is left of the caller's byte budget."""


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

    def open_for_download(
        self, path: str, max_size: int | None = None, room: int | None = None
    ) -> tuple[paramiko.SFTPFile, int]:
        """Open `path` with every read of the file requested up front (prefetch) and return it with
        its size; a file over `max_size` is refused (DeliveryError), and one over `room` (what is left
        of a caller's budget) raises OverBudget, both before anything is read. The requests are not
        capped: paramiko's cap polls every 10 ms and made downloads about ten times slower (12 vs
        140 MB/s on loopback); its own get() does the same."""
        remote = self.open(path, "rb")
        try:
            size = remote.stat().st_size or 0
            if max_size is not None and size > max_size:
                raise DeliveryError(f"文件过大 file too large: {path} ({size} > {max_size} bytes)", retryable=False)
            if room is not None and size > room:
                raise OverBudget(path)
            remote.MAX_REQUEST_SIZE = self.read_length  # per file: prefetch splits the file by it
            remote.prefetch(size)
        except BaseException:
            remote.close()
            raise
        return remote, size

    def list_names(self, path: str, limit: int) -> list[str] | None:
        """The names in a directory (`.` and `..` left out), or None once there are more than
        `limit`: paramiko's listdir reads a directory of any size into memory, this stops reading
        (and closes the directory) at the bound. The same requests paramiko's listdir_attr sends."""
        kind, msg = self._request(CMD_OPENDIR, path)
        if kind != CMD_HANDLE:
            raise SFTPError("Expected handle")
        handle = msg.get_binary()
        names: list[str] = []
        try:
            while len(names) <= limit:
                try:
                    kind, msg = self._request(CMD_READDIR, handle)
                except EOFError:
                    return names
                if kind != CMD_NAME:
                    raise SFTPError("Expected name response")
                for _ in range(msg.get_int()):
                    name = msg.get_text()
                    msg.get_text()  # the long name
                    SFTPAttributes._from_msg(msg)  # read past the attributes
                    if name not in (".", ".."):
                        names.append(name)
            return None
        finally:
            self._request(CMD_CLOSE, handle)

    def fetch_small(self, connector: str, files: list[tuple[str, int, Path]]) -> None:
        """Download small files (remote path, listed size, target) several at a time: see `_fetch_small`."""
        _fetch_small(self, connector, files)


def _parse_extensions(data: bytes) -> dict[str, bytes]:
    message = Message(data)
    message.get_int()  # protocol version
    found: dict[str, bytes] = {}
    while message.get_remainder():
        name = message.get_string().decode("utf-8", "replace")
        found[name] = message.get_string()
    return found


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
