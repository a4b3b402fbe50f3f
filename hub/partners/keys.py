"""The hub's exchange key (Ed25519) and partners' public keys: making, loading, naming, showing.
A private key is never printed or logged; only public halves and key ids leave this module."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.errors import HubError
from hub.signing_key import key_id, load_private_key, public_pem

ALGORITHM = "ed25519"


def public_key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """sha256 of the public key's DER SubjectPublicKeyInfo, hex (as evidence manifests name keys)."""
    return key_id(key)


def public_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key as partners write it: PEM, or the base64 of the DER SubjectPublicKeyInfo."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"公钥无法解析 (not a public key: {type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("公钥须为 Ed25519 (the key must be Ed25519)")
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        raise HubError(f"交换密钥 {path} 不存在：请先运行 `hub partners keygen` (no exchange key; run keygen)")
    try:
        return load_private_key(path)
    except ValueError as exc:
        raise HubError(f"{path}: {exc}") from None


def generate(path: Path, *, rotate: bool, now: datetime) -> tuple[Ed25519PrivateKey, Path | None]:
    """A new key at `path` (mode 0600). An existing key is kept unless `rotate`; then only its
    public half stays (`NAME.retired-YYYYMMDD-KEYID8.pub`), so the messages it signed remain
    checkable (`hub partners verify-log`) and nothing can sign with it any more."""
    retired = None
    if path.exists():
        if not rotate:
            raise HubError(f"{path} 已存在；轮换密钥请加 --rotate (a key exists; use --rotate to replace it)")
        old = load_key(path)
        retired = path.with_name(f"{path.name}.retired-{now:%Y%m%d}-{public_key_id(old)[:8]}.pub")
        retired.write_bytes(public_pem(old))
        path.unlink()
    return load_private_key(path, create=True), retired


def retired_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """The public halves of the keys rotated away from `path`."""
    found = []
    for candidate in sorted(path.parent.glob(path.name + ".retired-*.pub")):
        found.append(parse_public_key(candidate.read_text(encoding="ascii")))
    return found


__all__ = ["ALGORITHM", "generate", "load_key", "parse_public_key", "public_b64", "public_key_id", "public_pem"]
