"""Unpacking an intake archive: entries as Python's `zipfile.writestr` and Windows tools write
them are regular files; links, devices, absolute names and `..` are refused; and a compression
bomb is stopped by the WORK it causes — declared sizes before anything is read, decompressed
bytes as they are read, the expansion ratio — with the decompression itself measured here."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from hub.batches import staging
from hub.batches.writer import write_batch

BATCH = "XH-20261204-01"


def _batch(tmp_path: Path) -> dict[str, bytes]:
    """A valid batch's files by name (staging checks the manifest, hashes and record count)."""
    folder = write_batch(
        tmp_path / "src",
        batch_id=BATCH,
        desk="bank-xiahong",
        records=[{"record_id": "XH-0000001"}],
        files={"materials/1-id.pdf": b"%PDF-1.4\n%%EOF\n"},
    )
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _drop(tmp_path: Path, name: str, data: bytes) -> Path:
    root = tmp_path / "staging"
    root.mkdir(parents=True)
    (root / name).write_bytes(data)
    return root


class Decompressed:
    """Counts every byte any zlib decompressor hands out (zipfile, gzip and tarfile all make
    theirs with zlib.decompressobj): the work done, independent of the code's own counter."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.bytes = 0
        real = zlib.decompressobj
        meter = self

        class Counting:
            def __init__(self, *args, **kwargs):
                self._d = real(*args, **kwargs)

            def decompress(self, data, max_length=0):
                out = self._d.decompress(data, max_length)
                meter.bytes += len(out)
                return out

            def flush(self, *args):
                out = self._d.flush(*args)
                meter.bytes += len(out)
                return out

            def __getattr__(self, name):
                return getattr(self._d, name)

        monkeypatch.setattr(zlib, "decompressobj", Counting)


def _reason(staged: staging.Staged) -> str:
    (problem,) = staged.problems
    assert problem.file == "(archive)" and problem.reason.zh.startswith("无法解包"), problem
    return problem.reason.en


@pytest.mark.parametrize("folder_prefix", ["", f"{BATCH}/"])
def test_a_batch_zipped_with_writestr_is_accepted(tmp_path, folder_prefix):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if folder_prefix:
            z.writestr(folder_prefix, b"")  # a folder entry, as writestr records one
        for name, data in _batch(tmp_path).items():
            z.writestr(folder_prefix + name, data)  # external_attr: permission bits, no file type
    for info in zipfile.ZipFile(io.BytesIO(buf.getvalue())).infolist():
        assert not stat.S_IFMT(info.external_attr >> 16) or info.is_dir()
    staged = staging.check(_drop(tmp_path, f"{BATCH}.zip", buf.getvalue()))
    assert staged.problems == [] and staged.manifest is not None and staged.manifest.batch_id == BATCH
    assert (staged.root / "materials" / "1-id.pdf").read_bytes() == b"%PDF-1.4\n%%EOF\n"


def test_a_windows_zip_without_any_unix_attributes_is_accepted(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in _batch(tmp_path).items():
            info = zipfile.ZipInfo(name)
            info.create_system, info.external_attr = 0, 0x20  # MS-DOS "archive" attribute only
            z.writestr(info, data)
    assert staging.check(_drop(tmp_path, f"{BATCH}.zip", buf.getvalue())).problems == []


def _entry(name: str, mode: int, data: bytes = b"x") -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("info", "needle"),
    [
        (_entry("materials/passwd", stat.S_IFLNK | 0o777), "not a regular file"),
        (_entry("materials/tty", stat.S_IFCHR | 0o600), "not a regular file"),
        (_entry("materials/fifo", stat.S_IFIFO | 0o600), "not a regular file"),
        (_entry("materials/dir", stat.S_IFDIR | 0o755), "folder and a file"),  # a folder named as a file
        (_entry("materials/file/", stat.S_IFREG | 0o644), "folder and a file"),
        (_entry("/etc/cron.d/x", stat.S_IFREG | 0o644), "leaves the batch"),
        (_entry("../../escaped.txt", 0o600), "leaves the batch"),
        (_entry("materials/../../escaped.txt", 0o600), "leaves the batch"),
        (_entry("materials/../manifest.json", 0o600), "leaves the batch"),  # `..` at all, even inside
        (_entry("..\\escaped.txt", 0o600), "leaves the batch"),
        (_entry("C:/escaped.txt", 0o600), "leaves the batch"),
    ],
)
def test_hostile_zip_entries_are_refused(tmp_path, info, needle):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in _batch(tmp_path).items():
            z.writestr(name, data)
        z.writestr(info, b"" if info.filename.endswith("/") else b"x")
    staged = staging.check(_drop(tmp_path, f"{BATCH}.zip", buf.getvalue()))
    assert needle in _reason(staged)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def _tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, size: int) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = size
    return info, bytes(size)


MiB = 1 << 20


def test_a_tar_declaring_more_than_the_limit_is_refused_before_its_data_is_read(tmp_path, monkeypatch):
    # one header claiming 9 GiB, then only a little of it: the declared size alone refuses it
    head = tarfile.TarInfo(f"{BATCH}/records.jsonl")
    head.size = 9 << 30
    archive = gzip.compress(head.tobuf(tarfile.PAX_FORMAT) + bytes(4 * MiB))
    decompressed = Decompressed(monkeypatch)
    staged = staging.check(_drop(tmp_path, f"{BATCH}.tar.gz", archive))
    assert f"declares {9 << 30} bytes unpacked" in _reason(staged)
    assert staged.unpacked_bytes <= 2 * MiB and decompressed.bytes <= 2 * MiB


def test_a_tar_bomb_is_stopped_by_its_expansion_ratio(tmp_path, monkeypatch):
    # 48 MiB of zeros in 1 MiB files compress to ~50 KiB: the 100x ratio stops it after ~5 MiB
    archive = _tgz([_file(f"{BATCH}/materials/{i}.pdf", MiB) for i in range(48)])
    assert len(archive) < 200_000
    limits = staging.Limits(ratio_floor=MiB)
    budget = limits.budget(len(archive))
    assert budget < 48 * MiB
    decompressed = Decompressed(monkeypatch)
    staged = staging.check(_drop(tmp_path, f"{BATCH}.tar.gz", archive), limits)
    assert "compression bomb" in _reason(staged) and f"{limits.ratio} times" in _reason(staged)
    assert staged.unpacked_bytes <= budget + 2 * MiB
    assert decompressed.bytes <= budget + 3 * MiB  # the reader's one chunk of read-ahead and gzip's own


def test_a_tar_over_the_batch_limit_stops_at_the_member_that_passes_it(tmp_path, monkeypatch):
    archive = _tgz([_file(f"{BATCH}/materials/{i}.pdf", MiB) for i in range(16)])
    limits = staging.Limits(batch_bytes=3 * MiB, ratio=10**6)
    decompressed = Decompressed(monkeypatch)
    staged = staging.check(_drop(tmp_path, f"{BATCH}.tar.gz", archive), limits)
    assert f"more than the {3 * MiB} allowed" in _reason(staged)
    assert decompressed.bytes <= 5 * MiB


def test_a_tar_with_too_many_entries_or_a_huge_header_is_refused(tmp_path, monkeypatch):
    many = _tgz([_file(f"{BATCH}/materials/{i}.pdf", 1) for i in range(10)])
    staged = staging.check(_drop(tmp_path / "a", f"{BATCH}.tar.gz", many), staging.Limits(files=4))
    assert "5 entries, more than the 4 allowed" in _reason(staged)
    info, data = _file(f"{BATCH}/manifest.json", 1)
    info.pax_headers = {"comment": "x" * (2 * MiB)}  # tarfile would read it into memory whole
    staged = staging.check(_drop(tmp_path / "b", f"{BATCH}.tar.gz", _tgz([(info, data)])))
    assert "archive header of" in _reason(staged)


def test_a_zip_bomb_is_refused_from_its_central_directory_before_any_decompression(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(8):
            z.writestr(f"materials/{i}.pdf", bytes(4 * MiB))
    decompressed = Decompressed(monkeypatch)
    staged = staging.check(_drop(tmp_path, f"{BATCH}.zip", buf.getvalue()), staging.Limits(ratio_floor=MiB))
    assert f"declares {32 * MiB} bytes unpacked" in _reason(staged) and "compression bomb" in _reason(staged)
    assert decompressed.bytes == 0 and staged.unpacked_bytes == 0


def test_a_good_tar_gz_batch_is_unpacked_in_one_pass(tmp_path):
    folder = tarfile.TarInfo(BATCH)
    folder.type = tarfile.DIRTYPE
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [(folder, None)]
    for name, data in _batch(tmp_path).items():
        info = tarfile.TarInfo(f"{BATCH}/{name}")
        info.size = len(data)
        members.append((info, data))
    archive = _tgz(members)
    staged = staging.check(_drop(tmp_path, f"{BATCH}.tar.gz", archive))
    assert staged.problems == [] and staged.root.name == BATCH
    assert 0 < staged.unpacked_bytes < 64 * 1024
