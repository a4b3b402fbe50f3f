"""A sandbox 社保 system that exchanges batch files over SFTP on 127.0.0.1: the other side of the
`sftp` connector, served by paramiko so that `hub sandbox run` needs neither root nor OpenSSH.

    /to_shebao/<part>.json, then <part>.json.ok              the hub's parts (marker written last)
    /from_shebao/<part>.result.json, then .result.json.ok    the department's decisions
    /from_shebao/<part>-result.pdf                           the result document of an approval

Every session is jailed in `root`: a path leading out of it (`..` above the top, or through a
symlink pointing outside) is refused with "permission denied", and symlinks cannot be made over
SFTP. A plain rename refuses an existing target, as OpenSSH does; posix-rename@openssh.com is
announced and replaces atomically, so the connector takes the same path as against OpenSSH.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import paramiko
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from paramiko.message import Message
from paramiko.sftp import CMD_INIT, CMD_VERSION, SFTP_PERMISSION_DENIED, SFTPError

from plugins.sandbox.rest_department import RESULT_PDF

HOST = "127.0.0.1"
SFTP_VERSION = 3  # the only version paramiko (and OpenSSH) speak
TICK_SECONDS = 0.2  # how often the department looks for decisions due (and checks for stop())

P = ParamSpec("P")
R = TypeVar("R")


def _ed25519_pem() -> str:
    # paramiko reads Ed25519 keys but cannot make them: cryptography does
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def new_host_key() -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(_ed25519_pem()))


def load_or_create_host_key(path: Path) -> paramiko.PKey:
    """The key kept in `path` (made there first if missing): `hub sandbox run` keeps its host key
    across runs, so the hub's known_hosts or pinned fingerprint stays valid."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(_ed25519_pem())
    return paramiko.Ed25519Key.from_private_key_file(str(path))


class _Escape(Exception):
    """A path that would lead out of the department's root."""


def _sftp_errors(method: Callable[P, R]) -> Callable[P, R | int]:
    """SFTPServerInterface methods answer with an SFTP status code instead of raising."""

    @wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | int:
        try:
            return method(*args, **kwargs)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    return wrapper


class _Handle(paramiko.SFTPHandle):
    """An open file; closing one that was written tells the department (a part's marker)."""

    def __init__(self, file: io.BufferedIOBase, flags: int, local: Path, dept: SftpDepartment):
        super().__init__(flags)
        self.file, self.local, self.dept = file, local, dept
        self.writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
        if flags & (os.O_WRONLY | os.O_RDWR):
            self.writefile = file  # SFTPHandle.read/write look for these two attributes
        if not flags & os.O_WRONLY:
            self.readfile = file

    def stat(self) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.file.fileno()))

    def close(self) -> None:
        super().close()
        if self.writing:
            self.dept._written(self.local)


class _Jail(paramiko.SFTPServerInterface):
    """One SFTP session's file system: the department's root and nothing outside it."""

    def __init__(self, server: _Server, *args: Any, **kwargs: Any):
        super().__init__(server, *args, **kwargs)
        self.dept = server.dept

    def _local(self, path: str, *, follow: bool = True) -> Path:
        """The real local path of a remote one, or _Escape. `..` is resolved here, by name, so the
        OS never sees it; symlinks are resolved by the OS and the result must stay inside root.
        With follow=False the entry itself (lstat, remove, rename) is meant: only its directory
        is resolved."""
        names: list[str] = []
        for name in path.split("/"):
            if name == "..":
                if not names:
                    raise _Escape(path)
                names.pop()
            elif name not in ("", "."):
                names.append(name)
        root = self.dept.root
        target = root.joinpath(*names)
        if follow or not names:
            real = Path(os.path.realpath(target))
            inside = real.is_relative_to(root)
        else:
            real = Path(os.path.realpath(target.parent)) / target.name
            inside = real.parent.is_relative_to(root)
        if not inside:
            raise _Escape(path)
        return real

    def canonicalize(self, path: str) -> str:
        try:
            relative = self._local(path).relative_to(self.dept.root).as_posix()
        except _Escape:
            return "/"  # like OpenSSH's chroot: "/.." is "/"
        return "/" if relative == "." else f"/{relative}"

    @_sftp_errors
    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        local = self._local(path)
        self.dept._tick()  # a poll lists the inbox: decisions due by now are there to be seen
        found = []
        for name in sorted(os.listdir(local)):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                found.append(paramiko.SFTPAttributes.from_stat(os.lstat(local / name), name))
        return found

    @_sftp_errors
    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.stat(self._local(path)))

    @_sftp_errors
    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path, follow=False)))

    @_sftp_errors
    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        local = self._local(path)
        mode = attr.st_mode & 0o777 if attr is not None and attr.st_mode is not None else 0o644
        fd = os.open(local, flags, mode)
        if flags & os.O_WRONLY:
            file_mode = "ab" if flags & os.O_APPEND else "wb"  # the fd was truncated (or not) by os.open
        elif flags & os.O_RDWR:
            file_mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            file_mode = "rb"
        return _Handle(os.fdopen(fd, file_mode), flags, local, self.dept)

    @_sftp_errors
    def remove(self, path: str) -> int:
        os.remove(self._local(path, follow=False))
        return paramiko.SFTP_OK

    @_sftp_errors
    def rename(self, oldpath: str, newpath: str) -> int:
        source, target = self._local(oldpath, follow=False), self._local(newpath, follow=False)
        if os.path.lexists(target):  # SFTP v3 rename never replaces (OpenSSH's neither)
            return paramiko.SFTP_FAILURE
        os.rename(source, target)
        self.dept._written(target)
        return paramiko.SFTP_OK

    @_sftp_errors
    def posix_rename(self, oldpath: str, newpath: str) -> int:
        target = self._local(newpath, follow=False)
        os.replace(self._local(oldpath, follow=False), target)
        self.dept._written(target)
        return paramiko.SFTP_OK

    @_sftp_errors
    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        mode = attr.st_mode & 0o777 if attr is not None and attr.st_mode is not None else 0o755
        os.mkdir(self._local(path, follow=False), mode)
        return paramiko.SFTP_OK

    @_sftp_errors
    def rmdir(self, path: str) -> int:
        os.rmdir(self._local(path, follow=False))
        return paramiko.SFTP_OK


class _SftpServer(paramiko.SFTPServer):
    server: _Jail

    def _send_server_version(self) -> int:
        # paramiko announces only check-file; the connector uses posix-rename only where announced
        kind, data = self._read_packet()
        if kind != CMD_INIT:
            raise SFTPError("Incompatible sftp protocol")
        message = Message()
        message.add_int(SFTP_VERSION)
        message.add("check-file", "md5,sha1", "posix-rename@openssh.com", "1")
        self._send_packet(CMD_VERSION, message)
        return int(struct.unpack(">I", data[:4])[0])

    def _process(self, t: int, request_number: int, msg: Message) -> None:
        if self.server.dept.latency:
            time.sleep(self.server.dept.latency)  # a slow department answers every request late
        super()._process(t, request_number, msg)


class _Server(paramiko.ServerInterface):
    """Who may log in: `username` with the password and/or the authorised key."""

    def __init__(self, dept: SftpDepartment):
        self.dept = dept

    def get_allowed_auths(self, username: str) -> str:
        methods = [("password", self.dept.password), ("publickey", self.dept.authorized_key)]
        return ",".join(name for name, credential in methods if credential is not None)

    def check_auth_password(self, username: str, password: str) -> int:
        expected = self.dept.password
        ok = expected is not None and hmac.compare_digest(password.encode(), expected.encode())
        return paramiko.AUTH_SUCCESSFUL if ok and username == self.dept.username else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        expected = self.dept.authorized_key
        ok = expected is not None and key.asbytes() == expected.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok and username == self.dept.username else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        # sessions only (for the sftp subsystem; no shell or exec is offered): no port forwarding
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SftpDepartment:
    """Start with `start()`, stop with `stop()`. `received` counts the part markers written per
    part id: a marker written again would make a real department take the file again, so an
    idempotent hub leaves it at 1. Knobs: `down` (connections are dropped at once), `latency`
    (seconds before every SFTP answer), `decide_after` (approve by itself that long after receipt)."""

    outbox_dir = "/to_shebao"  # the connector's outbox_dir: the hub uploads parts here
    inbox_dir = "/from_shebao"  # the connector's inbox_dir: the department writes results here

    def __init__(
        self,
        root: Path,
        *,
        username: str = "hub",
        password: str | None = None,
        authorized_key: paramiko.PKey | None = None,
        host_key: paramiko.PKey | None = None,
        port: int = 0,
        latency: float = 0.0,
        decide_after: float | None = None,
    ):
        if password is None and authorized_key is None:
            raise ValueError("an SFTP department needs a password or an authorised key")
        self.root = Path(os.path.realpath(root))  # real, so the jail compares real paths
        self.outbox_path = self.root / self.outbox_dir.lstrip("/")
        self.inbox_path = self.root / self.inbox_dir.lstrip("/")
        for folder in (self.outbox_path, self.inbox_path):
            folder.mkdir(parents=True, exist_ok=True)
        self.username, self.password, self.authorized_key = username, password, authorized_key
        self.host_key = host_key or new_host_key()
        self.latency, self.decide_after = latency, decide_after
        self.down = False
        self.received: Counter[str] = Counter()
        self.decided: dict[str, str] = {}  # part id -> status written
        self._arrived: dict[str, float] = {}  # part id -> monotonic time of its first marker
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._listener = socket.create_server((HOST, port))  # bound now, so `port` is known at once
        self._listener.settimeout(TICK_SECONDS)
        self._address: tuple[str, int] = self._listener.getsockname()[:2]  # still known after stop()
        self._accepter: threading.Thread | None = None
        self._transports: set[paramiko.Transport] = set()
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def host_key_fingerprint(self) -> str:
        """`SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it (paramiko's own form,
        which the connector compares with)."""
        return self.host_key.fingerprint

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}"

    def start(self) -> SftpDepartment:
        self._accepter = threading.Thread(target=self._accept_loop, name="sandbox-shebao", daemon=True)
        self._accepter.start()
        return self

    def stop(self) -> None:
        """Stop like a machine going away: no new connections, and open ones are cut."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() now on Linux
        if self._accepter is not None:
            self._accepter.join()
        self._listener.close()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def part(self, part_id: str) -> dict[str, Any]:
        """The part as the hub uploaded it."""
        return json.loads((self.outbox_path / f"{part_id}.json").read_text(encoding="utf-8"))

    def decide(self, part_id: str, status: str, reason: str | None = None) -> None:
        """What the department's own officer does in its own system."""
        with self._lock:
            if part_id not in self.received:
                raise KeyError(part_id)
            self._write_result(part_id, status, reason)

    # ------------------------------------------------------------------ internals

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:  # idle: the accept timeout doubles as the department's clock
                self._tick()
                continue
            except OSError:  # shut down by stop()
                break
            if self.down:
                sock.close()  # like a system under maintenance: connected, then dropped
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), name="sandbox-shebao-conn", daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _serve(self, sock: socket.socket) -> None:
        """One connection, in its own thread: handshake, then wait while paramiko's threads run
        the session (the SFTP subsystem gets a thread per channel)."""
        transport = paramiko.Transport(sock)
        with self._lock:
            if self._stopping.is_set():
                transport.close()
                return
            self._transports.add(transport)
        try:
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", _SftpServer, _Jail)
            transport.start_server(server=_Server(self))
            transport.join()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # a client that went away or failed the handshake: nothing to keep
        finally:
            transport.close()
            with self._lock:
                self._transports.discard(transport)

    def _written(self, local: Path) -> None:
        """A file was written or renamed into place; a part's marker beside its file is a receipt."""
        name = local.name
        if local.parent != self.outbox_path or name.startswith(".") or not name.endswith(".json.ok"):
            return
        part_id = name.removesuffix(".json.ok")
        if not (self.outbox_path / f"{part_id}.json").is_file():
            return  # a marker without its file is not a delivery
        with self._lock:
            self.received[part_id] += 1
            self._arrived.setdefault(part_id, time.monotonic())

    def _tick(self) -> None:
        if self.decide_after is None:
            return
        with self._lock:
            now = time.monotonic()
            for part_id, arrived in list(self._arrived.items()):
                if part_id not in self.decided and now - arrived >= self.decide_after:
                    self._write_result(part_id, "approved", None)

    def _write_result(self, part_id: str, status: str, reason: str | None) -> None:
        documents = []
        if status == "approved":
            pdf = f"{part_id}-result.pdf"
            _replace(self.inbox_path / pdf, RESULT_PDF + part_id.encode())
            documents.append({"name": "社保办理结果.pdf", "file": pdf, "media_type": "application/pdf"})
        body = {"status": status, "reason": reason, "documents": documents}
        _replace(self.inbox_path / f"{part_id}.result.json", json.dumps(body, ensure_ascii=False).encode())
        (self.inbox_path / f"{part_id}.result.json.ok").touch()  # last: the hub reads only marked results
        self.decided[part_id] = status


def _replace(path: Path, data: bytes) -> None:
    """Write beside, then rename: a reader never sees half a file (a decision may be rewritten)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class BankDrop(SftpDepartment):
    """A bank's core system's SFTP drop (政银合作): the bank writes intake batches into `/batches`
    (each `.ok` last); the hub takes them and leaves `errors/`, `done/` and `rejected/` there."""

    outbox_dir = "/from_county"  # not used by intake; a bank could collect issued documents here
    inbox_dir = "/batches"
