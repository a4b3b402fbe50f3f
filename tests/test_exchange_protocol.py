"""What 福鼎 (a real `hub serve` process, B) takes and refuses at POST /exchange/v1/messages:
messages are crafted here, as 泰顺 (A) would send them — the application payload and files built
by the sender's own code from a real application in A's database, sealed with A's key from A's
home — then altered one way at a time.

Every refusal is answered with a message signed by B, is kept in B's message log with its
verdict, and changes nothing else; a replay of the very bytes is refused, while a retry (same id
and payload, signed afresh) gets B's first answer again. A rotated key: the old one is taken until
its `valid_until` day (Beijing) ends, and refused after."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from hub import crypto
from hub.context import utcnow
from hub.exchange.catalogue import sync
from hub.exchange.envelope import PATH, SIGNATURE_HEADER, Envelope, Signed, parse, seal, signature_ok
from hub.exchange.send import _build, _read
from hub.partners import keys
from hub.storage.tables import Application, MessageLogEntry, PartnerInbox
from tests.support.partner_hubs import PG_URL, Pair, count, outbox_rows, partner_hubs, proxy_application, resident_id

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """B served; A's home, key and database only (the messages to B are made here)."""
    with partner_hubs(tmp_path_factory.mktemp("protocol"), serve_a=False) as pair:
        sync(pair.a.hub, pair.a.hub.partners.by_name["fuding"])  # A's desks may collect 福鼎's items
        assert pair.b.hub.engine.dialect.name == ("postgresql" if PG_URL else "sqlite")
        yield pair


@dataclass
class Outgoing:
    """An application message A owes B: what the sender would seal, and the files it carries."""

    number: str
    message_id: str
    payload: dict[str, Any]
    files: dict[str, tuple[bytes, str]]
    attachments: list

    def seal(self, key: Ed25519PrivateKey, *, at: datetime | None = None, **changes: Any) -> Signed:
        return seal(
            key,
            kind="application",
            sender="taishun",
            to="fuding",
            payload={**self.payload, **changes},
            now=at or utcnow(),
            message_id=self.message_id,
            conversation=self.number,
            attachments=self.attachments,
        )


_serial = iter(range(100, 1000))


def _outgoing(hubs: Pair) -> Outgoing:
    """A fresh application at A's bank desk for 福鼎, built as the sender builds it."""
    app = proxy_application(hubs.a.hub, resident_id("350982", date(1950, 5, 4), next(_serial)))
    (msg,) = outbox_rows(hubs.a.hub, app.number)
    partner = hubs.a.hub.partners.by_name["fuding"]
    with hubs.a.hub.sessions() as session:
        payload, attachments = _build(session, hubs.a.hub, partner, session.merge(msg))
    files = {a.part: (_read(hubs.a.hub, a.sha256), a.media_type) for a in attachments}
    return Outgoing(app.number, msg.message_id, payload, files, attachments)


def _a_key(hubs: Pair) -> Ed25519PrivateKey:
    """A's current key, read from its home now (a rotation replaces the file)."""
    return keys.load_key(hubs.a.hub.settings.exchange_key_file.path)


def _post(hubs: Pair, body: bytes, signature: str, files: dict[str, tuple[bytes, str]]) -> httpx.Response:
    parts = {"envelope": ("envelope.json", body, "application/json")}
    parts |= {name: (name, data, media_type) for name, (data, media_type) in files.items()}
    return httpx.post(
        hubs.b.url + PATH, headers={SIGNATURE_HEADER: signature}, files=parts, timeout=30, trust_env=False
    )


def _ping(hubs: Pair, key: Ed25519PrivateKey) -> tuple[httpx.Response, Signed]:
    signed = seal(key, kind="ping", sender="taishun", to="fuding", payload={}, now=utcnow())
    response = httpx.post(
        hubs.b.url + PATH,
        headers={SIGNATURE_HEADER: signed.signature, "content-type": "application/json"},
        content=signed.body,
        timeout=30,
        trust_env=False,
    )
    return response, signed


def _answer(hubs: Pair, response: httpx.Response, ref: str) -> Envelope:
    """B's answer: a protocol message from B to A about `ref`, signed with B's key."""
    answer = parse(response.content)
    (b_key,) = hubs.a.hub.partners.by_name["fuding"].spec.keys
    assert signature_ok(b_key.key, response.content, response.headers.get(SIGNATURE_HEADER)), "answer not signed by B"
    assert (answer.sender, answer.to, answer.ref, answer.key_id) == ("fuding", "taishun", ref, b_key.key_id)
    return answer


def _b_log(hubs: Pair, message_id: str, direction: str = "in") -> list[MessageLogEntry]:
    with hubs.b.hub.sessions() as session:
        return list(
            session.scalars(
                select(MessageLogEntry)
                .where(MessageLogEntry.message_id == message_id, MessageLogEntry.direction == direction)
                .order_by(MessageLogEntry.seq)
            )
        )


def _b_counts(hubs: Pair) -> tuple[int, int]:
    return count(hubs.b.hub, Application), count(hubs.b.hub, PartnerInbox)


def _tampered(out: Outgoing, hubs: Pair) -> tuple[bytes, str]:
    signed = out.seal(_a_key(hubs))
    phone = b'"contact_phone":"13800000000"'
    assert signed.body.count(phone) == 1
    return signed.body.replace(phone, b'"contact_phone":"13800000009"'), signed.signature  # a byte flipped


def _wrong_key(out: Outgoing, hubs: Pair) -> tuple[bytes, str]:
    signed = out.seal(Ed25519PrivateKey.generate())  # a key B does not hold for A
    return signed.body, signed.signature


def _expired(out: Outgoing, hubs: Pair) -> tuple[bytes, str]:
    signed = out.seal(_a_key(hubs), at=utcnow() - timedelta(hours=1))
    return signed.body, signed.signature


def _not_accepted(out: Outgoing, hubs: Pair) -> tuple[bytes, str]:
    signed = out.seal(_a_key(hubs), item="GG00201000", mode="online")  # B takes it as proxy or joint only
    return signed.body, signed.signature


@pytest.mark.parametrize(
    ("make", "code", "status"),
    [
        (_tampered, "bad_signature", 403),
        (_wrong_key, "unknown_key", 403),
        (_expired, "expired", 403),
        (_not_accepted, "item_not_accepted", 422),
    ],
    ids=["tampered", "wrong-key", "expired", "not-accepted"],
)
def test_a_refused_message_is_answered_signed_logged_and_changes_nothing(hubs: Pair, make, code: str, status: int):
    out = _outgoing(hubs)
    before = _b_counts(hubs)
    body, signature = make(out, hubs)
    response = _post(hubs, body, signature, out.files)
    assert response.status_code == status, response.text
    answer = _answer(hubs, response, out.message_id)
    assert answer.kind == "refusal" and answer.payload["code"] == code, answer.payload
    assert answer.payload["zh"] and answer.payload["en"]
    (entry,) = _b_log(hubs, out.message_id)
    assert entry.verdict == f"refused:{code}" and entry.body.encode("utf-8") == body
    (logged,) = _b_log(hubs, answer.id, "out")  # B's signed answer, as sent
    assert logged.verdict == "answer:refusal" and logged.body.encode("utf-8") == response.content
    assert _b_counts(hubs) == before  # no application, nothing taken
    assert hubs.applications_from_a(out.number) == []


def test_replayed_bytes_are_refused_and_a_retry_signed_afresh_gets_the_first_answer(hubs: Pair):
    out = _outgoing(hubs)
    signed = out.seal(_a_key(hubs))
    first = _post(hubs, signed.body, signed.signature, out.files)
    assert first.status_code == 200, first.text
    taken = _answer(hubs, first, out.message_id)
    assert taken.kind == "ack" and taken.payload["result"] == "accepted"
    (theirs,) = hubs.applications_from_a(out.number)
    assert taken.payload["number"] == theirs.number
    after_first = _b_counts(hubs)

    replay = _post(hubs, signed.body, signed.signature, out.files)  # the very same bytes and signature
    assert replay.status_code == 409, replay.text
    refused = _answer(hubs, replay, out.message_id)
    assert refused.kind == "refusal" and refused.payload["code"] == "replay"
    assert _b_counts(hubs) == after_first

    retry = out.seal(_a_key(hubs))  # the sender after a lost answer: same id and payload, new sent_at
    assert retry.body != signed.body and retry.envelope.payload_sha256 == signed.envelope.payload_sha256
    again = _post(hubs, retry.body, retry.signature, out.files)
    assert again.status_code == 200, again.text
    assert again.content == first.content and again.headers[SIGNATURE_HEADER] == first.headers[SIGNATURE_HEADER]
    assert _b_counts(hubs) == after_first and len(hubs.applications_from_a(out.number)) == 1
    assert [e.verdict for e in _b_log(hubs, out.message_id)] == ["accepted", "refused:replay", "duplicate"]


def test_refusals_leave_the_log_verifiable(hubs: Pair):
    """Refused messages are kept as evidence (unsigned or unknown-key ones unverified); the log
    still verifies end to end on B."""
    out = _outgoing(hubs)
    for make in (_tampered, _wrong_key):
        body, signature = make(out, hubs)
        assert _post(hubs, body, signature, out.files).status_code == 403
    checked = hubs.b.cli("partners", "verify-log")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "refused unsigned/unknown" in checked.stdout


def _write_a_keys(hubs: Pair, listed: list[dict[str, Any]]) -> None:
    doc = hubs.b.read_partner("taishun")
    doc["keys"] = listed
    hubs.b.write_partner("taishun", doc)
    hubs.b.server.restart()  # B reads partner files when it starts


def _listed(key: Ed25519PrivateKey, valid_until=None) -> dict[str, Any]:
    entry = {"id": keys.public_key_id(key), "public_key": keys.public_b64(key)}
    return entry | ({"valid_until": valid_until.isoformat()} if valid_until else {})


def test_a_rotated_key_is_taken_until_its_last_day_and_refused_after(hubs: Pair):
    old = _a_key(hubs)
    rotated = hubs.a.cli("partners", "keygen", "--rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new = _a_key(hubs)
    assert keys.public_key_id(new) != keys.public_key_id(old)
    assert list(Path(hubs.a.hub.settings.exchange_key_file.path).parent.glob("*.retired-*"))  # the old one kept
    original = hubs.b.read_partner("taishun")
    try:
        today = datetime.now(BEIJING).date()
        _write_a_keys(hubs, [_listed(new), _listed(old, today - timedelta(days=1))])
        response, signed = _ping(hubs, old)
        assert response.status_code == 403, response.text
        answer = _answer(hubs, response, signed.envelope.id)
        assert (answer.kind, answer.payload["code"]) == ("refusal", "key_expired")
        assert [e.verdict for e in _b_log(hubs, signed.envelope.id)] == ["refused:key_expired"]
        response, signed = _ping(hubs, new)
        assert response.status_code == 200 and _answer(hubs, response, signed.envelope.id).payload == {"result": "pong"}

        _write_a_keys(hubs, [_listed(new), _listed(old, today)])
        response, signed = _ping(hubs, old)
        assert response.status_code == 200, response.text
        assert _answer(hubs, response, signed.envelope.id).payload == {"result": "pong"}
        assert [e.verdict for e in _b_log(hubs, signed.envelope.id)] == ["answered"]
        # B's log holds messages signed with both of A's keys: verified with each
        checked = hubs.b.cli("partners", "verify-log")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # and A's, what A signed before the rotation: verified with the retired key kept beside
        checked = hubs.a.cli("partners", "verify-log")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:  # B keeps taking A's messages, whichever key signs them
        _write_a_keys(hubs, [_listed(new), *original["keys"]])


def test_an_sm2_sm3_message_is_taken_and_its_log_verifies(hubs: Pair):
    """密评: A signs with an SM2 key and digests in SM3 too (`sig_alg`, `hash_alg`, every
    attachment's `digest`); B, configured with that key, takes the application and its files,
    and B's message log verifies offline. A tampered attachment is refused."""
    sm2 = crypto.generate("sm2")
    original = hubs.b.read_partner("taishun")
    try:
        _write_a_keys(hubs, [_listed(sm2), *original["keys"]])
        out = _outgoing(hubs)
        assert out.files, "the application carries files"
        files = {part: data for part, (data, _) in out.files.items()}

        def signed_with(files_sent: dict[str, bytes]) -> Signed:
            return seal(
                sm2, kind="application", sender="taishun", to="fuding", payload=out.payload, now=utcnow(),
                message_id=out.message_id, conversation=out.number, attachments=out.attachments,
                hash_alg="sm3", files=files_sent,
            )  # fmt: skip

        part = next(iter(files))
        wrong = signed_with({**files, part: files[part] + b"\x00"})  # its sm3 names other bytes
        response = _post(hubs, wrong.body, wrong.signature, out.files)
        assert (
            response.status_code == 400
            and _answer(hubs, response, wrong.envelope.id).payload["code"] == "bad_attachment"
        )

        signed = signed_with(files)
        assert (signed.envelope.sig_alg, signed.envelope.hash_alg) == ("sm2", "sm3")
        response = _post(hubs, signed.body, signed.signature, out.files)
        assert response.status_code == 200, response.text
        assert _answer(hubs, response, signed.envelope.id).payload["result"] == "accepted"
        checked = hubs.b.cli("partners", "verify-log")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        _write_a_keys(hubs, original["keys"])
