"""To-do lists (hub/worklists.py) and the shared list filters (hub/applications/search.py), on
SQLite and PostgreSQL, with a fixed clock: the inbox's tabs, counts, urgency order (the SQL card
agrees with hub.timelimits.signal), exact working days left / overdue, stable pages; search by
number, name and FULL ID number only; the desk's home; the supervisor's open work by card.

The calendar around the scene: Fri 2026-09-25 is 中秋节, Oct 1–8 国庆; a 3-working-day item
accepted Mon 09-21 is due Thu 09-24, and on Tue 09-29 it is 2 working days overdue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from hub import applications as svc
from hub import worklists
from hub.applications.search import ListFilter, find
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.timelimits import remaining_workdays
from tests.conftest import Clock, make_id
from tests.support.samples import HZ_CLERK, TELLER, elderly_card, fund_rent, officer

GJJ = officer("ts-gjj")
MZJ = officer("ts-mzj")
SUPERVISOR = svc.Actor(name="督查", role=Role.supervisor)
URGENCY = {"red": 0, "yellow": 1, None: 2, "paused": 3, "green": 4}
TODAY = date(2026, 9, 29)


def _fund(seq: str, name: str = "陈志强", **kw) -> svc.NewApplication:
    new = fund_rent(**kw)
    return new.model_copy(update={"applicant": svc.Applicant(name=name, id=make_id(born=date(1990, 7, 1), seq=seq))})


def _received(hub: Hub, seq: str, **kw) -> str:
    app = svc.create(hub, _fund(seq, **kw), HZ_CLERK)
    svc.transition(hub, app.number, "pre_review", HZ_CLERK)
    return app.number


def _accepted(hub: Hub, seq: str, **kw) -> str:
    number = _received(hub, seq, **kw)
    svc.transition(hub, number, "accept", GJJ)
    return number


@dataclass
class Scene:
    red: str
    yellow: str
    waiting: str
    paused: str
    decided: str
    green: str


@pytest.fixture
def scene(hub: Hub, clock: Clock) -> Scene:
    return build_scene(hub, clock)


def build_scene(hub: Hub, clock: Clock) -> Scene:
    """One case in each stage for 公积金 (ts-gjj), all collected at the Hangzhou enclave desk;
    the clock left at TODAY (Tue 2026-09-29)."""
    red = _accepted(hub, "201", name="赵红")  # accepted Mon 09-21, due Thu 09-24
    decided = _accepted(hub, "202")
    svc.transition(hub, decided, "start_review", GJJ, part="GG00401001")
    svc.transition(hub, decided, "approve", GJJ, part="GG00401001")
    clock.set(date(2026, 9, 28))
    yellow = _accepted(hub, "203")  # due 10-08: 2 working days left on 09-29
    paused = _accepted(hub, "204")
    clock.set(TODAY)
    svc.transition(hub, paused, "request_supplement", GJJ, reason="租赁合同缺页，请补正")
    waiting = _received(hub, "205")
    green = _accepted(hub, "206")  # due 10-09: 3 working days left
    return Scene(red, yellow, waiting, paused, decided, green)


def test_inbox_tabs_counts_and_the_most_urgent_first(hub: Hub, scene: Scene):
    box = worklists.inbox(hub, GJJ)
    assert box.counts == {"all": 6, "to_accept": 1, "in_review": 3, "supplement": 1, "to_issue": 1}
    order = [r["number"] for r in box.rows]
    # red, yellow, then the cases without a running clock (to issue: by its due date; to accept),
    # 补正 (the clock stopped), the rest
    assert order == [scene.red, scene.yellow, scene.decided, scene.waiting, scene.paused, scene.green]
    # the SQL card that ordered them is the card hub.timelimits.signal gives each row
    assert [URGENCY[r["signal"]] for r in box.rows] == sorted(URGENCY[r["signal"]] for r in box.rows)
    by = {r["number"]: r for r in box.rows}
    assert by[scene.red]["signal"] == "red" and by[scene.red]["days_left"] == -2
    assert by[scene.red]["due_date"] == "2026-09-24"
    assert by[scene.yellow]["signal"] == "yellow" and by[scene.yellow]["days_left"] == 2
    assert by[scene.green]["signal"] == "green" and by[scene.green]["days_left"] == 3
    assert by[scene.paused]["signal"] == "paused" and by[scene.paused]["paused_since"] == "2026-09-29"
    assert by[scene.waiting]["days_left"] is None and by[scene.waiting]["received_at"].endswith("Z")
    for r in box.rows:
        if r["days_left"] is not None:
            assert r["days_left"] == remaining_workdays(date.fromisoformat(r["due_date"]), TODAY, hub.calendar)
    # another department's inbox holds none of them; a tab holds only its stage
    assert worklists.inbox(hub, MZJ).rows == []
    assert [r["number"] for r in worklists.inbox(hub, GJJ, tab="to_accept").rows] == [scene.waiting]
    assert [r["number"] for r in worklists.inbox(hub, GJJ, tab="to_issue").rows] == [scene.decided]


def test_inbox_part_states_agree_with_the_whole_case(hub: Hub, scene: Scene):
    """The inbox words a part as the decision page does (hub.lifecycle.part_state_zh): a part of
    a case not yet accepted waits for 受理, of one in 补正 for the papers — never 待审查 beside
    a case that reads 已初审 or 待补正."""
    by = {r["number"]: r for r in worklists.inbox(hub, GJJ).rows}
    assert [p["state_zh"] for p in by[scene.waiting]["my_parts"]] == ["待受理"]
    assert [p["state_zh"] for p in by[scene.paused]["my_parts"]] == ["待补正"]
    assert [p["state_zh"] for p in by[scene.green]["my_parts"]] == ["待审查"]


def test_inbox_sorts_and_pages_by_a_stable_key(hub: Hub, scene: Scene):
    received = [r["number"] for r in worklists.inbox(hub, GJJ, sort="received").rows]
    assert received == [scene.red, scene.decided, scene.yellow, scene.paused, scene.waiting, scene.green]
    due = [r["number"] for r in worklists.inbox(hub, GJJ, sort="due").rows]
    assert due[:4] == [scene.red, scene.decided, scene.yellow, scene.paused] and due[-1] == scene.waiting
    for sort in worklists.SORTS:
        whole = [r["number"] for r in worklists.inbox(hub, GJJ, sort=sort).rows]
        pages = [
            r["number"]
            for offset in range(0, 6, 4)
            for r in worklists.inbox(hub, GJJ, sort=sort, limit=4, offset=offset).rows
        ]
        assert pages == whole, sort


def test_search_by_number_name_and_only_a_full_id_number(hub: Hub, scene: Scene):
    tz = hub.settings.tz
    full = make_id(born=date(1990, 7, 1), seq="201")

    def found(actor=GJJ, **params) -> list[str]:
        with hub.sessions() as session:
            return [a.number for a in find(session, actor, ListFilter.parse(params), tz)]

    assert found(q=full) == [scene.red]
    wide = full.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert found(q=wide) == [scene.red]  # 全角 digits folded as Applicant.id folds them
    assert found(q=full[:-1]) == [] and found(q=full[:6]) == [] and found(q=full[-6:]) == []
    assert found(q="赵红") == [scene.red] and found(q="赵") == []
    assert found(q=scene.paused) == [scene.paused] and found(number=scene.paused) == [scene.paused]
    assert found(applicant_name="赵红") == [scene.red] and found(applicant_id=wide) == [scene.red]
    with pytest.raises(InvalidInput) as partial:
        ListFilter.parse({"applicant_id": full[:14]})  # asked by field, a partial number is an error
    assert [e.field for e in partial.value.errors] == ["applicant_id"]
    assert len(found(desk="enclave-hangzhou", channel="enclave", item="GG00401001", origin="local")) == 6
    assert found(desk="bank-xiahong") == [] and found(origin="fuding") == []
    assert found(state="supplement_requested") == [scene.paused]
    assert len(found(received_from="2026-09-28", received_to="2026-09-28")) == 2
    assert found(received_from="2026-09-30") == []
    assert found(TELLER, q=full) == []  # another desk's applicant: the scope holds in a search
    with pytest.raises(InvalidInput) as bad:
        ListFilter.parse({"desk_code": "x", "state": "nope", "received_from": "2026-02-30"})
    assert {e.field for e in bad.value.errors} == {"desk_code", "state", "received_from"}
    with pytest.raises(InvalidInput) as bad:
        ListFilter.parse({"received_from": "2026-10-01", "received_to": "2026-09-01"})
    assert [e.field for e in bad.value.errors] == ["received_from"]
    # the inbox takes the same filters
    box = worklists.inbox(hub, GJJ, filters=ListFilter.parse({"q": full}))
    assert [r["number"] for r in box.rows] == [scene.red] and box.counts["all"] == 1


def test_the_desks_home(hub: Hub, clock: Clock):
    owed = _fund("301", materials=["居民身份证", "本人及配偶名下无房证明"]).model_copy(update={"desk": "bank-xiahong"})
    review = svc.FirstReview(commitment_due=date(2026, 9, 23), checklist=["identity", "materials"])
    late = svc.create(hub, owed, TELLER, first_review=review)
    svc.transition(hub, late.number, "accept", GJJ)  # 房屋租赁合同 owed by Wed 09-23 under 容缺
    fix = svc.create(hub, elderly_card(), TELLER)
    svc.transition(hub, fix.number, "pre_review", TELLER)
    svc.transition(hub, fix.number, "request_supplement", MZJ, reason="照片不清晰，请重新提交")
    done = svc.create(hub, elderly_card().model_copy(update={"source_ref": "x2"}), TELLER)
    for action in ("pre_review", "accept"):
        svc.transition(hub, done.number, action, MZJ if action == "accept" else TELLER)
    svc.transition(hub, done.number, "start_review", MZJ, part="GG00501000")
    svc.transition(hub, done.number, "approve", MZJ, part="GG00501000")
    svc.transition(hub, done.number, "issue", MZJ)
    photo_owed = elderly_card().model_copy(update={"source_ref": "x4"})
    photo_owed.materials = photo_owed.materials[:1]  # 居民身份证 only: the photo promised for 09-25
    waiting = svc.create(
        hub, photo_owed, TELLER, first_review=review.model_copy(update={"commitment_due": date(2026, 9, 25)})
    )
    clock.set(date(2026, 9, 24))
    fresh = svc.create(hub, elderly_card().model_copy(update={"source_ref": "x3"}), TELLER)

    home = worklists.desk_home(hub, TELLER)
    assert [r["number"] for r in home.supplement] == [fix.number] and home.supplement_count == 1
    # owed under 容缺 after 受理 (a deficiency row), and promised at first review on a case the
    # county has not accepted yet: the desk chases both
    assert [(c["number"], c["material"], c["overdue"], c["days"], c["accepted"]) for c in home.commitments] == [
        (late.number, "房屋租赁合同", True, -1, True),
        (waiting.number, "近期免冠彩色证件照", False, 1, False),
    ]
    assert (home.commitments_overdue, home.commitments_soon) == (1, 1)
    assert [r["number"] for r in home.handover] == [done.number] and home.handover[0]["delivery"] == "窗口领取"
    assert [r["number"] for r in home.today] == [fresh.number] and home.today_count == 1
    svc.transition(hub, waiting.number, "accept", MZJ)  # now a deficiency row: listed once, not twice
    assert [c["number"] for c in worklists.desk_home(hub, TELLER).commitments] == [late.number, waiting.number]
    # a withdrawn case owes nothing any more: its promise is not chased (nor counted overdue),
    # as the supervisors' warnings do not chase it either
    svc.transition(hub, late.number, "withdraw", GJJ, reason="申请人撤回申请")
    after = worklists.desk_home(hub, TELLER)
    assert [c["number"] for c in after.commitments] == [waiting.number] and after.commitments_overdue == 0
    # another desk's home holds none of it
    other = worklists.desk_home(hub, HZ_CLERK)
    assert (other.supplement_count, other.handover_count, other.today_count, other.commitments) == (0, 0, 0, [])


def test_the_supervisors_open_work_by_card(hub: Hub, scene: Scene):
    rows = worklists.open_by_department(hub, SUPERVISOR)
    assert rows == [
        {"code": "ts-gjj", "name": rows[0]["name"], "red": 1, "yellow": 1, "paused": 1, "green": 1, "open": 4}
    ]
    assert rows[0]["name"] == hub.catalog.departments["ts-gjj"].name


# ---------------------------------------------------------------- plans: found by index, never a scan


def _plan(hub: Hub, stmt) -> str:
    sql = str(stmt.compile(dialect=hub.engine.dialect, compile_kwargs={"literal_binds": True}))
    with hub.engine.connect() as conn:
        if hub.engine.dialect.name == "sqlite":
            return " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: ask whether an index could serve
        return " | ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


def test_search_and_a_desks_day_are_found_by_index(hub: Hub):
    from sqlalchemy import select

    from hub.applications.search import filtered
    from hub.storage.tables import Application, Deficiency

    tz = hub.settings.tz
    search = filtered(SUPERVISOR, ListFilter(q=make_id(seq="201")), tz).with_only_columns(Application.id)
    plan = _plan(hub, search)
    for index in ("ix_applications_applicant_name", "ix_applications_applicant_id", "number"):
        assert index in plan, plan
    assert "SCAN applications" not in plan and "Seq Scan" not in plan, plan
    day = (
        select(Application.id)
        .where(Application.desk_code == "bank-xiahong")
        .where(Application.created_at >= "2026-09-28 16:00:00", Application.created_at < "2026-09-29 16:00:00")
    )
    owed = select(Deficiency.id).where(Deficiency.closed_at.is_(None), Deficiency.due_date <= date(2026, 10, 2))
    plan = _plan(hub, owed)
    assert "ix_deficiencies_open_due" in plan, plan
    plan = _plan(hub, day)
    # on an empty table PostgreSQL may take either index on the received time; never a scan
    assert "ix_applications_desk_created" in plan or "ix_applications_created_at" in plan, plan
    assert "SCAN applications" not in plan and "Seq Scan" not in plan, plan


# ---------------------------------------------------------------- the pages (server-rendered)


def test_the_pages_show_the_lists_and_refuse_bad_filters_by_name(hub: Hub, scene: Scene):
    import re

    from fastapi.testclient import TestClient

    from hub.users import add_user
    from hub.web.app import create_app

    people = {
        "gjj": dict(role=Role.officer, department="ts-gjj"),
        "hz": dict(role=Role.enclave_clerk, desk="enclave-hangzhou"),
        "sup": dict(role=Role.supervisor),
    }
    for name, kw in people.items():
        add_user(hub, name, "correct-horse-battery", display_name=name, **kw)
    html = {"accept": "text/html"}
    latin = re.compile(r">[^<]*[A-Za-z]{3,}[^<]*<")  # English words in a Chinese page's text

    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:

        def as_(who: str) -> None:
            web.cookies.clear()
            token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
            form = {"username": who, "password": "correct-horse-battery", "csrf_token": token}
            assert web.post("/login", data=form, follow_redirects=False).status_code == 303

        as_("gjj")
        page = web.get("/inbox", params={"tab": "in_review"}, headers=html)
        assert page.status_code == 200 and 'aria-current="page" class="current">审查中' in page.text
        assert "超期 2 个工作日" in page.text and "剩 2 个工作日" in page.text and "剩 3 个工作日" in page.text
        assert not latin.search(page.text.split("<main>")[1]), latin.search(page.text.split("<main>")[1])
        full = make_id(born=date(1990, 7, 1), seq="201")
        found = web.get("/inbox", params={"q": full}, headers=html).text
        rows = found.split("<tbody>")[1].split("</tbody>")[0]
        assert scene.red in rows and scene.green not in rows and full not in rows, rows  # masked in the list
        assert scene.red not in web.get("/inbox", params={"q": full[:14]}, headers=html).text
        bad = web.get("/inbox", params={"channel": "fax", "received_from": "2026-02-30"}, headers=html)
        assert bad.status_code == 422
        assert "<b>渠道</b>：取值无效" in bad.text and "<b>收件日期（起）</b>：日期格式应为 YYYY-MM-DD" in bad.text
        bad = web.get("/inbox", params={"tab": "late", "sort": "name"}, headers=html)
        assert (
            bad.status_code == 422 and "<b>办理阶段</b>：取值无效" in bad.text and "<b>排序</b>：取值无效" in bad.text
        )
        listed = web.get("/applications", params={"state": "supplement_requested"}, headers=html).text
        assert scene.paused in listed and scene.red not in listed
        refused = web.get("/applications", params={"desk_code": "x"}, headers=html)
        assert refused.status_code == 422 and "<b>查询参数 desk_code</b>：不支持的查询参数" in refused.text
        assert scene.red not in refused.text and "查询条件有误" in refused.text  # nothing listed, not everything

        as_("hz")
        home = web.get("/", headers=html)
        assert home.status_code == 200 and 'href="/intake"' in home.text
        assert '<b data-count="supplement">1</b>' in home.text and '<b data-count="today">2</b>' in home.text
        assert not latin.search(home.text.split("<main>")[1])

        as_("sup")
        home = web.get("/", headers=html).text
        assert 'href="/dashboard"' in home and 'data-department="ts-gjj"' in home
        assert '<td class="red"><span class="card-red">1</span></td>' in home


def test_the_sql_card_is_the_signal_of_every_application(hub: Hub, scene: Scene):
    """Including an instant item (promised in 0 working days, due the day it is accepted): never
    yellow, as `signal` has it — the SQL reads that rule from the catalogue, not the parts."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from hub.storage.tables import Application
    from hub.timelimits import signal

    instant = svc.create(hub, elderly_card(), TELLER)
    svc.transition(hub, instant.number, "pre_review", TELLER)
    svc.transition(hub, instant.number, "accept", MZJ)
    rule = worklists.CardRule.of(hub, TODAY)
    assert "GG00501000" in rule.short[0] and "GG00401001" not in {c for cs in rule.short.values() for c in cs}
    with hub.sessions() as session:
        stmt = select(Application, rule.card(), rule.urgency()).options(selectinload(Application.parts))
        seen = {}
        for app, card, rank in session.execute(stmt):
            sig = signal(app, TODAY, hub.calendar, hub.settings.yellow_days)
            assert card == (sig.value if sig else None) and rank == URGENCY[card], app.number
            seen[app.number] = card
    assert seen[instant.number] == "green" and seen[scene.yellow] == "yellow" and len(seen) == 7
