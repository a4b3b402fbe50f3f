"""Web intake: submissions/s and latency through `POST /api/v1/applications` (bearer token,
multipart: the IntakeData JSON and two 1 MB materials; received and first-reviewed at a bank
desk, materials into the content-addressed store, PostgreSQL) versus a bare FastAPI endpoint with
the same multipart signature that writes and fsyncs the two files and answers 201, same uvicorn
settings, same concurrent clients, alternating runs.

    .venv/bin/python benchmarks/web_intake.py [--requests 1000] [--concurrency 50] [--runs 3]
    .venv/bin/python benchmarks/web_intake.py --py-spy /tmp/prof   # also profile both servers

Both servers are subprocesses on 127.0.0.1 with one uvicorn worker each: the hub through
`hub serve` (a fresh hub home and a fresh PostgreSQL database, migrated, dropped afterwards),
the baseline through `python -m uvicorn` with the settings `hub serve` passes. Only one of them is
loaded at a time. The load generator is asyncio + httpx in its own process(es) (--client-procs),
`--concurrency` workers with a connection each; a warm-up first (untimed), then `--requests`
timed. Every request carries a distinct resident ID number, a distinct source_ref and material
bytes of its own (a unique tag after the file header), so nothing is deduplicated or replayed.
Afterwards: the hub's RSS (VmRSS of the uvicorn process), applications and blobs in the database
against the 201s counted, the baseline's files on disk against its 201s. Needs PostgreSQL (--pg,
default postgresql://postgres@127.0.0.1:5432) and, for --py-spy, `pip install py-spy`."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub.ids import id_check_digit  # noqa: E402

BIN = Path(sys.executable).parent
ITEM = "GG00501000"  # 老年人优待证办理: 居民身份证 and 近期免冠彩色证件照
DESK = "bank-xiahong"
MATERIALS = ["居民身份证", "近期免冠彩色证件照"]
PDF, JPEG = b"%PDF-1.4\n", b"\xff\xd8\xff\xe0"
POOL_BYTES = 8 << 20  # random bytes each client process slices its materials from
HUB_PATH, BARE_PATH = "/api/v1/applications", "/upload"
SCOPES = ["--scope", "applications:write", "--scope", "applications:read"]
# what `hub serve` passes uvicorn.run (hub/cli/serve.py), for the baseline's uvicorn
UVICORN = ["--workers", "1", "--log-level", "warning", "--no-proxy-headers", "--no-server-header"]

# The baseline: the same multipart signature as the hub's route; each file read like the hub
# reads it, written and fsynced like hub.materials.MaterialStore.put (temp file, fsync, rename).
BARE_APP = """
import json, os, tempfile
from typing import Annotated
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

ROOT = os.environ["BENCH_BARE_DIR"]
app = FastAPI()


def store(content: bytes) -> str:
    fd, tmp = tempfile.mkstemp(dir=ROOT, prefix=".incoming-")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    final = tmp.replace(".incoming-", "f-")
    os.replace(tmp, final)
    return final


@app.get("/health")
def health() -> dict:
    return {"ok": True}


@app.post("/upload", status_code=201)
async def upload(
    data: Annotated[str, Form()], files: Annotated[list[UploadFile], File()] = []
) -> JSONResponse:
    body = json.loads(data)
    sizes = []
    for f in files:
        content = await f.read()
        await run_in_threadpool(store, content)
        sizes.append(len(content))
    return JSONResponse({"source_ref": body.get("source_ref"), "sizes": sizes}, status_code=201)
"""


# ---------------------------------------------------------------- what each request carries


def resident_id(g: int) -> str:
    """A valid GB 11643 number, distinct for every g below 9,000,000: a birth date from 1941 on
    (one per 1,000 numbers) and a 3-digit sequence."""
    born = date(1941, 1, 1) + timedelta(days=g // 1000)
    first17 = f"330329{born:%Y%m%d}{g % 1000:03d}"
    return first17 + id_check_digit(first17)


def intake_data(g: int, tag: str) -> str:
    return json.dumps(
        {
            "subject": ITEM,
            "applicant": {"name": "林阿婆", "id": resident_id(g)},
            "form": {"delivery_method": "窗口领取", "contact_phone": "13905770001"},
            "materials": MATERIALS,
            "checklist": ["identity", "materials", "signature", "informed"],
            "source_ref": f"{tag}-{g}",
        },
        ensure_ascii=False,
    )


def material(header: bytes, pool: bytes, g: int, tag: str, size: int) -> bytes:
    """`size` bytes: the file header, a tag unique to the request, then random bytes."""
    head = header + f"\n% {tag}-{g}\n".encode()
    start = (g * 7919) % (len(pool) - size)
    return head + pool[start : start + size - len(head)]


# ---------------------------------------------------------------- the load generator


@dataclass
class ClientJob:
    url: str
    token: str | None
    concurrency: int
    warmup: list[int]  # request numbers (g), this process's share
    timed: list[int]
    tag: str
    size: int
    rate: float = 0.0  # this process's share of an open-loop arrival rate (requests/s); 0: closed loop


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)  # seconds, timed requests
    statuses: Counter = field(default_factory=Counter)  # timed and warm-up together
    timed_statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    start: float = 0.0  # time.monotonic(): comparable across processes
    end: float = 0.0
    cpu: float = 0.0  # this process's CPU seconds over the timed phase


async def _drive(
    client: httpx.AsyncClient, job: ClientJob, pool: bytes, numbers: list[int], out: ClientResult, timed: bool
) -> None:
    """Closed loop (`job.rate` 0): `concurrency` workers, each sending its next request as soon as
    the last is answered. Open loop: requests start at Poisson arrival times at `job.rate` per
    second whatever the server's pace (at most `concurrency` in flight, the client's connections),
    and each latency counts from the request's scheduled start, so a server falling behind shows
    as latency rather than as fewer requests sent (no coordinated omission)."""
    queue = iter(numbers)
    headers = {"Authorization": f"Bearer {job.token}"} if job.token else {}

    async def send(g: int, started: float) -> None:
        files = [
            ("files", ("id-card.pdf", material(PDF, pool, g, job.tag, job.size), "application/pdf")),
            ("files", ("photo.jpg", material(JPEG, pool, 2 * g + 1, job.tag, job.size), "image/jpeg")),
        ]
        try:
            r = await client.post(job.url, data={"data": intake_data(g, job.tag)}, files=files, headers=headers)
            status = r.status_code
            if status != 201 and len(out.errors) < 5:
                out.errors.append(f"{status}: {r.text[:300]}")
        except httpx.HTTPError as exc:
            status = type(exc).__name__
            if len(out.errors) < 5:
                out.errors.append(f"{status}: {exc}")
        elapsed = time.perf_counter() - started
        out.statuses[status] += 1
        if timed:
            out.timed_statuses[status] += 1
            out.latencies.append(elapsed)

    async def worker() -> None:
        for g in queue:  # one shared iterator: each number is taken once
            await send(g, time.perf_counter())

    if not job.rate or not timed:  # the warm-up is always closed loop
        await asyncio.gather(*(worker() for _ in range(job.concurrency)))
        return
    rng = random.Random(job.tag + str(numbers[:1]))
    at, tasks = time.perf_counter(), []
    for g in numbers:
        at += rng.expovariate(job.rate)
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        tasks.append(asyncio.create_task(send(g, at)))
    await asyncio.gather(*tasks)


async def _client(job: ClientJob, conn) -> ClientResult:
    pool = os.urandom(POOL_BYTES)
    out = ClientResult()
    limits = httpx.Limits(max_connections=job.concurrency, max_keepalive_connections=job.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120.0, trust_env=False) as client:
        await _drive(client, job, pool, job.warmup, out, timed=False)
        conn.send("warm")
        conn.recv()  # go
        out.start, cpu0 = time.monotonic(), time.process_time()
        await _drive(client, job, pool, job.timed, out, timed=True)
        out.end, out.cpu = time.monotonic(), time.process_time() - cpu0
    return out


def client_process(job: ClientJob, conn) -> None:
    conn.send(asyncio.run(_client(job, conn)))


# ---------------------------------------------------------------- /proc


def proc_status(pid: int, key: str) -> int:
    """A /proc/<pid>/status figure in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[str, int, float]]:
    """Every process now: pid -> (command name, parent pid, CPU seconds so far)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rpartition(")")[2].split()
        out[int(stat.parent.name)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


@dataclass
class CpuSplit:
    """CPU seconds over the timed phase, by who used them."""

    server: float
    postgres: float
    kernel: float  # kernel threads (writeback, journal, softirq work done there)
    others: float  # every other process (other work on the machine), and what we could not attribute
    others_top: str  # the busiest other processes
    busy: float  # share of all cores busy


def cpu_split(
    server: int, before: dict, after: dict, busy: tuple[float, float], clients: set[int], client_cpu: float
) -> CpuSplit:
    """Who used the machine's busy time; the load generator's processes count what they measured
    themselves (they may be gone by the second snapshot), py-spy counts as the generator's."""
    used: Counter = Counter()
    names: Counter = Counter()
    for pid, (comm, ppid, cpu) in after.items():
        if pid in clients or pid == os.getpid():
            continue
        delta = cpu - (before[pid][2] if pid in before else 0.0)
        if pid == server:
            kind = "server"
        elif comm in ("postgres", "py-spy"):
            kind = comm
        elif ppid == 2 or pid == 2:
            kind = "kernel"
        else:
            kind = "others"
            if delta > 0.05:
                names[comm] += delta
        used[kind] += delta
    busy_s, total_s = busy
    others = max(0.0, busy_s - client_cpu - used["server"] - used["postgres"] - used["kernel"] - used["py-spy"])
    top = ", ".join(f"{n} {c:.1f} s" for n, c in names.most_common(3))
    return CpuSplit(used["server"], used["postgres"], used["kernel"], others, top, busy_s / total_s if total_s else 0)


class PgActivity:
    """Samples pg_stat_activity of the benchmark database every 50 ms during a run: how many of
    the hub's connections are running a statement, waiting on a lock, or idle in a transaction."""

    def __init__(self, url: str, db: str) -> None:
        self.url, self.db = url, db
        self.samples: list[tuple[int, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sql = (
            "SELECT count(*), count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'), "
            "count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE state = 'idle in transaction') "
            "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        )
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            while not self._stop.wait(0.05):
                self.samples.append(conn.execute(sql, (self.db,)).fetchone())

    def __enter__(self) -> PgActivity:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return ""
        n = len(self.samples)
        conns, active, lock, idle_tx = (sum(s[i] for s in self.samples) / n for i in range(4))
        return (
            f"PostgreSQL, mean of {n} samples: {conns:.1f} connections, {active:.1f} running a statement, "
            f"{lock:.1f} waiting on a lock, {idle_tx:.1f} idle in transaction"
        )


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine (all cores) since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]  # not guest: in user
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to `timeout` s) until the machine's cores are less than `limit` busy over a 2 s
    sample, so other work on the machine does not share the cores with a run; the last share."""
    deadline = time.monotonic() + timeout
    while True:
        b0, t0 = machine_busy()
        time.sleep(2)
        b1, t1 = machine_busy()
        share = (b1 - b0) / (t1 - t0)
        if share < limit or time.monotonic() > deadline:
            return share
        print(f"  (machine {share:.0%} busy before the run: waiting for it to be quiet)", flush=True)


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    label: str
    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, path: str, headers: dict[str, str], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, headers=headers, timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not answer {path} within {seconds:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(label: str, cmd: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    out = open(log, "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return Server(label, proc, f"http://127.0.0.1:{port}", log)


class Postgres:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.name = f"bench_web_intake_{os.getpid()}"

    def create(self) -> str:
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return f"{self.url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{self.name}"

    def drop(self) -> None:
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def scalar(self, sql: str) -> Any:
        with psycopg.connect(f"{self.url}/{self.name}") as conn:
            return conn.execute(sql).fetchone()[0]


def hub_env(home: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return env | {"HUB_HOME": str(home), "HUB_DATABASE_URL": db_url}


def make_hub(folder: Path, db_url: str) -> tuple[Path, dict[str, str], str]:
    """A fresh home on the fresh database, migrated; a teller token at the bank desk."""
    home = folder / "home"
    subprocess.run([str(BIN / "hub"), "init", str(home)], check=True, capture_output=True)
    (home / "hub.db").unlink(missing_ok=True)  # the runs use PostgreSQL
    env = hub_env(home, db_url)
    subprocess.run([str(BIN / "hub"), "db", "upgrade"], env=env, check=True, capture_output=True)
    # a desk token needs a second person's approval (双人授权): the hub's first supervisor gives it
    password = folder / "supervisor.pw"
    password.write_text(secrets.token_urlsafe(16))
    hub = [str(BIN / "hub"), "--home", str(home)]
    subprocess.run(
        [
            *hub,
            "users",
            "add",
            "bench-boss",
            "--name",
            "压测主管",
            "--role",
            "supervisor",
            "--password-file",
            str(password),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    made = subprocess.run(
        [*hub, "tokens", "create", "bench", "--role", "teller", "--desk", DESK, *SCOPES, "--approver", "bench-boss"],
        env={**env, "HUB_APPROVER_PASSWORD": password.read_text()},
        check=True,
        capture_output=True,
        text=True,
    )
    return home, env, made.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    label: str
    number: int
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter  # timed and warm-up
    timed_statuses: Counter
    errors: list[str]
    client_cpu: float  # the load generator's processes, as they measured themselves
    cpu: CpuSplit
    before: float  # share of the cores busy just before the run (other work)
    pg_activity: str
    rss_mb: float
    hwm_mb: float

    @property
    def ok(self) -> int:
        return self.timed_statuses.get(201, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def pct(self, p: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))] * 1000

    @property
    def failed(self) -> int:
        return self.requests - self.ok


class Numbers:
    """Request numbers (g), unique over the whole invocation: IDs, source_refs and tags."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> list[int]:
        out = list(range(self.next, self.next + n))
        self.next += n
        return out


def load(
    server: Server,
    path: str,
    token: str | None,
    args: argparse.Namespace,
    numbers: Numbers,
    run_no: int,
    profile: Path | None,
    pg: Postgres,
) -> Run:
    before = wait_quiet(args.quiet, args.quiet_timeout)
    procs = args.client_procs
    warmup, timed = numbers.take(args.warmup), numbers.take(args.requests)
    tag = f"bench-{os.getpid()}-{server.label}"
    ctx = multiprocessing.get_context("spawn")
    children = []
    for k in range(procs):
        job = ClientJob(
            url=server.url + path,
            token=token,
            concurrency=args.concurrency // procs + (1 if k < args.concurrency % procs else 0),
            warmup=warmup[k::procs],
            timed=timed[k::procs],
            tag=tag,
            size=int(args.mb * (1 << 20)),
            rate=args.rate / procs,
        )
        parent, child = ctx.Pipe()
        p = ctx.Process(target=client_process, args=(job, child), daemon=True)
        p.start()
        children.append((p, parent))
    for _, conn in children:
        assert conn.recv() == "warm"
    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        out = profile / f"{server.label}-run{run_no}.txt"
        spy = subprocess.Popen(
            [str(BIN / "py-spy"), "record", "-p", str(server.pid), "-r", "100", "--format", "raw", "-o", str(out)]
            + (["--gil"] if args.py_spy_gil else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached before the timed phase
    activity = PgActivity(pg.url, pg.name) if server.label == "hub" else None
    clients = {p.pid for p, _ in children}
    p0, (b0, t0) = processes(), machine_busy()
    for _, conn in children:
        conn.send("go")
    if activity:
        activity.__enter__()
    results: list[ClientResult] = [conn.recv() for _, conn in children]
    p1, (b1, t1) = processes(), machine_busy()
    if activity:
        activity.__exit__()
    client_cpu = sum(r.cpu for r in results)
    split = cpu_split(server.pid, p0, p1, (b1 - b0, t1 - t0), clients, client_cpu)
    for p, _ in children:
        p.join(10)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    time.sleep(0.5)  # let the server settle before reading its memory
    statuses, timed_statuses, errors, latencies = Counter(), Counter(), [], []
    for r in results:
        statuses.update(r.statuses)
        timed_statuses.update(r.timed_statuses)
        errors.extend(r.errors)
        latencies.extend(r.latencies)
    seconds = max(r.end for r in results) - min(r.start for r in results)
    return Run(
        label=server.label,
        number=run_no,
        requests=len(timed),
        seconds=seconds,
        latencies=latencies,
        statuses=statuses,
        timed_statuses=timed_statuses,
        errors=errors,
        client_cpu=client_cpu,
        cpu=split,
        before=before,
        pg_activity=activity.summary() if activity else "",
        rss_mb=proc_status(server.pid, "VmRSS") / 1024,
        hwm_mb=proc_status(server.pid, "VmHWM") / 1024,
    )


def show(r: Run) -> None:
    per, c = 1000 / max(r.ok, 1), r.cpu
    print(
        f"{r.label:<4} run {r.number}: {r.rate:6.1f} req/s  p50 {r.pct(50):6.1f} ms  p90 {r.pct(90):6.1f} ms  "
        f"p99 {r.pct(99):6.1f} ms  max {max(r.latencies) * 1000:6.1f} ms  errors {r.failed}  "
        f"({r.ok} x 201 in {r.seconds:.1f} s)\n"
        f"    CPU per request: server {c.server * per:.1f} ms, client {r.client_cpu * per:.1f} ms, "
        f"postgres {c.postgres * per:.1f} ms, kernel threads {c.kernel * per:.1f} ms, "
        f"other processes {c.others * per:.1f} ms{f' ({c.others_top})' if c.others_top else ''}; "
        f"cores {c.busy:.0%} busy ({r.before:.0%} before the run); server RSS {r.rss_mb:.0f} MB, peak {r.hwm_mb:.0f} MB",
        flush=True,
    )
    if r.pg_activity:
        print(f"    {r.pg_activity}")
    for e in r.errors[:3]:
        print(f"    {e}")


# ---------------------------------------------------------------- profile summary


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
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "?",
    )
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"]
    except OSError:
        system = platform.platform(terse=True)
    return (
        f"machine: {os.cpu_count()} cores ({model}), {platform.machine()}, {mem:.0f} GiB, {system}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="timed requests per run (default 1000)")
    ap.add_argument("--warmup", type=int, default=100, help="untimed requests before each run (default 100)")
    ap.add_argument("--concurrency", type=int, default=50, help="concurrent clients, one connection each (default 50)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each, alternating hub and bare (default 3)")
    ap.add_argument("--mb", type=float, default=1.0, help="size of each of the two materials in MiB (default 1)")
    ap.add_argument(
        "--client-procs",
        type=int,
        default=3,
        help="load generator processes (default 3: one cannot keep the baseline busy)",
    )
    ap.add_argument("--only", choices=["hub", "bare"], help="run only one side")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop: requests/s arriving at random (Poisson) over the clients' connections, latency "
        "counted from each request's scheduled start; default 0: closed loop, every client sends again at once",
    )
    ap.add_argument("--py-spy", type=Path, metavar="DIR", help="record both servers with py-spy in the first run")
    ap.add_argument(
        "--quiet", type=float, default=0.15, help="wait before each run until the cores are less busy than this"
    )
    ap.add_argument("--quiet-timeout", type=float, default=600, help="…but at most this many seconds (default 600)")
    ap.add_argument(
        "--py-spy-gil", action="store_true", help="sample only the thread holding the GIL (Python CPU, not waits)"
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for both servers (repeat), e.g. MALLOC_ARENA_MAX=2",
    )
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database")
    args = ap.parse_args()
    if args.py_spy and not (BIN / "py-spy").exists():
        ap.error(f"--py-spy needs {BIN / 'py-spy'} (pip install py-spy)")
    print(machine())
    print(
        f"{args.concurrency} concurrent clients ({args.client_procs} process(es)), {args.warmup} warm-up + "
        f"{args.requests} timed requests per run, 2 materials x {args.mb:g} MiB each, one uvicorn worker per server"
        + (f"; open loop, {args.rate:g} requests/s arriving at random" if args.rate else "; closed loop")
    )
    pg = Postgres(args.pg)
    db_url = pg.create()
    servers: list[Server] = []
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-web-intake-") as tmp:
            folder = Path(tmp)
            home, env, token = make_hub(folder, db_url)
            env |= dict(item.split("=", 1) for item in args.server_env)
            bare_dir = folder / "bare-uploads"
            bare_dir.mkdir()
            (folder / "bare_app.py").write_text(BARE_APP, encoding="utf-8")
            hub_port, bare_port = free_port(), free_port()
            hub = start(
                "hub", [str(BIN / "hub"), "--home", str(home), "serve", "--port", str(hub_port)], env, hub_port,
                folder / "hub.log",
            )  # fmt: skip
            bare = start(
                "bare",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bare_app:app",
                    "--app-dir",
                    str(folder),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(bare_port),
                    *UVICORN,
                ],
                env | {"BENCH_BARE_DIR": str(bare_dir)},
                bare_port,
                folder / "bare.log",
            )
            servers = [hub, bare]
            hub.wait_ready("/api/v1/me", {"Authorization": f"Bearer {token}"})
            bare.wait_ready("/health", {})
            print(
                f"hub pid {hub.pid}, RSS at start {proc_status(hub.pid, 'VmRSS') / 1024:.0f} MB; "
                f"bare pid {bare.pid}, RSS at start {proc_status(bare.pid, 'VmRSS') / 1024:.0f} MB"
                + (f"; server environment {' '.join(args.server_env)}" if args.server_env else "")
            )
            numbers = Numbers()
            for i in range(1, args.runs + 1):
                profile = args.py_spy if i == 1 else None
                if args.only != "bare":
                    runs.append(load(hub, HUB_PATH, token, args, numbers, i, profile, pg))
                    show(runs[-1])
                if args.only != "hub":
                    runs.append(load(bare, BARE_PATH, None, args, numbers, i, profile, pg))
                    show(runs[-1])
            hub_runs = [r for r in runs if r.label == "hub"]
            bare_runs = [r for r in runs if r.label == "bare"]
            checks_ok = True
            if hub_runs:
                created = sum(r.statuses.get(201, 0) for r in hub_runs)
                apps = pg.scalar(f"SELECT count(*) FROM applications WHERE desk_code = '{DESK}'")
                refs = pg.scalar("SELECT count(DISTINCT source_ref) FROM applications")
                blobs = pg.scalar("SELECT count(*) FROM blobs")
                files = sum(1 for p in (home / "materials").rglob("*") if p.is_file())
                ok = apps == refs == created and blobs == files == 2 * created
                checks_ok &= ok
                print(
                    f"hub check: {created} x 201 (warm-up included), {apps} applications ({refs} distinct source_refs), "
                    f"{blobs} blobs, {files} files in the store: {'OK' if ok else 'MISMATCH'}"
                )
                if any(r.failed for r in hub_runs) or not ok:  # say why: the server's own account of it
                    print("hub log (last lines):\n" + hub.log.read_text(errors="replace")[-4000:])
                print(
                    f"hub RSS after the runs: {proc_status(hub.pid, 'VmRSS') / 1024:.0f} MB "
                    f"(peak {proc_status(hub.pid, 'VmHWM') / 1024:.0f} MB)"
                )
            if bare_runs:
                written = sum(r.statuses.get(201, 0) for r in bare_runs)
                files = sum(1 for p in bare_dir.iterdir() if p.name.startswith("f-"))
                ok = files == 2 * written
                checks_ok &= ok
                print(f"bare check: {written} x 201, {files} files written: {'OK' if ok else 'MISMATCH'}")
    finally:
        for s in servers:
            s.stop()
        pg.drop()
    if not runs:
        return 1
    print()
    print("| run | server | requests/s | p50 | p90 | p99 | errors | server CPU/request | RSS after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r.number} | {r.label} | {r.rate:.1f} | {r.pct(50):.0f} ms | {r.pct(90):.0f} ms | {r.pct(99):.0f} ms "
            f"| {r.failed} | {r.cpu.server * 1000 / max(r.ok, 1):.1f} ms | {r.rss_mb:.0f} MB |"
        )
    hub_runs = [r for r in runs if r.label == "hub"]
    bare_runs = [r for r in runs if r.label == "bare"]
    if hub_runs and args.rate:  # open loop: both serve the offered rate; what differs is latency
        p99s = {label: statistics.median(r.pct(99) for r in runs if r.label == label) for label in ("hub", "bare")}
        print(
            f"open loop at {args.rate:g} requests/s: p99 hub {p99s['hub']:.0f} ms, bare {p99s.get('bare', 0):.0f} ms "
            f"(median of runs); goal hub p99 < 300 ms {'met' if p99s['hub'] < 300 else 'MISSED'}; "
            f"hub RSS after the runs {hub_runs[-1].rss_mb:.0f} MB"
        )
    elif hub_runs and bare_runs:
        ratios = [h.rate / b.rate for h, b in zip(hub_runs, bare_runs, strict=True)]
        ratio = statistics.median(ratios)
        p99 = statistics.median(h.pct(99) for h in hub_runs)
        rss = hub_runs[-1].rss_mb
        print(f"ratio hub/bare per run: {', '.join(f'{x:.2f}' for x in ratios)}; median {ratio:.2f} (goal >= 0.5)")
        print(
            f"goal: ratio >= 0.5 {'met' if ratio >= 0.5 else 'MISSED'}; hub p99 {p99:.0f} ms (median of runs) < 300 ms "
            f"{'met' if p99 < 300 else 'MISSED'}; hub RSS after the runs {rss:.0f} MB < 300 MB "
            f"{'met' if rss < 300 else 'MISSED'}"
        )
    if args.py_spy:
        for label in ("hub", "bare"):
            summarise_profile(args.py_spy / f"{label}-run1.txt")
    return 0 if checks_ok and all(r.failed == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
