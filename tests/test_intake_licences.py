"""电子证照 instead of paper at intake (issue 19, item 4): a material marked `licence: TYPE` is
satisfied by a licence the applicant holds — from the hub's own library or a department's
through the connector verb `licences` (the sandbox 电子证照共享服务平台 on 127.0.0.1) — taken by
reference, checked the same on every surface (desk page, API, CLI), counted as supplied, and
shown to the deciding officer as verified."""

from __future__ import annotations

import json
import socket
from datetime import date, datetime

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub import applications as svc
from hub.applications import licence_refs
from hub.cli import app as cli
from hub.connectors import LicenceRecord
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.storage.tables import Licence, MaterialLicence
from hub.users import add_user
from hub.web.app import create_app
from plugins.sandbox.data_sharing import SAMPLE_LICENCES, ZHIQIANG_USCC, DataSharingGateway
from tests.conftest import PDF, make_id
from tests.test_web_api import login

INVOICE = "QT00901000"  # 发票领用 — 税务; 营业执照 is `licence: YYZZ`
LICENCE = "营业执照"
HALL = svc.Actor(name="综合窗口张敏", role=Role.teller, desk="hall-county")
OWNER_ID = make_id("330329", date(1990, 7, 1), "013")  # 陈志强, who runs 泰顺县志强农家乐
TOKEN = "intake-licences-token"
FORM = {
    "enterprise_name": "泰顺县志强农家乐",
    "uscc": ZHIQIANG_USCC,
    "taxpayer_type": "小规模纳税人",
    "invoice_type": "数电发票（普通发票）",
    "tax_agent_name": "陈志强",
    "tax_agent_id_number": OWNER_ID,
    "tax_agent_phone": "13857712345",
    "contact_phone": "13857712345",
}


@pytest.fixture(autouse=True)
def gateway(home, monkeypatch):
    """The sandbox 电子证照共享服务平台 on 127.0.0.1, which the sample hub's `licence_sources`
    send YYZZ and BDCQZS lookups to (connections/irs-licences.yaml)."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    gw = DataSharingGateway(token=TOKEN).start()
    path = home / "connections" / "irs-licences.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = gw.url
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    yield gw
    gw.stop()


def _licence(hub: Hub, number: str, **kw) -> Licence:
    values = {
        "number": number,
        "code": f"code-{number}",
        "type_code": "YYZZ",
        "type_name": "营业执照",
        "holder_name": "泰顺县志强农家乐",
        "holder_id": ZHIQIANG_USCC,
        "holder_id_type": "credit_code",
        "issuer": "ts-scjg",
        "issuer_name": "泰顺县市场监督管理局",
        "issued_on": date(2025, 1, 6),
        "valid_from": date(2025, 1, 6),
        "valid_until": None,
        "data": {},
        "created_at": datetime(2025, 1, 6, 9),
    } | kw
    with hub.transaction() as session:
        lic = Licence(**values)
        session.add(lic)
        session.flush()
        session.expunge(lic)
    return lic


def _new(refs: list[svc.LicenceRef], applicant_id: str = ZHIQIANG_USCC, **kw) -> svc.NewApplication:
    return svc.NewApplication(
        subject=INVOICE,
        desk="hall-county",
        applicant=svc.Applicant(type="company", name="泰顺县志强农家乐", id=applicant_id),
        form=dict(FORM),
        materials=[svc.MaterialIn(name="办税人员居民身份证", filename="id.pdf", content=PDF)],
        licences=refs,
        **kw,
    )


REVIEW = svc.FirstReview(checklist=["identity", "materials", "signature", "informed"])


def test_catalogue_marks_licence_materials(hub: Hub):
    marked = {
        (code, m.name): m.licence for code, item in hub.catalog.items.items() for m in item.materials if m.licence
    }
    assert marked[(INVOICE, LICENCE)] == "YYZZ"
    assert marked[("QR00701001", "不动产权证书")] == "BDCQZS"
    assert set(marked.values()) == {"YYZZ", "BDCQZS"}


def test_a_licence_from_our_library_replaces_the_paper(hub: Hub):
    _licence(hub, "YYZZ-2025-0001")
    subject = hub.catalog.subject(INVOICE)
    found = licence_refs.lookup(hub, subject, LICENCE, ZHIQIANG_USCC, {})
    assert [(c["number"], c["source"], c["status"], c["usable"]) for c in found["licences"]] == [
        ("YYZZ-2025-0001", "library", "valid", True),  # ours first, then the province's platform
        ("330329600123456", "irs-licences", "valid", True),
        ("330329600099999", "irs-licences", "revoked", False),
    ]
    assert found["problems"] == []
    assert found["licences"][0]["holder_id"] != ZHIQIANG_USCC  # masked
    # without 营业执照 on paper: accepted for first review because the licence stands in for it
    app, made = svc.receive(hub, _new([svc.LicenceRef(material=LICENCE, number="YYZZ-2025-0001")]), HALL, first_review=REVIEW)
    assert made
    app = svc.read(hub, app.number, HALL)
    assert LICENCE in svc.verified_materials(app)
    assert LICENCE not in {m.name for m in app.materials}
    create = next(e for e in app.events if e.action == "create")
    [ref] = create.data["licences"]
    assert ref["number"] == "YYZZ-2025-0001" and ref["source"] == "library" and ref["checked_by"] == HALL.name
    with hub.sessions() as session:
        row = session.query(MaterialLicence).one()
    assert (row.material, row.source, row.status_at_check, row.holder_id) == (LICENCE, "library", "valid", ZHIQIANG_USCC)
    assert row.licence_id is not None and row.application_id == app.id


@pytest.mark.parametrize(
    ("number", "kw", "applicant", "says"),
    [
        ("YYZZ-R", {"status": "revoked"}, ZHIQIANG_USCC, "已注销"),
        ("YYZZ-E", {"valid_until": date(2026, 1, 31)}, ZHIQIANG_USCC, "已过期"),
        ("BDC-1", {"type_code": "BDCQZS", "type_name": "不动产权证书"}, ZHIQIANG_USCC, "不是本材料要求的证照类型"),
        ("YYZZ-X", {"holder_id": "91330329MA2H8KQ5XE"}, ZHIQIANG_USCC, "持证人不是申请人"),
        ("YYZZ-NONE", None, ZHIQIANG_USCC, "未找到申请人持有的证照"),
    ],
)
def test_refusals_name_the_material(hub: Hub, number, kw, applicant, says):
    if kw is not None:
        _licence(hub, number, **kw)
    with pytest.raises(InvalidInput) as caught:
        svc.receive(hub, _new([svc.LicenceRef(material=LICENCE, number=number)], applicant), HALL, first_review=REVIEW)
    [error] = caught.value.errors
    assert error.field == f"licences[0] ({LICENCE})" and says in error.reason.zh and f"材料“{LICENCE}”" in error.reason.zh
    with hub.sessions() as session:
        assert session.query(MaterialLicence).count() == 0


def test_a_licence_from_a_department_library_through_the_connector(hub: Hub, gateway):
    records = hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")
    assert records == [
        LicenceRecord(
            source="irs-licences",
            type_code="YYZZ",
            type_name="营业执照",
            number="330329600123456",
            holder_name="泰顺县志强农家乐",
            holder_id=ZHIQIANG_USCC,
            issuer="泰顺县市场监督管理局",
            issued_on=date(2024, 3, 18),
            valid_from=date(2024, 3, 18),
            status="valid",
        ),
        records[1],
    ]
    assert records[1].status == "revoked"  # 注销, by the connection's status_map
    assert "licences:YYZZ" in gateway.asked
    app, _ = svc.receive(
        hub, _new([svc.LicenceRef(material=LICENCE, number="330329600123456")]), HALL, first_review=REVIEW
    )
    app = svc.read(hub, app.number, HALL)
    [ref] = next(e for e in app.events if e.action == "create").data["licences"]
    assert (ref["source"], ref["issuer"], ref["status"]) == ("irs-licences", "泰顺县市场监督管理局", "valid")
    with pytest.raises(InvalidInput) as caught:  # the platform's cancelled one
        svc.receive(
            hub, _new([svc.LicenceRef(material=LICENCE, number="330329600099999")]), HALL, first_review=REVIEW
        )
    assert "已注销" in caught.value.errors[0].reason.zh


def test_an_unreachable_library_is_named_and_ours_still_listed(hub: Hub, gateway):
    gateway.stop()
    _licence(hub, "YYZZ-2025-0003")
    found = licence_refs.lookup(hub, hub.catalog.subject(INVOICE), LICENCE, ZHIQIANG_USCC, {})
    assert [c["number"] for c in found["licences"]] == ["YYZZ-2025-0003"]
    assert "暂不可用" in found["problems"][0]


def test_the_rest_verb_bounds_the_answer(hub: Hub, gateway):
    gateway.licences = [dict(SAMPLE_LICENCES[0], zzbh=f"N{i}") for i in range(60)]
    with pytest.raises(Exception, match="超过 50"):
        hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")
    gateway.licences = [dict(SAMPLE_LICENCES[0], zzbh="")]
    with pytest.raises(Exception, match=r"irs-licences\.yaml.*无法读取"):
        hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")


def test_a_material_without_licence_type_takes_no_reference(hub: Hub):
    _licence(hub, "YYZZ-2025-0002")
    with pytest.raises(InvalidInput) as caught:
        svc.create(hub, _new([svc.LicenceRef(material="办税人员居民身份证", number="YYZZ-2025-0002")]), HALL)
    assert "不能以电子证照代替" in caught.value.errors[0].reason.zh
