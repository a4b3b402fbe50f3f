"""一件事: one application, one part per item and department; the whole is decided when every part
is, and a denied part stays visible."""

import pytest

from hub import applications as svc
from hub.errors import InvalidInput
from hub.views import application_detail
from tests.samples import RETIRE, SH_CLERK, officer, retirement

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


def test_each_department_acts_only_on_its_own_part(hub):
    app = svc.create(hub, retirement(), SH_CLERK)
    svc.transition(hub, app.number, "accept", RSJ)
    with pytest.raises(InvalidInput, match="part"):
        svc.transition(hub, app.number, "start_review", officer("ts-rsj").model_copy(update={"role": "system"}))
    app = svc.transition(hub, app.number, "start_review", GJJ)
    assert {p.item_code: p.state for p in app.parts}["GG00401002"] == "in_review"
    assert {p.item_code: p.state for p in app.parts}["GG00104001"] == "pending"


def test_bundle_form_is_merged_and_validated(hub):
    bad = retirement()
    bad.form["payee_bank_account"] = "12AB"
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, bad, SH_CLERK)
    assert [e.field for e in exc.value.errors] == ["form.payee_bank_account"]
