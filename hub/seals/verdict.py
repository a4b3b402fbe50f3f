"""What a verification says about one seal in a PDF (`SealCheck`), and the coverage rule both
verification paths (pyHanko's for ECDSA/RSA, ours for SM2) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SealCheck:
    field: str
    signer: str  # the certificate's common name
    algorithm: str  # e.g. "ecdsa_sha256", "rsassa_pkcs1v15_sha256", "sm2_sm3"
    signed_at: datetime | None
    intact: bool  # the signed bytes are unchanged
    valid: bool  # the signature is mathematically valid
    trusted: bool  # the certificate chains to a trusted root
    whole_document: bool  # nothing but later seals was added after this signature
    problems: list[str] = field(default_factory=list)
    holder: str = ""  # the seal's holder (the certificate's subject: organisation / name)
    authority: str = ""  # the hub authority whose seal this is, when it is one of ours
    timestamp_at: datetime | None = None  # the RFC 3161 time (PAdES B-T), when present
    timestamp_ok: bool | None = None  # None: no timestamp
    level: str = "B-B"  # PAdES level seen: B-B or B-T
    issuer: str = ""
    serial: str = ""

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted and self.whole_document and self.timestamp_ok is not False


def coverage_ok(coverage, modification_level) -> bool:
    """The signature covers the whole file, or what came after changed nothing but form
    fields — i.e. later signatures (which `verify_pdf` then checks are the only later revisions)."""
    if coverage is None:
        return False
    if coverage.name == "ENTIRE_FILE":
        return True
    from pyhanko.sign.diff_analysis import ModificationLevel  # pyHanko only where PDFs are checked

    return (
        coverage.name == "ENTIRE_REVISION"
        and modification_level is not None
        and (modification_level <= ModificationLevel.FORM_FILLING)
    )
