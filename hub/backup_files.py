"""The file half of backup and restore: copying the hub home's trees into a backup folder and
back, and MANIFEST.sha256 over every file of a backup (what `check_manifest` in `hub.backup`
reads, and `sha256sum -c` checks by hand). The database half is `hub.backup`."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from hub.batches.staging import sha256_of

MANIFEST = "MANIFEST.sha256"


def copy_tree(src: Path, dest: Path, *, skip: Callable[[str], bool] = lambda name: False) -> list[str]:
    """Copy every regular file under `src` (symlinks not followed) into `dest`, keeping
    modification times, and each file's mode less what the umask takes away (backups are
    readable by their owner only). Files whose name `skip` accepts are left out, as are files
    gone since the walk listed them (an upload moved into place, a sweep). Returns the files
    that changed while being copied: a segment an open session is still writing is not sealed
    evidence yet, so that is a warning, not a failure."""
    dest.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return []
    mask = _umask()
    changed = []
    for folder, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if skip(name):
                continue
            try:
                before = path.lstat()
                if not stat.S_ISREG(before.st_mode):
                    continue
                target = dest / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                after = path.stat()
            except FileNotFoundError:
                continue
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                changed.append(path.relative_to(src).as_posix())
            os.chmod(target, stat.S_IMODE(before.st_mode) & ~mask)
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    return changed


def copy_entry(home: Path, entry: str, dest: Path) -> None:
    """One configuration entry of the hub home (a file or a folder, __pycache__ left out) into
    `dest`, symlinks as symlinks."""
    src = home / entry
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(
            src, dest / entry, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    else:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / entry, follow_symlinks=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256sum_line(sha: str, name: str) -> str:
    """A line as GNU sha256sum writes it: a name holding a backslash or a line break is escaped,
    and the line then starts with a backslash."""
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{sha}  {escaped}\n"
    return f"{sha}  {name}\n"


def write_manifest(folder: Path) -> int:
    """MANIFEST.sha256 over every file of `folder` but itself, in byte order of the names (as
    `LC_ALL=C sort`). Returns the number of files listed."""
    names = sorted(
        (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()),
        key=os.fsencode,
    )
    names = [n for n in names if n != MANIFEST]
    with open(folder / MANIFEST, "w", encoding="utf-8", newline="") as out:
        for name in names:
            out.write(_sha256sum_line(sha256_of(folder / name), name))
    return len(names)
