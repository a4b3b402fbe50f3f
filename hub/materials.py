"""Content-addressed material store: files are kept once under materials/ab/cd/<sha256>, their
type sniffed from the bytes (never trusted from the file name)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hub.errors import HubError, Reason

_CHUNK = 1024 * 1024


def sniff(source: Path | bytes, head: bytes | None = None) -> str:
    """Media type from magic bytes. OFD (China's fixed-layout format) is a zip holding OFD.xml.
    `head`: the file's first bytes, if the caller has them already."""
    if head is None and isinstance(source, bytes):
        head = source[:16]
    elif head is None:
        with open(source, "rb") as f:
            head = f.read(16)
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
                return "application/ofd" if "OFD.xml" in zf.namelist() else "application/zip"
        except zipfile.BadZipFile:
            return "application/octet-stream"
    return "application/octet-stream"


# What tellers and applicants call the accepted types: extensions (PDF、JPG), never MIME types.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "application/pdf": ("pdf",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/png": ("png",),
    "application/ofd": ("ofd",),
    "image/tiff": ("tif", "tiff"),
}


def extensions_of(media_types: set[str] | list[str]) -> list[str]:
    """File-name extensions of the accepted media types, in a fixed order: pdf, jpg, jpeg, …"""
    return [e for t, exts in EXTENSIONS.items() if t in media_types for e in exts]


def kinds_text(media_types: set[str] | list[str], sep: str = "、") -> str:
    """The accepted types as people name them: "PDF、JPG、PNG、OFD"."""
    return sep.join(exts[0].upper() for t, exts in EXTENSIONS.items() if t in media_types)


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int
    media_type: str
    path: Path


@dataclass(frozen=True)
class Staged:
    """A file received into the store's staging area (see `Staging`): hashed, typed, synced to
    disk, not yet in place. `MaterialStore.adopt` puts it in place; `discard` drops it."""

    path: Path
    sha256: str
    size: int  # bytes received; more than the store's limit means the file was cut off there
    media_type: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class Staging:
    """A file being received (an upload as it streams in): written to a temporary file in the
    store and hashed on the way, so nothing holds the whole file in memory and the bytes are
    copied once. Past the store's size limit the bytes are counted, not kept."""

    def __init__(self, store: MaterialStore):
        self._root = store.root
        self._file: BinaryIO | None = None  # opened by the first write: in the thread that writes
        self.path: Path | None = None
        self._digest = hashlib.sha256()
        self._limit = store.max_bytes
        self.size = 0
        self.head = b""

    def _open(self) -> BinaryIO:
        if self._file is None:
            self._root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._root, prefix=".incoming-")
            self.path, self._file = Path(name), os.fdopen(fd, "wb")
        return self._file

    def write(self, data: bytes | memoryview) -> None:
        self._open()
        if len(self.head) < 16:
            self.head += data[: 16 - len(self.head)]
        keep = max(0, min(len(data), self._limit - self.size))
        self.size += len(data)
        if keep:
            chunk = data if keep == len(data) else data[:keep]
            self._digest.update(chunk)
            self._file.write(chunk)  # type: ignore[union-attr]

    def finish(self) -> Staged:
        """Sync to disk and close; the file is then ready to be adopted (or discarded)."""
        file = self._open()
        try:
            file.flush()
            os.fsync(file.fileno())
        finally:
            file.close()
        assert self.path is not None
        cut = self.size > self._limit
        media_type = "application/octet-stream" if cut else sniff(self.path, self.head)
        return Staged(self.path, self._digest.hexdigest(), self.size, media_type)

    def discard(self) -> None:
        """Drop what was received; never raises (it runs while another error is handled — a full
        disk makes even the close fail, and the file must still go)."""
        if self._file is None or self.path is None:
            return
        try:
            self._file.close()
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)


class MaterialStore:
    def __init__(self, root: Path, max_bytes: int, allowed_types: list[str]):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.allowed = set(allowed_types)

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def stage(self) -> Staging:
        """Receive a file as it arrives (see `Staging`)."""
        return Staging(self)

    def adopt(self, staged: Staged) -> Stored:
        """Put a staged file in place under its sha256 (call `check` first). Idempotent: the same
        bytes staged twice are kept once."""
        if problem := self.check(staged):
            raise HubError(str(problem))
        final = self.path_of(staged.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, final)
        return Stored(staged.sha256, staged.size, staged.media_type, final)

    def check(self, source: Path | bytes | Staged) -> Reason | None:
        """Why this file cannot be stored (missing, too large, wrong type), or None."""
        if isinstance(source, Staged):
            size = source.size
        elif isinstance(source, Path):
            if not source.is_file():
                return Reason(f"文件不存在: {source}", "file not found")
            size = source.stat().st_size
        else:
            size = len(source)
        if size > self.max_bytes:
            return Reason(
                f"文件超过大小上限 {self.max_bytes / 1024 / 1024:g} MB",
                f"file of {size} bytes exceeds the {self.max_bytes} byte limit",
            )
        if size == 0:
            return Reason("文件为空", "file is empty")
        media_type = source.media_type if isinstance(source, Staged) else sniff(source)
        if media_type not in self.allowed:
            return Reason(
                f"不接受的文件类型：只接受 {kinds_text(self.allowed)} 文件",
                f"file type {media_type} not accepted: only {kinds_text(self.allowed, ', ')} files",
            )
        return None

    def put(self, source: Path | bytes) -> Stored:
        """Copy into the store, streaming and hashing. Idempotent: the same bytes are kept once.
        Call `check` first; a file that changed since is refused."""
        if problem := self.check(source):
            raise HubError(str(problem))
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        tmp = Path(tmp_name)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
                with stream:
                    while chunk := stream.read(_CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise HubError("file grew past the size limit while being stored")
                        digest.update(chunk)
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path_of(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            return Stored(sha, size, sniff(final), final)
        finally:
            tmp.unlink(missing_ok=True)
