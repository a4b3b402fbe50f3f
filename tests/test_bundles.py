"""一件事: one application, one part per item and department; the whole is decided when every part
is, and a denied part stays visible."""

import pytest

from hub import applications as svc
from hub.errors import Forbidden, InvalidInput
from hub.presenters import application_detail
from tests.support.samples import RETIRE, SH_CLERK, officer, retirement

RSJ, YBJ, GJJ = officer("ts-rsj"), officer("ts-ybj"), officer("ts-gjj")


def test_bundle_fans_out_and_fans_in_with_a_denied_part(hub):
    app = svc.create(hub, retirement(), SH_CLERK)
    assert app.kind == "bundle" and app.subject_code == RETIRE
    assert [(p.item_code, p.department_code) for p in app.parts] == [
        ("GG00104001", "ts-rsj"),
        ("GG00303000", "ts-ybj"),
        ("GG00401002", "ts-gjj"),
    ]
    app = svc.transition(hub, app.number, "accept", RSJ)
    assert app.due_date == max(p.due_date for p in app.parts)  # the slowest part sets the promise
    for who in (RSJ, YBJ, GJJ):
        app = svc.transition(hub, app.number, "start_review", who)
    assert app.state == "in_review"
    app = svc.transition(hub, app.number, "approve", RSJ)
    app = svc.transition(hub, app.number, "deny", GJJ, reason="公积金账户存在未结清贷款")
    assert app.state == "in_review"  # one part still open
    app = svc.transition(hub, app.number, "approve", YBJ)
    assert app.state == "decided"
    decide = app.events[-1]
    assert decide.action == "decide" and decide.data["outcome"] == "partial"
    view = application_detail(hub, app)
    assert view["outcome"] == "partial"
    assert {p["item_code"]: p["state"] for p in view["parts"]}["GG00401002"] == "denied"
    deny = next(e for e in view["events"] if e["action"] == "deny")
    assert deny["part"] == "GG00401002" and deny["reason"] == "公积金账户存在未结清贷款"
    app = svc.transition(hub, app.number, "issue", RSJ)
    assert app.state == "issued"


def test_a_part_must_be_named_when_the_actor_could_mean_several(hub):
    app = svc.create(hub, retirement(), SH_CLERK)
    svc.transition(hub, app.number, "accept", RSJ)
    with pytest.raises(InvalidInput, match="part"):
        svc.transition(hub, app.number, "start_review", svc.SYSTEM)  # system is in no department
    app = svc.transition(hub, app.number, "start_review", svc.SYSTEM, part="GG00401002")
    assert {p.item_code: p.state for p in app.parts} == {
        "GG00104001": "pending",
        "GG00303000": "pending",
        "GG00401002": "in_review",
    }


def test_bundle_form_is_merged_and_validated(hub):
    bad = retirement()
    bad.form["payee_bank_account"] = "12AB"
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, bad, SH_CLERK)
    assert [e.field for e in exc.value.errors] == ["form.payee_bank_account"]


def test_only_the_lead_department_acts_on_the_whole_bundle(hub):
    app = svc.create(hub, retirement(), SH_CLERK)
    with pytest.raises(Forbidden, match="lead department"):
        svc.transition(hub, app.number, "accept", GJJ)  # 公积金 has a part, but 人社 leads
    app = svc.transition(hub, app.number, "accept", RSJ)
    with pytest.raises(Forbidden, match="not your department's part"):
        svc.transition(hub, app.number, "start_review", GJJ, part="GG00104001")
    svc.transition(hub, app.number, "start_review", GJJ)
    # any department reviewing its part may ask for 补正
    assert (
        svc.transition(hub, app.number, "request_supplement", GJJ, reason="缺销户申请书签字").state
        == "supplement_requested"
    )


def test_decided_parts_keep_their_due_date_when_the_clock_moves(hub, clock):
    app = svc.create(hub, retirement(), SH_CLERK)
    app = svc.transition(hub, app.number, "accept", RSJ)
    for who in (RSJ, GJJ):
        svc.transition(hub, app.number, "start_review", who)
    app = svc.transition(hub, app.number, "approve", GJJ)
    decided_due = {p.item_code: p.due_date for p in app.parts}["GG00401002"]
    svc.transition(hub, app.number, "request_supplement", RSJ, reason="缺档案")
    clock.advance(days=7)
    app = svc.transition(hub, app.number, "resume", SH_CLERK)
    dues = {p.item_code: p.due_date for p in app.parts}
    assert dues["GG00401002"] == decided_due and dues["GG00104001"] > decided_due
