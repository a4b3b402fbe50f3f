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

from typing import Any

import requests
from zeep import Client
from zeep import exceptions as zx

from hub.connectors import CheckResult, Connector, DeliveryError, PartMessage, Receipt, Update, Verification
from plugins.soap.client import AnswerTooLarge, _client
from plugins.soap.spec import SoapSpec

HUB_STATUSES = {"received", "in_review", "approved", "denied", "supplement_requested"}


def _lookup(data: dict[str, Any], path: str) -> Any:
    if path.startswith("="):
        return path[1:]
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


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
        if isinstance(exc, AnswerTooLarge):
            return DeliveryError(f"{n}: 应答过大 {exc}", retryable=False)
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
