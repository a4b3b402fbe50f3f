"""The configuration of a `soap` connection: where the WSDL is and where requests go, TLS,
WS-Security, timeouts, and for each verb (check, submit, status, verify) the operation, its
request (a template over the part) and how to read its answer (JMESPath over the answer as plain
data). See docs/connect/soap.md for a worked example."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

from hub.connectors import MaterialDelivery
from hub.mapping import Expression, StatusMap, Template
from hub.secrets import Secret


def _loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _require_tls(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
        raise ValueError(f"{what} 只允许 https（回环地址的沙箱除外） (https required except on loopback): {url}")


def is_url(location: str) -> bool:
    return "://" in location


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


class Call(BaseModel):
    """One operation call: its name in the WSDL and its request, a template (`{{ expression }}`
    in string leaves; see hub/mapping.py) of the operation's input element's children."""

    model_config = ConfigDict(extra="forbid")
    operation: str = Field(min_length=1, description="operation name in the WSDL's binding")
    message: Template = Field(default_factory=dict, description="the input element's children, a template")

    @field_validator("message")
    @classmethod
    def _elements(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError("message: 须为 元素名: 值 的映射 (a mapping of the input element's children)")
        return v


class CheckCall(Call):
    """`hub connectors check`: a cheap authenticated operation (a query) proving the credentials.
    A fault (e.g. a wrong WS-Security password) fails the check."""

    ok: Expression | None = Field(
        default=None, description="JMESPath over the answer that must be true for the check to pass (optional)"
    )


class Decision(BaseModel):
    """Where a stateless system's submit answer carries its decision."""

    model_config = ConfigDict(extra="forbid")
    status: Expression = Field(description="JMESPath: the department's status (mapped by status_map)")
    reason: Expression | None = None


class SubmitCall(Call):
    remote_id: Expression | None = Field(
        default=None, description="JMESPath: the department's case id in the answer; unset: the part id"
    )
    decision: Decision | None = Field(
        default=None, description="the answer carries the decision (a stateless system): status and reason"
    )


class StatusCall(Call):
    """Template context: `remote_id`, `part_id`."""

    status: Expression = Field(description="JMESPath: the department's status (mapped by status_map)")
    reason: Expression | None = None


class VerifyCall(Call):
    """Template context: `kind`, `subject` (what `hub connectors verify -s k=v` or the desk gives)."""

    ok: Expression = Field(description="JMESPath over the answer; verified only when it is exactly true")
    detail: dict[str, Expression] | None = Field(
        default=None, description="detail name -> JMESPath; unset: the whole answer"
    )


_MATERIAL_MODES = ("none", "inline", "pull")
_OLD_KEYS = ("operations", "result", "verify_message")


class SoapSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wsdl: str = Field(
        min_length=1,
        description="https://…?wsdl, or a file path: absolute, or relative to the hub home "
        "(e.g. wsdl/vat.wsdl); schemas it imports must lie in its own folder",
    )
    endpoint: str | None = Field(
        default=None, description="where requests go, replacing the WSDL's soap:address (https except loopback)"
    )
    binding: str | None = Field(
        default=None, description="the binding's QName {namespace}name, when the WSDL has several"
    )
    ca_file: Path | None = Field(default=None, description="CA bundle for a department's private CA")
    wsse: WsSecurity | None = None
    signature: X509Signature | None = None
    connect_timeout_seconds: float = Field(
        default=5, gt=0, le=60, description="connecting, within timeout_seconds (never more than it)"
    )
    timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=120,
        description="one call in total, from before the request is sent to the answer's last byte "
        "(connecting, sending, the headers and the body); keep it well below the dispatch lease (300 s)",
    )
    max_poll_seconds: float = Field(
        default=240,
        gt=0,
        le=3600,
        description="one poll in total: receipts not reached by then wait for the next sync "
        "(the call under way at the deadline finishes, within timeout_seconds)",
    )
    max_answer_bytes: int = Field(
        default=64 * 2**20, ge=1024, description="largest answer read (WSDL, schema, SOAP response)"
    )
    materials: MaterialDelivery = Field(default_factory=MaterialDelivery)
    check: CheckCall | None = None
    submit: SubmitCall | None = None
    status: StatusCall | None = None
    verify: VerifyCall | None = None
    status_map: StatusMap = Field(default_factory=dict, description="department status -> hub status")

    @model_validator(mode="before")
    @classmethod
    def _old_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and (any(k in data for k in _OLD_KEYS) or "message" in data):
            raise ValueError(
                "旧的 operations/message/result/verify_message 写法已改为按动作配置 submit/status/verify "
                "(the old shape is replaced by per-verb submit/status/verify: see docs/connect/soap.md)"
            )
        return data

    @field_validator("wsdl")
    @classmethod
    def _wsdl(cls, v: str) -> str:
        if is_url(v):
            if urlsplit(v).scheme not in ("http", "https"):
                raise ValueError(f"wsdl: 只接受 https 地址或文件路径 (an https URL or a file path, not {v})")
            _require_tls(v, "wsdl")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None:
            _require_tls(v, "endpoint")
        return v

    @field_validator("materials")
    @classmethod
    def _modes(cls, v: MaterialDelivery) -> MaterialDelivery:
        if v.mode not in _MATERIAL_MODES:
            raise ValueError(
                f"soap 连接的材料方式只能是 {', '.join(_MATERIAL_MODES)} "
                f"(a SOAP message carries materials inline as base64 or as pull links, not {v.mode!r})"
            )
        return v
