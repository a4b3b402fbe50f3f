"""Offline kit sync (政务背包, issue 20): records per second from a kit to the hub through the device
protocol (`POST /api/v1/kit/sync`, device token, JSON, `--batch` records per request, photos as
base64) versus the web intake API (`POST /api/v1/applications`, bearer token of the same agent's
desk, multipart, one application per request) — the same records, the same server, the same run.

    .venv/bin/python benchmarks/kit_sync.py [--records 200] [--batch 20] [--kb 100] [--rounds 2] [--sqlite]

One hub (the sample home) on a fresh PostgreSQL database (--pg, default
postgresql://postgres@127.0.0.1:5432; dropped afterwards) or, with --sqlite or without
PostgreSQL, a SQLite file; served by uvicorn on 127.0.0.1 in this process (tests/support/webserver),
driven by one httpx client, one request at a time (a kit is one device on one link). Each round
sends every record both ways, alternating which goes first; a record is a 老年人优待证 for its own
resident (distinct ID numbers) with one photo of --kb KB (a JPEG header, then random bytes: every
photo distinct), taken at the agent's home desk (township-dongxi). Checked afterwards: one
application per record per way, nothing refused, the kit's resend answered `again`.

Printed per round: records/s each way and the ratio kit/web; then the mean of the ratios."""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub.context import Hub  # noqa: E402
from hub.home import write_home  # noqa: E402
from hub.ids import id_check_digit  # noqa: E402
from hub.kit import devices  # noqa: E402
from hub.lifecycle import Role  # noqa: E402
from hub.storage import migrate  # noqa: E402
from hub.storage.engine import make_engine  # noqa: E402
from hub.storage.tables import Application  # noqa: E402
from hub.tokens import create_token  # noqa: E402
from tests.support.webserver import serving  # noqa: E402
from tests.test_kit_sync import add_agent  # noqa: E402

ITEM = "GG00501000"
MATERIALS = ["居民身份证", "近期免冠彩色证件照"]
CHECKLIST = ["identity", "materials", "signature", "informed"]  # the desk's 初审, which the web API asks for
FORM = {"delivery_method": "窗口领取", "contact_phone": "13905770001"}


def resident(g: int) -> str:
    # born 1940-1959 (the item is for residents over 60), a distinct number for every g below 1000
    first17 = f"330329{1940 + g % 20}{g % 12 + 1:02d}{g % 28 + 1:02d}{g % 1000:03d}"
    return first17 + id_check_digit(first17)


def photo(kb: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + os.urandom(kb * 1024 - 4)


def kit_record(g: int, content: tuple[bytes, bytes]) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "item": ITEM,
        "applicant": {"type": "person", "name": "林阿婆", "id": resident(g)},
        "form": FORM,
        "photos": [
            {"name": name, "filename": f"{n}-{g}.jpg", "content_b64": base64.b64encode(content[n]).decode()}
            for n, name in enumerate(MATERIALS)
        ],
        "taken_at": "2026-09-21T09:30:00+08:00",
    }


def run_kit(client: httpx.Client, token: str, records: list[dict], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        r = client.post(
            "/api/v1/kit/sync", headers={"authorization": f"Kit {token}"}, json={"records": records[i : i + batch]}
        )
        r.raise_for_status()
        bad = [x for x in r.json()["results"] if x["status"] != "accepted"]
        assert not bad, bad[:2]
    return time.perf_counter() - started


def run_web(
    client: httpx.Client, token: str, records: list[dict], photos: list[tuple[bytes, bytes]], agent: dict
) -> float:
    started = time.perf_counter()
    for rec, content in zip(records, photos, strict=True):
        data = {
            "subject": ITEM,
            "applicant": {"name": rec["applicant"]["name"], "id": rec["applicant"]["id"]},
            "agent": agent,
            "form": FORM,
            "materials": MATERIALS,
            "checklist": CHECKLIST,
            "source_ref": str(uuid.uuid4()),
        }
        r = client.post(
            "/api/v1/applications",
            headers={"authorization": f"Bearer {token}"},
            data={"data": json.dumps(data, ensure_ascii=False)},
            files=[("files", (f"{n}-{rec['id']}.jpg", content[n], "image/jpeg")) for n in range(len(MATERIALS))],
        )
        assert r.status_code == 201, r.text[:300]
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=200)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--kb", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--sqlite", action="store_true")
    args = p.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="kit-bench-"))
    home = write_home(folder / "home")
    db_name = f"kit_bench_{os.getpid()}"
    admin = None
    if not args.sqlite:
        try:
            admin = create_engine(
                f"{args.pg.replace('postgresql://', 'postgresql+psycopg://')}/postgres", isolation_level="AUTOCOMMIT"
            )
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db_name}"'))
            url = f"{args.pg}/{db_name}"
        except Exception as exc:  # no PostgreSQL here: say so and use SQLite
            print(f"PostgreSQL not available ({exc.__class__.__name__}); SQLite instead")
            admin = None
    if admin is None:
        url = f"sqlite:///{folder / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    hub = Hub.open(home, database_url=url, clock=lambda: datetime.now().astimezone())
    try:
        actor = add_agent(hub)
        _, device_token = devices.enrol(hub, actor, "zhouli", "基准测试平板")
        # an agent cannot first-review, and the web intake API receives with the desk's 初审: the
        # baseline is the desk's own clerk at the same desk, the records as the kit sends them
        api_token, _ = create_token(
            hub,
            "kit-bench",
            role=Role.clerk,
            scopes=["applications:read", "applications:write"],
            desk="township-dongxi",
            created_by="bench",
        )
        auth = devices.authenticate(hub, device_token)
        agent = {"name": auth.agent.name, "id_number": auth.agent.id_number}
        print(
            f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, database: {'PostgreSQL' if admin else 'SQLite'}"
        )
        print(f"records: {args.records} per way per round, two {args.kb} KB photos each, kit batch {args.batch}")
        ratios = []
        with serving(hub) as base, httpx.Client(base_url=base, timeout=120) as client:
            for rnd in range(args.rounds):
                photos = [(photo(args.kb), photo(args.kb)) for _ in range(args.records)]
                records = [kit_record(rnd * args.records + g, photos[g]) for g in range(args.records)]
                order = ["kit", "web"] if rnd % 2 == 0 else ["web", "kit"]
                took = {}
                for way in order:
                    if way == "kit":
                        took["kit"] = run_kit(client, device_token, records, args.batch)
                    else:
                        took["web"] = run_web(client, api_token, records, photos, agent)
                again = client.post(
                    "/api/v1/kit/sync", headers={"authorization": f"Kit {device_token}"}, json={"records": records[:5]}
                ).json()["results"]
                assert all(r["again"] for r in again), again
                kit_rate, web_rate = args.records / took["kit"], args.records / took["web"]
                ratios.append(kit_rate / web_rate)
                print(
                    f"round {rnd + 1} ({' then '.join(order)}): kit {kit_rate:.1f} records/s, "
                    f"web {web_rate:.1f} records/s, kit/web {kit_rate / web_rate:.2f}"
                )
        with hub.sessions() as session:
            made = session.scalar(select(func.count()).select_from(Application))
        assert made == 2 * args.records * args.rounds, made
        print(f"applications: {made} (one per record per way); mean kit/web {statistics.mean(ratios):.2f}")
    finally:
        hub.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
