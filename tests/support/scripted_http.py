"""A scripted HTTP server on 127.0.0.1 for the `rest` connector's tests: each path answers from
its script, in order (the last answer repeats), and every request's path and time are recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import SecretStr

from hub.connectors import PartMessage
from plugins.rest.connector import RestConnector
from plugins.rest.spec import RestSpec

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Scripted:
    """Answers each path from its script, in order (the last answer repeats), and records when
    each request came."""

    url: str = ""
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    seen: list[tuple[str, float]] = field(default_factory=list)
    heard: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # request target and headers
    trickle: dict[str, float] = field(default_factory=dict)  # path -> bytes per second of its body

    def times(self, path: str) -> list[float]:
        return [at for p, at in self.seen if p == path]


@contextmanager
def scripted_server() -> Iterator[Scripted]:
    scripted = Scripted()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args) -> None:
            pass

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            with lock:
                scripted.seen.append((path, time.monotonic()))
                scripted.heard.append((self.path, dict(self.headers.items())))
                script = scripted.scripts.get(path) or [(404, {}, b'{"error": "no such path"}')]
                status, headers, body = script.pop(0) if len(script) > 1 else script[0]
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:  # a script may leave it out, as a chunked stream would
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            rate = scripted.trickle.get(path)
            if not rate:
                self.wfile.write(body)
                return
            step = max(int(rate / 20), 1)
            try:
                for i in range(0, len(body), step):
                    self.wfile.write(body[i : i + step])
                    self.wfile.flush()
                    time.sleep(step / rate)
            except OSError:  # the client gave up: what a trickle is for
                pass

        do_GET = do_POST = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield scripted
    finally:
        httpd.shutdown()
        httpd.server_close()


def connector(server: Scripted, **config: object) -> RestConnector:
    spec = RestSpec.model_validate(
        {"profile": "hub-api", "base_url": server.url, "auth": {"bearer": SecretStr("t0ken")}, **config}
    )
    return RestConnector("yibao", spec)


def part() -> PartMessage:
    return PartMessage(
        part_id="00000000-0000-0000-0000-000000000001",
        application_number="330329-20261122-00001",
        item_code="GG00402001",
        item_title="城乡居民基本养老保险参保登记",
        department="ts-ybj",
        channel="bank",
        desk="bank-xiahong",
        collecting_division="330329",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="林阿婆",
        applicant_id="330329195003150214",
        form={},
    )
