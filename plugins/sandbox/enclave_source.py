"""A sandbox enclave-window system (e.g. the Hangzhou 飞地 desk's own intake system) offering
intake batches over REST, as the `rest` connector's intake verbs expect:

    GET  /api/intake/batches                 {"items": [{"id", "complete", "files": [...]}]}
    GET  /api/intake/batches/{id}            {"id", "complete", "files": [{"name", "size"}]}
    GET  /api/intake/batches/{id}/files/{p}  the file's bytes
    POST /api/intake/batches/{id}/ack        body: error report (JSON lines, may be empty)
    POST /api/intake/batches/{id}/reject     body: the quarantine report

Batches live in a folder: `<root>/<id>/…` with `<root>/<id>.ok` once complete (written last).
Acknowledged batches move to `<root>/done/`, rejected ones to `<root>/rejected/`; reports are
kept in `<root>/errors/<id>.jsonl`, where the desk's staff find them."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

PREFIX = "/api/intake/batches"
RESERVED = ("done", "rejected", "errors")


class EnclaveSource:
    def __init__(self, root: Path, *, token: str, port: int = 0, name: str = "杭州飞地窗口受理系统"):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.token, self.name = token, name
        self.down = False
        self.requests: Counter[str] = Counter()  # "GET files", "POST ack", … (for tests)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api"

    def start(self) -> EnclaveSource:
        threading.Thread(target=self._server.serve_forever, name="sandbox-enclave", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def report(self, batch_id: str) -> str | None:
        path = self.root / "errors" / f"{batch_id}.jsonl"
        return path.read_text(encoding="utf-8") if path.exists() else None

    def _batch_dir(self, batch_id: str) -> Path | None:
        if batch_id in RESERVED or batch_id.startswith(".") or "/" in batch_id:
            return None
        path = self.root / batch_id
        return path if path.is_dir() else None

    def _describe(self, path: Path) -> dict:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {
            "id": path.name,
            "complete": (self.root / f"{path.name}.ok").exists(),
            "files": [{"name": p.relative_to(path).as_posix(), "size": p.stat().st_size} for p in files],
        }

    def _finish(self, batch_id: str, where: str, report: bytes) -> bool:
        with self._lock:
            path = self._batch_dir(batch_id)
            if path is None:
                return (self.root / where / batch_id).exists()  # repeated after a lost answer
            if report:
                (self.root / "errors").mkdir(exist_ok=True)
                (self.root / "errors" / f"{batch_id}.jsonl").write_bytes(report)
            target = self.root / where
            target.mkdir(exist_ok=True)
            final, n = target / batch_id, 1
            while final.exists():
                n += 1
                final = target / f"{batch_id}.{n}"
            (self.root / f"{batch_id}.ok").unlink(missing_ok=True)
            shutil.move(path, final)
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *_args) -> None:
                pass

            def _send(self, status: int, body: dict | None = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != f"Bearer {source.token}":
                    return self._send(401, {"error": "unauthorised"})
                if source.down:
                    return self._send(503, {"error": "unavailable"})
                path = unquote(urlsplit(self.path).path)
                if (self.command, path) == ("GET", "/api/health"):
                    return self._send(200, {"ok": True, "system": source.name})
                if not path.startswith(PREFIX):
                    return self._send(404, {"error": "no such route"})
                rest = [p for p in path[len(PREFIX) :].split("/") if p]
                if self.command == "GET" and not rest:
                    items = [
                        source._describe(p)
                        for p in sorted(source.root.iterdir())
                        if p.is_dir() and p.name not in RESERVED and not p.name.startswith(".")
                    ]
                    return self._send(200, {"items": items})
                folder = source._batch_dir(rest[0]) if rest else None
                if self.command == "POST" and len(rest) == 2 and rest[1] in ("ack", "reject"):
                    source.requests[f"POST {rest[1]}"] += 1
                    where = "done" if rest[1] == "ack" else "rejected"
                    ok = source._finish(rest[0], where, body)
                    return self._send(200 if ok else 404, {"ok": ok})
                if folder is None:
                    return self._send(404, {"error": "no such batch"})
                if self.command == "GET" and len(rest) == 1:
                    return self._send(200, source._describe(folder))
                if self.command == "GET" and len(rest) >= 3 and rest[1] == "files":
                    source.requests["GET files"] += 1
                    target = (folder / "/".join(rest[2:])).resolve()
                    if not target.is_relative_to(folder) or not target.is_file():
                        return self._send(404, {"error": "no such file"})
                    return self._send(200, raw=target.read_bytes())
                return self._send(404, {"error": "no such route"})

            do_GET = do_POST = _handle

        return Handler
