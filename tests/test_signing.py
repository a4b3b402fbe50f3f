"""Remote signing sessions without media: who may start and join, the steps in their order and
by their side, re-verification after a drop, the one-time code, abort, retention with audit,
and the evidence — sealed, verified, and refused when any file, event or the manifest changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub import applications as svc
from hub import audit, session_log, signing
from hub.context import Hub
from hub.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from hub.events import verify_chain
from hub.lifecycle import Role
from hub.signing_key import key_id, load_private_key, public_pem, signing_key
from hub.storage.tables import SigningSession
from tests.support.samples import SH_CLERK, TELLER, elderly_card, fund_retire, officer
from video import evidence
from video.sessions import recover, seal_session, take_lock

GJJ = officer("ts-gjj", "公积金审批员")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def accepted_case(hub: Hub) -> str:
    number = svc.create(hub, fund_retire(), SH_CLERK).number
    svc.transition(hub, number, "pre_review", SH_CLERK)
    svc.transition(hub, number, "accept", GJJ)
    return number


def fake_segments(hub: Hub, session_id: str) -> None:
    """What the recorder leaves (real media is covered in test_signing_media.py)."""
    folder = signing.recordings_root(hub) / session_id
    for role in ("desk", "officer"):
        (folder / role).mkdir(exist_ok=True)
        path = folder / role / "000001.webm"
        path.write_bytes(b"\x1aE\xdf\xa3" + role.encode() * 100)
        signing.append_event(hub, session_id, "segment", {"participant": role, "path": f"{role}/000001.webm"})


def walk_to_seal(hub: Hub, session_id: str) -> None:
    signing.system_step(hub, session_id, "preflight_passed", {}, ready=True)
    signing.advance(hub, session_id, SH_CLERK, "consent", {"media_time": 1.5})
    signing.advance(hub, session_id, GJJ, "identity", {"face_matches_photo": True, "id_details_read_aloud": True})
    signing.advance(hub, session_id, GJJ, "readback_show", {"snapshot": {"application": "x", "title": "退休提取"}})
    signing.advance(hub, session_id, SH_CLERK, "readback_confirm")
    code = signing.advance(hub, session_id, SH_CLERK, "signature", {"png": PNG}).otp
    assert code and len(code) == 6
    signing.advance(hub, session_id, GJJ, "otp", {"code": code})
    signing.advance(hub, session_id, GJJ, "seal")


def test_only_the_departments_officer_starts_and_only_for_items_that_need_a_signature(hub: Hub):
    number = accepted_case(hub)
    with pytest.raises(Forbidden):
        signing.start(hub, number, SH_CLERK)
    with pytest.raises(NotFound):  # not their department's application: it does not exist for them
        signing.start(hub, number, officer("ts-mzj"))
    plain = svc.create(hub, elderly_card(), TELLER).number
    svc.transition(hub, plain, "pre_review", TELLER)
    with pytest.raises(IllegalTransition):
        signing.start(hub, plain, officer("ts-mzj"))
    s = signing.start(hub, number, GJJ)
    assert signing.start(hub, number, GJJ).id == s.id  # one open session per part
    assert signing.role_in(s, SH_CLERK) == "desk" and signing.role_in(s, GJJ) == "officer"
    with pytest.raises(NotFound):
        signing.read(hub, s.id, TELLER)  # another desk
    app = svc.read(hub, number, GJJ)
    assert app.events[-1].action == "signing_started" and app.events[-1].data == {"session": s.id}


def test_steps_in_order_by_their_side_and_a_drop_means_identity_again(hub: Hub):
    s = signing.start(hub, accepted_case(hub), GJJ)
    with pytest.raises(IllegalTransition):  # nobody consents before the preflight passed
        signing.advance(hub, s.id, SH_CLERK, "consent")
    signing.system_step(hub, s.id, "preflight_passed", {}, ready=True)
    with pytest.raises(Forbidden):  # the officer cannot consent for the applicant
        signing.advance(hub, s.id, GJJ, "consent")
    signing.advance(hub, s.id, SH_CLERK, "consent")
    with pytest.raises(InvalidInput) as bad:  # the identity checklist, complete
        signing.advance(hub, s.id, GJJ, "identity", {"face_matches_photo": True})
    assert "口述" in str(bad.value.errors[0])
    signing.advance(hub, s.id, GJJ, "identity", {"face_matches_photo": True, "id_details_read_aloud": True})
    with pytest.raises(IllegalTransition):  # the desk confirms only what was shown
        signing.advance(hub, s.id, SH_CLERK, "readback_confirm")
    signing.advance(hub, s.id, GJJ, "readback_show", {"snapshot": {"title": "退休提取"}})
    signing.advance(hub, s.id, SH_CLERK, "readback_confirm")
    assert signing.read(hub, s.id, GJJ)[0].step == "signature"
    dropped = signing.system_step(hub, s.id, "connection_lost", {"participant": "desk"})
    assert (dropped.step, dropped.readback_shown) == ("identity", False)
    signing.advance(hub, s.id, GJJ, "identity", {"face_matches_photo": True, "id_details_read_aloud": True})
    signing.advance(hub, s.id, GJJ, "readback_show", {"snapshot": {}})
    signing.advance(hub, s.id, SH_CLERK, "readback_confirm")
    with pytest.raises(InvalidInput):  # not a PNG
        signing.advance(hub, s.id, SH_CLERK, "signature", {"png": b"GIF89a"})
    with pytest.raises(Forbidden):  # only the officer seals
        signing.complete(hub, s.id, SH_CLERK)
    kinds = [e["kind"] for e in session_log.read_events(signing.folder_of(hub, s) / session_log.EVENTS)]
    assert kinds[:4] == ["created", "preflight_passed", "consent", "identity"] and "connection_lost" in kinds


def test_the_code_from_the_desk_and_too_many_wrong_ones_end_the_session(hub: Hub):
    hub.settings.signing.otp_attempts = 2
    s = signing.start(hub, accepted_case(hub), GJJ)
    signing.system_step(hub, s.id, "preflight_passed", {}, ready=True)
    signing.advance(hub, s.id, SH_CLERK, "consent")
    signing.advance(hub, s.id, GJJ, "identity", {"face_matches_photo": True, "id_details_read_aloud": True})
    signing.advance(hub, s.id, GJJ, "readback_show", {"snapshot": {}})
    signing.advance(hub, s.id, SH_CLERK, "readback_confirm")
    code = signing.advance(hub, s.id, SH_CLERK, "signature", {"png": PNG}).otp
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(InvalidInput) as bad:
        signing.advance(hub, s.id, GJJ, "otp", {"code": wrong})
    assert "还可尝试1次" in str(bad.value.errors[0])
    assert signing.read(hub, s.id, GJJ)[0].otp_attempts == 1  # the wrong attempt counted, though refused
    ended = signing.advance(hub, s.id, GJJ, "otp", {"code": wrong})
    assert ended.session.state == "aborted" and "验证码" in ended.session.end_reason
    with hub.sessions() as session:
        assert session.get(SigningSession, s.id).otp_hash is None


def test_sealed_evidence_verifies_and_any_change_is_named(hub: Hub, tmp_path: Path):
    number = accepted_case(hub)
    s = signing.start(hub, number, GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    manifest = seal_session(hub, s.id, GJJ)
    folder = signing.folder_of(hub, s)
    key = signing_key(hub).public_key()
    verdict = evidence.verify_folder(folder, key)
    assert verdict.ok, verdict.problems
    assert {f["path"] for f in manifest["files"]} == {
        "desk/000001.webm",
        "officer/000001.webm",
        "readback.json",
        "signature.png",
    }
    sealed = signing.read(hub, s.id, GJJ)[0]
    assert sealed.state == "sealed" and sealed.manifest_sha256 == manifest["manifest_sha256"]
    assert sealed.retain_until >= hub.today() + timedelta(days=365 * 10 - 1)
    app = svc.read(hub, number, GJJ)
    assert app.events[-1].action == "signing_sealed" and verify_chain(app).ok

    # flip one byte of any file: named
    for name in ("desk/000001.webm", "signature.png", "readback.json"):
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(folder, copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        v = evidence.verify_folder(copy, key)
        assert not v.ok and v.first == f"{name}: sha256 does not match the manifest", v.problems
    # edit one event: named by its line
    copy = tmp_path / "events"
    shutil.copytree(folder, copy)
    lines = (copy / session_log.EVENTS).read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "consent")
    edited = json.loads(lines[at])
    edited["data"]["media_time"] = 99
    lines[at] = json.dumps(edited, ensure_ascii=False) + "\n"
    (copy / session_log.EVENTS).write_text("".join(lines), encoding="utf-8")
    v = evidence.verify_folder(copy, key)
    expected = f"events.jsonl line {at + 1} (#{at + 1} consent): content does not match its hash"
    assert not v.ok and v.first == expected, v.problems
    # drop the last events (and recompute nothing): the manifest's head no longer matches
    copy = tmp_path / "truncated"
    shutil.copytree(folder, copy)
    original = (folder / session_log.EVENTS).read_text(encoding="utf-8").splitlines(keepends=True)
    (copy / session_log.EVENTS).write_text("".join(original[:-3]), encoding="utf-8")
    v = evidence.verify_folder(copy, key)
    assert not v.ok and "the manifest says" in v.first
    # change the manifest: the signature fails
    copy = tmp_path / "manifest"
    shutil.copytree(folder, copy)
    (copy / evidence.MANIFEST).write_text((copy / evidence.MANIFEST).read_text().replace("sealed", "SEALED"))
    v = evidence.verify_folder(copy, key)
    assert not v.ok and v.first.startswith("manifest.json: the signature does not verify")


def test_verification_is_not_fooled(hub: Hub, tmp_path: Path):
    """Extra and missing files, events appended or cut at a character Python takes for a line
    break, another key, another session's evidence, and a file changed after its event."""
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    # U+2028, U+2029 and NEL: Python's splitlines() takes each for a line break; the log must not
    signing.append_event(hub, s.id, "note", {"text": "第一行\u2028第二行\u2029\x85"})
    seal_session(hub, s.id, GJJ)
    folder = signing.folder_of(hub, s)
    key = signing_key(hub).public_key()
    expected = {"session": s.id, "manifest_sha256": signing.read(hub, s.id, GJJ)[0].manifest_sha256}
    assert evidence.verify_folder(folder, key, expected=expected).ok
    assert b"\\u2028" in (folder / session_log.EVENTS).read_bytes()  # escaped: the file is plain ASCII

    def copy(name: str) -> Path:
        out = tmp_path / name
        shutil.copytree(folder, out)
        return out

    extra = copy("extra")
    (extra / "desk" / ".hidden.webm").write_bytes(b"x")
    assert evidence.verify_folder(extra, key).first == "desk/.hidden.webm: not in the manifest"
    missing = copy("missing")
    (missing / "signature.png").unlink()
    assert evidence.verify_folder(missing, key).first == "signature.png: missing"
    appended = copy("appended")
    with open(appended / session_log.EVENTS, "ab") as f:
        f.write(b'{"seq": 99}\n')
    assert "events.jsonl line" in evidence.verify_folder(appended, key).first
    cut = copy("cut")
    with open(cut / session_log.EVENTS, "ab") as f:
        f.write(b'{"seq": 99')
    assert "incomplete" in evidence.verify_folder(cut, key).first
    other_key = load_private_key(tmp_path / "other.pem", create=True).public_key()
    v = evidence.verify_folder(folder, other_key)
    assert not v.ok and "signature does not verify" in v.first and any("sealed with key" in p for p in v.problems)
    v = evidence.verify_folder(folder, key, expected={"session": "another", "manifest_sha256": "0" * 64})
    assert [p.split(":")[1].strip()[:20] for p in v.problems] == ["the evidence of sess", "not the manifest the"]


def test_a_file_changed_after_its_event_cannot_be_sealed(hub: Hub):
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    (signing.folder_of(hub, s) / "signature.png").write_bytes(PNG + b"swapped")
    with pytest.raises(ValueError, match=r"signature\.png is not the file event"):
        seal_session(hub, s.id, GJJ)


def test_an_export_verifies_with_the_public_key_alone(hub: Hub, tmp_path: Path):
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    walk_to_seal(hub, s.id)
    seal_session(hub, s.id, GJJ)
    out = evidence.export(signing.folder_of(hub, s), tmp_path / "export", public_pem(signing_key(hub)))
    assert {"README.txt", "SHA256SUMS", "verify_evidence.py", evidence.PUBLIC_KEY} <= {p.name for p in out.iterdir()}
    hub_key = tmp_path / "hub.pem"  # as fetched from /api/v1/signing/public-key, apart from the folder
    hub_key.write_bytes(public_pem(signing_key(hub)))
    script = [sys.executable, str(out / "verify_evidence.py"), str(out), str(hub_key)]
    ok = subprocess.run(script, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    # the same check with nothing but OpenSSL for the signature
    sig = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(hub_key), "-rawin",
         "-in", str(out / evidence.MANIFEST), "-sigfile", str(out / evidence.SIGNATURE)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert sig.returncode == 0 and "Verified Successfully" in sig.stdout, sig.stdout + sig.stderr
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert sums.returncode == 0, sums.stdout
    (out / "signature.png").write_bytes(PNG + b"x")
    bad = subprocess.run(script, capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL signature.png" in bad.stdout
    # a forger re-seals with a key of their own and swaps the copy in the folder: the hub's key says no
    forger = load_private_key(tmp_path / "forger.pem", create=True)
    (out / evidence.EVENTS).write_bytes((out / evidence.EVENTS).read_bytes())
    manifest = json.loads((out / evidence.MANIFEST).read_bytes())
    manifest["files"] = [
        f | ({"sha256": evidence.sha256_file(out / f["path"]), "bytes": (out / f["path"]).stat().st_size})
        for f in manifest["files"]
    ]
    manifest["key"]["id"] = key_id(forger)
    body = json.dumps(manifest).encode()
    (out / evidence.MANIFEST).write_bytes(body)
    (out / evidence.SIGNATURE).write_bytes(forger.sign(body))
    (out / evidence.PUBLIC_KEY).write_bytes(public_pem(forger))
    forged = subprocess.run(script, capture_output=True, text=True)
    assert forged.returncode == 1 and "signature does not verify" in forged.stdout, forged.stdout


def test_abort_keeps_the_partial_recording_and_the_reason(hub: Hub):
    number = accepted_case(hub)
    s = signing.start(hub, number, GJJ)
    fake_segments(hub, s.id)
    with pytest.raises(InvalidInput):
        signing.abort(hub, s.id, SH_CLERK, "  ")
    with pytest.raises(NotFound):
        signing.abort(hub, s.id, TELLER, "not theirs")
    signing.abort(hub, s.id, SH_CLERK, "申请人身体不适，改日再办")
    manifest = seal_session(hub, s.id, None)
    assert manifest["outcome"] == "aborted" and manifest["reason"] == "申请人身体不适，改日再办"
    assert evidence.verify_folder(signing.folder_of(hub, s), signing_key(hub).public_key()).ok
    ended = signing.read(hub, s.id, GJJ)[0]
    assert ended.retain_until == (hub.now() + timedelta(days=365)).astimezone(hub.settings.tz).date()
    assert svc.read(hub, number, GJJ).events[-1].action == "signing_aborted"
    with pytest.raises(IllegalTransition):
        signing.advance(hub, s.id, SH_CLERK, "consent")


def test_a_session_left_open_by_a_dead_process_is_recovered(hub: Hub):
    s = signing.start(hub, accepted_case(hub), GJJ)
    folder = signing.folder_of(hub, s)
    assert recover(hub) == []  # never started its media: anyone may still join it
    signing.append_event(hub, s.id, "recording_started", {})
    fake_segments(hub, s.id)
    live = take_lock(folder)  # a process runs it
    assert recover(hub) == []
    live.close()  # …and dies
    with open(folder / session_log.EVENTS, "ab") as f:  # in the middle of writing an event
        f.write(b'{"seq": 9, "kind": "qual')
    assert recover(hub) == [s.id]
    ended = signing.read(hub, s.id, GJJ)[0]
    assert ended.state == "aborted" and "interrupted" in ended.end_reason
    assert evidence.verify_folder(signing.folder_of(hub, s), signing_key(hub).public_key()).ok
    assert recover(hub) == []


def test_recordings_past_retention_are_deleted_and_audited(hub: Hub, clock):
    s = signing.start(hub, accepted_case(hub), GJJ)
    fake_segments(hub, s.id)
    signing.abort(hub, s.id, GJJ, "测试")
    seal_session(hub, s.id, None)
    ops = svc.Actor(name="ops", role=Role.ops)
    assert signing.purge(hub, ops) == []
    clock.advance(days=366)
    assert signing.purge(hub, ops) == [s.id]
    assert not signing.folder_of(hub, s).exists()
    with hub.sessions() as session:
        row = session.scalars(select(SigningSession)).one()
        assert row.purged_at is not None and row.manifest_sha256  # the record stays
    [entry] = [e for e in audit.entries(hub) if e.action == "delete_recording"]
    assert entry.target == s.number and entry.data["session"] == s.id
