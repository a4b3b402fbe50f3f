"""Electronic seals (电子印章): each department, and the hub itself for intake notices, seals the
PDFs it issues with a PAdES signature (pyHanko) under a certificate from the county's CA.

Public surface (other modules use only these):
- `seal_pdf(hub, pdf, authority, ...)` → the sealed PDF bytes;
- `verify_pdf(hub, pdf)` → one `SealCheck` per signature in the file;
- `load_seal(hub, authority)`, `ensure_test_seals(hub)` (the sandbox's test CA and seals).

The store is `<home>/seals/` (see `store.py`)."""

from hub.seals.pades import SealCheck, seal_pdf, verify_pdf
from hub.seals.store import HUB_AUTHORITY, Seal, SealMissing, ensure_test_seals, load_seal, trust_roots

__all__ = [
    "HUB_AUTHORITY",
    "Seal",
    "SealCheck",
    "SealMissing",
    "ensure_test_seals",
    "load_seal",
    "seal_pdf",
    "trust_roots",
    "verify_pdf",
]
