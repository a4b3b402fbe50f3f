"""The supervisors' dashboard: figures per channel, desk and department for applications walked
through known steps, local-day period boundaries, trips saved, ratings and follow-ups, the CSV
export, a constant number of queries, and the SVG charts."""

import csv
import gc
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import fields
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from hub import applications as svc
from hub import ratings, rollups
from hub.charts import bar_chart, column_chart, rate_bars
from hub.cli import app as cli_app
from hub.errors import InvalidInput
from hub.jobs.report import daily_report
from hub.lifecycle import Role
from hub.metrics import HubCollector
from hub.storage.tables import Application, Counter, FigureRollup, Rating
from hub.supervision import figures as dashboard
from hub.supervision import report as supervision_report
from hub.supervision.figures import Figures
from tests.conftest import CST
from tests.support.samples import HZ_CLERK, SH_CLERK, TELLER, elderly_card, fund_rent, officer, retirement

MZJ = officer("ts-mzj")
GJJ = officer("ts-gjj")
HALL = svc.Actor(name="综窗张敏", role=Role.clerk, desk="hall-county")
BAIZHANG = svc.Actor(name="柜员赵丽", role=Role.teller, desk="bank-baizhang")
DAY = date(2026, 11, 2)  # a Monday with no holiday near
CORE = ["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明"]  # 房屋租赁合同 missing: 容缺


def _at(clock, day: date, hour: int, minute: int = 0) -> None:
    clock.current = datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST).astimezone(UTC)


def _walk(hub, number: str, steps) -> None:
    for actor, action in steps:
        svc.transition(hub, number, action, actor)


@pytest.fixture
def walked(hub, clock) -> dict[str, str]:
    """Six applications around DAY:
    A bank-xiahong 优待证 (instant), 07:30 local (23:30 UTC the day before): walked to delivered;
    B enclave-hangzhou 租房提取 (3 days), accepted under 容缺;
    C hall-county 优待证 to be posted (邮寄送达): walked to delivered;
    D enclave-shanghai 退休一件事 (人社 + 医保 + 公积金): received only;
    E bank-baizhang 优待证 at 23:30 local: received on DAY;
    F bank-baizhang 优待证 at 00:30 local the next day (16:30 UTC on DAY): not DAY's."""
    _at(clock, DAY, 7, 30)
    a = svc.create(hub, elderly_card(), TELLER).number
    _at(clock, DAY, 10)
    _walk(hub, a, [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")])
    _walk(hub, a, [(MZJ, "issue"), (TELLER, "deliver")])
    b = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK).number
    svc.transition(hub, b, "accept", GJJ, commitment_due=date(2026, 11, 9))
    posted = elderly_card(desk="hall-county")
    posted.form |= {"delivery_method": "邮寄送达", "mailing_address": "泰顺县罗阳镇解放街1号"}
    c = svc.create(hub, posted, HALL).number
    _walk(hub, c, [(MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve"), (HALL, "issue"), (HALL, "deliver")])
    d = svc.create(hub, retirement(), SH_CLERK).number
    _at(clock, DAY, 23, 30)
    e = svc.create(hub, elderly_card(desk="bank-baizhang", source_ref="late-evening"), BAIZHANG).number
    _at(clock, date(2026, 11, 3), 0, 30)
    f = svc.create(hub, elderly_card(desk="bank-baizhang", source_ref="after-midnight"), BAIZHANG).number
    _at(clock, date(2026, 11, 3), 10)
    return {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f}


def _by_key(rows):
    return {r.key: r for r in rows}


def test_total_figures_and_trips_saved(hub, walked):
    [total] = dashboard.figures(hub, DAY, DAY, "total")
    assert (total.key, total.label) == ("total", "合计")
    assert (total.received, total.accepted, total.completed, total.instant) == (5, 3, 2, 3)  # A B C D E; A B C; A C
    assert (total.completion_rate, total.on_time_rate, total.instant_ratio) == (0.6667, 1.0, 0.6)
    # A, B, D, E away from the county hall; B under 容缺; C posted
    assert (total.trips_desk, total.trips_tolerant, total.trips_mail, total.trips_saved) == (4, 1, 1, 6)
    [next_day] = dashboard.figures(hub, date(2026, 11, 3), date(2026, 11, 3), "total")
    assert (next_day.received, next_day.accepted, next_day.trips_saved) == (1, 0, 1)  # F only


def test_an_event_counts_on_its_local_day(hub, clock):
    _at(clock, DAY, 23, 30)  # 15:30 UTC
    svc.create(hub, elderly_card(), TELLER)
    _at(clock, date(2026, 11, 3), 0, 30)  # 16:30 UTC on DAY, but the 3rd in Taishun
    svc.create(hub, elderly_card(source_ref="x"), TELLER)
    _at(clock, DAY, 7, 59)  # 23:59 UTC the day before
    svc.create(hub, elderly_card(source_ref="y"), TELLER)
    received = [dashboard.figures(hub, d, d, "total")[0].received for d in (date(2026, 11, 1), DAY, date(2026, 11, 3))]
    assert received == [0, 2, 1]


def test_figures_per_channel_and_their_csv(hub, walked):
    rows = dashboard.figures(hub, DAY, DAY, "channel")
    assert [(r.key, r.label) for r in rows] == [
        ("hall", "大厅"),
        ("bank", "银行网点"),
        ("enclave", "飞地窗口"),
        ("township", "乡镇便民中心"),
        ("online", "网上"),  # the residents' online desk (网办, issue 20): zeros here
        ("total", "合计"),
    ]
    by = _by_key(rows)
    assert (by["bank"].received, by["bank"].accepted, by["bank"].completed, by["bank"].trips_saved) == (2, 1, 1, 2)
    assert (by["enclave"].received, by["enclave"].accepted, by["enclave"].completed) == (2, 1, 0)
    assert (by["enclave"].trips_desk, by["enclave"].trips_tolerant, by["enclave"].instant_ratio) == (2, 1, 0.0)
    assert (by["hall"].received, by["hall"].trips_desk, by["hall"].trips_mail) == (1, 0, 1)
    assert by["township"].received == 0 and by["township"].completion_rate is None  # zeros, not missing
    text = dashboard.to_csv(dashboard.figures(hub, DAY, DAY, "channel"))
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0]["代码 key"] == "hall" and rows[0]["名称 label"] == "大厅"
    assert rows[-1]["收件量 received"] == "5" and rows[-1]["少跑次数 trips saved"] == "6"
    assert rows[-1]["办结率 completion rate"] == "0.6667"
    assert rows[3]["办结率 completion rate"] == ""  # township: no rate over nothing
    assert "平均评分 average rating" in rows[0]


def test_figures_per_desk_and_department(hub, walked):
    by = _by_key(dashboard.figures(hub, DAY, DAY, "desk"))
    assert by["bank-xiahong"].label == "下洪社区农商银行网点"
    received = {k: r.received for k, r in by.items()}
    assert received == {
        "hall-county": 1,
        "bank-xiahong": 1,
        "bank-baizhang": 1,  # E at 23:30; F after midnight is the next day's
        "township-dongxi": 0,
        "enclave-hangzhou": 1,
        "enclave-shanghai": 1,
        "online-zlb": 0,
        "total": 5,
    }
    assert (by["bank-xiahong"].completed, by["bank-xiahong"].completion_rate) == (1, 1.0)
    by = _by_key(dashboard.figures(hub, DAY, DAY, "department"))
    assert by["ts-mzj"].label == "泰顺县民政局"
    mzj, gjj = by["ts-mzj"], by["ts-gjj"]
    assert (mzj.received, mzj.instant, mzj.accepted, mzj.completed, mzj.trips_saved) == (3, 3, 2, 2, 3)
    # B, and D's 公积金 part of the bundle
    assert (gjj.received, gjj.accepted, gjj.instant, gjj.trips_tolerant, gjj.trips_desk) == (2, 1, 0, 1, 2)
    assert (by["ts-rsj"].received, by["ts-ybj"].received, by["ts-gaj"].received) == (1, 1, 0)
    assert by["total"].received == 5  # the total counts applications, not parts
    [mine] = dashboard.figures(hub, DAY, DAY, "total", actor=BAIZHANG)
    assert mine.received == 1  # E only
    by = _by_key(dashboard.figures(hub, DAY, DAY, "department", actor=GJJ))
    assert by["ts-gjj"].received == 2 and by["ts-rsj"].received == 1  # the bundle's other parts show too
    assert by["ts-mzj"].received == 0


def test_on_time_rate_over_a_week(hub, clock, walked):
    clock.set(date(2026, 11, 6))  # B was due Thursday the 5th (3 working days)
    _walk(hub, walked["B"], [(GJJ, "start_review"), (GJJ, "approve")])
    start, end = dashboard.period_bounds("week", DAY)
    [week] = dashboard.figures(hub, start, end, "total")
    assert (week.completed, week.on_time, week.on_time_rate) == (3, 2, 0.6667)
    assert (week.accepted_completed, week.completion_rate) == (3, 1.0)


def test_ratings_and_follow_ups_in_the_figures(hub, clock, walked):
    ratings.rate(hub, walked["A"], 5, "很方便")
    ratings.rate(hub, walked["C"], 1, "等了很久")
    by = _by_key(dashboard.figures(hub, date(2026, 11, 3), date(2026, 11, 3), "channel"))
    assert (by["bank"].ratings, by["bank"].rating_average, by["hall"].bad_ratings) == (1, 5.0, 1)
    t = by["total"]
    assert (t.ratings, t.rating_average, t.bad_ratings, t.follow_ups_open, t.follow_ups_late) == (2, 3.0, 1, 1, 0)
    assert [f.due for f in ratings.follow_ups(hub, svc.SYSTEM)] == [date(2026, 11, 24)]  # 15 working days
    clock.set(date(2026, 11, 24), hour=23)
    assert dashboard.figures(hub, date(2026, 11, 3), date(2026, 11, 3), "total")[0].follow_ups_late == 0
    clock.set(date(2026, 11, 25))
    [t] = dashboard.figures(hub, date(2026, 11, 3), date(2026, 11, 3), "total")
    assert (t.follow_ups_open, t.follow_ups_late) == (1, 1)
    assert _by_key(dashboard.figures(hub, date(2026, 11, 3), date(2026, 11, 3), "department"))["ts-mzj"].ratings == 2


def test_queries_do_not_grow_with_applications(hub, clock, walked):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    def queries() -> dict[str, int]:
        out = {}
        for by in ("total", "channel", "desk", "department"):
            statements.clear()
            dashboard.figures(hub, DAY, DAY, by)
            out[by] = len(statements)
        return out

    event.listen(hub.engine, "before_cursor_execute", count)
    try:
        before = queries()
        _at(clock, DAY, 12)
        for i in range(4):
            svc.transition(hub, svc.create(hub, elderly_card(source_ref=f"more-{i}"), TELLER).number, "accept", MZJ)
        assert queries() == before and max(before.values()) <= 12
    finally:
        event.remove(hub.engine, "before_cursor_execute", count)
    assert dashboard.figures(hub, DAY, DAY, "total")[0].received == 9


def test_periods():
    assert dashboard.period_bounds("day", DAY) == (DAY, DAY)
    assert dashboard.period_bounds("week", date(2026, 11, 8)) == (date(2026, 11, 2), date(2026, 11, 8))  # a Sunday
    assert dashboard.period_bounds("month", date(2028, 2, 10)) == (date(2028, 2, 1), date(2028, 2, 29))
    assert dashboard.period_bounds("month", date(2026, 12, 31)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert dashboard.period_bounds("year", DAY) == (date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(InvalidInput) as exc:
        dashboard.period_bounds("quarter", DAY)
    assert exc.value.errors[0].field == "period"


def test_bad_arguments_are_refused(hub):
    with pytest.raises(InvalidInput, match="unknown dimension"):
        dashboard.figures(hub, DAY, DAY, "item")
    with pytest.raises(InvalidInput, match="end is before start"):
        dashboard.figures(hub, DAY, date(2026, 11, 1), "total")


def test_bar_chart_is_valid_escaped_svg():
    svg = bar_chart(["下洪<网点>", "杭州 & 上海", "空"], [12, 3.5, None], title="收件量 <本周>", unit="件")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("role") == "img"
    assert root.find(f"{ns}title").text == "收件量 <本周>"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "下洪<网点>" in texts and "杭州 & 上海" in texts and "12件" in texts and "3.5件" in texts and "—" in texts
    widths = [float(r.get("width")) for r in root.iter(f"{ns}rect")][1::2]  # each bar after its track
    assert widths[0] > widths[1] > 0 and widths[2] == 0
    ET.fromstring(bar_chart([], [], title="空"))  # no data is still a chart


def test_rate_bars_use_a_fixed_percent_scale():
    root = ET.fromstring(rate_bars(["大厅", "银行网点"], [0.5, None], title="按时办结率"))
    ns = "{http://www.w3.org/2000/svg}"
    tracks_and_bars = [float(r.get("width")) for r in root.iter(f"{ns}rect")]
    assert tracks_and_bars[1] == pytest.approx(tracks_and_bars[0] / 2, abs=0.1)
    assert "50.0%" in [t.text for t in root.iter(f"{ns}text")]


def test_the_daily_report_is_the_dashboards_query_for_one_day(hub, walked, monkeypatch):
    """One figures query for both: the daily report asks the dashboard's query for each of its
    dimensions, and its figures are the dashboard's, key by key (bundle parts, deliveries and a
    late-evening receipt included); it lists only the keys that had something that day."""
    asked = []
    shared = supervision_report.figures

    def spy(hub, start, end, by, **kw):
        asked.append((start, end, by))
        return shared(hub, start, end, by, **kw)

    monkeypatch.setattr(supervision_report, "figures", spy)
    report = daily_report(hub, DAY)
    assert sorted(asked) == [(DAY, DAY, "channel"), (DAY, DAY, "department"), (DAY, DAY, "desk")]
    plain = [f.name for f in fields(Figures)]
    for by in ("channel", "desk", "department"):
        rows = _by_key(dashboard.figures(hub, DAY, DAY, by))
        busy = {k for k, r in rows.items() if k != "total" and (r.received or r.accepted or r.completed)}
        assert set(report.by[by]) == busy, by
        for key, fig in report.by[by].items():
            assert [getattr(fig, n) for n in plain] == [getattr(rows[key], n) for n in plain], (by, key)
    [total] = dashboard.figures(hub, DAY, DAY, "total")
    assert [getattr(report.total, n) for n in plain] == [getattr(total, n) for n in plain]
    assert set(report.by["department"]) >= {"ts-rsj", "ts-ybj", "ts-gjj", "ts-mzj"}  # 退休一件事's parts
    body = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert set(body["desk"]) == set(report.by["desk"]) and "trips_saved" not in body["total"]


# ---------------------------------------------------------------------------- rollups, open work


def _rollups_match_the_events(hub) -> dict:
    with hub.engine.connect() as conn:
        span = rollups.event_days(conn, hub.settings.tz)
        want = rollups.recompute(conn, hub.settings.tz, *span)
        have = rollups.stored(conn, *span)
    assert have == want
    return have


def test_the_rollup_hook_is_on_every_new_session_factory():
    """`install` once guarded itself with sqlalchemy.event.contains, whose registry is keyed by
    id(): a session factory made after an earlier one was collected could look hooked already,
    and that hub kept no rollups at all (an all-zero dashboard, seen as a flaky test; in a
    process that opens a hub more than once, silently wrong figures). Installing twice on one
    factory still hooks it once."""
    engine = create_engine("sqlite://")
    try:
        for _ in range(30):
            sessions = sessionmaker(engine)
            rollups.install(sessions, CST)
            rollups.install(sessions, CST)
            with sessions() as session:
                assert list(session.dispatch.after_flush).count(rollups._after_flush) == 1
                assert session.info["rollup_tz"] is CST
            del sessions, session
            gc.collect()  # the next factory may reuse this one's id()
    finally:
        engine.dispose()


def test_rollups_are_kept_with_the_events_and_rebuilt_from_them(hub, clock, walked, db_url):
    """Every path that writes counted events — the ORM's transitions, the batch intake's Core
    rows — moves the rollups in the same transaction; a backfill from the events gives the same
    rows; the CLI check agrees (and finds a tampered row)."""
    clock.set(date(2026, 11, 6))
    _walk(hub, walked["B"], [(GJJ, "start_review"), (GJJ, "approve")])  # late: completes an earlier acceptance
    ratings.rate(hub, walked["A"], 1, "等了很久")
    ratings.rate(hub, walked["B"], 4, None)
    new = elderly_card(source_ref="XH-B1:7")
    subject, form, problems = svc.check_new(hub, new)
    assert subject is not None and not problems
    stored = [hub.store.put(m.content) for m in new.materials]
    entry = svc.Received(new=new, subject=subject, form=form, stored=stored, pre_review={})
    assert svc.receive_batch(hub, [entry], svc.Actor(name="intake:test", role=Role.system, desk=new.desk)) != []
    have = _rollups_match_the_events(hub)
    assert sum(c["received"] for (day, *_), c in have.items() if day == date(2026, 11, 6)) == 2  # app + its part
    assert sum(c["ratings"] for (*_, dept), c in have.items() if dept == "") == 2
    assert sum(c["bad_ratings"] for (*_, dept), c in have.items() if dept == "ts-mzj") == 1
    with hub.engine.begin() as conn:
        assert rollups.backfill(conn, hub.settings.tz) == len(have)
    assert _rollups_match_the_events(hub) == have
    with hub.engine.begin() as conn:
        one = (FigureRollup.day == DAY, FigureRollup.desk_code == "bank-baizhang", FigureRollup.department_code == "")
        conn.execute(update(FigureRollup).where(*one).values(received=FigureRollup.received + 1))
    env = {"HUB_DATABASE_URL": db_url}
    result = CliRunner().invoke(cli_app, ["--home", str(hub.settings.home), "db", "rollups-check"], env=env)
    assert result.exit_code == 1 and "1 differ" in result.output
    result = CliRunner().invoke(
        cli_app, ["--home", str(hub.settings.home), "db", "rollups-check", "--rebuild"], env=env
    )
    assert result.exit_code == 0, result.output
    assert _rollups_match_the_events(hub) == have


TODAY_52 = date(2026, 11, 15)  # 52 days after the late case's due date


def _overdue_case(hub, clock) -> tuple[str, str]:
    """On 2026-09-21 a 租房提取 (3 working days) accepted and left alone: due 09-24; and an
    优待证 decided the same day (on time)."""
    clock.set(date(2026, 9, 21))
    late = svc.create(hub, fund_rent(materials=[*CORE, "房屋租赁合同"]), HZ_CLERK).number
    svc.transition(hub, late, "accept", GJJ)
    done = svc.create(hub, elderly_card(), TELLER).number
    _walk(hub, done, [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")])
    return late, done


def test_a_case_52_days_overdue_counts_and_lowers_the_on_time_rate(hub, clock):
    late, _ = _overdue_case(hub, clock)
    assert svc.read(hub, late, GJJ).due_date == date(2026, 9, 24)
    clock.set(TODAY_52)  # 52 days after the due date
    start, end = dashboard.period_bounds("month", hub.today())
    by = _by_key(dashboard.figures(hub, start, end, "department"))
    assert (by["ts-gjj"].overdue_open, by["ts-gjj"].max_overdue_days, by["ts-gjj"].on_time_rate) == (1, 52, 0.0)
    assert by["ts-mzj"].overdue_open == 0
    [sep] = dashboard.figures(hub, date(2026, 9, 1), date(2026, 9, 30), "total")
    # completed 1 on time, 1 open overdue: 50 %, not the 100 % of completed cases alone
    assert (sep.completed, sep.on_time, sep.overdue_open, sep.on_time_rate) == (1, 1, 1, 0.5)
    [aug] = dashboard.figures(hub, date(2026, 8, 1), date(2026, 8, 31), "total")
    assert aug.overdue_open == 0  # not yet due by the end of August
    [work] = dashboard.open_work(hub)
    assert (work.department, work.item, work.overdue_open, work.max_overdue_days) == ("ts-gjj", work.item, 1, 52)
    assert work.department_name == hub.catalog.departments["ts-gjj"].name
    clock.set(date(2026, 9, 23))  # one working day left: a yellow card, not red
    [t] = dashboard.figures(hub, date(2026, 9, 1), date(2026, 9, 30), "total")
    assert (t.overdue_open, t.due_soon) == (0, 1)


def test_the_daily_report_counts_open_overdue_work_as_the_dashboard_does(hub, clock):
    """The 日报's 按时办结率 is the dashboard's: an open overdue case counts as late there too
    (over completed cases alone the report read 100 % beside the dashboard's 50 %)."""
    _overdue_case(hub, clock)  # due 09-24, left open
    day = date(2026, 9, 25)
    clock.set(day)
    done = svc.create(hub, elderly_card(), TELLER).number
    _walk(hub, done, [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")])
    [total] = dashboard.figures(hub, day, day, "total")
    assert (total.completed, total.on_time, total.overdue_open, total.on_time_rate) == (1, 1, 1, 0.5)
    report = daily_report(hub, day)
    assert (report.total.overdue_open, report.total.on_time_rate) == (1, 0.5)
    assert report.by["department"]["ts-gjj"].on_time_rate == 0.0
    body = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert body["total"]["on_time_rate"] == 0.5


def test_trends_by_week_and_month_from_the_rollups(hub, clock, walked):
    weeks = dashboard.trend(hub, "week", date(2026, 11, 8), 3)
    assert [(p.start, p.end, p.label) for p in weeks] == [
        (date(2026, 10, 19), date(2026, 10, 25), "10/19"),
        (date(2026, 10, 26), date(2026, 11, 1), "10/26"),
        (date(2026, 11, 2), date(2026, 11, 8), "11/2"),
    ]
    assert [(p.received, p.accepted, p.completed, p.on_time) for p in weeks] == [
        (0, 0, 0, 0),
        (0, 0, 0, 0),
        (6, 3, 2, 2),
    ]
    [week] = dashboard.figures(hub, date(2026, 11, 2), date(2026, 11, 8), "total")
    assert (weeks[-1].received, weeks[-1].completed) == (week.received, week.completed)  # A..F, F on the 3rd
    months = dashboard.trend(hub, "month", date(2027, 1, 10), 3)
    assert [p.label for p in months] == ["2026-11", "2026-12", "2027-01"]
    assert (months[0].received, months[0].on_time_share, months[1].on_time_share) == (6, 1.0, None)
    with pytest.raises(InvalidInput) as exc:
        dashboard.trend(hub, "day", DAY)
    assert exc.value.errors[0].field == "trend"


def test_column_chart_is_valid_escaped_svg_with_a_legend():
    svg = column_chart(["9/14", "9/21<"], [("收件量", [4, 2]), ("办结量", [2, None])], title="近2周 <收件> 与办结")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.find(f"{ns}title").text == "近2周 <收件> 与办结"
    columns = [r for r in root.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert [c.find(f"{ns}title").text for c in columns] == [
        "9/14 · 收件量: 4",
        "9/14 · 办结量: 2",
        "9/21< · 收件量: 2",
        "9/21< · 办结量: —",
    ]
    heights = [float(c.get("height")) for c in columns]
    assert heights[0] == pytest.approx(2 * heights[1]) and heights[3] == 0
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "收件量" in texts and "办结量" in texts  # the legend
    assert "暂无数据" in [t.text for t in ET.fromstring(column_chart([], [], title="空")).iter(f"{ns}text")]
    with pytest.raises(ValueError):
        column_chart(["a"], [("x", [1, 2])], title="t")


def _plan(hub, stmt) -> str:
    """The plan of `stmt` as text; on PostgreSQL with sequential scans priced out, so a plan that
    still scans a table has no index to use (on a small test database the planner would
    otherwise rightly prefer scans)."""
    with hub.engine.connect() as conn:
        compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
            return "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
        return "\n".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))


def test_the_dashboards_queries_read_indexes_not_the_big_tables(hub, clock, walked):
    """Open work, the rollups and the period's bad ratings are each found through an index: no
    plan scans applications, their parts, their events or the ratings."""
    today = hub.today()
    big = ("applications", "application_parts", "events", "ratings", "figure_rollups")
    stmts = {
        f"open overdue by {by}": dashboard.open_work_stmt(by, None).where(
            dashboard.open_overdue(today), Application.due_date <= today
        )
        for by in ("channel", "department", "total")
    }
    stmts["yellow by department"] = dashboard.open_work_stmt("department", None).where(
        dashboard.yellow_card(hub, today)
    )
    stmts["rollups"] = select(func.sum(FigureRollup.received)).where(
        FigureRollup.day >= DAY, FigureRollup.day <= today, FigureRollup.department_code == ""
    )
    lo, hi = dashboard.utc_bounds(hub, DAY, today)
    stmts["bad ratings"] = (
        select(Rating.follow_up_due)
        .join(Application, Application.id == Rating.application_id)
        .where(Rating.rated_at >= lo, Rating.rated_at < hi, Rating.follow_up_due.is_not(None))
    )
    for name, stmt in stmts.items():
        plan = _plan(hub, stmt)
        for table in big:
            scanned = re.search(rf"Seq Scan on {table}\b|^SCAN {table}$", plan, re.MULTILINE)
            assert scanned is None, f"{name} scans {table}:\n{plan}"


def test_metrics_count_the_overdue_case_in_total_and_per_department(hub, clock):
    _overdue_case(hub, clock)
    clock.set(TODAY_52)
    samples = {(s.name, tuple(s.labels.values())): s.value for m in HubCollector(hub).collect() for s in m.samples}
    assert samples[("hub_database_up", ())] == 1
    assert samples[("hub_applications_overdue", ())] == 1
    assert samples[("hub_parts_overdue", ("ts-gjj",))] == 1 and samples[("hub_parts_overdue", ("ts-mzj",))] == 0


def test_upgrade_builds_the_rollups_once_even_after_a_write(hub, clock, walked):
    """`hub db upgrade` builds the rollups from the events once (a marker says so), not only when
    the table is empty: a write landing between the migration and the fill must not leave the
    history uncounted; and a second upgrade leaves them alone."""
    want = _rollups_match_the_events(hub)
    with hub.engine.begin() as conn:  # as on a database migrated to 0010 with history: no rows,
        conn.execute(delete(FigureRollup))  # no marker, and then one live write's row
        conn.execute(delete(Counter).where(Counter.name == rollups.FILLED))
        conn.execute(insert(FigureRollup).values(**_one_row()))
        assert rollups.backfill_if_empty(conn, hub.settings.tz) == len(want)
    assert _rollups_match_the_events(hub) == want
    with hub.engine.begin() as conn:
        assert rollups.backfill_if_empty(conn, hub.settings.tz) is None


def _one_row() -> dict:
    return {
        "day": date(2026, 9, 21),
        "channel": "bank",
        "desk_code": "bank-xiahong",
        "department_code": "",
        "received": 1,
    }
