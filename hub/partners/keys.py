"""The hub's exchange key and partners' public keys: making, loading, naming, showing. Any
algorithm hub.crypto signs with will do — Ed25519 (the protocol's first), SM2 (密评), ECDSA
P-256, RSA — a new key takes `crypto.signature`, and a partner's key's algorithm is read from
its PEM/DER. A private key is never printed or logged; only public halves and key ids leave
this module."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from pathlib import Path

from hub import crypto
from hub.crypto import SigningKey, VerifyKey
from hub.errors import HubError
from hub.signing_key import key_id, load_private_key, public_pem

ALGORITHM = "ed25519"  # the protocol's default: messages naming no `sig_alg` are Ed25519


def public_key_id(key: object) -> str:
    """sha256 of the public key's DER SubjectPublicKeyInfo, hex (as evidence manifests name keys)."""
    return key_id(key)


def public_b64(key: object) -> str:
    return base64.b64encode(crypto.verify_key_of(key).der).decode("ascii")


def parse_public_key(text: str) -> VerifyKey:
    """A public key as partners write it: PEM, or the base64 of the DER SubjectPublicKeyInfo."""
    text = text.strip()
    try:
        raw = text.encode("ascii") if text.startswith("-----BEGIN") else base64.b64decode(text, validate=True)
        return crypto.load_public(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"公钥无法解析 (not a public key: {type(exc).__name__})") from None


def load_key(path: Path) -> SigningKey:
    if not path.exists():
        raise HubError(f"交换密钥 {path} 不存在：请先运行 `hub partners keygen` (no exchange key; run keygen)")
    try:
        return load_private_key(path)
    except ValueError as exc:
        raise HubError(f"{path}: {exc}") from None


def generate(path: Path, *, rotate: bool, now: datetime, algorithm: str = ALGORITHM) -> tuple[SigningKey, Path | None]:
    """A new key (of `algorithm`) at `path` (mode 0600). An existing key is kept unless `rotate`;
    then only its public half stays (`NAME.retired-YYYYMMDD-KEYID8.pub`), so the messages it
    signed remain checkable (`hub partners verify-log`) and nothing can sign with it any more."""
    retired = None
    if path.exists():
        if not rotate:
            raise HubError(f"{path} 已存在；轮换密钥请加 --rotate (a key exists; use --rotate to replace it)")
        old = load_key(path)
        retired = path.with_name(f"{path.name}.retired-{now:%Y%m%d}-{public_key_id(old)[:8]}.pub")
        retired.write_bytes(public_pem(old))
        path.unlink()
    return load_private_key(path, create=True, algorithm=algorithm), retired


def retired_public_keys(path: Path) -> list[VerifyKey]:
    """The public halves of the keys rotated away from `path`."""
    found = []
    for candidate in sorted(path.parent.glob(path.name + ".retired-*.pub")):
        found.append(parse_public_key(candidate.read_text(encoding="ascii")))
    return found


__all__ = ["ALGORITHM", "generate", "load_key", "parse_public_key", "public_b64", "public_key_id", "public_pem"]
