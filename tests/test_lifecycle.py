"""The application life cycle: the happy path from a bank outlet, refused transitions, who may
act, scoping, idempotent intake, and bad input that writes nothing."""

from datetime import date

import pytest
from sqlalchemy import func, select

from hub import applications as svc
from hub import supervision
from hub.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from hub.ids import mask_id
from hub.lifecycle import Role
from hub.presenters import application_detail
from hub.storage.tables import Application, Blob, Event
from tests.conftest import make_id
from tests.support.samples import ELDERLY_CARD, HZ_CLERK, TELLER, elderly_card, fund_rent, officer

MZJ = officer("ts-mzj")


def _counts(hub) -> tuple[int, int, int]:
    with hub.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Application)),
            s.scalar(select(func.count()).select_from(Event)),
            s.scalar(select(func.count()).select_from(Blob)),
        )


def test_bank_outlet_application_walks_to_delivered(hub):
    app = svc.create(hub, elderly_card(), TELLER)
    assert app.state == "received"
    assert app.number.startswith("330329-20260921-")
    assert (app.channel, app.desk_code, app.collecting_division, app.deciding_division) == (
        "bank",
        "bank-xiahong",
        "330329",
        "330329",
    )
    for actor, action in [
        (TELLER, "pre_review"),
        (MZJ, "accept"),
        (MZJ, "start_review"),
        (MZJ, "approve"),
        (MZJ, "issue"),
        (TELLER, "deliver"),
    ]:
        app = svc.transition(hub, app.number, action, actor)
    assert app.state == "delivered"
    assert [e.action for e in app.events] == [
        "create",
        "submit",
        "pre_review",
        "accept",
        "start_review",
        "start",
        "approve",
        "licence_issued",  # 老年人优待证: an electronic licence (hub.applications.licences)
        "decide",
        "issue",
        "deliver",
    ]
    decide = next(e for e in app.events if e.action == "decide")
    assert decide.data["outcome"] == "approved" and decide.data["on_time"] is True
    accept = next(e for e in app.events if e.action == "accept")
    assert (accept.actor, accept.role, accept.desk) == (MZJ.name, "officer", "ts-mzj")
    assert app.accepted_on == date(2026, 9, 21) and app.due_date == date(2026, 9, 21)  # instant item


def test_enclave_desk_records_both_divisions(hub):
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    assert (app.channel, app.collecting_division, app.deciding_division) == ("enclave", "330105", "330329")


@pytest.mark.parametrize(
    ("steps", "action", "needle"),
    [
        ([], "deliver", "cannot deliver from received"),
        ([], "issue", "cannot issue from received"),
        (["pre_review"], "pre_review", "cannot pre_review from pre_reviewed"),
        ([], "approve", "parts move only while the application is accepted"),
        (["accept"], "approve", "cannot approve a part in state pending"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(hub, steps, action, needle):
    app = svc.create(hub, elderly_card(), TELLER)
    for step in steps:
        svc.transition(hub, app.number, step, TELLER if step == "pre_review" else MZJ)
    before = svc.read(hub, app.number, MZJ)
    with pytest.raises(IllegalTransition, match=needle):
        svc.transition(hub, app.number, action, TELLER if action in ("deliver", "pre_review") else MZJ)
    after = svc.read(hub, app.number, MZJ)
    assert (after.state, len(after.events)) == (before.state, len(before.events))


def test_roles_and_departments_are_enforced(hub):
    app = svc.create(hub, elderly_card(), TELLER)
    with pytest.raises(Forbidden, match="teller"):
        svc.transition(hub, app.number, "accept", TELLER)  # a bank teller cannot accept for the county
    with pytest.raises(NotFound):
        svc.transition(hub, app.number, "accept", officer("ts-gaj"))  # not their department: not even visible
    with pytest.raises(InvalidInput, match="reason"):
        svc.transition(hub, app.number, "reject", MZJ)  # 不予受理 needs a reason
    with pytest.raises(InvalidInput, match="unknown action"):
        svc.transition(hub, app.number, "approve_everything", MZJ)
    app = svc.transition(hub, app.number, "reject", MZJ, reason="申请人未满60周岁")
    assert app.state == "rejected" and app.events[-1].reason == "申请人未满60周岁"


def test_desks_only_see_their_own_applications(hub):
    app = svc.create(hub, elderly_card(), TELLER)
    other_teller = svc.Actor(name="柜员", role=Role.teller, desk="bank-baizhang")
    with pytest.raises(NotFound):
        svc.read(hub, app.number, other_teller)
    with hub.sessions() as s:
        assert svc.list_applications(s, other_teller) == []
        assert [a.number for a in svc.list_applications(s, TELLER)] == [app.number]
        assert [a.number for a in svc.list_applications(s, MZJ)] == [app.number]
        assert svc.list_applications(s, officer("ts-gjj")) == []
    with pytest.raises(Forbidden):
        svc.create(hub, elderly_card(desk="bank-baizhang"), TELLER)  # a teller files only at their own desk
    baizhang = svc.Actor(name="柜员", role=Role.teller, desk="bank-baizhang")
    svc.create(hub, elderly_card(desk="bank-baizhang", source_ref="bz-1"), baizhang)
    with pytest.raises(Forbidden):  # nor can probe another desk's idempotency keys
        svc.create(hub, elderly_card(desk="bank-baizhang", source_ref="bz-1"), TELLER)


def test_same_source_ref_creates_one_application(hub):
    first = svc.create(hub, elderly_card(source_ref="batch-7:line-3"), TELLER)
    again = svc.create(hub, elderly_card(source_ref="batch-7:line-3"), TELLER)
    assert again.number == first.number
    assert _counts(hub)[0] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "XX99999999"}, "subject"),
        ({"desk": "enclave-hangzhou"}, "subject"),  # 老年人优待证 is not delegated to enclave windows
        ({"applicant": svc.Applicant(name="林阿婆", id=make_id()[:-1] + "0")}, "applicant.id"),
        ({"form": {"delivery_method": "窗口领取", "contact_phone": "12345"}}, "form.contact_phone"),
        ({"form": {"delivery_method": "无人机", "contact_phone": "13905770001"}}, "form.delivery_method"),
        ({"form": {"contact_phone": "13905770001", "shoe_size": "42"}}, "form.shoe_size"),
        (
            {"materials": [svc.MaterialIn(name="居民身份证", filename="id.exe", content=b"MZ\x90\x00")]},
            "materials[0] (id.exe)",
        ),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(hub, change, field):
    new = elderly_card().model_copy(update=change)
    actor = HZ_CLERK if change.get("desk") == "enclave-hangzhou" else TELLER
    before = _counts(hub)
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, new, actor)
    assert field in [e.field for e in exc.value.errors], exc.value.errors
    assert _counts(hub) == before


def test_material_over_the_size_limit_is_refused(hub):
    hub.store.max_bytes = 1024
    big = svc.MaterialIn(name="居民身份证", filename="scan.pdf", content=b"%PDF-1.4\n" + b"0" * 2048)
    before = _counts(hub)
    with pytest.raises(InvalidInput, match="limit") as exc:
        svc.create(hub, elderly_card().model_copy(update={"materials": [big]}), TELLER)
    assert exc.value.errors[0].field == "materials[0] (scan.pdf)"
    assert _counts(hub) == before
    assert not any(hub.store.root.rglob("*")) or all(p.is_dir() for p in hub.store.root.rglob("*"))


def test_materials_are_content_addressed(hub):
    a = svc.create(hub, elderly_card(), TELLER)
    b = svc.create(hub, elderly_card(), TELLER)
    assert {m.sha256 for m in a.materials} == {m.sha256 for m in b.materials}
    assert _counts(hub)[2] == 3  # three distinct files stored once
    m = a.materials[0]
    assert hub.store.path_of(m.sha256).read_bytes().startswith(b"%PDF") and m.blob.media_type == "application/pdf"


def test_withdraw_closes_open_parts(hub):
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    app = svc.transition(hub, app.number, "withdraw", HZ_CLERK, reason="申请人已在杭州办理")
    assert app.state == "withdrawn" and [p.state for p in app.parts] == ["withdrawn"]
    with pytest.raises(IllegalTransition):
        svc.transition(hub, app.number, "accept", officer("ts-gjj"))


def test_draft_then_submit(hub):
    app = svc.create(hub, elderly_card(draft=True), TELLER)
    assert app.state == "draft"
    app = svc.transition(hub, app.number, "submit", TELLER)
    assert app.state == "received"


def test_application_numbers_count_per_day(hub, clock):
    numbers = [svc.create(hub, elderly_card(), TELLER).number for _ in range(3)]
    assert numbers == [f"330329-20260921-{i:05d}" for i in (1, 2, 3)]
    clock.advance(days=1)
    assert svc.create(hub, elderly_card(), TELLER).number == "330329-20260922-00001"
    assert ELDERLY_CARD  # the sample item code is what the numbers above were filed under


def test_only_receiving_roles_create_and_applicants_only_for_themselves(hub):
    before = _counts(hub)
    for actor in (svc.Actor(name="督查", role=Role.supervisor), svc.Actor(name="运维", role=Role.ops), MZJ):
        with pytest.raises(Forbidden):
            svc.create(hub, elderly_card(), actor)
    stranger = svc.Actor(name="某人", role=Role.applicant, applicant_id=make_id(born=date(1970, 1, 1)))
    with pytest.raises(Forbidden, match="themselves"):
        svc.create(hub, elderly_card(), stranger)
    assert _counts(hub) == before


def test_source_ref_reused_for_a_different_application_is_refused(hub):
    svc.create(hub, elderly_card(source_ref="batch-9:1"), TELLER)
    other = elderly_card(source_ref="batch-9:1").model_copy(
        update={"applicant": svc.Applicant(name="另一人", id=make_id(born=date(1948, 5, 5)))}
    )
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, other, TELLER)
    assert exc.value.errors[0].field == "source_ref"
    assert _counts(hub)[0] == 1


def test_supplement_during_review_returns_to_review_and_parts_wait(hub, clock):
    gjj = officer("ts-gjj")
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    svc.transition(hub, app.number, "accept", gjj)
    svc.transition(hub, app.number, "start_review", gjj)
    app = svc.transition(hub, app.number, "request_supplement", gjj, reason="缺租赁备案")
    with pytest.raises(IllegalTransition, match="parts move only while"):
        svc.transition(hub, app.number, "approve", gjj)  # no decision while the applicant owes a supplement
    clock.advance(days=1)
    app = svc.transition(hub, app.number, "resume", HZ_CLERK)
    assert app.state == "in_review" and app.parts[0].state == "in_review"
    assert svc.transition(hub, app.number, "approve", gjj).state == "decided"


def test_withdraw_while_paused_stops_the_clock(hub):
    gjj = officer("ts-gjj")
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    svc.transition(hub, app.number, "accept", gjj)
    svc.transition(hub, app.number, "request_supplement", gjj, reason="材料不清")
    app = svc.transition(hub, app.number, "withdraw", HZ_CLERK, reason="申请人撤回")
    assert app.paused_since is None and supervision.warnings(hub, gjj) == []


def test_reason_too_long_and_bad_filename_are_refused(hub):
    app = svc.create(hub, elderly_card(), TELLER)
    with pytest.raises(InvalidInput, match="at most 1000"):
        svc.transition(hub, app.number, "reject", MZJ, reason="长" * 1001)
    with pytest.raises(ValueError, match="filename"):
        svc.MaterialIn(name="居民身份证", filename="x" * 256, content=b"%PDF-1.4")


def test_id_number_form_fields_are_masked_in_the_detail_view(hub):
    agent_id = make_id(born=date(1980, 6, 6), seq="077")
    new = elderly_card()
    new.form["agent_id_number"] = agent_id
    app = svc.create(hub, new, TELLER)
    assert application_detail(hub, app)["form"]["agent_id_number"] == mask_id(agent_id)
    assert application_detail(hub, app, reveal_id=True)["form"]["agent_id_number"] == agent_id
    assert svc.may_reveal_ids(MZJ) and not svc.may_reveal_ids(svc.Actor(name="督查", role=Role.supervisor))


def test_the_inbox_page_holds_the_most_urgent_cases_however_many_there_are(hub):
    """The order is the database's, before the page is cut: cases waiting for 补正 (the clock
    stopped) come after one waiting to be accepted, even when they are older and outnumber the
    page (issue 21: a LIMIT without an order showed old cases and hid urgent ones)."""
    from hub.worklists import inbox_rows as inbox

    mzj = officer("ts-mzj")
    for seq in ("141", "142", "143"):
        app = svc.create(
            hub,
            elderly_card().model_copy(update={"applicant": svc.Applicant(name="林阿婆", id=make_id(seq=seq))}),
            TELLER,
        )
        svc.transition(hub, app.number, "pre_review", TELLER)
        svc.transition(hub, app.number, "accept", mzj)
        svc.transition(hub, app.number, "request_supplement", mzj, reason="照片不清晰，请重新提交")
    waiting = svc.create(
        hub,
        elderly_card().model_copy(update={"applicant": svc.Applicant(name="林阿婆", id=make_id(seq="144"))}),
        TELLER,
    )
    svc.transition(hub, waiting.number, "pre_review", TELLER)
    (first,) = inbox(hub, mzj, limit=1)  # a page of one: the database must choose it
    assert first["number"] == waiting.number
    assert inbox(hub, mzj, limit=4)[0]["number"] == waiting.number
