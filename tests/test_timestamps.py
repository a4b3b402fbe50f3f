"""RFC 3161 timestamps of sealed evidence, against a real timestamp authority on loopback: a TSA
built from asn1crypto's RFC 3161 and CMS definitions that signs its tokens (OpenSSL verifies
them), and variants of it that answer with another digest, another nonce, no nonce, a refusal or
garbage — each refused, nothing kept beside the evidence."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import tsp
from typer.testing import CliRunner

from hub import signing
from hub.cli import app as cli
from hub.signing_key import signing_key
from tests.support.tsa import Authority, serving
from tests.test_signing import GJJ, accepted_case, fake_segments, walk_to_seal
from video import evidence, timestamps
from video.evidence import SIGNATURE, TIMESTAMP
from video.sessions import seal_session


@pytest.fixture
def tsa() -> Iterator[tuple[Authority, str]]:
    with serving() as running:
        yield running


def sealed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / SIGNATURE).write_bytes(b"\x01" * 64)  # what is time-stamped: the manifest's signature
    return folder


def test_a_granted_timestamp_of_the_signature_is_kept_and_openssl_verifies_it(tsa, tmp_path: Path):
    authority, url = tsa
    folder = sealed_folder(tmp_path)
    kept = timestamps.timestamp(folder, url)
    assert kept == folder / TIMESTAMP and kept.is_file()
    [req] = authority.requests
    digest = hashlib.sha256((folder / SIGNATURE).read_bytes()).digest()
    assert req["message_imprint"]["hashed_message"].native == digest and req["cert_req"].native is True
    info = timestamps.check_reply(kept.read_bytes(), digest, req["nonce"].native)
    assert info["serial_number"].native == 1
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to check the token independently")
    (tmp_path / "tsa.pem").write_bytes(authority.cert_pem)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(folder / SIGNATURE), "-in", str(kept),
         "-CAfile", str(tmp_path / "tsa.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("wrong imprint", "another digest"),
        ("wrong nonce", "nonce"),
        ("no nonce", "nonce"),
        ("rejection", r"refused \(rejection: policy not supported\)"),
        ("garbage", "not a TimeStampResp"),
        ("granted, no token", "sent no token"),
    ],
)
def test_a_reply_that_is_not_a_timestamp_of_what_was_asked_is_refused(tsa, tmp_path: Path, mode: str, message: str):
    authority, url = tsa
    authority.mode = mode
    folder = sealed_folder(tmp_path)
    with pytest.raises(timestamps.TimestampRefused, match=message):
        timestamps.timestamp(folder, url)
    assert not (folder / TIMESTAMP).exists()


def test_a_reply_kept_for_one_request_does_not_pass_for_another(tsa, tmp_path: Path):
    authority, url = tsa
    folder = sealed_folder(tmp_path)
    token = timestamps.timestamp(folder, url).read_bytes()
    [req] = authority.requests
    digest, nonce = req["message_imprint"]["hashed_message"].native, req["nonce"].native
    timestamps.check_reply(token, digest, nonce)
    with pytest.raises(timestamps.TimestampRefused, match="nonce"):
        timestamps.check_reply(token, digest, nonce ^ 1)
    with pytest.raises(timestamps.TimestampRefused, match="another digest"):
        timestamps.check_reply(token, hashlib.sha256(b"x").digest(), nonce)


def test_the_request_is_a_standard_timestampreq():
    digest = hashlib.sha256(b"manifest signature").digest()
    der = timestamps.request(digest, 12345)
    parsed = tsp.TimeStampReq.load(der, strict=True)
    assert parsed.native == {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256", "parameters": None}, "hashed_message": digest},
        "req_policy": None,
        "nonce": 12345,
        "cert_req": True,
        "extensions": None,
    }
    # and OpenSSL reads it as one
    if shutil.which("openssl"):
        done = subprocess.run(["openssl", "ts", "-query", "-in", "/dev/stdin", "-text"], input=der, capture_output=True)
        assert done.returncode == 0 and b"Nonce: 0x3039" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------- sealing with a TSA configured


@pytest.mark.parametrize("mode", ["good", "wrong nonce"])
def test_sealing_asks_the_configured_tsa_and_keeps_only_a_token_that_checks_out(hub, tsa, mode: str):
    authority, url = tsa
    authority.mode = mode
    hub.settings.signing.tsa_url = url
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    seal_session(hub, s.id, GJJ)  # the seal stands either way
    folder = signing.folder_of(hub, s)
    assert len(authority.requests) == 1
    assert (folder / TIMESTAMP).is_file() == (mode == "good")
    assert evidence.verify_folder(folder, signing_key(hub).public_key()).ok


def test_hub_evidence_timestamp_asks_again(hub, tsa, monkeypatch: pytest.MonkeyPatch):
    """A TSA that failed at sealing time is asked again from the command line."""
    authority, url = tsa
    authority.mode = "wrong imprint"
    hub.settings.signing.tsa_url = url
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    seal_session(hub, s.id, GJJ)
    folder = signing.folder_of(hub, s)
    assert not (folder / TIMESTAMP).exists()
    monkeypatch.setattr("video.cli.open_hub", lambda ctx: hub)
    refused = CliRunner().invoke(cli, ["evidence", "timestamp", s.id[:8]])
    assert refused.exit_code == 1 and not (folder / TIMESTAMP).exists()
    authority.mode = "good"
    done = CliRunner().invoke(cli, ["evidence", "timestamp", s.id[:8]])
    assert done.exit_code == 0, done.output
    assert (folder / TIMESTAMP).is_file() and len(authority.requests) == 3
