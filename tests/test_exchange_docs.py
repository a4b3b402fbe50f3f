"""docs/cross-region.md stays true: the worked example's bodies, keys, key ids, payload hashes,
signature input lengths and signatures are taken from the page as printed and checked on their
own (the standard library and `cryptography`, not the hub's helpers), the page's code sealing
them makes the same bytes, and the refusal table, the list of kinds, the retired key's file name
and an export's closing line are the code's."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.exchange import envelope, log
from hub.exchange.receive import HTTP_STATUS
from hub.partners import keys
from hub.partners.keys import parse_public_key, public_key_id

DOC = Path(__file__).resolve().parent.parent / "docs" / "cross-region.md"
PREFIX = b"tongban-exchange/1\n"


def page() -> str:
    return DOC.read_text(encoding="utf-8")


def example(name: str) -> str:
    """The fenced block right after `<!-- example: NAME -->`, as printed."""
    found = re.search(rf"<!-- example: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```\n", page(), re.DOTALL)
    assert found is not None, f"no example block {name!r} in {DOC.name}"
    return found.group(1)


def lines(name: str) -> dict[str, str]:
    """`key: value` lines of a block."""
    return dict(line.split(": ", 1) for line in example(name).splitlines() if ": " in line)


def canonical_json(value) -> str:  # written out here, not hub.hashchain's, so both are checked
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


MESSAGES = [  # (body block, canonical block, key block, HTTP block)
    ("withdraw-body", "withdraw-canonical", "taishun-key", "withdraw-request"),
    ("ack-body", "ack-canonical", "fuding-key", "ack-response"),
]


@pytest.mark.parametrize(("body_block", "canonical_block", "key_block", "http_block"), MESSAGES)
def test_the_printed_message_verifies_with_the_printed_key(body_block, canonical_block, key_block, http_block):
    body = example(body_block).encode("utf-8")
    doc = json.loads(body)
    key_lines, http = lines(key_block), lines(http_block)
    der = base64.b64decode(key_lines["public_key"], validate=True)
    public = serialization.load_der_public_key(der)
    assert isinstance(public, Ed25519PublicKey)

    # key_id: sha256 of the DER SubjectPublicKeyInfo, as printed, named by the body, as the hub computes it
    assert hashlib.sha256(der).hexdigest() == key_lines["id"] == doc["key_id"]
    assert public_key_id(parse_public_key(key_lines["public_key"])) == key_lines["id"]

    # the signature: Ed25519 over the prefix and the body bytes exactly as printed
    signature = http["Tongban-Signature"]
    public.verify(base64.b64decode(signature, validate=True), PREFIX + body)  # raises if it does not verify
    assert envelope.signature_ok(public, body, signature)
    assert not envelope.signature_ok(public, body.replace(b'"to":"', b'"to":"x'), signature)
    assert len(PREFIX) == 19
    assert f"{len(body)} body bytes: **{len(PREFIX) + len(body)} bytes**" in page()

    # payload_sha256: sha256 of the payload's canonical JSON, which the page prints
    assert canonical_json(doc["payload"]) == example(canonical_block)
    assert hashlib.sha256(example(canonical_block).encode("utf-8")).hexdigest() == doc["payload_sha256"]
    assert envelope.payload_digest(doc["payload"]) == doc["payload_sha256"]

    # the fields, in the order and formats the page's table gives
    assert list(doc) == [
        "protocol", "id", "kind", "from", "to", "sent_at", "key_id",
        "conversation", "ref", "payload_sha256", "payload", "attachments",
    ]  # fmt: skip
    assert doc["protocol"] == "tongban-exchange/1"
    assert uuid.UUID(doc["id"]).version == 4 and str(uuid.UUID(doc["id"])) == doc["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["sent_at"])
    assert datetime.strptime(doc["sent_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert envelope.parse(body).model_dump(by_alias=True) == doc  # the receiver's own reading
    assert "\\u" not in example(body_block)  # UTF-8 as is, not escaped
    assert b" " not in body  # no spaces between tokens


def test_the_prose_gives_the_bodys_length():
    body = example("withdraw-body").encode("utf-8")
    assert f"one line, {len(body)}\nbytes: {len(body.decode())} characters" in page()


def test_the_ack_answers_the_withdraw_message():
    message, ack = json.loads(example("withdraw-body")), json.loads(example("ack-body"))
    assert ack["kind"] == "ack" and ack["ref"] == message["id"]
    assert (ack["from"], ack["to"]) == (message["to"], message["from"])
    assert ack["conversation"] is None and ack["payload"]["result"] == "accepted"
    assert message["conversation"] == message["payload"]["number"]  # the collecting hub's number


def test_the_pages_code_seals_the_printed_bytes():
    """The page's snippet, run as printed, makes the printed body and signature; so does the ack
    sealed the same way with 福鼎's published key (the wire format cannot change unnoticed)."""
    text = page()
    snippet = re.search(r"```python\n(.*?)```", text.split("### 2.4", 1)[1], re.DOTALL).group(1)
    scope: dict = {}
    exec(compile(snippet, str(DOC), "exec"), scope)  # the page's own example, run as printed
    made: envelope.Signed = scope["message"]
    assert made.body == example("withdraw-body").encode("utf-8")
    assert made.signature == lines("withdraw-request")["Tongban-Signature"]

    assert 'sha256("tongban-exchange/1 example key NAME")' in text
    ack = json.loads(example("ack-body"))
    seed = hashlib.sha256(b"tongban-exchange/1 example key fuding").digest()
    again = envelope.seal(
        Ed25519PrivateKey.from_private_bytes(seed),
        kind=ack["kind"],
        sender=ack["from"],
        to=ack["to"],
        payload=ack["payload"],
        now=envelope.Envelope.model_validate(ack).sent(),
        message_id=ack["id"],
        ref=ack["ref"],
    )
    assert again.body == example("ack-body").encode("utf-8")
    assert again.signature == lines("ack-response")["Tongban-Signature"]


def test_the_refusal_table_is_the_codes():
    rows = [line for line in example_table("refusal-codes") if line.startswith("| `")]
    table = {}
    for row in rows:
        code, status, retry = (cell.strip() for cell in row.strip("|").split("|")[:3])
        table[code.strip("`")] = (int(status), retry)
    assert table == {
        code: (status, "retry" if code in envelope.RETRYABLE else "final") for code, status in HTTP_STATUS.items()
    }


def example_table(name: str) -> list[str]:
    after = page().split(f"<!-- example: {name} -->\n", 1)[1]
    return after.split("\n\n", 1)[0].splitlines()


def test_the_kinds_are_the_codes():
    row = next(line for line in page().splitlines() if line.startswith("| `kind` |"))
    assert re.findall(r"`([a-z_]+)`", row.split("|")[3]) == list(envelope.KINDS)
    for kind in envelope.KINDS:
        assert f"**`{kind}`**" in page(), f"no payload description for {kind}"


def test_the_key_rotation_and_log_end_are_the_codes(tmp_path):
    """§4's rotation names the file `keygen --rotate` leaves and says what `unknown_key` does;
    §5.7 names the line an export ends with."""
    path = tmp_path / "exchange-ed25519.pem"
    now = datetime(2026, 12, 4, 8, 30)
    old, _ = keys.generate(path, rotate=False, now=now)
    _, retired = keys.generate(path, rotate=True, now=now)
    key_id = public_key_id(old.public_key())
    assert retired is not None and retired.name == f"exchange-ed25519.pem.retired-20261204-{key_id[:8]}.pub"
    assert "`exchange-ed25519.pem.retired-YYYYMMDD-KEYID8.pub`" in page()
    assert [public_key_id(k) for k in keys.retired_public_keys(path)] == [key_id]  # only the public half
    assert "PRIVATE" not in retired.read_text(encoding="ascii")

    rotation = page().split("**Key rotation.**", 1)[1].split("\n\n", 1)[0]
    assert "unknown_key" in envelope.RETRYABLE and "`unknown_key`, which\nis retryable" in rotation
    assert f'`{{"{log.TRAILER}": N}}`' in page()
