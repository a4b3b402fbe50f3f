"""Two real hubs for the cross-province exchange tests (跨省通办): 泰顺 (hub A, a `hub init` home
on SQLite) and 福鼎 (hub B, the sandbox partner home; on PostgreSQL when HUB_TEST_DATABASE_URL is
set, in a database of its own made for the run and dropped after). Each is served by its own
`hub serve` process on a loopback port, running this checkout's code (PYTHONPATH), with its own
home, database and exchange key; `pair()` sets up the trust between them with small limits.

The test process opens each hub too (`Hub.open`) to act as desks, officers and the exchange job
(`hub.exchange.send.send`), and can run any `hub` command against either home (`Side.cli`).

`HeldProxy` sits between a sender and B when a test needs a request in flight: it forwards the
request at once and holds B's answer until the test lets it go (or kills the sender)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from hub import applications as svc
from hub.applications import Actor
from hub.context import Hub
from hub.home import write_home
from hub.ids import id_check_digit
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.storage.tables import Application, PartnerMessage
from plugins.sandbox.partner_hub import pair, write_partner_home

ROOT = Path(__file__).resolve().parents[2]  # this checkout: its code runs in the hub processes
HUB_BIN = Path(sys.executable).parent / "hub"
PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")
HOST = "127.0.0.1"
START_SECONDS = 60  # a guard on start-up: it ends as soon as /healthz answers

# small limits so retries come quickly (pair() writes them into both partner files)
LIMITS = {"backoff_seconds": 0.2, "max_backoff_seconds": 1, "timeout_seconds": 5}

TELLER = Actor(name="下洪网点柜员王芳", role=Role.teller, desk="bank-xiahong")
HALL_CLERK = Actor(name="综合窗口陈静", role=Role.clerk, desk="hall-county")
TS_RSJ = Actor(name="泰顺人社审批员", role=Role.officer, department="ts-rsj")
FD_MZJ = Actor(name="福鼎民政审批员", role=Role.officer, department="fd-mzj")
FD_RSJ = Actor(name="福鼎人社审批员", role=Role.officer, department="fd-rsj")
READER = Actor(name="测试读取", role=Role.system)

T = TypeVar("T")


def pdf(label: str) -> bytes:
    """A small PDF, its bytes distinct per label."""
    return b"%PDF-1.4\n% " + label.encode("utf-8") + b"\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def resident_id(division: str, born: date, seq: int) -> str:
    """A resident ID number with a correct GB 11643 check digit (a fictional person)."""
    first17 = f"{division}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_digit(first17)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], T], *, seconds: float, what: str, every: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy; fail after `seconds` (a guard only)."""
    deadline = time.monotonic() + seconds
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(every)


# ---------------------------------------------------------------- databases


def _admin_url() -> str:
    return make_url(PG_URL).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@contextmanager
def fresh_database(folder: Path, label: str, *, postgres: bool) -> Iterator[str]:
    """A migrated database of its own: a SQLite file in `folder`, or a new PostgreSQL database
    (dropped afterwards, connections and all)."""
    if not postgres:
        url = f"sqlite:///{folder / f'{label}.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"hub_exchange_{label}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- processes


def hub_env(db_url: str) -> dict[str, str]:
    """The environment of a `hub` process for one home: this checkout's code, that database."""
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_EXCHANGE_KEY_FILE")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env["HUB_DATABASE_URL"] = db_url
    env.setdefault("HUB_LOG_LEVEL", "WARNING")
    return env


class Server:
    """`hub --home H serve --port P` in a process of its own; the port is chosen once, so a
    restart comes back at the same address the partner has on file."""

    def __init__(self, home: Path, env: dict[str, str], port: int | None = None):
        self.home, self.env = home, env
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = home / f"serve-{self.port}.log"

    def start(self) -> None:
        assert not self.running, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(HUB_BIN), "--home", str(self.home), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.home.name} did not start serving:\n" + self.log_tail())
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers) and wait until the port is free."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Side:
    """One hub: its home, database, server process and (opened in this process) `hub`."""

    label: str
    home: Path
    db_url: str
    server: Server
    hub: Hub = field(init=False)

    def __post_init__(self) -> None:
        self.hub = Hub.open(self.home, database_url=self.db_url)

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    @property
    def url(self) -> str:
        return self.server.url

    def reopen(self) -> Hub:
        """Open the hub afresh (it reads partner files and keys when opened)."""
        self.hub.close()
        self.hub = Hub.open(self.home, database_url=self.db_url)
        return self.hub

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(HUB_BIN), "--home", str(self.home), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def scalar(self, stmt) -> Any:
        with self.hub.sessions() as session:
            return session.scalar(stmt)

    def execute(self, statement: str, **params: Any) -> int:
        """Raw SQL on this hub's database (a test reaching past the product, e.g. to tamper)."""
        with self.hub.engine.begin() as conn:
            return conn.execute(text(statement), params).rowcount

    def partner_yaml(self, partner: str) -> Path:
        return self.home / "partners" / f"{partner}.yaml"

    def read_partner(self, partner: str) -> dict[str, Any]:
        return yaml.safe_load(self.partner_yaml(partner).read_text(encoding="utf-8"))

    def write_partner(self, partner: str, doc: dict[str, Any]) -> None:
        self.partner_yaml(partner).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")

    def close(self) -> None:
        self.server.stop()
        self.hub.close()


@dataclass
class Pair:
    a: Side  # 泰顺 taishun: collects
    b: Side  # 福鼎 fuding: decides

    def applications_from_a(self, origin_number: str) -> list[Application]:
        """B's applications received from A for A's number (expected: one)."""
        with self.b.hub.sessions() as session:
            return list(
                session.scalars(
                    select(Application).where(
                        Application.origin_partner == "taishun", Application.origin_number == origin_number
                    )
                )
            )

    def b_number(self, origin_number: str) -> str:
        (app,) = self.applications_from_a(origin_number)
        return app.number


@contextmanager
def partner_hubs(
    folder: Path, *, b_postgres: bool | None = None, limits: dict[str, Any] | None = None, serve_a: bool = True
) -> Iterator[Pair]:
    """泰顺 and 福鼎, paired and served (B always; A unless `serve_a` is False: a test that only
    sends to B needs A's home, key and database, not its server)."""
    b_postgres = bool(PG_URL) if b_postgres is None else b_postgres
    folder.mkdir(parents=True, exist_ok=True)
    home_a = write_home(folder / "taishun")
    home_b = write_partner_home(folder / "fuding")
    with (
        fresh_database(folder, "taishun", postgres=False) as url_a,
        fresh_database(folder, "fuding", postgres=b_postgres) as url_b,
    ):
        server_a, server_b = Server(home_a, hub_env(url_a)), Server(home_b, hub_env(url_b))
        pair(home_a, server_a.url, home_b, server_b.url, limits=limits if limits is not None else LIMITS)
        sides: list[Side] = []
        try:
            for server in (server_b, server_a) if serve_a else (server_b,):
                server.start()
            sides.append(Side("taishun", home_a, url_a, server_a))
            sides.append(Side("fuding", home_b, url_b, server_b))
            yield Pair(*sides)
        finally:
            for side in sides:
                side.close()
            for server in (server_a, server_b):
                server.stop()


# ---------------------------------------------------------------- the desks' work


def proxy_application(hub: Hub, applicant_id: str, *, name: str = "林阿婆") -> svc.Application:
    """异地代收代办: the 下洪 bank outlet collects 福鼎's 老年人优待证 and first-reviews it."""
    return svc.create(
        hub,
        svc.NewApplication(
            subject="fuding:GG00501000",
            desk=TELLER.desk,
            applicant=svc.Applicant(name=name, id=applicant_id),
            form={"contact_phone": "13800000000", "delivery_method": "代收窗口领取"},
            materials=[
                svc.MaterialIn(name="居民身份证", filename="id.pdf", content=pdf(f"身份证 {applicant_id}")),
                svc.MaterialIn(name="近期免冠彩色证件照", filename="photo.pdf", content=pdf(f"照片 {applicant_id}")),
            ],
        ),
        TELLER,
        first_review=svc.FirstReview(checklist=["居民身份证原件已核对"]),
    )


def outbox_rows(hub: Hub, number: str) -> list[PartnerMessage]:
    with hub.sessions() as session:
        return list(
            session.scalars(
                select(PartnerMessage).where(PartnerMessage.conversation == number).order_by(PartnerMessage.id)
            )
        )


def count(hub: Hub, table: Any, *where: Any) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(table).where(*where))


# ---------------------------------------------------------------- a proxy that holds answers


class HeldProxy:
    """A loopback TCP proxy to `target`: each request goes through at once; the answer is held
    until `release()` (then it and every later answer pass). `answer_held` is set when the first
    bytes of an answer arrive and are being held: the target has taken and answered the request."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.1)  # accept() wakes up to notice close()
        self.port = self.listener.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.answer_held = threading.Event()
        self.released = threading.Event()
        self.closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="held-proxy")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pipe, client, upstream, False)
            self._spawn(self._pipe, upstream, client, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, answer: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if answer and not self.released.is_set():
                    self.answer_held.set()
                    while not self.released.wait(0.05):
                        if self.closed.is_set():
                            return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for s in sockets:
            with suppress(OSError):
                s.close()
        for t in threads:
            t.join(timeout=5)
