"""The scheduled jobs besides intake and dispatch: the deadline sweep (yellow then red as a fixed
clock moves, each recorded once) and the daily report (figures per channel, desk, department)."""

import csv
import json
import subprocess
import sys
from datetime import date

from hub import applications as svc
from hub.jobs.deadlines import sweep_deadlines
from hub.jobs.report import daily_report
from tests.support.samples import HZ_CLERK, TELLER, elderly_card, fund_rent, officer

GJJ = officer("ts-gjj")
MZJ = officer("ts-mzj")


def test_sweep_turns_an_application_yellow_then_red_once_each(hub, clock):
    clock.set(date(2026, 11, 2))  # Mon; 3 working days → due Thu 5 Nov
    number = svc.transition(hub, svc.create(hub, fund_rent(), HZ_CLERK).number, "accept", GJJ).number
    assert (sweep_deadlines(hub).yellow, sweep_deadlines(hub).red) == (0, 0)
    clock.set(date(2026, 11, 3), hour=9)
    first = sweep_deadlines(hub)
    assert (first.yellow, first.red) == (1, 0) and [a.kind for a in first.alerts] == ["yellow"]
    clock.advance(hours=1)
    assert sweep_deadlines(hub).yellow == 0  # hourly: the same card is not recorded again
    clock.set(date(2026, 11, 6))
    late = sweep_deadlines(hub)
    assert (late.yellow, late.red) == (0, 1) and [a.kind for a in late.alerts] == ["red"]
    app = svc.read(hub, number, GJJ)
    warnings = [(e.action, e.data["level"]) for e in app.events if e.action == "warning"]
    assert warnings == [("warning", "yellow"), ("warning", "red")] and app.signal == "red"
    assert "turned red" in late.line()


def test_daily_report_counts_per_channel_desk_and_department(hub, clock, home, db_url):
    clock.set(date(2026, 11, 2), hour=9)
    instant = svc.create(hub, elderly_card(), TELLER)  # 老年人优待证: instant, bank
    rent = svc.create(hub, fund_rent(), HZ_CLERK)  # 3 working days, enclave
    svc.transition(hub, instant.number, "accept", MZJ)
    svc.transition(hub, rent.number, "accept", GJJ)
    for action in ("start_review", "approve"):
        svc.transition(hub, instant.number, action, MZJ)
    clock.set(date(2026, 11, 3))
    svc.create(hub, elderly_card(source_ref="next-day"), TELLER)  # another day: not counted
    report = daily_report(hub, date(2026, 11, 2))
    t = report.total
    assert (t.received, t.accepted, t.completed, t.instant) == (2, 2, 1, 1)
    assert (t.completion_rate, t.on_time_rate, t.instant_ratio) == (0.5, 1.0, 0.5)
    assert report.by["channel"]["bank"].completed == 1 and report.by["channel"]["enclave"].completed == 0
    assert report.by["desk"]["enclave-hangzhou"].received == 1
    assert report.by["department"]["ts-gjj"].accepted == 1
    body = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert body["day"] == "2026-11-02" and body["total"]["completion_rate"] == 0.5
    rows = list(csv.DictReader(report.csv_path.open(encoding="utf-8-sig")))
    assert rows[0] == {
        "dimension": "total",
        "key": "all",
        "received": "2",
        "accepted": "2",
        "completed": "1",
        "completion_rate": "0.5",
        "overdue_open": "0",
        "on_time_rate": "1.0",
        "instant_ratio": "0.5",
    }
    # the same from the command line, with a bad date refused by name
    env = {"HUB_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "hub", "--home", str(home), "run", "report"]
    ok = subprocess.run([*cmd, "--day", "2026-11-02"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "2 received" in ok.stdout, ok.stderr
    bad = subprocess.run([*cmd, "--day", "2026-13-40"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--day" in bad.stderr
