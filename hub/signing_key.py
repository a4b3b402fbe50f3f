"""The key the evidence of remote signing is sealed with: loading it (or making it on first use,
with `crypto.signature`'s algorithm), its public half, and its key id. Where the key lives is one
setting, `Settings.signing_key_file` (HUB_SIGNING_KEY_FILE or `signing.key_file`). The core needs
this much without the `video` plugin: backups record the key id and restore checks a key against
it. The key's bytes are never logged or printed; only the public half and its id are shown.

Keys are `hub.crypto` keys (Ed25519, ECDSA P-256, RSA or SM2, the algorithm read from the key
file itself), so a key file made before 密评 (Ed25519) keeps working after `crypto.signature`
changes: only a key made from then on takes the new algorithm."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hub import crypto
from hub.crypto import SigningKey, VerifyKey

if TYPE_CHECKING:
    from hub.context import Hub


def load_private_key(path: Path, *, create: bool = False, algorithm: str = "ed25519") -> SigningKey:
    """The key in `path` (PEM, PKCS#8). `create`: make one (of `algorithm`) on first use,
    readable by the hub's user only, as `hub init` does for its other secrets."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"signing key {path} not found")
        key = crypto.generate(algorithm)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.pem())
        return key
    try:
        return crypto.load_private(path.read_bytes())
    except crypto.CryptoError as exc:
        raise ValueError(f"{path}: {exc}") from None


def signing_key(hub: Hub) -> SigningKey:
    """The hub's key, at `Settings.signing_key_file`, made on first use when missing (with
    `crypto.signature`)."""
    return load_private_key(hub.settings.signing_key_file.path, create=True, algorithm=hub.settings.crypto.signature)


def public_pem(key: object) -> bytes:
    return crypto.verify_key_of(key).pem()


def load_public_key(pem: bytes) -> VerifyKey:
    try:
        return crypto.load_public(pem)
    except crypto.CryptoError as exc:
        raise ValueError(str(exc)) from None


def key_id(key: object) -> str:
    """The sha256 of the public key's DER (SubjectPublicKeyInfo), whatever the key's algorithm:
    which key signed, without shipping the key. Manifests and backup.json name keys by it."""
    return crypto.verify_key_of(key).key_id


def algorithm(key: object) -> str:
    """The key's signature algorithm as hub.crypto names it (ed25519, sm2, ...)."""
    return crypto.verify_key_of(key).algorithm
