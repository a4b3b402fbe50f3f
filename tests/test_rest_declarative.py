"""A department system with its own REST API (tests/support/rest_case_department.py: own paths,
nested JSON, cursor pagination, OAuth2 client credentials, its own status words) connected by
configuration only, through a hub made from the sample home, over real loopback sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub import applications as svc
from hub.connection_config import load_connections
from hub.connectors import PollFailure, Receipt, Update
from hub.context import Hub
from hub.errors import ConfigInvalid
from hub.jobs.dispatch import dispatch
from hub.jobs.sync import sync
from hub.plugins import PluginHost
from hub.presenters import application_detail
from hub.storage.tables import OutboxRow
from tests.conftest import PDF, make_id
from tests.support.rest_case_department import CaseDepartment
from tests.support.samples import HZ_CLERK, MEDICAL_FILING, officer
from tests.support.webserver import serving

SECRET = "case-secret-1"
YBJ = officer("ts-ybj")
TYPES = PluginHost.configured(None).connector_types

MATERIALS = {
    "inline": 'attachments: "{{ materials[*].{fileName: filename, sha256: sha256, data: content} }}"',
    "multipart": 'attachments: "{{ materials[*].{fileName: filename, sha256: sha256} }}"',
    "pull": 'attachments: "{{ materials[*].{fileName: filename, sha256: sha256, url: url} }}"',
}

BATCH_STATUS = """\
  status:
    path: /cases
    query: {ids: "{{ join(',', remote_ids) }}"}
    records: data.items
    id: caseNo
    status: state
    reason: remark
    documents: {items: files, name: fileName, url: "{{ href }}"}
    pagination: {type: cursor, next: meta.next, param: cursor, max_pages: 20}
"""

RECORD_STATUS = """\
  status:
    path: "/cases/{{ remote_id }}"
    status: data.state
    reason: data.remark
    documents: {items: data.files, name: fileName, url: "{{ href }}"}
"""


def case_yaml(dept: CaseDepartment, *, mode: str = "inline", status: str = BATCH_STATUS, extra: str = "") -> str:
    """The connection an ops engineer writes for this system (docs/connect/rest.md)."""
    return f"""\
# 医保 case system with its own API: connected by this file only
type: rest
description: 医保经办系统（自有接口）
limits: {{concurrency: 2, max_attempts: 5, backoff_seconds: 60}}
config:
  base_url: {dept.url}
  auth:
    oauth2:
      token_url: {dept.root}/oauth/token
      client_id: tongban-hub
      client_secret: ${{CASE_SECRET}}
      scope: cases
  retries: 0
  materials: {{mode: {mode}}}
  check: {{path: /me}}
  submit:
    path: /cases
    headers: {{X-Request-Id: "{{{{ part.part_id }}}}"}}
    body:
      caseType: "{{{{ part.item_code }}}}"
      title: "{{{{ part.item_title }}}}（{{{{ part.desk }}}}）"
      applicant: {{name: "{{{{ part.applicant_name }}}}", idNo: "{{{{ part.applicant_id }}}}"}}
      form: "{{{{ part.form }}}}"
      source: tongban
      {MATERIALS[mode]}
    multipart: {{part_field: case, file_field: file}}
    success_statuses: [200, 201]
    remote_id: data.caseNo
{status}  status_map: {{NEW: received, WIP: in_review, DONE: approved, BH: supplement_requested, REJ: denied}}
  verify:
    path: "/verify/{{{{ kind }}}}"
    body: {{idNo: "{{{{ subject.id_number }}}}", name: "{{{{ subject.name }}}}"}}
    ok: "result.valid == `true`"
    detail: {{source: result.source}}
{extra}"""


@pytest.fixture
def dept() -> Iterator[CaseDepartment]:
    with CaseDepartment(client_secret=SECRET) as d:
        yield d


def connect(home: Path, text: str) -> None:
    # the 医保 department's parts route to `yibao-rest`: that connection now describes its new system
    (home / "connections" / "yibao-rest.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def open_hub(home, db_url, clock, monkeypatch) -> Iterator:
    monkeypatch.setenv("CASE_SECRET", SECRET)
    opened: list[Hub] = []

    def make(text: str) -> Hub:
        connect(home, text)
        h = Hub.open(home, database_url=db_url, clock=clock)
        opened.append(h)
        return h

    yield make
    for h in opened:
        h.close()


def filing(i: int) -> svc.NewApplication:
    return svc.NewApplication(
        subject=MEDICAL_FILING,
        desk="enclave-hangzhou",
        applicant=svc.Applicant(name=f"申请人{i}", id=make_id(born=date(1980, 1, 1) + timedelta(days=i), seq="031")),
        form={
            "destination_division": "330105",
            "residence_address": "杭州市拱墅区",
            "filing_start_date": "2026-10-01",
            "contact_phone": "13857712345",
        },
        materials=[
            svc.MaterialIn(name="居民身份证", filename="id.pdf", content=PDF + b"id" + str(i).encode() * 5000),
            svc.MaterialIn(name="异地长期居住个人承诺书", filename="p.pdf", content=PDF + b"p"),
        ],
    )


def accepted(hub: Hub, n: int) -> list[str]:
    return [svc.transition(hub, svc.create(hub, filing(i), HZ_CLERK).number, "accept", YBJ).number for i in range(n)]


def rows(hub: Hub) -> list[OutboxRow]:
    with hub.sessions() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


# ---------------------------------------------------------------- check


def test_check_proves_the_credential(open_hub, dept, monkeypatch):
    hub = open_hub(case_yaml(dept))
    ok = hub.connector("yibao-rest").check()
    assert ok.ok and "/me" in ok.message
    monkeypatch.setenv("CASE_SECRET", "wrong-secret")
    failed = hub.connector("yibao-rest").check()
    assert not failed.ok and "401" in failed.message and "wrong-secret" not in failed.message
    dept.down = True
    monkeypatch.setenv("CASE_SECRET", SECRET)
    assert not hub.connector("yibao-rest").check().ok  # reachable, authenticated, but not serving


# ---------------------------------------------------------------- materials, each mode


@pytest.mark.parametrize("mode", ["inline", "multipart"])
def test_submit_delivers_materials_whose_sha256_the_department_verifies(open_hub, dept, mode):
    hub = open_hub(case_yaml(dept, mode=mode))
    accepted(hub, 2)
    assert dispatch(hub).delivered == 2
    assert sorted(r.remote_id for r in rows(hub)) == ["AJ2026000001", "AJ2026000002"]
    for no in ("AJ2026000001", "AJ2026000002"):
        checks = dept.verified[no]
        assert [a.name for a in checks] == ["id.pdf", "p.pdf"] and all(a.ok for a in checks), checks
        case = dept.cases[no].body
        assert case["source"] == "tongban" and case["applicant"]["name"].startswith("申请人")
        assert case["title"].endswith("（enclave-hangzhou）") and case["caseType"] == MEDICAL_FILING
    assert dept.issued == 1  # one token, cached across the deliveries


def test_pull_links_are_fetched_from_the_hub_and_verified(open_hub, dept, home):
    hub = open_hub(case_yaml(dept, mode="pull"))
    accepted(hub, 1)
    with serving(hub) as url:
        hub.settings.public_url = url
        assert dispatch(hub).delivered == 1
    (checks,) = dept.verified.values()
    assert [a.name for a in checks] == ["id.pdf", "p.pdf"] and all(a.ok for a in checks), checks
    links = [a["url"] for a in dept.cases["AJ2026000001"].body["attachments"]]
    assert all(link.startswith(url + "/materials/") for link in links)


def test_inline_refuses_a_material_over_max_inline_bytes(open_hub, dept):
    text = case_yaml(dept).replace("materials: {mode: inline}", "materials: {mode: inline, max_inline_bytes: 1024}")
    hub = open_hub(text)
    accepted(hub, 1)
    assert dispatch(hub).dead == 1
    assert "max_inline_bytes" in rows(hub)[0].last_error and dept.received.total() == 0


# ---------------------------------------------------------------- status back, outage


@pytest.mark.parametrize("status", [BATCH_STATUS, RECORD_STATUS], ids=["batch-cursor", "per-record"])
def test_decisions_are_synced_back(open_hub, dept, status):
    hub = open_hub(case_yaml(dept, status=status))
    a, b, c, d, e = accepted(hub, 5)  # five cases: three pages of two in the batch listing
    dispatch(hub)
    no = {n: r.remote_id for n, r in zip((a, b, c, d, e), rows(hub), strict=True)}  # rows in acceptance order
    dept.decide(no[a], "DONE")
    dept.decide(no[b], "REJ", "非异地长期居住人员")
    dept.decide(no[c], "BH", "请补充居住证明")
    dept.decide(no[d], "WIP")
    summary = sync(hub)
    listed = dept.requests["GET /v2/cases"]
    assert (summary.decided, summary.supplements, summary.documents) == (2, 1, 1)
    detail = application_detail(hub, svc.read(hub, a, YBJ))
    assert detail["outcome"] == "approved" and detail["results"][0]["media_type"] == "application/pdf"
    denied = svc.read(hub, b, YBJ)
    assert next(ev for ev in denied.events if ev.action == "deny").reason == "非异地长期居住人员"
    assert svc.read(hub, c, YBJ).state == "supplement_requested"
    assert sync(hub).updates == 0  # nothing changed: nothing applied twice
    if status is BATCH_STATUS:
        assert listed == 3  # five cases, two a page


def test_outage_then_delivered_exactly_once(open_hub, dept, clock):
    hub = open_hub(case_yaml(dept))
    accepted(hub, 3)
    dept.down = True
    first = dispatch(hub)
    assert (first.delivered, first.retrying) == (0, 3)
    assert all("503" in r.last_error for r in rows(hub))
    dept.down = False
    clock.advance(hours=1)
    assert dispatch(hub).delivered == 3
    assert sorted(dept.received.values()) == [1, 1, 1] and len(dept.cases) == 3


def test_a_revoked_token_is_fetched_again(open_hub, dept):
    hub = open_hub(case_yaml(dept))
    c = hub.connector("yibao-rest")
    assert c.check().ok and dept.issued == 1
    dept.revoke_tokens()  # the department rotated its tokens: a 401, a new token, the call again
    assert c.check().ok and dept.issued == 2
    c.close()


def test_a_token_is_fetched_again_before_it_expires(open_hub, monkeypatch):
    with CaseDepartment(client_secret=SECRET, token_ttl=1) as short:
        c = open_hub(case_yaml(short)).connector("yibao-rest")
        assert c.check().ok and short.issued == 1
        (expires,) = short.tokens.values()
        while time.monotonic() < expires:  # the department's token has expired
            time.sleep(0.05)
        assert c.check().ok and short.issued == 2
        assert short.refused == 0  # renewed before use: never sent an expired token
        c.close()


def test_oauth2_client_auth_basic(open_hub, dept):
    text = case_yaml(dept).replace("scope: cases", "scope: cases\n      client_auth: basic")
    assert open_hub(text).connector("yibao-rest").check().ok


# ---------------------------------------------------------------- mapping errors name FILE:LINE


def test_an_unmapped_status_names_the_value_and_the_line(open_hub, dept):
    hub = open_hub(case_yaml(dept))
    accepted(hub, 2)
    dispatch(hub)
    dept.decide("AJ2026000001", "GUAQI")  # 挂起: a word nobody told the hub
    dept.decide("AJ2026000002", "DONE")
    c = hub.connector("yibao-rest")
    receipts = [Receipt(part_id=r.part_id, remote_id=r.remote_id) for r in rows(hub)]
    failure, update = sorted(c.poll(receipts), key=lambda r: r.remote_id)
    assert isinstance(failure, PollFailure) and isinstance(update, Update) and update.status == "approved"
    line = next(i for i, t in enumerate(case_yaml(dept).splitlines(), 1) if t.startswith("  status_map:"))
    assert '"GUAQI"' in failure.message and f"connections/yibao-rest.yaml:{line}" in failure.message


def test_a_bad_expression_is_refused_at_load_with_its_line(tmp_path, dept, monkeypatch):
    monkeypatch.setenv("CASE_SECRET", SECRET)
    folder = tmp_path / "connections"
    folder.mkdir()
    text = case_yaml(dept).replace("remote_id: data.caseNo", "remote_id: data.[caseNo")
    (folder / "case.yaml").write_text(text, encoding="utf-8")
    conns, _ = load_connections(folder, TYPES)
    with pytest.raises(ConfigInvalid) as exc:
        conns["case"].make(TYPES)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "data.[caseNo" in t)
    assert f"connections/case.yaml:{line}" in str(exc.value) and "data.[caseNo" in str(exc.value)


def test_verify(open_hub, dept):
    c = open_hub(case_yaml(dept)).connector("yibao-rest")
    good = c.verify("household", {"id_number": "330329199007010137", "name": "陈志强"})
    assert good.ok and good.detail == {"source": "household-db"}
    assert not c.verify("household", {"id_number": "330329199007010131", "name": "陈志强"}).ok


def test_submit_without_check_is_refused_at_load(tmp_path, dept, monkeypatch):
    monkeypatch.setenv("CASE_SECRET", SECRET)
    folder = tmp_path / "connections"
    folder.mkdir()
    (folder / "case.yaml").write_text(case_yaml(dept).replace("  check: {path: /me}\n", ""), encoding="utf-8")
    conns, _ = load_connections(folder, TYPES)
    with pytest.raises(ConfigInvalid, match="authenticated probe"):
        conns["case"].make(TYPES)


def test_files_mode_is_refused_for_rest(tmp_path, dept, monkeypatch):
    monkeypatch.setenv("CASE_SECRET", SECRET)
    folder = tmp_path / "connections"
    folder.mkdir()
    (folder / "case.yaml").write_text(case_yaml(dept).replace("mode: inline", "mode: files"), encoding="utf-8")
    conns, _ = load_connections(folder, TYPES)
    with pytest.raises(ConfigInvalid, match="files is for sftp"):
        conns["case"].make(TYPES)


def test_delivery_error_is_not_retryable_when_the_mapping_does_not_fit(open_hub, dept):
    hub = open_hub(case_yaml(dept).replace("data.caseNo", "data.caseId"))
    accepted(hub, 1)
    assert dispatch(hub).dead == 1
    error = rows(hub)[0].last_error
    line = next(i for i, t in enumerate(case_yaml(dept).splitlines(), 1) if "remote_id: data.caseNo" in t)
    assert f"connections/yibao-rest.yaml:{line}" in error and "'data.caseId'" in error


def test_the_worked_example_in_the_docs_connects_this_system(open_hub, dept, monkeypatch):
    """docs/connect/rest.md's connection file, as printed, pointed at this department."""
    doc = (Path(__file__).parent.parent / "docs" / "connect" / "rest.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 3.") :]
    text = section[section.index("```yaml\n") + 8 : section.index("```", section.index("```yaml\n") + 8)]
    monkeypatch.setenv("YB_CASE_SECRET", SECRET)
    hub = open_hub(text.replace("https://ybj-case.example.gov.cn", dept.root))
    assert hub.connector("yibao-rest").check().ok
    accepted(hub, 3)
    assert dispatch(hub).delivered == 3
    assert all(a.ok for checks in dept.verified.values() for a in checks) and len(dept.verified) == 3
    dept.decide("AJ2026000001", "DONE")
    dept.decide("AJ2026000002", "BH", "请补充居住证明")
    summary = sync(hub)
    assert (summary.decided, summary.supplements, summary.documents) == (1, 1, 1)
