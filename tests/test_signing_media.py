"""Remote signing with real media: `hub serve` in a process of its own, two aiortc clients with
synthetic cameras (every picture carries its frame number) and microphones, on 127.0.0.1 only
(the hub and the clients offer no other address). Pictures reach the other side in order, both
sides are recorded in segments of the expected length, the evidence verifies and names a flipped
byte; and a hub killed mid-session leaves its segments playable and hashed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import pytest
import yaml

from hub import applications as svc
from hub import session_log, signing
from hub.context import Hub
from hub.home import write_home
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.tokens import create_token
from tests.support.samples import SH_CLERK, fund_retire, officer
from video.media import restrict_host_addresses
from video.synthetic import SyntheticParticipant

GJJ = officer("ts-gjj", "公积金审批员")
BIN = Path(sys.executable).parent
SEGMENT_SECONDS = 2.0


@dataclass
class Served:
    home: Path
    url: str
    proc: subprocess.Popen
    hub: Hub
    desk: dict[str, str]
    officer: dict[str, str]
    env: dict[str, str]

    def hub_cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "hub"), *args], env=self.env, capture_output=True, text=True, timeout=120)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _port()
    log = open(home / f"serve-{port}.log", "wb")  # noqa: SIM115 — the server's, closed with it
    proc = subprocess.Popen(
        [str(BIN / "hub"), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/login", timeout=1, trust_env=False).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    raise RuntimeError((home / f"serve-{port}.log").read_text())


@pytest.fixture
def served(tmp_path: Path, clock) -> Iterator[Served]:
    home = write_home(tmp_path / "home")
    settings = yaml.safe_load((home / "hub.yaml").read_text(encoding="utf-8"))
    settings["signing"] = {"ice_host_addresses": ["127.0.0.1"], "segment_seconds": SEGMENT_SECONDS}
    (home / "hub.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    env = os.environ | {"HUB_HOME": str(home), "HUB_DATABASE_URL": url}
    hub = Hub.open(home, database_url=url)
    restrict_host_addresses(["127.0.0.1"])  # this process's aiortc clients too
    tokens = {}
    for name, role, desk, dept in (
        ("desk", Role.enclave_clerk, "enclave-shanghai", None),
        ("officer", Role.officer, None, "ts-gjj"),
    ):
        secret, _ = create_token(
            hub, name, role=role, desk=desk, department=dept, scopes=["applications:read", "applications:write"],
            created_by="test",
        )  # fmt: skip
        tokens[name] = {"authorization": f"Bearer {secret}"}
    proc, base = _serve(home, env)
    served = Served(home, base, proc, hub, tokens["desk"], tokens["officer"], env)
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.proc.send_signal(signal.SIGINT)
            try:
                served.proc.wait(20)
            except subprocess.TimeoutExpired:
                served.proc.kill()
        hub.close()


def accepted_case(hub: Hub) -> str:
    number = svc.create(hub, fund_retire(), SH_CLERK).number
    svc.transition(hub, number, "pre_review", SH_CLERK)
    svc.transition(hub, number, "accept", GJJ)
    return number


async def call(client: httpx.AsyncClient, path: str, headers: dict, body: dict | None = None) -> dict:
    r = await (client.get(path, headers=headers) if body is None else client.post(path, json=body, headers=headers))
    assert r.status_code < 300, f"{path}: {r.status_code} {r.text}"
    return r.json()


async def join_both(client: httpx.AsyncClient, s: Served, session_id: str):
    desk, officer_ = SyntheticParticipant(), SyntheticParticipant()
    for who, headers in ((desk, s.desk), (officer_, s.officer)):
        answer = await call(client, f"/api/v1/signing/{session_id}/offer", headers, {"sdp": await who.offer()})
        await who.answer(answer["sdp"])
    for headers in (s.desk, s.officer):
        await call(client, f"/api/v1/signing/{session_id}/preflight", headers, {"camera": True, "microphone": True})
    return desk, officer_


async def until_step(client: httpx.AsyncClient, s: Served, session_id: str, step: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = await call(client, f"/api/v1/signing/{session_id}", s.officer)
        if state["step"] == step:
            return state
        await asyncio.sleep(0.3)
    raise AssertionError(f"session did not reach {step}: {state}")


def decoded_frames(path: Path) -> tuple[int, float]:
    """(video frames, seconds) of a recording, by decoding it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [f.pts * f.time_base for f in container.decode(stream)]
    return len(pts), float(max(pts) - min(pts)) if pts else 0.0


def test_a_signing_through_the_hub_relayed_recorded_and_sealed(served: Served):
    number = accepted_case(served.hub)

    async def run() -> tuple[str, SyntheticParticipant, SyntheticParticipant, float]:
        async with httpx.AsyncClient(base_url=served.url, timeout=30, trust_env=False) as client:
            session_id = (await call(client, f"/api/v1/applications/{number}/signing", served.officer, {}))["id"]
            desk, officer_ = await join_both(client, served, session_id)
            started = time.monotonic()
            await until_step(client, served, session_id, "consent")
            steps = f"/api/v1/signing/{session_id}/steps"
            await call(client, f"{steps}/consent", served.desk, {})
            await call(
                client, f"{steps}/identity", served.officer, {"face_matches_photo": True, "id_details_read_aloud": True}
            )
            await call(client, f"{steps}/readback_show", served.officer, {})
            shown = await call(client, f"/api/v1/signing/{session_id}", served.desk)
            assert shown["readback"]["applicant"]["name"] == "吴建国"  # the desk sees what is read back
            await call(client, f"{steps}/readback_confirm", served.desk, {})
            png = "data:image/png;base64," + __import__("base64").b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode()
            await call(client, f"{steps}/signature", served.desk, {"png": png})
            code = (await call(client, f"/api/v1/signing/{session_id}", served.desk))["otp"]
            assert "otp" not in await call(client, f"/api/v1/signing/{session_id}", served.officer)
            await asyncio.sleep(max(0.0, 3 * SEGMENT_SECONDS - (time.monotonic() - started)))
            await call(client, f"{steps}/otp", served.officer, {"code": code})
            sealed = await call(client, f"{steps}/seal", served.officer, {})
            assert sealed["state"] == "sealed" and sealed["manifest_sha256"]
            seconds = time.monotonic() - started
            await desk.close()
            await officer_.close()
            return session_id, desk, officer_, seconds

    session_id, desk, officer_, seconds = asyncio.run(run())
    for me, other in ((desk, officer_), (officer_, desk)):
        numbers = me.received.numbers
        assert numbers == sorted(set(numbers)), "pictures arrived out of order or twice"
        assert len(numbers) >= 0.8 * other.camera.sent, (len(numbers), other.camera.sent)
        assert me.received.audio_frames > 0
    folder = signing.recordings_root(served.hub) / session_id
    for role in ("desk", "officer"):
        segments = sorted((folder / role).glob("*.webm"))
        assert len(segments) >= 3
        counted = [decoded_frames(p) for p in segments]
        total_frames = sum(n for n, _ in counted)
        assert abs(total_frames / 15 - seconds) < 2.0, (role, total_frames, seconds)
        for n, length in counted[:-1]:  # every closed segment: about SEGMENT_SECONDS long
            assert n > 0 and abs(length - SEGMENT_SECONDS) < 0.6, (role, n, length)
    ok = served.hub_cli("evidence", "verify", session_id[:8])
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    victim = sorted((folder / "officer").glob("*.webm"))[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x80
    victim.write_bytes(bytes(data))
    bad = served.hub_cli("evidence", "verify", session_id)
    assert bad.returncode == 1
    assert f"FAIL officer/{victim.name}: sha256 does not match the manifest" in bad.stderr, bad.stderr
    events = [e.action for e in svc.read(served.hub, number, GJJ).events]
    assert events[-2:] == ["signing_started", "signing_sealed"]


def test_a_hub_killed_mid_session_leaves_playable_hashed_segments(served: Served):
    number = accepted_case(served.hub)

    async def run() -> str:
        async with httpx.AsyncClient(base_url=served.url, timeout=30, trust_env=False) as client:
            session_id = (await call(client, f"/api/v1/applications/{number}/signing", served.officer, {}))["id"]
            desk, officer_ = await join_both(client, served, session_id)
            await until_step(client, served, session_id, "consent")
            await asyncio.sleep(2.5 * SEGMENT_SECONDS)
            served.proc.kill()  # SIGKILL: no shutdown, no finishing touches
            served.proc.wait(10)
            await desk.close()
            await officer_.close()
            return session_id

    session_id = asyncio.run(run())
    folder = signing.recordings_root(served.hub) / session_id
    hashed = {
        e["data"]["path"]: e["data"]["sha256"]
        for e in session_log.read_events(folder / session_log.EVENTS)
        if e["kind"] == "segment"
    }
    for role in ("desk", "officer"):
        files = sorted((folder / role).glob("*.webm"))
        closed = [p for p in files if f"{role}/{p.name}" in hashed]
        assert len(closed) >= 2, (role, [p.name for p in files], hashed)
        for p in closed:
            assert __import__("hashlib").sha256(p.read_bytes()).hexdigest() == hashed[f"{role}/{p.name}"]
        for p in closed:
            assert decoded_frames(p)[0] > 0, p
        # the segment being written when the hub died plays too, up to half a second before that
        partial = [p for p in files if p not in closed]
        assert len(partial) <= 1
        for p in partial:  # a cluster (½ s) reached the file unless the segment was younger than that
            if p.stat().st_size < 2048:  # header only, or nothing yet: not even a container to open
                continue
            frames, _ = decoded_frames(p)
            assert frames > 0, (p, p.stat().st_size)
    # the next start finds the session no process runs: aborted, its partial evidence sealed
    served.proc, served.url = _serve(served.home, served.env)
    state = httpx.get(f"{served.url}/api/v1/signing/{session_id}", headers=served.officer, trust_env=False).json()
    assert state["state"] == "aborted" and "interrupted" in state["end_reason"], state
    ok = served.hub_cli("evidence", "verify", session_id)
    assert ok.returncode == 0 and "(aborted)" in ok.stdout, ok.stdout + ok.stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= set(hashed)
