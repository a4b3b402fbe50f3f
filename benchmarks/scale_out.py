"""Scale-out on this machine: what a second process buys.

1. **API**: web intake submissions/s (the [4/6] workload: multipart, two materials, PostgreSQL)
   through `hub serve --workers 1` versus `hub serve --workers 2`, same hub home and database,
   same load generator (benchmarks/web_intake.py's), alternating runs.
2. **Celery**: four desks' batches ingested through Airflow with CeleryExecutor
   (scripts/prodlike) with one Celery worker versus two (one task slot each), alternating
   fresh instances; seconds from triggering the four intake DAGs to the last run's end.

    .venv/bin/python benchmarks/scale_out.py [--api-runs 3] [--celery-runs 2]
    .venv/bin/python benchmarks/scale_out.py --only api   # or --only celery

Needs PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379) and openssh-server (for the drop)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import web_intake as wi  # noqa: E402  (the [4/6] load generator and server helpers)

PRODLIKE = REPO / "scripts" / "prodlike"


def api(runs: int, requests: int, concurrency: int) -> list[tuple[int, float, float]]:
    """(workers, requests/s, p99 ms) per run."""
    args = argparse.Namespace(
        requests=requests, warmup=100, concurrency=concurrency, client_procs=3, mb=1.0, rate=0.0,
        quiet=0.15, quiet_timeout=600, py_spy_gil=False,
    )  # fmt: skip
    pg = wi.Postgres("postgresql://postgres@127.0.0.1:5432")
    pg.name = f"bench_scale_out_{os.getpid()}"
    db_url = pg.create()
    results: list[tuple[int, float, float]] = []
    servers: list[wi.Server] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
            folder = Path(tmp)
            home, env, token = wi.make_hub(folder, db_url)
            by_workers = {}
            for workers in (1, 2):
                port = wi.free_port()
                cmd = [
                    str(wi.BIN / "hub"),
                    "--home",
                    str(home),
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ]
                server = wi.start(f"hub-{workers}w", cmd, env, port, folder / f"hub-{workers}.log")
                servers.append(server)
                server.wait_ready("/api/v1/me", {"Authorization": f"Bearer {token}"})
                by_workers[workers] = server
            numbers = wi.Numbers()
            for i in range(1, runs + 1):
                for workers, server in by_workers.items():
                    r = wi.load(server, wi.HUB_PATH, token, args, numbers, i, None, pg)
                    wi.show(r)
                    results.append((workers, r.rate, r.pct(99)))
            created = pg.scalar("SELECT count(*) FROM applications")
            distinct = pg.scalar("SELECT count(DISTINCT source_ref) FROM applications")
            print(
                f"check: {created} applications, {distinct} distinct source_refs: {'OK' if created == distinct else 'MISMATCH'}"
            )
    finally:
        for s in servers:
            s.stop()
        pg.drop()
    return results


def celery(runs: int, batches: int, records: int) -> list[tuple[int, float, dict]]:
    """(workers, seconds, summary) per run; each run on a fresh prodlike instance."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        for i in range(1, runs + 1):
            for workers in (1, 2):
                env = dict(os.environ, PRODLIKE_DIR=f"{tmp}/run{i}-{workers}", PRODLIKE_TAG=f"bench{os.getpid()}")
                try:
                    subprocess.run(
                        [str(PRODLIKE), "up", "--workers", str(workers), "--concurrency", "1", "--api-workers", "1"],
                        env=env, check=True, stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                    wi.wait_quiet(0.3, 120)  # start-up's parsing and migrations out of the way
                    out = subprocess.run(
                        [str(PRODLIKE), "intake", "--batches", str(batches), "--records", str(records), "--json",
                         "--timeout", "1200"],
                        env=env, check=True, capture_output=True, text=True,
                    )  # fmt: skip
                finally:
                    subprocess.run([str(PRODLIKE), "down", "--purge"], env=env, check=True, stdout=subprocess.DEVNULL)
                summary = json.loads(out.stdout.strip().splitlines()[-1])
                summary.pop("record_ids")
                print(
                    f"celery run {i}, {workers} worker(s): {summary['seconds']:.1f} s for "
                    f"{summary['records']['good'] + summary['records']['bad']} records; tasks on {summary['workers_used']}",
                    flush=True,
                )
                results.append((workers, summary["seconds"], summary))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["api", "celery"])
    ap.add_argument("--api-runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=600, help="timed API requests per run")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--celery-runs", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2, help="batches per desk")
    ap.add_argument("--records", type=int, default=2500, help="records per batch")
    args = ap.parse_args()
    print(wi.machine())
    lines = []
    if args.only != "celery":
        res = api(args.api_runs, args.requests, args.concurrency)
        one = [r for w, r, _ in res if w == 1]
        two = [r for w, r, _ in res if w == 2]
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        lines.append(
            f"API intake, {args.concurrency} clients: 1 process {statistics.median(one):.1f} req/s, "
            f"2 processes {statistics.median(two):.1f} req/s (medians); ratio per run "
            f"{', '.join(f'{x:.2f}' for x in ratios)}, median {statistics.median(ratios):.2f}; p99 "
            f"{statistics.median(p for w, _, p in res if w == 1):.0f} vs {statistics.median(p for w, _, p in res if w == 2):.0f} ms"
        )
    if args.only != "api":
        res = celery(args.celery_runs, args.batches, args.records)
        one = [s for w, s, _ in res if w == 1]
        two = [s for w, s, _ in res if w == 2]
        ratios = [a / b for a, b in zip(one, two, strict=True)]
        lines.append(
            f"Celery intake, 4 desks x {args.batches} batches x {args.records} records: 1 worker "
            f"{statistics.median(one):.1f} s, 2 workers {statistics.median(two):.1f} s (medians); speed-up per run "
            f"{', '.join(f'{x:.2f}' for x in ratios)}, median {statistics.median(ratios):.2f}"
        )
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
