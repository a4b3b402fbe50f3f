"""RFC 3161 timestamps of sealed evidence: a timestamp authority (TSA) signs that the manifest's
signature existed at a time, so the seal can be shown to predate any later doubt about the key.

The request and the reply are DER, built and read with asn1crypto's `tsp` module (the ASN.1
definitions of RFC 3161 and CMS; well kept, pure Python, already what `cryptography`-based tools
use) rather than by hand. A reply is kept only if the TSA granted it AND its TSTInfo time-stamps
what was asked: the SHA-256 digest sent and the nonce sent. Otherwise a stale, replayed or
misdirected token would sit beside the evidence looking like proof. The TSA's own CMS signature
is checked with the TSA's CA, which the hub does not hold: `openssl ts -verify -data manifest.sig
-in manifest.tsr -CAfile <the TSA's CA>` (docs/signing.md)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import ClassVar

import httpx
from asn1crypto import cms, core, tsp

from hub.signing import write_synced
from video.evidence import SIGNATURE, TIMESTAMP

GRANTED = {"granted", "granted_with_mods"}  # PKIStatus 0 and 1 (RFC 3161 §2.4.2)


class TimeStampResp(core.Sequence):
    """RFC 3161 §2.4.2's TimeStampResp. asn1crypto's `tsp.TimeStampResp` declares the token
    required, so a refusal (which carries none) cannot be read with it; the RFC makes it
    OPTIONAL. The parts are asn1crypto's own."""

    _fields: ClassVar[list] = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


class TimestampRefused(ValueError):
    """The TSA refused, or its reply is not a timestamp of what was asked: nothing kept."""


def request(digest: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq (RFC 3161 §2.4.1) for a SHA-256 digest, asking for the TSA's certificate."""
    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()


def check_reply(reply: bytes, digest: bytes, nonce: int) -> tsp.TSTInfo:
    """The TSTInfo of a granted TimeStampResp that time-stamps `digest` (SHA-256) with `nonce`;
    TimestampRefused naming what is wrong otherwise."""
    try:
        resp = TimeStampResp.load(reply, strict=True)
        status = resp["status"]["status"].native
        text = resp["status"]["status_string"].native
    except (ValueError, TypeError) as exc:
        raise TimestampRefused(f"not a TimeStampResp ({exc})") from None
    if status not in GRANTED:
        raise TimestampRefused(f"the timestamp authority refused ({status}{': ' + '; '.join(text) if text else ''})")
    try:
        token = resp["time_stamp_token"]
        if isinstance(token, core.Void):
            raise TimestampRefused("the timestamp authority granted, but sent no token")
        if token["content_type"].native != "signed_data":
            raise TimestampRefused(f"the token is {token['content_type'].native}, not signed data")
        encap = token["content"]["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampRefused(f"the token holds {encap['content_type'].native}, not a TSTInfo")
        info: tsp.TSTInfo = encap["content"].parsed
        imprint = info["message_imprint"]
        algorithm, hashed = imprint["hash_algorithm"]["algorithm"].native, imprint["hashed_message"].native
        got_nonce = info["nonce"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampRefused(f"the token cannot be read ({exc})") from None
    if algorithm != "sha256" or hashed != digest:
        raise TimestampRefused(f"the token time-stamps another digest ({algorithm} {hashed.hex()[:16]}…)")
    if got_nonce != nonce:  # RFC 3161 §2.4.2: the reply MUST carry the request's nonce
        raise TimestampRefused("the token does not carry the nonce sent (a replayed or misdirected reply)")
    return info


def timestamp(folder: Path, url: str) -> Path:
    """Have the TSA at `url` time-stamp the manifest's signature; its reply is kept as
    manifest.tsr once it checks out."""
    digest = hashlib.sha256((folder / SIGNATURE).read_bytes()).digest()
    nonce = secrets.randbits(63)
    reply = httpx.post(
        url,
        content=request(digest, nonce),
        headers={"content-type": "application/timestamp-query"},
        timeout=15,
        trust_env=False,
    )
    reply.raise_for_status()
    check_reply(reply.content, digest, nonce)
    write_synced(folder / TIMESTAMP, reply.content)
    return folder / TIMESTAMP
