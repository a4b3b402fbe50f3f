"""叫号屏 latency (issue 20): from a ticket call's commit to the call's event arriving on the
display screens, with 50 screens connected versus 1 (the baseline), in the same run.

    .venv/bin/python benchmarks/display_calls.py [--screens 50] [--calls 100] [--rounds 3]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/NAME]

The real app (hub.web.app.create_app) under uvicorn on 127.0.0.1 (tests/support/webserver.py),
over a fresh SQLite hub (or the PostgreSQL database given, migrated first; its queue rows are
left). The screens are `--screens` server-sent-event streams of GET /display/hall-county/events,
each its own HTTP connection (httpx, asyncio), parsing the stream as a browser's EventSource
does, all in a child process (the screens are other machines; here they must not share the
server's interpreter lock). Each call is `hub.appointments.calls.call_next` at the county hall's counter, run in a worker
thread as the desk's POST /queue/call runs it; the clock starts in a `calls.on_call` listener
registered before the display's own, i.e. right after the commit, and stops when a screen has
parsed the event (time.perf_counter: CLOCK_MONOTONIC, one clock for both processes). The next call is made once every screen has the previous one (a hall calls a
few tickets a minute: latency, not throughput, is what matters). Reported per round and
configuration: p50, p99 and max in milliseconds over calls × screens, and the ratio of the 50-
screen p99 to the 1-screen p99."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.applications import Actor
from hub.appointments import calls, tickets
from hub.context import Hub
from hub.home import write_home
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from tests.support.webserver import serving, sqlite_hub

DESK = "hall-county"
CLERK = Actor(name="窗口人员张敏", role=Role.clerk, desk=DESK)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def screens_child(url: str, screens: int, after: int) -> None:
    """The screens, in a process of their own (as they are on other machines): `screens` event
    streams; "ready" once all are open, then "ID PERF_COUNTER" per event parsed. perf_counter is
    CLOCK_MONOTONIC on Linux, one clock for every process of the machine."""
    ready = 0

    async def screen(client: httpx.AsyncClient) -> None:
        nonlocal ready
        async with client.stream("GET", f"/display/{DESK}/events?after={after}") as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if line.startswith("retry:"):
                    ready += 1
                    if ready == screens:
                        print("ready", flush=True)
                elif line.startswith("id: "):
                    print(line[4:], time.perf_counter(), flush=True)

    limits = httpx.Limits(max_connections=screens + 5, max_keepalive_connections=screens + 5)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(60, read=None), limits=limits) as client:
        await asyncio.gather(*(screen(client) for _ in range(screens)))


def measure(url: str, hub: Hub, screens: int, n_calls: int) -> list[float]:
    pending: list[float] = []
    lock = threading.Condition()
    received: dict[int, list[float]] = {}
    ready = threading.Event()

    def stamp() -> None:  # right after each commit, in the calling thread
        pending.append(time.perf_counter())

    calls.on_call(stamp)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", url, str(screens), str(calls.last_call_id(hub))],
        stdout=subprocess.PIPE,
        text=True,
    )

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "ready":
                ready.set()
                continue
            cid, at = line.split()
            with lock:
                received.setdefault(int(cid), []).append(float(at))
                lock.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    latencies: list[float] = []
    try:
        if not ready.wait(60):
            raise RuntimeError("the screens did not connect within 60 s")
        for _ in range(n_calls):
            t = calls.call_next(hub, CLERK, "1")
            assert t is not None
            committed = pending.pop()
            cid = calls.recent(hub, DESK, limit=1)[-1]["id"]
            with lock:
                if not lock.wait_for(lambda cid=cid: len(received.get(cid, ())) == screens, timeout=60):
                    raise RuntimeError(f"call {cid} did not reach every screen within 60 s")
                latencies += [(at - committed) * 1000 for at in received[cid]]
    finally:
        calls.off_call(stamp)
        child.terminate()
        child.wait(10)
    return latencies


def run(hub: Hub, url: str, args: argparse.Namespace) -> None:
    ratios = []
    for rnd in range(1, args.rounds + 1):
        row = {}
        for screens in (1, args.screens):
            for _ in range(args.calls):
                tickets.take(hub, CLERK, DESK, group="zonghe")
            lat = measure(url, hub, screens, args.calls)
            row[screens] = lat
            print(
                f"round {rnd} screens={screens:3d}: p50 {statistics.median(lat):6.2f} ms  p99 {pct(lat, 99):6.2f} ms"
                f"  max {max(lat):6.2f} ms  ({len(lat)} deliveries)",
                flush=True,
            )
        ratio = pct(row[args.screens], 99) / pct(row[1], 99)
        ratios.append(ratio)
        print(f"round {rnd}: p99 ratio {args.screens} screens / 1 screen = {ratio:.2f}", flush=True)
    print(f"median p99 ratio over {args.rounds} rounds: {statistics.median(ratios):.2f}")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        asyncio.run(screens_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screens", type=int, default=50)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    # the hub's clock: the real one (tickets are numbered per day)
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            engine = make_engine(args.database_url)
            migrate.upgrade(engine)
            engine.dispose()
            hub = Hub.open(write_home(Path(tmp) / "home"), database_url=args.database_url)
            print("database: PostgreSQL")
            with serving(hub) as url:
                run(hub, url, args)
            hub.close()
        else:
            with sqlite_hub(Path(tmp), lambda: datetime.now().astimezone()) as hub:
                print("database: SQLite")
                with serving(hub) as url:
                    run(hub, url, args)


if __name__ == "__main__":
    main()
