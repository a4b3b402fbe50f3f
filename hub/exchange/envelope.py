"""The exchange's messages, byte for byte (docs/cross-region.md is the reference).

A message is a JSON object sent as UTF-8 bytes, exactly as signed:

    {"protocol": "tongban-exchange/1", "id": UUID, "kind": KIND, "from": HUB_ID, "to": HUB_ID,
     "sent_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "key_id": HEX64, "conversation": STR|null,
     "ref": UUID|null, "payload_sha256": HEX64, "payload": {...},
     "attachments": [{"part": "f0", "sha256": HEX64, "size": N, "media_type": STR}, ...]}

The signature is Ed25519 over `b"tongban-exchange/1\\n" + body`, sent base64 in the header
`Tongban-Signature`. `payload_sha256` is the sha256 of the payload's canonical JSON (sorted keys,
no spaces, UTF-8): a retry keeps `id` and payload but is signed afresh with a new `sent_at`, and
the receiver tells a retry (same id, same payload) from a conflict (same id, other payload) by
it. Attachments travel as further parts of a multipart/form-data body, each named `part`; their
sha256 and size are covered by the signature through this list.

Cryptographic agility (密评, docs/cryptography.md): the signature is in the algorithm of the
signer's key (Ed25519, SM2 with SM3 and the default id, ECDSA P-256 or RSA over SHA-256; the
receiver reads it from the key it holds for `key_id`). A message signed otherwise than Ed25519
names it in `sig_alg`, and one whose digests are also taken in SM3 says `hash_alg: "sm3"` and
carries `payload_digest` (the payload's canonical JSON in SM3) and each attachment's `digest`.
`payload_sha256` and the attachments' `sha256` stay: they are the protocol's identities (retry
vs conflict) and the content store's addresses. Both fields come after `attachments` and only
when not the default, so an Ed25519/SHA-256 message is byte for byte what hubs on the first
protocol send and take: absent means Ed25519 and sha256."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer

from hub import crypto
from hub.hashchain import canonical

PROTOCOL = "tongban-exchange/1"
SIGNED_PREFIX = b"tongban-exchange/1\n"
SIGNATURE_HEADER = "Tongban-Signature"
PATH = "/exchange/v1/messages"
KINDS = (
    "application",  # an application collected for the receiver (异地代收代办 / 多地联办)
    "status",  # where the receiver's case stands now: its events, states, due date
    "result",  # a result document (attached)
    "withdraw",  # the applicant withdrew at the collecting desk
    "supplement",  # 补正 collected at the collecting desk (attached)
    "catalogue_request",  # send me the item list you accept from me
    "catalogue",  # the answer: the cross-region item list (跨域通办目录清单)
    "ping",  # `hub partners check`: are you there, do our keys agree
    "ack",  # taken; a retry of a message taken before gets this same answer again, byte for byte
    "refusal",  # not taken, and why
)


def _drop_absent(out: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """The agility fields are left out when absent, as the first protocol has no such fields."""
    return {k: v for k, v in out.items() if not (k in optional and v is None)}


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part: str = Field(pattern=r"^f[0-9]{1,4}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    media_type: str = Field(max_length=100)
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # in the envelope's hash_alg (not sha256)

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: Any) -> dict[str, Any]:
        return _drop_absent(handler(self), ("digest",))


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    protocol: str
    id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    kind: str
    sender: str = Field(alias="from", max_length=64)
    to: str = Field(max_length=64)
    sent_at: str
    key_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    conversation: str | None = Field(default=None, max_length=64)
    ref: str | None = Field(default=None, max_length=36)
    payload_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    payload: dict[str, Any]
    attachments: list[Attachment] = Field(default_factory=list, max_length=200)
    sig_alg: str | None = Field(default=None, max_length=16)  # absent: ed25519
    hash_alg: str | None = Field(default=None, max_length=16)  # absent: sha256 only
    payload_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # with hash_alg

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: Any) -> dict[str, Any]:
        return _drop_absent(handler(self), ("sig_alg", "hash_alg", "payload_digest"))

    @property
    def signature_algorithm(self) -> str:
        return self.sig_alg or "ed25519"

    def sent(self) -> datetime:
        return datetime.strptime(self.sent_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def payload_digest(payload: dict[str, Any], algorithm: str = "sha256") -> str:
    return crypto.hexdigest(algorithm, canonical(payload).encode("utf-8"))


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Signed:
    """A message as it goes on the wire: the body bytes and their signature (base64)."""

    body: bytes
    signature: str
    envelope: Envelope

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def seal(
    key: object,
    *,
    kind: str,
    sender: str,
    to: str,
    payload: dict[str, Any],
    now: datetime,
    message_id: str | None = None,
    conversation: str | None = None,
    ref: str | None = None,
    attachments: list[Attachment] | None = None,
    hash_alg: str = "sha256",
    files: dict[str, bytes] | None = None,
) -> Signed:
    """Sign a message with `key` (a hub.crypto key, or a pyca/cryptography one). `hash_alg`:
    `crypto.hash`; other than sha256, the payload and the attachments (`files`: part -> bytes)
    are digested in it too."""
    key = crypto.signing_key_of(key)
    listed = [a.model_copy() for a in attachments or []]
    if hash_alg != "sha256":
        for a in listed:
            if files is None or a.part not in files:
                raise ValueError(f"attachment {a.part}: its bytes are needed for its {hash_alg} digest")
            a.digest = crypto.hexdigest(hash_alg, files[a.part])
    doc = {
        "protocol": PROTOCOL,
        "id": message_id or str(uuid.uuid4()),
        "kind": kind,
        "from": sender,
        "to": to,
        "sent_at": timestamp(now),
        "key_id": key.key_id,
        "conversation": conversation,
        "ref": ref,
        "payload_sha256": payload_digest(payload),
        "payload": payload,
        "attachments": [a.model_dump(exclude_none=True) for a in listed],
    }
    if key.algorithm != "ed25519":
        doc["sig_alg"] = key.algorithm
    if hash_alg != "sha256":
        doc |= {"hash_alg": hash_alg, "payload_digest": payload_digest(payload, hash_alg)}
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    signature = base64.b64encode(key.sign(SIGNED_PREFIX + body)).decode("ascii")
    return Signed(body, signature, Envelope.model_validate(doc))


class Refused(Exception):
    """A message we do not take, with the code the refusal carries (docs/cross-region.md)."""

    def __init__(self, code: str, zh: str, en: str, *, fields: list[dict[str, str]] | None = None):
        super().__init__(f"{code}: {zh} ({en})")
        self.code, self.zh, self.en, self.fields = code, zh, en, fields or []

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "zh": self.zh, "en": self.en}
        if self.fields:
            out["fields"] = self.fields
        return out


# refusals a later try can cure (clocks apart, the receiver busy); any other is final
# (`unknown_key`: after we rotated, the partner lists our new key when its operator gets to it)
RETRYABLE = frozenset({"expired", "clock_skew", "unavailable", "unknown_key"})


def parse(body: bytes) -> Envelope:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused("malformed", "报文不是UTF-8 JSON", "the body is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise Refused("malformed", "报文应为JSON对象", "the body must be a JSON object")
    try:
        env = Envelope.model_validate(doc)
        env.sent()
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_url=False)[:5])
        raise Refused(
            "malformed", f"报文字段不符合协议: {where}", f"fields do not follow the protocol: {where}"
        ) from None
    except ValueError:
        raise Refused("malformed", "sent_at 格式错误", "sent_at is not YYYY-MM-DDTHH:MM:SS.ffffffZ") from None
    if env.protocol != PROTOCOL:
        raise Refused("malformed", f"不支持的协议版本 {env.protocol}", f"unsupported protocol {env.protocol}")
    if env.kind not in KINDS:
        raise Refused("malformed", f"未知报文类型 {env.kind}", f"unknown kind {env.kind}")
    if env.sig_alg is not None and env.sig_alg not in crypto.SIGNATURE_ALGORITHMS:
        raise Refused("malformed", f"未知签名算法 {env.sig_alg}", f"unknown sig_alg {env.sig_alg}")
    if env.hash_alg is not None:
        if env.hash_alg not in crypto.HASH_ALGORITHMS or env.hash_alg == "sha256":
            raise Refused("malformed", f"未知摘要算法 {env.hash_alg}", f"unknown hash_alg {env.hash_alg}")
        if env.payload_digest is None or any(a.digest is None for a in env.attachments):
            raise Refused("malformed", "缺少 payload_digest 或附件 digest", "hash_alg without payload_digest/digest")
    elif env.payload_digest is not None or any(a.digest is not None for a in env.attachments):
        raise Refused("malformed", "payload_digest/digest 须与 hash_alg 同时给出", "digest without hash_alg")
    return env


def digests_ok(env: Envelope) -> bool:
    """The payload's digests (sha256, and the envelope's hash_alg's) match it."""
    if payload_digest(env.payload) != env.payload_sha256:
        return False
    return env.hash_alg is None or payload_digest(env.payload, env.hash_alg) == env.payload_digest


def attachment_ok(env: Envelope, a: Attachment, sha256: str, digest: str | None = None) -> bool:
    """An attachment's bytes, by their sha256 and (when the envelope has a hash_alg) their
    `digest` in it, are the ones its entry lists."""
    if sha256 != a.sha256:
        return False
    return env.hash_alg is None or (digest is not None and digest == a.digest)


def signature_ok(key: object, body: bytes, signature: str | None, sig_alg: str | None = None) -> bool:
    """`signature` (base64) is `key`'s over the prefixed body, in the key's algorithm — which must
    be the one the message names (`sig_alg`, Ed25519 when absent; None: do not compare)."""
    if not signature:
        return False
    try:
        verify_key = crypto.verify_key_of(key)
        raw = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return False
    if sig_alg is not None and verify_key.algorithm != sig_alg:
        return False
    return verify_key.verify(raw, SIGNED_PREFIX + body)


def check_time(env: Envelope, now: datetime, skew_seconds: int) -> None:
    sent = env.sent()
    if sent < now - timedelta(seconds=skew_seconds):
        raise Refused(
            "expired",
            f"报文已过期（发送于 {env.sent_at}，允许偏差 {skew_seconds} 秒）",
            f"the message is older than {skew_seconds} s",
        )
    if sent > now + timedelta(seconds=skew_seconds):
        raise Refused(
            "clock_skew",
            f"报文时间在未来（{env.sent_at}），请检查双方时钟",
            "sent_at is in the future: check both clocks",
        )
