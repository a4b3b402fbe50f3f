"""`soap` connector: a department system with a SOAP web service, through zeep, by configuration.

The WSDL (an https URL, or a file in the hub home) is parsed once per configuration; requests go
to `endpoint` when set (the WSDL's soap:address replaced), else to the WSDL's address; https
everywhere except loopback. Each verb names an operation and its request, a template over the
part (hub/mapping.py), and reads the answer with JMESPath over the answer as plain data (zeep's
objects serialised: a boolean stays a boolean and maps through `status_map` as `true`):

    submit: {operation: SubmitCase, message: {ref: "{{ part.part_id }}"}, remote_id: caseRef}
    status: {operation: GetCase, message: {caseRef: "{{ remote_id }}"}, status: state, reason: remark}
    verify: {operation: checkVat, message: {vatNumber: "{{ subject.id_number }}"}, ok: "valid"}
    check:  {operation: checkVat, message: {vatNumber: "000000000"}}   # proves the credentials
    status_map: {"true": approved, "false": denied, OPEN: in_review}

A stateless system (no `status`) decides at submit: `submit.decision` reads the decision from
the answer and the hub applies it with the delivery (Receipt.update); `poll` has nothing to do.
SOAP faults are delivery errors (a Server fault may pass, a Client fault will not); hostile XML
(DTDs, entities) and imports from anywhere but the WSDL's own folder or server are refused."""

from __future__ import annotations

import base64
import binascii
import logging
import time as clock
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from lxml import etree
from zeep import Client
from zeep import exceptions as zx
from zeep.helpers import serialize_object
from zeep.proxy import ServiceProxy
from zeep.wsdl.bindings.soap import SoapBinding
from zeep.xsd.types.builtins import Base64Binary

from hub import mapping
from hub.connectors import (
    CheckResult,
    Connector,
    DeliveryError,
    PartMessage,
    PollFailure,
    Preview,
    Receipt,
    Unsupported,
    Update,
    Verification,
    in_turn,
)
from plugins.soap.client import AnswerTooLarge, AnswerTooSlow, ImportRefused, bounded_call, shared_client
from plugins.soap.spec import Call, SoapSpec, _require_tls, is_url

log = logging.getLogger(__name__)
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def _plain(value: Any) -> Any:
    """An answer as JSON-like data for JMESPath and for `Verification.detail`: numbers stay
    numbers, booleans booleans; dates as ISO text, binary as base64."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _typed(value: Any, xsd_type: Any) -> Any:
    """A rendered message made to fit the operation's input types where a template cannot say
    it: xsd:base64Binary takes bytes in zeep, and templates carry base64 text
    (`materials[*].content`), so such leaves are decoded here (zeep encodes them again)."""
    if isinstance(xsd_type, Base64Binary) and isinstance(value, str):
        return base64.b64decode(value, validate=True)
    if isinstance(value, dict) and hasattr(xsd_type, "elements"):
        children = dict(xsd_type.elements)
        out = {}
        for key, item in value.items():
            element = children.get(key)
            child_type = getattr(element, "type", None)
            out[key] = [_typed(v, child_type) for v in item] if isinstance(item, list) else _typed(item, child_type)
        return out
    return value


class SoapConnector(Connector):
    type = "soap"
    Spec = SoapSpec
    description = "SOAP 1.1/1.2 via zeep: WSDL file or URL, endpoint override, per-verb templates, WS-Security"

    def __init__(self, name: str, spec: SoapSpec):
        super().__init__(name, spec)
        self.spec: SoapSpec = spec
        self._zeep: Client | None = None
        self._service: ServiceProxy | None = None

    # ------------------------------------------------------------------ the WSDL and the service

    def _home(self) -> Path:
        """Where a relative `wsdl` path is from: the hub home (the core sets `self.home` on every
        connector it makes), else the working directory."""
        return self.home or Path(".")

    def wsdl_location(self) -> str:
        wsdl = self.spec.wsdl
        if is_url(wsdl):
            return wsdl
        path = Path(wsdl)
        path = (path if path.is_absolute() else self._home() / path).resolve()
        if not path.is_file():
            raise DeliveryError(f"{self.where('wsdl')}: WSDL 文件不存在 (no such file): {path}", retryable=False)
        return str(path)

    @property
    def client(self) -> Client:
        if self._zeep is None:
            try:
                self._zeep = shared_client(self.name, self.spec, self.wsdl_location())
            except DeliveryError:
                raise
            except Exception as exc:
                raise self._error(exc, where=self.where("wsdl")) from None
        return self._zeep

    @property
    def service(self) -> ServiceProxy:
        """The operations, bound to `endpoint` or to the WSDL's address for the chosen binding."""
        if self._service is None:
            client = self.client
            # SOAP 1.1/1.2 bindings only: an .asmx WSDL also has HttpGet/HttpPost ones this connector cannot use
            bindings = {name: b for name, b in client.wsdl.bindings.items() if isinstance(b, SoapBinding)}
            wanted = self.spec.binding
            if wanted is not None and wanted not in bindings:
                raise DeliveryError(
                    f"{self.where('binding')}: WSDL 中没有绑定 {wanted} (no such binding; "
                    f"the WSDL has: {', '.join(sorted(bindings))})",
                    retryable=False,
                )
            if self.spec.endpoint:
                if wanted is None:
                    if len(bindings) != 1:
                        raise DeliveryError(
                            f"{self.where('endpoint')}: WSDL 有多个绑定，请用 binding 指定 (several bindings: "
                            f"name one in config.binding: {', '.join(sorted(bindings))})",
                            retryable=False,
                        )
                    wanted = next(iter(bindings))
                self._service = client.create_service(wanted, self.spec.endpoint)
            else:
                self._service = self._wsdl_port(client, wanted)
        return self._service

    def _wsdl_port(self, client: Client, binding: str | None) -> ServiceProxy:
        for service in client.wsdl.services.values():
            for port in service.ports.values():
                if binding is None or port.binding.name.text == binding:
                    address = port.binding_options.get("address", "")
                    try:  # the WSDL names where requests go: the same TLS rule holds for it
                        _require_tls(address, "WSDL service address")
                    except ValueError as exc:
                        raise DeliveryError(
                            f"{self.where('wsdl')}: {exc} — 可用 endpoint 指定地址 (or set config.endpoint)",
                            retryable=False,
                        ) from None
                    return client.bind(service.name, port.name)
        raise DeliveryError(
            f"{self.where('binding')}: WSDL 中没有服务端口 (no service port{' for ' + binding if binding else ''}; "
            "set config.endpoint)",
            retryable=False,
        )

    def _operations(self) -> dict[str, Any]:
        return self.service._binding._operations

    @property
    def address(self) -> str:
        return self.service._binding_options["address"]

    # ------------------------------------------------------------------ calls

    def _error(self, exc: Exception, where: str | None = None) -> DeliveryError:
        n = where or self.name
        if isinstance(exc, ImportRefused):
            return DeliveryError(f"{n}: 拒绝读取WSDL导入 (import refused): {exc}", retryable=False)
        if isinstance(exc, AnswerTooLarge):
            return DeliveryError(f"{n}: 应答过大 {exc}", retryable=False)
        if isinstance(exc, AnswerTooSlow):
            return DeliveryError(f"{n}: 应答过慢 {exc}", retryable=True)
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
        if isinstance(exc, OSError):  # a local WSDL or schema that cannot be read
            return DeliveryError(f"{n}: 无法读取 (cannot read): {exc.strerror or type(exc).__name__}", retryable=False)
        return DeliveryError(f"{n}: {type(exc).__name__}", retryable=True)

    def _message(self, call: Call, context: dict[str, Any], verb: str) -> tuple[Any, dict[str, Any]]:
        """The operation and its rendered, typed request."""
        try:
            operation = self._operations().get(call.operation)
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._error(exc) from None
        if operation is None:
            raise DeliveryError(
                f"{self.where(verb, 'operation')}: WSDL 中没有操作 {call.operation} (no such operation; "
                f"the binding has: {', '.join(sorted(self._operations()))})",
                retryable=False,
            )
        where = self.where(verb, "message")
        message = mapping.render(call.message, context, where)
        if not isinstance(message, dict):
            raise mapping.MappingError(f"{where}: 消息须为键值结构 (the message must be a mapping of elements)")
        body = getattr(operation.input, "body", None)
        try:
            message = _typed(message, getattr(body, "type", None))
        except (binascii.Error, ValueError) as exc:
            raise mapping.MappingError(f"{where}: base64Binary 元素的值不是 base64 (not base64): {exc}") from None
        return operation, message

    def _call(self, call: Call, context: dict[str, Any], verb: str) -> dict[str, Any]:
        """Call `call.operation` with its message rendered from `context`; the answer as plain
        data, always an object keyed by the answer element's children."""
        operation, message = self._message(call, context, verb)
        try:
            with bounded_call(self.spec.timeout_seconds):  # from before the request is sent
                answer = self.service[call.operation](**message)
        except (TypeError, zx.ValidationError) as exc:  # the message does not fit the WSDL's input
            raise mapping.MappingError(
                f"{self.where(verb, 'message')}: 消息与WSDL不符 (the message does not fit {call.operation}): {exc}"
            ) from None
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._error(exc, where=f"{self.name} {call.operation}") from None
        return self._data(answer, operation)

    @staticmethod
    def _data(answer: Any, operation: Any) -> dict[str, Any]:
        """zeep's answer object as plain data, always an object keyed by the answer element's children."""
        data = _plain(serialize_object(answer, dict))
        if not isinstance(data, dict):
            # zeep unwraps an answer element with a single child to that child's value
            children = getattr(getattr(getattr(operation.output, "body", None), "type", None), "elements", [])
            data = {children[0][0]: data} if len(children) == 1 else {"value": data}
        return data

    def longest_call(self) -> tuple[float, tuple[str | int, ...]] | None:
        """One submit at worst: reading a WSDL from a URL (the first call of a process reads it
        and every schema it imports, within one timeout_seconds), then the operation call (one
        timeout_seconds from before the request is sent). Each may overrun its deadline by one
        connect (connect_timeout_seconds, at most timeout_seconds): a connect under way when the
        deadline passes has no socket to shut yet and ends by its own timeout. No retries within a
        call; name resolution (DNS) is the system resolver's and not bounded here."""
        one = self.spec.timeout_seconds + min(self.spec.connect_timeout_seconds, self.spec.timeout_seconds)
        phases = 2 if is_url(self.spec.wsdl) else 1
        return phases * one, ("timeout_seconds",)

    # ------------------------------------------------------------------ verbs

    def check(self) -> CheckResult:
        try:
            ops = sorted(self._operations())
            address = self.address
        except DeliveryError as exc:
            return CheckResult(ok=False, message=str(exc))
        except Exception as exc:
            return CheckResult(ok=False, message=str(self._error(exc)))
        missing = [
            f"{verb}.operation {call.operation} ({self.where(verb, 'operation')})"
            for verb, call in (
                ("check", self.spec.check),
                ("submit", self.spec.submit),
                ("status", self.spec.status),
                ("verify", self.spec.verify),
            )
            if call is not None and call.operation not in ops
        ]
        if missing:
            return CheckResult(ok=False, message=f"WSDL 缺少操作 (WSDL lacks operations): {'; '.join(missing)}")
        found = f"WSDL OK ({len(ops)} operations), endpoint {address}"
        probe = self.spec.check
        if probe is None:
            credentials = [k for k in ("wsse", "signature") if getattr(self.spec, k) is not None]
            if credentials:
                # reading the WSDL proves nothing about a password or a key: a wrong one must not check OK
                return CheckResult(
                    ok=False,
                    message=f"{found}; 已配置凭据 ({', '.join(credentials)}) 但未配置探测操作，凭据未验证 — "
                    f"请配置 check (credentials configured but no check probe: add `check: {{operation, "
                    f"message}}` naming a cheap authenticated query, see docs/connect/soap.md) "
                    f"({self.where(credentials[0])})",
                )
            return CheckResult(ok=True, message=f"{found}; 未配置凭据 (no credentials to prove)")
        try:
            answer = self._call(probe, {}, "check")
            if probe.ok is not None and mapping.search(probe.ok, answer, self.where("check", "ok")) is not True:
                return CheckResult(
                    ok=False, message=f"{self.where('check', 'ok')}: 探测应答不满足 {probe.ok!r} (probe answer not ok)"
                )
        except DeliveryError as exc:
            return CheckResult(ok=False, message=f"探测 {probe.operation} 失败 (probe failed): {exc}")
        return CheckResult(ok=True, message=f"{found}; probe {probe.operation} OK (credentials accepted)")

    def _submit_call(self) -> Call:
        if self.spec.submit is None:
            raise DeliveryError(
                f"{self.where('submit')}: 未配置 submit (no submit operation configured)", retryable=False
            )
        return self.spec.submit

    def submit(self, part: PartMessage) -> Receipt:
        call = self._submit_call()
        assert self.spec.submit is not None
        context = mapping.part_context(part, self.spec.materials, self.materials)
        answer = self._call(call, context, "submit")
        remote_id = part.part_id
        if self.spec.submit.remote_id:
            remote_id = mapping.search(
                self.spec.submit.remote_id, answer, self.where("submit", "remote_id"), required=True
            )
        update = None
        decision = self.spec.submit.decision
        decision_error = None
        if decision is not None:
            where = self.where("submit", "decision", "status")
            raw = mapping.search(decision.status, answer, where)
            # no decision value: not decided yet (as the REST connector reads it), no update
            if raw is not None:
                try:
                    status = mapping.status(raw, self.spec.status_map, where)
                    reason = (
                        mapping.search(decision.reason, answer, self.where("submit", "decision", "reason"))
                        if decision.reason
                        else None
                    )
                except mapping.MappingError as exc:
                    # the department has opened the case: the delivery stands (a dead letter would
                    # send it again); the unreadable decision goes to ops and the officer
                    decision_error = str(exc)
                else:
                    update = Update(
                        part_id=part.part_id,
                        remote_id=str(remote_id),
                        status=status,  # type: ignore[arg-type]  # checked by mapping.status
                        reason=None if reason is None else str(reason),
                    )
        return Receipt(part_id=part.part_id, remote_id=str(remote_id), update=update, decision_error=decision_error)

    def preview(self, part: PartMessage) -> list[Preview]:
        call = self._submit_call()
        context = mapping.part_context(part, self.spec.materials, self.materials)
        operation, message = self._message(call, context, "submit")
        try:
            envelope = self.client.create_message(self.service, call.operation, **message)
        except (TypeError, zx.ValidationError) as exc:
            raise mapping.MappingError(
                f"{self.where('submit', 'message')}: 消息与WSDL不符 (the message does not fit {call.operation}): {exc}"
            ) from None
        for security in envelope.iter(f"{{{WSSE}}}Security"):  # the token, a digest or a signature: not shown
            security.clear()
            security.text = "***"
        action = operation.soapaction or ""
        return [
            Preview(
                summary=f"SOAP {call.operation} at {self.address}",
                headers={"SOAPAction": f'"{action}"'},
                body=etree.tostring(envelope, encoding="unicode", pretty_print=True),
            )
        ]

    def poll(self, receipts: list[Receipt]) -> list[Update | PollFailure]:
        call = self.spec.status
        if call is None:  # a stateless system: decisions came with the submissions
            return []
        out: list[Update | PollFailure] = []
        deadline = clock.monotonic() + self.spec.max_poll_seconds
        limit = f"max_poll_seconds ({self.spec.max_poll_seconds:g} s)"
        for r in in_turn(self.name, receipts, deadline, limit):
            try:
                answer = self._call(call, {"remote_id": r.remote_id, "part_id": r.part_id}, "status")
                raw = mapping.search(call.status, answer, self.where("status", "status"))
                status = mapping.status(raw, self.spec.status_map, self.where("status", "status"))
                reason = mapping.search(call.reason, answer, self.where("status", "reason")) if call.reason else None
            except DeliveryError as exc:
                if exc.retryable:  # the system is unreachable: the whole poll is tried again later
                    raise
                out.append(PollFailure(part_id=r.part_id, remote_id=r.remote_id, message=str(exc)))
                continue
            out.append(
                Update(
                    part_id=r.part_id,
                    remote_id=r.remote_id,
                    status=status,  # type: ignore[arg-type]
                    reason=None if reason is None else str(reason),
                )
            )
        return out

    def verify(self, kind: str, subject: dict[str, Any]) -> Verification:
        call = self.spec.verify
        if call is None:
            raise Unsupported(f"{self.name}: 未配置 verify (no verify operation configured)")
        answer = self._call(call, {"kind": kind, "subject": subject}, "verify")
        ok = mapping.search(call.ok, answer, self.where("verify", "ok")) is True
        if call.detail is None:
            detail = answer
        else:
            detail = {
                k: mapping.search(expr, answer, self.where("verify", "detail", k)) for k, expr in call.detail.items()
            }
        return Verification(kind=kind, ok=ok, detail=detail)
