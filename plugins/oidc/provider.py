"""The `oidc` identity provider type: authorization code flow with PKCE (S256), state and nonce,
the code exchanged at the token endpoint over httpx (bounded), the ID token verified with pyjwt
against the provider's JWKS (plugins.oidc.tokens), and the resident's ID number, name and phone
taken from configurable claims and checked by the hub's one rule (hub.identity.verified)."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any
from urllib.parse import urlencode

import httpx

from hub.identity import IdentityProvider, IdentityRefused, VerifiedResident, pkce_challenge, verified
from plugins.oidc.config import OidcConfig, secure_url
from plugins.oidc.fetch import json_of
from plugins.oidc.tokens import verify_id_token


class OidcProvider(IdentityProvider):
    type = "oidc"
    Config = OidcConfig
    config: OidcConfig

    def __init__(self, name: str, config: OidcConfig):  # type: ignore[override]
        super().__init__(name, config)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._fetched_at = 0.0

    # ------------------------------------------------------------ bounded HTTP

    def _client(self) -> httpx.Client:
        # no redirects: a provider's endpoint answers itself; no proxies from the environment
        return httpx.Client(timeout=self.config.timeout_seconds, follow_redirects=False, trust_env=False)

    def _get(self, url: str, what: str, **kw: Any) -> dict[str, Any]:
        with self._client() as client:
            return json_of(client, "GET", url, max_bytes=self.config.max_bytes, what=what, **kw)

    # ------------------------------------------------------------ discovery and keys

    def metadata(self, *, fresh: bool = False) -> dict[str, Any]:
        """The discovery document (kept `metadata_seconds`): its issuer must be the one configured."""
        with self._lock:
            stale = time.monotonic() - self._fetched_at > self.config.metadata_seconds
            if self._metadata is None or stale or fresh:
                doc = self._get(f"{self.config.issuer}/.well-known/openid-configuration", "discovery")
                if str(doc.get("issuer", "")).rstrip("/") != self.config.issuer:
                    raise IdentityRefused(
                        "issuer", "身份认证服务配置有误", "the discovery document names another issuer"
                    )
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(key), str):
                        raise IdentityRefused(
                            "provider", "身份认证服务配置有误", f"the discovery document has no {key}"
                        )
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
                    # the issuer's rule for every endpoint: https, or http on this machine only
                    # (codes and tokens travel to them)
                    if key in doc and not secure_url(str(doc[key])):
                        raise IdentityRefused(
                            "provider", "身份认证服务配置有误", f"the discovery document's {key} is not https"
                        )
                self._metadata, self._jwks, self._fetched_at = doc, None, time.monotonic()
            return self._metadata

    def jwks(self, *, fresh: bool = False) -> dict[str, Any]:
        meta = self.metadata()
        with self._lock:
            if self._jwks is None or fresh:
                self._jwks = self._get(meta["jwks_uri"], "jwks")
            return self._jwks

    # ------------------------------------------------------------ the flow

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str, redirect_uri: str) -> str:
        meta = self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        endpoint = meta["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    def exchange(self, *, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer for `code` (client_secret_post when a secret is configured)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.config.client_id,
        }
        if self.config.client_secret is not None:
            form["client_secret"] = self.config.client_secret.get_secret_value()
        with self._client() as client:
            answer = json_of(
                client,
                "POST",
                self.metadata()["token_endpoint"],
                max_bytes=self.config.max_bytes,
                what="token",
                data=form,
            )
        if not isinstance(answer.get("id_token"), str):
            raise IdentityRefused("id_token", "身份认证服务未返回身份凭证", "the token answer has no id_token")
        return answer

    def claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's verified claims; a key id we do not know yet fetches the key set again
        once (the provider rotated its keys)."""
        check = {
            "issuer": self.config.issuer,
            "client_id": self.config.client_id,
            "nonce": nonce,
            "algorithms": list(self.config.algorithms),
            "leeway": self.config.leeway_seconds,
            "max_age": self.config.max_age_seconds,
        }
        # the provider's real clock stamps the token: checked against ours, not the hub's business
        # clock (which tests and the demo may set to another day)
        try:
            return verify_id_token(id_token, self.jwks(), now=time.time(), **check)
        except IdentityRefused as exc:
            if "no key" not in exc.reason.en:
                raise
            return verify_id_token(id_token, self.jwks(fresh=True), now=time.time(), **check)

    def _userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        return self._get(endpoint, "userinfo", headers={"authorization": f"Bearer {access_token}"})

    def complete(
        self, *, code: str, nonce: str, code_verifier: str, redirect_uri: str, today: date
    ) -> VerifiedResident:
        answer = self.exchange(code=code, code_verifier=code_verifier, redirect_uri=redirect_uri)
        claims = self.claims(answer["id_token"], nonce)
        names = self.config.claims
        if self.config.userinfo and isinstance(answer.get("access_token"), str):
            extra = self._userinfo(answer["access_token"])
            if extra.get("sub") == claims["sub"]:  # OIDC Core 5.3.2: another subject's answer is ignored
                claims = extra | claims

        def first(candidates: list[str]) -> Any:
            return next((claims[c] for c in candidates if claims.get(c) not in (None, "")), None)

        return verified(claims["sub"], first(names.id_number), first(names.name), first(names.phone), today=today)
