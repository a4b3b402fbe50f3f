"""The city-wide topology on this machine (scripts/prodlike): Airflow with CeleryExecutor — Redis
broker, PostgreSQL metadata DB and result backend, two Celery workers — the hub API with two
worker processes on PostgreSQL, an OpenSSH SFTP drop and the sandbox departments, all started as
real processes. Four desks drop batches at once; the test proves the tasks ran on both workers,
every good record arrived exactly once (a re-sent batch adds nothing), every bad one was reported
back to its desk, nothing listened beyond loopback, and `down` left nothing running."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_URL
from tests.support import sshd

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "prodlike"


def _prodlike_module():
    spec = importlib.util.spec_from_file_location("prodlike", ROOT / "scripts" / "prodlike.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url("redis://127.0.0.1:6379/7", socket_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def prodlike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if not PG_URL:
        pytest.skip("HUB_TEST_DATABASE_URL not set: the topology needs PostgreSQL")
    try:
        sshd.openssh()
    except sshd.OpenSSHMissing as missing:
        pytest.skip(str(missing))
    if not _redis_up():
        pytest.skip("Redis not running on 127.0.0.1:6379")
    env = dict(os.environ)
    env.update(
        PRODLIKE_DIR=str(tmp_path / "prodlike"),
        PRODLIKE_TAG=f"t{uuid.uuid4().hex[:8]}",
        PRODLIKE_PG=PG_URL.rsplit("/", 1)[0],
        PRODLIKE_REDIS="redis://127.0.0.1:6379/7",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    module = _prodlike_module()
    try:
        up = subprocess.run([str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        yield module, env
    finally:
        # always tear down; the assertion on tear-down itself is in the test
        subprocess.run([str(SCRIPT), "down", "--purge"], env=env, capture_output=True, timeout=120)


def _listening_pids() -> dict[int, list[str]]:
    """pid -> local addresses it listens on (TCP and UDP), from `ss`."""
    out = subprocess.run(["ss", "-Hlnptu"], capture_output=True, text=True, check=True).stdout
    found: dict[int, list[str]] = {}
    for line in out.splitlines():
        cols = line.split()
        local = cols[4]
        for part in line.split("pid=")[1:]:
            found.setdefault(int(part.split(",")[0]), []).append(local)
    return found


def test_four_desks_through_celery_workers_exactly_once(prodlike) -> None:
    module, env = prodlike
    lay = module.layout()
    state = json.loads(lay.state_file.read_text(encoding="utf-8"))

    # --- every component runs, and listens on loopback only
    components = module._pids(lay)
    assert {"sshd", "sandbox", "hub-api", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker1", "airflow-worker2"} <= set(components)  # fmt: skip
    ours = {pid for leader in components.values() for pid in module.session_members(leader)}
    listening = {pid: addrs for pid, addrs in _listening_pids().items() if pid in ours}
    assert listening, "no component was found listening (ss output not understood?)"
    for pid, addrs in listening.items():
        assert all(a.startswith("127.0.0.1:") for a in addrs), f"pid {pid} listens beyond loopback: {addrs}"
    hub_api_processes = module.session_members(components["hub-api"])
    assert len(hub_api_processes) >= 3, "hub API should run a supervisor and two worker processes"

    # --- four desks at once
    run = subprocess.run(
        [str(SCRIPT), "intake", "--batches", "2", "--records", "60", "--bad-every", "20", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(summary["runs"].values()) == {"success"}
    assert summary["workers_used"] == ["worker1", "worker2"], summary["tasks"]

    hub_db = PG_URL.rsplit("/", 1)[0] + "/" + state["hub_db"]
    with psycopg.connect(hub_db) as db:
        rows = db.execute("SELECT desk_code, source_ref FROM applications WHERE source_ref IS NOT NULL").fetchall()
    arrived: dict[str, list[str]] = {}
    for desk, ref in rows:
        arrived.setdefault(desk, []).append(ref)
    for desk, ids in summary["record_ids"].items():
        assert sorted(arrived.get(desk, [])) == sorted(ids["good"]), f"{desk}: good records did not arrive exactly once"
        reported = [
            json.loads(line)["record_id"]
            for f in (lay.inbox(desk) / "errors").glob("*.jsonl")
            for line in f.read_text(encoding="utf-8").splitlines()
        ]
        assert sorted(reported) == sorted(ids["bad"]), f"{desk}: bad records not reported back"
        assert ids["bad"], "the batches should hold bad records"

    # --- the desk's system sends a batch again: nothing is received twice
    desk = module.DESKS[0]
    done = sorted(p for p in (lay.inbox(desk) / "done").iterdir() if p.is_dir())[0]
    shutil.copytree(done, lay.inbox(desk) / done.name)
    (lay.inbox(desk) / f"{done.name}.ok").write_bytes(b"")
    run_id = f"resend_{uuid.uuid4().hex[:8]}"
    trigger = subprocess.run(
        [str(module.BIN / "airflow"), "dags", "trigger", module.intake_dag(desk), "--run-id", run_id],
        env=module.environment(lay, state), cwd=lay.root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert trigger.returncode == 0, trigger.stderr[-2000:]
    assert module._wait_runs(state, {desk: run_id}, timeout=300) == {desk: "success"}
    with psycopg.connect(hub_db) as db:
        total, distinct = db.execute("SELECT count(*), count(DISTINCT source_ref) FROM applications").fetchone()
    assert total == distinct == summary["records"]["good"]

    # --- tear-down leaves nothing running: what runs now includes Airflow's task processes,
    # which its supervisor puts in process groups of their own
    ours |= {pid for leader in components.values() for pid in module.session_members(leader)}
    down = subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [pid for pid in ours if module._alive(pid)], "processes left after down"
    assert not module._pids(lay), "pid files left after down"
    left_listening = set(_listening_pids()) & ours
    assert not left_listening


def test_intake_without_up_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`intake` without `up` says so instead of failing obscurely; `status` on nothing is calm."""
    env = dict(os.environ, PRODLIKE_DIR=str(tmp_path / "none"))
    run = subprocess.run([str(SCRIPT), "intake"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "scripts/prodlike up" in run.stderr
    status = subprocess.run([sys.executable, str(ROOT / "scripts" / "prodlike.py"), "status"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert status.returncode == 0 and "nothing recorded" in status.stdout
