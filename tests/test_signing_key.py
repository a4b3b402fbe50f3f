"""The evidence signing key: one setting says where it is (HUB_SIGNING_KEY_FILE over
`signing.key_file`), one function names it (its key id) — and the standalone verifier's copy of
that function, and the backup's, give the same id."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from hub import backup, health
from hub.home import write_home
from hub.settings import load_settings
from hub.signing_key import key_id, load_private_key, public_pem, signing_key
from video import verify_evidence


def test_the_key_file_is_one_setting_with_its_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HUB_SIGNING_KEY_FILE", raising=False)
    settings = load_settings(write_home(tmp_path / "home"))
    assert tuple(settings.signing_key_file) == (settings.home / "signing-ed25519.pem", "signing.key_file", False)
    settings.signing.key_file = "/etc/tongban/evidence.pem"
    assert tuple(settings.signing_key_file) == (Path("/etc/tongban/evidence.pem"), "signing.key_file", True)
    monkeypatch.setenv("HUB_SIGNING_KEY_FILE", str(tmp_path / "secret.pem"))
    assert tuple(settings.signing_key_file) == (tmp_path / "secret.pem", "HUB_SIGNING_KEY_FILE", True)
    # the readiness check reads the same setting
    assert health.check_signing_key(settings).detail.startswith("HUB_SIGNING_KEY_FILE:")


def test_the_hubs_key_is_made_where_the_setting_says_readable_by_the_hub_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HUB_SIGNING_KEY_FILE", str(tmp_path / "keys" / "evidence.pem"))
    hub = SimpleNamespace(settings=load_settings(write_home(tmp_path / "home")))
    key = signing_key(hub)  # type: ignore[arg-type]
    made = tmp_path / "keys" / "evidence.pem"
    assert made.stat().st_mode & 0o777 == 0o600 and not (tmp_path / "home" / "signing-ed25519.pem").exists()
    assert key_id(signing_key(hub)) == key_id(key)  # type: ignore[arg-type]  # the same key, not a new one


def test_every_key_id_is_the_same_function(tmp_path: Path):
    key = load_private_key(tmp_path / "k.pem", create=True)
    pem = public_pem(key)
    assert key_id(key) == key_id(key.public_key()) == verify_evidence.key_id(pem)
    assert backup.public_key_of(tmp_path / "k.pem") == (pem, key_id(key))
    other = load_private_key(tmp_path / "other.pem", create=True)
    assert key_id(other) != key_id(key) and verify_evidence.key_id(public_pem(other)) == key_id(other)
