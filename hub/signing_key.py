"""The Ed25519 key the evidence of remote signing is sealed with: loading it (or making it on
first use), its public half, and its key id. Where the key lives is one setting,
`Settings.signing_key_file` (HUB_SIGNING_KEY_FILE or `signing.key_file`). The core needs this
much without the `video` plugin: backups record the key id and restore checks a key against it.
The key's bytes are never logged or printed; only the public half and its id are shown."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

if TYPE_CHECKING:
    from hub.context import Hub


def load_private_key(path: Path, *, create: bool = False) -> Ed25519PrivateKey:
    """The key in `path` (PEM, PKCS#8). `create`: make one on first use, readable by the hub's
    user only, as `hub init` does for its other secrets."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"signing key {path} not found")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def signing_key(hub: Hub) -> Ed25519PrivateKey:
    """The hub's key, at `Settings.signing_key_file`, made on first use when missing."""
    return load_private_key(hub.settings.signing_key_file.path, create=True)


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The sha256 of the public key's DER (SubjectPublicKeyInfo): which key signed, without
    shipping the key. Manifests and backup.json name keys by it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
