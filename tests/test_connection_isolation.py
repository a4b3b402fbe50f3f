"""One connection that cannot be used never stops the others — whatever makes it unusable: a
file that does not parse, a type whose plugin is missing (tests/test_plugins.py), or a connector
that cannot even be made (its CA file gone). Its parts wait with the reason on their rows, the
dispatch summary names it, and every other connection delivers and syncs. A connection whose
longest call would outlive the dispatch claim is refused the same way. Against the sandbox 医保
system on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from hub import applications as svc
from hub.context import Hub
from hub.errors import ConfigInvalid
from hub.jobs.dispatch import dispatch
from hub.jobs.sync import sync
from hub.storage.tables import OutboxRow
from plugins.sandbox.rest_department import RestDepartment
from tests.support.samples import HZ_CLERK, fund_rent, officer
from tests.test_dispatch import filing

TOKEN = "isolation-t0ken"


@pytest.fixture
def dept():
    d = RestDepartment(token=TOKEN).start()
    yield d
    d.stop()


def _rest(home: Path, name: str, url: str, **extra) -> None:
    config = {"profile": "hub-api", "base_url": url, "auth": {"bearer": "${HUB_SANDBOX_TOKEN}"}, "retries": 0}
    (home / "connections" / f"{name}.yaml").write_text(
        yaml.safe_dump({"type": "rest", "config": config | extra}, allow_unicode=True), encoding="utf-8"
    )


def _cli(home: Path, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_DATABASE_URL")}
    env["HUB_SANDBOX_TOKEN"] = TOKEN
    if db_url:
        env["HUB_DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args], capture_output=True, text=True, env=env, check=False
    )


def test_a_connector_that_cannot_be_made_waits_alone(home, db_url, clock, dept, monkeypatch):
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    _rest(home, "yibao-rest", dept.url)
    _rest(home, "gjj-rest", dept.url, ca_file="/nonexistent/county-ca.pem")  # the CA file was removed
    hub = Hub.open(home, database_url=db_url, clock=clock)
    try:
        medical = svc.create(hub, filing(1), HZ_CLERK)
        svc.transition(hub, medical.number, "accept", officer("ts-ybj"))
        fund = svc.create(hub, fund_rent(), HZ_CLERK)
        svc.transition(hub, fund.number, "accept", officer("ts-gjj"))
        with pytest.raises(
            ConfigInvalid, match=r"connections/gjj-rest\.yaml:\d+: .*(county-ca\.pem|FileNotFoundError)"
        ):
            hub.connector("gjj-rest")

        summary = dispatch(hub)
        assert (summary.delivered, summary.retrying) == (1, 1) and summary.by_connection == {"yibao-rest": 1}
        assert "gjj-rest" in summary.unusable and "连接 gjj-rest 不可用" in summary.line()
        with hub.sessions() as s:
            rows = {r.connection: r for r in s.scalars(select(OutboxRow))}
        assert rows["yibao-rest"].state == "delivered" and len(dept.parts) == 1
        assert rows["gjj-rest"].state == "pending" and "gjj-rest.yaml" in rows["gjj-rest"].last_error

        dept.decide(rows["yibao-rest"].remote_id, "approved")
        assert sync(hub).decided == 1  # the broken one holds nothing up
    finally:
        hub.close()

    checked = _cli(home, "connectors", "check")
    assert checked.returncode == 1, checked.stderr
    (gjj,) = [line for line in checked.stdout.splitlines() if line.strip().startswith("│ gjj-rest")] or [""]
    assert "FAIL" in gjj or "FAIL" in checked.stdout
    assert "gjj-rest.yaml" in checked.stdout


def test_a_call_that_could_outlive_the_dispatch_claim_is_refused_with_its_line(home, db_url, clock, dept, monkeypatch):
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    _rest(home, "yibao-rest", dept.url, max_call_seconds=600)  # the lease is 300 s
    hub = Hub.open(home, database_url=db_url, clock=clock)
    try:
        with pytest.raises(ConfigInvalid, match=r"yibao-rest\.yaml:\d+: .*outlives its claim") as refused:
            hub.connector("yibao-rest")
        line = int(str(refused.value).split(".yaml:")[1].split(":")[0])
        lines = (home / "connections" / "yibao-rest.yaml").read_text(encoding="utf-8").splitlines()
        assert lines[line - 1].strip() == "max_call_seconds: 600"  # the line that sets it
    finally:
        hub.close()


def test_sync_from_a_real_process_records_one_unreadable_answer_and_applies_the_good_one(
    home, db_url, dept, monkeypatch
):
    """`hub run sync` as cron or Airflow runs it: one department answer the mapping cannot read
    (an unknown status word) and one good one — exit 1 with the summary naming the connection, the
    good decision applied, the bad one's reason on its outbox row."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    _rest(home, "yibao-rest", dept.url)
    hub = Hub.open(home, database_url=db_url)
    try:
        for i in (1, 2):
            app = svc.create(hub, filing(i), HZ_CLERK)
            svc.transition(hub, app.number, "accept", officer("ts-ybj"))
        assert dispatch(hub).delivered == 2
        with hub.sessions() as s:
            first, second = sorted(s.scalars(select(OutboxRow)), key=lambda r: r.id)
        dept.decide(first.remote_id, "approved")
        dept.decide(second.remote_id, "挂起")  # not a word the hub-api profile knows
    finally:
        hub.close()
    done = _cli(home, "run", "sync", db_url=db_url)
    assert done.returncode == 1, done.stderr
    assert "1 parts decided" in done.stdout and "1 connection errors (yibao-rest: 1)" in done.stdout
    assert "Traceback" not in done.stderr
    hub = Hub.open(home, database_url=db_url)
    try:
        with hub.sessions() as s:
            rows = {r.id: r for r in s.scalars(select(OutboxRow))}
        assert rows[first.id].remote_status == "approved" and rows[first.id].last_error is None
        assert rows[second.id].remote_status is None and "挂起" in rows[second.id].last_error
    finally:
        hub.close()
