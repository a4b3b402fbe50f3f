"""Electronic seals (电子印章): each department, and the hub itself for intake notices, seals the
PDFs it issues with a PAdES signature (pyHanko) under a certificate from the county's CA, with
the seal image (公章) on the page. docs/seals.md.

Public surface (other modules use only these):
- `seal_pdf(hub, pdf, authority, ...)` → the sealed PDF bytes;
- `verify_pdf(hub, pdf)` → one `SealCheck` per signature in the file;
- `load_seal(hub, authority)`, `ensure_test_seals(hub)` (the sandbox's test CA and seals).

The store is `<home>/seals/` (see `store.py`); SM2 seals are verified by `sm2.py`; importing
real seals is `importing.py`; `hub doctor`'s checks are `checks.py`."""

from hub.seals.pades import SealFailed, seal_pdf, verify_pdf
from hub.seals.store import HUB_AUTHORITY, Seal, SealMissing, ensure_test_seals, load_seal, trust_roots
from hub.seals.verdict import SealCheck

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
