"""A sandbox 公安/户籍 system speaking SOAP 1.1 (document/literal) on 127.0.0.1, with its WSDL,
WS-Security UsernameToken (digest) checked on every call. It takes parts idempotently, answers
status queries, verifies household registration (网上核验), and can be made slow, down, faulty
or hostile (a response with a DTD and entity expansion, which the hub must refuse to parse).

    GET  /gongan?wsdl     the WSDL
    POST /gongan          SubmitPart | QueryStatus | VerifyHousehold
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from lxml import etree
from zeep.wsse.signature import verify_envelope

NS = "urn:taishun:gongan:1"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"

WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{ns}" targetNamespace="{ns}" name="GonganService">
  <types>
    <xsd:schema targetNamespace="{ns}" elementFormDefault="qualified">
      <xsd:element name="SubmitPart"><xsd:complexType><xsd:sequence>
        <xsd:element name="partId" type="xsd:string"/>
        <xsd:element name="itemCode" type="xsd:string"/>
        <xsd:element name="applicantName" type="xsd:string"/>
        <xsd:element name="applicantId" type="xsd:string"/>
        <xsd:element name="detail" type="xsd:string" minOccurs="0"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="SubmitPartResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="caseId" type="xsd:string"/>
        <xsd:element name="status" type="xsd:string"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="QueryStatus"><xsd:complexType><xsd:sequence>
        <xsd:element name="caseId" type="xsd:string"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="QueryStatusResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="caseId" type="xsd:string"/>
        <xsd:element name="status" type="xsd:string"/>
        <xsd:element name="reason" type="xsd:string" minOccurs="0"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="VerifyHousehold"><xsd:complexType><xsd:sequence>
        <xsd:element name="idNumber" type="xsd:string"/>
        <xsd:element name="name" type="xsd:string"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="VerifyHouseholdResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="match" type="xsd:boolean"/>
        <xsd:element name="address" type="xsd:string" minOccurs="0"/>
      </xsd:sequence></xsd:complexType></xsd:element>
    </xsd:schema>
  </types>
  {messages}
  <portType name="GonganPort">{port_ops}</portType>
  <binding name="GonganBinding" type="tns:GonganPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding_ops}
  </binding>
  <service name="GonganService">
    <port name="GonganPort" binding="tns:GonganBinding"><soap:address location="{location}"/></port>
  </service>
</definitions>
"""
OPERATIONS = ("SubmitPart", "QueryStatus", "VerifyHousehold")

HOSTILE = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soap:Envelope xmlns:soap="{soap}"><soap:Body><SubmitPartResponse xmlns="{ns}">
<caseId>&lol3;</caseId><status>received</status></SubmitPartResponse></soap:Body></soap:Envelope>"""


def wsdl(location: str) -> str:
    messages = "".join(
        f'<message name="{op}In"><part name="parameters" element="tns:{op}"/></message>'
        f'<message name="{op}Out"><part name="parameters" element="tns:{op}Response"/></message>'
        for op in OPERATIONS
    )
    port_ops = "".join(
        f'<operation name="{op}"><input message="tns:{op}In"/><output message="tns:{op}Out"/></operation>'
        for op in OPERATIONS
    )
    binding_ops = "".join(
        f'<operation name="{op}"><soap:operation soapAction="{NS}#{op}"/>'
        '<input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>'
        for op in OPERATIONS
    )
    return WSDL.format(ns=NS, messages=messages, port_ops=port_ops, binding_ops=binding_ops, location=location)


def password_digest(nonce_b64: str, created: str, password: str) -> str:
    raw = base64.b64decode(nonce_b64) + created.encode() + password.encode()
    return base64.b64encode(hashlib.sha1(raw).digest()).decode()  # SHA-1: what the WS-Security spec defines


@dataclass
class Case:
    id: str
    part_id: str
    fields: dict[str, str]
    status: str = "received"
    reason: str | None = None


class SoapDepartment:
    def __init__(
        self,
        *,
        username: str = "hub",
        password: str = "",
        households: dict[str, tuple[str, str]] | None = None,
        latency: float = 0.0,
        port: int = 0,
        trusted_cert: str | None = None,
        failure_rate: float = 0.0,
        seed: int | None = None,
    ):
        self.username, self.password = username, password
        self.households = dict(households or {})  # id number -> (name, address)
        self.latency = latency
        self.failure_rate = failure_rate  # share of calls answered 503, like an overloaded system
        self._random = random.Random(seed)
        self.trusted_cert = trusted_cert  # when set, every request must carry a valid XML signature by it
        self.down = False
        self.fault: str | None = None  # "Server" or "Client": answer every call with that fault
        self.hostile = False  # answer with a DTD and nested entities
        self.cases: dict[str, Case] = {}
        self.by_part_id: dict[str, str] = {}
        self.received: Counter[str] = Counter()  # every SubmitPart per part id, replays included
        self.submissions: Counter[str] = Counter()  # cases opened per part id (a replay opens none)
        self.wsdl_fetches = 0
        self.location: str | None = None  # the service address the WSDL announces (default: this server)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/gongan"

    @property
    def wsdl_url(self) -> str:
        return self.url + "?wsdl"

    def start(self) -> SoapDepartment:
        threading.Thread(target=self._server.serve_forever, name="sandbox-gongan", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def decide(self, case_id: str, status: str, reason: str | None = None) -> None:
        with self._lock:
            self.cases[case_id].status, self.cases[case_id].reason = status, reason

    # ------------------------------------------------------------------ SOAP

    def _authorised(self, envelope: etree._Element) -> bool:
        token = envelope.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username")
        pw = token.find(f"{{{WSSE}}}Password")
        nonce, created = token.findtext(f"{{{WSSE}}}Nonce"), token.findtext(f"{{{WSU}}}Created")
        if (
            user != self.username
            or pw is None
            or not nonce
            or not created
            or not pw.get("Type", "").endswith("#PasswordDigest")
        ):
            return False
        return pw.text == password_digest(nonce, created, self.password)

    def _answer(self, op: str, body: etree._Element) -> str:
        def text(name: str) -> str:
            return body.findtext(f"{{{NS}}}{name}") or ""

        with self._lock:
            if op == "SubmitPart":
                part_id = text("partId")
                self.received[part_id] += 1
                if part_id not in self.by_part_id:
                    case_id = f"GA-{len(self.cases) + 1:06d}"
                    self.cases[case_id] = Case(case_id, part_id, {c.tag.split("}")[1]: c.text or "" for c in body})
                    self.by_part_id[part_id] = case_id
                    self.submissions[part_id] += 1
                case = self.cases[self.by_part_id[part_id]]
                return f"<caseId>{case.id}</caseId><status>{case.status}</status>"
            if op == "QueryStatus":
                case = self.cases.get(text("caseId"))
                if case is None:
                    raise LookupError("no such case")
                reason = f"<reason>{escape(case.reason)}</reason>" if case.reason else ""
                return f"<caseId>{case.id}</caseId><status>{case.status}</status>{reason}"
            name, address = self.households.get(text("idNumber"), (None, None))
            match = name is not None and name == text("name")
            return f"<match>{'true' if match else 'false'}</match>" + (
                f"<address>{escape(address)}</address>" if match else ""
            )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dept = self
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without NODELAY, Nagle and delayed ACK
                # hold every response ~40 ms on loopback
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *_args) -> None:
                pass

            def _send(self, status: int, body: str, content_type: str = "text/xml; charset=utf-8") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, code: str, message: str) -> None:
                self._send(
                    500,
                    f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode>'
                    f"<faultstring>{escape(message)}</faultstring></soap:Fault></soap:Body></soap:Envelope>",
                )

            def do_GET(self) -> None:
                if self.path.endswith("?wsdl"):
                    dept.wsdl_fetches += 1
                    return self._send(200, wsdl(dept.location or dept.url))
                return self._send(404, "no such resource", "text/plain")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if dept.latency:
                    time.sleep(dept.latency)
                if dept.down or (dept.failure_rate and dept._random.random() < dept.failure_rate):
                    return self._send(503, "unavailable", "text/plain")
                if dept.fault:
                    return self._fault(dept.fault, f"sandbox {dept.fault} fault")
                try:
                    envelope = etree.fromstring(body, parser)
                except etree.XMLSyntaxError:
                    return self._fault("Client", "malformed XML")
                if not dept._authorised(envelope):
                    return self._fault("Client", "WS-Security authentication failed")
                if dept.trusted_cert:
                    try:
                        verify_envelope(envelope, dept.trusted_cert)
                    except Exception:
                        return self._fault("Client", "WS-Security signature invalid")
                request = next(iter(envelope.find(f"{{{SOAP}}}Body")), None)
                op = etree.QName(request).localname if request is not None else ""
                if op not in OPERATIONS:
                    return self._fault("Client", f"unknown operation {op}")
                if dept.hostile:
                    return self._send(200, HOSTILE.format(soap=SOAP, ns=NS))
                try:
                    inner = dept._answer(op, request)
                except LookupError as exc:
                    return self._fault("Client", str(exc))
                self._send(
                    200,
                    f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><{op}Response xmlns="{NS}">'
                    f"{inner}</{op}Response></soap:Body></soap:Envelope>",
                )

        return Handler
