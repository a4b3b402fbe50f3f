"""The real web app on a loopback port for browser tests: `serving(hub)` runs `create_app(hub)`
under uvicorn in a background thread until the block ends, and `sqlite_hub(folder, clock)` opens a
hub home from the sample config over a freshly migrated SQLite file (the browser tests run on the
embedded default only; the storage tests cover PostgreSQL).

The listening socket is bound here (127.0.0.1, port 0) and handed to uvicorn, so there is no race
between picking a free port and using it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import uvicorn

from hub.context import Hub
from hub.home import write_home
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.web.app import create_app

HOST = "127.0.0.1"
STARTUP_SECONDS = 60  # a guard: start-up ends when uvicorn says it serves (or its thread ends)
# Debian's chromium as DEVELOPERS.md asks (background networking off: nothing but loopback)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@contextmanager
def sqlite_hub(folder: Path, clock: Callable[[], datetime]) -> Iterator[Hub]:
    home = write_home(folder / "home")
    url = f"sqlite:///{folder / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    hub = Hub.open(home, database_url=url, clock=clock)
    try:
        yield hub
    finally:
        hub.close()


@contextmanager
def serving(hub: Hub) -> Iterator[str]:
    """The hub's web app at the URL yielded (http://127.0.0.1:PORT), stopped afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(hub), host=HOST, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started serving (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {STARTUP_SECONDS} s")
            time.sleep(0.02)
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
