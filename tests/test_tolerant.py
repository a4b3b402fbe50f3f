"""容缺受理: accept with deferrable materials missing against a commitment; supplying them closes
it; an overdue commitment is a warning; a missing required material blocks acceptance."""

from datetime import date

import pytest
from sqlalchemy import func, select

from hub import applications as svc
from hub import supervision
from hub.errors import InvalidInput
from hub.storage.tables import Application
from tests.conftest import PDF
from tests.support.samples import HZ_CLERK, fund_rent, officer

GJJ = officer("ts-gjj")
CORE = ["居民身份证", "住房公积金账户信息", "本人及配偶名下无房证明"]  # not deferrable


def test_accept_with_deferrable_materials_missing_needs_a_commitment(hub, clock):
    clock.set(date(2026, 11, 2))
    app = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK)
    with pytest.raises(InvalidInput, match="commitment") as exc:
        svc.transition(hub, app.number, "accept", GJJ)
    assert exc.value.errors[0].field == "commitment_due"
    assert "房屋租赁合同" in exc.value.errors[0].reason.zh
    with pytest.raises(InvalidInput, match="past"):
        svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 10, 30))
    app = svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 11, 9))
    assert app.state == "accepted"
    # 结婚证 is asked for only when married (required: false), so it is not owed
    assert [d.material for d in app.deficiencies] == ["房屋租赁合同"]
    assert app.events[-1].data["tolerant"] is True


def test_required_material_missing_blocks_acceptance(hub):
    app = svc.create(hub, fund_rent(materials=["居民身份证", "房屋租赁合同"]), HZ_CLERK)
    with pytest.raises(InvalidInput, match="required materials missing") as exc:
        svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 12, 1))
    assert "本人及配偶名下无房证明" in exc.value.errors[0].reason.zh
    # 免提交: the account record the 公积金 centre looks up itself is never asked of the applicant
    assert "住房公积金账户信息" not in exc.value.errors[0].reason.zh
    assert svc.read(hub, app.number, GJJ).state == "received"


def test_supplying_the_material_closes_the_commitment(hub, clock):
    clock.set(date(2026, 11, 2))
    app = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK)
    app = svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 11, 9))
    app = svc.attach(
        hub, app.number, [svc.MaterialIn(name="房屋租赁合同", filename="lease.pdf", content=PDF + b"lease")], HZ_CLERK
    )
    assert [(d.material, d.closed_at is not None, d.closed_by_sha256) for d in app.deficiencies] == [
        ("房屋租赁合同", True, app.materials[-1].sha256)
    ]
    assert app.events[-1].action == "attach" and app.events[-1].data["closes_deficiency"] is True


def test_overdue_commitment_surfaces_as_a_warning(hub, clock):
    clock.set(date(2026, 11, 2))
    app = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK)
    svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 11, 4))
    clock.set(date(2026, 11, 4))
    assert "commitment_overdue" not in {w.kind for w in supervision.warnings(hub, HZ_CLERK)}
    clock.set(date(2026, 11, 5))
    overdue = [w for w in supervision.warnings(hub, HZ_CLERK) if w.kind == "commitment_overdue"]
    assert [(w.number, w.due_date) for w in overdue] == [(app.number, date(2026, 11, 4))]
    svc.attach(
        hub,
        app.number,
        [
            svc.MaterialIn(name="房屋租赁合同", filename="l.pdf", content=PDF + b"l"),
            svc.MaterialIn(name="结婚证", filename="m.pdf", content=PDF + b"m"),
        ],
        HZ_CLERK,
    )
    assert "commitment_overdue" not in {w.kind for w in supervision.warnings(hub, HZ_CLERK)}


def test_attach_refuses_unknown_material_and_writes_nothing(hub):
    app = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK)
    with pytest.raises(InvalidInput) as exc:
        svc.attach(hub, app.number, [svc.MaterialIn(name="户口簿", filename="h.pdf", content=PDF)], HZ_CLERK)
    assert exc.value.errors[0].field == "materials[0].name"
    assert len(svc.read(hub, app.number, HZ_CLERK).events) == len(app.events)


def test_commitment_due_is_bounded_by_the_items_tolerance(hub, clock):
    """9999-12-31 used to be taken as a promise. The horizon is the item's `tolerance_days`
    working days from the day the promise is taken (60 by default)."""
    clock.set(date(2026, 11, 2))  # a Monday
    app = svc.create(hub, fund_rent(materials=CORE), HZ_CLERK)
    for far in (date(9999, 12, 31), date(2027, 11, 2)):
        with pytest.raises(InvalidInput, match="working days") as exc:
            svc.transition(hub, app.number, "accept", GJJ, commitment_due=far)
        assert [e.field for e in exc.value.errors] == ["commitment_due"]
        assert svc.read(hub, app.number, GJJ).state == "received"
    item = hub.catalog.items[fund_rent().subject]
    hub.catalog = hub.catalog.model_copy(
        update={"items": hub.catalog.items | {item.code: item.model_copy(update={"tolerance_days": 5})}}
    )
    assert svc.commitment_limit(hub, hub.catalog.items[item.code], hub.today()) == date(
        2026, 11, 9
    )  # five working days on
    with pytest.raises(InvalidInput, match="2026-11-09") as exc:
        svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 11, 10))
    assert exc.value.errors[0].field == "commitment_due" and "5个工作日" in exc.value.errors[0].reason.zh
    assert svc.transition(hub, app.number, "accept", GJJ, commitment_due=date(2026, 11, 9)).state == "accepted"


def test_first_review_promise_is_bounded_too(hub):
    review = svc.FirstReview(checklist=["identity"], commitment_due=date(9999, 12, 31))
    with pytest.raises(InvalidInput) as exc:
        svc.create(hub, fund_rent(materials=CORE), HZ_CLERK, first_review=review)
    assert [e.field for e in exc.value.errors] == ["commitment_due"]
    with hub.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Application)) == 0
