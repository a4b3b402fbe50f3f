"""The HTTP side of sending to a partner: one client per partner with its TLS trust (the
partner authority's CA file, or its server certificate pinned as the only one trusted), no
proxies from the environment, no redirects, and every answer bounded in size and time."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import httpx

from hub.context import Hub
from hub.errors import HubError
from hub.exchange.envelope import PATH, SIGNATURE_HEADER, Signed
from hub.partners import Partner


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    signature: str | None


class NoAnswer(Exception):
    """The partner did not answer (down, unreachable, too slow, answer too large)."""


def client_for(hub: Hub, partner: Partner) -> httpx.Client:
    tls = partner.spec.tls
    verify: ssl.SSLContext | bool = True
    anchor = tls.ca_file or tls.pinned_certificate
    if anchor:
        path = hub.settings.path(anchor)
        if not path.is_file():
            raise HubError(f"{partner.file}: TLS 证书文件 {anchor} 不存在 (TLS trust file missing)")
        verify = ssl.create_default_context(cafile=str(path))
        if tls.pinned_certificate:
            # the pinned certificate is the trust anchor itself, self-signed or issued by a CA we
            # do not otherwise trust: OpenSSL's partial-chain mode accepts a chain ending there
            verify.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    limits = partner.spec.limits
    return httpx.Client(
        base_url=partner.spec.url,
        verify=verify,
        timeout=httpx.Timeout(limits.timeout_seconds),
        follow_redirects=False,
        trust_env=False,  # never through a proxy the environment names: partner traffic goes direct
        limits=httpx.Limits(max_connections=limits.concurrency, max_keepalive_connections=limits.concurrency),
    )


def post(
    client: httpx.Client,
    partner: Partner,
    message: Signed,
    files: dict[str, tuple[bytes, str]],
    *,
    total_seconds: float | None = None,
) -> Reply:
    """Send one message (with its files as multipart parts) and read the answer, within the
    partner's time limit for the whole exchange (or `total_seconds`, when a caller such as intake
    waits on it) and its answer size limit."""
    limits = partner.spec.limits
    headers = {SIGNATURE_HEADER: message.signature}
    if files:
        parts = {"envelope": ("envelope.json", message.body, "application/json")}
        parts |= {name: (name, data, media_type) for name, (data, media_type) in files.items()}
        request = client.build_request("POST", PATH, headers=headers, files=parts)
    else:
        request = client.build_request(
            "POST", PATH, headers=headers | {"content-type": "application/json"}, content=message.body
        )
    deadline = time.monotonic() + (total_seconds or limits.timeout_seconds * 2)  # connect + send, then the answer
    try:
        response = client.send(request, stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limits.max_answer_bytes:
                    raise NoAnswer(f"answer larger than {limits.max_answer_bytes} bytes")
                if time.monotonic() > deadline:
                    raise NoAnswer("answer too slow")
                chunks.append(chunk)
        finally:
            response.close()
    except httpx.HTTPError as exc:
        raise NoAnswer(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return Reply(response.status_code, b"".join(chunks), response.headers.get(SIGNATURE_HEADER))
