"""Where seals live: `<home>/seals/<authority>/` holds `seal.key` (PKCS#8, mode 0600, never
printed or listed), `seal.crt` (the seal's certificate), `chain.pem` (the CA certificates up to
the root), `seal.yaml` (holder, type, algorithm, image, created, test) and the seal image
(`seal.png`, drawn when none was imported); `<home>/seals/trust/*.pem` are the roots a
verification trusts. The sandbox's test CA lives in `<home>/seals/test-ca/` (its key too: a
test CA is not a real one, and its certificates say 测试 in their names).

Documents are sealed by the thousand, so a loaded seal is cached, keyed by the files' mtimes:
an import or a new test CA is seen on the next use without a restart."""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from hub import crypto
from hub.seals import certs

if TYPE_CHECKING:
    from hub.catalog.models import Catalog
    from hub.context import Hub

HUB_AUTHORITY = "hub"  # the hub's own seal, for intake notices (收件凭证)
TEST_CA = "test-ca"
TRUST = "trust"
DEFAULT_TYPE = "业务专用章"
SEAL_ALGORITHMS = ("ecdsa-p256", "rsa-2048", "rsa-3072", "sm2")


class SealFailed(RuntimeError):
    """Sealing could not be done as configured (e.g. the timestamp authority is required and failed)."""


class SealMissing(LookupError):
    """No seal for an authority: `hub seals test-ca` (sandbox) or `hub seals import` makes one."""


@dataclass(frozen=True)
class Seal:
    authority: str  # a department code, or HUB_AUTHORITY
    name: str  # the seal's holder as printed on it (县民政局)
    key: crypto.SigningKey
    cert: asn1_x509.Certificate  # the seal's certificate (asn1crypto: SM2 ones too)
    chain_certs: list[asn1_x509.Certificate]  # issuers, up to the root
    kind: str = DEFAULT_TYPE  # the seal's type as printed on it (业务专用章)
    image: bytes = b""  # PNG, transparent background
    test: bool = False  # issued by the sandbox's test CA
    created: str = ""
    version: tuple = field(default=(), compare=False)  # the files' mtimes (what the caches key on)

    @property
    def algorithm(self) -> str:
        return self.key.algorithm

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate as pyca/cryptography reads it (it parses SM2 ones; it cannot check them)."""
        return x509.load_der_x509_certificate(self.cert.dump())

    @property
    def chain(self) -> list[x509.Certificate]:
        return [x509.load_der_x509_certificate(c.dump()) for c in self.chain_certs]

    @property
    def valid_until(self) -> dt.datetime:
        return self.cert.not_valid_after


_SHORT = {"common_name": "CN", "organizational_unit_name": "OU", "organization_name": "O", "country_name": "C"}


def dn(name: asn1_x509.Name) -> str:
    """A distinguished name on one line (CN=…,OU=…,O=…,C=…), for listings."""
    native = name.native if isinstance(name.native, dict) else {}
    return ",".join(f"{_SHORT.get(k, k)}={v}" for k, v in reversed(native.items()))


def seals_dir(hub: Hub) -> Path:
    return hub.settings.home / "seals"


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def _pem_certs(path: Path) -> list[asn1_x509.Certificate]:
    return certs.load_pem_certs(path.read_bytes()) if path.exists() else []


def read_meta(folder: Path) -> dict:
    path = folder / "seal.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def write_meta(folder: Path, meta: dict) -> None:
    (folder / "seal.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True, sort_keys=False), encoding="utf-8")


_FILES = ("seal.key", "seal.crt", "chain.pem", "seal.yaml", "seal.png")
_cache: dict[Path, Seal] = {}
_lock = threading.Lock()


def _version(folder: Path) -> tuple:
    out = []
    for name in _FILES:
        try:
            st = (folder / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def load_seal(hub: Hub, authority: str) -> Seal:
    return load_seal_from(seals_dir(hub), authority)


def load_seal_from(root: Path, authority: str) -> Seal:
    folder = root / authority
    if authority in (TEST_CA, TRUST) or not (folder / "seal.key").exists() or not (folder / "seal.crt").exists():
        raise SealMissing(f"no seal for {authority!r} in {folder} (hub seals test-ca, or hub seals import)")
    version = _version(folder)
    cached = _cache.get(folder)
    if cached is not None and cached.version == version:
        return cached
    with _lock:
        key = crypto.load_private((folder / "seal.key").read_bytes())
        [cert] = certs.load_pem_certs((folder / "seal.crt").read_bytes())[:1]
        meta = read_meta(folder)
        cn = cert.subject.native.get("common_name", authority)
        holder = str(meta.get("holder") or cn)
        kind = str(meta.get("type") or DEFAULT_TYPE)
        image_file = folder / Path(str(meta.get("image") or "seal.png")).name  # never outside the folder
        if image_file.exists():
            image = image_file.read_bytes()
        else:
            from hub.seals.image import draw_seal

            image = draw_seal(holder, kind)
            try:  # kept beside the seal so it is drawn once; a read-only home just draws it again
                (folder / "seal.png").write_bytes(image)
                version = _version(folder)
            except OSError:
                pass
        seal = Seal(
            authority=authority,
            name=holder,
            key=key,
            cert=cert,
            chain_certs=_pem_certs(folder / "chain.pem"),
            kind=kind,
            image=image,
            test=bool(meta.get("test", False)),
            created=str(meta.get("created", "")),
            version=version,
        )
        _cache[folder] = seal
        return seal


def authorities(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and (p / "seal.crt").exists() and p.name not in (TEST_CA, TRUST)
    )


def trust_roots(hub: Hub) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(c.dump()) for c in trust_certs(seals_dir(hub))]


def trust_certs(root: Path) -> list[asn1_x509.Certificate]:
    out: list[asn1_x509.Certificate] = []
    for path in sorted((root / TRUST).glob("*.pem")):
        out.extend(_pem_certs(path))
    return out


def seal_algorithm(configured: str) -> str:
    """The algorithm of new test seals: `crypto.signature` when it can seal a PDF (Ed25519
    cannot in PAdES as readers support it, so it means ECDSA P-256)."""
    return configured if configured in SEAL_ALGORITHMS else "ecdsa-p256"


def holders(county: str, catalog: Catalog) -> dict[str, str]:
    """Who needs a seal: the hub (intake notices) and every department, by authority code."""
    return {HUB_AUTHORITY: f"{county}政务服务中心"} | {code: d.name for code, d in catalog.departments.items()}


def ensure_test_seals(hub: Hub, *, algorithm: str | None = None, force: bool = False) -> list[str]:
    """The sandbox's test CA and a seal for the hub and every department that has none yet:
    what `hub init` and the demo need. Returns the authorities it made seals for. Real seals are
    imported (`hub seals import`) and never replaced here. `force`: a new test CA, and every
    test seal issued again under it."""
    alg = algorithm or seal_algorithm(hub.settings.crypto.signature)
    return make_test_seals(
        seals_dir(hub), hub.settings.county.name, holders(hub.settings.county.name, hub.catalog), alg, force=force
    )


def make_test_seals(
    root: Path, county: str, holders: dict[str, str], algorithm: str, *, force: bool = False
) -> list[str]:
    if algorithm not in SEAL_ALGORITHMS:
        raise crypto.CryptoError(f"{algorithm} cannot sign seals (known: {', '.join(SEAL_ALGORITHMS)})")
    ca_dir = root / TEST_CA
    renew = force
    if (ca_dir / "ca.key").exists() and not force:
        ca_key = crypto.load_private((ca_dir / "ca.key").read_bytes())
        [ca_cert] = _pem_certs(ca_dir / "ca.crt")[:1]
        if ca_key.algorithm != algorithm:
            raise crypto.CryptoError(
                f"the test CA in {ca_dir} is {ca_key.algorithm}, not {algorithm} (hub seals test-ca --algorithm "
                f"{algorithm} --force makes a new one)"
            )
    else:
        renew = True
        ca_key = crypto.generate(algorithm)
        subject = certs.name(f"{county}电子印章测试CA", county, "测试")
        ca_cert = certs.issue(
            subject=subject, public=ca_key.public(), issuer=subject, issuer_key=ca_key, days=3650, ca=True
        )
        write_private(ca_dir / "ca.key", ca_key.pem())
        (ca_dir / "ca.crt").write_bytes(certs.to_pem(ca_cert))
        (root / TRUST).mkdir(parents=True, exist_ok=True)
        (root / TRUST / "test-ca.pem").write_bytes(certs.to_pem(ca_cert))
    made = []
    for authority, holder in holders.items():
        folder = root / authority
        if (folder / "seal.key").exists() and not (renew and read_meta(folder).get("test")):
            continue  # an imported seal, or a test seal of this CA
        key = crypto.generate(algorithm)
        cert = certs.issue(
            subject=certs.name(holder, county, "测试"),
            public=key.public(),
            issuer=ca_cert.subject,
            issuer_key=ca_key,
            days=3 * 365,
            ca=False,
        )
        write_seal(folder, key, cert, [ca_cert], holder=holder, kind=DEFAULT_TYPE, image=None, test=True)
        made.append(authority)
    return made


def write_seal(
    folder: Path,
    key: crypto.SigningKey,
    cert: asn1_x509.Certificate,
    chain: list[asn1_x509.Certificate],
    *,
    holder: str,
    kind: str,
    image: bytes | None,
    test: bool,
) -> None:
    """Put a seal in its folder: key (0600), certificate, chain, metadata, and the image (an
    imported one, else drawn on first use)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "seal.key", key.pem())
    (folder / "seal.crt").write_bytes(certs.to_pem(cert))
    (folder / "chain.pem").write_bytes(b"".join(certs.to_pem(c) for c in chain))
    png = folder / "seal.png"
    if image is not None:
        png.write_bytes(image)
    elif png.exists():
        png.unlink()  # drawn again for the new holder
    meta = {
        "holder": holder,
        "type": kind,
        "algorithm": key.algorithm,
        "image": "seal.png",
        "image_source": "imported" if image is not None else "drawn",
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "test": test,
        "key_id": key.key_id,
    }
    write_meta(folder, meta)
