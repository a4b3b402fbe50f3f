"""The file half of backup and restore (hub/backup_files.py) and `hub backup verify`: the
manifest is what `sha256sum` writes, byte for byte (odd names escaped as it escapes them, in
`LC_ALL=C sort` order); copies keep times, lose group and other permissions, skip what they
are told to and report files that changed while being read."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from hub import backup
from hub.backup_files import MANIFEST, copy_entry, copy_tree, write_manifest
from tests.conftest import PDF

ODD = ["files/a\\b\nc.pdf", "files/Z.pdf", "files/a.pdf", "files/中文.pdf", "files/sub dir/x y.txt", "backup.json"]


def _folder(root: Path) -> Path:
    for i, name in enumerate(ODD):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PDF + bytes([i]))
    return root


def test_the_manifest_is_what_sha256sum_writes(tmp_path: Path):
    folder = _folder(tmp_path / "b")
    assert write_manifest(folder) == len(ODD)
    ours = (folder / MANIFEST).read_bytes()
    theirs = subprocess.run(
        "find . -type f ! -path ./MANIFEST.sha256 -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum --",
        shell=True, cwd=folder, capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert ours == theirs
    assert subprocess.run(["sha256sum", "--quiet", "-c", MANIFEST], cwd=folder).returncode == 0
    assert backup.check_manifest(folder) == len(ODD)
    assert backup.read_manifest(folder)["files/a\\b\nc.pdf"] == hashlib.sha256(PDF + bytes([0])).hexdigest()


def test_copies_keep_times_lose_others_permissions_and_skip_what_they_are_told(tmp_path: Path):
    src = tmp_path / "src"
    (src / "ab" / "cd").mkdir(parents=True)
    kept = src / "ab" / "cd" / "abcd1234"
    kept.write_bytes(PDF)
    kept.chmod(0o644)
    os.utime(kept, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
    (src / ".incoming-1234").write_bytes(b"half an upload")
    (src / "link").symlink_to(kept)
    old = os.umask(0o077)
    try:
        changed = copy_tree(src, tmp_path / "dest", skip=lambda name: name.startswith(".incoming-"))
    finally:
        os.umask(old)
    copied = tmp_path / "dest" / "ab" / "cd" / "abcd1234"
    assert changed == [] and copied.read_bytes() == PDF
    assert copied.stat().st_mode & 0o777 == 0o600 and copied.stat().st_mtime_ns == kept.stat().st_mtime_ns
    assert sorted(p.name for p in (tmp_path / "dest").rglob("*") if p.is_file()) == ["abcd1234"]  # no upload, no link
    assert copy_tree(tmp_path / "missing", tmp_path / "empty") == [] and (tmp_path / "empty").is_dir()


def test_config_entries_are_copied_without_bytecode(tmp_path: Path):
    home = tmp_path / "home"
    (home / "connectors" / "__pycache__").mkdir(parents=True)
    (home / "connectors" / "yibao.py").write_text("x = 1\n")
    (home / "connectors" / "__pycache__" / "yibao.cpython-311.pyc").write_bytes(b"\x00")
    (home / "hub.yaml").write_text("county: {}\n")
    for entry in ("connectors", "hub.yaml"):
        copy_entry(home, entry, tmp_path / "config")
    got = sorted(p.relative_to(tmp_path / "config").as_posix() for p in (tmp_path / "config").rglob("*") if p.is_file())
    assert got == ["connectors/yibao.py", "hub.yaml"]


def test_hub_backup_verify_names_a_changed_file(tmp_path: Path):
    folder = _folder(tmp_path / "b")
    write_manifest(folder)
    cmd = [sys.executable, "-m", "hub", "backup", "verify", str(folder)]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and f"{MANIFEST}: {len(ODD)} file(s) match" in ok.stdout, ok.stderr
    (folder / "files" / "a.pdf").write_bytes(b"changed")
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1 and "files/a.pdf: sha256 does not match MANIFEST.sha256" in bad.stderr, bad.stderr
