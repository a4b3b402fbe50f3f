"""The `oidc` provider type's settings (`config:` of an `identity_providers:` entry in hub.yaml)."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.secrets import Secret

# Asymmetric algorithms only: an HS256 token would be checked with the client secret, which the
# hub shares with the provider — and "none" is never a signature.
Algorithm = Literal["RS256", "ES256"]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def secure_url(url: str) -> bool:
    """https, or http to this machine (the sandbox, a hub tried on one machine)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))


class ClaimNames(BaseModel):
    """Which claims hold the resident's ID number, name and phone: each province's service names
    them its own way (id_number / idcard / cert_no …); the first claim present wins."""

    model_config = ConfigDict(extra="forbid")
    id_number: list[str] = Field(default_factory=lambda: ["id_number", "idcard", "cert_no"], min_length=1)
    name: list[str] = Field(default_factory=lambda: ["name"], min_length=1)
    phone: list[str] = Field(default_factory=lambda: ["phone_number", "mobile"])


class OidcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # the provider's issuer; discovery at ISSUER/.well-known/openid-configuration. https except on loopback
    issuer: str
    client_id: str = Field(min_length=1, max_length=200)
    # sent to the token endpoint (client_secret_post) when set; a ${ENV} or file: reference, never a value
    client_secret: Secret | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile"])
    claims: ClaimNames = Field(default_factory=ClaimNames)
    algorithms: list[Algorithm] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    # also ask the userinfo endpoint for claims the ID token lacks (some services put the ID number only there)
    userinfo: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)  # each request to the provider
    max_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)  # each answer read
    leeway_seconds: int = Field(default=60, ge=0, le=600)  # clock difference allowed on exp/iat
    max_age_seconds: int = Field(default=600, ge=60, le=86400)  # an ID token issued longer ago is refused
    metadata_seconds: int = Field(default=3600, ge=0)  # discovery document and keys kept this long

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("应为完整网址 (must be an absolute http(s) URL without query)")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("须使用 https（仅本机地址可用 http）(must be https except on loopback)")
        return v.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: list[str]) -> list[str]:
        return v if "openid" in v else ["openid", *v]
