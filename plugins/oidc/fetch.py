"""Bounded HTTP to an identity provider: every request has a time limit, every answer a size
limit, no redirects are followed, and answers are JSON objects or refused."""

from __future__ import annotations

import json
from typing import Any

import httpx

from hub.identity import IdentityRefused


def _unavailable(what: str) -> IdentityRefused:
    return IdentityRefused(
        "provider", "身份认证服务暂时无法访问，请稍后再试", f"the identity service did not answer ({what})"
    )


def json_of(client: httpx.Client, method: str, url: str, *, max_bytes: int, what: str, **kw: Any) -> dict[str, Any]:
    """The JSON object `url` answers, read to at most `max_bytes`; IdentityRefused otherwise. The
    answer's body is never put in the message (it may hold a token)."""
    try:
        with client.stream(method, url, **kw) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise IdentityRefused("provider", "身份认证服务的应答过大", f"the {what} answer is too large")
            status = response.status_code
    except httpx.HTTPError as exc:
        raise _unavailable(f"{what}: {type(exc).__name__}") from None
    if status >= 400:
        # the token endpoint says invalid_grant for a used or wrong code: the resident starts again
        raise IdentityRefused(
            "code", "登录已失效，请重新登录", f"the identity service refused the {what} request ({status})"
        )
    try:
        data = json.loads(bytes(body))
    except ValueError:
        raise IdentityRefused("provider", "身份认证服务的应答无法识别", f"the {what} answer is not JSON") from None
    if not isinstance(data, dict):
        raise IdentityRefused("provider", "身份认证服务的应答无法识别", f"the {what} answer is not an object")
    return data
