"""The zeep Client of a `soap` connection: the WSDL parsed once per configuration and shared,
hardened XML parsing, imports confined to where the WSDL came from, every answer bounded in size
and time, WS-Security (UsernameToken, X.509 signature), a transport that logs nothing."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from zeep import Client, Settings, Transport
from zeep.wsse.compose import Compose
from zeep.wsse.signature import Signature, verify_envelope
from zeep.wsse.username import UsernameToken

from plugins.soap.spec import SoapSpec, X509Signature, is_url

# zeep's transport logs every envelope at DEBUG — the UsernameToken password (when digest is
# off) and residents' data with it. Connections get a logger that is never enabled.
_SILENT = logging.Logger("plugins.soap.transport", level=logging.CRITICAL + 1)


class _Signature(Signature):
    """zeep's Signature checks responses against the *client's own* certificate; a department
    signs with its own, so verify with `server_cert_file`, or not at all when none is given."""

    def __init__(self, spec: X509Signature):
        password = spec.key_password.get_secret_value() if spec.key_password else None
        super().__init__(str(spec.key_file), str(spec.cert_file), password)
        self._server_cert = str(spec.server_cert_file) if spec.server_cert_file else None

    def verify(self, envelope):
        if self._server_cert:
            verify_envelope(envelope, self._server_cert)
        return envelope


class AnswerTooLarge(Exception):
    """An answer (WSDL, schema or SOAP response) over the connection's max_answer_bytes."""


class AnswerTooSlow(Exception):
    """An answer that kept coming for longer than the connection's timeout_seconds."""


class ImportRefused(Exception):
    """A WSDL or schema import from somewhere the WSDL did not come from (a file:// URL, a file
    outside the WSDL's folder, another host): refused, never read."""


class _Call:
    """One call's deadline, set before anything is sent, and the connections it uses. At the
    deadline the watchdog shuts those connections' sockets, which ends whatever the call is
    blocked in — sending the request, waiting for the headers, headers or a body trickling in —
    so `timeout_seconds` bounds the whole call, not each read of it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def watch(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)

    def connected(self, connection: HTTPConnection) -> None:
        """A connect that finished after the deadline (the watchdog found no socket to shut)."""
        with self._lock:
            if self.expired:
                connection.close()
                raise TimeoutError("connected after the call's deadline")

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.expired = True
            socks = [c.sock for c in self._connections if c.sock is not None]
        for sock in socks:
            # the plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop its
            # TLS state while the caller's thread is still reading through it
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def finish(self) -> bool:
        """Mark the call done; False if the deadline came first (its answer may be cut short)."""
        with self._lock:
            self.done = True
            return not self.expired

    def too_slow(self) -> AnswerTooSlow:
        return AnswerTooSlow(f"call not complete within timeout_seconds ({self.seconds:g}), connecting included")


class _Watchdog:
    """One thread for every call in the process: a heap of deadlines (a thread per call would
    cost more than the call's own work on a fast department)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, call: _Call) -> None:
        with self._cond:
            heapq.heappush(self._heap, (call.deadline, next(self._order), call))
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="soap-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][2] is call:  # the earliest deadline now: the watchdog waits for it instead
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        call = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
            call.expire()


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()


def _current() -> _Call | None:
    return getattr(_CURRENT, "call", None)


@contextmanager
def bounded_call(seconds: float) -> Iterator[_Call]:
    """Everything the connection sends and reads in this block, in this thread, within `seconds`
    from now; past it, AnswerTooSlow (also when what was cut short looked like a whole answer)."""
    call = _Call(seconds)
    previous = _current()
    _CURRENT.call = call
    _WATCHDOG.add(call)
    try:
        yield call
    except AnswerTooSlow:
        call.finish()
        raise
    except Exception:
        if not call.finish():
            raise call.too_slow() from None
        raise
    else:
        if not call.finish():
            raise call.too_slow()
    finally:
        _CURRENT.call = previous


class _Watched:
    """A urllib3 connection a call's deadline can end: registered with the call before it sends."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        call = _current()
        if call is not None:
            call.connected(self)  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = _current()
        if call is not None:
            call.watch(self)  # type: ignore[arg-type]  # before connecting: a pooled one has its socket
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedConnection(_Watched, HTTPConnection):
    pass


class _WatchedTLSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedTLSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedTLSPool}


def _bounded(limit: int, seconds: float) -> Callable[..., requests.Response]:
    """A requests response hook reading every answer in full, but no more than `limit` bytes
    (decoded: a gzip body counts unpacked) and not past the call's deadline (`bounded_call`, set
    before the request was sent; `seconds` from now outside one) — zeep would otherwise read
    whatever a server sends, at whatever pace (a 1 KiB/s trickle is never a read timeout).
    requests runs the hook before it reads the body itself; `_content` is where requests keeps a
    body read."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        call = _current()
        deadline = call.deadline if call is not None else time.monotonic() + seconds
        chunks: list[bytes] = []
        size = 0
        while True:
            # read1: whatever has arrived (up to 64 KiB), so the deadline is looked at between chunks
            chunk = response.raw.read1(65536, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            chunks.append(chunk)
            if size > limit:
                response.close()
                raise AnswerTooLarge(f"answer larger than max_answer_bytes ({limit})")
            if time.monotonic() > deadline:
                response.close()
                raise AnswerTooSlow(f"answer not complete within timeout_seconds ({seconds:g})")
        response._content = b"".join(chunks)
        response._content_consumed = True  # as requests' own `content` leaves it
        return response

    return hook


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class _ConfinedTransport(Transport):
    """zeep loads the WSDL and everything it imports (wsdl:import, xsd:import/include) through
    `Transport.load`, which reads http(s) URLs, file:// URLs and plain paths alike — and
    `Settings(forbid_external=True)` stops only http(s) imports (it lets file:// through, and
    refuses a WSDL's legitimate same-server schema). So: a local WSDL may import only files in its
    own folder (or below), a WSDL from a URL only from the same scheme, host and port."""

    def __init__(self, location: str, limit: int, timeouts: tuple[float, float], **kwargs: Any):
        super().__init__(**kwargs)
        self._timeouts = timeouts  # (connect, each read): the call's deadline bounds them all together
        self._limit = limit
        self._url = is_url(location)
        self._origin = _origin(location) if self._url else None
        self._folder = None if self._url else Path(location).resolve().parent

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        """No redirects: a SOAP answer counts only from the address configured (zeep's post would
        follow a 302 elsewhere, as a GET); the 3xx itself becomes an HTTP error. The request is
        prepared here rather than by `Session.request`, which merges proxy, .netrc and session
        settings on every call (about a sixth of the client's CPU per call) that this session
        fixes once (`trust_env` off, no proxies, no auth)."""
        session = self.session
        request = requests.Request(
            "POST", address, data=message, headers={**session.headers, **headers}, cookies=session.cookies
        )
        request.hooks = session.hooks  # the bounded read
        return session.send(
            request.prepare(),
            timeout=self._timeouts,
            allow_redirects=False,
            verify=session.verify,
            proxies={},
            stream=False,
            cert=None,
        )

    def _load_remote_data(self, url: str) -> bytes:
        # no redirects either: a WSDL or schema redirected elsewhere would escape the origin rule
        with self.session.get(url, timeout=self._timeouts, allow_redirects=False) as response:
            if response.is_redirect:
                raise ImportRefused(f"{url} (redirected to {response.headers.get('location', '?')}: not followed)")
            response.raise_for_status()
            return response.content

    def load(self, url: str) -> bytes:
        url = str(url)
        if self._url:
            assert self._origin is not None
            if not is_url(url) or _origin(url) != self._origin:
                scheme, host, port = self._origin
                raise ImportRefused(f"{url} (only {scheme}://{host}:{port} is allowed)")
            return super().load(url)
        assert self._folder is not None
        if is_url(url) or url.startswith("~"):
            raise ImportRefused(f"{url} (a local WSDL imports only files in its folder {self._folder})")
        path = Path(url).resolve()
        if not path.is_relative_to(self._folder):
            raise ImportRefused(f"{url} (outside the WSDL's folder {self._folder})")
        with path.open("rb") as f:
            content = f.read(self._limit + 1)
        if len(content) > self._limit:
            raise AnswerTooLarge(f"{path.name} larger than max_answer_bytes ({self._limit})")
        return content


# One parsed WSDL per connection configuration, shared by every connector made from it.
_CLIENTS: dict[str, Client] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(name: str, spec: SoapSpec, location: str) -> Client:
    """The zeep Client for `spec`, its WSDL read from `location` (a URL or an absolute path)."""
    stamp = Path(location).stat().st_mtime_ns if not is_url(location) else 0  # an edited file is read again
    key = hashlib.sha256(
        f"{name}\0{location}\0{stamp}\0{spec.model_dump_json()}\0"
        f"{spec.wsse.password.get_secret_value() if spec.wsse else ''}".encode()
    ).hexdigest()
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            session = requests.Session()
            session.verify = str(spec.ca_file) if spec.ca_file else True
            # Department traffic goes where the connection says, not through whatever proxy or
            # .netrc the environment holds (and reading those on every call costs ~20% here).
            session.trust_env = False
            adapter = _WatchedAdapter()  # connections a call's deadline can end (bounded_call)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.hooks["response"].append(_bounded(spec.max_answer_bytes, spec.timeout_seconds))
            transport = _ConfinedTransport(
                location,
                spec.max_answer_bytes,
                (min(spec.connect_timeout_seconds, spec.timeout_seconds), spec.timeout_seconds),
                session=session,
                timeout=spec.connect_timeout_seconds,
                operation_timeout=spec.timeout_seconds,
            )
            transport.logger = _SILENT
            # forbid_external off: _ConfinedTransport decides which imports are read; force_https off:
            # it would rewrite a file:// import to https:/// (and a loopback http one to https)
            settings = Settings(
                strict=True,
                xml_huge_tree=False,
                forbid_dtd=True,
                forbid_entities=True,
                forbid_external=False,
                force_https=False,
            )
            wsse: list[Any] = []
            if spec.wsse:
                password = spec.wsse.password.get_secret_value()
                wsse.append(UsernameToken(spec.wsse.username, password, use_digest=spec.wsse.digest))
            if spec.signature:
                wsse.append(_Signature(spec.signature))
            # zeep verifies responses only through a single object: Compose the tokens
            # the WSDL and every schema it imports: read within timeout_seconds together
            with bounded_call(spec.timeout_seconds):
                _CLIENTS[key] = Client(
                    location, transport=transport, settings=settings, wsse=Compose(wsse) if wsse else None
                )
        return _CLIENTS[key]
