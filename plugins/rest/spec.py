"""The configuration of a `rest` connection: the API root, how requests are authenticated, TLS,
timeouts, retries and paging."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, HttpUrl, Tag, field_validator

from hub.secrets import Secret


class BearerAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bearer: Secret


class HmacAuth(BaseModel):
    """Each request carries X-Hub-Key, X-Hub-Timestamp and X-Hub-Signature =
    hex HMAC-SHA256(secret, METHOD \\n PATH \\n TIMESTAMP \\n sha256(body))."""

    model_config = ConfigDict(extra="forbid")
    key_id: str
    secret: Secret


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_kind(value: Any) -> str:
    return "hmac" if isinstance(value, dict) and "key_id" in value else "bearer"


Auth = Annotated[Annotated[BearerAuth, Tag("bearer")] | Annotated[HmacAuth, Tag("hmac")], Discriminator(_auth_kind)]


class RestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: HttpUrl = Field(description="API root, e.g. https://ybj.example.gov.cn/api")
    auth: Auth = Field(description="{bearer: ${ENV}} or {key_id: ..., secret: ${ENV}}")
    ca_file: Path | None = Field(default=None, description="CA bundle for a department's private CA")
    connect_timeout_seconds: float = Field(default=5, gt=0)
    timeout_seconds: float = Field(default=30, gt=0)
    retries: int = Field(default=3, ge=0, le=10, description="retries on 429/5xx within one call")
    max_retry_after_seconds: float = Field(default=30, ge=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    max_answer_bytes: int = Field(
        default=64 * 2**20, ge=1024, description="largest answer read into memory (a JSON answer, a result document)"
    )
    field_map: dict[str, str] = Field(default_factory=dict, description="hub form field -> department field")
    intake_path: str = Field(
        default="/intake/batches", pattern=r"^/", description="batches resource, when this system is an intake source"
    )

    @field_validator("base_url")
    @classmethod
    def _tls_unless_loopback(cls, v: HttpUrl) -> HttpUrl:
        if v.scheme != "https" and not _loopback(v.host or ""):
            raise ValueError("只允许 https（回环地址的沙箱除外） (https required except on loopback)")
        return v
