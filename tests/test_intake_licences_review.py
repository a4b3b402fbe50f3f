"""Review findings on 电子证照 at intake (issue 19 review, items 4, 5, 6 and 9): a department's
licence with no status is refused, never taken as valid; a lookup needs the applicant's name,
shows nothing for a holder whose name differs, counts a company's licence only when the record
names the applicant as its representative, and is audited; the officer sees a licence of ours as
it stands today and approval refuses one revoked since intake; the public page's code stays in
the hub."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hub import applications as svc
from hub.applications import licence_refs
from hub.audit import entries
from hub.connectors import LicenceRecord
from hub.context import Hub
from hub.errors import InvalidInput
from hub.lifecycle import Role
from hub.storage.tables import Licence
from hub.users import add_user
from hub.web.app import create_app
from plugins.sandbox.data_sharing import SAMPLE_LICENCES, ZHIQIANG_USCC
from tests import test_intake_licences as base
from tests.conftest import make_id
from tests.test_intake_licences import (
    FORM,
    HALL,
    INVOICE,
    LICENCE,
    OWNER_ID,
    REVIEW,
    _licence,
    _new,
    _token,
)
from tests.test_web_api import login

OFFICER = svc.Actor(name="税务审批员", role=Role.officer, department="ts-swj")
COMPANY = "泰顺县志强农家乐"
gateway = base.gateway  # the sandbox 电子证照 platform on 127.0.0.1 (autouse)


# ---------------------------------------------------------------- 4: no status, no licence


def test_a_record_without_status_is_refused_not_valid(hub: Hub, gateway):
    with pytest.raises(ValidationError, match="status"):
        LicenceRecord(type_code="YYZZ", number="1", holder_name="x", holder_id="y", issuer="z")
    for record in (
        {k: v for k, v in SAMPLE_LICENCES[0].items() if k != "zzzt"},  # no 证照状态 at all
        dict(SAMPLE_LICENCES[0], zzzt=""),  # an empty one
    ):
        gateway.licences = [record]
        with pytest.raises(Exception, match=r"irs-licences\.yaml.*无法读取.*status"):
            hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")
    # and so the desk cannot take it: refused naming the material
    with pytest.raises(InvalidInput) as caught:
        svc.receive(hub, _new([svc.LicenceRef(material=LICENCE, number="330329600123456")]), HALL, first_review=REVIEW)
    assert f"材料“{LICENCE}”" in caught.value.errors[0].reason.zh and "暂不可用" in caught.value.errors[0].reason.zh


def test_the_rest_verb_must_map_status(monkeypatch):
    from plugins.rest.spec import RestSpec

    monkeypatch.setenv("LICENCE_TEST_TOKEN", "t")
    base = {"base_url": "http://127.0.0.1:1/x", "auth": {"bearer": "${LICENCE_TEST_TOKEN}"}, "check": {"path": "/me"}}
    fields = {"number": "a", "holder_id": "b", "holder_name": "c", "issuer": "d"}
    with pytest.raises(ValueError, match=r"licence fields missing\): status"):
        RestSpec.model_validate(base | {"licences": {"path": "/l", "records": "data", "fields": fields}})


# ---------------------------------------------------------------- 5: name, representative, audit


def _lookup(web: TestClient, headers: dict[str, str], **body: object):
    return web.post("/api/v1/licence-lookups", json={"subject": INVOICE, "material": LICENCE} | body, headers=headers)


def test_a_lookup_needs_the_name_and_shows_nothing_for_another(hub: Hub):
    _licence(hub, "YYZZ-2025-0101")  # the company's, in our library
    teller = _token(hub, "review-teller", Role.clerk, desk="hall-county")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        r = _lookup(web, teller, applicant_id=ZHIQIANG_USCC)
        assert r.status_code == 422 and "applicant_name" in r.text
        r = _lookup(web, teller, applicant_id=ZHIQIANG_USCC, applicant_name="")
        assert r.status_code == 422 and "申请人姓名" in r.text
        # an ID typed with the wrong name: no name and no licence comes back
        r = _lookup(web, teller, applicant_id=ZHIQIANG_USCC, applicant_name="别的公司")
        assert r.status_code == 200, r.text
        assert r.json()["licences"] == [] and COMPANY not in r.text
        assert "未列出" in r.json()["problems"][-1]
        r = _lookup(web, teller, applicant_id=ZHIQIANG_USCC, applicant_name=COMPANY)
        numbers = [c["number"] for c in r.json()["licences"]]
        assert numbers[:2] == ["YYZZ-2025-0101", "330329600123456"] and "code" not in r.json()["licences"][0]
    # and the submission is judged by the same rule
    with pytest.raises(InvalidInput) as caught:
        wrong = _new([svc.LicenceRef(material=LICENCE, number="YYZZ-2025-0101")])
        wrong.applicant.name = "别的公司"
        svc.receive(hub, wrong, HALL, first_review=REVIEW)
    assert "姓名或名称不符" in caught.value.errors[0].reason.zh


def test_a_credit_code_in_the_form_counts_only_for_its_representative(hub: Hub, gateway):
    _licence(hub, "YYZZ-2025-0102")  # ours names no representative ID
    subject = hub.catalog.subject(INVOICE)
    # 陈志强 runs it (fddbrdm on the platform's record): its licence is his to use
    found = licence_refs.lookup(hub, subject, LICENCE, OWNER_ID, "陈志强", {"uscc": ZHIQIANG_USCC})
    assert [c["number"] for c in found["licences"]] == ["330329600123456", "330329600099999"]
    assert found["asked"]["withheld"] == 1  # ours: no representative recorded
    # someone else typing the same credit code into the form gets nothing
    other = make_id("330329", date(1985, 5, 5), "012")
    found = licence_refs.lookup(hub, subject, LICENCE, other, "吴某某", {"uscc": ZHIQIANG_USCC})
    assert found["licences"] == [] and found["asked"]["withheld"] == 3
    refused = _new([svc.LicenceRef(material=LICENCE, number="330329600123456")], other)
    refused.applicant.type, refused.applicant.name = "person", "吴某某"
    refused.form = dict(FORM, tax_agent_name="吴某某", tax_agent_id_number=other)
    with pytest.raises(InvalidInput) as caught:
        svc.receive(hub, refused, HALL, first_review=REVIEW)
    assert "未载明申请人为法定代表人" in caught.value.errors[0].reason.zh


def test_every_lookup_is_audited_with_the_masked_id_and_the_case(hub: Hub):
    app = svc.create(hub, _new([]), HALL)
    teller = _token(hub, "audit-teller", Role.clerk, desk="hall-county")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        r = _lookup(web, teller, applicant_id=ZHIQIANG_USCC, applicant_name=COMPANY)
        assert r.status_code == 200, r.text
        r = _lookup(web, teller, applicant_id=ZHIQIANG_USCC, applicant_name="别的公司", application=app.number)
        assert r.status_code == 200, r.text
        assert (
            _lookup(web, teller, applicant_id=ZHIQIANG_USCC, applicant_name=COMPANY, application="NOPE").status_code
            == 404
        )
    logged = [e for e in entries(hub) if e.action == "licence_lookup"]
    assert len(logged) == 2
    later, first = logged  # newest first
    assert first.target is None and first.data["found"] == 2 and first.data["withheld"] == 0
    assert later.target == app.number and later.data["found"] == 0 and later.data["withheld"] == 2
    for e in logged:
        assert e.data["holder"] != ZHIQIANG_USCC and e.data["holder"][:2] == ZHIQIANG_USCC[:2]
        assert e.data["material"] == LICENCE and ZHIQIANG_USCC not in json.dumps(e.data, ensure_ascii=False)


# ---------------------------------------------------------------- 6 and 9: as it stands today


def test_a_licence_of_ours_revoked_after_intake_blocks_approval(hub: Hub):
    lic = _licence(hub, "YYZZ-2025-0103")
    app, _ = svc.receive(
        hub, _new([svc.LicenceRef(material=LICENCE, number="YYZZ-2025-0103")]), HALL, first_review=REVIEW
    )
    [ref] = next(e for e in svc.read(hub, app.number, HALL).events if e.action == "create").data["licences"]
    assert "code" not in ref and lic.code not in json.dumps(ref)  # the public page's key stays in the hub
    svc.transition(hub, app.number, "accept", OFFICER)
    svc.transition(hub, app.number, "start_review", OFFICER)
    with hub.transaction() as session:
        session.get(Licence, lic.id).status = "revoked"
    add_user(hub, "swj2", "shuiwu-审批-2026", display_name="税务审批员", role=Role.officer, department="ts-swj")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert login(web, "swj2", "shuiwu-审批-2026").status_code == 303
        item = web.get(f"/applications/{app.number}").text.split('<ul id="licences">', 1)[1].split("</ul>", 1)[0]
        assert "现已注销" in item and "已核验" not in item
        assert "/pdf" in item  # linked by licence_id, not by the code
    with pytest.raises(InvalidInput) as caught:
        svc.transition(hub, app.number, "approve", OFFICER)
    [error] = caught.value.errors
    assert LICENCE in error.field and f"材料“{LICENCE}”" in error.reason.zh and "注销" in error.reason.zh
    assert svc.read(hub, app.number, HALL).parts[0].state != "approved"  # nothing changed


def test_a_department_licence_shows_when_it_was_checked(hub: Hub):
    app, _ = svc.receive(
        hub, _new([svc.LicenceRef(material=LICENCE, number="330329600123456")]), HALL, first_review=REVIEW
    )
    add_user(hub, "swj3", "shuiwu-审批-2026", display_name="税务审批员", role=Role.officer, department="ts-swj")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert login(web, "swj3", "shuiwu-审批-2026").status_code == 303
        item = web.get(f"/applications/{app.number}").text.split('<ul id="licences">', 1)[1].split("</ul>", 1)[0]
    checked = hub.today().isoformat()
    assert f"核验时有效（{checked}）" in item and "/pdf" not in item
    assert date.fromisoformat(checked)
