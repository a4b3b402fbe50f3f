"""帮代办 over HTTP (the real app, FastAPI's TestClient, SQLite and PostgreSQL): every page renders
for the roles it serves and only for them; a lost 抢单 says 已被他人接单 (409) on the page and the
API alike; another agent's task and another resident's request are 404; a resident's /help
request (signed in through a resident session) reaches the agents of their township; bad input
names the field and changes nothing; the roster on the ops pages; the ledger's overdue filter."""

from __future__ import annotations

import re
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import audit
from hub.agency import roster, tasks
from hub.applications import Actor
from hub.context import Hub
from hub.lifecycle import Role
from hub.storage.tables import AgencyTask
from hub.users import add_user
from hub.web.app import create_app
from hub.web.resident_session import RESIDENT_COOKIE, open_resident_session
from tests.conftest import make_id
from tests.test_agency import CREDIT, DONGXI, OPS, desk_task
from tests.test_web_api import csrf_of, login

PASSWORD = "daiban-帮办-2026"
RESIDENT_ID = make_id("330329", date(1950, 2, 2), "041")


def _people(hub: Hub) -> None:
    for username, name, role, desk in (
        ("agent-a", "代办员甲", Role.agent, "township-dongxi"),
        ("agent-b", "代办员乙", Role.agent, "township-dongxi"),
        ("clerk-dx", "吴丽", Role.clerk, "township-dongxi"),
        ("clerk-hall", "张敏", Role.clerk, "hall-county"),
        ("boss", "刘强", Role.supervisor, None),
        ("opsman", "运维", Role.ops, None),
    ):
        add_user(hub, username, PASSWORD, display_name=name, role=role, desk=desk)
    for username, name, seq in (("agent-a", "代办员甲", "013"), ("agent-b", "代办员乙", "021")):
        roster.add(hub, OPS, username, name=name, id_number=make_id(seq=seq), townships=[DONGXI])


def _client(hub: Hub, username: str) -> TestClient:
    web = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert login(web, username, PASSWORD).status_code == 303
    return web


def test_pages_roles_and_a_lost_grab(hub: Hub):
    _people(hub)
    a, b, clerk, hall, boss, ops = (
        _client(hub, u) for u in ("agent-a", "agent-b", "clerk-dx", "clerk-hall", "boss", "opsman")
    )
    html = {"accept": "text/html"}
    # a desk registers a request; a bad one names its fields and saves nothing
    token = csrf_of(clerk, "/agency")
    bad = clerk.post(
        "/agency/tasks",
        data={"csrf_token": token, "subject": "GG00501000", "resident_name": "", "phone": "12", "township": "1"},
        headers=html,
    )
    assert bad.status_code == 422 and "申请人姓名" in bad.text and "联系电话" in bad.text and "乡镇" in bad.text
    with hub.sessions() as s:
        assert s.scalar(select(func.count(AgencyTask.id))) == 0
    made = clerk.post(
        "/agency/tasks",
        data={
            "csrf_token": token,
            "subject": "GG00501000",
            "resident_name": "林阿公",
            "phone": "13905770002",
            "township": DONGXI,
            "preferred_time": "周三上午",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    task_id = int(made.headers["location"].rsplit("/", 1)[1])
    assert f'data-task="{task_id}"' in a.get("/agency", headers=html).text
    assert a.get("/", follow_redirects=False).headers["location"] == "/agency"  # the agent's landing

    # 抢单: b has the board open too; a takes it first
    token_b = csrf_of(b, "/agency")
    assert a.post(f"/agency/tasks/{task_id}/take", data={"csrf_token": csrf_of(a, "/agency")}).status_code == 200
    lost = b.post(f"/agency/tasks/{task_id}/take", data={"csrf_token": token_b}, headers=html)
    assert lost.status_code == 409 and "已被他人接单" in lost.text
    api_lost = b.post(f"/api/v1/agency/tasks/{task_id}/take", headers={"x-csrf-token": token_b})
    assert api_lost.status_code == 409 and "已被他人接单" in api_lost.json()["detail"]
    assert b.get(f"/agency/tasks/{task_id}", headers=html).status_code == 404
    assert hall.get(f"/agency/tasks/{task_id}", headers=html).status_code == 404
    assert a.get("/agency/tasks/99999999999", headers=html).status_code == 422  # not a row id: no database error
    page = a.get(f"/agency/tasks/{task_id}", headers=html).text
    assert 'id="consent-first"' in page and 'data-state="taken"' in page
    assert 'id="start-application"' not in page  # no application before the 委托书
    assert clerk.get(f"/agency/tasks/{task_id}", headers=html).status_code == 200
    viewed = [(e.actor, e.action) for e in audit.entries(hub, target=f"agency_task:{task_id}")]
    assert ("吴丽", "agency_task_viewed") in viewed and ("代办员甲", "agency_task_viewed") in viewed
    assert "Visits" in a.get(f"/agency/tasks/{task_id}?lang=en", headers=html).text
    assert "Open tasks" in a.get("/agency?lang=en", headers=html).text
    assert "待接单" in a.get("/agency?lang=zh", headers=html).text  # and back (the choice is a cookie)
    assert a.get("/api/v1/agency/tasks").json()["tasks"][0]["agent"] == "代办员甲"

    # who may open what
    assert ops.get("/agency", headers=html).status_code == 403
    assert clerk.get("/projects", headers=html).status_code == 403
    assert boss.get("/agency", headers=html).status_code == 200
    assert boss.get("/api/v1/agency/figures?start=2026-09-21&end=2026-09-21").json()["tasks_opened"] == 1
    assert a.get("/api/v1/agency/figures?start=2026-09-21&end=2026-09-21").status_code == 403

    # the ledger: a supervisor creates a project; the overdue filter
    token = csrf_of(boss, "/projects")
    bad = boss.post(
        "/projects",
        data={"csrf_token": token, "name": "x", "company_name": "y", "credit_code": "123", "investment_wan": "x"},
        headers=html,
    )
    assert bad.status_code == 422 and "总投资" in bad.text
    made = boss.post(
        "/projects",
        data={
            "csrf_token": token,
            "name": "泰顺县氡泉康养综合体项目",
            "company_name": "泰顺县文旅投资有限公司",
            "credit_code": CREDIT,
            "investment_wan": "120000",
            "agent": "agent-a",
        },
        follow_redirects=False,
    )
    project = made.headers["location"]
    boss.post(f"{project}/milestones", data={"csrf_token": token, "name": "用地预审", "due_date": "2026-09-01"})
    assert 'class="overdue"' in boss.get("/projects?overdue=1", headers=html).text
    assert "用地预审" in a.get(project, headers=html).text  # the agent in charge
    assert b.get(project, headers=html).status_code == 404
    assert b.get("/api/v1/agency/projects").json() == {"projects": []}

    # the roster on the ops pages
    add_user(hub, "agent-c", PASSWORD, display_name="代办员丙", role=Role.agent, desk="hall-county")
    token = csrf_of(ops, "/ops/agents")
    bad = ops.post(
        "/ops/agents",
        data={"csrf_token": token, "username": "agent-c", "name": "代办员丙", "id_number": "1", "townships": "1"},
        headers=html,
    )
    assert bad.status_code == 422 and "证件号码" in bad.text and "乡镇" in bad.text
    ok = ops.post(
        "/ops/agents",
        data={"csrf_token": token, "username": "agent-c", "name": "代办员丙", "id_number": make_id(seq="055")},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and roster.get(hub, "agent-c").desks == ["hall-county"]
    ops.post("/ops/agents/agent-c", data={"csrf_token": token, "desks": "hall-county", "townships": DONGXI})
    assert not roster.get(hub, "agent-c").active and roster.get(hub, "agent-c").townships == [DONGXI]
    assert "3303**********" in ops.get("/ops/agents", headers=html).text


def test_a_resident_asks_for_help_and_sees_only_their_own(hub: Hub):
    _people(hub)
    desk_task(hub)  # someone else's request
    web = TestClient(create_app(hub), base_url="http://127.0.0.1")
    assert 'id="sign-in-first"' in web.get("/help", headers={"accept": "text/html"}).text
    cookie = open_resident_session(
        hub, provider="sandbox", subject="u-41", id_number=RESIDENT_ID, name="陈阿婆", phone="13905770041"
    )
    web.cookies.set(RESIDENT_COOKIE, cookie)
    page = web.get("/help", headers={"accept": "text/html"}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    forged = web.post("/help", data={"csrf_token": "x", "subject": "GG00501000", "phone": "13905770041"})
    assert forged.status_code == 403
    bad = web.post("/help", data={"csrf_token": token, "subject": "GG00501000", "phone": "1", "township": ""})
    assert bad.status_code == 422 and "联系电话" in bad.text and "乡镇" in bad.text
    sent = web.post(
        "/help",
        data={"csrf_token": token, "subject": "GG00501000", "phone": "13905770041", "township": DONGXI},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    mine = tasks.listing(hub, tasks.Who(Actor(name="陈阿婆", role=Role.applicant, applicant_id=RESIDENT_ID)))
    assert [(t["resident_name"], t["origin"]) for t in mine] == [("陈阿婆", "resident")]
    page = web.get("/help?sent=1", headers={"accept": "text/html"}).text
    assert 'id="help-sent"' in page and page.count("<li data-task=") == 1  # their own request only
    agent_a = tasks.who(hub, Actor(name="代办员甲", role=Role.agent, desk="township-dongxi"), "agent-a")
    assert len(tasks.listing(hub, agent_a)) == 2  # both are in a township agent-a serves
    # the resident withdraws their own request; someone else's is not found; no token, no change
    theirs = next(t["id"] for t in tasks.listing(hub, agent_a) if t["origin"] != "resident")
    assert web.post(f"/help/{theirs}/cancel", data={"csrf_token": token, "reason": "x"}).status_code == 404
    own = mine[0]["id"]
    assert web.post(f"/help/{own}/cancel", data={"csrf_token": "x", "reason": "已自行办理"}).status_code == 403
    assert all(t["state"] == "open" for t in tasks.listing(hub, agent_a))
    done = web.post(f"/help/{own}/cancel", data={"csrf_token": token, "reason": "已自行办理"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/help?cancelled=1"
    with hub.sessions() as session:
        assert (session.get(AgencyTask, own).state, session.get(AgencyTask, theirs).state) == ("cancelled", "open")
    again = web.post(f"/help/{own}/cancel", data={"csrf_token": token, "reason": "再撤一次"})
    assert again.status_code == 422 and "不能撤销" in again.text
