"""A sandbox SMS gateway on 127.0.0.1 for the reminders (hub.jobs.reminders): takes POST JSON
{ref, phone, text}, keeps each `ref` once (its idempotency key: the same ref again is answered 200
and not sent twice), and can be told to refuse (`failing`). A real server on loopback, in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Gateway:
    def __init__(self) -> None:
        self.sent: dict[str, dict] = {}
        self.failing = False
        self.lock = threading.Lock()


@contextmanager
def sms_gateway() -> Iterator[tuple[str, Gateway]]:
    gateway = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("content-length") or 0), 64 * 1024)
            body = json.loads(self.rfile.read(length) or b"{}")
            if gateway.failing:
                self.send_response(503)
            else:
                with gateway.lock:
                    gateway.sent.setdefault(str(body.get("ref")), body)
                self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sms", gateway
    finally:
        server.shutdown()
        server.server_close()
