"""电子证照: licence types in the catalogue check, numbers and their check character, issuing on
approval (one per part), the sealed PDF (pdftotext, pyHanko and poppler's pdfsig, the metadata
attached under the seal), the public page from the QR code, revocation and expiry on every
surface, the signed status list and the standalone verifier (run as its own process), the CLI and
scoping. Screenshots of the licence in test-artifacts/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub import applications as svc
from hub.applications.licences import assign_credit_code, issue_for_part, sealed_pdf
from hub.applications.scope import get as get_application
from hub.catalog.loader import check_catalog
from hub.cli import app as cli
from hub.context import Hub
from hub.home import write_home
from hub.ids import check_uscc
from hub.licences import verify_licence
from hub.licences.document import METADATA_NAME, metadata
from hub.licences.library import status
from hub.licences.numbering import check_char, is_valid, number_problem
from hub.licences.verify import verify_file
from hub.lifecycle import Role
from hub.seals import HUB_AUTHORITY, ensure_test_seals, load_seal, seal_pdf, verify_pdf
from hub.storage.tables import Licence, OutboxRow
from hub.tokens import create_token
from hub.users import add_user
from hub.web.app import create_app
from tests.conftest import PDF, make_id
from tests.support.samples import ELDER_ID, HZ_CLERK, TELLER, elderly_card, fund_rent, officer

VERIFIER = Path(verify_licence.__file__)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MZJ = officer("ts-mzj")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The sample home, with 老年人优待证 valid for one year (长期 in the sample) so expiry shows."""
    h = write_home(tmp_path / "home")
    path = h / "licences.yaml"
    text = path.read_text(encoding="utf-8")
    first = text.index("validity: 长期")  # LNYDZ is the first type
    path.write_text(text[:first] + "validity: 1" + text[first + len("validity: 长期") :], encoding="utf-8")
    return h


@pytest.fixture
def sealed_hub(hub: Hub) -> Hub:
    ensure_test_seals(hub)
    return hub


def approved_card(hub: Hub, **kw) -> str:
    app = svc.create(hub, elderly_card(**kw), TELLER)
    for action in ("accept", "start_review", "approve"):
        svc.transition(hub, app.number, action, MZJ)
    return app.number


def licence_of(hub: Hub, number: str) -> Licence:
    with hub.sessions() as session:
        found = session.scalars(select(Licence).where(Licence.application_number == number)).one()
        session.expunge(found)
        return found


def root_pem(hub: Hub) -> Path:
    return hub.settings.home / "seals" / "trust" / "test-ca.pem"


def hub_seal_pem(hub: Hub, folder: Path) -> Path:
    """The hub's own seal certificate, as the kit gives it (status-signer.pem)."""
    path = folder / "status-signer.pem"
    path.write_bytes(load_seal(hub, HUB_AUTHORITY).certificate.public_bytes(serialization.Encoding.PEM))
    return path


# run as its own process without gmssl_pyx: the verifier's SM2 path through the openssl command line
NO_GMSSL = (
    "import runpy, sys; sys.modules['gmssl_pyx'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def offline(hub: Hub, pdf: Path, *args: str, gmssl: bool = True) -> tuple[int, dict]:
    """The standalone verifier as another agency runs it: its own process, from a folder of its
    own (nothing of the hub on its path). With `--status`, the hub's seal is pinned as the kit
    does (`--status-signer status-signer.pem`) unless the test names a signer itself."""
    folder = pdf.parent / "agency"
    folder.mkdir(exist_ok=True)
    script = shutil.copy(VERIFIER, folder / "verify_licence.py")
    if "--status" in args and "--status-signer" not in args:
        args = (*args, "--status-signer", str(hub_seal_pem(hub, folder)))
    start = [sys.executable, "-I"] + ([] if gmssl else ["-c", NO_GMSSL])
    run = subprocess.run(
        [*start, script, str(pdf), "--trust", str(root_pem(hub)), "--json", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    assert run.stderr == "", run.stderr
    return run.returncode, json.loads(run.stdout)


# ---------------------------------------------------------------- numbers and types


def test_check_character_is_iso_7064_mod_37_36_and_catches_every_single_error():
    assert check_char("A12425GABC1234002") == "M"  # the standard's worked example (as python-stdnum)
    body = "LNYDZ3303292026000017"
    number = body + check_char(body)
    assert number_problem(number) is None
    for i, c in enumerate(number):  # every one-character substitution and adjacent swap is caught
        for other in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".replace(c, ""):
            assert not is_valid(number[:i] + other + number[i + 1 :])
        if i + 1 < len(number) and number[i] != number[i + 1]:
            assert not is_valid(number[:i] + number[i + 1] + number[i] + number[i + 2 :])
    assert "校验位" in str(number_problem(number[:-1] + ("0" if number[-1] != "0" else "1")))
    assert "格式" in str(number_problem("LNYDZ-1"))


def test_assigned_credit_codes_are_well_formed():
    for _ in range(50):
        code = assign_credit_code("330329")
        assert check_uscc(code) is None and code.startswith("91330329")


def test_catalogue_check_names_file_and_line_of_licence_problems(tmp_path: Path):
    home = write_home(tmp_path / "h")
    types = home / "licences.yaml"
    types.write_text(
        types.read_text(encoding="utf-8").replace("issuer: ts-bdc", "issuer: ts-nowhere"), encoding="utf-8"
    )
    minzheng = home / "catalog" / "minzheng.yaml"
    minzheng.write_text(
        minzheng.read_text(encoding="utf-8").replace("licence: LNYDZ", "licence: NOSUCH"), encoding="utf-8"
    )
    catalog, problems = check_catalog(home)
    assert catalog is None
    said = {(p.file, p.message.split(" (")[0]) for p in problems}
    assert ("h/licences.yaml", "未知部门") in said
    assert ("h/catalog/minzheng.yaml", "未知证照类型") in said
    line = next(p.line for p in problems if p.file.endswith("minzheng.yaml"))
    assert "licence: NOSUCH" in minzheng.read_text(encoding="utf-8").splitlines()[line - 1]
    # the shipped sample is clean, and its three licence types are known
    sample, problems = check_catalog(write_home(tmp_path / "clean"))
    assert sample is not None and [p for p in problems if not p.warning] == []
    assert set(sample.licence_types) == {"LNYDZ", "YYZZ", "BDCQZS"}
    assert sample.items["GG00501000"].licence == "LNYDZ"


# ---------------------------------------------------------------- issuing


def test_approving_an_elderly_card_issues_one_sealed_licence(sealed_hub: Hub, tmp_path: Path):
    hub = sealed_hub
    number = approved_card(hub)
    app = svc.read(hub, number, MZJ)
    actions = [e.action for e in app.events]
    assert actions[actions.index("approve") + 1] == "licence_issued" and actions[-1] == "decide"
    licence = licence_of(hub, number)
    assert licence.type_code == "LNYDZ" and licence.issuer == "ts-mzj" and licence.holder_id == ELDER_ID
    assert licence.holder_name == "林阿婆" and licence.status == "valid" and is_valid(licence.number)
    assert licence.number.startswith(f"LNYDZ330329{hub.today().year}")
    assert licence.valid_until == date(2027, 9, 20)  # one year in this module's types, the day before
    # never twice: the same part again gives the same licence
    with hub.transaction() as session:
        again = get_application(session, number, MZJ, for_update=True)
        assert issue_for_part(hub, again, again.parts[0], MZJ, hub.now()).number == licence.number
    assert [e.action for e in svc.read(hub, number, MZJ).events].count("licence_issued") == 1

    pdf = sealed_pdf(hub, licence.number)
    assert sealed_pdf(hub, licence.number) == pdf  # drawn once, then kept
    path = tmp_path / "licence.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    for shown in ("电子证照", "老年人优待证", licence.number, "林阿婆", "泰顺县民政局", "扫码核验"):
        assert shown in text
    checks = verify_pdf(hub, pdf)
    assert len(checks) == 1 and checks[0].ok and checks[0].signer == "泰顺县民政局"
    sig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid." in sig and "Total document signed" in sig  # poppler's own check
    # the metadata is attached, and inside what the seal signed (the whole file)
    attached = verify_licence.embedded_metadata(pdf)
    assert attached == metadata(licence, attached["verify_url"]) and attached["verify_url"].endswith(
        f"/l/{licence.code}"
    )
    listed = subprocess.run(["pdfdetach", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    assert METADATA_NAME in listed
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-singlefile", str(path), str(ARTIFACTS / "licence-LNYDZ")], check=True
    )


def test_items_whose_result_is_no_licence_issue_none(sealed_hub: Hub):
    hub = sealed_hub
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    gjj = officer("ts-gjj")
    for action in ("accept", "start_review", "approve"):
        svc.transition(hub, app.number, action, gjj)
    with hub.sessions() as session:
        assert session.scalars(select(Licence)).all() == []


# ---------------------------------------------------------------- public page, revocation, offline


@pytest.fixture
def web(sealed_hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(sealed_hub), base_url="http://127.0.0.1") as client:
        yield client


def bearer(hub: Hub, who: str, role: Role, desk: str | None = None, department: str | None = None) -> dict:
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


def test_public_page_then_revocation_on_every_surface(web: TestClient, sealed_hub: Hub, tmp_path: Path):
    hub = sealed_hub
    licence = licence_of(hub, approved_card(hub))
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(sealed_pdf(hub, licence.number))
    page = web.get(f"/l/{licence.code}")
    assert page.status_code == 200 and 'id="licence-status">有效<' in page.text
    for shown in ("老年人优待证", licence.number, "泰顺县民政局", "林**"):
        assert shown in page.text
    assert "林阿婆" not in page.text and ELDER_ID not in page.text and ELDER_ID[-4:] not in page.text
    assert page.headers["cache-control"] == "no-store"
    code, said = offline(hub, pdf)
    assert code == 0 and said["verdict"] == "valid" and ELDER_ID not in json.dumps(said)

    other = bearer(hub, "ybj", Role.officer, department="ts-ybj")
    own = bearer(hub, "mzj", Role.officer, department="ts-mzj")
    assert web.post(f"/api/v1/licences/{licence.number}/revoke", json={"reason": "x"}, headers=other).status_code == 404
    assert web.post(f"/api/v1/licences/{licence.number}/revoke", json={"reason": ""}, headers=own).status_code == 422
    done = web.post(f"/api/v1/licences/{licence.number}/revoke", json={"reason": "持证人申请注销"}, headers=own)
    assert done.status_code == 200 and done.json()["status"] == "revoked"
    again = web.post(f"/api/v1/licences/{licence.number}/revoke", json={"reason": "再次"}, headers=own)
    assert again.status_code == 409
    assert 'id="licence-status">已注销<' in web.get(f"/l/{licence.code}").text
    events = svc.read(hub, licence.application_number, MZJ).events
    assert events[-1].action == "licence_revoked" and events[-1].reason == "持证人申请注销"

    status_file = tmp_path / "status.json"
    status_file.write_text(web.get("/l/status.json").text, encoding="utf-8")
    listed = json.loads(status_file.read_text(encoding="utf-8"))
    assert listed["signature"]["algorithm"] == "ecdsa-p256"
    assert [e["number"] for e in listed["payload"]["revoked"]] == [licence.number]
    code, said = offline(hub, pdf, "--status", str(status_file))
    assert code == 1 and said["verdict"] == "revoked", said
    # a status list changed after signing (the revocation removed) is refused, not believed
    forged = listed | {"payload": listed["payload"] | {"revoked": []}}
    status_file.write_text(json.dumps(forged), encoding="utf-8")
    code, said = offline(hub, pdf, "--status", str(status_file))
    assert said["verdict"] == "tampered" and "status list" in said["problems"][0]


def test_one_byte_changed_is_tampered(sealed_hub: Hub, tmp_path: Path):
    hub = sealed_hub
    licence = licence_of(hub, approved_card(hub))
    content = bytearray(sealed_pdf(hub, licence.number))
    content[len(content) // 3] ^= 0x01  # inside the signed range (the page's content)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(content))
    code, said = offline(hub, bad)
    assert code == 1 and said["verdict"] == "tampered"
    assert verify_file(hub, bytes(content)).verdict == "tampered"
    sig = subprocess.run(["pdfsig", str(bad)], capture_output=True, text=True).stdout
    assert "Signature is Valid." not in sig


def test_expiry_on_the_page_the_library_and_offline(web: TestClient, sealed_hub: Hub, clock, tmp_path: Path):
    hub = sealed_hub
    licence = licence_of(hub, approved_card(hub))
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(sealed_pdf(hub, licence.number))
    assert status(licence, licence.valid_until) == "valid"
    assert status(licence, licence.valid_until + timedelta(days=1)) == "expired"
    clock.advance(days=366)
    assert 'id="licence-status">已过期<' in web.get(f"/l/{licence.code}").text
    assert verify_file(hub, pdf.read_bytes()).verdict == "expired"
    later = (licence.valid_until + timedelta(days=1)).isoformat()
    code, said = offline(hub, pdf, "--today", later)
    assert code == 1 and said["verdict"] == "expired"


def test_unknown_codes_get_the_same_page_and_lookups_are_throttled(web: TestClient, sealed_hub: Hub):
    licence = licence_of(sealed_hub, approved_card(sealed_hub))
    unknown = web.get("/l/" + "A" * 32)
    malformed = web.get("/l/%3Cscript%3E")
    assert unknown.status_code == malformed.status_code == 404
    assert 'id="licence-state"' in unknown.text and "未找到该证照" in unknown.text
    assert "<script>" not in malformed.text
    for _ in range(40):
        last = web.get(f"/l/{licence.code}")
    assert last.status_code == 429 and "查询过于频繁" in last.text and licence.number not in last.text


# ---------------------------------------------------------------- scoping, API, CLI


def test_library_is_scoped_to_the_caller(web: TestClient, sealed_hub: Hub):
    hub = sealed_hub
    licence = licence_of(hub, approved_card(hub))
    own = bearer(hub, "mzj", Role.officer, department="ts-mzj")
    other = bearer(hub, "ybj", Role.officer, department="ts-ybj")
    teller = bearer(hub, "teller", Role.teller, desk="bank-xiahong")
    far_teller = bearer(hub, "bz", Role.teller, desk="bank-baizhang")
    supervisor = bearer(hub, "sup", Role.supervisor)
    assert [r["number"] for r in web.get("/api/v1/licences", headers=own).json()] == [licence.number]
    assert web.get("/api/v1/licences", headers=own).json()[0]["holder_id"] == ELDER_ID
    assert web.get("/api/v1/licences", headers=other).json() == []
    assert web.get(f"/api/v1/licences/{licence.number}", headers=other).status_code == 404
    assert web.get("/api/v1/licences", headers=teller).status_code == 422  # a desk asks by holder
    by_holder = web.get("/api/v1/licences", params={"holder_id": ELDER_ID, "type": "LNYDZ"}, headers=teller).json()
    assert [r["number"] for r in by_holder] == [licence.number] and by_holder[0]["holder_id"] != ELDER_ID
    assert web.get(f"/api/v1/licences/{licence.number}", headers=teller).status_code == 200  # its own intake
    assert web.get(f"/api/v1/licences/{licence.number}", headers=far_teller).status_code == 404
    assert web.get("/api/v1/licences", headers=supervisor).json()[0]["holder_id"] != ELDER_ID  # masked
    assert web.get("/api/v1/licences/LNYDZ3303292026000001X", headers=own).status_code == 422  # bad check char


def test_cli_list_show_verify_revoke_export(sealed_hub: Hub, tmp_path: Path):
    hub = sealed_hub
    licence = licence_of(hub, approved_card(hub))
    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False)}

    def run(*args: str):
        return CliRunner().invoke(cli, ["--home", str(hub.settings.home), "licences", *args], env=env)

    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["number"] for r in json.loads(listed.output)] == [licence.number]
    assert json.loads(listed.output)[0]["holder_id"] != ELDER_ID  # ops: masked
    pdf = tmp_path / "l.pdf"
    shown = run("show", licence.number, "--pdf", str(pdf))
    assert shown.exit_code == 0 and pdf.read_bytes()[:5] == b"%PDF-"
    checked = run("verify", str(pdf))
    assert checked.exit_code == 0 and checked.output.startswith("valid 有效")
    refused = run("revoke", licence.number, "--reason", "错发", "--role", "officer", "--department", "ts-ybj")
    assert refused.exit_code != 0
    done = run("revoke", licence.number, "--reason", "错发", "--role", "officer", "--department", "ts-mzj")
    assert done.exit_code == 0, done.output
    checked = run("verify", str(pdf))
    assert checked.exit_code == 1 and checked.output.startswith("revoked 已注销")
    out = tmp_path / "status.json"
    assert run("export-status", "--out", str(out)).exit_code == 0
    assert offline(hub, pdf, "--status", str(out))[1]["verdict"] == "revoked"
    kit = tmp_path / "kit"  # what another agency is given: the verifier, the root, the list
    assert run("export-kit", str(kit)).exit_code == 0
    assert sorted(p.name for p in kit.iterdir()) == [
        "README.txt",
        "county-root.pem",
        "status-signer.pem",
        "status.json",
        "verify_licence.py",
    ]
    assert load_seal(hub, HUB_AUTHORITY).key.key_id in (kit / "README.txt").read_text(encoding="utf-8")
    checked = subprocess.run(
        [
            sys.executable,
            "-I",
            "verify_licence.py",
            str(pdf),
            "--trust",
            "county-root.pem",
            "--status",
            "status.json",
            "--status-signer",
            "status-signer.pem",
        ],
        capture_output=True,
        text=True,
        cwd=kit,
        timeout=120,
    )
    assert checked.returncode == 1 and checked.stdout.startswith("verdict: revoked 已注销"), checked.stderr
    bad = run("show", "LNYDZ-nonsense")
    assert bad.exit_code != 0 and "证照编号格式不符" in str(bad.exception)  # main() prints it as one line


def test_partner_lists_keep_our_licence_types(hub: Hub):
    from datetime import UTC, datetime

    from hub.partners import Partners
    from hub.partners.items import merged

    catalog = merged(
        hub.catalog,
        Partners(),
        {},
        county_division="330329",
        now=datetime.now(UTC),
        stale_after=timedelta(days=7),
    )
    assert set(catalog.licence_types) == {"LNYDZ", "YYZZ", "BDCQZS"}


PASSWORD = "correct-horse-battery"


def login(web: TestClient, username: str) -> int:
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    data = {"username": username, "password": PASSWORD, "csrf_token": token}
    return web.post("/login", data=data, follow_redirects=False).status_code


def csrf_of(web: TestClient, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', web.get(path).text).group(1)


def test_officer_revokes_on_the_web_after_confirming(web: TestClient, sealed_hub: Hub):
    hub = sealed_hub
    number = approved_card(hub)
    licence = licence_of(hub, number)
    add_user(hub, "minzheng", PASSWORD, display_name="民政审批员", role=Role.officer, department="ts-mzj")
    assert login(web, "minzheng") == 303
    assert licence.number in web.get(f"/applications/{number}").text  # the application page links it
    library = web.get("/licences")
    assert library.status_code == 200 and licence.number in library.text and "林阿婆" in library.text
    page = web.get(f"/licences/{licence.number}")
    assert 'id="revoke-form"' in page.text and ELDER_ID in page.text  # the issuer's officer sees it all
    assert web.get(f"/licences/{licence.number}/pdf").content[:5] == b"%PDF-"
    token = csrf_of(web, f"/licences/{licence.number}")
    asked = web.post(f"/licences/{licence.number}/revoke", data={"reason": "证件信息有误", "csrf_token": token})
    assert asked.status_code == 200 and 'id="confirm-yes"' in asked.text
    assert licence_of(hub, number).status == "valid"  # nothing done before the confirmation
    done = web.post(
        f"/licences/{licence.number}/revoke",
        data={"reason": "证件信息有误", "csrf_token": token, "confirm": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert licence_of(hub, number).status == "revoked"
    after = web.get(f"/licences/{licence.number}")
    assert "已注销" in after.text and 'id="revoke-form"' not in after.text
    forged = web.post(
        f"/licences/{licence.number}/revoke", data={"reason": "x", "csrf_token": "forged", "confirm": "1"}
    )
    assert forged.status_code == 403


def test_a_department_decision_synced_back_issues_one_licence(home: Path, db_url: str, clock, monkeypatch):
    """The other way a part is approved: the department system decides, `sync` brings it back."""
    import yaml

    from hub.jobs.dispatch import dispatch
    from hub.jobs.sync import sync
    from plugins.sandbox.rest_department import RestDepartment

    dept = RestDepartment(token="licence-sync-token").start()
    try:
        monkeypatch.setenv("HUB_SANDBOX_TOKEN", "licence-sync-token")
        conf = yaml.safe_load((home / "connections" / "yibao-rest.yaml").read_text(encoding="utf-8"))
        conf["config"] |= {"base_url": dept.url, "retries": 0}
        (home / "connections" / "minzheng-rest.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True), "utf-8")
        hub = Hub.open(home, database_url=db_url, clock=clock)
        try:
            app = svc.create(hub, elderly_card(), TELLER)
            svc.transition(hub, app.number, "accept", MZJ)
            assert dispatch(hub).delivered == 1
            with hub.sessions() as session:
                remote = session.scalars(select(OutboxRow.remote_id)).one()
            dept.decide(remote, "approved")
            assert sync(hub).decided == 1 and sync(hub).decided == 0
            events = [e.action for e in svc.read(hub, app.number, MZJ).events]
            assert events.count("licence_issued") == 1
            assert licence_of(hub, app.number).issuer == "ts-mzj"
        finally:
            hub.close()
    finally:
        dept.stop()


def test_a_business_licence_is_issued_to_the_enterprise_with_a_new_credit_code(sealed_hub: Hub):
    hub = sealed_hub
    materials = [
        "公司登记（备案）申请书",
        "公司章程",
        "股东主体资格证明",
        "法定代表人、董事、监事和经理的任职文件",
        "住所使用证明",
    ]
    form = {
        "enterprise_name": "泰顺县廊桥茶业有限公司",
        "enterprise_type": "有限责任公司（自然人投资或控股）",
        "registered_capital": "100",
        "business_scope": "茶叶种植、加工、销售；" * 150,  # 经营范围 may run to 2000 characters
        "registered_division": "330329",
        "registered_address": "泰顺县罗阳镇新城大道1号",
        "legal_rep_name": "吴建国",
        "legal_rep_id_number": make_id(born=date(1975, 5, 5), seq="053"),
        "employee_count": "8",
        "contact_phone": "13905770123",
    }
    new = svc.NewApplication(
        subject="XK00601001",
        desk="hall-county",
        applicant=svc.Applicant(name="吴建国", id=form["legal_rep_id_number"]),
        form=form,
        materials=[
            svc.MaterialIn(name=m, filename=f"{i}.pdf", content=PDF + m.encode()) for i, m in enumerate(materials)
        ],
    )
    clerk = svc.Actor(name="大厅窗口", role=Role.clerk, desk="hall-county")
    app = svc.create(hub, new, clerk)
    scj = officer("ts-scjgj")
    for action in ("accept", "start_review", "approve"):
        svc.transition(hub, app.number, action, scj)
    licence = licence_of(hub, app.number)
    assert licence.type_code == "YYZZ" and licence.holder_id_type == "credit_code"
    assert licence.holder_name == "泰顺县廊桥茶业有限公司" and check_uscc(licence.holder_id) is None
    printed = dict(licence.data["fields"])
    assert printed["统一社会信用代码"] == licence.holder_id and printed["法定代表人"] == "吴建国"
    assert printed["营业期限"] == "长期"
    pdf = sealed_pdf(hub, licence.number)
    record = verify_licence.embedded_metadata(pdf)
    assert record is not None and record["holder_id"] == licence.holder_id
    # too long for the face: 见附页 there, in full on the annex page; the seal on the face
    face, annex = (
        re.sub(
            r"\s", "", subprocess.run(["pdftotext", *pages, "-", "-"], input=pdf, capture_output=True).stdout.decode()
        )
        for pages in (["-l", "1"], ["-f", "2"])
    )
    assert "见附页" in face and "吴建国" in face and "茶叶种植" not in face
    assert "营业执照（附页）" in annex and annex.count("茶叶种植") == 150  # every word, over the pages it takes
    checks = verify_pdf(hub, pdf)
    assert len(checks) == 1 and checks[0].ok and checks[0].signer == "泰顺县市场监督管理局"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "licence-YYZZ.pdf").write_bytes(pdf)


# ---------------------------------------------------------------- review findings (SM2, status list, digests)


def cli_verify(hub: Hub, pdf: Path):
    env = {"HUB_DATABASE_URL": hub.engine.url.render_as_string(hide_password=False)}
    return CliRunner().invoke(cli, ["--home", str(hub.settings.home), "licences", "verify", str(pdf)], env=env)


def test_an_sm2_sealed_licence_verifies_on_the_hub_and_offline(hub: Hub, web_sm2, tmp_path: Path):
    """Finding 1: with crypto.signature sm2, `hub licences verify` and the standalone verifier (with
    gmssl_pyx, and without it through the openssl command line) say valid, and tampered for one
    byte changed; a revocation in an SM2-signed status list is believed."""
    licence = licence_of(hub, approved_card(hub))
    pdf = tmp_path / "sm2.pdf"
    pdf.write_bytes(sealed_pdf(hub, licence.number))
    [check] = verify_pdf(hub, pdf.read_bytes())
    assert check.ok and check.algorithm == "sm2_sm3"
    done = cli_verify(hub, pdf)
    assert done.exit_code == 0 and done.output.startswith("valid 有效"), done.output
    for gmssl in (True, False):
        code, said = offline(hub, pdf, gmssl=gmssl)
        assert (code, said["verdict"]) == (0, "valid"), said
    bad = tmp_path / "bad.pdf"
    content = bytearray(pdf.read_bytes())
    content[len(content) // 3] ^= 0x01
    bad.write_bytes(bytes(content))
    assert cli_verify(hub, bad).output.startswith("tampered")
    for gmssl in (True, False):
        assert offline(hub, bad, gmssl=gmssl)[1]["verdict"] == "tampered"
    own = bearer(hub, "mzj", Role.officer, department="ts-mzj")
    assert web_sm2.post(f"/api/v1/licences/{licence.number}/revoke", json={"reason": "错发"}, headers=own).is_success
    status_file = tmp_path / "status.json"
    status_file.write_text(web_sm2.get("/l/status.json").text, encoding="utf-8")
    assert json.loads(status_file.read_text(encoding="utf-8"))["signature"]["algorithm"] == "sm2"
    for gmssl in (True, False):
        code, said = offline(hub, pdf, "--status", str(status_file), gmssl=gmssl)
        assert (code, said["verdict"]) == (1, "revoked"), said


@pytest.fixture
def web_sm2(hub: Hub) -> Iterator[TestClient]:
    """SM2 test seals (the sandbox's test CA in SM2) for the hub and every department."""
    hub.settings.crypto.signature = "sm2"
    ensure_test_seals(hub, algorithm="sm2", force=True)
    assert load_seal(hub, "ts-mzj").algorithm == "sm2"
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


def _signed_by(hub: Hub, authority: str, payload: dict, key=None, cert=None, chain=None) -> dict:
    """A status list signed as hub.licences.status_list does, by another seal or key."""
    import base64

    from hub.seals import certs

    seal = load_seal(hub, authority)
    key = key or seal.key
    return {
        "payload": payload,
        "signature": {
            "algorithm": key.algorithm,
            "key_id": key.key_id,
            "value": base64.b64encode(key.sign(verify_licence.canonical(payload))).decode(),
            "certificate": certs.to_pem(cert or seal.cert).decode(),
            "chain": [certs.to_pem(c).decode() for c in (chain if chain is not None else seal.chain_certs)],
        },
    }


def test_only_the_hubs_fresh_status_list_is_believed(web: TestClient, sealed_hub: Hub, tmp_path: Path):
    """Finding 2: a list signed by a department's seal (chaining to the county CA) is refused; so
    is one whose signer was issued by a certificate that is no CA; a list older than --max-age
    is stale, not valid; a revocation in an old list still counts."""
    from hub import crypto
    from hub.licences import status_list
    from hub.seals import certs

    hub = sealed_hub
    licence = licence_of(hub, approved_card(hub))
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(sealed_pdf(hub, licence.number))
    today = hub.today().isoformat()
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(status_list.signed(hub)), encoding="utf-8")
    code, said = offline(hub, pdf, "--status", str(fresh), "--today", today)
    assert (code, said["verdict"]) == (0, "valid"), said
    # an empty list signed with 民政局's seal: a good signature, a chain to the root, not the hub's
    payload = status_list.payload(hub)
    forged = tmp_path / "mzj.json"
    forged.write_text(json.dumps(_signed_by(hub, "ts-mzj", payload)), encoding="utf-8")
    code, said = offline(hub, pdf, "--status", str(forged), "--today", today)
    assert said["verdict"] == "tampered" and "not by the hub's seal" in said["problems"][0], said
    # …even when the agency was made to pin it: its signer was issued by a seal, which is no CA
    mzj = load_seal(hub, "ts-mzj")
    rogue = crypto.generate("ecdsa-p256")
    rogue_cert = certs.issue(
        subject=certs.name("泰顺县政务服务中心", "泰顺县", "测试"),
        public=rogue.public(),
        issuer=mzj.cert.subject,
        issuer_key=mzj.key,
        days=30,
        ca=False,
    )
    signed = _signed_by(hub, "ts-mzj", payload, key=rogue, cert=rogue_cert, chain=[mzj.cert, *mzj.chain_certs])
    forged.write_text(json.dumps(signed), encoding="utf-8")
    code, said = offline(hub, pdf, "--status", str(forged), "--status-signer", rogue.key_id, "--today", today)
    assert said["verdict"] == "tampered" and "is not a CA" in said["problems"][0], said
    # --status without a pinned signer is a usage error, not a verdict
    run = subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(pdf), "--trust", str(root_pem(hub)), "--status", str(fresh)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "--status-signer" in run.stderr
    # the list exported before the revocation, used 8 days later: stale (7 by default), not valid
    later = (hub.today() + timedelta(days=8)).isoformat()
    code, said = offline(hub, pdf, "--status", str(fresh), "--today", later)
    assert (code, said["verdict"]) == (1, "stale") and "stale status list" in said["problems"][0]
    assert offline(hub, pdf, "--status", str(fresh), "--today", later, "--max-age", "30")[1]["verdict"] == "valid"
    own = bearer(hub, "mzj", Role.officer, department="ts-mzj")
    assert web.post(f"/api/v1/licences/{licence.number}/revoke", json={"reason": "错发"}, headers=own).is_success
    revoked = tmp_path / "revoked.json"
    revoked.write_text(json.dumps(status_list.signed(hub)), encoding="utf-8")
    assert offline(hub, pdf, "--status", str(revoked), "--today", later)[1]["verdict"] == "revoked"


def test_the_licence_pdf_records_its_digest_algorithm_and_is_checked_on_read(sealed_hub: Hub):
    """Finding 7: with crypto.hash sm3 the sealed PDF's SM3 digest is recorded (what OpenSSL
    computes), and a stored file changed afterwards is refused, never served."""
    from hub.errors import HubError

    hub = sealed_hub
    hub.settings.crypto.hash = "sm3"
    number = licence_of(hub, approved_card(hub)).number
    pdf = sealed_pdf(hub, number)
    with hub.sessions() as session:
        row = session.scalars(select(Licence).where(Licence.number == number)).one()
        algorithm, digest, sha256 = row.digest_algorithm, row.digest, row.sha256
    by_openssl = subprocess.run(["openssl", "dgst", "-sm3", "-r"], input=pdf, capture_output=True, check=True)
    assert algorithm == "sm3" and digest == by_openssl.stdout.split()[0].decode()
    assert sealed_pdf(hub, number) == pdf
    stored = hub.store.path_of(sha256)
    stored.chmod(0o644)
    stored.write_bytes(pdf[:-1] + bytes([pdf[-1] ^ 0x01]))
    with pytest.raises(HubError, match="文件已损坏"):
        sealed_pdf(hub, number)


def test_the_offline_verifier_checks_at_most_twenty_signatures(sealed_hub: Hub):
    """Finding 10: a file with more signatures than MAX_SIGNATURES is refused, none checked."""
    hub = sealed_hub
    pdf = sealed_pdf(hub, licence_of(hub, approved_card(hub)).number)
    for i in range(verify_licence.MAX_SIGNATURES):
        pdf = seal_pdf(hub, pdf, "ts-mzj", field_name=f"Extra{i}")
    checks = verify_licence.check_seals(pdf, load_seal(hub, "ts-mzj").chain_certs)
    assert len(checks) == 1 and not checks[0]["ok"] and "more than 20 signatures" in checks[0]["problem"]


def test_staff_searches_of_the_library_are_audited_with_the_id_masked(web: TestClient, sealed_hub: Hub):
    """Finding 5 (the library side): every search on /licences and /api/v1/licences is in the
    audit log, the holder's ID masked, with how many licences it found."""
    from hub import audit
    from hub.ids import mask_id

    hub = sealed_hub
    approved_card(hub)
    teller = bearer(hub, "teller", Role.teller, desk="bank-xiahong")
    found = web.get("/api/v1/licences", params={"holder_id": ELDER_ID}, headers=teller)
    assert found.status_code == 200 and len(found.json()) == 1
    assert web.get("/api/v1/licences", headers=teller).status_code == 422  # refused: recorded too
    add_user(hub, "guitai", PASSWORD, display_name="柜台", role=Role.teller, desk="bank-xiahong")
    assert login(web, "guitai") == 303
    assert web.get("/licences", params={"holder_id": ELDER_ID.lower()}).status_code == 200
    searches = [e for e in audit.entries(hub) if e.action == "licence_search"]
    assert [(e.actor, e.target, e.data.get("surface"), e.data.get("found")) for e in reversed(searches)] == [
        ("token:teller", mask_id(ELDER_ID), "api", 1),
        ("token:teller", None, "api", None),
        ("柜台", mask_id(ELDER_ID), "web", 1),
    ]
    assert searches[1].data["refused"] is True
    assert ELDER_ID not in json.dumps([[e.target, e.data] for e in searches])
