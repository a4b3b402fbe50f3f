"""Documents on every surface: the receipt page (收件凭证 before acceptance, its sealed PDF), the
application page's list and audited download, the resident's status page, the public check
/d/CODE (minimal data, seal state, unknown codes refused, throttled), the API (scoped like
materials) and the CLI (list, show, verify — a changed byte fails)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub import applications as svc
from hub import seals
from hub.cli import app as cli
from hub.context import Hub
from hub.lifecycle import Role
from hub.secret_key import load as load_secret
from hub.secret_key import status_path
from hub.storage.tables import AuditEntry
from hub.tokens import create_token
from hub.web.app import create_app
from tests.support.samples import ELDER_ID, TELLER, elderly_card, officer

MZJ = officer("ts-mzj", "民政审批员")
PEOPLE = {
    "teller": (Role.teller, "bank-xiahong", None),
    "teller_bz": (Role.teller, "bank-baizhang", None),
    "officer": (Role.officer, None, "ts-mzj"),
    "officer_yb": (Role.officer, None, "ts-ybj"),
    "ops": (Role.ops, None, None),
}
HTML = {"accept": "text/html"}


@pytest.fixture
def web(hub: Hub) -> Iterator[TestClient]:
    seals.ensure_test_seals(hub)
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def who(hub: Hub) -> dict[str, dict[str, str]]:
    out = {}
    for name, (role, desk, department) in PEOPLE.items():
        secret, _ = create_token(
            hub,
            name,
            role=role,
            desk=desk,
            department=department,
            scopes=["applications:read", "applications:write", "ops"],
            created_by="test",
        )
        out[name] = {"authorization": f"Bearer {secret}"}
    return out


def _accepted(hub: Hub) -> str:
    number = svc.create(hub, elderly_card(), TELLER).number
    svc.transition(hub, number, "accept", MZJ)
    return number


def test_api_lists_and_serves_documents_scoped_like_materials(web: TestClient, hub: Hub, who) -> None:
    number = _accepted(hub)
    listed = web.get(f"/api/v1/applications/{number}/documents", headers=who["officer"])
    assert listed.status_code == 200, listed.text
    kinds = [d["kind"] for d in listed.json()]
    assert kinds == ["receipt", "acceptance"]
    code = listed.json()[1]["code"]
    pdf = web.get(f"/api/v1/applications/{number}/documents/{code}", headers=who["officer"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and seals.verify_pdf(hub, pdf.content)[0].ok
    with hub.sessions() as s:  # audited like a material's download
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "view_document")).one()
        assert entry.target == number
    # another desk's teller, another department's officer: it does not exist for them; ops: refused
    assert web.get(f"/api/v1/applications/{number}/documents", headers=who["teller_bz"]).status_code == 404
    assert web.get(f"/api/v1/applications/{number}/documents/{code}", headers=who["officer_yb"]).status_code == 404
    assert web.get(f"/api/v1/applications/{number}/documents", headers=who["ops"]).status_code == 403
    assert (
        web.get(f"/api/v1/applications/{number}/documents/ABCD-EFGH-JKMN-PQRS", headers=who["officer"]).status_code
        == 404
    )


def test_receipt_page_is_the_intake_receipt_with_its_sealed_pdf(web: TestClient, hub: Hub, who) -> None:
    number = svc.create(hub, elderly_card(), TELLER).number
    page = web.get(f"/applications/{number}/receipt", headers=who["teller"] | HTML)
    assert page.status_code == 200
    assert "收件凭证" in page.text and "受理回执" not in page.text and "不代表已受理" in page.text
    link = re.search(r'id="sealed-receipt" href="([^"]+)"', page.text).group(1)
    pdf = web.get(link, headers=who["teller"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    check = seals.verify_pdf(hub, pdf.content)
    assert check and check[0].ok and "政务服务中心" in check[0].signer  # the hub's seal on the desk's paper


def test_application_page_lists_documents(web: TestClient, hub: Hub, who) -> None:
    number = _accepted(hub)
    page = web.get(f"/applications/{number}", headers=who["officer"] | HTML)
    assert page.status_code == 200
    assert 'data-kind="receipt"' in page.text and 'data-kind="acceptance"' in page.text and "受理通知书" in page.text


def test_resident_gets_their_documents_from_the_status_link(web: TestClient, hub: Hub) -> None:
    number = _accepted(hub)
    path = status_path(load_secret(hub.settings), number)
    page = web.get(path)
    assert page.status_code == 200 and "我的办件文书" in page.text and "受理通知书" in page.text
    link = re.search(r'href="(/s/[^"]+/documents/[^"]+)"', page.text).group(1).replace("&amp;", "&")
    pdf = web.get(link)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    wrong = re.sub(r"k=[0-9a-f]+", "k=0000", link)
    assert web.get(wrong).status_code == 404


def test_public_check_shows_little_and_says_whether_the_seal_holds(web: TestClient, hub: Hub, who) -> None:
    number = _accepted(hub)
    docs = web.get(f"/api/v1/applications/{number}/documents", headers=who["officer"]).json()
    code = docs[1]["code"]
    pending = web.get(f"/d/{code}")
    assert pending.status_code == 200 and "尚未签发" in pending.text
    web.get(f"/api/v1/applications/{number}/documents/{code}", headers=who["officer"])
    page = web.get(f"/d/{code.lower().replace('-', '')}")  # typed sloppily: still found
    assert page.status_code == 200
    assert "受理通知书" in page.text and "泰顺县民政局" in page.text and "有效" in page.text
    assert "林阿婆" not in page.text and "林**" in page.text and ELDER_ID not in page.text and number not in page.text
    assert web.get("/d/ABCD-EFGH-JKMN-PQRS").status_code == 404
    assert web.get("/d", params={"code": code}, follow_redirects=False).headers["location"] == f"/d/{code}"
    statuses = [web.get("/d/ABCD-EFGH-JKMN-PQR2").status_code for _ in range(12)]
    assert 429 in statuses  # the residents' lookup throttle counts these too


def test_cli_list_show_verify(web: TestClient, hub: Hub, home: Path, tmp_path: Path, db_url: str, monkeypatch) -> None:
    number = _accepted(hub)
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--home", str(home), "documents", "list", "--application", number, "--json"])
    assert listed.exit_code == 0, listed.output
    code = re.findall(r'"code": "([^"]+)"', listed.output)[1]
    out = tmp_path / "notice.pdf"
    shown = runner.invoke(cli, ["--home", str(home), "documents", "show", code, "--output", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "state: issued" in shown.output and out.read_bytes().startswith(b"%PDF")
    good = runner.invoke(cli, ["--home", str(home), "documents", "verify", str(out)])
    assert good.exit_code == 0 and "valid" in good.output and code in good.output, good.output
    data = bytearray(out.read_bytes())
    data[data.index(b"/Title") + 8] ^= 1
    bad_file = tmp_path / "bad.pdf"
    bad_file.write_bytes(bytes(data))
    bad = runner.invoke(cli, ["--home", str(home), "documents", "verify", str(bad_file)])
    assert bad.exit_code == 1 and "NOT VALID" in bad.output and "not a document the hub issued" in bad.output
    pending = runner.invoke(cli, ["--home", str(home), "documents", "list", "--state", "pending", "--json"])
    assert pending.exit_code == 0 and code not in pending.output and '"kind": "receipt"' in pending.output
    unknown = runner.invoke(cli, ["--home", str(home), "documents", "show", "ABCD-EFGH-JKMN-PQRS"])
    assert unknown.exit_code == 1


def test_the_links_sealed_into_a_notice_never_come_from_the_requests_host(web: TestClient, hub: Hub, who) -> None:
    # the first fetch issues the document: a forged Host must not end up in what is sealed for good
    number = _accepted(hub)
    code = web.get(f"/api/v1/applications/{number}/documents", headers=who["officer"]).json()[1]["code"]
    pdf = web.get(f"/api/v1/applications/{number}/documents/{code}", headers=who["officer"] | {"host": "evil.example"})
    assert pdf.status_code == 200, pdf.text
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout
    assert b"evil.example" not in pdf.content and "evil.example" not in text.decode()
    assert f"{hub.settings.issued_link_base}/d/{code}" in text.decode()
