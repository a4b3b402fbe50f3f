"""SFTP download throughput: MB/s fetching one large file through the hub's `sftp` connector
(paramiko, prefetch, host key pinned) versus OpenSSH's `sftp` client, from the same OpenSSH sshd
on 127.0.0.1, alternating runs.

    .venv/bin/python benchmarks/sftp_download.py [--mb 200] [--runs 3]

Needs openssh-server and openssh-client (as the tests do)."""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.connectors import connector_types
from hub.plugins import manager
from plugins.sftp import SftpConnector
from tests.sshd import running_sshd


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with running_sshd(folder / "sshd") as server:
            data_dir = folder / "remote"
            data_dir.mkdir()
            source = data_dir / "big.bin"
            with open(source, "wb") as f:
                for _ in range(args.mb):
                    f.write(os.urandom(1 << 20))
            expected = sha256(source)
            os.environ["BENCH_SFTP_KEY"] = server.client_key.read_text()
            spec = SftpConnector.Spec.model_validate(
                {
                    "host": server.host,
                    "port": server.port,
                    "username": server.user,
                    "auth": {"private_key": "${BENCH_SFTP_KEY}"},
                    "host_key_fingerprint": server.host_fingerprint,
                    "outbox_dir": str(data_dir),
                    "inbox_dir": str(data_dir),
                }
            )
            assert connector_types(manager())["sftp"] is SftpConnector
            connector = SftpConnector("bench-sftp", spec)
            known_hosts = server.write_known_hosts(folder / "known_hosts")
            ours, openssh = [], []
            for run in range(args.runs):
                target = folder / f"ours-{run}.bin"
                start = time.perf_counter()
                connector.download(str(source), target)
                ours.append(args.mb / (time.perf_counter() - start))
                assert sha256(target) == expected
                target.unlink()

                target = folder / f"openssh-{run}.bin"
                batch = folder / "batch"
                batch.write_text(f"get {source} {target}\n")
                start = time.perf_counter()
                subprocess.run(
                    server.sftp_command(known_hosts, str(batch)),
                    check=True,
                    capture_output=True,
                )
                openssh.append(args.mb / (time.perf_counter() - start))
                assert sha256(target) == expected
                target.unlink()
            connector.close()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"file: {args.mb} MB, runs: {args.runs} (alternating)")
    print("sftp connector : " + ", ".join(f"{r:.0f}" for r in ours) + f" MB/s (median {statistics.median(ours):.0f})")
    print(
        "OpenSSH sftp   : "
        + ", ".join(f"{r:.0f}" for r in openssh)
        + f" MB/s (median {statistics.median(openssh):.0f})"
    )
    print(
        f"ratio connector/OpenSSH (medians) = {statistics.median(ours) / statistics.median(openssh):.2f} (goal >= 0.5)"
    )


if __name__ == "__main__":
    main()
