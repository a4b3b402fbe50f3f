"""Intake batch ingest: records/s through `hub run ingest` (SFTP fetch from a real OpenSSH sshd,
manifest and hash checks, every record validated and received as a pre-reviewed application in
PostgreSQL) versus a bare baseline in this script (OpenSSH `sftp` get, manifest hashes checked,
json parse, one multi-row INSERT per 1,000 rows into a plain table), alternating runs.

    .venv/bin/python benchmarks/ingest_throughput.py [--records 100000] [--runs 3]
    .venv/bin/python benchmarks/ingest_throughput.py --memory-records 1000000   # peak memory, one run
    .venv/bin/python benchmarks/ingest_throughput.py --airflow                  # dag.test() vs hub run

Batches hold 2 small materials per 100 records (every 100 records share the same two scans).
Every run gets a fresh copy of the batch in the SFTP inbox and a fresh PostgreSQL database
(created and migrated untimed, dropped afterwards). The hub runs as a subprocess, timed from
start to exit (so its start-up is included) and its peak memory (PSS of it and its worker processes together) sampled from /proc. Needs
openssh-server, openssh-client and PostgreSQL (--pg, default postgresql://postgres@127.0.0.1:5432)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub.batches.staging import sha256_of  # noqa: E402
from hub.batches.writer import write_batch  # noqa: E402
from plugins.sandbox.intake_batches import records  # noqa: E402
from tests.support.sshd import SshServer, running_sshd  # noqa: E402

SOURCE = "bank-xiahong-sftp"
DESK = "bank-xiahong"
BIN = Path(sys.executable).parent
SUMMARY = re.compile(r"ingest: (\d+) batches, (\d+) records: (\d+) received, (\d+) already received, (\d+) refused")


@dataclass
class Result:
    label: str
    records: int
    seconds: float
    peak_mb: float | None = None
    phases: dict[str, float] = field(default_factory=dict)  # baseline: seconds per step

    @property
    def rate(self) -> float:
        return self.records / self.seconds


class CheckFailed(Exception):
    pass


def check(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


# ---------------------------------------------------------------- the batch


def write_pristine(folder: Path, batch_id: str, count: int, per: int) -> Path:
    """The batch, streamed: each group's two scans are written as the first record of the group
    brings them, so nothing but the current record is held in memory."""
    target = folder / batch_id

    def stream() -> Iterator[dict[str, Any]]:
        for record, brought in records(batch_id, count, share_materials=per):
            for name, data in brought.items():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                (target / name).write_bytes(data)
            yield record

    return write_batch(target, batch_id=batch_id, desk=DESK, records=stream(), files=None)


def drop_copy(pristine: Path, inbox: Path) -> None:
    """A fresh copy of the batch in the SFTP inbox with its `.ok` marker last (untimed); what
    earlier runs left there (done/, errors/, a baseline's download) goes first."""
    for entry in inbox.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(pristine, inbox / pristine.name)
    (inbox / f"{pristine.name}.ok").write_bytes(b"")


# ---------------------------------------------------------------- PostgreSQL


class Postgres:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.made: list[str] = []

    def url_of(self, name: str) -> str:
        return f"{self.url}/{name}"

    def create(self, label: str) -> str:
        name = f"bench_ingest_{os.getpid()}_{len(self.made)}_{label}"
        with psycopg.connect(self.url_of("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        with psycopg.connect(self.url_of("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.remove(name)

    def drop_all(self) -> None:
        for name in list(self.made):
            self.drop(name)

    def scalar(self, name: str, sql: str) -> Any:
        with psycopg.connect(self.url_of(name)) as conn:
            return conn.execute(sql).fetchone()[0]


# ---------------------------------------------------------------- the hub


def make_home(folder: Path, server: SshServer, inbox: Path) -> Path:
    home = folder / "home"
    subprocess.run([str(BIN / "hub"), "init", str(home)], check=True, capture_output=True)
    (home / "hub.db").unlink(missing_ok=True)  # the runs use PostgreSQL
    for conf in (home / "connections").glob("*.yaml"):
        conf.unlink()  # only the bank drop: ingest contacts no other connection, the DAG folder parses fewer
    (home / "connections" / f"{SOURCE}.yaml").write_text(
        f"""type: sftp
intake: {{desks: [{DESK}]}}
config:
  host: {server.host}
  port: {server.port}
  username: {server.user}
  auth: {{private_key: "file:{server.client_key}"}}
  host_key_fingerprint: "{server.host_fingerprint}"
  inbox_dir: "{inbox}"
  outbox_dir: "{inbox}/unused"
""",
        encoding="utf-8",
    )
    return home


def hub_env(home: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AIRFLOW"))}
    return env | {"HUB_HOME": str(home), "HUB_DATABASE_URL": db_url, "HUB_LOG_LEVEL": "INFO"}


def fresh_hub_db(pg: Postgres, home: Path, label: str) -> tuple[str, dict[str, str]]:
    """A new database, migrated; the home's material store and intake staging emptied (untimed)."""
    for sub in ("materials", "intake"):
        shutil.rmtree(home / sub, ignore_errors=True)
    (home / "materials").mkdir()
    name = pg.create(label)
    env = hub_env(home, pg.url_of(name))
    subprocess.run([str(BIN / "hub"), "db", "upgrade"], env=env, check=True, capture_output=True)
    return name, env


def _tree_pss_kb(root: int) -> int:
    """Proportional set size of `root` and all its descendants (worker processes), in KiB: PSS
    counts a page shared by several of them once in all, where RSS would count it in each."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue  # gone meanwhile
    return total


def measured(cmd: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, int, str, str, float]:
    """Run `cmd`; (wall seconds, exit code, stdout, stderr, peak memory in MB of it and its worker
    processes together: their summed PSS, sampled twice a second)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_pss_kb(proc.pid))
            time.sleep(0.5)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (
            seconds,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            peak / 1024,
        )


def check_hub_db(pg: Postgres, name: str, count: int, per: int) -> None:
    apps = pg.scalar(name, f"SELECT count(*) FROM applications WHERE desk_code = '{DESK}' AND state = 'pre_reviewed'")
    check(apps == count, f"{apps} pre-reviewed applications in the database, expected {count}")
    blobs = pg.scalar(name, "SELECT count(*) FROM blobs")
    groups = -(-count // per)
    check(blobs == 2 * groups, f"{blobs} material blobs, expected {2 * groups}")


def hub_run(pg: Postgres, home: Path, inbox: Path, pristine: Path, count: int, per: int, label: str) -> Result:
    drop_copy(pristine, inbox)
    name, env = fresh_hub_db(pg, home, label)
    try:
        cmd = [str(BIN / "hub"), "run", "ingest", "--source", SOURCE]
        seconds, rc, out, err, rss = measured(cmd, env)
        check(rc == 0, f"hub run ingest exited {rc}:\n{err[-3000:]}")
        for phase in re.findall(r"ingest: batch \S+ (?:fetched in .*|\d+ records .*)", err):
            print(f"    hub: {phase}", flush=True)
        found = SUMMARY.search(out)
        check(found is not None, f"no summary line in: {out!r}")
        batches, recs, created, dups, bad = map(int, found.groups())  # type: ignore[union-attr]
        check(
            (batches, recs, created, dups, bad) == (1, count, count, 0, 0),
            f"hub run ingest: {out.strip()} (expected {count} received, 0 refused)",
        )
        check((inbox / "done" / pristine.name).is_dir(), "the batch was not moved to done/")
        check_hub_db(pg, name, count, per)
    finally:
        pg.drop(name)
    return Result("hub", count, seconds, rss)


# ---------------------------------------------------------------- the baseline


sha256 = sha256_of  # the same streamed hashing as the hub's manifest check


BASELINE_TABLE = """CREATE TABLE records (
    record_id text PRIMARY KEY, subject text NOT NULL, applicant_name text NOT NULL,
    applicant_id text NOT NULL, form jsonb NOT NULL)"""
COLUMNS = "(record_id, subject, applicant_name, applicant_id, form)"


def _insert(cur: psycopg.Cursor, rows: list[tuple]) -> None:
    values = ",".join(["(%s,%s,%s,%s,%s)"] * len(rows))
    cur.execute(f"INSERT INTO records {COLUMNS} VALUES {values}", [v for row in rows for v in row])


def baseline_run(
    pg: Postgres, folder: Path, server: SshServer, known_hosts: Path, inbox: Path, pristine: Path, count: int
) -> Result:
    drop_copy(pristine, inbox)
    name = pg.create("baseline")
    with psycopg.connect(pg.url_of(name), autocommit=True) as conn:
        conn.execute(BASELINE_TABLE)
    local = folder / "baseline-download"
    shutil.rmtree(local, ignore_errors=True)
    try:
        start = time.perf_counter()
        subprocess.run(
            server.sftp_command(known_hosts, "-"),
            input=f"get -r {inbox / pristine.name} {local}\n".encode(),
            check=True,
            capture_output=True,
        )
        fetched = time.perf_counter()
        manifest = json.loads((local / "manifest.json").read_bytes())
        for file, digest in manifest["files"].items():  # the same I/O as the hub's manifest check
            check(sha256(local / file) == digest, f"baseline: {file} does not match the manifest")
        hashed = time.perf_counter()
        n = 0
        with psycopg.connect(pg.url_of(name)) as conn, conn.cursor() as cur:
            rows: list[tuple] = []
            with open(local / manifest["records"], "rb") as f:
                for line in f:
                    r = json.loads(line)
                    rows.append(
                        (r["record_id"], r["subject"], r["applicant"]["name"], r["applicant"]["id"], Jsonb(r["form"]))
                    )
                    if len(rows) == 1000:
                        _insert(cur, rows)
                        n += len(rows)
                        rows = []
            if rows:
                _insert(cur, rows)
                n += len(rows)
            conn.commit()
        end = time.perf_counter()
        phases = {"sftp get": fetched - start, "sha256": hashed - fetched, "parse+insert": end - hashed}
        check(n == count, f"baseline parsed {n} records, expected {count}")
        stored = pg.scalar(name, "SELECT count(*) FROM records")
        check(stored == count, f"baseline: {stored} rows in the table, expected {count}")
    finally:
        pg.drop(name)
        shutil.rmtree(local, ignore_errors=True)
    return Result("baseline", count, end - start, phases=phases)


# ---------------------------------------------------------------- Airflow


def airflow_run(pg: Postgres, home: Path, inbox: Path, pristine: Path, count: int, per: int, folder: Path) -> Result:
    """The intake DAG through dag.test() (tests/support/airflow_runner.py, in its own process: DagBag
    parse, bundle and pool sync, the task run by the Task SDK), timed from process start to exit."""
    airflow_home = folder / "airflow"
    airflow_home.mkdir(exist_ok=True)
    drop_copy(pristine, inbox)
    name, env = fresh_hub_db(pg, home, "airflow")
    env |= {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    try:
        if not (airflow_home / "airflow.db").exists():
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        cmd = [sys.executable, str(REPO / "tests" / "support" / "airflow_runner.py"), "run", f"tongban_intake_{SOURCE}"]
        seconds, rc, out, err, rss = measured(cmd, env)
        check(rc == 0, f"airflow_runner exited {rc}:\n{err[-3000:]}")
        runs = json.loads(out.strip().splitlines()[-1])["runs"]
        check(runs[0][1] == "success", f"DAG run: {runs}")
        check((inbox / "done" / pristine.name).is_dir(), "the batch was not moved to done/")
        check_hub_db(pg, name, count, per)
    finally:
        pg.drop(name)
    return Result("airflow", count, seconds, rss)


# ---------------------------------------------------------------- main


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"]
    except OSError:
        system = platform.platform(terse=True)
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, {system}, "
        f"Python {platform.python_version()}"
    )


@dataclass
class Bench:
    pg: Postgres
    folder: Path
    server: SshServer
    known_hosts: Path
    inbox: Path
    home: Path
    pristine: Path
    count: int
    per: int

    def hub(self, label: str) -> Result:
        return hub_run(self.pg, self.home, self.inbox, self.pristine, self.count, self.per, label)

    def baseline(self) -> Result:
        return baseline_run(self.pg, self.folder, self.server, self.known_hosts, self.inbox, self.pristine, self.count)

    def airflow(self) -> Result:
        return airflow_run(self.pg, self.home, self.inbox, self.pristine, self.count, self.per, self.folder)


def compare(bench: Bench, runs: int) -> None:
    results = []
    for _ in range(runs):
        h, b = bench.hub("hub"), bench.baseline()
        results.append((h, b))
        print(
            f"hub {h.seconds:6.1f} s {h.rate:7.0f} records/s (memory {h.peak_mb:.0f} MB)   "
            f"baseline {b.seconds:6.1f} s {b.rate:7.0f} records/s   ratio {h.rate / b.rate:.3f}   "
            f"(baseline: {', '.join(f'{k} {v:.1f} s' for k, v in b.phases.items())})",
            flush=True,
        )
    print()
    print("| run | hub run ingest | baseline | ratio | hub peak memory (PSS, all processes) |")
    print("|---|---|---|---|---|")
    for i, (h, b) in enumerate(results, 1):
        print(
            f"| {i} | {h.rate:.0f} records/s ({h.seconds:.1f} s) | {b.rate:.0f} records/s ({b.seconds:.1f} s) "
            f"| {h.rate / b.rate:.3f} | {h.peak_mb:.0f} MB |"
        )
    ratio = statistics.median(h.rate / b.rate for h, b in results)
    hub_med = statistics.median(h.rate for h, _ in results)
    base_med = statistics.median(b.rate for _, b in results)
    print(f"| median | {hub_med:.0f} records/s | {base_med:.0f} records/s | {ratio:.3f} | |")
    print(f"median ratio hub/baseline {ratio:.3f} (goal >= 0.4): {'met' if ratio >= 0.4 else 'MISSED'}")


def airflow_overhead(bench: Bench, runs: int) -> None:
    results = []
    for _ in range(runs):
        a, h = bench.airflow(), bench.hub("hub")
        results.append((a, h))
        print(
            f"dag.test() {a.seconds:6.1f} s ({a.rate:5.0f} records/s, memory {a.peak_mb:.0f} MB)   "
            f"hub run ingest {h.seconds:6.1f} s ({h.rate:5.0f} records/s, memory {h.peak_mb:.0f} MB)   "
            f"ratio {a.seconds / h.seconds:.2f}",
            flush=True,
        )
    print("wall time, process start-up included in both; ratio = dag.test() / hub run ingest")
    print(f"median ratio {statistics.median(a.seconds / h.seconds for a, h in results):.2f}")


def memory(bench: Bench) -> None:
    r = bench.hub("memory")
    print(f"hub run ingest: {r.seconds:.1f} s, {r.rate:.0f} records/s, peak memory {r.peak_mb:.0f} MB")
    print(f"peak memory {r.peak_mb:.0f} MB (goal < 500 MB): {'met' if r.peak_mb < 500 else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000, help="records per batch (comparison and --airflow)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each, alternating")
    ap.add_argument("--per", type=int, default=100, help="records sharing the same two material files")
    ap.add_argument("--memory-records", type=int, default=0, help="instead: one hub run of this many records")
    ap.add_argument("--airflow", action="store_true", help="instead: dag.test() vs hub run ingest, same batch")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database")
    args = ap.parse_args()
    count = args.memory_records or args.records
    pg = Postgres(args.pg)
    print(machine())
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            folder = Path(tmp)
            inbox = folder / "inbox"
            inbox.mkdir()
            started = time.perf_counter()
            pristine = write_pristine(folder / "pristine", f"XH-BENCH-{count}", count, args.per)
            size = sum(p.stat().st_size for p in pristine.rglob("*") if p.is_file())
            files = len(json.loads((pristine / "manifest.json").read_bytes())["files"])
            print(
                f"batch: {count} records, {files - 1} material files, {size / 2**20:.0f} MB "
                f"(written in {time.perf_counter() - started:.0f} s, untimed)",
                flush=True,
            )
            with running_sshd(folder / "sshd") as server:
                known_hosts = server.write_known_hosts(folder / "known_hosts")
                home = make_home(folder, server, inbox)
                bench = Bench(pg, folder, server, known_hosts, inbox, home, pristine, count, args.per)
                if args.memory_records:
                    memory(bench)
                elif args.airflow:
                    airflow_overhead(bench, args.runs)
                else:
                    compare(bench, args.runs)
    except CheckFailed as exc:
        print(f"CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        pg.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
