"""HMAC request signing (the `key_id`/`secret` auth of a `rest` connection); the sandbox
department checks the same signature."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"{method}\n{path}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
