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

from hub.errors import HubError, Reason

_CHUNK = 1024 * 1024


def sniff(source: Path | bytes) -> str:
    """Media type from magic bytes. OFD (China's fixed-layout format) is a zip holding OFD.xml."""
    if isinstance(source, bytes):
        head = source[:16]
    else:
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


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int
    media_type: str
    path: Path


class MaterialStore:
    def __init__(self, root: Path, max_bytes: int, allowed_types: list[str]):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.allowed = set(allowed_types)

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def check(self, source: Path | bytes) -> Reason | None:
        """Why this file cannot be stored (missing, too large, wrong type), or None."""
        if isinstance(source, Path):
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
        media_type = sniff(source)
        if media_type not in self.allowed:
            return Reason(
                f"不接受的文件类型 {media_type}，可接受: {', '.join(sorted(self.allowed))}",
                f"file type {media_type} not accepted",
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
