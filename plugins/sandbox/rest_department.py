"""A sandbox department system speaking the `rest` connector's API, on 127.0.0.1: it behaves
like a county 医保 system (takes parts idempotently, decides them, serves result PDFs) and can be
made slow, flaky or down. Tests, benchmarks and the demo use it over real sockets.

API (JSON; bearer token or HMAC headers, see plugins.rest):
    GET  /api/health
    POST /api/parts                 Idempotency-Key: <part id>  -> 201 {id, status} (200 on replay)
    GET  /api/parts?ids=a,b&page=N&page_size=M  -> {items: [{id, part_id, status, reason, documents}], next_page}
    GET  /api/documents/<id>        -> the document's bytes
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESULT_PDF = b"%PDF-1.4\n% sandbox decision\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@dataclass
class SandboxPart:
    id: str
    part_id: str
    body: dict[str, Any]
    status: str = "received"
    received_at: float = field(default_factory=time.monotonic)
    reason: str | None = None
    documents: list[str] = field(default_factory=list)


class RestDepartment:
    """Start with `start()`, stop with `stop()`; `url` is the API root."""

    def __init__(
        self,
        *,
        name: str = "医保",
        prefix: str = "YB",
        token: str | None = None,
        hmac_keys: dict[str, str] | None = None,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        seed: int | None = None,
        port: int = 0,
        decide_after: float | None = None,
    ):
        self.name, self.prefix = name, prefix
        self.token, self.hmac_keys = token, dict(hmac_keys or {})
        self.latency, self.failure_rate = latency, failure_rate
        self.decide_after = decide_after  # approve by itself this long after receipt (None: never)
        self.down = False  # answer 503 to everything, like a system under maintenance
        self.parts: dict[str, SandboxPart] = {}  # by remote id
        self.by_part_id: dict[str, str] = {}
        self.documents: dict[str, bytes] = {}
        self.received: Counter[str] = Counter()  # every submit request per part id, replays included
        self.submissions: Counter[str] = Counter()  # cases opened per part id (a replay opens none)
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._connections: set[socket.socket] = set()  # open keep-alive connections, cut on stop()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api"

    def start(self) -> RestDepartment:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"sandbox-{self.prefix}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a machine going away: no new connections, and open ones are cut."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()

    def decide(self, remote_id: str, status: str, reason: str | None = None) -> None:
        """What the department's own officer does in its own system."""
        with self._lock:
            self._decide_locked(self.parts[remote_id], status, reason)

    def _decide_locked(self, part: SandboxPart, status: str, reason: str | None) -> None:
        part.status, part.reason = status, reason
        if status == "approved":
            doc_id = f"{part.id}-result"
            self.documents[doc_id] = RESULT_PDF + part.id.encode()
            part.documents.append(doc_id)

    def _auto_decide_locked(self) -> None:
        if self.decide_after is None:
            return
        now = time.monotonic()
        for part in self.parts.values():
            if part.status == "received" and now - part.received_at >= self.decide_after:
                self._decide_locked(part, "approved", None)

    # ------------------------------------------------------------------ HTTP

    def _authorised(self, handler: BaseHTTPRequestHandler, body: bytes) -> bool:
        if self.token and handler.headers.get("Authorization") == f"Bearer {self.token}":
            return True
        key = handler.headers.get("X-Hub-Key")
        if key and key in self.hmac_keys:
            ts = handler.headers.get("X-Hub-Timestamp", "0")
            if not (ts.isascii() and ts.isdigit()) or abs(time.time() - int(ts)) > 300:
                return False
            message = f"{handler.command}\n{handler.path}\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
            expected = hmac.new(self.hmac_keys[key].encode(), message, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, handler.headers.get("X-Hub-Signature", ""))
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dept = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without NODELAY, Nagle and delayed ACK
                # hold every response ~40 ms on loopback
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with dept._lock:
                    dept._connections.add(self.connection)

            def finish(self) -> None:
                with dept._lock:
                    dept._connections.discard(self.connection)
                super().finish()

            def log_message(self, *_args) -> None:  # quiet: tests read assertions, not access logs
                pass

            def _send(
                self, status: int, payload: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None
            ) -> None:
                body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/pdf" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if dept.latency:
                    time.sleep(dept.latency)
                if not dept._authorised(self, body):
                    return self._send(401, {"error": "unauthorised"})
                if dept.down or (dept.failure_rate and dept._random.random() < dept.failure_rate):
                    return self._send(503, {"error": "unavailable"}, headers={"Retry-After": "0"})
                url = urlsplit(self.path)
                route = (self.command, url.path)
                if route == ("GET", "/api/health"):
                    return self._send(200, {"ok": True, "system": dept.name})
                if route == ("POST", "/api/parts"):
                    return self._submit(body)
                if route == ("GET", "/api/parts"):
                    return self._list(parse_qs(url.query))
                if self.command == "GET" and url.path.startswith("/api/documents/"):
                    doc = dept.documents.get(url.path.rsplit("/", 1)[-1])
                    return (
                        self._send(200, raw=doc) if doc is not None else self._send(404, {"error": "no such document"})
                    )
                return self._send(404, {"error": "no such route"})

            def _submit(self, body: bytes) -> None:
                key = self.headers.get("Idempotency-Key")
                try:
                    data = json.loads(body)
                except ValueError:
                    return self._send(400, {"error": "body is not JSON"})
                if not key or data.get("part_id") != key:
                    return self._send(400, {"error": "Idempotency-Key must equal part_id"})
                with dept._lock:
                    dept.received[key] += 1
                    if key in dept.by_part_id:
                        part = dept.parts[dept.by_part_id[key]]
                        return self._send(200, {"id": part.id, "status": part.status})
                    remote_id = f"{dept.prefix}-{len(dept.parts) + 1:06d}"
                    dept.parts[remote_id] = SandboxPart(remote_id, key, data)
                    dept.by_part_id[key] = remote_id
                    dept.submissions[key] += 1
                return self._send(201, {"id": remote_id, "status": "received"})

            def _list(self, query: dict[str, list[str]]) -> None:
                ids = [i for i in (query.get("ids", [""])[0]).split(",") if i]
                page, size = int(query.get("page", ["1"])[0]), int(query.get("page_size", ["100"])[0])
                with dept._lock:
                    dept._auto_decide_locked()
                    found = [dept.parts[i] for i in ids if i in dept.parts]
                    window = found[(page - 1) * size : page * size]
                    items = [
                        {
                            "id": p.id,
                            "part_id": p.part_id,
                            "status": p.status,
                            "reason": p.reason,
                            "documents": [
                                {"id": d, "name": f"{dept.name}办理结果.pdf", "media_type": "application/pdf"}
                                for d in p.documents
                            ],
                        }
                        for p in window
                    ]
                return self._send(200, {"items": items, "next_page": page + 1 if page * size < len(found) else None})

            do_GET = do_POST = _handle

        return Handler
