"""The city-wide topology on one machine, without Docker (docs/scaling.md, docker/compose.yaml):
Airflow with CeleryExecutor (Redis broker, PostgreSQL metadata DB and result backend) and two
Celery workers, the hub API with several worker processes on PostgreSQL, an OpenSSH SFTP drop
where four desks' systems leave their batches, and the sandbox departments. Everything binds
127.0.0.1; every process is started in its own session and recorded in `run/<name>.pid`, so
`down` can stop it and prove nothing is left.

    scripts/prodlike up [--workers 2] [--api-workers 2]   # start, wait until healthy
    scripts/prodlike intake [--batches 3] [--records 200] # four desks drop batches at once; wait
    scripts/prodlike status                               # processes and ports
    scripts/prodlike down [--purge]                       # stop all; --purge: drop DBs and state

State lives in `.prodlike/` (or $PRODLIKE_DIR): the hub home, Airflow home, logs, secrets (0600,
never printed), ports. PostgreSQL at $PRODLIKE_PG (default postgresql://postgres@127.0.0.1:5432),
Redis at $PRODLIKE_REDIS (default redis://127.0.0.1:6379/7)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import sshd  # noqa: E402  (the suite's sshd set-up serves the drop too)

BIN = Path(os.environ.get("BIN", ROOT / ".venv" / "bin"))
HOST = "127.0.0.1"
# The four desks whose systems drop batches (two bank outlets, two enclave windows).
DESKS = ("bank-xiahong", "bank-baizhang", "enclave-hangzhou", "enclave-shanghai")
KILLED_WITHIN = 60  # seconds for SIGKILLed processes to disappear
SAMPLE_INTAKE = ("bank-xiahong-sftp", "enclave-hangzhou-rest")  # replaced by the SFTP drop's sources


def source_name(desk: str) -> str:
    return f"drop-{desk}"


def intake_dag(desk: str) -> str:
    return f"tongban_intake_{source_name(desk)}"


@dataclass
class Layout:
    """Where everything of one prodlike instance lives."""

    root: Path

    @property
    def hub_home(self) -> Path:
        return self.root / "hub"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def drop(self) -> Path:
        return self.root / "sftp-drop"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def inbox(self, desk: str) -> Path:
        return self.drop / desk / "batches"


def layout() -> Layout:
    return Layout(Path(os.environ.get("PRODLIKE_DIR", ROOT / ".prodlike")).resolve())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _pg_url(database: str) -> str:
    base = os.environ.get("PRODLIKE_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
    return f"{base}/{database}"


def _admin() -> psycopg.Connection:
    return psycopg.connect(_pg_url("postgres"), autocommit=True)


def _redis_url() -> str:
    return os.environ.get("PRODLIKE_REDIS", "redis://127.0.0.1:6379/7")


def _say(message: str) -> None:
    print(f"[prodlike] {message}", flush=True)


# ---------------------------------------------------------------- state and environment


def _load_state(lay: Layout) -> dict[str, Any]:
    if not lay.state_file.exists():
        sys.exit(f"no prodlike instance in {lay.root} (run `scripts/prodlike up` first)")
    return json.loads(lay.state_file.read_text(encoding="utf-8"))


def _secrets(lay: Layout) -> dict[str, str]:
    return json.loads((lay.root / "secrets.json").read_text(encoding="utf-8"))


def environment(lay: Layout, state: dict[str, Any]) -> dict[str, str]:
    """The environment every component runs with: one source of truth, like an env file."""
    sec = _secrets(lay)
    p = state["ports"]
    airflow_db = _pg_url(state["airflow_db"]).replace("postgresql://", "postgresql+psycopg://", 1)
    env = dict(os.environ)
    env.update(
        {
            "HUB_HOME": str(lay.hub_home),
            "HUB_DATABASE_URL": _pg_url(state["hub_db"]),
            "HUB_SANDBOX_TOKEN": sec["sandbox_token"],
            "HUB_SECRET_KEY": sec["hub_secret_key"],
            # failed logins counted once for every API process (the broker's db is PRODLIKE_REDIS's)
            "HUB_REDIS_URL": os.environ.get("PRODLIKE_HUB_REDIS", "redis://127.0.0.1:6379/8"),
            "HUB_LOG_LEVEL": "WARNING",
            "AIRFLOW_HOME": str(lay.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{p['airflow']}/execution/",
            # which worker ran a task instance (task_instance.hostname): both workers share this
            # machine's name, so each names itself (TONGBAN_WORKER_NAME); in containers, the hostname
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tongban_config.worker_hostname",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            # psycopg 3 serves Airflow's async engine too (Airflow would pick asyncpg, not installed)
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": airflow_db.replace("+psycopg:", "+psycopg_async:", 1),
            "AIRFLOW__CELERY__BROKER_URL": state["redis"],
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_db,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(state["concurrency"]),
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(p["airflow"]),
            "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
            # a DAG run every few seconds at most; the test and the benchmark wait on them
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "dags"), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


# ---------------------------------------------------------------- processes


def _start(lay: Layout, name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start one component in its own session (so `down` can stop its whole process group)."""
    log = (lay.logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv, cwd=lay.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    (lay.run / f"{name}.pid").write_text(f"{proc.pid} {_started(proc.pid)}", encoding="utf-8")
    return proc.pid


def _pids(lay: Layout) -> dict[str, int]:
    if not lay.run.exists():
        return {}
    found = {}
    for p in sorted(lay.run.glob("*.pid")):
        pid, started = p.read_text().split()
        # the pid names the component's session. A live process under that pid that started at
        # another time is someone else's (stale state): never signal it. (While any member of
        # our session lives, Linux does not hand the session's id to a new process.)
        now = _started(int(pid))
        found[p.stem] = int(pid) if now in (None, started) else -1
    return found


def _alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(-1, …) would address every process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ours, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (state, ppid, pgrp, session, …)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def sessions() -> dict[int, list[int]]:
    """Live processes by session id, from one pass over /proc."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[0] != "Z":
            found.setdefault(int(fields[3]), []).append(int(entry.name))
    return found


def session_members(sid: int) -> list[int]:
    """Every live process of a component: its session (started with start_new_session) holds all
    it forked — including Airflow's task processes, which its supervisor puts in process groups
    of their own, and the ingest workers they start."""
    return sessions().get(sid, [])


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the pid, it names the process."""
    fields = _stat(pid)
    return fields[19] if fields else None


def _wait_http(url: str, what: str, timeout: float, pid: int | None = None, log: Path | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            # a request may take seconds on a busy machine: a short timeout would never see it ready
            if httpx.get(url, timeout=15).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if pid is not None and not _alive(pid):
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise SystemExit(f"{what} exited during start-up:\n{tail}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {timeout:.0f}s ({url})")
        time.sleep(0.5)


def _wait_port(port: int, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} not listening on {HOST}:{port} after {timeout:.0f}s") from None
            time.sleep(0.2)


# ---------------------------------------------------------------- up


def _sshd_config(lay: Layout, port: int) -> Path:
    """OpenSSH serving SFTP only (internal-sftp), on loopback, to one key: the drop the banks'
    systems write into. Set up as the tests' sshd is (tests/support/sshd.py)."""
    try:
        sshd.openssh()
    except sshd.OpenSSHMissing as missing:
        raise SystemExit(str(missing)) from None
    folder = lay.root / "sshd"
    folder.mkdir(parents=True, exist_ok=True)
    host_key, _ = sshd.keygen(folder / sshd.HOST_KEY)
    client_key, _ = sshd.keygen(folder / "hub_ed25519")
    (folder / "authorized_keys").write_text(client_key + "\n", encoding="utf-8")
    (folder / "known_hosts").write_text(f"[{HOST}]:{port} {host_key}\n", encoding="utf-8")
    return sshd.write_config(
        folder, [port], sshd.login_user(), ["Subsystem sftp internal-sftp", "ForceCommand internal-sftp"]
    )


def _write_connections(lay: Layout, ports: dict[str, int]) -> None:
    """The hub home's connections: the sample department systems on this instance's sandbox ports,
    and one SFTP intake source per desk on the drop (the samples' own intake sources removed)."""
    folder = lay.hub_home / "connections"
    for name in SAMPLE_INTAKE:
        (folder / f"{name}.yaml").unlink(missing_ok=True)
    moves = {"yibao-rest": ("base_url", ports["yibao"]), "gongan-soap": ("wsdl", ports["gongan"]),
             "irs-verify": ("base_url", ports["irs"]), "irs-licences": ("base_url", ports["irs"])}  # fmt: skip
    for path in folder.glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = path.stem
        cfg = spec["config"]
        if name in moves:
            key, port = moves[name]
            cfg[key] = cfg[key].replace(f":{_default_port(cfg[key])}", f":{port}")
        elif name == "shebao-sftp":
            cfg["port"] = ports["shebao"]
        path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    keys = lay.root / "sshd"
    for i, desk in enumerate(DESKS):
        lay.inbox(desk).mkdir(parents=True, exist_ok=True)
        spec = {
            "type": "sftp",
            "description": f"{desk} 批量受理文件（SFTP 投递点）",
            "limits": {"concurrency": 1},
            "intake": {"desks": [desk], "schedule": f"{i * 7 % 60} */6 * * *"},  # manual runs do the work
            "config": {
                "host": HOST,
                "port": ports["sftp"],
                "username": sshd.login_user(),
                "auth": {"private_key": f"file:{keys / 'hub_ed25519'}"},
                "known_hosts": str(keys / "known_hosts"),
                "inbox_dir": str(lay.inbox(desk)),
                "outbox_dir": str(lay.drop / desk / "from_county"),
                "connect_timeout_seconds": 10,
                "timeout_seconds": 60,
            },
        }
        (folder / f"{source_name(desk)}.yaml").write_text(
            yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )


def _default_port(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port or 80


def up(args: argparse.Namespace) -> None:
    """Start everything; on any failure stop what was started."""
    lay = layout()
    if any(_alive(p) for p in _pids(lay).values()):
        raise SystemExit(f"already running in {lay.root} (scripts/prodlike down first)")
    try:
        _up(args)
    except BaseException:
        _say("start-up failed: stopping what was started")
        with contextlib.suppress(BaseException):
            down(argparse.Namespace(purge=False, grace=10))
        raise


def _up(args: argparse.Namespace) -> None:
    lay = layout()
    if lay.root.exists():
        shutil.rmtree(lay.root)
    for d in (lay.logs, lay.run, lay.airflow_home):
        d.mkdir(parents=True)
    tag = os.environ.get("PRODLIKE_TAG", "prodlike")
    state: dict[str, Any] = {
        "hub_db": f"tongban_{tag}_hub",
        "airflow_db": f"tongban_{tag}_airflow",
        "redis": _redis_url(),
        "workers": args.workers,
        "api_workers": args.api_workers,
        "concurrency": args.concurrency,
        "ports": {
            k: _free_port()
            for k in ("api", "airflow", "sftp", "yibao", "gongan", "shebao", "bank", "enclave", "irs", "oidc")
        },
    }
    sec = {
        "sandbox_token": secrets.token_hex(16),
        "hub_secret_key": secrets.token_hex(32),  # shared by the API processes (status links, tickets)
        "jwt_secret": secrets.token_urlsafe(32),
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    secret_file = lay.root / "secrets.json"
    secret_file.touch(mode=0o600)
    secret_file.write_text(json.dumps(sec), encoding="utf-8")
    lay.state_file.write_text(json.dumps(state, indent=1), encoding="utf-8")
    with _admin() as pg:
        for db in (state["hub_db"], state["airflow_db"]):
            pg.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            pg.execute(f'CREATE DATABASE "{db}"')
    _claim_redis(state["redis"])
    env = environment(lay, state)
    p = state["ports"]

    _say(f"hub home {lay.hub_home} on PostgreSQL {state['hub_db']}")
    subprocess.run(
        [str(BIN / "hub"), "init", str(lay.hub_home)], env=env, cwd=lay.root, check=True, stdout=subprocess.DEVNULL
    )
    _sshd_config(lay, p["sftp"])
    _write_connections(lay, p)

    _say("Airflow metadata database and pools")
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, cwd=lay.root, check=True, stdout=subprocess.DEVNULL
    )
    pools = subprocess.run(
        [str(BIN / "python"), str(ROOT / "dags" / "tongban_config.py"), "pools"],
        env=env, cwd=lay.root, check=True, capture_output=True,
    ).stdout  # fmt: skip
    (lay.airflow_home / "pools.json").write_bytes(pools)
    subprocess.run(
        [str(BIN / "airflow"), "pools", "import", str(lay.airflow_home / "pools.json")],
        env=env, cwd=lay.root, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip

    _say("starting: sshd, sandbox departments, hub API, Airflow (api-server, scheduler, dag-processor, triggerer)")
    _start(lay, "sshd", sshd.command(lay.root / "sshd" / "sshd_config"), env)
    sandbox = [str(BIN / "hub"), "sandbox", "run", "--sample-batches", "0", "--decide-after", "1",
               "--port", str(p["yibao"]), "--soap-port", str(p["gongan"]), "--sftp-port", str(p["shebao"]),
               "--bank-port", str(p["bank"]), "--enclave-port", str(p["enclave"]), "--irs-port", str(p["irs"]),
               "--oidc-port", str(p["oidc"])]  # fmt: skip
    _start(lay, "sandbox", sandbox, env)
    _start(lay, "hub-api", [str(BIN / "hub"), "serve", "--host", HOST, "--port", str(p["api"]),
                            "--workers", str(args.api_workers)], env)  # fmt: skip
    af = str(BIN / "airflow")
    _start(lay, "airflow-api-server", [af, "api-server", "--host", HOST, "--port", str(p["airflow"])], env)
    _start(lay, "airflow-scheduler", [af, "scheduler", "--skip-serve-logs"], env)
    _start(lay, "airflow-dag-processor", [af, "dag-processor"], env)
    _start(lay, "airflow-triggerer", [af, "triggerer", "--skip-serve-logs"], env)
    for n in range(1, args.workers + 1):
        worker_env = dict(env, TONGBAN_WORKER_NAME=f"worker{n}")
        # --skip-serve-logs: the log server would listen on every interface; the API server reads
        # task logs from the shared AIRFLOW_HOME here (a shared volume or remote logging in production)
        _start(lay, f"airflow-worker{n}", [af, "celery", "worker", "--celery-hostname", f"worker{n}@%h",
                                           "--skip-serve-logs", "--without-mingle", "--without-gossip"],
               worker_env)  # fmt: skip

    pids = _pids(lay)
    # generous guards: each wait ends when the component answers (or its process exits), and on a
    # busy 2-core machine starting the hub API's workers alone can take a minute or more
    _wait_port(p["sftp"], "sshd", 60)
    _wait_port(p["yibao"], "sandbox", 180)
    _wait_http(f"http://{HOST}:{p['api']}/readyz", "hub API", 300, pids["hub-api"], lay.logs / "hub-api.log")
    _wait_http(f"http://{HOST}:{p['airflow']}/api/v2/version", "Airflow API server", 300,
               pids["airflow-api-server"], lay.logs / "airflow-api-server.log")  # fmt: skip
    _wait_for_dags(lay, state, timeout=240)
    _wait_for_workers(lay, state, timeout=120)
    # unpausing makes each DAG run its latest interval at once; let those finish, so `intake` (and
    # its timing) starts on an idle cluster
    _wait_idle(state, timeout=600)
    _say(f"up: hub API http://{HOST}:{p['api']}  Airflow http://{HOST}:{p['airflow']}  ({args.workers} Celery workers)")


def _claim_redis(url: str) -> None:
    """The broker database must be empty: another instance's queued tasks are not ours to take
    or to wipe (`down --purge` empties it again)."""
    import redis

    keys = redis.Redis.from_url(url).dbsize()
    if keys:
        raise SystemExit(
            f"Redis database {url} holds {keys} keys: another instance (or application) uses it; "
            "choose another with PRODLIKE_REDIS, or `scripts/prodlike down --purge` the instance that left them"
        )


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _airflow_db(state: dict[str, Any]) -> psycopg.Connection:
    return psycopg.connect(_pg_url(state["airflow_db"]), autocommit=True)


def _wait_for_dags(lay: Layout, state: dict[str, Any], timeout: float) -> None:
    wanted = {intake_dag(d) for d in DESKS}
    deadline = time.monotonic() + timeout
    while True:
        with _airflow_db(state) as db:
            rows = db.execute("SELECT dag_id FROM dag WHERE NOT is_paused AND NOT is_stale").fetchall()
        missing = wanted - {r[0] for r in rows}
        if not missing:
            return
        _check_running(lay)
        if time.monotonic() > deadline:
            raise SystemExit(f"DAGs not parsed after {timeout:.0f}s: {sorted(missing)}")
        time.sleep(1)


def _wait_for_workers(lay: Layout, state: dict[str, Any], timeout: float) -> None:
    """Every Celery worker answers a ping through the broker (they are consuming)."""
    env = environment(lay, state)
    code = (
        "from airflow.providers.celery.executors.celery_executor_utils import app; "
        "print(len(app.control.ping(timeout=2) or []))"
    )
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run([str(BIN / "python"), "-c", code], env=env, capture_output=True, text=True, cwd=lay.root)
        answered = int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0
        if answered >= state["workers"]:
            return
        _check_running(lay)
        if time.monotonic() > deadline:
            raise SystemExit(f"{answered} of {state['workers']} Celery workers answered after {timeout:.0f}s")
        time.sleep(1)


def _wait_idle(state: dict[str, Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with _airflow_db(state) as db:
            busy = db.execute("SELECT count(*) FROM dag_run WHERE state IN ('queued', 'running')").fetchone()[0]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{busy} DAG runs still busy after {timeout:.0f}s")
        time.sleep(1)


def _check_running(lay: Layout) -> None:
    dead = [name for name, pid in _pids(lay).items() if not _alive(pid)]
    if dead:
        tail = (lay.logs / f"{dead[0]}.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"stopped during start-up: {', '.join(dead)}\n--- {dead[0]}.log ---\n{tail}")


# ---------------------------------------------------------------- intake


def write_desk_batches(lay: Layout, desk: str, batches: int, records: int, bad_every: int) -> dict[str, Any]:
    """What a desk's system does: complete batches in its inbox on the drop, `.ok` marker last.
    Every `bad_every`-th record carries a wrong ID check digit (to be refused and reported)."""
    from hub.batches.writer import write_batch
    from plugins.sandbox.intake_batches import records as sample_records

    stamp = datetime.now().strftime("%H%M%S%f")
    good, bad = [], []
    for b in range(batches):
        batch_id = f"{desk}-{stamp}-{b}"
        rows, files = [], {}
        for i, (record, brought) in enumerate(sample_records(batch_id, records, start=b * records + 1)):
            files.update(brought)
            if bad_every and i % bad_every == bad_every - 1:
                rid = record["applicant"]["id"]
                record["applicant"]["id"] = rid[:-1] + ("0" if rid[-1] != "0" else "1")
                bad.append(record["record_id"])
            else:
                good.append(record["record_id"])
            rows.append(record)
        folder = lay.inbox(desk) / batch_id
        write_batch(folder, batch_id=batch_id, desk=desk, records=rows, files=files)
        folder.with_name(batch_id + ".ok").write_bytes(b"")
    return {"good": good, "bad": bad}


def intake(args: argparse.Namespace) -> dict[str, Any]:
    """Four desks drop their batches at the same moment; their four intake DAGs are triggered
    together and run on whichever Celery worker takes them. Waits for every run; prints and
    returns a summary (records expected, runs, which worker ran what, seconds)."""
    lay = layout()
    state = _load_state(lay)
    env = environment(lay, state)
    expected = {d: write_desk_batches(lay, d, args.batches, args.records, args.bad_every) for d in DESKS}
    started = time.monotonic()
    run_ids = {}
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    procs = {}
    for desk in DESKS:
        run_ids[desk] = f"prodlike_{stamp}_{desk}"
        procs[desk] = subprocess.Popen(
            [str(BIN / "airflow"), "dags", "trigger", intake_dag(desk), "--run-id", run_ids[desk]],
            env=env, cwd=lay.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
    for desk, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        if proc.returncode:
            raise SystemExit(f"triggering {intake_dag(desk)} failed: {err.decode(errors='replace')[-2000:]}")
    states = _wait_runs(state, run_ids, timeout=args.timeout)
    seconds = time.monotonic() - started
    with _airflow_db(state) as db:
        rows = db.execute(
            "SELECT dag_id, run_id, task_id, state, hostname FROM task_instance WHERE run_id = ANY(%s)",
            (list(run_ids.values()),),
        ).fetchall()
    summary = {
        "desks": {d: {"good": len(e["good"]), "bad": len(e["bad"])} for d, e in expected.items()},
        "record_ids": expected,  # per desk: the good and the bad records' ids, for checking arrival
        "runs": states,
        "tasks": [{"dag_id": r[0], "task_id": r[2], "state": r[3], "worker": r[4]} for r in rows],
        "workers_used": sorted({r[4] for r in rows if r[4]}),
        "seconds": round(seconds, 2),
        "records": {
            "good": sum(len(e["good"]) for e in expected.values()),
            "bad": sum(len(e["bad"]) for e in expected.values()),
        },
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for desk in DESKS:
            _say(
                f"{desk}: {summary['desks'][desk]['good']} good, {summary['desks'][desk]['bad']} bad records → run {states[desk]}"
            )
        _say(f"tasks ran on: {', '.join(summary['workers_used'])}; {seconds:.1f}s from trigger to the last run's end")
    if any(s != "success" for s in states.values()):
        raise SystemExit(1)
    return summary


def _wait_runs(state: dict[str, Any], run_ids: dict[str, str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        with _airflow_db(state) as db:
            rows = dict(
                db.execute("SELECT run_id, state FROM dag_run WHERE run_id = ANY(%s)", (list(run_ids.values()),))
            )
        states = {desk: rows.get(rid, "missing") for desk, rid in run_ids.items()}
        if all(s in ("success", "failed") for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise SystemExit(f"intake runs not finished after {timeout:.0f}s: {states}")
        time.sleep(0.5)


# ---------------------------------------------------------------- status and down


def status(args: argparse.Namespace) -> None:
    lay = layout()
    pids = _pids(lay)
    if not pids:
        _say(f"nothing recorded in {lay.root}")
        return
    for name, pid in pids.items():
        members = session_members(pid)
        print(f"{name:24} pid {pid:<8} {'running' if members else 'stopped'}  ({len(members)} processes)")


def down(args: argparse.Namespace) -> None:
    lay = layout()
    pids = _pids(lay)
    # Celery workers first (warm shutdown finishes the task at hand), then everything else
    order = sorted(pids, key=lambda n: (not n.startswith("airflow-worker"), n))
    for name in order:
        _signal_group(pids[name], signal.SIGTERM)
    deadline = time.monotonic() + args.grace
    while time.monotonic() < deadline and set(pids.values()) & set(sessions()):
        time.sleep(0.2)
    live = sessions()
    for name, pid in pids.items():
        if pid in live:
            _say(f"{name} did not stop within {args.grace:.0f}s: killed")
            _signal_group(pid, signal.SIGKILL)
    # killed processes are gone once the kernel has torn them down, which on a busy machine
    # takes more than a moment: wait for that (a guard only against the impossible)
    deadline = time.monotonic() + KILLED_WITHIN
    while time.monotonic() < deadline and set(pids.values()) & set(sessions()):
        time.sleep(0.2)
    live = sessions()
    left = {name: live[pid] for name, pid in pids.items() if pid in live}
    if left:
        raise SystemExit(f"still running: {left}")
    for f in lay.run.glob("*.pid"):
        f.unlink()
    _say(f"stopped {len(pids)} components")
    if args.purge and lay.state_file.exists():
        state = json.loads(lay.state_file.read_text(encoding="utf-8"))
        with _admin() as pg:
            for db in (state["hub_db"], state["airflow_db"]):
                pg.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        _flush_redis(state["redis"])
        shutil.rmtree(lay.root)
        _say("databases dropped, Redis database flushed, state removed")


def _signal_group(sid: int, sig: signal.Signals) -> None:
    """Signal every process group of a component's session (Airflow task processes run in groups
    of their own)."""
    groups = {int(f[2]) for f in map(_stat, session_members(sid)) if f}
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/prodlike", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything and wait until healthy")
    p_up.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    p_up.add_argument("--concurrency", type=int, default=2, help="task slots per Celery worker (default 2)")
    p_up.add_argument("--api-workers", type=int, default=2, help="hub API worker processes (default 2)")
    p_up.set_defaults(func=up)
    p_in = sub.add_parser("intake", help="four desks drop batches at once; run and wait for their intake DAGs")
    p_in.add_argument("--batches", type=int, default=2, help="batches per desk")
    p_in.add_argument("--records", type=int, default=100, help="records per batch")
    p_in.add_argument("--bad-every", type=int, default=25, help="every Nth record is invalid (0: none)")
    p_in.add_argument("--timeout", type=float, default=300)
    p_in.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_in.set_defaults(func=intake)
    sub.add_parser("status", help="components and whether they run").set_defaults(func=status)
    p_down = sub.add_parser("down", help="stop everything; prove nothing is left")
    p_down.add_argument("--purge", action="store_true", help="also drop the databases and remove the state folder")
    p_down.add_argument("--grace", type=float, default=30, help="seconds before stragglers are killed")
    p_down.set_defaults(func=down)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
