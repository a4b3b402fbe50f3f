"""A real OpenSSH sshd on 127.0.0.1: the sftp connector's tests and benchmarks talk to it (no fake
SFTP server: the department's side is OpenSSH), and scripts/prodlike.py serves its SFTP drop with
it. One set-up for both: `openssh`, `keygen`, `write_config` and `command` below.

`running_sshd(folder)` (tests, benchmarks) generates a host key and client keys with ssh-keygen,
writes an sshd_config serving SFTP on two loopback ports and starts `/usr/sbin/sshd -D -e` until the
block ends. Both ports run OpenSSH's own sftp-server (the program behind `internal-sftp`) rather
than `internal-sftp`, for two reasons:

- on the main port it logs every open, close and rename (`-l INFO`) to `sftp.log` — internal-sftp
  would log to syslog — so a test can see the order in which the server saw the operations;
- the second port is read-only (`-R`): every write is refused with SSH2_FX_PERMISSION_DENIED.
  That is how the tests get a real "permission denied" while running as root, for whom a
  chmod 0500 directory is still writable.

Nothing here imports pytest at import time: scripts/prodlike.py uses this module outside a test
run (it starts sshd as one of its long-running components, from `write_config` and `command`)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
# where distributions put OpenSSH's sftp-server (Debian/Ubuntu, then Fedora/RHEL/Alpine)
SFTP_SERVERS = (
    Path("/usr/lib/openssh/sftp-server"),
    Path("/usr/libexec/openssh/sftp-server"),
    Path("/usr/lib/ssh/sftp-server"),
)
HOST = "127.0.0.1"
HOST_KEY = "host_ed25519"  # the server's host key, in its folder beside `authorized_keys`
STARTUP_SECONDS = 60  # a guard: start-up ends when both ports answer (or sshd exits)
MISSING = "OpenSSH server not installed (apt-get install -y openssh-server)"


class OpenSSHMissing(RuntimeError):
    """sshd, sftp-server or ssh-keygen is not installed."""


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    readonly_port: int  # the same server, but every write is refused with "permission denied"
    user: str
    client_key: Path  # authorised on the server
    encrypted_client_key: Path  # authorised too, protected by `passphrase`
    passphrase: str
    stranger_key: Path  # a well-formed key the server does not know
    host_public_key: str  # "ssh-ed25519 AAAA…", the server's real host key
    host_fingerprint: str  # "SHA256:…", as `ssh-keygen -lf` prints it
    impostor_public_key: str  # a host key that is not the server's
    impostor_fingerprint: str
    log: Path  # sftp-server's operation log (main port)
    sshd_log: Path

    def write_known_hosts(self, path: Path, public_key: str | None = None, port: int | None = None) -> Path:
        """A known_hosts file naming this server (or `port`) with its key (or `public_key`)."""
        path.write_text(f"[{self.host}]:{port or self.port} {public_key or self.host_public_key}\n", encoding="utf-8")
        return path

    def sftp_command(self, known_hosts: Path, batch: str = "-") -> list[str]:
        """OpenSSH's own `sftp` client in batch mode against this server, host key pinned (for
        benchmarks' baselines). `batch` is a batch file, or `-` for commands on stdin."""
        return [
            "sftp", "-q", "-b", batch, "-P", str(self.port), "-i", str(self.client_key),
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            f"{self.user}@{self.host}",
        ]  # fmt: skip

    def log_offset(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> list[str]:
        return self.log.read_bytes()[offset:].decode("utf-8", "replace").splitlines()

    def wait_for_log(self, offset: int, needle: str, timeout: float = 60) -> list[str]:
        """Log lines written after `offset`, once one contains `needle`. The session's log lines
        reach the file through sshd's monitor process, a moment after the client got its answer
        (on a busy machine, several moments: `timeout` is only a guard)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_since(offset)
            if any(needle in line for line in lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


def openssh() -> Path:
    """OpenSSH's sftp-server on this machine, once sshd and ssh-keygen are found too; raises
    OpenSSHMissing if any of them is not installed."""
    sftp_server = next((p for p in SFTP_SERVERS if p.exists()), None)
    if not SSHD.exists() or sftp_server is None or shutil.which("ssh-keygen") is None:
        raise OpenSSHMissing(MISSING)
    return sftp_server


def login_user() -> str:
    """The account this process runs as, which the clients log in as (from the password database:
    $USER may name someone else under sudo or in a container)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def keygen(path: Path, passphrase: str = "") -> tuple[str, str]:
    """A new ed25519 key pair at `path`; returns (public key line, SHA256 fingerprint)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    public = path.with_name(path.name + ".pub").read_text(encoding="utf-8").split()
    listed = subprocess.run(["ssh-keygen", "-lf", str(path) + ".pub"], check=True, capture_output=True, text=True)
    return f"{public[0]} {public[1]}", listed.stdout.split()[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def write_config(folder: Path, ports: Sequence[int], user: str, extra: Sequence[str]) -> Path:
    """`folder/sshd_config`: sshd on HOST at `ports`, public-key logins only, for `user` only, with
    the keys in `folder/authorized_keys` and the host key `folder/host_ed25519`, no forwarding;
    `extra` lines last (the sftp Subsystem, Match blocks). Makes sshd's privilege-separation
    directory when run as root."""
    lines = [
        *(f"ListenAddress {HOST}:{port}" for port in ports),
        f"HostKey {folder / HOST_KEY}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"AllowUsers {user}",
        "StrictModes no",  # the key files live in a temp dir with ordinary modes
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",  # the suite runs as root in CI containers: keys only
        "DisableForwarding yes",
        "LogLevel INFO",
        *extra,
    ]
    path = folder / "sshd_config"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    return path


def command(config: Path) -> list[str]:
    """sshd with `config`, in the foreground and logging to stderr (`-D -e`)."""
    return [str(SSHD), "-D", "-e", "-f", str(config)]


def _wait_until_listening(proc: subprocess.Popen, ports: tuple[int, ...], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd did not listen within {STARTUP_SECONDS}s:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection((HOST, pending[0]), timeout=0.5).close()
            pending.pop(0)
        except OSError:
            time.sleep(0.05)


@contextmanager
def running_sshd(folder: Path) -> Iterator[SshServer]:
    """Start a throwaway sshd serving SFTP on loopback; skip (a failure under CI=true) if OpenSSH's
    server is not installed."""
    try:
        sftp_server = openssh()
    except OpenSSHMissing as missing:
        import pytest

        pytest.skip(str(missing))
    folder.mkdir(parents=True, exist_ok=True)
    host_public, host_fp = keygen(folder / HOST_KEY)
    impostor_public, impostor_fp = keygen(folder / "impostor_ed25519")
    client_public, _ = keygen(folder / "client_ed25519")
    passphrase = "correct horse battery 马"
    encrypted_public, _ = keygen(folder / "client_encrypted_ed25519", passphrase)
    keygen(folder / "stranger_ed25519")
    (folder / "authorized_keys").write_text(f"{client_public}\n{encrypted_public}\n", encoding="utf-8")
    user = login_user()
    port, readonly_port = free_port(), free_port()
    extra = [
        # sshd runs a subsystem through the user's shell, so stderr can go to our own log file
        f"Subsystem sftp {sftp_server} -e -l INFO 2>>{folder / 'sftp.log'}",
        f"Match LocalPort {readonly_port}",
        f"    ForceCommand {sftp_server} -R",
    ]
    config = write_config(folder, (port, readonly_port), user, extra)
    (folder / "sftp.log").touch()
    log = folder / "sshd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(command(config), stdout=log_file, stderr=log_file)
    try:
        _wait_until_listening(proc, (port, readonly_port), log)
        yield SshServer(
            host=HOST,
            port=port,
            readonly_port=readonly_port,
            user=user,
            client_key=folder / "client_ed25519",
            encrypted_client_key=folder / "client_encrypted_ed25519",
            passphrase=passphrase,
            stranger_key=folder / "stranger_ed25519",
            host_public_key=host_public,
            host_fingerprint=host_fp,
            impostor_public_key=impostor_public,
            impostor_fingerprint=impostor_fp,
            log=folder / "sftp.log",
            sshd_log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
