"""SFTP download throughput through the hub's `sftp` connector (paramiko, prefetch, host key
pinned) versus OpenSSH's `sftp` client, from the same OpenSSH sshd on 127.0.0.1, alternating runs;
every copy's SHA-256 is checked.

    .venv/bin/python benchmarks/sftp_download.py [--mb 200] [--runs 3]
    .venv/bin/python benchmarks/sftp_download.py --small-files 2000 --file-kb 4 --mb 60 [--runs 3]

The first form times one large file: `download()` vs `get`. The second times an intake batch: a
folder of N small files of K KiB (material scans) beside one `--mb` MB records file, `fetch()` vs
`get -r`.

Needs openssh-server and openssh-client (as the tests do)."""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.connectors import Batch
from hub.plugins import PluginHost
from plugins.sftp.connector import SftpConnector
from tests.support.sshd import SshServer, running_sshd


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        while size > 0:
            f.write(os.urandom(min(size, 1 << 20)))
            size -= 1 << 20


def make_batch(folder: Path, files: int, file_kb: int, mb: int) -> Path:
    """An intake batch as a bank drops it: manifest, one large records file, many small scans."""
    batch = folder / "20261122-001"
    (batch / "materials").mkdir(parents=True)
    (batch / "manifest.json").write_text('{"outlet": "bank-xiahong"}\n', encoding="utf-8")
    write_random(batch / "records.jsonl", mb << 20)
    for i in range(files):
        (batch / "materials" / f"scan-{i:05d}.pdf").write_bytes(os.urandom(file_kb << 10))
    return batch


def connect(server: SshServer, data_dir: Path) -> SftpConnector:
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
    assert PluginHost.configured(None).connector_types["sftp"] is SftpConnector
    return SftpConnector("bench-sftp", spec)


def openssh(server: SshServer, known_hosts: Path, commands: str) -> None:
    subprocess.run(server.sftp_command(known_hosts), input=commands.encode(), check=True, capture_output=True)


def timed(action: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def one_large_file(args: argparse.Namespace, server: SshServer, folder: Path, data_dir: Path) -> None:
    source = data_dir / "big.bin"
    write_random(source, args.mb << 20)
    expected = sha256(source)
    connector = connect(server, data_dir)
    known_hosts = server.write_known_hosts(folder / "known_hosts")
    ours, theirs = [], []
    for run in range(args.runs):
        target = folder / f"ours-{run}.bin"
        ours.append(args.mb / timed(connector.download, str(source), target))
        assert sha256(target) == expected
        target.unlink()

        target = folder / f"openssh-{run}.bin"
        theirs.append(args.mb / timed(openssh, server, known_hosts, f"get {source} {target}\n"))
        assert sha256(target) == expected
        target.unlink()
    connector.close()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"file: {args.mb} MB, runs: {args.runs} (alternating)")
    print("sftp connector : " + ", ".join(f"{r:.0f}" for r in ours) + f" MB/s (median {statistics.median(ours):.0f})")
    print(
        "OpenSSH sftp   : " + ", ".join(f"{r:.0f}" for r in theirs) + f" MB/s (median {statistics.median(theirs):.0f})"
    )
    print(
        f"ratio connector/OpenSSH (medians) = {statistics.median(ours) / statistics.median(theirs):.2f} (goal >= 0.5)"
    )


def many_small_files(args: argparse.Namespace, server: SshServer, folder: Path, data_dir: Path) -> None:
    source = make_batch(data_dir, args.small_files, args.file_kb, args.mb)
    expected = tree_hashes(source)
    connector = connect(server, data_dir)
    batch = Batch(id=source.name, name=source.name)
    known_hosts = server.write_known_hosts(folder / "known_hosts")
    ours, theirs = [], []
    for run in range(args.runs):
        target = folder / f"ours-{run}"
        ours.append(timed(connector.fetch, batch, target))
        assert tree_hashes(target) == expected
        shutil.rmtree(target)

        target = folder / f"openssh-{run}"
        theirs.append(timed(openssh, server, known_hosts, f"get -r {source} {target}\n"))
        assert tree_hashes(target) == expected
        shutil.rmtree(target)
    connector.close()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"batch: {args.small_files} files of {args.file_kb} KiB + one {args.mb} MB file + manifest, "
        f"runs: {args.runs} (alternating)"
    )
    print(
        "sftp connector fetch : " + ", ".join(f"{s:.2f}" for s in ours) + f" s (median {statistics.median(ours):.2f})"
    )
    print(
        "OpenSSH sftp get -r  : "
        + ", ".join(f"{s:.2f}" for s in theirs)
        + f" s (median {statistics.median(theirs):.2f})"
    )
    print(f"ratio connector/OpenSSH time (medians) = {statistics.median(ours) / statistics.median(theirs):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200, help="size of the (one) large file")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--small-files", type=int, default=0, help="fetch a batch folder with this many small files")
    ap.add_argument("--file-kb", type=int, default=4, help="size of each small file (KiB)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with running_sshd(folder / "sshd") as server:
            data_dir = folder / "remote"
            data_dir.mkdir()
            if args.small_files:
                many_small_files(args, server, folder, data_dir)
            else:
                one_large_file(args, server, folder, data_dir)


if __name__ == "__main__":
    main()
