"""A fetched batch on local disk: unpacked if it came as an archive, then checked against its
manifest — every listed file present with its sha256, no file unlisted, the record count right.
Any mismatch quarantines the whole batch; `Staged.problems` says why, file by file."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from hub.errors import Reason
from hub.intake.format import Manifest, reason_for
from hub.intake.records import count_records

ARCHIVES = (".zip", ".tar.gz", ".tgz")


@dataclass
class Problem:
    file: str
    reason: Reason
    line: int | None = None
    field: str | None = None

    def as_json(self) -> dict:
        out: dict = {"file": self.file}
        if self.line is not None:
            out["line"] = self.line
        if self.field:
            out["field"] = self.field
        return out | {"reason_zh": self.reason.zh, "reason_en": self.reason.en}


@dataclass
class Staged:
    root: Path
    manifest: Manifest | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def records_path(self) -> Path:
        assert self.manifest is not None
        return self.root / self.manifest.records


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Limits:
    """What one batch may unpack to: an archive is refused before anything is written if its
    members add up to more (a zip bomb states its sizes honestly or fails its CRC on the way)."""

    record_bytes: int = 1 << 20
    batch_bytes: int = 8 << 30
    files: int = 200_000


def unpack(root: Path, limits: Limits = Limits()) -> Path:
    """If `root` holds one archive and nothing else, unpack it and return the folder with the
    manifest. Only regular files and folders are taken: links, devices and paths that would
    leave the folder are refused, as are archives over the limits."""
    entries = [p for p in root.iterdir()]
    if len(entries) != 1 or not entries[0].is_file() or not entries[0].name.endswith(ARCHIVES):
        return root
    archive, target = entries[0], root / "unpacked"
    target.mkdir()
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            members = z.infolist()
            _within(limits, len(members), sum(i.file_size for i in members))
            for info in members:
                mode = info.external_attr >> 16
                if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise ValueError(f"archive entry is not a regular file: {info.filename}")
                dest = (target / info.filename).resolve()
                if not dest.is_relative_to(target.resolve()):
                    raise ValueError(f"archive entry leaves the batch: {info.filename}")
            z.extractall(target)
    else:
        with tarfile.open(archive) as t:
            members = t.getmembers()
            _within(limits, len(members), sum(m.size for m in members))
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise ValueError(f"archive entry is not a regular file: {m.name}")
            t.extractall(target, filter="data")  # and paths outside target, absolute names, modes
    archive.unlink()
    inner = [p for p in target.iterdir()]
    # an archive of the batch folder itself, rather than of its contents
    return inner[0] if len(inner) == 1 and inner[0].is_dir() and not (target / "manifest.json").exists() else target


def _within(limits: Limits, files: int, size: int) -> None:
    if files > limits.files:
        raise ValueError(f"{files} entries, more than the {limits.files} allowed")
    if size > limits.batch_bytes:
        raise ValueError(f"{size} bytes unpacked, more than the {limits.batch_bytes} allowed")


def check(root: Path, limits: Limits = Limits()) -> Staged:
    staged = Staged(root)
    limit = limits.record_bytes
    try:
        staged.root = root = unpack(root, limits)
    except Exception as exc:  # corrupt, encrypted, truncated, unsupported, over the limits: all quarantine
        staged.problems.append(
            Problem("(archive)", Reason(f"无法解包: {type(exc).__name__}: {exc}", f"cannot unpack: {exc}"))
        )
        return staged
    path = root / "manifest.json"
    if not path.is_file():
        staged.problems.append(Problem("manifest.json", Reason("缺少清单文件", "manifest.json missing")))
        return staged
    try:
        staged.manifest = Manifest.model_validate(json.loads(path.read_bytes().decode("utf-8-sig")))
    except (ValueError, ValidationError) as exc:
        problems = exc.errors() if isinstance(exc, ValidationError) else None
        if problems:
            for p in problems:
                where = ".".join(str(x) for x in p["loc"])
                staged.problems.append(Problem("manifest.json", reason_for(p), field=where))
        else:
            staged.problems.append(Problem("manifest.json", Reason("不是有效的JSON", f"not valid JSON: {exc}")))
        return staged
    m = staged.manifest
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    for name in sorted(set(m.files) - present):
        staged.problems.append(Problem(name, Reason("清单所列文件缺失", "listed in the manifest but missing")))
    for name in sorted(present - set(m.files)):
        staged.problems.append(Problem(name, Reason("文件未列入清单", "file not listed in the manifest")))
    for name in sorted(set(m.files) & present):
        if sha256_of(root / name) != m.files[name]:
            staged.problems.append(Problem(name, Reason("SHA-256与清单不符", "sha256 does not match the manifest")))
    if m.records not in m.files:
        staged.problems.append(Problem(m.records, Reason("清单未列出记录文件", "records file not in the manifest")))
    if staged.problems:
        return staged
    count, header_problem = count_records(root / m.records, encoding=m.encoding, limit=limit)
    if header_problem:  # a CSV header nothing can be read by
        staged.problems.append(Problem(m.records, header_problem, line=1))
        return staged
    if count != m.record_count:
        staged.problems.append(
            Problem(
                m.records,
                Reason(
                    f"记录数{count}与清单的{m.record_count}不符", f"{count} records, the manifest says {m.record_count}"
                ),
                field="record_count",
            )
        )
    return staged


def clear(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
