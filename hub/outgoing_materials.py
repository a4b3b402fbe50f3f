"""Materials on their way to a department: the bytes a connector sends, always checked against
the sha256 the hub recorded at intake, and signed pull links (`pull` mode) that the web app
serves at `GET /materials/{token}`.

A link names one part and one material by its sha256, expires, and is signed with the hub's
secret (hub.secret_key): it cannot be turned into a link to another file or stretched in time.
Links need `public_url` in hub.yaml (the address departments reach the hub at)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from hub import secret_key
from hub.connectors import DeliveryError, MaterialRef
from hub.materials import MaterialStore
from hub.settings import Settings

_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Checked:
    """A material file read as a stream, hashed on the way; at its end the digest must match."""

    def __init__(self, path: Path, ref: MaterialRef, what: str):
        self._file: BinaryIO = path.open("rb")
        self._digest = hashlib.sha256()
        self._ref, self._what = ref, what

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._digest.update(chunk)
        if not chunk or size < 0:
            self._verify()
        return chunk

    def _verify(self) -> None:
        if self._digest.hexdigest() != self._ref.sha256:
            raise DeliveryError(
                f"{self._what}: 材料 {self._ref.name} 的内容与登记的 sha256 不符 (stored bytes do not match)",
                retryable=False,
            )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Checked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class OutgoingMaterials:
    """`hub.connectors.MaterialAccess` for one connection of one hub."""

    store: MaterialStore
    settings: Settings
    connection: str
    now: datetime | None = None  # for tests; else the clock at the time of the call

    @cached_property
    def _secret(self) -> bytes:  # read once, not per link
        return secret_key.load(self.settings)

    def _path(self, ref: MaterialRef) -> Path:
        if not _SHA256.fullmatch(ref.sha256):
            raise DeliveryError(f"{self.connection}: 无效的 sha256 ({ref.name})", retryable=False)
        path = self.store.path_of(ref.sha256)
        if not path.is_file():
            raise DeliveryError(
                f"{self.connection}: 材料库缺少 {ref.name} (sha256 {ref.sha256[:12]}… not in the store)",
                retryable=False,
            )
        return path

    def read(self, ref: MaterialRef) -> bytes:
        with self.open(ref) as f:
            return f.read()

    def open(self, ref: MaterialRef) -> _Checked:  # type: ignore[override]
        return _Checked(self._path(ref), ref, self.connection)

    def url(self, ref: MaterialRef, part_id: str, ttl_hours: float = 72) -> str:
        base = self.settings.public_url
        if not base:
            raise DeliveryError(
                f"{self.connection}: 拉取链接需要在 hub.yaml 设置 public_url (pull links need public_url)",
                retryable=False,
            )
        self._path(ref)
        expires = int(((self.now or datetime.now().astimezone()) + timedelta(hours=ttl_hours)).timestamp())
        token = make_token(self._secret, part_id, ref.sha256, expires)
        return f"{base.rstrip('/')}/materials/{token}"


def _mac(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, b"material:" + payload, hashlib.sha256).hexdigest()[:32]


def make_token(secret: bytes, part_id: str, sha256: str, expires: int) -> str:
    payload = f"{part_id}:{sha256}:{expires}".encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _mac(secret, payload)


@dataclass(frozen=True)
class Link:
    part_id: str
    sha256: str
    expires: int


def read_token(secret: bytes, token: str, now: datetime) -> Link | None:
    """The link a token names, or None when it is forged, altered or expired."""
    encoded, _, mac = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        part_id, sha256, expires = payload.decode().split(":")
        link = Link(part_id, sha256, int(expires))
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"), _mac(secret, payload).encode()):
        return None
    if not _SHA256.fullmatch(link.sha256) or link.expires < now.timestamp():
        return None
    return link


SAMPLE_BYTES = b"%PDF-1.4\n% sample material for `hub connectors render`\n%%EOF\n"
SAMPLE_SHA256 = hashlib.sha256(SAMPLE_BYTES).hexdigest()


class SampleMaterials:
    """Material access for a made-up part (`hub connectors render` without --application): every
    material is the same small placeholder PDF, every link a placeholder address."""

    def read(self, ref: MaterialRef) -> bytes:
        return SAMPLE_BYTES

    def open(self, ref: MaterialRef) -> io.BytesIO:
        return io.BytesIO(SAMPLE_BYTES)

    def url(self, ref: MaterialRef, part_id: str, ttl_hours: float = 72) -> str:
        return f"https://hub.example.gov.cn/materials/SAMPLE-{ref.sha256[:12]}"


class ShownMaterials:
    """Material access for `hub connectors render --application`: the real bytes (a preview shows
    what would be sent), but a pull link shown with its token masked — a link is a credential."""

    def __init__(self, real: OutgoingMaterials):
        self._real = real

    def read(self, ref: MaterialRef) -> bytes:
        return self._real.read(ref)

    def open(self, ref: MaterialRef) -> _Checked:
        return self._real.open(ref)

    def url(self, ref: MaterialRef, part_id: str, ttl_hours: float = 72) -> str:
        base = self._real.settings.public_url or "https://<public_url>"
        return f"{base.rstrip('/')}/materials/***"
