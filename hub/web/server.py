"""Bounds on slow and numerous connections for `hub serve` (docs/operations.md, "Slow clients").

uvicorn closes an idle keep-alive connection after a few seconds, but has no limit on how long a
client may take to send a request's headers or body: 300 clients sending one byte every few
seconds hold 300 connections open for ever (slowloris). Here:

- the HTTP protocol classes `hub serve` runs (uvicorn's own, for httptools and h11) close a
  connection whose request headers are not complete `HUB_HEADER_TIMEOUT` seconds after it opened
  or after its previous response;
- `BodyTimeout`, an ASGI middleware, answers 408 and closes the connection when a request body
  pauses longer than `HUB_BODY_IDLE_TIMEOUT` seconds or takes longer than `HUB_BODY_TIMEOUT` in
  all (generous: ten 20 MB scans over a slow county line);
- uvicorn's `limit_concurrency` answers 503 past a number of connections per process.

The values travel to uvicorn's worker processes in environment variables, as HUB_HOME does."""

from __future__ import annotations

import asyncio
import logging
import os

import anyio
import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.web.timeouts import BODY_IDLE_TIMEOUT, BODY_TIMEOUT, HEADER_TIMEOUT, LIMIT_CONCURRENCY

log = logging.getLogger(__name__)

__all__ = ["BODY_IDLE_TIMEOUT", "BODY_TIMEOUT", "HEADER_TIMEOUT", "LIMIT_CONCURRENCY", "BodyTimeout", "protocol"]


def seconds(name: str, default: float) -> float:
    """A timeout from the environment (set by `hub serve`), else its default."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class _HeaderDeadline:
    """Closes the connection when a request's headers are not all in by the deadline. Armed when
    the connection opens and after each response; checked when it fires (a request being served
    then is left alone)."""

    _deadline: asyncio.TimerHandle | None = None
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def _arm(self) -> None:
        self._disarm()
        timeout = seconds("HUB_HEADER_TIMEOUT", HEADER_TIMEOUT)
        self._deadline = self.loop.call_later(timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _awaiting_headers(self) -> bool:
        raise NotImplementedError

    # the same for both parsers: uvicorn's protocol classes come after this one in the MRO
    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            log.info("closing a connection that did not send its request headers in time")
            self.transport.close()


class H11WithDeadline(_HeaderDeadline, H11Protocol):
    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def handle_websocket_upgrade(self, event) -> None:
        self._disarm()  # the connection is the WebSocket protocol's now
        super().handle_websocket_upgrade(event)

    def _awaiting_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE  # SEND_BODY or DONE once a request's headers are in


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn: h11 then
    HttpToolsWithDeadline = None
else:

    class HttpToolsWithDeadline(_HeaderDeadline, HttpToolsProtocol):  # type: ignore[no-redef]
        _headers_in = False

        def on_headers_complete(self) -> None:
            self._headers_in = True
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._headers_in = False  # before: a pipelined request may be parsed in there
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def handle_websocket_upgrade(self) -> None:
            self._disarm()  # the connection is the WebSocket protocol's now
            super().handle_websocket_upgrade()

        def _awaiting_headers(self) -> bool:
            return not self._headers_in


def protocol(name: str = "auto") -> str:
    """The import string of the protocol class for uvicorn's `http` option."""
    if name == "h11" or (name == "auto" and HttpToolsWithDeadline is None):
        return "hub.web.server:H11WithDeadline"
    if HttpToolsWithDeadline is None:
        raise ValueError("httptools is not installed")
    return "hub.web.server:HttpToolsWithDeadline"


class _BodyTimedOut(Exception):
    pass


class BodyTimeout:
    """A request body that pauses longer than `idle` seconds, or takes longer than `total` in
    all, is answered 408 and its connection closed. Only reads of the body are timed: an app
    waiting for the client to disconnect (after the body) waits as long as it likes."""

    def __init__(self, app, idle: float | None = None, total: float | None = None):
        self.app = app
        self.idle = idle or seconds("HUB_BODY_IDLE_TIMEOUT", BODY_IDLE_TIMEOUT)
        self.total = total or seconds("HUB_BODY_TIMEOUT", BODY_TIMEOUT)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body_done = False
        deadline = anyio.current_time() + self.total
        started = False

        async def timed_receive():
            nonlocal body_done
            if body_done:
                return await receive()
            wait = min(self.idle, deadline - anyio.current_time())
            try:
                with anyio.fail_after(max(wait, 0)):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimedOut() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def watched_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except _BodyTimedOut:
            log.info("request body too slow: answered 408 and closed")
            if not started:
                body = '{"detail":"请求内容发送超时 (request body timed out)","errors":[]}'.encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 408,
                        # close: the rest of the body is not worth waiting for
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
