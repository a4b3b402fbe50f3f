"""`soap` connector: a department system with a SOAP web service (e.g. 公安户籍), through zeep.

The WSDL is loaded and parsed once per connection configuration and reused; connect and
operation timeouts; WS-Security UsernameToken with password digest; XML parsing forbids DTDs,
entities and external references; SOAP faults become delivery errors (a Server fault may pass,
a Client fault will not). How a part becomes the operation's message is configuration:

    operations: {submit: SubmitPart, status: QueryStatus, verify: VerifyHousehold}
    message:                       # operation element <- a path in the part, or =literal
      partId: part_id
      itemCode: item_code
      applicantName: applicant_name
      applicantId: applicant_id
      detail: form.household_address
    result: {id: caseId, status: status, reason: reason}
    status_map: {received: received, accepted: in_review, approved: approved, rejected: denied}
"""

from __future__ import annotations

import hashlib
import logging
import threading
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, FilePath, HttpUrl, field_validator
from zeep import Client, Settings, Transport
from zeep import exceptions as zx
from zeep.wsse.compose import Compose
from zeep.wsse.signature import Signature, verify_envelope
from zeep.wsse.username import UsernameToken

from hub.connectors import CheckResult, Connector, DeliveryError, PartMessage, Receipt, Update, Verification
from hub.hookspecs import hookimpl
from hub.secrets import Secret

HUB_STATUSES = {"received", "in_review", "approved", "denied", "supplement_requested"}

# zeep's transport logs every envelope at DEBUG — the UsernameToken password (when digest is
# off) and residents' data with it. Connections get a logger that is never enabled.
_SILENT = logging.Logger("plugins.soap.transport", level=logging.CRITICAL + 1)


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


class _Signature(Signature):
    """zeep's Signature checks responses against the *client's own* certificate; a department
    signs with its own, so verify with `server_cert_file`, or not at all when none is given."""

    def __init__(self, spec: X509Signature):
        password = spec.key_password.get_secret_value() if spec.key_password else None
        super().__init__(str(spec.key_file), str(spec.cert_file), password)
        self._server_cert = str(spec.server_cert_file) if spec.server_cert_file else None

    def verify(self, envelope):
        if self._server_cert:
            verify_envelope(envelope, self._server_cert)
        return envelope


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


def _lookup(data: dict[str, Any], path: str) -> Any:
    if path.startswith("="):
        return path[1:]
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


# One parsed WSDL per connection configuration, shared by every connector made from it.
_CLIENTS: dict[str, Client] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(name: str, spec: SoapSpec) -> Client:
    key = hashlib.sha256(
        f"{name}\0{spec.model_dump_json()}\0{spec.wsse.password.get_secret_value() if spec.wsse else ''}".encode()
    ).hexdigest()
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            session = requests.Session()
            session.verify = str(spec.ca_file) if spec.ca_file else True
            # Department traffic goes where the connection says, not through whatever proxy or
            # .netrc the environment holds (and reading those on every call costs ~20% here).
            session.trust_env = False
            transport = Transport(
                session=session, timeout=spec.connect_timeout_seconds, operation_timeout=spec.timeout_seconds
            )
            transport.logger = _SILENT
            settings = Settings(
                strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
            wsse: list[Any] = []
            if spec.wsse:
                password = spec.wsse.password.get_secret_value()
                wsse.append(UsernameToken(spec.wsse.username, password, use_digest=spec.wsse.digest))
            if spec.signature:
                wsse.append(_Signature(spec.signature))
            # zeep verifies responses only through a single object: Compose the tokens
            client = Client(
                str(spec.wsdl), transport=transport, settings=settings, wsse=Compose(wsse) if wsse else None
            )
            # the WSDL names where requests go: the same TLS rule holds for that address
            for service in client.wsdl.services.values():
                for port in service.ports.values():
                    try:
                        _require_tls(port.binding_options.get("address", ""), "WSDL service address")
                    except ValueError as exc:
                        raise DeliveryError(f"{name}: {exc}", retryable=False) from None
            _CLIENTS[key] = client
        return _CLIENTS[key]


class SoapConnector(Connector):
    type = "soap"
    Spec = SoapSpec
    description = "SOAP 1.1/1.2 via zeep: WSDL parsed once, WS-Security digest, hardened XML, faults mapped"

    def __init__(self, name: str, spec: SoapSpec):
        super().__init__(name, spec)
        self.spec: SoapSpec = spec
        self._zeep: Client | None = None

    @property
    def client(self) -> Client:
        if self._zeep is None:
            try:
                self._zeep = _client(self.name, self.spec)
            except DeliveryError:
                raise
            except Exception as exc:
                raise self._error(exc) from None
        return self._zeep

    def _error(self, exc: Exception) -> DeliveryError:
        n = self.name
        if isinstance(exc, zx.SignatureVerificationFailed):
            return DeliveryError(f"{n}: 应答签名验证失败 (response signature invalid)", retryable=False)
        if isinstance(exc, zx.Fault):
            code = str(exc.code or "")
            client_fault = code.split(":")[-1] in ("Client", "Sender")
            return DeliveryError(f"{n}: SOAP fault {code}: {exc.message}", retryable=not client_fault)
        if isinstance(exc, (zx.DTDForbidden, zx.EntitiesForbidden, zx.ExternalReferenceForbidden)):
            return DeliveryError(
                f"{n}: 拒绝解析含DTD/实体的XML (hostile XML refused: {type(exc).__name__})", retryable=False
            )
        if isinstance(exc, (zx.XMLSyntaxError, zx.XMLParseError, zx.ValidationError, zx.WsdlSyntaxError)):
            return DeliveryError(f"{n}: 报文格式错误 (malformed message: {type(exc).__name__})", retryable=False)
        if isinstance(exc, zx.TransportError):
            return DeliveryError(
                f"{n}: HTTP {exc.status_code}", retryable=exc.status_code >= 500 or exc.status_code == 429
            )
        if isinstance(exc, requests.Timeout):
            return DeliveryError(f"{n}: 超时 timeout", retryable=True)
        if isinstance(exc, requests.RequestException):
            return DeliveryError(f"{n}: 连接失败 connection failed ({type(exc).__name__})", retryable=True)
        return DeliveryError(f"{n}: {type(exc).__name__}", retryable=True)

    def _call(self, operation: str | None, **kwargs: Any) -> Any:
        if not operation:
            raise DeliveryError(f"{self.name}: operation not configured", retryable=False)
        try:
            return getattr(self.client.service, operation)(**kwargs)
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._error(exc) from None

    def check(self) -> CheckResult:
        try:
            ops = sorted(self.client.wsdl.bindings[next(iter(self.client.wsdl.bindings))]._operations)
        except DeliveryError as exc:
            return CheckResult(ok=False, message=str(exc))
        missing = [op for op in self.spec.operations.model_dump().values() if op and op not in ops]
        if missing:
            return CheckResult(ok=False, message=f"WSDL lacks operations: {', '.join(missing)}")
        return CheckResult(ok=True, message=f"WSDL OK ({len(ops)} operations)")

    def submit(self, part: PartMessage) -> Receipt:
        data = part.model_dump(mode="json")
        message = {element: _lookup(data, path) for element, path in self.spec.message.items()}
        answer = self._call(self.spec.operations.submit, **message)
        remote_id = getattr(answer, self.spec.result.id, None)
        if not remote_id:
            raise DeliveryError(f"{self.name}: 回执缺少 {self.spec.result.id} (no case id)", retryable=False)
        return Receipt(part_id=part.part_id, remote_id=str(remote_id))

    def poll(self, receipts: list[Receipt]) -> list[Update]:
        updates = []
        for r in receipts:
            answer = self._call(self.spec.operations.status, **{self.spec.result.id: r.remote_id})
            raw = str(getattr(answer, self.spec.result.status, ""))
            status = self.spec.status_map.get(raw, raw)
            if status not in HUB_STATUSES:
                raise DeliveryError(
                    f"{self.name}: 未知状态 unknown status {raw!r} (add it to status_map)", retryable=False
                )
            updates.append(
                Update(
                    part_id=r.part_id,
                    remote_id=r.remote_id,
                    status=status,
                    reason=getattr(answer, self.spec.result.reason, None),
                )
            )
        return updates

    def verify(self, kind: str, subject: dict[str, Any]) -> Verification:
        message = {element: _lookup(subject, key) for element, key in self.spec.verify_message.items()}
        answer = self._call(self.spec.operations.verify, **message)
        fields = {k: answer[k] for k in answer} if answer is not None else {}
        return Verification(
            kind=kind, ok=bool(fields.get("match")), detail={k: v for k, v in fields.items() if k != "match"}
        )


@hookimpl
def register_connectors() -> list[type[Connector]]:
    return [SoapConnector]
