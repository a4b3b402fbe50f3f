"""免提交 (a material the agency obtains itself, `supplied_by: agency`): never owed by the
applicant — not at acceptance, not on the receipt (受理回执) — and the intake page offers a 核验
button instead of an upload, and a type error names the material and the accepted extensions
(not MIME types) on every surface that stores files."""

from __future__ import annotations

import socket

import yaml
from fastapi.testclient import TestClient

from hub import applications as svc
from hub.context import Hub
from hub.lifecycle import Role
from hub.presenters import receipt
from hub.tokens import create_token
from hub.users import add_user
from hub.web.app import create_app
from tests.conftest import PDF
from tests.support.samples import FUND_RETIRE, SH_CLERK, fund_retire
from tests.test_web_api import login

ACCOUNT = "住房公积金账户信息"


def test_an_agency_material_is_never_owed(hub: Hub):
    assert (
        next(m for m in hub.catalog.materials_of(hub.catalog.subject(FUND_RETIRE)) if m.name == ACCOUNT).supplied_by
        == "agency"
    )
    new = fund_retire()
    new.materials = [m for m in new.materials if m.name != ACCOUNT]
    app = svc.create(hub, new, SH_CLERK)
    assert ACCOUNT not in receipt(hub, svc.read(hub, app.number, SH_CLERK), "http://x/s")["missing"]
    assert receipt(hub, svc.read(hub, app.number, SH_CLERK), "http://x/s")["missing"] == []


def test_the_intake_page_offers_a_check_not_an_upload_for_it(hub: Hub):
    add_user(
        hub, "chenjing", "shanghai-飞地-2026", display_name="陈静", role=Role.enclave_clerk, desk="enclave-shanghai"
    )
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        r = login(web, "chenjing", "shanghai-飞地-2026")
        assert r.status_code == 303, r.text
        page = web.get(f"/intake/{FUND_RETIRE}").text
    row = page.split(f'<tr data-material="{ACCOUNT}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-agency="1"' in row and "免提交" in row and "无需申请人提供" in row
    assert 'type="file"' not in row and 'name="missing"' not in row and 'class="req"' not in row
    assert 'class="verify"' in row  # the sample hub's verifiers answer housing_fund_account
    assert (
        "只接受 PDF、JPG、PNG、OFD 文件" in page
        and "application/pdf" not in page.split("<tbody>", 1)[1].split("accept=", 1)[0]
    )


def test_a_type_error_names_extensions_not_media_types(hub: Hub):
    problem = hub.store.check(b"MZ" + b"\0" * 30)
    assert problem is not None
    assert problem.zh == "不接受的文件类型：只接受 PDF、JPG、PNG、OFD 文件"
    assert "/" not in problem.zh  # no MIME type for the teller
    assert hub.store.check(PDF) is None


def test_a_verifier_that_does_not_answer_is_a_clear_error_not_a_hang(home, db_url, clock, monkeypatch):
    """The department's system is down: the API answers at once, in Chinese first, and changes
    nothing (the page turns it into 重试, tests/test_intake_browser.py)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    path = home / "connections" / "irs-verify.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = f"http://127.0.0.1:{port}/irs/v1"
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", "t")
    hub = Hub.open(home, database_url=db_url, clock=clock)
    try:
        secret, _ = create_token(
            hub, "sh", role=Role.enclave_clerk, desk="enclave-shanghai", scopes=["applications:write"], created_by="t"
        )
        with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
            body = {"subject": FUND_RETIRE, "material": ACCOUNT, "id_number": "330329199007010137", "name": "陈志强"}
            r = web.post("/api/v1/verifications", json=body, headers={"authorization": f"Bearer {secret}"})
        assert r.status_code == 400, r.text
        assert r.json()["detail"].startswith("网上核验暂不可用（核验系统无应答），请稍后重试或收取纸质材料")
    finally:
        hub.close()
