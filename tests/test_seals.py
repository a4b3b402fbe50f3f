"""Electronic seals (电子印章): PAdES seals made with pyHanko, checked by pyHanko's validator and by
poppler's pdfsig (ECDSA, RSA); SM2 seals checked by our own path and cross-checked with the
OpenSSL command line; B-T against a real RFC 3161 TSA on loopback; one byte changed → invalid;
import of real seals, the CLI, and what `hub doctor` says."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from typer.testing import CliRunner

from hub import crypto
from hub import pdf as hub_pdf
from hub.cli import app as cli
from hub.context import Hub
from hub.seals import (
    HUB_AUTHORITY,
    SealFailed,
    SealMissing,
    certs,
    ensure_test_seals,
    load_seal,
    seal_pdf,
    store,
    verify_pdf,
)
from hub.seals.checks import seal_checks
from hub.seals.importing import SealImportError, import_seal
from tests.support.tsa import serving

MZJ = "ts-mzj"  # 泰顺县民政局 in the sample catalogue


@pytest.fixture
def hub(sqlite_only_hub: Hub) -> Hub:
    """Seals are keys, certificates and PDF bytes in the home's seals/ folder; nothing here reaches
    the database (the CLI runs on the home's own), so these tests run on SQLite only."""
    return sqlite_only_hub


def document(text: str = "受理通知书 泰顺县民政局") -> bytes:
    pdf = hub_pdf.new_document("测试通知书")
    pdf.add_page()
    pdf.cell(text=text)
    return hub_pdf.output(pdf)


def seals_for(hub, algorithm: str) -> None:
    """A test CA of `algorithm` and seals for the hub and 民政局 only (keys are slow to make)."""
    county = hub.settings.county.name
    holders = {HUB_AUTHORITY: f"{county}政务服务中心", MZJ: hub.catalog.departments[MZJ].name}
    store.make_test_seals(hub.settings.home / "seals", county, holders, algorithm, force=True)


def pdfsig(path: Path) -> str:
    done = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    return done.stdout + done.stderr


needs_pdfsig = pytest.mark.skipif(shutil.which("pdfsig") is None and not os.environ.get("CI"), reason="poppler-utils")


# ---------------------------------------------------------------- sealing and verifying


@needs_pdfsig
@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "rsa-2048"])
def test_a_sealed_pdf_verifies_with_pyhanko_and_with_pdfsig(hub, tmp_path: Path, algorithm: str):
    seals_for(hub, algorithm)
    sealed = seal_pdf(hub, document(), MZJ)
    [check] = verify_pdf(hub, sealed)
    assert check.ok, check.problems
    assert (check.signer, check.holder, check.authority) == ("泰顺县民政局", "泰顺县民政局", MZJ)
    assert check.algorithm == ("sha256_ecdsa" if algorithm == "ecdsa-p256" else "sha256_rsa")
    assert check.issuer == "泰顺县电子印章测试CA" and check.level == "B-B" and check.timestamp_at is None
    assert abs(check.signed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    out = pdfsig(path)
    assert "Signature Validation: Signature is Valid." in out and "Total document signed" in out, out
    assert "泰顺县民政局" in out and "ETSI.CAdES.detached" in out, out


def test_the_seal_image_is_on_the_page_in_the_box(hub, tmp_path: Path):
    ensure_test_seals(hub)
    sealed = seal_pdf(hub, document(), MZJ, box=(400, 60, 540, 200))
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils")
    subprocess.run(["pdftoppm", "-r", "36", "-png", "-singlefile", str(path), str(tmp_path / "page")], check=True)
    from PIL import Image

    page = Image.open(tmp_path / "page.png").convert("RGB")
    scale = 36 / 72
    height = page.height

    def red(x0: float, y0: float, x1: float, y1: float) -> int:
        box = (int(x0 * scale), int(height - y1 * scale), int(x1 * scale), int(height - y0 * scale))
        return sum(1 for r, g, b in page.crop(box).get_flattened_data() if r > 180 and g < 90 and b < 90)

    assert red(400, 60, 540, 200) > 200  # the seal's red ink in its box
    assert red(60, 60, 200, 200) == 0  # and nowhere else at the bottom
    meta = yaml.safe_load((hub.settings.home / "seals" / MZJ / "seal.yaml").read_text(encoding="utf-8"))
    assert meta["holder"] == "泰顺县民政局" and meta["type"] == "业务专用章" and meta["test"] is True
    assert meta["algorithm"] == "ecdsa-p256" and meta["image"] == "seal.png"
    assert (
        "PRIVATE" not in json.dumps(meta)
        and oct((hub.settings.home / "seals" / MZJ / "seal.key").stat().st_mode)[-3:] == "600"
    )


def test_any_byte_changed_makes_the_seal_invalid(hub):
    ensure_test_seals(hub)
    sealed = seal_pdf(hub, document(), MZJ)
    assert verify_pdf(hub, sealed)[0].ok
    for at in [0, 9, len(sealed) // 4, len(sealed) // 2, (3 * len(sealed)) // 4, len(sealed) - 40, len(sealed) - 3]:
        bad = bytearray(sealed)
        bad[at] ^= 0x01
        checks = verify_pdf(hub, bytes(bad))
        assert not checks or not any(c.ok for c in checks), f"byte {at} changed, still valid"


def test_a_later_seal_is_fine_but_anything_else_added_is_modified_after_sealing(hub):
    ensure_test_seals(hub)
    once = seal_pdf(hub, document(), MZJ)
    twice = seal_pdf(hub, once, HUB_AUTHORITY, box=(60, 60, 200, 200))
    first, second = verify_pdf(hub, twice)
    assert first.ok and second.ok, (first.problems, second.problems)
    assert (first.authority, second.authority) == (MZJ, HUB_AUTHORITY)
    # an incremental update that is not a signature: new content drawn over the page
    w = IncrementalPdfFileWriter(io.BytesIO(twice))
    ref = w.add_object(generic.StreamObject(stream_data=b"q 1 0 0 rg 100 400 200 50 re f Q"))
    w.add_stream_to_page(0, ref)
    out = io.BytesIO()
    w.write(out)
    for check in verify_pdf(hub, out.getvalue()):
        assert not check.ok and not check.whole_document and "modified after sealing" in check.problems
        assert check.intact and check.valid  # what was sealed is unchanged: only the addition fails it


def test_a_seal_from_an_untrusted_ca_is_not_trusted(hub):
    ensure_test_seals(hub)
    sealed = seal_pdf(hub, document(), MZJ)
    for pem in (hub.settings.home / "seals" / "trust").glob("*.pem"):
        pem.unlink()
    [check] = verify_pdf(hub, sealed)
    assert check.intact and check.valid and not check.trusted and not check.ok


def test_not_a_pdf_or_no_seal_gives_no_checks(hub):
    ensure_test_seals(hub)
    assert verify_pdf(hub, b"not a pdf") == [] and verify_pdf(hub, document()) == []


def test_the_loaded_seal_is_cached_until_its_files_change(hub):
    ensure_test_seals(hub)
    one = load_seal(hub, MZJ)
    assert load_seal(hub, MZJ) is one
    seals_for(hub, "ecdsa-p256")  # issued again: new key and certificate
    two = load_seal(hub, MZJ)
    assert two is not one and two.key.key_id != one.key.key_id
    with pytest.raises(SealMissing, match="ts-nobody"):
        load_seal(hub, "ts-nobody")


def test_crypto_signature_chooses_the_algorithm_of_new_test_seals(hub):
    assert store.seal_algorithm("ed25519") == "ecdsa-p256"  # Ed25519 cannot seal a PDF readers check
    assert store.seal_algorithm("rsa-3072") == "rsa-3072" and store.seal_algorithm("sm2") == "sm2"
    hub.settings.crypto.signature = "sm2"
    ensure_test_seals(hub)
    assert load_seal(hub, MZJ).algorithm == "sm2"


# ---------------------------------------------------------------- PAdES B-T


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "sm2"])
def test_with_a_tsa_configured_the_seal_is_pades_b_t(hub, tmp_path: Path, algorithm: str):
    seals_for(hub, algorithm)
    with serving() as (authority, url):
        hub.settings.seals.timestamp_url = url
        (tmp_path / "tsa.pem").write_bytes(authority.cert_pem)
        done = CliRunner().invoke(cli, ["--home", str(hub.settings.home), "seals", "trust", str(tmp_path / "tsa.pem")])
        assert done.exit_code == 0, done.output
        sealed = seal_pdf(hub, document(), MZJ)
        asked = len(authority.requests)  # pyHanko's first token only sizes the signature
        seal_pdf(hub, document(), MZJ)
        assert asked in (1, 2) and len(authority.requests) == asked + 1
    [check] = verify_pdf(hub, sealed)
    assert check.ok and check.level == "B-T" and check.timestamp_ok, check.problems
    assert check.algorithm == ("sm2_sm3" if algorithm == "sm2" else "sha256_ecdsa")
    if algorithm != "sm2" and shutil.which("pdfsig"):  # poppler reads the B-T seal too (it has no SM2)
        (tmp_path / "bt.pdf").write_bytes(sealed)
        assert "Signature Validation: Signature is Valid." in pdfsig(tmp_path / "bt.pdf")
    assert abs(check.timestamp_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    # the token is in the signature's unsigned attributes, over the signature value
    sig = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0]
    unsigned = {a["type"].native for a in sig.signer_info["unsigned_attrs"]}
    assert "signature_time_stamp_token" in unsigned


def test_a_failing_tsa_gives_b_b_or_stops_when_required(hub):
    ensure_test_seals(hub)
    with serving() as (authority, url):
        authority.mode = "garbage"
        hub.settings.seals.timestamp_url = url
        [check] = verify_pdf(hub, seal_pdf(hub, document(), MZJ))
        assert check.ok and check.level == "B-B"
        hub.settings.seals.timestamp_required = True
        with pytest.raises(SealFailed, match=r"seals\.timestamp_url"):
            seal_pdf(hub, document(), MZJ)


def test_the_timestamp_url_must_be_http(hub):
    from pydantic import ValidationError

    from hub.settings import SealsSettings

    with pytest.raises(ValidationError, match="http"):
        SealsSettings(timestamp_url="file:///etc/passwd")


# ---------------------------------------------------------------- SM2


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=data, capture_output=True)


def test_an_sm2_seal_verifies_by_our_path_and_openssl_agrees(hub, tmp_path: Path):
    seals_for(hub, "sm2")
    sealed = seal_pdf(hub, document(), MZJ)
    [check] = verify_pdf(hub, sealed)
    assert check.ok and check.algorithm == "sm2_sm3" and check.signer == "泰顺县民政局", check.problems
    assert check.signed_at is not None
    sig = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0]
    info = sig.signer_info
    assert info["digest_algorithm"]["algorithm"].dotted == crypto.HASH_OIDS["sm3"]
    assert info["signature_algorithm"]["algorithm"].dotted == crypto.SIGNATURE_OIDS["sm2"]
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to check independently")
    seal = load_seal(hub, MZJ)
    (tmp_path / "ca.pem").write_bytes(certs.to_pem(seal.chain_certs[0]))
    (tmp_path / "seal.pem").write_bytes(certs.to_pem(seal.cert))
    done = openssl(
        "verify", "-vfyopt", "distid:1234567812345678", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "seal.pem")
    )
    assert done.returncode == 0 and b"OK" in done.stdout, done.stdout + done.stderr
    # the signature over the DER signed attributes (a SET), with the seal's public key
    (tmp_path / "attrs.der").write_bytes(info["signed_attrs"].untag().dump())
    (tmp_path / "sig.der").write_bytes(info["signature"].native)
    (tmp_path / "pub.pem").write_bytes(certs.public_key(seal.cert).pem())
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3",
            "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "attrs.der"), "-sigfile", str(tmp_path / "sig.der")]  # fmt: skip
    done = openssl(*args)
    assert done.returncode == 0 and b"Signature Verified Successfully" in done.stdout, done.stdout + done.stderr
    # and the messageDigest attribute is OpenSSL's SM3 of the bytes the /ByteRange covers
    start1, len1, start2, len2 = sig.byte_range
    covered = sealed[start1 : start1 + len1] + sealed[start2 : start2 + len2]
    done = openssl("dgst", "-sm3", "-binary", data=covered)
    attrs = {a["type"].native: a["values"][0].native for a in info["signed_attrs"]}
    assert done.returncode == 0 and done.stdout == attrs["message_digest"]
    # a different signature fails openssl too: the check is not vacuous
    (tmp_path / "attrs.der").write_bytes(info["signed_attrs"].untag().dump() + b"\x00")
    assert openssl(*args).returncode != 0


def test_an_sm2_seal_changed_or_untrusted_fails(hub):
    seals_for(hub, "sm2")
    sealed = seal_pdf(hub, document(), MZJ)
    bad = bytearray(sealed)
    bad[len(sealed) // 3] ^= 0x01
    assert not any(c.ok for c in verify_pdf(hub, bytes(bad)))
    # one bit of the SM2 signature value changed, inside /Contents (outside the byte range)
    value = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0].signer_info["signature"].native
    at = sealed.lower().index(value.hex().encode())
    forged = bytearray(sealed)
    forged[at + 20] = ord("0") if forged[at + 20] != ord("0") else ord("1")
    [check] = verify_pdf(hub, bytes(forged))
    assert check.intact and not check.valid and not check.ok
    for pem in (hub.settings.home / "seals" / "trust").glob("*.pem"):
        pem.unlink()
    [check] = verify_pdf(hub, sealed)
    assert check.intact and check.valid and not check.trusted and not check.ok


def test_sm2_certificates_are_built_and_checked_by_us(hub):
    ca = crypto.generate("sm2")
    name = certs.name("测试根CA", "泰顺县")
    root = certs.issue(subject=name, public=ca.public(), issuer=name, issuer_key=ca, days=10, ca=True)
    key = crypto.generate("sm2")
    leaf = certs.issue(
        subject=certs.name("某局", "泰顺县"), public=key.public(), issuer=name, issuer_key=ca, days=5, ca=False
    )
    assert certs.signature_ok(leaf, root) and certs.signature_ok(root, root)
    assert not certs.signature_ok(root, leaf)
    other = crypto.generate("sm2")
    fake_root = certs.issue(subject=name, public=other.public(), issuer=name, issuer_key=other, days=10, ca=True)
    assert not certs.signature_ok(leaf, fake_root)  # same name, another key


# ---------------------------------------------------------------- import, trust, CLI


def make_ca(tmp_path: Path, *, usage_sign: bool = True, days: int = 365) -> dict[str, Path]:
    """A 'real' CA made with pyca (as a provincial CA would be), and a seal certificate from it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "浙江省电子印章CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "泰顺县民政局")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.KeyUsage(usage_sign, usage_sign, False, False, False, False, False, False, False)
                       if usage_sign else x509.KeyUsage(False, False, True, False, False, False, False, False, False),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    files = {
        "root": tmp_path / "root.pem",
        "key": tmp_path / "seal.key",
        "cert": tmp_path / "seal.crt",
        "p12": tmp_path / "seal.p12",
        "password": tmp_path / "p12.pass",
    }
    files["root"].write_bytes(ca.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files["cert"].write_bytes(cert.public_bytes(pem))
    files["password"].write_text("s3cret\n")
    files["p12"].write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"seal", key, cert, [ca], serialization.BestAvailableEncryption(b"s3cret")
        )
    )
    return files


def run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), "seals", *args])


def test_import_a_real_seal_from_pem_and_from_pkcs12(hub, tmp_path: Path):
    ensure_test_seals(hub)
    home = hub.settings.home
    files = make_ca(tmp_path)
    refused = run(home, "import", MZJ, "--key", str(files["key"]), "--cert", str(files["cert"]))
    assert refused.exit_code == 2 and "seal.crt" in refused.output and "trusted root" in refused.output
    assert load_seal(hub, MZJ).test  # nothing changed
    assert run(home, "trust", str(files["root"])).exit_code == 0
    png = tmp_path / "mine.png"
    from hub.seals.image import draw_seal

    png.write_bytes(draw_seal("泰顺县民政局", "行政审批专用章"))
    done = run(home, "import", MZJ, "--key", str(files["key"]), "--cert", str(files["cert"]), "--image", str(png),
               "--type", "行政审批专用章")  # fmt: skip
    assert done.exit_code == 0, done.output
    seal = load_seal(hub, MZJ)
    assert not seal.test and seal.kind == "行政审批专用章" and seal.image == png.read_bytes()
    [check] = verify_pdf(hub, seal_pdf(hub, document(), MZJ))
    assert check.ok and check.issuer == "浙江省电子印章CA"
    done = run(home, "import", HUB_AUTHORITY, "--p12", str(files["p12"]), "--password-file", str(files["password"]))
    assert done.exit_code == 0, done.output
    assert load_seal(hub, HUB_AUTHORITY).cert.issuer.native["common_name"] == "浙江省电子印章CA"
    # a new test CA never replaces imported seals
    assert run(home, "test-ca", "--force").exit_code == 0
    assert not load_seal(hub, MZJ).test and load_seal(hub, "ts-gaj").test


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("mismatch", "seal.key: the key does not match the certificate"),
        ("expired", "seal.crt: the certificate is valid from"),
        ("usage", "seal.crt: keyUsage does not allow signing"),
        ("password", "seal.p12: not a PKCS#12 file this password opens"),
        ("image", "bad.png: not a readable PNG"),
        ("authority", "AUTHORITY '../x'"),
        ("ed25519", "seal.key: a ed25519 key cannot seal PDFs"),
        ("type", "--type: 1 to 12 printable characters"),
    ],
)
def test_import_errors_name_the_file_and_change_nothing(hub, tmp_path: Path, case: str, message: str):
    ensure_test_seals(hub)
    root = hub.settings.home / "seals"
    files = make_ca(tmp_path, usage_sign=case != "usage", days=-1 if case == "expired" else 365)
    import_root = files["root"]
    from hub.seals.importing import trust_root

    trust_root(root, import_root)
    before = load_seal(hub, MZJ).key.key_id
    kwargs: dict = {"key_file": files["key"], "cert_file": files["cert"]}
    authority = MZJ
    if case == "mismatch":
        other = tmp_path / "other" / "seal.key"
        other.parent.mkdir()
        other.write_bytes(crypto.generate("ecdsa-p256").pem())
        kwargs["key_file"] = other
    elif case == "password":
        files["password"].write_text("wrong")
        kwargs = {"p12": files["p12"], "password_file": files["password"]}
    elif case == "image":
        (tmp_path / "bad.png").write_bytes(b"GIF89a not a png")
        kwargs["image_file"] = tmp_path / "bad.png"
    elif case == "authority":
        authority = "../x"
    elif case == "type":
        kwargs["kind"] = "业务专用章\n伪造"
    elif case == "ed25519":
        (tmp_path / "seal.key").write_bytes(crypto.generate("ed25519").pem())
    with pytest.raises(SealImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_seal(root, authority, **kwargs)
    assert load_seal(hub, MZJ).key.key_id == before


def test_trust_refuses_what_is_not_a_ca(hub, tmp_path: Path):
    files = make_ca(tmp_path)
    done = run(hub.settings.home, "trust", str(files["cert"]))
    assert done.exit_code == 2 and "seal.crt" in done.output and "not a CA certificate" in done.output
    missing = run(hub.settings.home, "trust", str(tmp_path / "nope.pem"))
    assert missing.exit_code == 2 and "nope.pem: cannot read" in missing.output


def test_cli_test_ca_list_and_verify(hub, tmp_path: Path):
    home = hub.settings.home
    done = run(home, "test-ca", "--algorithm", "sm2")
    assert done.exit_code == 0, done.output
    listed = run(home, "list", "--json")
    rows = json.loads(listed.stdout)
    assert {r["authority"] for r in rows} == {HUB_AUTHORITY, *hub.catalog.departments}
    mzj = next(r for r in rows if r["authority"] == MZJ)
    assert mzj["algorithm"] == "sm2" and mzj["test"] is True and mzj["holder"] == "泰顺县民政局"
    assert mzj["key_id"] == load_seal(hub, MZJ).key.key_id and "测试CA" in mzj["issuer"]
    assert "PRIVATE KEY" not in listed.stdout and "PRIVATE KEY" not in run(home, "list").stdout
    again = run(home, "test-ca", "--algorithm", "ecdsa-p256")  # another algorithm needs --force
    assert again.exit_code == 2 and "--force" in again.output
    assert run(home, "test-ca", "--algorithm", "ecdsa-p256", "--force").exit_code == 0
    assert load_seal(hub, MZJ).algorithm == "ecdsa-p256"
    path = tmp_path / "sealed.pdf"
    path.write_bytes(seal_pdf(hub, document(), MZJ))
    ok = run(home, "verify", str(path))
    assert ok.exit_code == 0 and "有效 valid" in ok.output and "泰顺县民政局" in ok.output, ok.output
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    bad = run(home, "verify", str(path))
    assert bad.exit_code == 1 and "无效 INVALID" in bad.output


def test_hub_init_makes_the_sandbox_seals(tmp_path: Path):
    done = CliRunner().invoke(cli, ["init", str(tmp_path / "home")])
    assert done.exit_code == 0, done.output
    root = tmp_path / "home" / "seals"
    assert (root / "test-ca" / "ca.crt").is_file() and (root / "trust" / "test-ca.pem").is_file()
    assert set(store.authorities(root)) >= {HUB_AUTHORITY, MZJ}
    assert oct((root / "test-ca" / "ca.key").stat().st_mode)[-3:] == "600"


# ---------------------------------------------------------------- doctor


def test_doctor_warns_on_missing_expiring_and_test_seals_in_production(hub):
    root = hub.settings.home / "seals"
    holders = store.holders(hub.settings.county.name, hub.catalog)
    seals_for(hub, "ecdsa-p256")
    now = dt.datetime.now(dt.UTC)
    found = {p.name: p for p in seal_checks(root, holders, production=False, now=now)}
    assert found["seal:ts-gaj"].ok and "warning: no seal for 泰顺县公安局" in found["seal:ts-gaj"].detail
    assert "seal:ts-mzj" not in found and found["seals"].ok and "warning" not in found["seals"].detail
    soon = load_seal(hub, MZJ).valid_until - dt.timedelta(days=10)
    found = {p.name: p for p in seal_checks(root, holders, production=False, now=soon)}
    assert found["seal:ts-mzj"].ok and "warning: the certificate expires on" in found["seal:ts-mzj"].detail
    later = load_seal(hub, MZJ).valid_until + dt.timedelta(days=1)
    found = {p.name: p for p in seal_checks(root, holders, production=False, now=later)}
    assert not found["seal:ts-mzj"].ok and "expired" in found["seal:ts-mzj"].detail
    found = {p.name: p for p in seal_checks(root, holders, production=True, now=now)}
    assert found["seals"].ok and "warning: 2 seal(s) issued by the sandbox's test CA" in found["seals"].detail
    from hub.health import check_seals

    names = {c.name for c in check_seals(hub.settings, hub.catalog, "postgresql://x/y", now)}
    assert {"seals", "seal:ts-gaj"} <= names


def test_a_file_with_too_many_signatures_is_not_checked(hub, monkeypatch: pytest.MonkeyPatch):
    ensure_test_seals(hub)
    twice = seal_pdf(hub, seal_pdf(hub, document(), MZJ), HUB_AUTHORITY, box=(60, 60, 200, 200))
    monkeypatch.setattr("hub.seals.pades.MAX_SIGNATURES", 1)
    [check] = verify_pdf(hub, twice)
    assert not check.ok and check.problems == ["more than 1 signatures"]
