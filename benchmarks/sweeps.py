"""The hourly deadline sweep (`hub run deadlines`) and `hub apps warnings` at county-year scale:
wall time and peak memory (the child process's maximum RSS) for N applications on PostgreSQL.

    .venv/bin/python benchmarks/sweeps.py --apps 200000
    .venv/bin/python benchmarks/sweeps.py --apps 200000 --apps 1000000   # memory flat?

The database is filled by `INSERT … SELECT … generate_series` (seconds, not the life cycle): a
year of applications, 80 % finished, 8 % clocked (accepted in the last 30 days, 10 working-day-ish
limits: about a third overdue), the rest received, pre-reviewed, rejected or withdrawn; one part
each (ten departments), three events each, an open 容缺 commitment on every 200th, a provisional
due date on every 500th. Then, each in a fresh `hub` process:

1. `hub run deadlines` on cards never swept (every clocked case gets its first card: the worst
   hour, once after the upgrade),
2. `hub run deadlines` again (the steady hourly run: only cards that can change are read),
3. `hub apps warnings --role supervisor --json` (every alert, streamed).

Goals (issue 21): the sweep < 5 s and < 300 MB at 200,000 applications, memory flat to 1,000,000."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub.home import write_home  # noqa: E402
from hub.storage import migrate  # noqa: E402
from hub.storage.engine import make_engine  # noqa: E402

FILL = """
INSERT INTO applications (id, number, kind, subject_code, title, channel, desk_code, collecting_division,
    deciding_division, applicant_type, applicant_name, applicant_id, form, state, signal, accepted_on,
    due_date, due_provisional, paused_workdays, chain_head, created_at, updated_at)
SELECT i, '330329-' || to_char(ts, 'YYYYMMDD') || '-' || lpad(i::text, 7, '0'), 'item', 'GG00401001',
    '住房公积金提取（租房提取）', 'hall', (ARRAY['hall-county','bank-xiahong','bank-baizhang','township-dongxi',
    'enclave-hangzhou','enclave-shanghai'])[1 + i % 6], '330329', '330329', 'person', '申请人' || (i % 5000),
    lpad((330329195001010000 + i)::text, 18, '0'), '{}'::json, st, NULL,
    CASE WHEN acc THEN CASE WHEN clocked THEN CURRENT_DATE - (i % 30) ELSE ts::date END END,
    CASE WHEN acc THEN CASE WHEN clocked THEN CURRENT_DATE - (i % 30) + 14 ELSE ts::date + 14 END END,
    i % 500 = 0, 0, repeat('0', 64), ts, ts
FROM (
    SELECT i, ts, st, st IN ('accepted', 'in_review', 'supplement_requested') AS clocked,
           st NOT IN ('received', 'pre_reviewed', 'rejected', 'withdrawn') AS acc
    FROM (
        SELECT i, now()::timestamp - interval '365 days' + (i * interval '365 days' / :n) AS ts,
            CASE WHEN i % 100 < 80 THEN (ARRAY['delivered','decided','issued'])[1 + i % 3]
                 WHEN i % 100 < 88 THEN (ARRAY['accepted','in_review','supplement_requested'])[1 + i % 3]
                 ELSE (ARRAY['received','pre_reviewed','rejected','withdrawn'])[1 + i % 4] END AS st
        FROM generate_series(1, :n) AS i
    ) a
) b;
UPDATE applications SET paused_since = CURRENT_DATE - 1 WHERE state = 'supplement_requested';
INSERT INTO application_parts (id, application_id, position, item_code, title, department_code, connection,
    state, promised_days, due_date)
SELECT lpad(id::text, 36, '0'), id, 0, 'GG00401001', title,
    (ARRAY['ts-gjj','ts-mzj','ts-ybj','ts-d3','ts-d4','ts-d5','ts-d6','ts-d7','ts-d8','ts-d9'])[1 + id % 10],
    'none', CASE WHEN state IN ('delivered','decided','issued') THEN 'approved' ELSE 'pending' END, 10, due_date
FROM applications;
INSERT INTO events (application_id, seq, action, actor, role, at, data, prev_hash, hash)
SELECT a.id, s, (ARRAY['create','accept','approve'])[s], 'bench', 'system', a.created_at + s * interval '1 hour',
    '{}'::json, repeat('0', 64), md5(a.id::text || '-' || s) || md5(s::text || '-' || a.id)
FROM applications a CROSS JOIN generate_series(1, 3) AS s;
INSERT INTO deficiencies (application_id, material, due_date, created_at, closed_at)
SELECT id, '房屋租赁合同', created_at::date + 5, created_at, CASE WHEN id % 200 = 0 THEN NULL ELSE created_at END
FROM applications WHERE id % 20 = 0;
SELECT setval('applications_id_seq', :n);
"""


def run(home: Path, url: str, *args: str) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB, from wait4) of one `hub`
    process. On a shared machine the CPU time is the steadier figure."""
    env = os.environ | {"HUB_DATABASE_URL": url, "PYTHONPATH": str(REPO), "HUB_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "hub", "--home", str(home), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, so the usage is this child's alone
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text_out, text_err = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {text_err[-2000:]}")
    last = text_out.strip().splitlines()[-1] if text_out.strip() else ""
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, last


def bench(n: int, admin_url: str, folder: Path) -> None:
    name = f"bench_sweeps_{n}_{os.getpid()}"
    admin = create_engine(make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        started = time.perf_counter()
        with engine.begin() as conn:
            for statement in FILL.split(";"):
                if statement.strip():
                    conn.execute(text(statement), {"n": n})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            clocked = conn.execute(
                text("SELECT count(*) FROM applications WHERE state IN ('accepted','in_review','supplement_requested')")
            ).scalar()
        engine.dispose()
        print(f"\n{n:,} applications ({clocked:,} clocked), filled in {time.perf_counter() - started:.0f} s")
        home = write_home(folder / f"home-{n}")
        for label, args in (
            ("sweep, first (no cards yet)", ("run", "deadlines")),
            ("sweep, hourly (steady)", ("run", "deadlines")),
            ("apps warnings", ("apps", "warnings", "--role", "supervisor", "--json")),
        ):
            seconds, cpu, mb, last = run(home, url, *args)
            print(f"  {label:28} {seconds:6.2f} s wall {cpu:6.2f} s CPU  peak RSS {mb:5.0f} MB  {last[:90]}")
        seconds, cpu, mb, _ = run(home, url, "calendar", "sources", "2026", "2026")
        print(f"  {'(a bare hub command)':28} {seconds:6.2f} s wall {cpu:6.2f} s CPU  peak RSS {mb:5.0f} MB")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apps", type=int, action="append", help="applications (repeatable); default 200000")
    ap.add_argument(
        "--url", default=os.environ.get("HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.apps or [200_000]:
            bench(n, args.url, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
