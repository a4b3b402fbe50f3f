"""A fetched batch on local disk: unpacked if it came as an archive, then checked against its
manifest — every listed file present with its sha256, no file unlisted, the record count right.
Any mismatch quarantines the whole batch; `Staged.problems` says why, file by file."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from hub.batches.format import Manifest, reason_for
from hub.batches.records import count_records
from hub.errors import Reason

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
    unpacked_bytes: int = 0  # decompressed out of its archive (0 for a folder)

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
    """What one batch may unpack to. The WORK is bounded, not only what is written: an archive is
    refused as soon as its entries, their declared sizes or the bytes actually decompressed pass
    a limit, and before anything is read when the sizes an archive declares up front (a zip's
    central directory) already do. `ratio` caps how far an archive may expand (unpacked bytes per
    archive byte) once past `ratio_floor` — a bomb of zeros is stopped after `ratio` times its
    own size, not at `batch_bytes`."""

    record_bytes: int = 1 << 20
    batch_bytes: int = 8 << 30
    files: int = 200_000
    ratio: int = 100
    ratio_floor: int = 128 << 20
    header_bytes: int = 1 << 20  # a tar's long-name and pax headers, read into memory by tarfile

    def budget(self, archive_bytes: int) -> int:
        """Bytes an archive of `archive_bytes` may unpack to."""
        return min(self.batch_bytes, max(self.ratio_floor, self.ratio * archive_bytes))


class Unpacking(ValueError):
    """An archive refused while it was being unpacked (the message says why)."""


@dataclass
class Meter:
    """The bytes decompressed out of one archive, counted where they are read, against the
    archive's budget: the reading stops (Unpacking) at the first chunk over it."""

    limits: Limits
    archive_bytes: int = 0
    budget: int = 0
    read: int = 0

    def start(self, archive_bytes: int) -> None:
        self.archive_bytes, self.budget = archive_bytes, self.limits.budget(archive_bytes)

    def add(self, n: int) -> None:
        self.read += n
        if self.read > self.budget:
            raise Unpacking(self.over(f"unpacks to more than {self.read} bytes"))

    def over(self, what: str) -> str:
        if self.budget < self.limits.batch_bytes:  # the ratio, not the batch limit, is what bites
            return (
                f"{what}, more than {self.limits.ratio} times the archive's {self.archive_bytes} bytes "
                f"({self.budget} allowed): a compression bomb"
            )
        return f"{what}, more than the {self.limits.batch_bytes} allowed"


class _MeteredReader(io.RawIOBase):
    """A decompressed stream that counts every byte read from it into a Meter (tar's headers
    and padding included), so no reader above it can make the decompressor run on unbounded."""

    def __init__(self, stream: IO[bytes], meter: Meter):
        self._stream, self._meter = stream, meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), _CHUNK))
        self._meter.add(len(data))
        buffer[: len(data)] = data
        return len(data)


class _TarInfo(tarfile.TarInfo):
    """tarfile reads a long name or a pax header into memory whole before it hands over the
    member: refuse one larger than any sane name or attribute set first."""

    header_bytes = Limits.header_bytes  # set per archive by a subclass (tarfile makes the instances)

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _HEADER_TYPES and self.size > self.header_bytes:
            raise Unpacking(f"archive header of {self.size} bytes for {self.name!r}")
        return super()._proc_member(tarfile_)


_CHUNK = 1 << 20
_HEADER_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)


def unpack(root: Path, limits: Limits = Limits(), meter: Meter | None = None) -> Path:
    """If `root` holds one archive and nothing else, unpack it and return the folder with the
    manifest. Only regular files and folders are taken: links, devices, absolute names and names
    with `..` are refused, as are archives over the limits (entries, declared and decompressed
    sizes, expansion ratio), at the first entry or chunk that passes one. A zip entry with no
    Unix file type (as Python's `zipfile.writestr` and Windows tools write them) is a regular file,
    or a folder when its name ends in `/`. `meter` (made here when not given) counts the bytes
    decompressed."""
    entries = [p for p in root.iterdir()]
    if len(entries) != 1 or not entries[0].is_file() or not entries[0].name.endswith(ARCHIVES):
        return root
    archive, target = entries[0], root / "unpacked"
    meter = meter or Meter(limits)
    meter.start(archive.stat().st_size)
    target.mkdir()
    if archive.name.endswith(".zip"):
        _unzip(archive, target, limits, meter)
    else:
        _untar(archive, target, limits, meter)
    archive.unlink()
    inner = [p for p in target.iterdir()]
    # an archive of the batch folder itself, rather than of its contents
    return inner[0] if len(inner) == 1 and inner[0].is_dir() and not (target / "manifest.json").exists() else target


def _destination(target: Path, name: str) -> Path:
    """Where an entry goes; refuses names that are absolute or climb (`..`), in either slash."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise Unpacking(f"archive entry leaves the batch: {name}")
    dest = target.joinpath(*[p for p in parts if p not in ("", ".")])
    if not dest.resolve().is_relative_to(target.resolve()):  # through a folder entry made a link
        raise Unpacking(f"archive entry leaves the batch: {name}")
    return dest


def _copy(source: IO[bytes], dest: Path, declared: int, meter: Meter) -> None:
    """Write one entry, a chunk at a time; an entry that yields more than it declared is refused
    (the reading stops there)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dest, "xb") as out:  # "x": an entry named twice is refused, not overwritten
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > declared:
                raise Unpacking(f"archive entry larger than it declares: {dest.name}")
            out.write(chunk)


def _unzip(archive: Path, target: Path, limits: Limits, meter: Meter) -> None:
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        _within(limits, meter, len(members), sum(i.file_size for i in members))
        plan = []
        for info in members:  # every entry is checked before any is written
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):  # a link, device, pipe or socket
                raise Unpacking(f"archive entry is not a regular file: {info.filename}")
            if kind and (kind == stat.S_IFDIR) != info.is_dir():  # a folder named as a file, or back
                raise Unpacking(f"archive entry is a folder and a file at once: {info.filename}")
            if info.is_dir() and info.file_size:
                raise Unpacking(f"archive folder entry with content: {info.filename}")
            plan.append((info, _destination(target, info.filename)))
        for info, dest in plan:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            with z.open(info) as src:  # zipfile checks the CRC at the end of each entry
                _copy(_MeteredReader(src, meter), dest, info.file_size, meter)  # type: ignore[arg-type]


def _untar(archive: Path, target: Path, limits: Limits, meter: Meter) -> None:
    """A tar has no index: its members are read as a stream, once, each checked from its header
    before its data is read (tarfile's random access would decompress the whole archive to list
    it, then again to extract it)."""
    files = declared = 0
    tarinfo = type("_LimitedTarInfo", (_TarInfo,), {"header_bytes": limits.header_bytes})
    with (
        gzip.open(archive, "rb") as raw,
        io.BufferedReader(_MeteredReader(raw, meter), _CHUNK) as stream,  # type: ignore[arg-type]
        tarfile.open(fileobj=stream, mode="r|", tarinfo=tarinfo) as t,
    ):
        for m in t:
            files += 1
            declared += m.size
            _within(limits, meter, files, declared)
            if not (m.isfile() or m.isdir()) or m.issparse():  # a sparse file expands beyond its data
                raise Unpacking(f"archive entry is not a regular file: {m.name}")
            dest = _destination(target, m.name)
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            src = t.extractfile(m)
            assert src is not None  # a regular file always has a reader
            _copy(src, dest, m.size, meter)


def _within(limits: Limits, meter: Meter, files: int, size: int) -> None:
    if files > limits.files:
        raise Unpacking(f"{files} entries, more than the {limits.files} allowed")
    if size > meter.budget:
        raise Unpacking(meter.over(f"declares {size} bytes unpacked"))


def check(root: Path, limits: Limits = Limits()) -> Staged:
    staged = Staged(root)
    limit = limits.record_bytes
    meter = Meter(limits)
    try:
        staged.root = root = unpack(root, limits, meter)
    except Exception as exc:  # corrupt, encrypted, truncated, unsupported, over the limits: all quarantine
        staged.unpacked_bytes = meter.read
        staged.problems.append(
            Problem("(archive)", Reason(f"无法解包: {type(exc).__name__}: {exc}", f"cannot unpack: {exc}"))
        )
        return staged
    staged.unpacked_bytes = meter.read
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
