"""The deadline sweep and the supervisors' warnings read only what can need work, a page at a
time: a page size of 2 gives the same outcome as one page, decided and received cases are never
loaded, a green card far from its due date is not read again, and the warnings stream in pages
gives the same alerts as one read."""

import json
from collections import defaultdict
from datetime import date

import pytest
from sqlalchemy import event

from hub import applications as svc
from hub.events import verify_chain
from hub.jobs.deadlines import sweep_deadlines
from hub.lifecycle import Role
from hub.storage.tables import Application
from hub.supervision.alerts import iter_warnings
from tests.support.samples import HZ_CLERK, TELLER, elderly_card, fund_rent, officer

GJJ = officer("ts-gjj")
MZJ = officer("ts-mzj")
CORE = ["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明"]  # 容缺: the lease is owed


@pytest.fixture
def loads():
    """Application numbers loaded from the database, grouped by the session that loaded them."""
    seen: dict[int, list[str]] = defaultdict(list)

    def on_load(target, context):
        seen[id(context.session)].append(target.number)

    event.listen(Application, "load", on_load)
    yield seen
    event.remove(Application, "load", on_load)


def _five(hub, clock):
    """Three clocked 3-day cases (due Thu 5 Nov), one decided instant case, one only received."""
    clock.set(date(2026, 11, 2), hour=9)  # Mon
    clocked = []
    for i in range(3):
        app = svc.create(hub, fund_rent(source_ref=f"sweep-{i}"), HZ_CLERK)
        clocked.append(svc.transition(hub, app.number, "accept", GJJ).number)
    decided = svc.create(hub, elderly_card(), TELLER).number
    for action in ("accept", "start_review", "approve"):
        svc.transition(hub, decided, action, MZJ)
    received = svc.create(hub, fund_rent(source_ref="sweep-received"), HZ_CLERK).number
    return clocked, decided, received


def test_the_sweep_pages_and_never_loads_what_it_cannot_change(hub, clock, loads):
    clocked, decided, received = _five(hub, clock)
    loads.clear()
    first = sweep_deadlines(hub, batch=2)  # never swept: every clocked card is read once
    assert (first.checked, first.yellow, first.red) == (3, 0, 0)
    pages = [numbers for numbers in loads.values() if numbers]
    assert sorted(n for page in pages for n in page) == sorted(clocked)
    assert [len(p) for p in pages][:2] == [2, 1]  # two pages of at most two; the page-free summary after
    assert {decided, received}.isdisjoint(n for page in pages for n in page)

    loads.clear()
    again = sweep_deadlines(hub, batch=2)  # same hour: green and 3 working days off — nothing to read
    assert (again.checked, again.yellow, again.red) == (0, 0, 0)
    assert not any(loads.values())

    clock.set(date(2026, 11, 3), hour=9)  # 2 working days left: yellow
    loads.clear()
    paged = sweep_deadlines(hub, batch=2)
    assert (paged.checked, paged.yellow, paged.red) == (3, 3, 0)
    assert sorted(a.number for a in paged.alerts if a.kind == "yellow") == sorted(clocked)
    clock.set(date(2026, 11, 6), hour=9)  # overdue
    late = sweep_deadlines(hub, batch=2)
    assert (late.yellow, late.red) == (0, 3)
    for number in clocked:
        app = svc.read(hub, number, GJJ)
        assert [e.data["level"] for e in app.events if e.action == "warning"] == ["yellow", "red"]
        assert verify_chain(app).ok  # the warnings are chained like every other event
        assert app.signal == "red"
    assert svc.read(hub, decided, MZJ).signal is None and svc.read(hub, received, HZ_CLERK).signal is None
    loads.clear()
    steady = sweep_deadlines(hub, batch=2)
    assert (steady.checked, len(steady.alerts)) == (0, 3)  # red and overdue stays red: none re-read
    assert [sorted(page) for page in loads.values() if page] == [sorted(clocked)]  # only the alert list's read


def test_a_stopped_clock_is_read_when_it_stops_and_when_it_restarts(hub, clock):
    clock.set(date(2026, 11, 2), hour=9)
    number = svc.transition(hub, svc.create(hub, fund_rent(), HZ_CLERK).number, "accept", GJJ).number
    assert sweep_deadlines(hub).checked == 1  # its first card: green
    clock.set(date(2026, 11, 3), hour=9)
    svc.transition(hub, number, "request_supplement", GJJ, reason="租赁合同未盖章")
    stopped = sweep_deadlines(hub)
    assert stopped.checked == 1 and svc.read(hub, number, GJJ).signal == "paused"
    clock.set(date(2026, 11, 20), hour=9)  # long past the old due date: a stopped clock does not move
    assert sweep_deadlines(hub).checked == 0 and svc.read(hub, number, GJJ).signal == "paused"
    svc.transition(hub, number, "resume", HZ_CLERK)  # due date moves by the 13 working days stood
    resumed = sweep_deadlines(hub)
    app = svc.read(hub, number, GJJ)
    assert resumed.checked == 1 and app.signal == "yellow" and app.due_date == date(2026, 11, 24)


def test_the_same_sweep_in_one_page_or_pages_of_two(hub, clock):
    clocked, _, _ = _five(hub, clock)
    clock.set(date(2026, 11, 3), hour=9)
    one = sweep_deadlines(hub, batch=500)
    clock.set(date(2026, 11, 6), hour=9)
    two = sweep_deadlines(hub, batch=2)
    assert (one.checked, one.yellow, one.red) == (3, 3, 0)
    assert (two.checked, two.yellow, two.red) == (3, 0, 3)
    assert [a.number for a in two.alerts] == sorted(clocked)  # ascending id, one red card each


def test_warnings_read_in_pages_match_one_read(hub, clock, loads):
    clocked, _, _ = _five(hub, clock)
    owed = svc.create(hub, fund_rent(materials=CORE, source_ref="owed"), HZ_CLERK).number
    svc.transition(hub, owed, "accept", GJJ, commitment_due=date(2026, 11, 4))
    clock.set(date(2026, 12, 30), hour=9)  # every 3-day case overdue, the commitment too
    late = svc.create(hub, fund_rent(source_ref="new-year"), HZ_CLERK).number
    svc.transition(hub, late, "accept", GJJ)  # due in 2027: provisional, and not yet yellow
    supervisor = svc.Actor(name="督查", role=Role.supervisor)
    loads.clear()
    whole = list(iter_warnings(hub, supervisor))
    loaded = {n for page in loads.values() for n in page}
    assert loaded == {*clocked, owed, late}  # never the decided or the received case
    paged = list(iter_warnings(hub, supervisor, page=1))
    assert paged == whole
    kinds = [(a.number, a.kind) for a in whole]
    assert kinds == [
        *((n, "red") for n in clocked),
        (owed, "red"),
        (owed, "commitment_overdue"),
        (late, "provisional_due_date"),
    ]
    # scoped as before: another department sees none of it
    assert list(iter_warnings(hub, MZJ, page=1)) == []


# ---------------------------------------------------------------- the CLI: warnings, verify-all


def _cli(hub, *args: str):
    from typer.testing import CliRunner

    from hub.cli import app as cli

    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False)}
    return CliRunner().invoke(cli, ["--home", str(hub.settings.home), *args], env=env)


def test_cli_warnings_stream_the_same_alerts(hub, clock):
    clocked, _, _ = _five(hub, clock)
    clock.set(date(2026, 11, 6), hour=9)
    shown = _cli(hub, "apps", "warnings", "--role", "supervisor", "--json")
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.stdout)
    assert [(w["number"], w["kind"]) for w in listed] == [(n, "red") for n in clocked]
    text = _cli(hub, "apps", "warnings", "--role", "officer", "--department", "ts-gjj")
    assert text.exit_code == 0 and text.stdout.strip().endswith("3 warning(s)")


def test_verify_all_reports_progress_on_stderr_and_keeps_stdout_json(hub, clock):
    _five(hub, clock)
    done = _cli(hub, "apps", "verify-all", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["chains"] == {"checked": 5, "failed": 0}
    assert "核验进度 progress: 事件链 event chains 5/5" in done.stderr
    assert "材料文件 material files" in done.stderr


def test_progress_lines_are_bounded_in_rate(monkeypatch):
    from hub.cli import apps as apps_cli

    now = [100.0]
    monkeypatch.setattr(apps_cli.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    monkeypatch.setattr(apps_cli, "echo", lambda line, err=False: lines.append(line))
    progress = apps_cli.ProgressLines(every=2.0)
    for done in range(500, 10_001, 500):  # 20 chunks, half a second apart
        now[0] += 0.5
        progress("chains", done, 10_000)
    assert len(lines) == 5  # every 2 s (4 chunks), the last one being the end of the phase
    assert lines[-1] == "核验进度 progress: 事件链 event chains 10,000/10,000 (1,000/s)"
