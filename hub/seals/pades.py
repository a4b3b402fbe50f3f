"""Sealing a PDF as a PAdES signature (ETSI EN 319 142) with pyHanko — B-B, or B-T when a
timestamp authority is configured (`seals.timestamp_url`) — with the seal image on the page, and
verifying one.

ECDSA and RSA seals are pyHanko's own (SimpleSigner) and verified by pyHanko's validator; SM2
seals go through a pyHanko Signer whose raw signature is SM2 (GB/T 38540: SM3 digest, SM2 over
the signed attributes) and are verified by hub.seals.sm2, since pyHanko, poppler and Adobe do not
know SM2. Coverage (what was added after a seal) is pyHanko's analysis for both."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from PIL import Image
from pyhanko import stamp
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, InnerScaling, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hub.seals import certs
from hub.seals.store import Seal, SealFailed, load_seal, seals_dir, trust_certs
from hub.seals.verdict import SealCheck, coverage_ok

if TYPE_CHECKING:
    from hub.context import Hub

log = logging.getLogger(__name__)


MAX_SIGNATURES = 20  # a notice carries one or two seals; a file with more is not checked


# ---------------------------------------------------------------- signing


class HubSigner(signers.Signer):
    """A pyHanko signer over a seal's key: pyHanko builds the CMS SignedData and embeds it, the
    raw signature is ours — SM2 (with SM3 and the default distinguishing identifier) through
    hub.crypto, ECDSA/RSA with SHA-256 through a pyca key loaded once (pyHanko's SimpleSigner
    loads and re-checks the key for every signature: 100 ms for RSA-3072)."""

    def __init__(self, seal: Seal) -> None:
        super().__init__(
            signing_cert=seal.cert,
            cert_registry=SimpleCertificateStore.from_certs(seal.chain_certs),
            signature_mechanism=certs.signature_algorithm(seal.algorithm),
        )
        self._seal_key = seal.key
        self._pyca = None if seal.algorithm == "sm2" else seal.key.cryptography_key()

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if self._pyca is None:
            return bytes(72) if dry_run else self._seal_key.sign(data)  # 72: a DER SM2 signature at most
        if isinstance(self._pyca, ec.EllipticCurvePrivateKey):
            return self._pyca.sign(data, ec.ECDSA(hashes.SHA256()))
        return self._pyca.sign(data, padding.PKCS1v15(), hashes.SHA256())


_signers: dict[tuple, signers.Signer] = {}
_images: dict[bytes, Image.Image] = {}


def _signer(seal: Seal) -> signers.Signer:
    """Made once per seal version: loading the key and chain is the cost worth saving."""
    cache_key = (seal.authority, seal.version, id(seal))
    signer = _signers.get(cache_key)
    if signer is None:
        if len(_signers) > 256:
            _signers.clear()
        signer = _signers[cache_key] = HubSigner(seal)
    return signer


def _image(seal: Seal) -> Image.Image:
    img = _images.get(seal.image)
    if img is None:
        img = Image.open(io.BytesIO(seal.image))
        img.load()
        if len(_images) > 256:
            _images.clear()
        _images[seal.image] = img
    return img


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
    """`pdf` sealed by `authority`'s seal: a visible signature showing the seal image on `page`
    (-1: the last) in `box` (PDF points from the bottom left). PAdES B-B, or B-T with a timestamp
    from `seals.timestamp_url` when set (a TSA that fails: B-B and a warning in the log, unless
    `seals.timestamp_required`)."""
    seal = load_seal(hub, authority)
    settings = hub.settings.seals
    name = field_name or f"Seal-{authority}"
    stamper = _stamper(settings.timestamp_url, settings.timestamp_timeout) if settings.timestamp_url else None
    try:
        return _sign(seal, pdf, page=page, box=box, reason=reason, field_name=name, timestamper=stamper)
    except Exception as e:
        if stamper is None:
            raise
        # sealing again without the TSA tells its failure from ours: a problem of the document
        # or the seal fails this second attempt too, and that error is the one raised
        unstamped = _sign(seal, pdf, page=page, box=box, reason=reason, field_name=name, timestamper=None)
        _stampers.pop((settings.timestamp_url, settings.timestamp_timeout), None)
        if settings.timestamp_required:
            raise SealFailed(f"seals.timestamp_url: the timestamp authority failed ({type(e).__name__})") from e
        log.warning("timestamp authority failed (%s); sealed without a timestamp (PAdES B-B)", type(e).__name__)
        return unstamped


_stampers: dict[tuple[str, float], timestamps.HTTPTimeStamper] = {}


def _stamper(url: str, timeout: float) -> timestamps.HTTPTimeStamper:
    """One client per TSA: pyHanko asks a TSA once for a token to size the signature with and
    keeps it, so each seal after the first costs one request."""
    stamper = _stampers.get((url, timeout))
    if stamper is None:
        stamper = _stampers[(url, timeout)] = timestamps.HTTPTimeStamper(url, timeout=timeout)
    return stamper


def _sign(seal: Seal, pdf: bytes, *, page: int, box, reason: str, field_name: str, timestamper) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    pages = int(writer.root["/Pages"]["/Count"])
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm=certs.digest_of(seal.algorithm),
        reason=reason,
        name=seal.name,
    )
    spec = fields.SigFieldSpec(field_name, on_page=page % pages, box=box)
    style = stamp.StaticStampStyle(
        background=PdfImage(_image(seal)),
        background_opacity=1.0,
        border_width=0,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID,
            y_align=AxisAlignment.ALIGN_MID,
            margins=Margins(0, 0, 0, 0),
            inner_content_scaling=InnerScaling.SHRINK_TO_FIT,
        ),
    )
    pdf_signer = signers.PdfSigner(meta, _signer(seal), new_field_spec=spec, stamp_style=style, timestamper=timestamper)
    # reserving room for the signature ourselves saves pyHanko a whole dry-run signature (half the
    # cost of a seal); with a timestamp the token's size is unknown, so pyHanko estimates it
    reserved = None if timestamper is not None else _reserve(seal)
    return pdf_signer.sign_pdf(writer, bytes_reserved=reserved).getvalue()


def _reserve(seal: Seal) -> int:
    """Hex digits to reserve for the CMS object: the certificates, the signed attributes and
    the signature value, with room to spare (the rest of /Contents is zero padding)."""
    certs_size = len(seal.cert.dump()) + sum(len(c.dump()) for c in seal.chain_certs)
    return 2 * (certs_size + 2048 + 512)


# ---------------------------------------------------------------- verifying


def _cn(name) -> str:
    native = name.native
    return str(native.get("common_name", "")) if isinstance(native, dict) else ""


def _our_authorities(hub: Hub) -> dict[bytes, str]:
    """The hub's own seals by certificate, to name the authority a seal belongs to."""
    from hub.seals.store import authorities, load_seal_from

    root = seals_dir(hub)
    out = {}
    for a in authorities(root):
        try:
            out[load_seal_from(root, a).cert.sha256] = a
        except Exception:  # a half-written folder: listed by `hub seals list`, not needed here
            continue
    return out


def verify_pdf(hub: Hub, pdf: bytes) -> list[SealCheck]:
    """Every signature in `pdf`, checked against the hub's trusted roots (`<home>/seals/trust`).
    A file that is not a PDF, or has no signature, gives an empty list."""
    roots = trust_certs(seals_dir(hub))
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = reader.embedded_signatures
    except Exception:  # any parse failure means: no seal we can vouch for
        return []
    if len(embedded) > MAX_SIGNATURES:  # bounded work for a file anyone may hand in
        return [
            SealCheck(
                s.field_name, "", "", None, False, False, False, False, [f"more than {MAX_SIGNATURES} signatures"]
            )
            for s in embedded[:MAX_SIGNATURES]
        ]
    ours = _our_authorities(hub)
    signed_revisions = {s.signed_revision for s in embedded}
    total = reader.xrefs.total_revisions
    checks = []
    for sig in embedded:
        try:
            check = _check_one(sig, roots)
        except Exception as e:  # a malformed signature: reported, never trusted
            check = SealCheck(sig.field_name, "", "", None, False, False, False, False, [f"unreadable signature: {e}"])
        later = range(sig.signed_revision + 1, total)
        others = [r for r in later if r not in signed_revisions]
        if others:
            check.whole_document = False
            if "modified after sealing" not in check.problems:
                check.problems.append("modified after sealing")
        cert = sig.signer_cert
        if cert is not None:
            check.authority = ours.get(cert.sha256, "")
        checks.append(check)
    return checks


def _check_one(sig, roots) -> SealCheck:
    cert = sig.signer_cert
    sig_alg = sig.signer_info["signature_algorithm"]["algorithm"].dotted
    if sig_alg == certs.SM2_SM3_OID:
        from hub.seals.sm2 import check_sm2

        return check_sm2(sig, roots)
    status = validate_pdf_signature(
        sig,
        ValidationContext(trust_roots=roots, allow_fetching=False),
        ts_validation_context=ValidationContext(trust_roots=roots, allow_fetching=False),
    )
    subject = cert.subject.native if cert is not None else {}
    check = SealCheck(
        field=sig.field_name,
        signer=_cn(cert.subject) if cert is not None else "",
        algorithm=str(sig.signer_info["signature_algorithm"]["algorithm"].native),
        signed_at=status.signer_reported_dt,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        whole_document=coverage_ok(status.coverage, status.modification_level),
        holder=str(subject.get("common_name", "")),
        issuer=_cn(cert.issuer) if cert is not None else "",
        serial=format(cert.serial_number, "x") if cert is not None else "",
    )
    ts = status.timestamp_validity
    if ts is not None:
        check.level = "B-T"
        check.timestamp_at = ts.timestamp
        check.timestamp_ok = bool(ts.intact and ts.valid)
        if not ts.trusted:
            check.problems.append("timestamp authority not trusted")
    if not check.intact:
        check.problems.append("the signed bytes were changed")
    elif not check.valid:
        check.problems.append("the signature does not verify")
    if not check.trusted:
        check.problems.append("the certificate does not chain to a trusted root")
    if not check.whole_document:
        check.problems.append("modified after sealing")
    return check
