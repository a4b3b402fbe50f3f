"""docs/connect/soap.md stays true: its connection file, taken from the page as written (only the
endpoint's port changed), checks, verifies, submits and syncs against the test department, and
the errors it quotes come out with the lines it quotes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hub.connection_config import load_connections
from hub.connectors import PollFailure
from tests.support.soap_vat_department import VatDepartment
from tests.test_soap_declarative import PASSWORD, RESIDENT, TYPES, Store, part, wsdl_folder

DOC = Path(__file__).resolve().parent.parent / "docs" / "connect" / "soap.md"


def blocks(section: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8").split(section, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)


@pytest.fixture
def vat():
    d = VatDepartment(password=PASSWORD, registry={("CN", RESIDENT): ("林阿婆", "泰顺")}).start()
    yield d
    d.stop()


def connection(home: Path, vat: VatDepartment, monkeypatch, text: str | None = None):
    monkeypatch.setenv("VAT_WSSE_PASSWORD", PASSWORD)
    monkeypatch.setenv("HUB_HOME", str(home))
    wsdl_folder(home)
    (folder := home / "connections").mkdir(parents=True, exist_ok=True)
    text = (text or blocks("## 2.")[0]).replace("http://127.0.0.1:8710", vat.base)
    (folder / "shuiwu-vat.yaml").write_text(text, encoding="utf-8")
    conns, problems = load_connections(folder, TYPES)
    assert problems == []
    return conns["shuiwu-vat"].make(TYPES)


def test_the_worked_example_connects_as_the_page_says(tmp_path, vat, monkeypatch):
    c = connection(tmp_path, vat, monkeypatch)
    assert c.check().message.endswith("probe checkVat OK (credentials accepted)")
    assert c.verify("business_licence", {"id_number": RESIDENT}).ok
    store = Store({"营业执照": b"%PDF-1.4 licence"})
    c.materials = store
    receipt = c.submit(part(1, materials=store.refs))
    assert vat.cases[receipt.remote_id].attachments[0].sha256 == store.refs[0].sha256
    vat.decide(receipt.remote_id, "WEIRD")
    (failure,) = c.poll([receipt])
    assert isinstance(failure, PollFailure)
    assert (
        'connections/shuiwu-vat.yaml:26 (config.status.status): 未映射的状态 unmapped status "WEIRD"' in failure.message
    )
    vat.password = "wrong"
    assert "WS-Security authentication failed" in c.check().message


def test_without_the_probe_the_check_fails_on_the_line_the_page_quotes(tmp_path, vat, monkeypatch):
    conf = yaml.safe_load(blocks("## 2.")[0])
    page = blocks("## 2.")[0]
    probe = page[page.index("  check:") : page.index("  submit:")]
    result = connection(tmp_path, vat, monkeypatch, page.replace(probe, "")).check()
    assert "check" in conf["config"] and not result.ok
    assert "credentials configured but no check probe" in result.message
    assert "(connections/shuiwu-vat.yaml:8 (config.wsse))" in result.message and vat.calls == []


def test_the_missing_operation_error_is_on_the_line_the_page_quotes(tmp_path, vat, monkeypatch):
    text = blocks("## 2.")[0].replace("operation: getCase", "operation: GetCaseStatus")
    result = connection(tmp_path, vat, monkeypatch, text).check()
    assert "status.operation GetCaseStatus (connections/shuiwu-vat.yaml:24 (config.status.operation))" in result.message


def test_the_stateless_variant_decides_at_submit(tmp_path, vat, monkeypatch):
    conf = yaml.safe_load(blocks("## 2.")[0])
    variant = yaml.safe_load(blocks("## 6.")[0])
    del conf["config"]["status"]
    conf["config"]["submit"]["decision"] = variant["submit"]["decision"]
    conf["config"]["status_map"] = variant["status_map"]
    c = connection(tmp_path, vat, monkeypatch, yaml.safe_dump(conf, allow_unicode=True))
    receipt = c.submit(part(1))
    assert receipt.update is not None and receipt.update.status == "approved" and c.poll([receipt]) == []
