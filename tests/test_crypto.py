"""Cryptographic agility (密评, GB/T 39786): hub.crypto for every algorithm, and every SM2/SM3
output the hub writes checked by an independent implementation — the OpenSSL command line —
rather than by the code that made it. Event chains, session logs, sealed evidence and partner
messages switched to SM3/SM2, with what was written before the switch still verifying."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hub import applications as svc
from hub import crypto, integrity
from hub.events import verify_chain
from hub.exchange import envelope
from hub.exchange import log as message_log
from hub.hashchain import GENESIS
from hub.lifecycle import Role
from hub.presenters import application_detail
from hub.session_log import EventLog, verify_events
from hub.signing_key import signing_key
from hub.storage.tables import Application, Event
from tests.support.samples import TELLER, elderly_card, officer
from video import evidence

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line")  # installed in CI
MZJ = officer("ts-mzj")
SM2_ID = "1234567812345678"
VERIFIER = Path(evidence.__file__).with_name("verify_evidence.py")


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


def sm3_by_openssl(data: bytes) -> str:
    out = openssl("dgst", "-sm3", "-r", data=data)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0].decode()


def openssl_verifies(algorithm: str, public_pem: Path, data: Path, signature: Path) -> bool:
    if algorithm == "sm2":
        args = ["pkeyutl", "-verify", "-pubin", "-inkey", str(public_pem), "-rawin", "-digest", "sm3"]
        args += ["-pkeyopt", f"distid:{SM2_ID}", "-in", str(data), "-sigfile", str(signature)]
    elif algorithm == "ed25519":
        args = ["pkeyutl", "-verify", "-pubin", "-inkey", str(public_pem), "-rawin"]
        args += ["-in", str(data), "-sigfile", str(signature)]
    else:
        args = ["dgst", "-sha256", "-verify", str(public_pem), "-signature", str(signature), str(data)]
    return openssl(*args).returncode == 0


# ---------------------------------------------------------------- hub.crypto


@pytest.mark.parametrize("algorithm", crypto.SIGNATURE_ALGORITHMS)
def test_every_algorithm_signs_what_openssl_verifies(algorithm: str, tmp_path: Path):
    key = crypto.generate(algorithm)
    data = "受理通知书 tongban 密评".encode() * 7
    signature = key.sign(data)
    public = key.public()
    assert public.algorithm == algorithm and public.verify(signature, data)
    assert not public.verify(signature, data + b"x")
    assert not crypto.generate(algorithm).public().verify(signature, data)  # another key of the kind
    assert not public.verify(b"\x00" * len(signature), data)

    # PEM both ways: openssl reads ours, we read ours back with the algorithm found in the key
    (tmp_path / "priv.pem").write_bytes(key.pem())
    (tmp_path / "pub.pem").write_bytes(public.pem())
    assert openssl("pkey", "-in", str(tmp_path / "priv.pem"), "-noout").returncode == 0
    pubout = openssl("pkey", "-in", str(tmp_path / "priv.pem"), "-pubout")
    assert pubout.returncode == 0 and crypto.load_public(pubout.stdout) == public
    assert openssl("pkey", "-pubin", "-in", str(tmp_path / "pub.pem"), "-noout").returncode == 0
    again = crypto.load_private(key.pem())
    assert again.algorithm == algorithm and again.key_id == key.key_id == public.key_id
    assert "PRIVATE" not in repr(key) and key.key_id[:16] in repr(key)

    (tmp_path / "data").write_bytes(data)
    (tmp_path / "sig").write_bytes(signature)
    assert openssl_verifies(algorithm, tmp_path / "pub.pem", tmp_path / "data", tmp_path / "sig")
    (tmp_path / "data").write_bytes(data + b"x")
    assert not openssl_verifies(algorithm, tmp_path / "pub.pem", tmp_path / "data", tmp_path / "sig")


def test_an_sm2_signature_made_by_openssl_verifies_with_hub_crypto(tmp_path: Path):
    assert openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "k.pem")).returncode == 0
    (tmp_path / "data").write_bytes("电子证照 SM2".encode())
    made = openssl(
        "pkeyutl", "-sign", "-inkey", str(tmp_path / "k.pem"), "-rawin", "-digest", "sm3",
        "-pkeyopt", f"distid:{SM2_ID}", "-in", str(tmp_path / "data"), "-out", str(tmp_path / "sig"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    public = crypto.load_public(openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout").stdout)
    signature = (tmp_path / "sig").read_bytes()
    assert public.algorithm == "sm2" and public.verify(signature, "电子证照 SM2".encode())
    assert not public.verify(signature, "电子证照 SM3".encode())
    # and the private key openssl made signs here, verifiable with the same public key
    key = crypto.load_private((tmp_path / "k.pem").read_bytes())
    assert key.algorithm == "sm2" and key.public() == public and public.verify(key.sign(b"x"), b"x")


@pytest.mark.parametrize("size", [0, 3, 64, 1000, 200_003])
def test_sm3_digests_are_openssls(size: int):
    data = os.urandom(size)
    assert crypto.hexdigest("sm3", data) == sm3_by_openssl(data)
    h = crypto.Hasher("sm3")  # incremental, and digest() may be asked midway
    h.update(data[: size // 2])
    assert h.hexdigest() == sm3_by_openssl(data[: size // 2])
    h.update(data[size // 2 :])
    assert h.hexdigest() == sm3_by_openssl(data)
    assert crypto.hexdigest("sha256", data) == openssl("dgst", "-sha256", "-r", data=data).stdout.split()[0].decode()


def test_unknown_algorithms_are_named():
    with pytest.raises(crypto.CryptoError, match="unknown hash algorithm 'md5'"):
        crypto.hexdigest("md5", b"")
    with pytest.raises(crypto.CryptoError, match="unknown signature algorithm 'dsa'"):
        crypto.generate("dsa")


def test_a_key_verifies_only_as_the_algorithm_it_is_recorded_with():
    """A signature record names its algorithm; a key of another type under that name is refused,
    not verified by whatever the key happens to be (review finding 10)."""
    data = b"licence status list"
    ecdsa = crypto.generate("ecdsa-p256")
    signature = ecdsa.sign(data)
    der = ecdsa.public().der
    assert crypto.VerifyKey("ecdsa-p256", der).verify(signature, data)
    for recorded in ("ed25519", "rsa-2048", "sm2"):
        assert not crypto.VerifyKey(recorded, der).verify(signature, data), recorded
    rsa = crypto.generate("rsa-2048")
    assert not crypto.VerifyKey("rsa-3072", rsa.public().der).verify(rsa.sign(data), data)
    sm2 = crypto.generate("sm2")
    assert crypto.VerifyKey("sm2", sm2.public().der).verify(sm2.sign(data), data)
    assert not crypto.VerifyKey("ecdsa-p256", sm2.public().der).verify(sm2.sign(data), data)
    assert not crypto.VerifyKey("ed25519", b"not a key").verify(signature, data)


# ---------------------------------------------------------------- application event chains


def _walk(hub, actions=("accept", "start_review")):
    app = svc.create(hub, elderly_card(), TELLER)
    app = svc.transition(hub, app.number, "pre_review", TELLER)
    for action in actions:
        app = svc.transition(hub, app.number, action, MZJ)
    return app


def _event_text(number: str, ev: Event) -> bytes:
    """An event's canonical JSON, written out here from the row (not with hub.events)."""
    doc = {
        "action": ev.action, "actor": ev.actor, "application": number,
        "at": ev.at.isoformat(timespec="microseconds") + "Z", "data": ev.data, "desk": ev.desk,
        "from_state": ev.from_state, "part_id": ev.part_id, "prev_hash": ev.prev_hash, "reason": ev.reason,
        "role": ev.role, "seq": ev.seq, "to_state": ev.to_state,
    }  # fmt: skip
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def test_an_sm3_event_chain_is_what_openssl_computes(hub):
    hub.settings.crypto.hash = "sm3"
    app = _walk(hub)
    assert app.hash_alg == "sm3" and verify_chain(app).ok
    prev = GENESIS
    for ev in app.events:
        assert ev.prev_hash == prev
        assert ev.hash == sm3_by_openssl(_event_text(app.number, ev)), f"event #{ev.seq}"
        prev = ev.hash
    assert app.chain_head == prev
    view = application_detail(hub, app)
    assert view["chain"] == {"ok": True, "head": prev, "problem": None, "hash_alg": "sm3"}


def test_switching_to_sm3_keeps_old_chains_and_starts_new_ones_in_sm3(hub):
    old = _walk(hub, ("accept",))
    assert old.hash_alg == "sha256"
    hub.settings.crypto.hash = "sm3"
    # the old application chains on in sha256, its recorded algorithm; a new one starts in sm3
    old = svc.transition(hub, old.number, "start_review", MZJ)
    new = _walk(hub)
    assert (old.hash_alg, new.hash_alg) == ("sha256", "sm3")
    assert old.events[-1].hash != sm3_by_openssl(_event_text(old.number, old.events[-1]))
    # the batch path (COPY on PostgreSQL) records and uses the algorithm too
    card = elderly_card(source_ref="XH-SM3:1")
    subject, form, problems = svc.check_new(hub, card)
    assert subject is not None and not problems
    entry = svc.Received(
        new=card, subject=subject, form=form, stored=[hub.store.put(m.content) for m in card.materials], pre_review={}
    )
    actor = svc.Actor(name="intake:test", role=Role.system, desk=card.desk)
    assert svc.receive_batch(hub, [entry], actor) == ["created"]
    with hub.sessions() as s:
        batch_number = s.scalar(select(Application.number).where(Application.source_ref == "XH-SM3:1"))
    batched = svc.read(hub, batch_number, MZJ)
    assert batched.hash_alg == "sm3" and len(batched.events) == 3
    assert batched.events[0].hash == sm3_by_openssl(_event_text(batch_number, batched.events[0]))

    report = integrity.IntegrityReport()
    integrity.check_chains(hub, report)  # what `hub apps verify-all` runs
    assert report.ok and report.chains.checked == 3
    for number in (old.number, new.number):  # a tampered event fails in either algorithm
        app = svc.read(hub, number, MZJ)
        with hub.transaction() as s:
            s.execute(update(Event).where(Event.application_id == app.id, Event.seq == 2).values(actor="某人"))
        assert verify_chain(svc.read(hub, number, MZJ)).problem.startswith("event #2 (submit)")
    # and a chain cannot be passed off as the other algorithm's
    with hub.transaction() as s:
        s.execute(update(Application).where(Application.number == batch_number).values(hash_alg="sha256"))
    assert not verify_chain(svc.read(hub, batch_number, MZJ)).ok
    report = integrity.IntegrityReport()
    integrity.check_chains(hub, report)
    assert report.chains.failed == 3


# ---------------------------------------------------------------- session logs and sealed evidence


def _session_folder(folder: Path, algorithm: str) -> None:
    (folder / "seg").mkdir(parents=True)
    segment = folder / "seg" / "0001.webm"
    segment.write_bytes(os.urandom(5000))
    log = EventLog(folder / "events.jsonl", algorithm)
    log.append("start", "hub", {"number": "330329-20261204-00001"})
    log.append("segment", "hub", {"path": "seg/0001.webm", "sha256": crypto.hexdigest("sha256", segment.read_bytes())})
    log.append("end", "officer:王芳", {"outcome": "signed"})


def test_an_sm3_session_log_is_what_openssl_computes(tmp_path: Path):
    _session_folder(tmp_path, "sm3")
    lines = (tmp_path / "events.jsonl").read_bytes().split(b"\n")[:-1]
    prev = GENESIS
    for line in lines:
        event = json.loads(line)
        assert event["alg"] == "sm3" and event["prev"] == prev
        body = json.dumps({k: v for k, v in event.items() if k != "hash"}, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":")).encode()  # fmt: skip
        assert event["hash"] == sm3_by_openssl(body)
        prev = event["hash"]
    check = verify_events(tmp_path / "events.jsonl")
    assert check.ok and check.algorithm == "sm3" and check.head == prev
    # a log keeps its first event's algorithm, whoever appends after
    EventLog(tmp_path / "events.jsonl", "sha256").append("note", "hub")
    assert json.loads((tmp_path / "events.jsonl").read_bytes().split(b"\n")[-2])["alg"] == "sm3"
    assert verify_events(tmp_path / "events.jsonl").ok


def _sealed_sm2(tmp_path: Path) -> tuple[Path, crypto.SigningKey, Path]:
    folder = tmp_path / "session"
    _session_folder(folder, "sm3")
    key = crypto.generate("sm2")
    evidence.seal(
        folder, key, {"session": "s-1", "application": {"number": "330329-20261204-00001"}, "outcome": "signed"}, "sm3"
    )
    (tmp_path / "hub.pem").write_bytes(key.public().pem())
    return folder, key, tmp_path / "hub.pem"


def test_sm2_evidence_verifies_in_the_hub_with_openssl_and_with_the_standalone_verifier(tmp_path: Path):
    folder, key, public_pem = _sealed_sm2(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert manifest["key"] == {"algorithm": "sm2", "id": key.key_id}
    assert manifest["hash_alg"] == "sm3" and manifest["events"]["hash_alg"] == "sm3"
    (entry,) = manifest["files"]
    assert entry["sm3"] == sm3_by_openssl((folder / "seg" / "0001.webm").read_bytes())
    assert manifest["events"]["sm3"] == sm3_by_openssl((folder / "events.jsonl").read_bytes())
    assert openssl_verifies("sm2", public_pem, folder / "manifest.json", folder / "manifest.sig")
    verdict = evidence.verify_folder(folder, key.public())
    assert verdict.ok, verdict.problems
    assert not evidence.verify_folder(folder, crypto.generate("sm2").public()).ok

    out = evidence.export(folder, tmp_path / "export", key.public().pem())
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert f"-digest sm3 -pkeyopt distid:{SM2_ID}" in readme and "signature algorithm: sm2" in readme
    sums = subprocess.run(  # the README's own SM3SUMS line, run as printed
        next(line.strip() for line in readme.splitlines() if "SM3SUMS" in line and "openssl" in line),
        shell=True, cwd=out, capture_output=True, check=False,
    )  # fmt: skip
    assert sums.returncode == 0 and sums.stdout == b"", sums.stdout + sums.stderr

    ran = subprocess.run(
        [sys.executable, str(out / "verify_evidence.py"), str(out), str(public_pem)], capture_output=True, text=True
    )
    assert ran.returncode == 0 and ran.stdout.startswith("OK: sm2 signature") and "sm3 digests" in ran.stdout, (
        ran.stdout
    )
    # without gmssl_pyx the verifier asks openssl, with the same answers
    no_gmssl = (
        "import runpy, sys; sys.modules['gmssl_pyx'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    ran = subprocess.run([sys.executable, "-c", no_gmssl, str(out / "verify_evidence.py"), str(out), str(public_pem)], capture_output=True, text=True)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr

    # one byte of the recording changed: sha256 and sm3 both say so, everywhere
    segment = out / "seg" / "0001.webm"
    data = bytearray(segment.read_bytes())
    data[100] ^= 1
    segment.write_bytes(bytes(data))
    ran = subprocess.run(
        [sys.executable, str(out / "verify_evidence.py"), str(out), str(public_pem)], capture_output=True, text=True
    )
    assert ran.returncode == 1 and "seg/0001.webm" in ran.stdout
    assert "seg/0001.webm: sha256 does not match the manifest" in evidence.verify_folder(out, key.public()).problems
    # the manifest itself changed: the SM2 signature fails in the hub, in the verifier, in openssl
    body = (folder / "manifest.json").read_bytes().replace(b'"signed"', b'"aborted"')
    (folder / "manifest.json").write_bytes(body)
    assert not openssl_verifies("sm2", public_pem, folder / "manifest.json", folder / "manifest.sig")
    assert "manifest.json: the signature does not verify" in evidence.verify_folder(folder, key.public()).first


def test_an_ed25519_manifest_from_before_still_verifies(tmp_path: Path):
    """Evidence sealed before 密评 (Ed25519, sha256, no hash_alg): verified as it was."""
    folder = tmp_path / "session"
    _session_folder(folder, "sha256")
    key = crypto.generate("ed25519")
    manifest = evidence.seal(folder, key, {"session": "s-0", "outcome": "signed"})
    assert manifest["key"]["algorithm"] == "Ed25519" and "alg" not in (folder / "events.jsonl").read_text()
    del manifest["hash_alg"], manifest["events"]["hash_alg"]  # as the hub wrote it then
    body = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    (folder / "manifest.json").write_bytes(body)
    (folder / "manifest.sig").write_bytes(key.sign(body))
    assert evidence.verify_folder(folder, key.public()).ok
    (tmp_path / "pub.pem").write_bytes(key.public().pem())
    ran = subprocess.run(
        [sys.executable, str(VERIFIER), str(folder), str(tmp_path / "pub.pem")], capture_output=True, text=True
    )
    assert ran.returncode == 0 and ran.stdout.startswith("OK: ed25519 signature"), ran.stdout


def test_a_new_evidence_key_takes_crypto_signature_and_an_old_one_keeps_sealing(hub, monkeypatch):
    monkeypatch.delenv("HUB_SIGNING_KEY_FILE", raising=False)
    hub.settings.crypto.signature = "sm2"
    key = signing_key(hub)
    path = hub.settings.signing_key_file.path
    assert key.algorithm == "sm2" and path.name == "signing-sm2.pem" and path.stat().st_mode & 0o777 == 0o600
    assert signing_key(hub).key_id == key.key_id  # made once
    # an old home: its Ed25519 key under the default name keeps sealing after the switch
    old = crypto.generate("ed25519")
    (hub.settings.home / "signing-ed25519.pem").write_bytes(old.pem())
    assert hub.settings.signing_key_file.path.name == "signing-ed25519.pem"
    assert signing_key(hub).key_id == old.key_id and signing_key(hub).algorithm == "ed25519"


# ---------------------------------------------------------------- partner messages


def test_an_sm2_sm3_partner_message_verifies_and_openssl_agrees(tmp_path: Path):
    key = crypto.generate("sm2")
    photo = os.urandom(2048)
    signed = envelope.seal(
        key,
        kind="supplement",
        sender="taishun",
        to="fuding",
        payload={"number": "330329-20261204-00001", "note": "补正材料"},
        now=datetime(2026, 12, 4, 8, 0, tzinfo=UTC),
        attachments=[
            envelope.Attachment(part="f0", sha256=crypto.hexdigest("sha256", photo), size=2048, media_type="image/jpeg")
        ],
        hash_alg="sm3",
        files={"f0": photo},
    )
    doc = json.loads(signed.body)
    assert (doc["sig_alg"], doc["hash_alg"]) == ("sm2", "sm3")
    assert list(doc)[-3:] == ["sig_alg", "hash_alg", "payload_digest"]
    canonical = json.dumps(doc["payload"], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    assert doc["payload_digest"] == sm3_by_openssl(canonical)
    assert doc["attachments"][0]["digest"] == sm3_by_openssl(photo)

    env = envelope.parse(signed.body)
    public = key.public()
    assert envelope.signature_ok(public, signed.body, signed.signature, env.signature_algorithm)
    assert envelope.digests_ok(env)
    sha = crypto.hexdigest("sha256", photo)
    assert envelope.attachment_ok(env, env.attachments[0], sha, crypto.hexdigest("sm3", photo))
    assert not envelope.attachment_ok(
        env, env.attachments[0], sha, crypto.hexdigest("sm3", photo[:-1] + bytes([photo[-1] ^ 1]))
    )  # always another byte
    assert not envelope.attachment_ok(env, env.attachments[0], sha)  # no sm3 digest taken: not enough
    # the message names SM2: an Ed25519 key, or one message claiming another algorithm, does not pass
    assert not envelope.signature_ok(crypto.generate("ed25519").public(), signed.body, signed.signature, "sm2")
    assert not envelope.signature_ok(public, signed.body, signed.signature, "ed25519")
    assert not envelope.signature_ok(public, signed.body.replace(b"fuding", b"fudinx"), signed.signature, "sm2")

    # openssl checks the same bytes: the protocol prefix and the body, SM2 with SM3 and the default id
    (tmp_path / "signed").write_bytes(envelope.SIGNED_PREFIX + signed.body)
    (tmp_path / "sig").write_bytes(base64.b64decode(signed.signature))
    (tmp_path / "pub.pem").write_bytes(public.pem())
    assert openssl_verifies("sm2", tmp_path / "pub.pem", tmp_path / "signed", tmp_path / "sig")

    # the message log: entries in sm3 after entries in sha256, one chain, both verifiable
    rows = []
    for alg in ("sha256", "sm3"):
        row = {"seq": len(rows) + 1, "at": "2026-12-04T08:00:00.000000Z", "direction": "out", "partner": "fuding",
               "message_id": env.id, "kind": env.kind, "signer": "taishun", "key_id": key.key_id, "verdict": "sent",
               "body_sha256": crypto.hexdigest("sha256", signed.body), "body_kept": True,
               "signature": signed.signature, "prev_hash": rows[-1]["hash"] if rows else GENESIS, "hash_alg": alg}  # fmt: skip
        fields = message_log._fields(row)
        row |= {"hash": message_log._entry_hash(fields), "body": signed.body.decode()}
        rows.append(row)
    assert rows[1]["hash"] == sm3_by_openssl(
        json.dumps(message_log._fields(rows[1]), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    )
    report = message_log.verify(rows, {"taishun": [(key.key_id, public)]}, last_seq=2)
    assert report.ok and report.signatures_checked == 2, report.problems
    rows[1]["hash_alg"] = "sha256"  # an sm3 entry passed off as sha256
    assert not message_log.verify(rows, {"taishun": [(key.key_id, public)]}).ok


def test_an_ed25519_message_is_byte_for_byte_the_first_protocol():
    """No agility field unless needed: hubs on the first protocol (extra fields refused) take it."""
    signed = envelope.seal(
        crypto.generate("ed25519"), kind="ping", sender="a", to="b", payload={}, now=datetime.now(UTC)
    )
    assert not {"sig_alg", "hash_alg", "payload_digest"} & set(json.loads(signed.body))
    assert set(envelope.parse(signed.body).model_dump(by_alias=True)) == {
        "protocol", "id", "kind", "from", "to", "sent_at", "key_id", "conversation", "ref", "payload_sha256",
        "payload", "attachments",
    }  # fmt: skip
