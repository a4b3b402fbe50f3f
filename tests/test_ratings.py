"""好差评: one rating per application once it is closed, on its event chain; a bad rating opens a
follow-up due in 15 working days (holidays skipped, make-up days counted), late once the clock
passes the due date; who may close it and who sees it."""

from datetime import UTC, date

import pytest
from sqlalchemy import func, select

from hub import applications as svc
from hub import ratings
from hub.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from hub.events import verify_chain
from hub.lifecycle import Role
from hub.storage.tables import Rating
from tests.support.samples import HZ_CLERK, TELLER, elderly_card, fund_rent, officer, retirement

MZJ = officer("ts-mzj")
GJJ = officer("ts-gjj")
SUPERVISOR = svc.Actor(name="督查科刘洋", role=Role.supervisor)
OTHER_TELLER = svc.Actor(name="柜员赵丽", role=Role.teller, desk="bank-baizhang")


def _decided(hub) -> str:
    """An instant 优待证 from the 下洪 bank outlet, decided on the clock's day."""
    number = svc.create(hub, elderly_card(), TELLER).number
    for actor, action in [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")]:
        svc.transition(hub, number, action, actor)
    return number


def _ratings_count(hub) -> int:
    with hub.sessions() as s:
        return s.scalar(select(func.count()).select_from(Rating))


def test_a_good_rating_is_kept_and_chained(hub, clock):
    number = _decided(hub)
    r = ratings.rate(hub, number, 5, "  办事很快  ")
    assert (r.number, r.level, r.level_zh, r.comment, r.bad, r.follow_up_due) == (
        number,
        5,
        "非常满意",
        "办事很快",
        False,
        None,
    )
    assert r.rated_at == clock().astimezone(UTC) and r.rated_at.tzinfo is not None
    app = svc.read(hub, number, TELLER)
    ev = app.events[-1]
    assert (ev.action, ev.actor, ev.role, ev.data["level"], ev.data["comment"]) == (
        "rate",
        "申请人",
        "system",
        5,
        "办事很快",
    )
    assert verify_chain(app).ok
    assert ratings.rating_of(hub, number, TELLER) == r
    assert ratings.follow_ups(hub, SUPERVISOR) == []


def test_bad_rating_before_national_day_is_due_fifteen_working_days_later(hub, clock):
    clock.set(date(2026, 9, 30))
    number = _decided(hub)
    r = ratings.rate(hub, number, 2, "窗口人员态度差")
    # 1-7 Oct off, Sat 10 Oct a make-up working day: 8, 9, 10, 12-16, 19-23, 26, 27 Oct
    assert r.follow_up_due == date(2026, 10, 27)
    assert svc.read(hub, number, MZJ).events[-1].data["follow_up_due"] == "2026-10-27"
    [f] = ratings.follow_ups(hub, MZJ)
    assert (f.number, f.level, f.level_zh, f.due, f.late, f.days_left, f.closed) == (
        number,
        2,
        "不满意",
        date(2026, 10, 27),
        False,
        15,
        False,
    )
    assert f.desk == "bank-xiahong" and f.desk_name == "下洪社区农商银行网点" and f.title == "老年人优待证办理"


def _to_review(hub, rating_id: int, actor=MZJ) -> None:
    """核实, 整改 and 回访 done by `actor`: the follow-up waits at 审核."""
    for note in ("已核实：窗口多次要求补交同一材料", "已整改：重新培训窗口人员", "已电话回访申请人"):
        ratings.advance_follow_up(hub, rating_id, note, actor)


def test_follow_up_turns_late_when_the_clock_passes_the_due_date(hub, clock):
    clock.set(date(2026, 9, 30))
    rating_id = ratings.rate(hub, _decided(hub), 1, None).id
    clock.set(date(2026, 10, 27), hour=23)  # the due day itself, late evening: still in time
    [f] = ratings.follow_ups(hub, SUPERVISOR)
    assert (f.late, f.days_left) == (False, 0)
    clock.set(date(2026, 10, 28), hour=9)
    [f] = ratings.follow_ups(hub, SUPERVISOR)
    assert (f.late, f.days_left) == (True, -1)
    _to_review(hub, rating_id)
    closed = ratings.close_follow_up(hub, rating_id, "整改到位，同意办结", SUPERVISOR)
    assert (closed.closed, closed.late, closed.closed_by, closed.response) == (
        True,
        True,
        SUPERVISOR.name,
        "已整改：重新培训窗口人员",  # what was done: the 整改 step's note
    )
    assert ratings.follow_ups(hub, SUPERVISOR) == []  # open only
    [kept] = ratings.follow_ups(hub, SUPERVISOR, open_only=False)
    assert (kept.late, kept.days_left) == (True, -1)
    clock.set(date(2026, 11, 30))
    assert ratings.follow_ups(hub, SUPERVISOR, open_only=False)[0].days_left == -1  # as of the day it closed


def test_the_follow_up_goes_through_its_four_steps_with_owners(hub, clock):
    """核实 → 整改 → 回访 → 审核: each step owned, done by someone at a time with a note, an event
    on the chain; the review is a supervisor's and not the rectifier's; sent back, it returns to
    整改; closed, it is closed once."""
    number = _decided(hub)
    rating_id = ratings.rate(hub, number, 1, "材料反复要求提交").id
    [f] = ratings.follow_ups(hub, SUPERVISOR)
    assert (f.step, f.step_zh, f.owner, f.steps) == ("verify", "核实", "泰顺县民政局", ())
    with pytest.raises(InvalidInput) as exc:
        ratings.advance_follow_up(hub, rating_id, "   ", MZJ)
    assert exc.value.errors[0].field == "note"
    with pytest.raises(InvalidInput, match="1000"):
        ratings.advance_follow_up(hub, rating_id, "长" * 1001, MZJ)
    with pytest.raises(InvalidInput) as exc:
        ratings.advance_follow_up(hub, rating_id, "直接办结", SUPERVISOR, outcome="closed")
    assert exc.value.errors[0].field == "outcome"
    with pytest.raises(NotFound):  # 公积金 has no part in it: to them the rating does not exist
        ratings.advance_follow_up(hub, rating_id, "已核实", GJJ)
    with pytest.raises(Forbidden):
        ratings.advance_follow_up(hub, rating_id, "已核实", TELLER)  # the desk does not handle its own
    with pytest.raises(NotFound):
        ratings.advance_follow_up(hub, rating_id + 100, "已核实", MZJ)
    before = len(svc.read(hub, number, MZJ).events)
    f = ratings.advance_follow_up(hub, rating_id, "已核实：确有重复要求", SUPERVISOR, next_owner="民政局王科长")
    assert (f.step, f.owner) == ("rectify", "民政局王科长")
    clock.advance(hours=1)
    f = ratings.advance_follow_up(hub, rating_id, "已整改：材料清单重新公示", MZJ)
    assert (f.step, f.owner) == ("revisit", "泰顺县民政局")
    f = ratings.advance_follow_up(hub, rating_id, "已电话回访，申请人认可", MZJ)
    assert (f.step, f.step_zh, f.owner) == ("review", "审核", ratings.REVIEW_OWNER)
    assert [(s.step_zh, s.owner, s.done_by, s.outcome) for s in f.steps] == [
        ("核实", "泰顺县民政局", SUPERVISOR.name, "done"),
        ("整改", "民政局王科长", MZJ.name, "done"),
        ("回访", "泰顺县民政局", MZJ.name, "done"),
    ]
    assert f.steps[1].done_at == clock().astimezone(UTC)
    with pytest.raises(Forbidden):  # 审核 is a supervisor's
        ratings.advance_follow_up(hub, rating_id, "同意", MZJ, outcome="closed")
    rectifier = svc.Actor(name=SUPERVISOR.name, role=Role.supervisor)
    f = ratings.advance_follow_up(hub, rating_id, "回访记录不完整", rectifier, outcome="returned")
    assert (f.step, f.owner, f.closed) == ("rectify", "泰顺县民政局", False)
    ratings.advance_follow_up(hub, rating_id, "已整改：补充回访录音", rectifier)  # the supervisor rectified
    ratings.advance_follow_up(hub, rating_id, "已再次回访", MZJ)
    with pytest.raises(Forbidden, match="reviewer"):  # no one signs off their own 整改
        ratings.close_follow_up(hub, rating_id, "同意", rectifier)
    other = svc.Actor(name="督查科陈静", role=Role.supervisor)
    f = ratings.close_follow_up(hub, rating_id, "整改到位，同意办结", other)
    assert (f.closed, f.late, f.closed_by, f.step, f.response) == (
        True,
        False,
        other.name,
        None,
        "已整改：补充回访录音",
    )
    assert [s.outcome for s in f.steps] == ["done", "done", "done", "returned", "done", "done", "closed"]
    app = svc.read(hub, number, MZJ)
    added = app.events[before:]
    assert [e.action for e in added] == ["follow_up_step"] * 6 + ["follow_up_closed"]
    assert (added[0].data["step"], added[0].data["next_step"], added[0].data["next_owner"]) == (
        "verify",
        "rectify",
        "民政局王科长",
    )
    assert (added[-1].actor, added[-1].reason, added[-1].data["late"]) == (other.name, "整改到位，同意办结", False)
    assert verify_chain(app).ok
    with pytest.raises(IllegalTransition, match="already closed"):
        ratings.close_follow_up(hub, rating_id, "再次审核", other)
    assert len(svc.read(hub, number, MZJ).events) == before + 7


def test_a_good_rating_has_no_follow_up_to_close(hub):
    rating_id = ratings.rate(hub, _decided(hub), 4, None).id
    with pytest.raises(InvalidInput, match="not a bad rating"):
        ratings.advance_follow_up(hub, rating_id, "已回访", SUPERVISOR)


def test_follow_ups_are_scoped(hub):
    ratings.rate(hub, _decided(hub), 1, None)
    assert len(ratings.follow_ups(hub, TELLER)) == 1
    assert ratings.follow_ups(hub, OTHER_TELLER) == []  # another desk's
    assert ratings.follow_ups(hub, GJJ) == []  # another department's
    assert len(ratings.follow_ups(hub, MZJ)) == 1 and len(ratings.follow_ups(hub, SUPERVISOR)) == 1


def test_every_department_of_a_bundle_may_work_on_its_follow_up(hub, clock):
    number = svc.create(
        hub, retirement(), svc.Actor(name="飞地专员", role=Role.enclave_clerk, desk="enclave-shanghai")
    ).number
    svc.transition(hub, number, "withdraw", svc.SYSTEM, reason="申请人改到大厅办理")
    rating_id = ratings.rate(hub, number, 2, None).id
    assert [f.number for f in ratings.follow_ups(hub, GJJ)] == [number]  # 公积金 holds the third part
    _to_review(hub, rating_id, GJJ)
    assert ratings.close_follow_up(hub, rating_id, "同意办结", SUPERVISOR).closed


def test_duplicate_rating_is_refused_and_writes_nothing(hub):
    number = _decided(hub)
    ratings.rate(hub, number, 3, None)
    before = svc.read(hub, number, MZJ)
    with pytest.raises(InvalidInput) as exc:
        ratings.rate(hub, number, 1, "改成差评")
    assert exc.value.errors[0].field == "level" and "只能评价一次" in exc.value.errors[0].reason.zh
    after = svc.read(hub, number, MZJ)
    assert (len(after.events), after.chain_head) == (len(before.events), before.chain_head)
    assert _ratings_count(hub) == 1 and ratings.rating_of(hub, number, MZJ).level == 3


def test_an_open_application_cannot_be_rated(hub):
    number = svc.create(hub, elderly_card(), TELLER).number
    for step in [None, "pre_review", "accept"]:  # received, pre-reviewed, accepted
        if step:
            svc.transition(hub, number, step, TELLER if step == "pre_review" else MZJ)
        with pytest.raises(InvalidInput, match="办结后才能评价") as exc:
            ratings.rate(hub, number, 5, None)
        assert exc.value.errors[0].field == "level"
    assert _ratings_count(hub) == 0 and svc.read(hub, number, MZJ).events[-1].action == "accept"


def test_refused_and_withdrawn_applications_can_be_rated(hub):
    refused = svc.create(hub, elderly_card(), TELLER).number
    svc.transition(hub, refused, "reject", MZJ, reason="未满60周岁")
    assert ratings.rate(hub, refused, 3, None).level == 3
    withdrawn = svc.create(hub, fund_rent(), HZ_CLERK).number
    svc.transition(hub, withdrawn, "withdraw", HZ_CLERK, reason="不再需要")
    assert ratings.rate(hub, withdrawn, 4, None).level == 4


def test_bad_input_is_refused(hub):
    number = _decided(hub)
    for level, comment, field in [
        (0, None, "level"),
        (6, None, "level"),
        (True, None, "level"),
        ("5", None, "level"),
        (4, "字" * 501, "comment"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            ratings.rate(hub, number, level, comment)
        assert [e.field for e in exc.value.errors] == [field], (level, comment)
    with pytest.raises(InvalidInput) as exc:
        ratings.rate(hub, number, 9, "字" * 501)
    assert [e.field for e in exc.value.errors] == ["level", "comment"]  # every problem at once
    assert _ratings_count(hub) == 0


def test_rating_of_is_scoped(hub):
    number = _decided(hub)
    assert ratings.rating_of(hub, number, TELLER) is None  # not rated yet
    ratings.rate(hub, number, 4, None)
    with pytest.raises(NotFound):
        ratings.rating_of(hub, number, OTHER_TELLER)
    applicant = svc.Actor(name="林阿婆", role=Role.applicant, applicant_id="11010119900307001X")
    with pytest.raises(NotFound):
        ratings.rate(hub, number, 1, None, actor=applicant)  # not theirs to rate


def test_follow_ups_are_paged_in_due_order(hub, clock):
    ids = []
    for day in (date(2026, 9, 23), date(2026, 9, 21), date(2026, 9, 22)):
        clock.set(day)
        ids.append(ratings.rate(hub, _decided(hub), 1, None).id)
    first = ratings.follow_ups(hub, SUPERVISOR, limit=2)
    rest = ratings.follow_ups(hub, SUPERVISOR, limit=2, offset=2)
    assert [f.rating_id for f in first + rest] == [ids[1], ids[2], ids[0]]
    assert [f.due for f in first] == sorted(f.due for f in first) and len(rest) == 1
