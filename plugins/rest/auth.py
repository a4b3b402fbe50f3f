"""How a `rest` connection authenticates each request: bearer token, API key (header or query),
HMAC signature, OAuth 2.0 client credentials (token cached, fetched again before it expires or
after a 401). Mutual TLS is the client certificate of the HTTP client (connector.py)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from hub import mapping
from hub.connectors import DeliveryError
from plugins.rest.signing import sign
from plugins.rest.spec import Auth, HmacKey, OAuth2

EXPIRY_MARGIN_SECONDS = 30  # a token is fetched again this long before it expires


MASK = "***"


class Authenticator:
    def apply(self, request: httpx.Request) -> None:
        """Add the credentials to a request about to be sent."""

    def shown(self, request: httpx.Request) -> None:
        """Add where the credentials would go, their values masked (`hub connectors render`: no
        token is fetched, nothing is signed)."""

    def refused(self) -> bool:
        """The API answered 401: True when a fresh credential is worth one more try."""
        return False


class Bearer(Authenticator):
    def __init__(self, token: str):
        self._value = f"Bearer {token}"

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = self._value

    def shown(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {MASK}"


class ApiKeys(Authenticator):
    """One API key or several (an AppKey + AppSecret pair), in headers and/or query parameters."""

    def __init__(self, headers: dict[str, str], query: dict[str, str]):
        self._headers, self._query = headers, query

    def apply(self, request: httpx.Request) -> None:
        for name, value in self._headers.items():
            request.headers[name] = value
        for name, value in self._query.items():
            request.url = request.url.copy_set_param(name, value)

    def shown(self, request: httpx.Request) -> None:
        for name in self._headers:
            request.headers[name] = MASK
        for name in self._query:
            request.url = request.url.copy_set_param(name, MASK)


class Hmac(Authenticator):
    """X-Hub-Signature = hex HMAC-SHA256(secret, METHOD \\n PATH?QUERY \\n TIMESTAMP \\n hex sha256(body)),
    PATH?QUERY exactly as on the wire (percent-encoded, the base URL's path included)."""

    def __init__(self, key: HmacKey):
        self.key_id, self._secret = key.key_id, key.secret.get_secret_value()

    def apply(self, request: httpx.Request) -> None:
        ts = str(int(time.time()))
        target = request.url.raw_path.decode("ascii")  # path and query as sent
        request.headers["X-Hub-Key"] = self.key_id
        request.headers["X-Hub-Timestamp"] = ts
        request.headers["X-Hub-Signature"] = sign(self._secret, request.method, target, ts, request.content)

    def shown(self, request: httpx.Request) -> None:
        request.headers["X-Hub-Key"] = self.key_id
        request.headers["X-Hub-Timestamp"] = "<unix seconds>"
        request.headers["X-Hub-Signature"] = f"<hex HMAC-SHA256: {MASK}>"


class OAuth2ClientCredentials(Authenticator):
    """The token is fetched with `fetch` (the connector's bounded, retried POST), kept until
    EXPIRY_MARGIN_SECONDS before its lifetime ends, and shared by the connector's threads."""

    def __init__(
        self, conf: OAuth2, fetch: Callable[[str, dict[str, str], tuple[str, str] | None], Any], where: mapping.Where
    ):
        self.conf, self._fetch, self._where = conf, fetch, where
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetched = 0  # tokens fetched (for tests and `check`)

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token()}"

    def shown(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {MASK} (OAuth2 token from {self.conf.token_url})"

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._new_token()
                self._expires = time.monotonic() + max(lifetime - EXPIRY_MARGIN_SECONDS, lifetime / 2)
            return self._token

    def refused(self) -> bool:
        with self._lock:
            self._token = None  # revoked or expired early: the next request fetches a new one
        return True

    def _new_token(self) -> tuple[str, float]:
        conf = self.conf
        form = {"grant_type": "client_credentials"}
        if conf.scope:
            form["scope"] = conf.scope
        basic = None
        if conf.client_auth == "basic":
            basic = (conf.client_id, conf.client_secret.get_secret_value())
        else:
            form |= {"client_id": conf.client_id, "client_secret": conf.client_secret.get_secret_value()}
        data = self._fetch(str(conf.token_url), form, basic)
        self.fetched += 1
        token = mapping.search(conf.access_token, data, self._where, required=True)
        if not isinstance(token, str):
            raise DeliveryError(
                f"{self._where() if callable(self._where) else self._where}: 令牌应答中 access_token 不是字符串 (token is not a string)",
                retryable=False,
            )
        lifetime = mapping.search(conf.expires_in, data, self._where)
        try:
            seconds = float(lifetime) if lifetime is not None else conf.default_expires_seconds
        except (TypeError, ValueError):
            seconds = conf.default_expires_seconds
        if not math.isfinite(seconds) or seconds <= 0:
            seconds = conf.default_expires_seconds
        return token, seconds


def make(conf: Auth | None, fetch: Callable[..., Any], where: mapping.Where) -> Authenticator:
    if conf is None:  # the client certificate is the credential
        return Authenticator()
    if conf.bearer is not None:
        return Bearer(conf.bearer.get_secret_value())
    if conf.api_key is not None:
        return ApiKeys(*conf.api_key.credentials())
    if conf.hmac is not None:
        return Hmac(conf.hmac)
    assert conf.oauth2 is not None
    return OAuth2ClientCredentials(conf.oauth2, fetch, where)


def same_origin(url: str, base: str) -> bool:
    """A credential goes only to the host it is for (a document link elsewhere must not get it)."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
