"""帮代办 and the project ledger, core rules on SQLite and PostgreSQL (the `hub` fixture): the
roster's checks, two agents racing to take one task (exactly one wins, the other is told 已被他人
接单), no application before the 委托书 is signed (and the application then carries the agent),
scoping (another agent's or desk's task is "not found"), the ledger's overdue steps, the figures."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from hub import applications as svc
from hub.agency import figures, projects, roster, tasks
from hub.applications import Actor
from hub.applications.scope import list_applications
from hub.context import Hub
from hub.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from hub.lifecycle import Role
from hub.storage.tables import AgencyTaskApplication, Application
from hub.users import add_user
from tests.conftest import PDF, Clock, make_id
from tests.support.samples import ELDERLY_CARD, TELLER, elderly_card, officer

OPS = Actor(name="运维", role=Role.ops)
CLERK = Actor(name="东溪乡窗口吴丽", role=Role.clerk, desk="township-dongxi")
HALL = Actor(name="县中心窗口张敏", role=Role.clerk, desk="hall-county")
SUPERVISOR = Actor(name="督查刘强", role=Role.supervisor)
DONGXI = "330329201"
BAIZHANG = "330329102"
RESIDENT_ID = make_id("330329", date(1946, 4, 3), "027")
CREDIT = "91330329MA2K7Q8L1X"
FORM = {"delivery_method": "窗口领取", "contact_phone": "13905770002"}


def signature_png(strokes: int = 3) -> str:
    """A drawn signature as the pad sends it: a PNG data URL, ink on transparent."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for i in range(strokes):
        draw.line([(10 + 30 * i, 80), (60 + 30 * i, 20), (90 + 30 * i, 70)], fill=(0, 0, 0, 255), width=4)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def agent(hub: Hub, username: str, name: str, seq: str, *, townships: list[str], desk: str = "township-dongxi"):
    add_user(hub, username, "daiban-帮办-2026", display_name=name, role=Role.agent, desk=desk)
    roster.add(
        hub,
        OPS,
        username,
        name=name,
        id_number=make_id("330329", date(1985, 6, 1), seq),
        phone="13905770100",
        townships=townships,
    )
    return tasks.who(hub, Actor(name=name, role=Role.agent, desk=desk), username)


def desk_task(hub: Hub, township: str = DONGXI) -> int:
    new = tasks.NewTask(
        subject=ELDERLY_CARD,
        resident_name="林阿公",
        resident_id=RESIDENT_ID,
        phone="13905770002",
        township=township,
        address="东溪乡东溪村12号",
        preferred_time="周三上午",
        note="行动不便，请上门",
    )
    return tasks.open_task(hub, tasks.Who(CLERK), new).id


def test_the_roster_names_each_bad_field_and_changes_nothing(hub: Hub):
    add_user(hub, "wugang", "daiban-帮办-2026", display_name="吴刚", role=Role.agent, desk="township-dongxi")
    add_user(hub, "teller1", "guitai-柜台-2026", display_name="柜员", role=Role.teller, desk="bank-xiahong")
    with pytest.raises(InvalidInput) as bad:
        roster.add(
            hub,
            OPS,
            "wugang",
            name="吴刚",
            id_number="330329198506010011",
            phone="123",
            desks=["no-such-desk"],
            townships=["33032920", "110101001"],
        )
    fields = [e.field for e in bad.value.errors]
    assert fields == ["id_number", "phone", "desk", "township", "township"], bad.value.errors
    with pytest.raises(InvalidInput) as not_agent:
        roster.add(hub, OPS, "teller1", name="柜员", id_number=make_id(seq="011"))
    assert not_agent.value.errors[0].field == "username"
    assert roster.roster(hub) == []
    added = roster.add(hub, OPS, "wugang", name="吴刚", id_number=make_id(seq="011"), townships=["３３０３２９２０１"])
    assert added.desks == ["township-dongxi"] and added.townships == [DONGXI] and added.active  # 全角 folded
    assert not roster.deactivate(hub, OPS, "wugang").active


def test_two_agents_racing_to_take_one_task_exactly_one_wins(hub: Hub):
    a = agent(hub, "agent-a", "代办员甲", "013", townships=[DONGXI])
    b = agent(hub, "agent-b", "代办员乙", "021", townships=[DONGXI])
    task_id = desk_task(hub)
    assert [t["id"] for t in tasks.listing(hub, a)] == [task_id] == [t["id"] for t in tasks.listing(hub, b)]
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def press(name: str, me: tasks.Who) -> None:
        start.wait()
        try:
            tasks.take(hub, me, task_id)
            results[name] = "won"
        except IllegalTransition as exc:
            results[name] = str(exc)

    threads = [threading.Thread(target=press, args=(n, w)) for n, w in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == sorted(["won", tasks.TAKEN_BY_OTHER]), results
    winner, loser = (a, b) if results["a"] == "won" else (b, a)
    view = tasks.read(hub, winner, task_id)
    assert view.task.state == "taken" and view.agent_name == winner.agent_name
    assert [e.action for e in view.events] == ["opened", "taken"]
    with pytest.raises(IllegalTransition, match="已被他人接单"):
        tasks.take(hub, loser, task_id)  # and again later: the same clear answer
    with pytest.raises(NotFound):
        tasks.read(hub, loser, task_id)  # no longer open: the loser does not see it


def test_no_application_before_the_consent_then_one_carrying_the_agent(hub: Hub):
    me = agent(hub, "agent-a", "代办员甲", "013", townships=[DONGXI])
    task_id = desk_task(hub)
    tasks.take(hub, me, task_id)
    tasks.record_visit(hub, me, task_id, tasks.VisitIn(place="东溪村12号", outcome="collected", note="已收身份证"))
    for name, content in (("居民身份证", PDF), ("近期免冠彩色证件照", b"\xff\xd8\xff\xe0" + b"\x00" * 32)):
        tasks.collect_material(hub, me, task_id, name, f"{name}.bin", content)
    with pytest.raises(InvalidInput) as refused:
        tasks.start_application(hub, me, task_id, FORM, "form-1")
    assert [e.field for e in refused.value.errors] == ["consent"]
    with hub.sessions() as s:
        assert s.scalar(select(func.count(Application.id))) == 0

    with pytest.raises(InvalidInput) as blank:
        tasks.sign_consent(hub, me, task_id, signature_png(strokes=0), "data:image/gif;base64,R0lGOD")
    assert [(e.field, e.reason.zh) for e in blank.value.errors] == [
        ("resident_signature", "签名为空，请在签名框内签名"),
        ("agent_signature", "签名应为不超过512KB的PNG图片"),
    ]
    sha = tasks.sign_consent(hub, me, task_id, signature_png(), signature_png(2))
    letter = hub.store.path_of(sha).read_bytes()
    assert letter.startswith(b"%PDF") and hashlib.sha256(letter).hexdigest() == sha
    assert tasks.consent_pdf(hub, me, task_id) == letter

    app = tasks.start_application(hub, me, task_id, FORM, "form-1")
    again = tasks.start_application(hub, me, task_id, FORM, "form-1")  # the form posted twice
    assert again.number == app.number
    full = svc.read(hub, app.number, me.actor)
    assert full.desk_code == "township-dongxi" and full.state == "received"
    assert (full.agent_name, full.agent_id) == ("代办员甲", me.agent_id_number)
    assert (full.applicant_name, full.applicant_id) == ("林阿公", RESIDENT_ID)
    assert sorted(m.name for m in full.materials) == ["居民身份证", "近期免冠彩色证件照"]
    view = tasks.read(hub, me, task_id)
    assert [a["number"] for a in view.applications] == [app.number] and view.visit_count == 1
    assert view.task.state == "visiting"
    # the agent's applications: what it collected, not every application of its desk
    other = agent(hub, "agent-b", "代办员乙", "021", townships=[DONGXI])
    with pytest.raises(NotFound):
        svc.read(hub, app.number, other.actor)  # same desk, another agent
    assert svc.read(hub, app.number, CLERK).number == app.number  # the desk does its 初审
    desk_own = svc.create(hub, elderly_card(desk="township-dongxi"), CLERK).number
    with hub.sessions() as s:
        assert [a.number for a in list_applications(s, me.actor)] == [app.number]
    with pytest.raises(NotFound):
        svc.read(hub, desk_own, me.actor)
    with pytest.raises(Forbidden, match="本人为代办人"):  # an agent receives only as the agent itself
        svc.create(hub, elderly_card(desk="township-dongxi"), me.actor)
    tasks.finish(hub, me, task_id)
    with pytest.raises(IllegalTransition):
        tasks.record_visit(hub, me, task_id, tasks.VisitIn(place="东溪村"))


def test_tasks_are_scoped_to_their_agent_desk_and_resident(hub: Hub):
    a = agent(hub, "agent-a", "代办员甲", "013", townships=[DONGXI])
    far = agent(hub, "agent-far", "代办员丙", "035", townships=[BAIZHANG], desk="hall-county")
    task_id = desk_task(hub)
    assert tasks.listing(hub, far) == []  # open, but not in a township it serves
    with pytest.raises(NotFound):
        tasks.read(hub, far, task_id)
    with pytest.raises(NotFound):
        tasks.take(hub, far, task_id)
    tasks.take(hub, a, task_id)
    with pytest.raises(NotFound):
        tasks.record_visit(hub, far, task_id, tasks.VisitIn(place="x"))
    with pytest.raises(NotFound):
        tasks.read(hub, tasks.Who(HALL), task_id)  # another desk
    stranger = Actor(name="王某", role=Role.applicant, applicant_id=make_id(seq="099"))
    with pytest.raises(NotFound):
        tasks.read(hub, tasks.Who(stranger), task_id)
    assert tasks.read(hub, tasks.Who(CLERK), task_id).task.id == task_id  # the desk that asked
    assert tasks.read(hub, tasks.Who(SUPERVISOR), task_id).task.id == task_id
    with pytest.raises(Forbidden):
        tasks.take(hub, tasks.Who(CLERK), task_id)
    # a resident's own request, from their session (name and ID number are the provider's)
    resident = Actor(name="林阿公", role=Role.applicant, applicant_id=RESIDENT_ID)
    own = tasks.open_task(
        hub, tasks.Who(resident), tasks.NewTask(subject=ELDERLY_CARD, phone="13905770002", township=DONGXI)
    )
    assert [t["id"] for t in tasks.listing(hub, tasks.Who(resident))] == [own.id, task_id]
    assert tasks.listing(hub, tasks.Who(resident))[0]["resident_id"] == "3303**********" + RESIDENT_ID[-4:]
    with pytest.raises(InvalidInput) as bad:
        tasks.open_task(hub, tasks.Who(resident), tasks.NewTask(subject="NOPE", phone="1", township="330329"))
    assert [e.field for e in bad.value.errors] == ["subject", "phone", "township"]


def test_the_ledger_lists_overdue_milestones_and_applications(hub: Hub, clock: Clock):
    me = agent(hub, "agent-a", "代办员甲", "013", townships=[DONGXI])
    boss = tasks.Who(SUPERVISOR)
    mzj = officer("ts-mzj")
    late = svc.create(hub, elderly_card(), TELLER).number
    svc.transition(hub, late, "pre_review", TELLER)
    svc.transition(hub, late, "accept", mzj)
    waiting = svc.create(hub, elderly_card(), TELLER).number  # not accepted: no due date yet
    with pytest.raises(InvalidInput) as bad:
        projects.create(hub, boss, projects.NewProject(name="", credit_code="91330329MA2XXXXXX1", investment_wan=-1))
    assert [e.field for e in bad.value.errors] == ["name", "company_name", "credit_code", "investment_wan"]
    with pytest.raises(Forbidden):
        projects.create(hub, me, projects.NewProject(name="x"))
    p = projects.create(
        hub,
        boss,
        projects.NewProject(
            name="泰顺县氡泉康养综合体项目",
            company_name="泰顺县文旅投资有限公司",
            credit_code=CREDIT,
            investment_wan=120000,
            agent="agent-a",
        ),
    )
    projects.link_application(hub, boss, p.id, late)
    projects.link_application(hub, boss, p.id, waiting.lower())  # as typed
    projects.link_application(hub, boss, p.id, late)  # twice: kept once
    with pytest.raises(InvalidInput, match="number"):
        projects.link_application(hub, boss, p.id, "TB-NO-SUCH")
    projects.add_milestone(hub, me, p.id, "用地预审与选址意见书", date(2026, 9, 25))
    projects.add_milestone(hub, boss, p.id, "施工许可", date(2026, 12, 31))
    assert projects.ledgers(hub, boss, overdue_only=True) == []  # nothing is late on the first day
    due = svc.read(hub, late, mzj).due_date
    assert due is not None
    clock.set(date(2026, 10, 30))  # past the card's due date and the first milestone's
    found = projects.ledger(hub, me, p.id)
    assert due < date(2026, 9, 25)  # 即办: due on the day it was accepted, so listed first
    assert [(s["kind"], s.get("name") or s.get("number")) for s in found.overdue] == [
        ("application", late),
        ("milestone", "用地预审与选址意见书"),
    ]
    assert [a["number"] for a in found.applications] == [late, waiting] and found.agent_name == "代办员甲"
    assert [lg.project.id for lg in projects.ledgers(hub, boss, overdue_only=True)] == [p.id]
    first = found.milestones[0]["id"]
    projects.milestone_done(hub, me, p.id, first)
    assert [s["kind"] for s in projects.ledger(hub, boss, p.id).overdue] == ["application"]
    other = agent(hub, "agent-b", "代办员乙", "021", townships=[DONGXI])
    with pytest.raises(NotFound):
        projects.ledger(hub, other, p.id)  # not the agent in charge
    assert projects.ledgers(hub, other) == []
    with pytest.raises(NotFound):
        projects.ledger(hub, tasks.Who(CLERK), p.id)


def test_figures_count_by_the_county_day(hub: Hub, clock: Clock):
    me = agent(hub, "agent-a", "代办员甲", "013", townships=[DONGXI])
    clock.set(date(2026, 9, 21), hour=23)  # 23:00 Beijing time is still the 21st (15:00 UTC)
    task_id = desk_task(hub)
    tasks.take(hub, me, task_id)
    tasks.record_visit(hub, me, task_id, tasks.VisitIn(place="东溪村12号"))
    clock.set(date(2026, 9, 22), hour=9)
    tasks.record_visit(hub, me, task_id, tasks.VisitIn(place="东溪村12号"))
    tasks.finish(hub, me, task_id)
    with hub.sessions() as s:
        day1 = figures.counts(s, date(2026, 9, 21), date(2026, 9, 21))
        both = figures.counts(s, date(2026, 9, 21), date(2026, 9, 22))
    assert day1 == {"visits": 1, "tasks_opened": 1, "tasks_done": 0, "applications": 0}
    assert both == {"visits": 2, "tasks_opened": 1, "tasks_done": 1, "applications": 0}
    with hub.sessions() as s:
        assert s.scalar(select(func.count(AgencyTaskApplication.id))) == 0


def test_the_cli_adds_lists_and_deactivates_agents_with_the_same_rules(hub: Hub, home, db_url, monkeypatch):
    from typer.testing import CliRunner

    from hub.cli import app

    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    add_user(hub, "wugang", "daiban-帮办-2026", display_name="吴刚", role=Role.agent, desk="township-dongxi")
    run = CliRunner()
    base = ["--home", str(home), "agents"]
    bad = run.invoke(app, [*base, "add", "wugang", "--name", "吴刚", "--id-number", "1", "--township", "330329"])
    assert isinstance(bad.exception, InvalidInput)
    assert [e.field for e in bad.exception.errors] == ["id_number", "township"]
    ok = run.invoke(
        app,
        [*base, "add", "wugang", "--name", "吴刚", "--id-number", make_id(seq="011"), "--desk", "township-dongxi",
         "--township", DONGXI, "--phone", "13905770100"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    listed = run.invoke(app, [*base, "list", "--json"])
    assert '"id_number": "3303**********' in listed.output and '"townships": [\n      "330329201"' in listed.output
    assert run.invoke(app, [*base, "deactivate", "wugang"]).output.strip() == "wugang: inactive"
    desk_task(hub)
    listed = run.invoke(app, ["--home", str(home), "agency", "tasks", "--json"])
    assert '"resident_name": "林阿公"' in listed.output and RESIDENT_ID not in listed.output  # masked
    assert not roster.get(hub, "wugang").active


def test_the_demo_walk_runs_on_a_fresh_hub(hub: Hub):
    from hub import demo_agency

    said: list[str] = []
    number = demo_agency.run(hub, said.append)
    me = tasks.who(hub, Actor(name="吴刚", role=Role.agent, desk="township-dongxi"), "daiban-wugang")
    app = svc.read(hub, number, me.actor)
    assert app.agent_name == "吴刚" and app.state == "received"
    assert any("逾期 1 项" in line for line in said), said


def test_a_desk_assigns_only_to_an_agent_who_serves_and_cancels_with_a_reason(hub: Hub):
    a = agent(hub, "agent-a", "代办员甲", "013", townships=[DONGXI])
    agent(hub, "agent-far", "代办员丙", "035", townships=[BAIZHANG], desk="hall-county")
    first, second = desk_task(hub), desk_task(hub)
    with pytest.raises(InvalidInput, match="不服务"):
        tasks.assign(hub, tasks.Who(CLERK), first, "agent-far")
    with pytest.raises(InvalidInput, match="名册"):
        tasks.assign(hub, tasks.Who(CLERK), first, "nobody")
    with pytest.raises(NotFound):
        tasks.assign(hub, tasks.Who(HALL), first, "agent-a")  # not that desk's task
    with pytest.raises(Forbidden):
        tasks.assign(hub, a, first, "agent-a")  # agents take, they do not assign
    tasks.assign(hub, tasks.Who(CLERK), first, "agent-a")
    assert tasks.read(hub, a, first).task.state == "taken"
    with pytest.raises(IllegalTransition, match="已被他人接单"):
        tasks.assign(hub, tasks.Who(SUPERVISOR), first, "agent-a")
    with pytest.raises(InvalidInput) as no_reason:
        tasks.cancel(hub, tasks.Who(CLERK), second, " ")
    assert [e.field for e in no_reason.value.errors] == ["reason"]
    tasks.cancel(hub, tasks.Who(CLERK), second, "申请人已自行到窗口办理")
    view = tasks.read(hub, tasks.Who(SUPERVISOR), second)
    assert view.task.state == "cancelled" and view.events[-1].data == {"reason": "申请人已自行到窗口办理"}
    assert tasks.listing(hub, a, state="open") == []  # cancelled is gone from the board
    with pytest.raises(IllegalTransition, match="已撤销"):
        tasks.take(hub, a, second)
    with pytest.raises(InvalidInput, match="state"):
        tasks.listing(hub, a, state="bogus")


def test_one_id_number_is_one_agent_on_the_roster(hub: Hub):
    """An agent's scope is what it collected under its ID number: a second login with the same
    number would read the first one's applications, so the roster refuses it (field id_number)."""
    agent(hub, "daiban-zhouli", "周丽", "011", townships=[DONGXI])
    add_user(hub, "daiban-wangqiang", "daiban-帮办-2026", display_name="王强", role=Role.agent, desk="township-dongxi")
    with pytest.raises(InvalidInput) as refused:
        roster.add(
            hub,
            OPS,
            "daiban-wangqiang",
            name="王强",
            id_number=make_id("330329", date(1985, 6, 1), "011"),
            townships=[],
        )
    assert [e.field for e in refused.value.errors] == ["id_number"]
    assert "已登记给另一位代办员" in refused.value.errors[0].reason.zh
    with pytest.raises(NotFound):
        roster.get(hub, "daiban-wangqiang")
