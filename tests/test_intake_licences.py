"""电子证照 instead of paper at intake (issue 19, item 4): a material marked `licence: TYPE` is
satisfied by a licence the applicant holds — from the hub's own library or a department's
through the connector verb `licences` (the sandbox 电子证照共享服务平台 on 127.0.0.1) — taken by
reference, checked the same on every surface (desk page, API, CLI), counted as supplied, and
shown to the deciding officer as verified."""

from __future__ import annotations

import json
import re
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
from hub.events import verify_chain
from hub.health import check_licence_sources
from hub.jobs.dispatch import part_message
from hub.lifecycle import Role
from hub.presenters import receipt
from hub.storage.tables import Licence, MaterialLicence
from hub.tokens import create_token
from hub.users import add_user
from hub.web.app import create_app
from plugins.sandbox.data_sharing import SAMPLE_LICENCES, ZHIQIANG_USCC, DataSharingGateway
from tests.conftest import PDF, make_id
from tests.test_web_api import login

INVOICE = "QT00901000"  # 发票领用 — 税务; 营业执照 is `licence: YYZZ`
LICENCE = "营业执照"
HALL = svc.Actor(name="综合窗口张敏", role=Role.clerk, desk="hall-county")
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
    found = licence_refs.lookup(hub, subject, LICENCE, ZHIQIANG_USCC, "泰顺县志强农家乐", {})
    assert [(c["number"], c["source"], c["status"], c["usable"]) for c in found["licences"]] == [
        ("YYZZ-2025-0001", "library", "valid", True),  # ours first, then the province's platform
        ("330329600123456", "irs-licences", "valid", True),
        ("330329600099999", "irs-licences", "revoked", False),
    ]
    assert found["problems"] == []
    assert found["licences"][0]["holder_id"] != ZHIQIANG_USCC  # masked
    # without 营业执照 on paper: accepted for first review because the licence stands in for it
    app, made = svc.receive(
        hub, _new([svc.LicenceRef(material=LICENCE, number="YYZZ-2025-0001")]), HALL, first_review=REVIEW
    )
    assert made
    app = svc.read(hub, app.number, HALL)
    assert LICENCE in svc.verified_materials(app)
    assert LICENCE not in {m.name for m in app.materials}
    create = next(e for e in app.events if e.action == "create")
    [ref] = create.data["licences"]
    assert ref["number"] == "YYZZ-2025-0001" and ref["source"] == "library" and ref["checked_by"] == HALL.name
    # the department is told which material came as a licence, and where to find it
    with hub.sessions() as session:
        full = svc.get(session, app.number, HALL)
        [sent] = part_message(full, full.parts[0]).licences
    assert (sent.material, sent.number, sent.source, sent.type_code) == (LICENCE, "YYZZ-2025-0001", "library", "YYZZ")
    with hub.sessions() as session:
        row = session.query(MaterialLicence).one()
    assert (row.material, row.source, row.status_at_check, row.holder_id) == (
        LICENCE,
        "library",
        "valid",
        ZHIQIANG_USCC,
    )
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
    assert (
        error.field == f"licences[0] ({LICENCE})" and says in error.reason.zh and f"材料“{LICENCE}”" in error.reason.zh
    )
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
            representative_id=OWNER_ID,  # 陈志强 runs it: how his application may take it
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
        svc.receive(hub, _new([svc.LicenceRef(material=LICENCE, number="330329600099999")]), HALL, first_review=REVIEW)
    assert "已注销" in caught.value.errors[0].reason.zh


def test_an_unreachable_library_is_named_and_ours_still_listed(hub: Hub, gateway):
    gateway.stop()
    _licence(hub, "YYZZ-2025-0003")
    found = licence_refs.lookup(hub, hub.catalog.subject(INVOICE), LICENCE, ZHIQIANG_USCC, "泰顺县志强农家乐", {})
    assert [c["number"] for c in found["licences"]] == ["YYZZ-2025-0003"]
    assert "暂不可用" in found["problems"][0]


def test_the_rest_verb_bounds_the_answer(hub: Hub, gateway):
    gateway.licences = [dict(SAMPLE_LICENCES[0], zzbh=f"N{i}") for i in range(60)]
    with pytest.raises(Exception, match="超过 50"):
        hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")
    gateway.licences = [dict(SAMPLE_LICENCES[0], zzbfjg="泰顺县\u202e局\x00")]  # text made storable
    [record] = hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")
    assert record.issuer == "泰顺县\ufffd局\ufffd"
    gateway.licences = [dict(SAMPLE_LICENCES[0], zzbh="")]
    with pytest.raises(Exception, match=r"irs-licences\.yaml.*无法读取"):
        hub.connector("irs-licences").licences(ZHIQIANG_USCC, "YYZZ")


def test_a_material_without_licence_type_takes_no_reference(hub: Hub):
    _licence(hub, "YYZZ-2025-0002")
    with pytest.raises(InvalidInput) as caught:
        svc.create(hub, _new([svc.LicenceRef(material="办税人员居民身份证", number="YYZZ-2025-0002")]), HALL)
    assert "不能以电子证照代替" in caught.value.errors[0].reason.zh


# ---------------------------------------------------------------- the surfaces: API, desk page, CLI


def _token(hub: Hub, who: str, role: Role, desk: str | None = None, department: str | None = None) -> dict[str, str]:
    secret, _ = create_token(
        hub,
        who,
        role=role,
        desk=desk,
        department=department,
        scopes=["applications:read", "applications:write"],
        created_by="test",
    )
    return {"authorization": f"Bearer {secret}"}


def _intake_json(licences: list[dict[str, str]], applicant_id: str = OWNER_ID, name: str = "陈志强") -> str:
    return json.dumps(
        {
            "subject": INVOICE,
            "applicant": {"name": name, "id": applicant_id}
            | ({"type": "company"} if applicant_id == ZHIQIANG_USCC else {}),
            "form": FORM,
            "materials": ["办税人员居民身份证"],
            "licences": licences,
            "checklist": ["identity", "materials", "signature", "informed"],
        },
        ensure_ascii=False,
    )


ID_FILE = [("files", ("id.pdf", PDF, "application/pdf"))]


def test_api_lookup_attach_and_refusals(hub: Hub):
    _licence(hub, "YYZZ-2025-0010")
    _licence(hub, "YYZZ-2025-0011", status="revoked")
    teller = _token(hub, "api-teller", Role.clerk, desk="hall-county")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        r = web.post(  # the company applying as itself: ours and the platform's
            "/api/v1/licence-lookups",
            json={
                "subject": INVOICE,
                "material": LICENCE,
                "applicant_id": ZHIQIANG_USCC,
                "applicant_name": "泰顺县志强农家乐",
            },
            headers=teller,
        )
        assert r.status_code == 200, r.text
        listed = {(c["number"], c["status"]) for c in r.json()["licences"]}
        assert {("YYZZ-2025-0010", "valid"), ("YYZZ-2025-0011", "revoked"), ("330329600123456", "valid")} <= listed
        assert ZHIQIANG_USCC not in r.text  # holder IDs masked
        r = web.post(
            "/api/v1/licence-lookups",
            json={
                "subject": INVOICE,
                "material": "办税人员居民身份证",
                "applicant_id": OWNER_ID,
                "applicant_name": "陈志强",
            },
            headers=teller,
        )
        assert r.status_code == 422 and "不能以电子证照代替" in r.text
        # the revoked one: refused naming the material, nothing written
        r = web.post(
            "/api/v1/applications",
            data={
                "data": _intake_json(
                    [{"material": LICENCE, "number": "YYZZ-2025-0011"}], ZHIQIANG_USCC, "泰顺县志强农家乐"
                )
            },
            files=ID_FILE,
            headers=teller,
        )
        assert r.status_code == 422, r.text
        assert LICENCE in r.text and "已注销" in r.text
        r = web.post(
            "/api/v1/applications",
            data={"data": _intake_json([{"material": LICENCE, "number": "330329600123456", "source": "irs-licences"}])},
            files=ID_FILE,
            headers=teller,
        )
        assert r.status_code == 201, r.text
        number = r.json()["number"]
    app = svc.read(hub, number, HALL)
    assert app.state == "pre_reviewed" and LICENCE in svc.verified_materials(app)


def test_desk_page_lookup_button_and_submit(hub: Hub):
    _licence(  # expired before the clock's day; held by 陈志强 himself
        hub,
        "YYZZ-2025-0020",
        valid_until=date(2026, 9, 1),
        holder_id=OWNER_ID,
        holder_name="陈志强",
        holder_id_type="resident_id",
    )
    add_user(hub, "zhangmin", "hall-综合窗口-2026", display_name="张敏", role=Role.clerk, desk="hall-county")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert login(web, "zhangmin", "hall-综合窗口-2026").status_code == 303
        page = web.get(f"/intake/{INVOICE}").text
        row = page.split(f'<tr data-material="{LICENCE}"', 1)[1].split("</tr>", 1)[0]
        assert 'class="licence-lookup"' in row and "查询电子证照" in row and 'name="licence"' in row
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

        def post(ref: dict[str, str]):
            fields = {
                "csrf_token": token,
                "applicant_name": "陈志强",
                "applicant_id": OWNER_ID,
                "licence": json.dumps(ref, ensure_ascii=False),
                "checklist": ["identity", "materials", "signature", "informed"],
            } | {f"f_{k}": v for k, v in FORM.items()}
            index = [m.name for m in hub.catalog.materials_of(hub.catalog.subject(INVOICE))].index("办税人员居民身份证")
            return web.post(
                f"/intake/{INVOICE}",
                data=fields,
                files={f"file_{index}": ("id.pdf", PDF, "application/pdf")},
                follow_redirects=False,
            )

        r = post({"material": LICENCE, "number": "YYZZ-2025-0020"})
        assert r.status_code == 422
        assert f"材料“{LICENCE}”：证照 YYZZ-2025-0020 已过期" in r.text
        r = post({"material": LICENCE, "number": "330329600123456"})
        assert r.status_code == 303, r.text
        number = r.headers["location"].split("/")[2]
    assert LICENCE in svc.verified_materials(svc.read(hub, number, HALL))


def _cli(hub: Hub, *args: str):
    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False), "HUB_SANDBOX_TOKEN": TOKEN}
    return CliRunner().invoke(cli, ["--home", str(hub.settings.home), *args], env=env)


def test_cli_lookup_create_and_attach(hub: Hub, tmp_path):
    _licence(hub, "YYZZ-2025-0030")
    _licence(hub, "YYZZ-2025-0031", holder_id="91330329MA2H8KQ5XE")
    done = _cli(
        hub, "apps", "licences", "--item", INVOICE, "--material", LICENCE, "--id", ZHIQIANG_USCC,
        "--name", "泰顺县志强农家乐", "--role", "clerk", "--desk", "hall-county",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "YYZZ-2025-0030" in done.stdout and "330329600123456" in done.stdout
    (tmp_path / "id.pdf").write_bytes(PDF)
    base = [
        "apps", "create", "--item", INVOICE, "--desk", "hall-county", "--name", "泰顺县志强农家乐",
        "--id", ZHIQIANG_USCC, "--company", "--role", "clerk", "--actor", "张敏",
        "-m", f"办税人员居民身份证={tmp_path / 'id.pdf'}",
        *[a for k, v in FORM.items() for a in ("-f", f"{k}={v}")],
    ]  # fmt: skip
    done = _cli(hub, *base, "--licence", f"{LICENCE}=YYZZ-2025-0031")  # someone else's
    assert isinstance(done.exception, InvalidInput)  # `hub` prints it and exits 1 (hub.cli.main)
    assert f"材料“{LICENCE}”" in str(done.exception) and "持证人不是申请人" in str(done.exception)
    done = _cli(hub, *base, "--licence", f"{LICENCE}=YYZZ-2025-0030@library", "--json")
    assert done.exit_code == 0, done.output
    number = json.loads(done.stdout)["number"]
    assert LICENCE in svc.verified_materials(svc.read(hub, number, HALL))
    # attach afterwards, on another application made without it
    done = _cli(hub, *base, "--json")
    assert done.exit_code == 0, done.output
    second = json.loads(done.stdout)["number"]
    attach = ["apps", "attach", second, "--role", "clerk", "--desk", "hall-county", "--actor", "张敏"]
    done = _cli(hub, *attach, "--licence", f"{LICENCE}=330329600099999")  # the platform's cancelled one
    assert isinstance(done.exception, InvalidInput)
    assert f"材料“{LICENCE}”" in str(done.exception) and "已注销" in str(done.exception)
    done = _cli(hub, *attach, "--licence", f"{LICENCE}=330329600123456@irs-licences")
    assert done.exit_code == 0, done.output
    app = svc.read(hub, second, HALL)
    assert [e.action for e in app.events][-1] == "attach_licence"
    assert LICENCE in svc.verified_materials(app)
    done = _cli(hub, "connectors", "licences", "irs-licences", "BDCQZS", "330329195003150214")
    assert done.exit_code == 0 and "浙(2020)泰顺县不动产权第0001234号" in done.stdout
    assert "330329195003150214" not in done.stdout
    done = _cli(hub, "connectors", "licences", "irs-licences", "YYZZ", ZHIQIANG_USCC)
    assert done.exit_code == 0 and OWNER_ID not in done.stdout  # the representative's ID masked too


def test_the_officer_sees_it_verified_with_our_pdf(hub: Hub):
    pdf = b"%PDF-1.7\n% sealed licence\n%%EOF\n"
    stored = hub.store.put(pdf)
    with hub.transaction() as session:
        from hub.applications.materials import keep_blob

        keep_blob(session, stored, hub.now())
    _licence(hub, "YYZZ-2025-0040", sha256=stored.sha256)
    app, _ = svc.receive(
        hub, _new([svc.LicenceRef(material=LICENCE, number="YYZZ-2025-0040")]), HALL, first_review=REVIEW
    )
    add_user(hub, "swj", "shuiwu-审批-2026", display_name="税务审批员", role=Role.officer, department="ts-swj")
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        assert login(web, "swj", "shuiwu-审批-2026").status_code == 303
        page = web.get(f"/applications/{app.number}").text
        item = page.split('<ul id="licences">', 1)[1].split("</ul>", 1)[0]
        for text in (
            LICENCE,
            "电子证照",
            "YYZZ-2025-0040",
            "泰顺县市场监督管理局",
            "长期有效",
            "已核验",
            "本系统电子证照库",
        ):
            assert text in item, text
        link = re.search(r'href="([^"]+/pdf)"', item).group(1)
        r = web.get(link)
        assert r.status_code == 200 and r.content == pdf and r.headers["content-type"] == "application/pdf"


def test_a_referenced_licence_counts_as_supplied_at_acceptance(hub: Hub):
    """受理 (check_complete) needs 营业执照: a licence reference supplies it, on the receipt too."""
    _licence(hub, "YYZZ-2025-0050")
    officer = svc.Actor(name="审批员@ts-swj", role=Role.officer, department="ts-swj")
    bare = svc.create(hub, _new([]), HALL)  # received without it (no first review)
    with pytest.raises(InvalidInput) as caught:
        svc.transition(hub, bare.number, "accept", officer)
    assert LICENCE in str(caught.value)
    svc.attach_licences(hub, bare.number, [svc.LicenceRef(material=LICENCE, number="YYZZ-2025-0050")], HALL)
    given = receipt(hub, svc.read(hub, bare.number, HALL), "http://x/s")
    assert LICENCE not in given["missing"] and LICENCE not in given["verified"]  # not 网上核验: a licence
    assert given["licences"] == [f"{LICENCE}（YYZZ-2025-0050）"]
    accepted = svc.transition(hub, bare.number, "accept", officer)
    assert accepted.state == "accepted" and not accepted.deficiencies
    assert verify_chain(svc.read(hub, bare.number, HALL)).ok  # the reference is on the chain


def test_doctor_names_a_licence_source_without_a_connection(hub: Hub):
    check = check_licence_sources(hub.settings, hub.catalog)
    assert check.ok and check.detail.startswith("2 of 2 licence types"), check.detail
    broken = hub.settings.model_copy(update={"licence_sources": {"YYZZ": "no-such-library"}})
    check = check_licence_sources(broken, hub.catalog)
    assert not check.ok and "YYZZ -> no-such-library" in check.detail
    assert (
        "our library only: BDCQZS"
        in check_licence_sources(
            hub.settings.model_copy(update={"licence_sources": {"YYZZ": "irs-licences"}}), hub.catalog
        ).detail
    )


def test_the_rest_licences_verb_is_checked_when_loaded(monkeypatch):
    from plugins.rest.connector import RestConnector
    from plugins.rest.spec import RestSpec

    assert "licence_library" in RestConnector.capabilities()
    monkeypatch.setenv("LICENCE_TEST_TOKEN", "t")
    base = {"base_url": "http://127.0.0.1:1/x", "auth": {"bearer": "${LICENCE_TEST_TOKEN}"}, "check": {"path": "/me"}}
    verb = {"path": "/licences", "records": "data", "fields": {"number": "a", "holder_id": "b", "holder_name": "c"}}
    with pytest.raises(ValueError, match="issuer"):
        RestSpec.model_validate(base | {"licences": verb})
    with pytest.raises(ValueError, match="colour"):
        RestSpec.model_validate(base | {"licences": verb | {"fields": verb["fields"] | {"issuer": "d", "colour": "e"}}})
    ok = RestSpec.model_validate(
        base | {"licences": verb | {"fields": verb["fields"] | {"issuer": "d", "status": "e"}}}
    )
    assert ok.licences is not None and ok.licences.method == "POST"
