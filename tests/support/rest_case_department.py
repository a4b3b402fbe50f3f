"""A department system with its OWN REST API, for the `rest` connector's tests (nothing like the
hub's API or the sandbox's): a county 医保 case system behind an OAuth2 client-credentials token
endpoint, on 127.0.0.1 (an ephemeral port), HTTP or HTTPS with client certificates.

    POST /oauth/token          grant_type=client_credentials, client_id, client_secret (form; or Basic)
                               -> {"access_token", "token_type": "Bearer", "expires_in"}
    GET  /v2/me                -> {"client": id}                         (every /v2 call: Bearer token)
    POST /v2/cases             X-Request-Id: <idempotency key>; JSON, or multipart (`case` JSON + `file` parts)
                               -> 201 {"code": 0, "data": {"caseNo": "AJ…"}} (200 on a replay)
    GET  /v2/cases/<no>        -> {"data": {"caseNo", "state", "remark", "files": [{"fileName", "href"}]}}
    GET  /v2/cases?ids=a,b[&cursor=c]  -> {"data": {"items": [...]}, "meta": {"next": c'|null}} (2 a page)
    GET  /v2/files/<id>        -> a result PDF
    POST /v2/verify/<kind>     {"idNo", "name"} -> {"result": {"valid": bool, "source": …}}

States: NEW, WIP, DONE, BH (补正), REJ — and whatever a test sets. Attachments are verified here:
each inline `data` (base64), multipart file or pull `url` (fetched from the hub) is hashed and
compared with the `sha256` the case declares; the outcome is kept per case in `verified`."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

RESULT_PDF = b"%PDF-1.4\n% case system decision\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PAGE = 2


@dataclass
class Case:
    no: str
    key: str
    body: dict[str, Any]
    state: str = "NEW"
    remark: str | None = None
    files: list[str] = field(default_factory=list)


@dataclass
class Attachment:
    name: str
    declared: str
    actual: str | None  # sha256 of the bytes the department got (None: none came)

    @property
    def ok(self) -> bool:
        return self.actual == self.declared


class CaseDepartment:
    def __init__(
        self,
        *,
        client_id: str = "tongban-hub",
        client_secret: str = "case-secret-1",
        token_ttl: int = 3600,
        tls: ssl.SSLContext | None = None,
    ):
        self.client_id, self.client_secret, self.token_ttl = client_id, client_secret, token_ttl
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.issued = 0
        self.refused = 0  # /v2 calls answered 401 (no, a wrong or an expired token)
        self.down = False  # 503 to everything but the token endpoint
        self.trickle: float | None = None  # bytes per second of every GET /v2/cases… answer
        self.latency = 0.0
        self.token_latency = 0.0  # before every token answer
        self.file_latency = 0.0  # before every result document
        self.cases: dict[str, Case] = {}
        self.by_key: dict[str, str] = {}
        self.received: Counter[str] = Counter()  # submit requests per key, replays included
        self.verified: dict[str, list[Attachment]] = {}
        self.files: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()  # "GET /v2/cases", … (paths without ids)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"

    @property
    def root(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.root + "/v2"

    def start(self) -> CaseDepartment:
        threading.Thread(target=self._server.serve_forever, name="case-dept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CaseDepartment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def decide(self, no: str, state: str, remark: str | None = None, *, documents: int = 1, padding: int = 0) -> None:
        """The case decided; DONE comes with `documents` result PDFs (each `padding` bytes longer)."""
        with self._lock:
            case = self.cases[no]
            case.state, case.remark = state, remark
            if state == "DONE":
                for _ in range(documents):
                    fid = f"{no}-R{len(case.files) + 1}"
                    self.files[fid] = RESULT_PDF + no.encode() + b"%" * padding
                    case.files.append(fid)

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dept = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _send(
                self, status: int, payload: Any = None, *, raw: bytes | None = None, trickle: bool = False
            ) -> None:
                body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/pdf" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if trickle and dept.trickle:
                    step = max(int(dept.trickle / 20), 1)
                    try:
                        for i in range(0, len(body), step):
                            self.wfile.write(body[i : i + step])
                            self.wfile.flush()
                            time.sleep(step / dept.trickle)
                    except OSError:  # the client gave up on us: what a trickle is for
                        self.close_connection = True
                    return
                self.wfile.write(body)

            def _token_ok(self) -> bool:
                got = self.headers.get("Authorization", "")
                token = got.removeprefix("Bearer ")
                with dept._lock:
                    return got.startswith("Bearer ") and dept.tokens.get(token, 0) > time.monotonic()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                path = unquote(url.path)
                if dept.latency:
                    time.sleep(dept.latency)
                if (self.command, path) == ("POST", "/oauth/token"):
                    time.sleep(dept.token_latency)
                    return self._token(body)
                if not path.startswith("/v2/"):
                    return self._send(404, {"code": 404, "msg": "no such route"})
                if not self._token_ok():
                    with dept._lock:
                        dept.refused += 1
                    return self._send(401, {"code": 401, "msg": "invalid token"})
                if dept.down:
                    return self._send(503, {"code": 503, "msg": "系统维护中"})
                parts = path.split("/")[2:]
                with dept._lock:
                    dept.requests[f"{self.command} /v2/{parts[0]}"] += 1
                if (self.command, parts) == ("GET", ["me"]):
                    return self._send(200, {"client": dept.client_id})
                if (self.command, parts) == ("POST", ["cases"]):
                    return self._submit(body)
                if self.command == "GET" and parts == ["cases"]:
                    return self._list(parse_qs(url.query))
                if self.command == "GET" and len(parts) == 2 and parts[0] == "cases":
                    with dept._lock:
                        case = dept.cases.get(parts[1])
                        record = dept._record(case) if case else None
                    if record is None:
                        return self._send(404, {"code": 404, "msg": "no such case"})
                    return self._send(200, {"code": 0, "data": record}, trickle=True)
                if self.command == "GET" and len(parts) == 2 and parts[0] == "files":
                    time.sleep(dept.file_latency)
                    doc = dept.files.get(parts[1])
                    return self._send(200, raw=doc) if doc else self._send(404, {"code": 404})
                if self.command == "POST" and len(parts) == 2 and parts[0] == "verify":
                    data = json.loads(body)
                    valid = data.get("idNo", "").endswith(("7", "X")) and bool(data.get("name"))
                    return self._send(200, {"code": 0, "result": {"valid": valid, "source": f"{parts[1]}-db"}})
                return self._send(404, {"code": 404, "msg": "no such route"})

            def _token(self, body: bytes) -> None:
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                    form |= {"client_id": unquote(cid), "client_secret": unquote(secret)}
                if form.get("grant_type") != "client_credentials":
                    return self._send(400, {"error": "unsupported_grant_type"})
                if (form.get("client_id"), form.get("client_secret")) != (dept.client_id, dept.client_secret):
                    return self._send(401, {"error": "invalid_client"})
                token = secrets.token_urlsafe(16)
                with dept._lock:
                    dept.tokens[token] = time.monotonic() + dept.token_ttl
                    dept.issued += 1
                return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": dept.token_ttl})

            def _submit(self, body: bytes) -> None:
                key = self.headers.get("X-Request-Id")
                if not key:
                    return self._send(400, {"code": 400, "msg": "X-Request-Id required"})
                ctype = self.headers.get("Content-Type", "")
                uploads: list[tuple[str, bytes]] = []
                if ctype.startswith("multipart/form-data"):
                    data, uploads = _multipart(ctype, body)
                else:
                    data = json.loads(body)
                with dept._lock:
                    dept.received[key] += 1
                    if key in dept.by_key:
                        return self._send(200, {"code": 0, "data": {"caseNo": dept.by_key[key]}})
                    no = f"AJ2026{len(dept.cases) + 1:06d}"
                    dept.cases[no] = Case(no, key, data)
                    dept.by_key[key] = no
                # verified outside the lock (a pull fetches from the hub): the bytes it was sent
                checks = _verify(data.get("attachments") or [], uploads)
                with dept._lock:
                    dept.verified[no] = checks
                return self._send(201, {"code": 0, "data": {"caseNo": no}})

            def _list(self, query: dict[str, list[str]]) -> None:
                ids = [i for i in query.get("ids", [""])[0].split(",") if i]
                cursor = query.get("cursor", [""])[0]
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
                with dept._lock:
                    found = [dept._record(dept.cases[i]) for i in ids if i in dept.cases]
                window = found[start : start + PAGE]
                more = start + PAGE < len(found)
                nxt = base64.urlsafe_b64encode(str(start + PAGE).encode()).decode() if more else None
                return self._send(200, {"code": 0, "data": {"items": window}, "meta": {"next": nxt}})

            do_GET = do_POST = _handle

        return Handler

    def _record(self, case: Case) -> dict[str, Any]:
        return {
            "caseNo": case.no,
            "state": case.state,
            "remark": case.remark,
            "files": [
                {"fileName": f"医保办理结果{i + 1}.pdf", "href": f"/v2/files/{f}"} for i, f in enumerate(case.files)
            ],
        }


def _multipart(ctype: str, body: bytes) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body
    )
    data: dict[str, Any] = {}
    uploads = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "case":
            data = json.loads(payload)
        elif name == "file":
            uploads.append((part.get_filename() or "", payload))
    return data, uploads


def _verify(attachments: list[dict[str, Any]], uploads: list[tuple[str, bytes]]) -> list[Attachment]:
    """Each declared attachment checked against the bytes that came: inline (`data`), uploaded
    (multipart, by file name) or fetched (`url`, a pull link to the hub)."""
    uploaded = dict(uploads)
    out = []
    for a in attachments:
        name, declared = str(a.get("fileName")), str(a.get("sha256"))
        content: bytes | None = None
        if a.get("data"):
            content = base64.b64decode(a["data"])
        elif name in uploaded:
            content = uploaded[name]
        elif a.get("url"):
            response = httpx.get(a["url"], timeout=10)
            content = response.content if response.status_code == 200 else None
        out.append(Attachment(name, declared, hashlib.sha256(content).hexdigest() if content is not None else None))
    return out
