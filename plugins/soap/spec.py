"""The configuration of a `soap` connection: the WSDL, TLS, WS-Security, timeouts, and how a part
maps to the operations' messages and back."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, FilePath, HttpUrl, field_validator

from hub.secrets import Secret


def _loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _require_tls(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and not _loopback(parts.hostname or ""):
        raise ValueError(f"{what} 只允许 https（回环地址的沙箱除外） (https required except on loopback): {url}")


class WsSecurity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: Secret
    digest: bool = True


class X509Signature(BaseModel):
    """Sign every request (WS-Security XML signature, as zeep/xmlsec do: RSA-SHA1 over body and
    timestamp)."""

    model_config = ConfigDict(extra="forbid")
    key_file: FilePath = Field(description="PEM private key (a mounted secret file)")
    cert_file: FilePath = Field(description="PEM certificate sent with the signature")
    key_password: Secret | None = None
    server_cert_file: FilePath | None = Field(
        default=None, description="verify signed responses with this certificate; unset: responses are not verified"
    )


class Operations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    submit: str | None = None
    status: str | None = None
    verify: str | None = None


class ResultFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = "caseId"
    status: str = "status"
    reason: str = "reason"


class SoapSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wsdl: HttpUrl
    ca_file: Path | None = Field(default=None, description="CA bundle for a department's private CA")
    wsse: WsSecurity | None = None
    signature: X509Signature | None = None
    connect_timeout_seconds: float = Field(default=5, gt=0)
    timeout_seconds: float = Field(default=30, gt=0, description="per operation")
    max_answer_bytes: int = Field(
        default=64 * 2**20, ge=1024, description="largest answer read (WSDL, schema, SOAP response)"
    )
    operations: Operations = Field(default_factory=Operations)
    message: dict[str, str] = Field(default_factory=dict, description="operation element -> part path or =literal")
    result: ResultFields = Field(default_factory=ResultFields)
    status_map: dict[str, str] = Field(default_factory=dict, description="department status -> hub status")
    verify_message: dict[str, str] = Field(default_factory=dict, description="operation element -> subject key")

    @field_validator("wsdl")
    @classmethod
    def _tls_unless_loopback(cls, v: HttpUrl) -> HttpUrl:
        _require_tls(str(v), "wsdl")
        return v
