"""Remote signing capacity: concurrent recorded sessions through `hub serve` on this machine.

    .venv/bin/python benchmarks/signing_sessions.py [--sessions 1,2,3,4,5,6] [--seconds 20]

Each session has two synthetic participants (aiortc, 640x480 at 15 fps with audio; every
picture carries its frame number and the moment it was made), joined through the hub's API on
127.0.0.1 like the desk and officer pages. The hub relays each side to the other and records
both. For each count of concurrent sessions, over a measured window after a warm-up:

- frames lost at the receiver: frame numbers missing from what each participant saw;
- frames lost at the recorder: frame numbers missing from the recordings (decoded afterwards);
- glass-to-glass latency through the hub: when a picture was made to when the other side had
  it decoded (both on this machine's monotonic clock), p50 and p95;
- CPU of the hub process per session, and of the clients; the hub's memory.

Baseline in the same run: PyAV alone encoding the same pictures and audio to the same format
(VP8 + Opus WebM segments, the hub's encoder settings) — the cost floor of a recording; a
session encodes four such streams (two pictures, two sounds) to record and relay both sides.
Clients and hub share the machine's cores: the clients' own encoding and decoding is reported
beside the hub's."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def missing_share(numbers: list[int]) -> float:
    """Share of frame numbers missing between the first and the last seen."""
    if len(numbers) < 2:
        return 1.0
    seen = set(numbers)
    span = max(seen) - min(seen) + 1
    return 1 - len(seen) / span


# ---------------------------------------------------------------- the hub


def start_hub(folder: Path) -> tuple[subprocess.Popen, str, dict[str, str], Path]:
    home = folder / "home"
    subprocess.run([str(BIN / "hub"), "init", str(home)], check=True, capture_output=True)
    settings = yaml.safe_load((home / "hub.yaml").read_text(encoding="utf-8"))
    settings["signing"] = {"ice_host_addresses": ["127.0.0.1"], "segment_seconds": 4}
    (home / "hub.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    env = os.environ | {"HUB_HOME": str(home)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "hub.log", "wb")  # noqa: SIM115 — the server's, for its lifetime
    proc = subprocess.Popen([str(BIN / "hub"), "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/login", timeout=1, trust_env=False).status_code == 200:
                return proc, url, env, home
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError((folder / "hub.log").read_text())


def make_cases(home: Path, n: int) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """n accepted applications needing a signature; bearer headers for the desk and the officer."""
    from hub import applications as svc
    from hub.context import Hub
    from hub.lifecycle import Role
    from hub.tokens import create_token
    from tests.support.samples import SH_CLERK, fund_retire, officer

    hub = Hub.open(home)
    try:
        numbers = []
        for i in range(n):
            new = fund_retire()
            new.applicant.id = new.applicant.id  # the same retiree is fine: one application per session
            new.source_ref = f"bench-{time.time_ns()}-{i}"
            number = svc.create(hub, new, SH_CLERK).number
            svc.transition(hub, number, "pre_review", SH_CLERK)
            svc.transition(hub, number, "accept", officer("ts-gjj"))
            numbers.append(number)
        heads = {}
        for name, role, desk, dept in (
            ("desk", Role.enclave_clerk, "enclave-shanghai", None),
            ("officer", Role.officer, None, "ts-gjj"),
        ):
            secret, _ = create_token(
                hub, f"bench-{name}-{time.time_ns()}", role=role, desk=desk, department=dept,
                scopes=["applications:read", "applications:write"], created_by="benchmark",
            )  # fmt: skip
            heads[name] = {"authorization": f"Bearer {secret}"}
        return numbers, heads["desk"], heads["officer"]
    finally:
        hub.close()


# ---------------------------------------------------------------- the clients (own processes)


async def _clients(url: str, sessions: list[str], desk: dict, officer: dict, warmup: float, seconds: float, conn):
    from video.media import restrict_host_addresses
    from video.synthetic import SyntheticParticipant

    restrict_host_addresses(["127.0.0.1"])
    people = []
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        for sid in sessions:
            pair = {}
            for role, headers in (("desk", desk), ("officer", officer)):
                p = SyntheticParticipant()
                r = await client.post(f"/api/v1/signing/{sid}/offer", json={"sdp": await p.offer()}, headers=headers)
                r.raise_for_status()
                await p.answer(r.json()["sdp"])
                await client.post(
                    f"/api/v1/signing/{sid}/preflight", json={"camera": True, "microphone": True}, headers=headers
                )
                pair[role] = p
            people.append(pair)
        conn.send("joined")
        conn.recv()  # warm-up over: the window starts
        await asyncio.sleep(0)
        marks = [{r: len(p.received.numbers) for r, p in pair.items()} for pair in people]
        cpu0 = time.process_time()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        out = []
        for pair, mark in zip(people, marks, strict=True):
            for role, p in pair.items():
                window = p.received.numbers[mark[role] :]
                lat = p.received.latencies_ms[mark[role] :]
                out.append({"role": role, "numbers": window, "latencies": lat, "sent": p.camera.sent})
        for pair in people:
            for p in pair.values():
                await p.close()
    conn.send({"receivers": out, "cpu": cpu})


def client_process(url, sessions, desk, officer, warmup, seconds, conn) -> None:
    asyncio.run(_clients(url, sessions, desk, officer, warmup, seconds, conn))


# ---------------------------------------------------------------- one load level


def run_level(url: str, home: Path, hub_pid: int, n: int, seconds: float, warmup: float, procs: int) -> dict:
    numbers, desk, officer = make_cases(home, n)
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        sessions = []
        for number in numbers:
            r = client.post(f"/api/v1/applications/{number}/signing", json={}, headers=officer)
            r.raise_for_status()
            sessions.append(r.json()["id"])
        ctx = multiprocessing.get_context("spawn")
        children = []
        for k in range(min(procs, n)):
            parent, child = ctx.Pipe()
            share = sessions[k :: min(procs, n)]
            p = ctx.Process(
                target=client_process, args=(url, share, desk, officer, warmup, seconds, child), daemon=True
            )
            p.start()
            children.append((p, parent))
        for _, c in children:
            assert c.recv() == "joined"
        time.sleep(warmup)
        cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
        for _, c in children:
            c.send("go")
        results = [c.recv() for _, c in children]
        hub_cpu, elapsed = cpu_seconds(hub_pid) - cpu0, time.monotonic() - t0
        memory = rss_mb(hub_pid)
        for p, _ in children:
            p.join(30)
        for sid in sessions:  # end them; the evidence is sealed as aborted
            client.post(f"/api/v1/signing/{sid}/steps/abort", json={"reason": "benchmark"}, headers=officer)
    receivers = [r for res in results for r in res["receivers"]]
    recorder_missing = []
    import av

    from video.synthetic import read_marks

    for sid in sessions:
        for role in ("desk", "officer"):
            seen = []
            for seg in sorted((home / "recordings" / sid / role).glob("*.webm")):
                with av.open(str(seg)) as c:
                    for f in c.decode(video=0):
                        if (m := read_marks(f)) is not None:
                            seen.append(m[0])
            recorder_missing.append(missing_share(seen))
    latencies = [x for r in receivers for x in r["latencies"]]
    return {
        "sessions": n,
        "receiver_loss": max(missing_share(r["numbers"]) for r in receivers),
        "receiver_loss_mean": statistics.mean(missing_share(r["numbers"]) for r in receivers),
        "recorder_loss": max(recorder_missing),
        "fps": statistics.mean(len(set(r["numbers"])) / seconds for r in receivers),  # > 15: catching up
        "latency_p50": pct(latencies, 50),
        "latency_p95": pct(latencies, 95),
        "hub_cpu_per_session": hub_cpu / elapsed / n,
        "client_cpu": sum(r["cpu"] for r in results) / elapsed,
        "hub_rss": memory,
    }


# ---------------------------------------------------------------- the baseline


def baseline(seconds: float) -> float:
    """CPU seconds PyAV alone spends per media second encoding one side (picture and sound) to
    VP8 + Opus WebM segments with the hub's settings: the floor of recording one participant."""
    import fractions

    import av

    from video.media import AUDIO_CLOCK, VIDEO_CLOCK
    from video.synthetic import SyntheticCamera, SyntheticMicrophone

    async def frames():
        cam, mic = SyntheticCamera(), SyntheticMicrophone()
        cam._start = mic._start = time.monotonic() - 10_000  # no pacing: as fast as they can be made
        return [await cam.recv() for _ in range(int(15 * seconds))], [
            await mic.recv() for _ in range(int(50 * seconds))
        ]

    pictures, sounds = asyncio.run(frames())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        container = None
        for i, frame in enumerate(pictures):
            if i % 60 == 0:
                if container:
                    container.close()
                container = av.open(f"{tmp}/{i}.webm", "w", format="webm")
                v = container.add_stream("libvpx", rate=15)
                v.codec_context.width, v.codec_context.height, v.codec_context.pix_fmt = 640, 480, "yuv420p"
                v.codec_context.time_base, v.codec_context.bit_rate = VIDEO_CLOCK, 800_000
                v.codec_context.gop_size = 30
                v.codec_context.options = {
                    "deadline": "realtime",
                    "cpu-used": "8",
                    "lag-in-frames": "0",
                    "static-thresh": "1",
                }
                v.codec_context.thread_count = 1
                a = container.add_stream("libopus", rate=48_000)
                a.codec_context.layout, a.codec_context.format, a.codec_context.bit_rate = "stereo", "s16", 48_000
                a.codec_context.time_base = AUDIO_CLOCK
            frame.pts, frame.time_base = i * 6000, VIDEO_CLOCK
            for p in v.encode(frame):
                container.mux(p)
            for s in sounds[i * 50 // 15 : (i + 1) * 50 // 15]:
                s.time_base = fractions.Fraction(1, 48_000)
                for p in a.encode(s):
                    container.mux(p)
        container.close()
        return (time.process_time() - start) / seconds


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,2,3,4,5,6", help="concurrent session counts to try (default 1..6)")
    ap.add_argument("--seconds", type=float, default=20, help="measured window per level (default 20)")
    ap.add_argument("--warmup", type=float, default=4, help="seconds after joining before measuring (default 4)")
    ap.add_argument("--client-procs", type=int, default=2, help="processes running the participants (default 2)")
    args = ap.parse_args()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        "?",
    )
    print(f"machine: {os.cpu_count()} cores ({model}), Python {platform.python_version()}")
    floor = baseline(10)
    print(
        f"baseline: PyAV alone, one side (640x480@15 VP8 + Opus, WebM segments): {floor * 1000:.0f} ms CPU per media second"
    )
    print(f"          a session records and relays two sides: floor {2 * floor * 100:.0f}% of a core")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        proc, url, _env, home = start_hub(Path(tmp))
        try:
            for n in (int(x) for x in args.sessions.split(",")):
                r = run_level(url, home, proc.pid, n, args.seconds, args.warmup, args.client_procs)
                rows.append(r)
                print(
                    f"{n} session(s): receiver loss max {r['receiver_loss']:.1%} (mean {r['receiver_loss_mean']:.1%}), "
                    f"recorder loss max {r['recorder_loss']:.1%}, {r['fps']:.1f} fps received, latency p50 "
                    f"{r['latency_p50']:.0f} ms p95 {r['latency_p95']:.0f} ms; hub CPU {r['hub_cpu_per_session']:.0%} of a "
                    f"core per session ({r['hub_cpu_per_session'] / (2 * floor):.1f}x the floor), clients "
                    f"{r['client_cpu']:.0%}; hub RSS {r['hub_rss']:.0f} MB",
                    flush=True,
                )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    print()
    print(
        "| sessions | receiver loss (max) | recorder loss (max) | fps | latency p50 | latency p95 | hub CPU / session | clients CPU | hub RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['sessions']} | {r['receiver_loss']:.1%} | {r['recorder_loss']:.1%} | {r['fps']:.1f} | "
            f"{r['latency_p50']:.0f} ms | {r['latency_p95']:.0f} ms | {r['hub_cpu_per_session']:.0%} | "
            f"{r['client_cpu']:.0%} | {r['hub_rss']:.0f} MB |"
        )
    ok = [r["sessions"] for r in rows if r["receiver_loss"] < 0.02 and r["recorder_loss"] < 0.02]
    print(
        f"most concurrent sessions with < 2% frames lost at receivers and recorder: {max(ok) if ok else 0} (goal >= 4)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
