"""Cross-province exchange throughput (跨省通办, issue 18): envelopes per second from hub A (泰顺)
to hub B (福鼎), each an `application` message with one ~200 KB material, versus a bare signed
httpx POST of the same bytes between two plain FastAPI processes at the same concurrency (the
issue's baseline), and versus the same POST made durable on both sides (the least any
store-and-forward exchange must do); and the latency from A's accept (its first review, which
owes the message) to B's inbox.

    .venv/bin/python benchmarks/exchange.py [--apps 200] [--concurrency 4] [--kb 200] [--rounds 3]
        [--bare-repeat 5] [--paced 100 --rate 4] [--phases] [--py-spy DIR [--py-spy-gil]] [--sqlite]
        [--no-durable]

The hubs: A is a 泰顺 home (hub.home.write_home), B the sandbox 福鼎 home
(plugins.sandbox.partner_hub.write_partner_home), paired by `partner_hub.pair` with
`limits.concurrency` = --concurrency. B runs as a real `hub serve` process; A works in this
process: its desk creates the applications (untimed) and `hub.exchange.send.send(hub)` — what
`hub run exchange` runs, with `concurrency` sender threads — is timed until every message is
delivered (B's signed acknowledgement checked and recorded). Nothing in this flow calls A over
HTTP, so A is not served. Both hubs on PostgreSQL (a fresh database each, dropped afterwards) if
HUB_BENCH_DATABASE_URL or --pg (default postgresql://postgres@127.0.0.1:5432) answers, else
SQLite; the output says which.

Each application is for `fuding:GG00501000` (老年人优待证办理) at the bank desk, with a first
review: the 居民身份证 is a random ~200 KB file starting `%PDF-1.4` (every sha256 differs), the
deferrable 近期免冠彩色证件照 is committed for later (容缺, commitment_due), so each envelope
carries exactly one file. Checked afterwards: every message delivered once, one application at B
per message, with its origin set.

Latency is B's application `created_at` (inside B's `take`, before its commit) minus A's outbox
row `created_at` (the moment of A's first review; the same transaction), and A's `delivered_at`
(the acknowledgement checked and recorded at A) minus the same. In the throughput rounds every
message is owed before the sender starts, so those figures are mostly queueing; `--paced N`
adds a run where A's desk receives N applications at --rate per second while a sender loop
(`send` again whenever something new is owed) runs beside it: the latency a message sees.

The baseline, same run: a receiver process (FastAPI, uvicorn, one worker, this file with
--bare-receiver) that reads the multipart body (part `envelope` and part `f0`, as the hub's route
takes them) and verifies the Ed25519 signature with A's public key; and `concurrency` threads in
this process POSTing, with one httpx client, the very envelope bytes A sent in that round (read
from A's message log) with the very file, each signed afresh as the hub signs each send; each
round's envelopes --bare-repeat times over (the baseline is fast: a longer run, less noise).

The durable baseline, same run, on PostgreSQL only: the same two plain processes, but the
receiver (this file with --durable-receiver) also writes each file into a content-addressed
folder (written, fsynced, renamed into place) and inserts one row per envelope (message id the
primary key, the file's sha256) into its own fresh database in a transaction, answering only
after the commit; the sender, after each answer, marks that envelope's row delivered in its own
fresh database (one transaction, one UPDATE; the rows are written beforehand, untimed, as A's
outbox rows are). Each round's envelopes once (message ids are unique at the receiver).

Printed per round: envelopes/s each way and the ratios hub/bare and hub/durable; CPU per envelope of the sender (this
process), the receiver, PostgreSQL and anything else on the machine (/proc), and how busy the
cores were; with --phases, wall time per envelope in each step of A's sender and A's statements
per envelope; on PostgreSQL, the statements running and waiting on locks in both databases.

--py-spy DIR records A (this process) and B with py-spy during the first hub round (needs
`py-spy` beside the interpreter or on PATH: `pip install py-spy`) and prints self and inclusive
shares per function."""

from __future__ import annotations

import argparse
import base64
import os
import platform
import queue
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
from fastapi import FastAPI, Request  # module level: the receiver's annotations are resolved here
from fastapi.responses import JSONResponse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
PARTNER = "fuding"
ITEM = f"{PARTNER}:GG00501000"  # 老年人优待证办理, decided at 福鼎
DESK = "bank-xiahong"
PREFIX = b"tongban-exchange/1\n"  # hub.exchange.envelope.SIGNED_PREFIX
PATH = "/exchange/v1/messages"


# ---------------------------------------------------------------- the baseline receiver


def bare_receiver(port: int) -> None:
    """A plain FastAPI endpoint: the multipart body read, the envelope's signature verified."""
    import uvicorn
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    key = load_der_public_key(base64.b64decode(os.environ["BENCH_PUBLIC_KEY"]))  # DER SPKI, as partner files
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    @app.post(PATH)
    async def messages(request: Request) -> JSONResponse:
        form = await request.form()
        body = await form["envelope"].read()
        sizes = [len(await part.read()) for name, part in form.multi_items() if name != "envelope"]
        try:
            key.verify(base64.b64decode(request.headers["Tongban-Signature"]), PREFIX + body)
        except (InvalidSignature, KeyError, ValueError):
            return JSONResponse({"ok": False}, status_code=403)
        return JSONResponse({"ok": True, "sizes": sizes})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)


def durable_receiver(port: int) -> None:
    """The least a store-and-forward receiver does: the bare receiver's work, then each file into
    a content-addressed folder (written, fsynced, renamed into place) and one row per envelope
    (message id unique, the file's sha256) inserted in PostgreSQL in a transaction; it answers
    only after the commit. The blocking part runs in worker threads, as the hub's route does."""
    import hashlib
    import json

    import uvicorn
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from starlette.concurrency import run_in_threadpool

    key = load_der_public_key(base64.b64decode(os.environ["BENCH_PUBLIC_KEY"]))
    db, store = os.environ["BENCH_DURABLE_DB"], Path(os.environ["BENCH_DURABLE_DIR"])
    local = threading.local()
    app = FastAPI()

    def keep(message_id: str, files: list[bytes]) -> list[str]:
        digests = []
        for data in files:
            digest = hashlib.sha256(data).hexdigest()
            final = store / digest[:2] / digest
            if not final.exists():
                final.parent.mkdir(exist_ok=True)
                tmp = final.with_name(f"{digest}.{threading.get_ident()}.part")
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            digests.append(digest)
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(db)
        with conn.transaction():
            for digest in digests or [""]:
                conn.execute("INSERT INTO received (message_id, sha256) VALUES (%s, %s)", (message_id, digest))
        return digests

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    @app.post(PATH)
    async def messages(request: Request) -> JSONResponse:
        form = await request.form()
        body = await form["envelope"].read()
        files = [await part.read() for name, part in form.multi_items() if name != "envelope"]
        try:
            key.verify(base64.b64decode(request.headers["Tongban-Signature"]), PREFIX + body)
        except (InvalidSignature, KeyError, ValueError):
            return JSONResponse({"ok": False}, status_code=403)
        digests = await run_in_threadpool(keep, json.loads(body)["id"], files)
        return JSONResponse({"ok": True, "sizes": [len(f) for f in files], "sha256": digests})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)


# ---------------------------------------------------------------- processes and databases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the server answers (or its process ends: then its log says why)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a starting server: the condition is its answer
    raise SystemExit(f"{url} did not answer within 60 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds so far of every postgres process (the server on this machine)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
            fields = text.rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine (all cores) since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class PgActivity:
    """Samples pg_stat_activity of both hubs' databases every 50 ms during the hub's rounds: how
    many connections run a statement or wait on a lock, and which statements wait on locks."""

    def __init__(self, url: str, names: list[str]) -> None:
        self.url, self.names = url, names
        self.samples = 0
        self.active: Counter = Counter()  # database -> statements running, summed over samples
        self.locked: Counter = Counter()  # database -> statements waiting on a lock
        self.waiting: Counter = Counter()  # (database, statement start) -> samples waiting on a lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        sql = (
            "SELECT datname, wait_event_type, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
            "FROM pg_stat_activity WHERE datname = ANY(%s) AND state = 'active' AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            while not self._stop.wait(0.05):
                self.samples += 1
                for db, wait, query in conn.execute(sql, (self.names,)):
                    self.active[db] += 1
                    if wait == "Lock":
                        self.locked[db] += 1
                        self.waiting[(db, query)] += 1

    def __enter__(self) -> PgActivity:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> str:
        n = max(self.samples, 1)
        lines = [f"PostgreSQL during the hub rounds ({self.samples} samples, 50 ms apart), mean statements:"]
        for db in self.names:
            lines.append(
                f"  {db}: {self.active[db] / n:.2f} running, {self.locked[db] / n:.2f} of them waiting on a lock"
            )
        for (db, query), k in self.waiting.most_common(5):
            lines.append(f"    {k / n:.2f} waiting in {db}: {query}")
        return "\n".join(lines)


class Postgres:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/").removesuffix("/postgres")
        self.names: list[str] = []

    def reachable(self) -> bool:
        try:
            with psycopg.connect(f"{self.url}/postgres", connect_timeout=3):
                return True
        except psycopg.Error:
            return False

    def create(self, label: str, *, driver: str = "+psycopg") -> str:
        """A fresh database; its SQLAlchemy URL (driver "+psycopg") or, with driver "", psycopg's."""
        name = f"bench_exchange_{label}_{os.getpid()}"
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return f"{self.url.replace('postgresql://', f'postgresql{driver}://', 1)}/{name}"

    def drop(self) -> None:
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- the two hubs


@dataclass
class Hubs:
    a: object  # hub.context.Hub (imported late: the receiver process does not need it)
    b_engine: object  # B's database, read for the checks and latencies
    b_proc: subprocess.Popen
    b_url: str
    backend: str


def setup(folder: Path, args: argparse.Namespace, pg: Postgres | None) -> Hubs:
    from sqlalchemy import create_engine

    from hub.context import Hub
    from hub.exchange import catalogue
    from hub.home import write_home
    from hub.storage import migrate
    from hub.storage.engine import make_engine
    from plugins.sandbox.partner_hub import pair, write_partner_home

    home_a, home_b = write_home(folder / "taishun"), write_partner_home(folder / "fuding")
    if pg is not None:
        url_a, url_b = pg.create("taishun"), pg.create("fuding")
    else:
        url_a, url_b = f"sqlite:///{home_a / 'hub.db'}", f"sqlite:///{home_b / 'hub.db'}"
    for url in (url_a, url_b):
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
    port_b = free_port()
    b_url = f"http://127.0.0.1:{port_b}"
    # A is never called in this flow (B only answers); its URL is a closed port
    pair(home_a, f"http://127.0.0.1:{free_port()}", home_b, b_url, limits={"concurrency": args.concurrency})
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"PYTHONPATH": str(REPO), "HUB_DATABASE_URL": url_b, "HUB_LOG_LEVEL": "WARNING"}
    log = folder / "fuding-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "hub"), "--home", str(home_b), "serve", "--port", str(port_b)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"{b_url}/healthz", proc, log)
        a = Hub.open(home_a, database_url=url_a)
        version, items, _ = catalogue.sync(a, a.partners.by_name[PARTNER])  # A learns what B accepts
        if a.catalog.subject(ITEM) is None:
            raise SystemExit(f"{ITEM} not in A's catalogue after syncing {PARTNER}'s list ({items} items, {version})")
    except BaseException:
        stop(proc)
        raise
    return Hubs(a, create_engine(url_b), proc, b_url, "PostgreSQL" if pg else "SQLite")


def resident_id(g: int) -> str:
    """A valid GB 11643 number for a person of 60 or more, distinct for every g below 3,000,000."""
    from datetime import date

    from hub.ids import id_check_digit

    born = date(1940, 1, 1) + timedelta(days=g // 1000)
    first17 = f"330329{born:%Y%m%d}{g % 1000:03d}"
    return first17 + id_check_digit(first17)


class Desk:
    """A's bank desk receiving applications for 福鼎 with their first review."""

    def __init__(self, hub, kb: int) -> None:
        from hub.applications import Actor
        from hub.lifecycle import Role

        self.hub, self.size, self.next = hub, kb * 1024, 0
        self.teller = Actor(name="王芳", role=Role.teller, desk=DESK)
        self.lock = threading.Lock()

    def receive(self) -> str:
        from hub import applications as svc
        from hub.applications import Applicant, FirstReview, MaterialIn, NewApplication

        with self.lock:
            g, self.next = self.next, self.next + 1
        pdf = b"%PDF-1.4\n" + os.urandom(self.size - 9)
        new = NewApplication(
            subject=ITEM,
            desk=DESK,
            applicant=Applicant(name="林阿婆", id=resident_id(g)),
            form={"contact_phone": "13905770001", "delivery_method": "代收窗口领取"},
            materials=[MaterialIn(name="居民身份证", filename="id-card.pdf", content=pdf)],
            source_ref=f"bench-{os.getpid()}-{g}",
        )
        review = FirstReview(
            checklist=["身份证原件已核"], commitment_due=self.hub.today() + timedelta(days=10), note="证件照容缺后补"
        )
        app = svc.create(self.hub, new, self.teller, first_review=review)
        assert app.state == "pre_reviewed", app.state
        return app.number


# ---------------------------------------------------------------- timing the hub


def owed(hub, numbers: list[str]) -> int:
    from sqlalchemy import func, select

    from hub.storage.tables import PartnerMessage

    with hub.sessions() as s:
        return s.scalar(
            select(func.count()).where(PartnerMessage.conversation.in_(numbers), PartnerMessage.state != "delivered")
        )


def drain(hub, numbers: list[str]) -> Counter:
    """`hub run exchange` until every message for `numbers` is delivered."""
    from hub.exchange.send import send
    from hub.storage.tables import PartnerMessage

    outcomes: Counter = Counter()
    deadline = time.monotonic() + 600
    while owed(hub, numbers):
        s = send(hub)
        outcomes.update(delivered=s.delivered, retrying=s.retrying, dead=s.dead)
        if s.dead or s.unusable:
            raise SystemExit(f"exchange failed: {s.line()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"not delivered within 600 s: {s.line()}")
        if not s.delivered and not s.retrying:  # a retry waits for its backoff: until it is due
            from sqlalchemy import func, select

            with hub.sessions() as session:
                due = session.scalar(
                    select(func.min(PartnerMessage.next_attempt_at)).where(PartnerMessage.state == "pending")
                )
            if due is not None:
                time.sleep(max(0.0, (due - hub.now().replace(tzinfo=None)).total_seconds()))
    return outcomes


@dataclass
class Latencies:
    inbox: list[float]  # A's accept -> B's application row (seconds)
    acked: list[float]  # A's accept -> A recorded B's acknowledgement


def latencies(hubs: Hubs, numbers: list[str]) -> Latencies:
    """Per message, from both databases (one machine, one clock); checks each was taken once."""
    from sqlalchemy import select

    from hub.storage.tables import Application, PartnerMessage

    with hubs.a.sessions() as s:
        sent = {
            m.conversation: (m.created_at, m.delivered_at, m.state)
            for m in s.scalars(select(PartnerMessage).where(PartnerMessage.conversation.in_(numbers)))
        }
    with hubs.b_engine.connect() as conn:
        got = Counter()
        created = {}
        for origin, at in conn.execute(
            select(Application.origin_number, Application.created_at).where(Application.origin_number.in_(numbers))
        ):
            got[origin] += 1
            created[origin] = at
    problems = [n for n in numbers if sent.get(n, (0, 0, ""))[2] != "delivered" or got[n] != 1]
    if problems:
        raise SystemExit(f"{len(problems)} messages not delivered exactly once, e.g. {problems[:3]}")
    return Latencies(
        [(created[n] - sent[n][0]).total_seconds() for n in numbers],
        [(sent[n][1] - sent[n][0]).total_seconds() for n in numbers],
    )


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def lat_line(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50) * 1000:7.0f} ms  p99 {pct(xs, 99) * 1000:7.0f} ms  max {max(xs) * 1000:7.0f} ms"


@dataclass
class Timed:
    rate: float
    seconds: float
    sender_cpu: float  # this process, all threads
    receiver_cpu: float
    postgres_cpu: float
    busy: float  # share of the machine's cores busy
    busy_cpu: float  # CPU seconds the whole machine was busy


def timed(n: int, run, receiver_pid: int) -> Timed:
    c0, r0, p0, (b0, a0) = time.process_time(), cpu_seconds(receiver_pid), postgres_cpu(), machine_busy()
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    b1, a1 = machine_busy()
    return Timed(
        n / seconds,
        seconds,
        time.process_time() - c0,
        cpu_seconds(receiver_pid) - r0,
        postgres_cpu() - p0,
        (b1 - b0) / (a1 - a0) if a1 > a0 else 0.0,
        b1 - b0,
    )


def cpu_line(t: Timed, n: int) -> str:
    """CPU per envelope by process; "anything else": the machine's busy time not in these three
    (kernel threads, the bench's samplers, other work on the machine)."""
    per = 1000 / n
    others = max(0.0, t.busy_cpu - t.sender_cpu - t.receiver_cpu - t.postgres_cpu)
    return (
        f"CPU per envelope: sender {t.sender_cpu * per:5.1f} ms, receiver {t.receiver_cpu * per:5.1f} ms, "
        f"postgres {t.postgres_cpu * per:5.1f} ms, anything else {others * per:5.1f} ms; cores {t.busy:.0%} busy"
    )


class Phases:
    """--phases: wall time per message in each step of A's sender (hub.exchange.send), by
    wrapping the module's functions: claim, build (database and file), freeze (the payload
    stored at the first attempt: one more transaction), seal, post (the HTTP
    exchange, B's work included), read the answer, finish (record the outcome)."""

    STEPS = ("_claim", "_build", "_freeze", "seal", "post", "read_answer", "_finish", "_on_delivered")

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        from hub.exchange import send as module

        self.module, self.spent, self.calls = module, Counter(), Counter()
        event.listen(engine, "before_cursor_execute", lambda *a: self._count("statements"))
        event.listen(engine, "commit", lambda *a: self._count("commits"))
        self.lock = threading.Lock()
        self.originals = {name: getattr(module, name) for name in self.STEPS}
        for name, fn in self.originals.items():
            setattr(module, name, self._wrap(name, fn))

    def _wrap(self, name: str, fn):
        def wrapped(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                with self.lock:
                    self.spent[name] += time.perf_counter() - t0
                    self.calls[name] += 1

        return wrapped

    def _count(self, what: str) -> None:
        with self.lock:
            self.calls[what] += 1

    def reset(self) -> None:
        self.spent.clear()
        self.calls.clear()

    def report(self, n: int, concurrency: int, seconds: float) -> str:
        parts = [f"{name.strip('_')} {self.spent[name] / n * 1000:.1f}" for name in self.STEPS]
        parts[-1] = "of which " + parts[-1]  # inside finish
        return (
            f"  sender steps, ms of wall time per envelope (in each of {concurrency} threads; "
            f"{concurrency * seconds / n * 1000:.0f} ms per envelope in all): " + ", ".join(parts) + "\n"
            f"  A's database: {self.calls['statements'] / n:.1f} statements and {self.calls['commits'] / n:.1f} "
            "commits per envelope (the sender's loop, polling included)"
        )


# ---------------------------------------------------------------- the baseline sender


def sent_bodies(hub, numbers: list[str]) -> list[tuple[bytes, bytes, str]]:
    """The application envelopes A sent for `numbers` (as logged) and their files: the same bytes."""
    from sqlalchemy import select

    from hub.exchange.envelope import parse
    from hub.exchange.log import body_bytes
    from hub.storage.tables import MessageLogEntry, PartnerMessage

    with hub.sessions() as s:
        ids = list(s.scalars(select(PartnerMessage.message_id).where(PartnerMessage.conversation.in_(numbers))))
        rows = s.scalars(
            select(MessageLogEntry).where(
                MessageLogEntry.message_id.in_(ids),
                MessageLogEntry.direction == "out",
                MessageLogEntry.verdict == "sent",
            )
        ).all()
        out = []
        for row in rows:
            body = body_bytes(row.body)
            env = parse(body)
            [att] = env.attachments
            out.append((body, hub.store.path_of(att.sha256).read_bytes(), att.media_type))
    if len(out) != len(numbers):
        raise SystemExit(f"{len(out)} sent envelopes in A's log for {len(numbers)} applications")
    return out


def bare_send(url: str, key, messages: list[tuple[bytes, bytes, str]], concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=30, trust_env=False, limits=limits) as client:

        def one(m: tuple[bytes, bytes, str]) -> None:
            body, data, media_type = m
            signature = base64.b64encode(key.sign(PREFIX + body)).decode("ascii")
            files = {"envelope": ("envelope.json", body, "application/json"), "f0": ("f0", data, media_type)}
            r = client.post(PATH, headers={"Tongban-Signature": signature}, files=files)
            assert r.status_code == 200 and r.json()["sizes"] == [len(data)], r.text[:300]

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, messages))


class DurableSender:
    """The baseline sender's work, then each envelope marked delivered in its own PostgreSQL
    database after the answer (one transaction: one row updated), as an outbox must."""

    def __init__(self, db: str, concurrency: int) -> None:
        self.db = db
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS outbox (message_id text PRIMARY KEY, "
                "state text NOT NULL DEFAULT 'pending', delivered_at timestamptz)"
            )
        self.conns: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(concurrency):
            self.conns.put(psycopg.connect(db))

    def owe(self, messages: list[tuple[bytes, bytes, str]]) -> None:
        """Untimed: the rows the sender will mark (the hub's outbox rows exist before it sends, too)."""
        import json

        conn = self.conns.get()
        try:
            with conn.transaction():
                for body, _, _ in messages:
                    conn.execute("INSERT INTO outbox (message_id) VALUES (%s)", (json.loads(body)["id"],))
        finally:
            self.conns.put(conn)

    def send(self, url: str, key, messages: list[tuple[bytes, bytes, str]], concurrency: int) -> None:
        import json

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        with httpx.Client(base_url=url, timeout=30, trust_env=False, limits=limits) as client:

            def one(m: tuple[bytes, bytes, str]) -> None:
                body, data, media_type = m
                signature = base64.b64encode(key.sign(PREFIX + body)).decode("ascii")
                files = {"envelope": ("envelope.json", body, "application/json"), "f0": ("f0", data, media_type)}
                r = client.post(PATH, headers={"Tongban-Signature": signature}, files=files)
                assert r.status_code == 200 and r.json()["sizes"] == [len(data)], r.text[:300]
                conn = self.conns.get()
                try:
                    with conn.transaction():
                        cur = conn.execute(
                            "UPDATE outbox SET state = 'delivered', delivered_at = now() "
                            "WHERE message_id = %s AND state = 'pending'",
                            (json.loads(body)["id"],),
                        )
                        assert cur.rowcount == 1
                finally:
                    self.conns.put(conn)

            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(one, messages))

    def close(self) -> None:
        while not self.conns.empty():
            self.conns.get().close()


def durable_check(db: str, n: int) -> None:
    """Every envelope of the durable baseline: one row at the receiver (the unique key saw to it)."""
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM received").fetchone()[0]
    if rows != n:
        raise SystemExit(f"durable receiver has {rows} rows for {n} envelopes")


# ---------------------------------------------------------------- profile summary


def py_spy() -> str | None:
    found = BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def summarise_profile(path: Path, top: int = 25) -> None:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    if not path.exists():
        print(f"(no profile at {path})")
        return
    own, incl, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1] if " (" in f else f for f in stack.split(";")]
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") else f for f in frames]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{path}: {total} samples (threads with work; idle waiting is not sampled)")
    print("  self:")
    for f, n in own.most_common(top):
        print(f"    {n / total:6.1%}  {f}")
    print("  inclusive:")
    for f, n in incl.most_common(top + 15):
        print(f"    {n / total:6.1%}  {f}")


# ---------------------------------------------------------------- main


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "?",
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"]
    except OSError:
        system = platform.platform(terse=True)
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or os.cpu_count()
    return f"machine: nproc {nproc} ({model}), {platform.machine()}, {mem:.0f} GiB, {system}, Python {platform.python_version()}"


def paced(hubs: Hubs, desk: Desk, n: int, rate: float) -> tuple[Latencies, float]:
    """A's desk receives `n` applications at `rate` per second (Poisson arrivals) while a sender
    loop sends whatever is owed as soon as something is: the latency one message sees."""
    from hub.exchange.send import send

    numbers: list[str] = []
    owed_now = threading.Event()
    done = threading.Event()
    failures: list[str] = []

    def sender() -> None:
        while not done.is_set():
            owed_now.wait()
            owed_now.clear()
            s = send(hubs.a)
            if s.dead or s.unusable:
                failures.append(s.line())
                return

    thread = threading.Thread(target=sender, name="paced-sender")
    thread.start()
    rng = random.Random(7)
    started = at = time.perf_counter()
    try:
        for _ in range(n):
            at += rng.expovariate(rate)
            time.sleep(max(0.0, at - time.perf_counter()))  # the arrival schedule, not a wait for a condition
            numbers.append(desk.receive())
            owed_now.set()
        offered = n / (time.perf_counter() - started)
    finally:
        done.set()
        owed_now.set()
        thread.join()
    if failures:
        raise SystemExit(f"paced run failed: {failures[0]}")
    drain(hubs.a, numbers)  # the last ones, if the loop stopped before them
    return latencies(hubs, numbers), offered


def start_bare(folder: Path, key) -> tuple[subprocess.Popen, str]:
    from hub.partners.keys import public_b64

    port = free_port()
    log = folder / "bare.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--bare-receiver", str(port)],
            env=os.environ | {"BENCH_PUBLIC_KEY": public_b64(key)},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health", proc, log)
    return proc, url


def start_durable(folder: Path, key, pg: Postgres) -> tuple[subprocess.Popen, str, str, str]:
    """The durable baseline's receiver (its own database and folder) and the sender's database."""
    from hub.partners.keys import public_b64

    rx, tx = pg.create("durable_rx", driver=""), pg.create("durable_tx", driver="")
    with psycopg.connect(rx, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE received (message_id text PRIMARY KEY, sha256 text NOT NULL, "
            "received_at timestamptz NOT NULL DEFAULT now())"
        )
    store = folder / "durable-store"
    store.mkdir()
    port = free_port()
    log = folder / "durable.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--durable-receiver", str(port)],
            env=os.environ
            | {"BENCH_PUBLIC_KEY": public_b64(key), "BENCH_DURABLE_DB": rx, "BENCH_DURABLE_DIR": str(store)},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/health", proc, log)
    return proc, url, rx, tx


def spy_on(spy_bin: str, folder: Path, gil: bool, targets: dict[str, int]) -> list[subprocess.Popen]:
    folder.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [spy_bin, "record", "-p", str(pid), "-r", "100", "--format", "raw", "-o", str(folder / f"{name}.txt")]
            + (["--gil"] if gil else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in targets.items()
    ]
    time.sleep(1.0)  # attached before the clock starts
    return spies


@dataclass
class Bench:
    args: argparse.Namespace
    hubs: Hubs
    desk: Desk
    key: object  # A's signing key: the baseline signs with it too
    bare: subprocess.Popen
    bare_url: str
    durable: Durable | None
    phases: Phases | None
    activity: PgActivity | None
    spy_bin: str | None

    def round(self, rnd: int) -> tuple[Timed, Timed, Timed | None]:
        args, a = self.args, self.hubs.a
        t0 = time.perf_counter()
        numbers = [self.desk.receive() for _ in range(args.apps)]
        made = time.perf_counter() - t0
        spies = []
        if args.py_spy and rnd == 1:
            targets = {"hub-a-sender": os.getpid(), "hub-b-receiver": self.hubs.b_proc.pid}
            spies = spy_on(self.spy_bin, args.py_spy, args.py_spy_gil, targets)
        outcomes: Counter = Counter()
        if self.phases:
            self.phases.reset()
        if self.activity:
            self.activity.__enter__()
        h = timed(args.apps, lambda: outcomes.update(drain(a, numbers)), self.hubs.b_proc.pid)
        if self.activity:
            self.activity.__exit__()
        for p in spies:
            p.send_signal(signal.SIGINT)
            p.wait(30)
        lat = latencies(self.hubs, numbers)
        messages = sent_bodies(a, numbers) * args.bare_repeat  # a longer run: the baseline is fast
        b = timed(len(messages), lambda: bare_send(self.bare_url, self.key, messages, args.concurrency), self.bare.pid)
        d, durable_lines = None, ""
        if self.durable is not None:
            d = self.durable.round(self.key, sent_bodies(a, numbers), args.concurrency)
            durable_lines = (
                f"  durable : {d.rate:7.1f} envelopes/s ({args.apps} in {d.seconds:.2f} s); {cpu_line(d, args.apps)}\n"
                f"  ratio hub/durable : {h.rate / d.rate:7.3f}\n"
            )
        retries = f", {outcomes['retrying']} retried" if outcomes["retrying"] else ""
        print(
            f"round {rnd}: {args.apps} applications received at A in {made:.1f} s (untimed)\n"
            f"  hub A→B : {h.rate:7.1f} envelopes/s ({h.seconds:.2f} s, {outcomes['delivered']} delivered{retries}); "
            f"{cpu_line(h, args.apps)}\n"
            f"  bare    : {b.rate:7.1f} envelopes/s ({len(messages)} in {b.seconds:.2f} s); "
            f"{cpu_line(b, len(messages))}\n"
            f"  ratio hub/bare    : {h.rate / b.rate:7.3f}\n"
            f"{durable_lines}"
            f"  backlog latency (all {args.apps} owed at the start), accept→B inbox: {lat_line(lat.inbox)}; "
            f"accept→ack recorded at A: {lat_line(lat.acked)}",
            flush=True,
        )
        if self.phases:
            print(self.phases.report(args.apps, args.concurrency, h.seconds), flush=True)
        return h, b, d


@dataclass
class Durable:
    """The durable baseline: its receiver process, the sender's outbox, and how many it took."""

    proc: subprocess.Popen
    url: str
    rx: str
    sender: DurableSender
    taken: int = 0

    def round(self, key, messages: list[tuple[bytes, bytes, str]], concurrency: int) -> Timed:
        self.sender.owe(messages)  # untimed
        t = timed(len(messages), lambda: self.sender.send(self.url, key, messages, concurrency), self.proc.pid)
        self.taken += len(messages)
        durable_check(self.rx, self.taken)
        return t


def run(args: argparse.Namespace, folder: Path, pg: Postgres | None, spy_bin: str | None) -> None:
    from hub.exchange.identity import us

    hubs = setup(folder, args, pg)
    bare = durable = None
    try:
        a = hubs.a
        print(
            f"database: {hubs.backend} for both hubs; B = `hub serve` pid {hubs.b_proc.pid} at {hubs.b_url}; "
            f"A in this process (pid {os.getpid()}); limits.concurrency {args.concurrency}"
        )
        key = us(a).key
        bare, bare_url = start_bare(folder, key)
        desk = Desk(a, args.kb)
        # warm-up, untimed: the first messages pay for imports, connections and caches on both sides
        warm = [desk.receive() for _ in range(max(args.concurrency, 4))]
        drain(a, warm)
        bare_send(bare_url, key, sent_bodies(a, warm), args.concurrency)
        if pg is not None and not args.no_durable:
            proc, url, rx, tx = start_durable(folder, key, pg)
            durable = Durable(proc, url, rx, DurableSender(tx, args.concurrency))
            durable.round(key, sent_bodies(a, warm), args.concurrency)  # warm-up, untimed
        bench = Bench(
            args,
            hubs,
            desk,
            key,
            bare,
            bare_url,
            durable,
            Phases(a.engine) if args.phases else None,
            PgActivity(pg.url, pg.names[:2]) if pg is not None else None,  # the two hubs' databases
            spy_bin,
        )
        runs = [bench.round(rnd) for rnd in range(1, args.rounds + 1)]
        hub_rate = statistics.median(h.rate for h, _, _ in runs)
        bare_rate = statistics.median(b.rate for _, b, _ in runs)
        mb = args.kb / 1024
        print(
            f"\nresult ({hubs.backend}, concurrency {args.concurrency}, {args.apps} envelopes × {args.rounds} rounds, "
            f"one {args.kb} KiB material each):\n"
            f"  hub A→B   median {hub_rate:7.1f} envelopes/s ({hub_rate * mb:.1f} MiB/s of material)\n"
            f"  bare POST median {bare_rate:7.1f} envelopes/s ({bare_rate * mb:.1f} MiB/s)\n"
            f"  ratio hub/bare   {hub_rate / bare_rate:7.3f} "
            f"(rounds {', '.join(f'{h.rate / b.rate:.3f}' for h, b, _ in runs)}; goal ≥ 0.5)"
        )
        if durable is not None:
            durable_rate = statistics.median(d.rate for _, _, d in runs)
            print(
                f"  durable median   {durable_rate:7.1f} envelopes/s ({durable_rate * mb:.1f} MiB/s)\n"
                f"  ratio hub/durable {hub_rate / durable_rate:7.3f} "
                f"(rounds {', '.join(f'{h.rate / d.rate:.3f}' for h, _, d in runs)})\n"
                "  CPU per envelope, medians: "
                + "; ".join(
                    f"{label} {statistics.median(t.sender_cpu / n for t, n in ts) * 1000:.1f} + "
                    f"{statistics.median(t.receiver_cpu / n for t, n in ts) * 1000:.1f} + "
                    f"{statistics.median(t.postgres_cpu / n for t, n in ts) * 1000:.1f} ms"
                    for label, ts in (
                        ("hub", [(h, args.apps) for h, _, _ in runs]),
                        ("bare", [(b, args.apps * args.bare_repeat) for _, b, _ in runs]),
                        ("durable", [(d, args.apps) for _, _, d in runs]),
                    )
                )
                + " (sender + receiver + PostgreSQL)"
            )
        if bench.activity:
            print(bench.activity.report())
        if args.paced:
            lat, offered = paced(hubs, desk, args.paced, args.rate)
            print(
                f"paced: {args.paced} applications at {offered:.1f}/s (Poisson, --rate {args.rate:g}), "
                "a sender loop sending as soon as one is owed:\n"
                f"  accept→B inbox           {lat_line(lat.inbox)}\n"
                f"  accept→ack recorded at A {lat_line(lat.acked)}"
            )
    finally:
        if bare is not None:
            stop(bare)
        if durable is not None:
            durable.sender.close()
            stop(durable.proc)
        hubs.a.close()
        hubs.b_engine.dispose()
        stop(hubs.b_proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apps", type=int, default=200, help="applications (envelopes) per round (default 200)")
    ap.add_argument("--concurrency", type=int, default=4, help="partner limits.concurrency and bare threads (4)")
    ap.add_argument("--kb", type=int, default=200, help="size of each material in KiB (200)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each hub then bare (3)")
    ap.add_argument("--bare-repeat", type=int, default=5, help="the baseline posts each round's envelopes N times (5)")
    ap.add_argument("--paced", type=int, default=100, help="applications in the paced latency run (100; 0: none)")
    ap.add_argument("--rate", type=float, default=4.0, help="arrivals per second in the paced run (4)")
    ap.add_argument("--pg", default=os.environ.get("HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"))
    ap.add_argument("--sqlite", action="store_true", help="SQLite even if PostgreSQL answers")
    ap.add_argument("--phases", action="store_true", help="time each step of A's sender (wraps hub.exchange.send)")
    ap.add_argument("--py-spy", type=Path, metavar="DIR", help="record A and B with py-spy in the first hub round")
    ap.add_argument("--py-spy-gil", action="store_true", help="py-spy samples only the thread holding the GIL")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (homes, logs)")
    ap.add_argument("--no-durable", action="store_true", help="skip the durable baseline (PostgreSQL only)")
    ap.add_argument("--bare-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--durable-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_receiver:
        bare_receiver(args.bare_receiver)
        return 0
    if args.durable_receiver:
        durable_receiver(args.durable_receiver)
        return 0
    spy_bin = py_spy() if args.py_spy else None
    if args.py_spy and not spy_bin:
        ap.error("--py-spy needs py-spy beside the interpreter or on PATH (pip install py-spy)")

    print(machine())
    command = [os.path.relpath(sys.executable, REPO), os.path.relpath(__file__, REPO), *sys.argv[1:]]
    print("command: " + shlex.join(command))
    pg = None if args.sqlite else Postgres(args.pg)
    if pg is not None and not pg.reachable():
        print(f"PostgreSQL at {pg.url} does not answer: SQLite")
        pg = None
    folder = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    try:
        run(args, folder, pg, spy_bin)
    finally:
        if pg is not None:
            pg.drop()
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if args.py_spy:
        for name in ("hub-a-sender", "hub-b-receiver"):
            summarise_profile(args.py_spy / f"{name}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
