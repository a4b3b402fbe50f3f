"""What the hub's two hash chains share: the hash before the first event and the canonical JSON
an event's hash is taken over. The application event chain (`hub.events`, rows in the database)
and a signing session's event log (`hub.session_log`, a JSON-lines file) differ in their fields,
not in these: one definition, so the two can never drift apart.

Changing anything here changes every hash ever stored: existing chains would stop verifying.
tests/test_events.py and tests/test_session_log.py pin known hashes of both formats.

A chain's hash algorithm (sha256, or sm3 for 密评) is recorded with the chain: the application's
`hash_alg`, a session log's first event; absent means sha256, so old chains verify unchanged.
GENESIS is 64 zeros whatever the algorithm (both digests are 32 bytes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hub.crypto import hex_text

GENESIS = "0" * 64  # the `prev` of the first event of every chain

# canonical JSON: sorted keys, no spaces, UTF-8 as is (not \u escapes)
ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(value: Any) -> str:
    return ENCODER.encode(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_hex(algorithm: str, text: str) -> str:
    """The hex digest of a text in a chain's recorded algorithm (sha256 stays on hashlib: the
    batch path hashes three events per record)."""
    if algorithm == "sha256":
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    return hex_text(algorithm, text)
