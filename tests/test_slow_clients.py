"""A real `hub serve` on a loopback port against slow and numerous clients (slowloris): headers
sent byte by byte are cut off, a stalled body is answered 408 and closed, connections past
--limit-concurrency get 503; and its access log never shows an applicant's status key. Every wait
is on the real condition (the server closed the socket, a line reached the log), bounded."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _hub(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.Popen([sys.executable, "-m", "hub", "--home", str(home), *args], env=env, **kwargs)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("slow") / "home"
    assert _hub(home, "init", str(home), stdout=subprocess.DEVNULL).wait(60) == 0
    return home


@contextmanager
def serving(home: Path, log: Path, *options: str) -> Iterator[int]:
    """`hub serve` with these options on a free loopback port, until the block ends."""
    port = _free_port()
    with open(log, "w") as err:
        proc = _hub(home, "--log-level", "INFO", "serve", "--port", str(port), *options, stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while True:  # up when it accepts a connection
            assert proc.poll() is None, log.read_text()
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "hub serve did not start:\n" + log.read_text()
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


def closed_by_server(sock: socket.socket, timeout: float, trickle: Callable[[], bytes] | None = None) -> bool:
    """Whether the server closes `sock` within `timeout` seconds, while `trickle` (if given)
    sends a byte every 0.2 s. Everything the server says is drained on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
        elif trickle is not None:
            try:
                sock.sendall(trickle())
            except (BrokenPipeError, ConnectionResetError):
                return True
    return False


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_slow_headers_and_bodies_are_cut_off(home: Path, tmp_path: Path, http: str):
    log = tmp_path / "serve.log"
    options = ("--http", http, "--header-timeout", "1", "--body-idle-timeout", "1", "--body-timeout", "30")
    with serving(home, log, *options) as port:
        # headers byte by byte: the server closes the connection at the deadline
        sock = socket.create_connection((HOST, port))
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(sock, 15, trickle=lambda: b"a")
        assert 0.8 < time.monotonic() - started < 10
        sock.close()
        # … also on a kept-alive connection, after a first request was answered
        sock = socket.create_connection((HOST, port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert closed_by_server(sock, 15, trickle=lambda: b"a")
        sock.close()
        # a body that stalls: 408, and the connection closed
        sock = socket.create_connection((HOST, port))
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\nusername=a"
        )
        answer = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer
        sock.close()
        # a well-behaved client is still served
        with socket.create_connection((HOST, port)) as ok:
            ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert ok.recv(65536).startswith(b"HTTP/1.1 200")


def test_connections_past_the_limit_get_503(home: Path, tmp_path: Path):
    with serving(home, tmp_path / "serve.log", "--limit-concurrency", "4", "--header-timeout", "60") as port:
        with ExitStack() as stack:
            idle = [stack.enter_context(socket.create_connection((HOST, port))) for _ in range(4)]
            status = b""
            deadline = time.monotonic() + 15
            while not status.startswith(b"HTTP/1.1 503") and time.monotonic() < deadline:
                with socket.create_connection((HOST, port)) as extra:  # the server takes the idle ones in
                    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    status = extra.recv(65536)
            assert status.startswith(b"HTTP/1.1 503"), status
            assert len(idle) == 4
        # the idle ones gone, requests are served again
        deadline = time.monotonic() + 15
        while not status.startswith(b"HTTP/1.1 200") and time.monotonic() < deadline:
            with socket.create_connection((HOST, port)) as again:
                again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status = again.recv(65536)
        assert status.startswith(b"HTTP/1.1 200"), status


def test_access_log_never_shows_the_status_key(home: Path, tmp_path: Path):
    log = tmp_path / "serve.log"
    secret = "5ec7e7a5ecre7f00d123"
    with serving(home, log) as port:
        with socket.create_connection((HOST, port)) as sock:
            sock.sendall(
                f"GET /s/XH-2026-000001?k={secret}&lang=en HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            assert sock.recv(65536).startswith(b"HTTP/1.1 404")
        deadline = time.monotonic() + 60  # a guard only: the loop ends when the line is there
        while "/s/XH-2026-000001" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # the access line is written after the response
    text = log.read_text()
    assert "/s/XH-2026-000001?k=[redacted]&lang=en" in text, text
    assert secret not in text
