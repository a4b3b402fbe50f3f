"""The hub's own secret: what status links, 网上核验 tickets and material pull links are signed
with. HUB_SECRET_KEY, or `secret.key` in the hub home made on first use (mode 0600). Every process
of a deployment (API workers, dispatch) must share it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from hub.health import SECRET_FILE
from hub.settings import Settings


def load(settings: Settings) -> bytes:
    if env := os.environ.get("HUB_SECRET_KEY"):
        return env.encode()
    path = settings.home / SECRET_FILE
    if not path.exists():
        # several processes may start at once on a fresh home: write a whole file aside, then
        # link it into place; whoever links first wins and every process reads that one
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def status_key(secret: bytes, number: str) -> str:
    """The key in an applicant's status URL (on the receipt's QR code): knowing the number alone
    is not enough to read an application's progress."""
    return hmac.new(secret, f"status:{number}".encode(), hashlib.sha256).hexdigest()[:20]


def status_path(secret: bytes, number: str) -> str:
    """The status page's path for an application (the web serves it; notices print it)."""
    return f"/s/{number}?k={status_key(secret, number)}"
