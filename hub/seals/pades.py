"""Sealing a PDF as a PAdES B-B signature (ETSI EN 319 142) with pyHanko, and verifying one."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko import stamp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hub.seals.store import Seal, load_seal, trust_roots

if TYPE_CHECKING:
    from hub.context import Hub


def _asn1(cert) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def seal_pdf(
    hub: Hub,
    pdf: bytes,
    authority: str,
    *,
    page: int = -1,
    box: tuple[int, int, int, int] = (400, 60, 540, 200),
    reason: str = "电子印章",
    field_name: str | None = None,
) -> bytes:
    """`pdf` sealed by `authority`'s seal: a visible signature on `page` (-1: the last) in `box`
    (PDF points from the bottom left)."""
    seal = load_seal(hub, authority)
    return _sign(seal, pdf, page=page, box=box, reason=reason, field_name=field_name or f"Seal-{authority}")


def _sign(seal: Seal, pdf: bytes, *, page: int, box, reason: str, field_name: str) -> bytes:
    key = asn1_keys.PrivateKeyInfo.load(
        seal.key.cryptography_key().private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    signer = signers.SimpleSigner(
        signing_cert=_asn1(seal.certificate),
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in seal.chain]),
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    pages = int(writer.root["/Pages"]["/Count"])
    meta = signers.PdfSignatureMetadata(
        field_name=field_name, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256", reason=reason
    )
    spec = fields.SigFieldSpec(field_name, on_page=page % pages, box=box)
    style = stamp.TextStampStyle(stamp_text="%(signer)s\n%(ts)s", border_width=0)
    out = signers.PdfSigner(meta, signer, new_field_spec=spec, stamp_style=style).sign_pdf(writer)
    return out.getvalue()


@dataclass
class SealCheck:
    field: str
    signer: str  # the certificate's common name
    algorithm: str  # e.g. "ecdsa_sha256"
    signed_at: datetime | None
    intact: bool  # the signed bytes are unchanged
    valid: bool  # the signature is mathematically valid
    trusted: bool  # the certificate chains to a trusted root
    whole_document: bool  # nothing was added after this signature
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted and self.whole_document


def verify_pdf(hub: Hub, pdf: bytes) -> list[SealCheck]:
    """Every signature in `pdf`, checked against the hub's trusted roots. A file that is not a
    PDF, or has no signature, gives an empty list."""
    roots = [_asn1(c) for c in trust_roots(hub)]
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = reader.embedded_signatures
    except Exception:  # any parse failure means: no seal we can vouch for
        return []
    checks = []
    for sig in embedded:
        status = validate_pdf_signature(sig, ValidationContext(trust_roots=roots))
        cert = status.signing_cert
        cn = cert.subject.native.get("common_name", "") if cert is not None else ""
        coverage = getattr(status, "coverage", None)
        whole = coverage is not None and coverage.name == "ENTIRE_FILE"
        checks.append(
            SealCheck(
                field=sig.field_name,
                signer=cn,
                algorithm=str(status.md_algorithm),
                signed_at=status.signer_reported_dt,
                intact=bool(status.intact),
                valid=bool(status.valid),
                trusted=bool(status.trusted),
                whole_document=whole,
            )
        )
    return checks
