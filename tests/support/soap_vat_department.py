"""A test department speaking SOAP 1.1 document/literal on 127.0.0.1, shaped after the EU VIES
checkVat service and NOT the sandbox's API: its WSDL is tests/data/vies_vat.wsdl (types imported
from vies_vat_types.xsd beside it; soap:address the public https VIES address, which connections
must replace with `endpoint`). Every call carries a WS-Security UsernameToken (password digest).

    POST /taxation_customs/vies/services/checkVatService
        checkVat(countryCode, vatNumber) -> (countryCode, vatNumber, requestDate, valid: boolean, name, address)
            stateless: a lookup in `registry`
        submitCase(reference, countryCode, vatNumber, applicantName, attachment*{fileName, mediaType,
                   sha256, content: base64Binary | link: anyURI})
            -> (caseRef, valid: boolean, remark): idempotent on `reference`; decides at once whether
            the VAT number is registered (a stateless decision); each attachment's bytes (inline, or
            fetched from its link) are hashed here and kept for the tests
        getCase(caseRef) -> (caseRef, state, remark): the case's state, set by `decide`
    GET  /docs/NAME       documents served for WSDL-from-URL tests (`documents`)

Requests are parsed without DTDs, entities or network access; answers are built with lxml. It can
be made slow: `latency` before the answer's headers, `trickle` between the answer's bytes (with
`trickle_headers`, the status line and headers too), `stall_reading` a request."""

from __future__ import annotations

import base64
import gzip
import hashlib
import socket
import ssl
import sys
import threading
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lxml import etree

DATA = Path(__file__).resolve().parent.parent / "data"
WSDL = DATA / "vies_vat.wsdl"
PUBLIC_ADDRESS = "https://ec.europa.eu/taxation_customs/vies/services/checkVatService"
PATH = "/taxation_customs/vies/services/checkVatService"
TYPES = "urn:ec.europa.eu:taxud:vies:services:checkVat:types"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
MAX_REQUEST = 32 * 2**20


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # a client that gave up (a too-large or too-slow answer cut off) resets the connection:
        # expected in the tests, not worth a traceback; anything else is still printed
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Attachment:
    file_name: str
    media_type: str
    claimed_sha256: str
    content: bytes
    how: str  # "inline" or "link"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Case:
    ref: str
    reference: str
    country: str
    vat_number: str
    applicant: str
    attachments: list[Attachment] = field(default_factory=list)
    state: str = "OPEN"
    remark: str | None = None


def _digest(nonce_b64: str, created: str, password: str) -> str:
    raw = base64.b64decode(nonce_b64) + created.encode() + password.encode()
    return base64.b64encode(hashlib.sha1(raw).digest()).decode()  # SHA-1: what WS-Security defines


class VatDepartment:
    def __init__(
        self,
        *,
        username: str = "tongban",
        password: str = "",
        registry: dict | None = None,
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
    ):
        self.username, self.password = username, password
        self.registry: dict[tuple[str, str], tuple[str, str]] = dict(registry or {})  # (cc, no) -> (name, addr)
        self.down = False
        self.redirect_to: str | None = None  # answer every POST with a 302 there
        self.maintenance = False  # answer 200 with an HTML page, as a proxy in front of it might
        self.gzip = False  # answers gzip-encoded
        self.padding = 0  # bytes of whitespace inside the answer envelope (with gzip: a small bomb)
        self.trickle: float = 0.0  # seconds between the answer's bytes (a department stuck mid-answer)
        self.latency: float = 0.0  # seconds before the answer's headers (a slow department)
        self.trickle_headers = False  # with `trickle`: the status line and headers trickle too
        self.stall_reading: float = 0.0  # seconds before reading a request (a large one then cannot be sent)
        self.cases: dict[str, Case] = {}
        self.by_reference: dict[str, str] = {}
        self.received: Counter[str] = Counter()  # submitCase calls per reference, replays included
        self.submissions: Counter[str] = Counter()  # cases opened per reference
        self.calls: list[tuple[str, str]] = []  # (path, operation) of every authorised call
        self.documents: dict[str, bytes] = {}  # GET /docs/NAME
        self.fetched: list[str] = []  # GET paths asked for
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), self._handler())
        self.scheme = "https" if tls else "http"
        if tls:  # (certificate, key) PEM files: the department over TLS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    @property
    def endpoint(self) -> str:
        return self.base + PATH

    def start(self) -> VatDepartment:
        threading.Thread(target=self._server.serve_forever, name="test-vat", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def decide(self, ref: str, state: str, remark: str | None = None) -> None:
        with self._lock:
            self.cases[ref].state, self.cases[ref].remark = state, remark

    # ------------------------------------------------------------------ SOAP

    def _authorised(self, envelope: etree._Element) -> bool:
        token = envelope.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        pw = token.find(f"{{{WSSE}}}Password")
        nonce, created = token.findtext(f"{{{WSSE}}}Nonce"), token.findtext(f"{{{WSU}}}Created")
        if token.findtext(f"{{{WSSE}}}Username") != self.username or pw is None or not nonce or not created:
            return False
        return pw.get("Type", "").endswith("#PasswordDigest") and pw.text == _digest(nonce, created, self.password)

    def _answer(self, op: str, request: etree._Element, out: etree._Element) -> None:
        def text(node: etree._Element, name: str) -> str:
            return node.findtext(f"{{{TYPES}}}{name}") or ""

        def add(name: str, value: str | None) -> None:
            if value is not None:
                etree.SubElement(out, f"{{{TYPES}}}{name}").text = value

        if op == "checkVat":
            cc, number = text(request, "countryCode"), text(request, "vatNumber")
            found = self.registry.get((cc, number))
            add("countryCode", cc)
            add("vatNumber", number)
            add("requestDate", date.today().isoformat())
            add("valid", "true" if found else "false")
            add("name", found[0] if found else "---")
            add("address", found[1] if found else "---")
            return
        if op == "submitCase":
            reference = text(request, "reference")
            attachments = [self._attachment(a) for a in request.findall(f"{{{TYPES}}}attachment")]
            with self._lock:
                self.received[reference] += 1
                if reference not in self.by_reference:
                    ref = f"VAT-{len(self.cases) + 1:05d}"
                    self.cases[ref] = Case(
                        ref,
                        reference,
                        text(request, "countryCode"),
                        text(request, "vatNumber"),
                        text(request, "applicantName"),
                        attachments,
                    )
                    self.by_reference[reference] = ref
                    self.submissions[reference] += 1
                case = self.cases[self.by_reference[reference]]
            valid = (case.country, case.vat_number) in self.registry
            add("caseRef", case.ref)
            add("valid", "true" if valid else "false")
            add("remark", None if valid else "VAT number not registered")
            return
        with self._lock:
            case = self.cases.get(text(request, "caseRef"))
            if case is None:
                raise LookupError("no such case")
            add("caseRef", case.ref)
            add("state", case.state)
            add("remark", case.remark)

    def _attachment(self, node: etree._Element) -> Attachment:
        def text(name: str) -> str:
            return node.findtext(f"{{{TYPES}}}{name}") or ""

        if node.find(f"{{{TYPES}}}content") is not None:
            content, how = base64.b64decode(text("content"), validate=True), "inline"
        else:  # a pull link: fetched now, as a department would, over a real socket
            with urllib.request.urlopen(text("link"), timeout=10) as r:  # the hub's own link
                content, how = r.read(MAX_REQUEST), "link"
        return Attachment(text("fileName"), text("mediaType"), text("sha256"), content, how)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dept = self
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *_args) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "text/xml; charset=utf-8") -> None:
                if dept.latency and dept._stopping.wait(dept.latency):
                    return
                if dept.gzip:
                    body = gzip.compress(body)
                headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
                if dept.gzip:
                    headers["Content-Encoding"] = "gzip"
                if dept.trickle and dept.trickle_headers:
                    head = f"HTTP/1.1 {status} {self.responses[status][0]}\r\n" + "".join(
                        f"{k}: {v}\r\n" for k, v in headers.items()
                    )
                    body = (head + "\r\n").encode() + body  # all of it byte by byte below
                else:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                if not dept.trickle:
                    try:
                        self.wfile.write(body)
                    except OSError:  # the client gave up on a too-large answer: what a test wants
                        self.close_connection = True
                    return None
                for i in range(len(body)):
                    if dept._stopping.wait(dept.trickle):
                        return
                    try:
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up: what the test wants
                        return

            def _envelope(self) -> tuple[etree._Element, etree._Element]:
                envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
                return envelope, etree.SubElement(envelope, f"{{{SOAP}}}Body")

            def _fault(self, code: str, message: str) -> None:
                envelope, body = self._envelope()
                fault = etree.SubElement(body, f"{{{SOAP}}}Fault")
                etree.SubElement(fault, "faultcode").text = f"soap:{code}"
                etree.SubElement(fault, "faultstring").text = message
                self._send(500, etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))

            def do_GET(self) -> None:
                dept.fetched.append(self.path)
                name = self.path.removeprefix("/docs/")
                if self.path.startswith("/docs/") and name in dept.documents:
                    return self._send(200, dept.documents[name])
                return self._send(404, b"no such resource", "text/plain")

            def do_POST(self) -> None:
                if dept.stall_reading and dept._stopping.wait(dept.stall_reading):
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST:
                    return self._send(413, b"too large", "text/plain")
                data = self.rfile.read(length)
                if dept.down:
                    return self._send(503, b"unavailable", "text/plain")
                if dept.maintenance:
                    return self._send(200, "<html><body>系统维护中</body></html>".encode(), "text/html; charset=utf-8")
                if dept.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", dept.redirect_to)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if self.path != PATH:
                    return self._send(404, b"no such service", "text/plain")
                try:
                    envelope = etree.fromstring(data, parser)
                except etree.XMLSyntaxError:
                    return self._fault("Client", "malformed XML")
                if not dept._authorised(envelope):
                    return self._fault("Client", "WS-Security authentication failed")
                body = envelope.find(f"{{{SOAP}}}Body")
                request = next(iter(body), None) if body is not None else None
                op = etree.QName(request).localname if request is not None else ""
                if op not in ("checkVat", "submitCase", "getCase"):
                    return self._fault("Client", f"unknown operation {op}")
                dept.calls.append((self.path, op))
                answer, answer_body = self._envelope()
                out = etree.SubElement(answer_body, f"{{{TYPES}}}{op}Response", nsmap={None: TYPES})
                try:
                    dept._answer(op, request, out)
                except LookupError as exc:
                    return self._fault("Client", str(exc))
                except (ValueError, OSError) as exc:  # bad base64, a link that cannot be fetched
                    return self._fault("Client", f"bad attachment: {type(exc).__name__}")
                if dept.padding:
                    answer_body.tail = " " * dept.padding  # whitespace: still the same XML
                self._send(200, etree.tostring(answer, xml_declaration=True, encoding="utf-8"))

        return Handler


def main() -> None:
    """Run the test department for a walk-through (docs/connect/soap.md): Ctrl-C stops it."""
    import argparse
    import os

    ap = argparse.ArgumentParser(description="the VIES-shaped SOAP test department on 127.0.0.1")
    ap.add_argument("--port", type=int, default=8710)
    ap.add_argument("--username", default="tongban")
    ap.add_argument("--registered", action="append", default=[], help="CC:NUMBER a registered VAT number")
    args = ap.parse_args()
    registry = {tuple(r.split(":", 1)): ("registered company", "registered address") for r in args.registered}
    password = os.environ.get("VAT_WSSE_PASSWORD", "")
    dept = VatDepartment(username=args.username, password=password, registry=registry, port=args.port)
    print(f"endpoint: {dept.endpoint}  (WS-Security user {args.username}, password from $VAT_WSSE_PASSWORD)")
    try:
        dept._server.serve_forever()
    except KeyboardInterrupt:
        dept._server.server_close()


if __name__ == "__main__":
    main()
