"""The scale benchmark's fill (benchmarks/scale.py), at a tiny size so it cannot rot: the rows it
writes must be what the hub itself would have written — chains that verify, due dates the hub's
own time-limit rules agree with, states the life cycle allows — with the mix the benchmark needs
(open, overdue, 补正, decided, closed, bad ratings)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from hub import integrity
from hub.ids import check_id_number
from hub.jobs.deadlines import sweep_deadlines
from hub.lifecycle import CLOCKED, OPEN
from hub.storage.tables import Application, Deficiency, Event, Rating
from hub.timelimits import recompute_due, signal

SPEC = importlib.util.spec_from_file_location("bench_scale", Path(__file__).parent.parent / "benchmarks" / "scale.py")
scale = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = scale  # its dataclasses look their module up
SPEC.loader.exec_module(scale)

N = 400


@pytest.fixture
def filled(hub, clock):
    # a seed whose 400 applications hold every case the assertions look for (a paused case is rare:
    # 0.6 % of those reviewed); a change to the catalogue's desks or items changes what a seed draws
    counts = scale.fill(hub, N, now=clock(), seed=31)
    return hub, counts


def test_fill_writes_what_the_hub_would(filled, clock) -> None:
    hub, counts = filled
    assert counts["applications"] == N
    today = (clock() + timedelta(hours=8)).date()
    with hub.sessions() as session:
        apps = session.scalars(
            select(Application).options(selectinload(Application.parts), selectinload(Application.events))
        ).all()
        assert len(apps) == N
        assert len({a.number for a in apps}) == N
        assert all(re.fullmatch(r"\d{6}-\d{8}-\d{5}", a.number) for a in apps)
        assert not [a.applicant_id for a in apps if check_id_number(a.applicant_id, today=today)]
        # on average about nine events per application, as the measured hub had (1.84 M / 198,854)
        events = session.scalar(select(func.count()).select_from(Event))
        assert 7 * N <= events <= 12 * N
        # the hub's own time-limit rules give the due dates the fill wrote
        for a in apps:
            if a.accepted_on is None:
                # 补正 before 受理 is the one clocked state without a clock
                assert a.state not in ("accepted", "in_review") and a.due_date is None
                continue
            written = (a.due_date, [p.due_date for p in a.parts])
            recompute_due(a, hub.calendar)
            assert (a.due_date, [p.due_date for p in a.parts]) == written, a.number
            if a.state == "decided":
                assert {p.state for p in a.parts} <= {"approved", "denied"}
            if a.state == "withdrawn":
                assert not {p.state for p in a.parts} & {"pending", "in_review"}
        states = Counter(a.state for a in apps)
        overdue = [a for a in apps if a.state in CLOCKED and a.due_date is not None and a.due_date < today]
        paused = [a for a in apps if a.paused_since is not None]
        session.rollback()  # recompute_due wrote nothing new, and keeps nothing
        bad_open = session.scalar(
            select(func.count()).where(Rating.follow_up_due.is_not(None), Rating.follow_up_closed_at.is_(None))
        )
        owed = session.scalar(select(func.count()).select_from(Deficiency))
    # the mix the pages are measured with
    assert {"received", "pre_reviewed", "in_review", "decided", "issued", "delivered", "rejected"} <= set(states)
    assert sum(n for s, n in states.items() if s in OPEN) >= N // 50
    assert overdue, "no open overdue cases: the inbox and the dashboard would not be tested"
    assert paused and bad_open and owed
    # every chain verifies, as `hub apps verify` checks them
    report = integrity.IntegrityReport()
    integrity.check_chains(hub, report)
    assert (report.chains.checked, report.chains.failed, report.events) == (N, 0, events)


def test_fill_is_where_the_hourly_sweep_left_it(filled, clock) -> None:
    """The cards are the ones the deadline sweep gives today, and their changes are on the chains
    already: the sweep after the fill changes nothing (it is timed as a steady hourly run)."""
    hub, _ = filled
    today = (clock() + timedelta(hours=8)).date()
    with hub.sessions() as session:
        clocked = session.scalars(
            select(Application).where(Application.state.in_(CLOCKED)).options(selectinload(Application.parts))
        ).all()
        cards = Counter(a.signal for a in clocked)
        assert all(
            a.signal == (c.value if (c := signal(a, today, hub.calendar, hub.settings.yellow_days)) else None)
            for a in clocked
        )
        warned = session.scalar(select(func.count()).where(Event.action == "warning"))
        before = session.execute(select(Application.id, Application.signal).order_by(Application.id)).all()
    assert cards["red"] and warned >= cards["red"]
    sweep_deadlines(hub)
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).where(Event.action == "warning")) == warned
        assert session.execute(select(Application.id, Application.signal).order_by(Application.id)).all() == before


def test_fill_is_repeatable(hub, clock) -> None:
    """The same seed and clock make the same applications: before/after figures compare alike."""
    plan = scale.Plan.of(hub)
    first = [
        c["applications"] for c in scale.generate(plan, 50, clock().replace(tzinfo=None), seed=3) if "applications" in c
    ]
    again = [
        c["applications"] for c in scale.generate(plan, 50, clock().replace(tzinfo=None), seed=3) if "applications" in c
    ]
    key = [(a["number"], a["state"], a["applicant_id"], a["chain_head"]) for a in first[0]]
    assert key == [(a["number"], a["state"], a["applicant_id"], a["chain_head"]) for a in again[0]]
