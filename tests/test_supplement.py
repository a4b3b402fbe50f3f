"""补正 as a loop, in the core and over the REST API: the request names fields and materials (each
with a note), where and by when (the item's 补正 period); the desk corrects exactly those fields by
the catalogue's form rules, each change an event with old and new; it hands the case back only
when everything asked is done; the clock stands meanwhile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from hub import applications as svc
from hub.catalog.models import Item
from hub.context import Hub
from hub.errors import IllegalTransition, InvalidInput
from hub.lifecycle import Role, part_state_zh
from hub.tokens import create_token
from hub.web.app import create_app
from hub.web.decision import timeline
from tests.conftest import JPEG
from tests.support.samples import TELLER, elderly_card, officer

MZJ = officer("ts-mzj")
PHOTO = "近期免冠彩色证件照"
ASK = svc.SupplementAsk(
    fields=[svc.Wanted(name="contact_phone", note="电话无法接通，请核对。")],
    materials=[svc.Wanted(name=PHOTO, note="须近期免冠彩色照片")],
)


def _accepted(hub: Hub) -> svc.Application:
    app = svc.create(hub, elderly_card(), TELLER)
    return svc.transition(hub, app.number, "accept", MZJ)


def test_the_request_names_what_where_and_by_when(hub: Hub, clock) -> None:
    clock.set(date(2026, 9, 21))  # a Monday
    app = _accepted(hub)
    app = svc.transition(hub, app.number, "request_supplement", MZJ, reason="照片、电话有误，", ask=ASK)
    ask = app.events[-1].data["ask"]
    assert ask["fields"] == [{"name": "contact_phone", "label": "联系电话", "note": "电话无法接通，请核对。"}]
    assert ask["materials"] == [{"name": PHOTO, "note": "须近期免冠彩色照片"}]
    assert ask["due_date"] == "2026-09-29"  # the item's supplement_days: 5 working days (25th: 中秋)
    assert ask["place"].startswith("下洪社区农商银行网点")  # the desk that took it
    assert app.events[-1].reason == "照片、电话有误，"  # full-width punctuation kept as written
    left = svc.supplement_request(app)
    assert left["clock_stopped_since"] == "2026-09-21"
    assert not left["complete"] and left["due_date"] == "2026-09-29"


def test_a_request_naming_an_unknown_field_changes_nothing(hub: Hub) -> None:
    app = _accepted(hub)
    bad = svc.SupplementAsk(fields=[svc.Wanted(name="shoe_size")], materials=[svc.Wanted(name="户口本")])
    with pytest.raises(InvalidInput) as exc:
        svc.transition(hub, app.number, "request_supplement", MZJ, reason="x", ask=bad)
    assert [e.field for e in exc.value.errors] == ["supplement.fields[0]", "supplement.materials[0]"]
    after = svc.read(hub, app.number, MZJ)
    assert after.state == "accepted" and after.paused_since is None and len(after.events) == len(app.events)


def test_the_desk_corrects_the_named_fields_and_brings_the_materials(hub: Hub, clock) -> None:
    clock.set(date(2026, 9, 21))
    app = _accepted(hub)
    svc.transition(hub, app.number, "request_supplement", MZJ, reason="有误", ask=ASK)
    with pytest.raises(IllegalTransition):  # no correction outside 补正 of another application's
        svc.correct_fields(hub, svc.create(hub, elderly_card(), TELLER).number, {"contact_phone": "1"}, TELLER)
    # the same rule as at intake, naming the field; nothing written
    with pytest.raises(InvalidInput) as exc:
        svc.correct_fields(hub, app.number, {"contact_phone": "12345"}, TELLER)
    assert [e.field for e in exc.value.errors] == ["form.contact_phone"]
    # a field the request does not name is not the desk's to change
    with pytest.raises(InvalidInput) as exc:
        svc.correct_fields(hub, app.number, {"emergency_contact_name": "林阿公"}, TELLER)
    assert exc.value.errors[0].field == "form.emergency_contact_name"
    assert svc.read(hub, app.number, TELLER).form["contact_phone"] == "13905770001"
    # 全角 digits folded the same as at intake
    app = svc.correct_fields(hub, app.number, {"contact_phone": "１３９０５７７０００２"}, TELLER)
    e = app.events[-1]
    assert (e.action, e.data, e.actor) == (
        "correct",
        {"field": "contact_phone", "old": "13905770001", "new": "13905770002"},
        TELLER.name,
    )
    assert app.form["contact_phone"] == "13905770002"
    # handing back before the photo is brought is refused, saying what is left
    with pytest.raises(InvalidInput, match=PHOTO):
        svc.transition(hub, app.number, "resume", TELLER)
    clock.set(date(2026, 9, 23))
    svc.attach(hub, app.number, [svc.MaterialIn(name=PHOTO, filename="new.jpg", content=JPEG + b"new")], TELLER)
    left = svc.supplement_request(svc.read(hub, app.number, TELLER))
    assert left["complete"] and [f["done"] for f in left["fields"] + left["materials"]] == [True, True]
    app = svc.transition(hub, app.number, "resume", TELLER)
    assert app.state == "accepted" and app.paused_since is None and app.paused_workdays == 2
    assert svc.supplement_request(app) is None


def test_phrases_are_checked_in_the_catalogue(hub: Hub) -> None:
    item = hub.catalog.subject("GG00501000")
    assert "申请人未满60周岁，不符合申领条件。" in item.phrases["reject"]
    data = item.model_dump() | {"phrases": {"approve": ["好"]}}
    with pytest.raises(ValueError, match="phrases"):
        Item.model_validate(data)


def test_parts_agree_with_the_case_and_steps_are_not_doubled() -> None:
    assert part_state_zh("pre_reviewed", "pending") == "待受理"
    assert part_state_zh("rejected", "pending") == "不予受理"
    assert part_state_zh("supplement_requested", "in_review") == "待补正"
    assert part_state_zh("in_review", "pending") == "待审查"
    assert part_state_zh("decided", "approved") == "准予"
    at = "2026-09-21T02:00:00Z"
    steps = timeline(
        {
            "events": [
                {"action": "start_review", "actor": "林晓", "at": at},
                {"action": "start", "actor": "hub", "at": at},
                {"action": "approve", "actor": "林晓", "at": "2026-09-21T03:00:00Z"},
            ]
        }
    )
    assert [(s["action"], [f["action"] for f in s["follows"]]) for s in steps] == [
        ("start_review", ["start"]),
        ("approve", []),
    ]


# ---------------------------------------------------------------- REST API


@pytest.fixture
def api(hub: Hub) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    heads = {}
    for who, role, desk, dept in [("t", Role.teller, "bank-xiahong", None), ("o", Role.officer, None, "ts-mzj")]:
        secret, _ = create_token(
            hub,
            who,
            role=role,
            desk=desk,
            department=dept,
            scopes=["applications:read", "applications:write"],
            created_by="test",
        )
        heads[who] = {"authorization": f"Bearer {secret}"}
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client, heads


def test_the_loop_over_the_api(hub: Hub, api) -> None:
    web, h = api
    app = _accepted(hub)
    url = f"/api/v1/applications/{app.number}"
    body = {
        "action": "request_supplement",
        "reason": "电话有误",
        "supplement": {"fields": [{"name": "contact_phone", "note": "请核对"}], "due_date": "2026-10-09"},
    }
    r = web.post(f"{url}/actions", json=body, headers=h["o"])
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "supplement_requested"
    seen = web.get(url, headers=h["t"]).json()["supplement"]
    assert seen["due_date"] == "2026-10-09" and seen["fields"][0]["label"] == "联系电话"
    # the same rule as the page and the core: the field is named, nothing written
    r = web.post(f"{url}/corrections", json={"fields": {"contact_phone": "abc"}}, headers=h["t"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "form.contact_phone"
    r = web.post(f"{url}/corrections", json={"fields": {}}, headers=h["t"])
    assert r.status_code == 422
    r = web.post(f"{url}/corrections", json={"fields": {"contact_phone": "13905770009"}}, headers=h["t"])
    assert r.status_code == 200, r.text
    assert r.json()["supplement"]["complete"] is True
    assert web.post(f"{url}/actions", json={"action": "resume"}, headers=h["t"]).json()["state"] == "accepted"
    # no 补正 open: a correction is a conflict; a supplement list on another action is refused
    assert (
        web.post(f"{url}/corrections", json={"fields": {"contact_phone": "13905770008"}}, headers=h["t"]).status_code
        == 409
    )
    r = web.post(f"{url}/actions", json={"action": "start_review", "supplement": {}}, headers=h["o"])
    assert r.status_code == 422
    events = [e for e in web.get(url, headers=h["o"]).json()["events"] if e["action"] == "correct"]
    assert [(e["data"]["old"], e["data"]["new"]) for e in events] == [("13905770001", "13905770009")]


def test_a_corrected_id_number_is_masked_for_those_who_may_not_see_it(hub: Hub) -> None:
    from hub.presenters import application_detail
    from tests.conftest import make_id

    app = _accepted(hub)
    ask = svc.SupplementAsk(fields=[svc.Wanted(name="agent_id_number", note="受托人身份号码有误")])
    svc.transition(hub, app.number, "request_supplement", MZJ, reason="有误", ask=ask)
    new_id = make_id(seq="077")
    app = svc.correct_fields(hub, app.number, {"agent_id_number": new_id}, TELLER)
    shown = [e for e in application_detail(hub, app)["events"] if e["action"] == "correct"]
    assert shown[0]["data"]["new"] != new_id and shown[0]["data"]["new"][-4:] == new_id[-4:]
    full = [e for e in application_detail(hub, app, reveal_id=True)["events"] if e["action"] == "correct"]
    assert full[0]["data"] == {"field": "agent_id_number", "old": None, "new": new_id}


def test_the_same_rules_on_the_command_line(hub: Hub, home, db_url: str) -> None:
    from typer.testing import CliRunner

    from hub.cli import app as cli

    def run(*args: str):
        return CliRunner().invoke(cli, ["--home", str(home), "apps", *args], env={"HUB_DATABASE_URL": db_url})

    number = svc.create(hub, elderly_card(), TELLER).number
    teller = ["--role", "teller", "--desk", "bank-xiahong"]
    asked = run(
        "transition", number, "request_supplement", "--reason", "电话有误，请核对", "--ask-field",
        "contact_phone=打不通", "--supplement-due", "2099-01-01", "--role", "officer", "--department", "ts-mzj",
    )  # fmt: skip
    assert asked.exit_code == 0, asked.output
    assert svc.supplement_request(svc.read(hub, number, TELLER))["fields"][0]["note"] == "打不通"
    bad = run("correct", number, "-f", "contact_phone=12345", *teller)
    assert isinstance(bad.exception, InvalidInput) and bad.exception.errors[0].field == "form.contact_phone"
    good = run("correct", number, "-f", "contact_phone=１３９０５７７０００３", "--json", *teller)
    assert good.exit_code == 0, good.output
    shown = json.loads(good.stdout)
    assert shown["form"]["contact_phone"] == "13905770003"
    assert [e["data"]["new"] for e in shown["events"] if e["action"] == "correct"] == ["13905770003"]


def test_the_page_in_english_and_the_flash_only_for_known_flags(hub: Hub) -> None:
    """?lang=en: the decision page with a 补正 open renders in English; `?done=` shows only the
    hub's own messages, never text from the URL."""
    import re

    from hub.users import add_user

    add_user(hub, "linxiao", "minzheng-审批-2026", display_name="林晓", role=Role.officer, department="ts-mzj")
    app = _accepted(hub)
    svc.transition(hub, app.number, "request_supplement", MZJ, reason="有误", ask=ASK)
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
        web.post("/login", data={"username": "linxiao", "password": "minzheng-审批-2026", "csrf_token": token})
        page = web.get(f"/applications/{app.number}?lang=en&done=request_supplement", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert "Supplement requested" in page.text and "Done: request_supplement" in page.text
        assert "Clock stopped" in page.text and "Request a supplement" not in page.text  # already in 补正
        other = web.get(f"/applications/{app.number}?lang=zh&done=<b>hi</b>", headers={"accept": "text/html"})
        assert "已办理" not in other.text and "<b>hi</b>" not in other.text
