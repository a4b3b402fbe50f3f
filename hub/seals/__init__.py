"""Electronic seals (电子印章): each department, and the hub itself for intake notices, seals the
PDFs it issues with a PAdES signature (pyHanko) under a certificate from the county's CA, with
the seal image (公章) on the page. docs/seals.md.

Public surface (other modules use only these):
- `seal_pdf(hub, pdf, authority, ...)` → the sealed PDF bytes;
- `verify_pdf(hub, pdf)` → one `SealCheck` per signature in the file;
- `load_seal(hub, authority)`, `ensure_test_seals(hub)` (the sandbox's test CA and seals).

The store is `<home>/seals/` (see `store.py`); SM2 seals are verified by `sm2.py`; importing
real seals is `importing.py`; `hub doctor`'s checks are `checks.py`."""

from __future__ import annotations

from typing import Any

from hub.seals.store import HUB_AUTHORITY, Seal, SealFailed, SealMissing, ensure_test_seals, load_seal, trust_roots
from hub.seals.verdict import SealCheck


# pyHanko (with aiohttp under it) takes about 0.3 s to import: every hub process would pay it at
# start (the CLI, servers, ingest workers), so it is imported by the first seal or check instead.
def seal_pdf(*args: Any, **kwargs: Any) -> bytes:
    """`hub.seals.pades.seal_pdf`: `pdf` sealed by `authority`'s seal."""
    from hub.seals import pades

    return pades.seal_pdf(*args, **kwargs)


def verify_pdf(*args: Any, **kwargs: Any) -> list[SealCheck]:
    """`hub.seals.pades.verify_pdf`: every seal in a PDF, checked."""
    from hub.seals import pades

    return pades.verify_pdf(*args, **kwargs)


__all__ = [
    "HUB_AUTHORITY",
    "Seal",
    "SealCheck",
    "SealFailed",
    "SealMissing",
    "ensure_test_seals",
    "load_seal",
    "seal_pdf",
    "trust_roots",
    "verify_pdf",
]
