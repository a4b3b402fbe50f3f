"""An SFTP department with its own file naming, connected by YAML only (docs/connect/sftp.md):

- the hub writes `SB_<item>_<part>.xml` (GB18030, root `<Case>`, fields of the department's
  choosing), each material beside it as `SB_<part>_<n>_<filename>`, then the marker
  `SB_<item>_<part>.xml.ok`;
- the department answers `RES_<part>.csv` (GB18030, Chinese headers, its own status words) with
  `RES_<part>.csv.ok` — or, in other configurations, XML or JSON.

The server is a real OpenSSH sshd on loopback (tests/support/sshd.py) serving the local file
system: "the department" reads what the hub uploaded, and writes its answers, straight on disk."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from hub import applications as svc
from hub.connection_config import load_connections
from hub.connectors import DeliveryError, MaterialRef, PartMessage, PollFailure, Receipt, Update
from hub.context import Hub
from hub.errors import ConfigInvalid
from hub.jobs.dispatch import dispatch
from hub.jobs.sync import sync
from hub.mapping import MappingError
from hub.materials import MaterialStore
from hub.outgoing_materials import OutgoingMaterials
from hub.plugins import PluginHost
from hub.storage.tables import OutboxRow
from plugins.sftp.connector import SftpConnector
from plugins.sftp.spec import SftpSpec
from tests.conftest import PDF
from tests.support.samples import HZ_CLERK
from tests.support.sshd import HOST, SshServer, command, running_sshd
from tests.test_dispatch import YBJ, filing

TYPES = PluginHost.configured(None).connector_types

# The connection file as ops write it (placeholders filled per test): the department's own names
# and shapes. Values the tests vary are at the end, so the line numbers above stay put.
SHEBAO = """\
type: sftp
description: 某县社会保险事业管理中心 批量交换（测试部门）
config:
  host: {host}
  port: {port}
  username: {user}
  auth: {{private_key: "file:{key}"}}
  host_key_fingerprint: "{fingerprint}"
  outbox_dir: {outbox}
  inbox_dir: {inbox}
  encoding: gb18030
  connect_timeout_seconds: 5
  timeout_seconds: 10
  materials: {{mode: files}}
  outgoing:
    name: "SB_{{{{ part.item_code }}}}_{{{{ part.part_id }}}}.xml"
    format: xml
    root: Case
    body:
      CaseNo: "{{{{ part.part_id }}}}"
      ItemCode: "{{{{ part.item_code }}}}"
      Title: "{{{{ part.item_title }}}}（{{{{ part.desk }}}}）"
      Applicant:
        Name: "{{{{ part.applicant_name }}}}"
        IdNo: "{{{{ part.applicant_id }}}}"
      Phone: "{{{{ part.form.contact_phone }}}}"
      Attachments:
        Attachment: '{{{{ materials[*].{{"@file": file, Name: name, Sha256: sha256, Size: size}} }}}}'
    material_name: "SB_{{{{ part.part_id }}}}_{{{{ index }}}}_{{{{ material.filename }}}}"
  results:
    name: "RES_{{{{ part_id }}}}.csv"
    format: csv
    status: 状态
    reason: 原因
    documents: 文书文件
  status_map:
    已办结: approved
    退回补正: supplement_requested
    不予受理: denied
    已受理: received
    审核中: in_review
{extra}"""

STATUS_MAP_LINE = SHEBAO.splitlines().index("  status_map:") + 1


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    (tmp_path / "upload").mkdir()
    return tmp_path / "upload"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "download").mkdir()
    return tmp_path / "download"


@pytest.fixture
def store(tmp_path: Path) -> MaterialStore:
    return MaterialStore(tmp_path / "materials", 64 * 2**20, ["application/pdf", "image/jpeg"])


def stored(
    store: MaterialStore, name: str, filename: str, data: bytes, media_type: str = "application/pdf"
) -> MaterialRef:
    """A material as intake leaves it: its bytes in the store under their sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    path = store.path_of(sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return MaterialRef(name=name, filename=filename, sha256=sha256, media_type=media_type, size=len(data))


def part(i: int, materials: list[MaterialRef] | None = None, **changes: object) -> PartMessage:
    fields: dict[str, object] = {
        "part_id": f"6f1c2d3e-0000-4000-8000-{i:012d}",
        "application_number": f"330329-20261204-{i:05d}",
        "item_code": "GG00402001",
        "item_title": "城乡居民基本养老保险参保登记",
        "department": "ts-rsj",
        "channel": "window",
        "desk": "罗阳镇便民服务中心",
        "collecting_division": "330329",
        "deciding_division": "330329",
        "applicant_type": "person",
        "applicant_name": "叶䶮<&\"'>",  # a rare character, and markup that must stay text
        "applicant_id": "330329195003150214",
        "form": {"contact_phone": "13905770001"},
        "materials": materials or [],
    }
    fields.update(changes)
    return PartMessage.model_validate(fields)


Make = Callable[..., SftpConnector]


@pytest.fixture
def make(tmp_path: Path, sshd: SshServer, outbox: Path, inbox: Path, store: MaterialStore) -> Iterator[Make]:
    """A connector made the way the hub makes it (connections/shebao-dept.yaml → Connection.make),
    with the hub's material access over `store`."""
    made: list[SftpConnector] = []

    def build(extra: str = "", *, port: int | None = None, key: Path | None = None, text: str | None = None):
        connection = load(tmp_path, sshd, outbox, inbox, extra, port=port, key=key, text=text)
        connector = connection.make(TYPES)
        assert isinstance(connector, SftpConnector)
        connector.materials = OutgoingMaterials(store, None, connection.name)  # type: ignore[arg-type]  # no pull links here
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def load(tmp_path, sshd, outbox, inbox, extra="", *, port=None, key=None, text=None):
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    text = text or SHEBAO
    filled = text.format(
        host=sshd.host,
        port=port or sshd.port,
        user=sshd.user,
        key=key or sshd.client_key,
        fingerprint=sshd.host_fingerprint,
        outbox=outbox,
        inbox=inbox,
        extra=extra,
    )
    (folder / "shebao-dept.yaml").write_text(filled, encoding="utf-8")
    connections, problems = load_connections(folder, TYPES)
    assert problems == []
    return connections["shebao-dept"]


def department_answers(inbox: Path, name: str, text: str, encoding: str = "gb18030") -> None:
    """The department's side: the result file, then its marker."""
    (inbox / name).write_bytes(text.encode(encoding))
    (inbox / f"{name}.ok").write_bytes(b"")


def result_csv(p: PartMessage, status: str, reason: str = "", document: str = "") -> str:
    return f"办件编号,状态,原因,文书文件\r\n{p.part_id},{status},{reason},{document}\r\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- check


def test_check_proves_the_login_and_lists_both_folders(sshd: SshServer, make: Make, monkeypatch, inbox: Path):
    ok = make().check()
    assert ok.ok, ok.message
    wrong_key = make(key=sshd.stranger_key).check()
    assert not wrong_key.ok and "authentication failed" in wrong_key.message
    # a password the server does not take (this sshd takes keys only: every password is wrong)
    monkeypatch.setenv("SHEBAO_PASSWORD", "pa55-不对")
    by_password = SHEBAO.replace('auth: {{private_key: "file:{key}"}}', 'auth: {{password: "${{SHEBAO_PASSWORD}}"}}')
    wrong_password = make(text=by_password).check()
    assert not wrong_password.ok and "authentication failed" in wrong_password.message
    assert "pa55-不对" not in wrong_password.message
    inbox.rmdir()
    missing = make().check()
    assert not missing.ok and "inbox_dir" in missing.message


# ---------------------------------------------------------------------- submit


def test_submit_writes_the_departments_xml_with_materials_complete_before_the_marker(
    sshd: SshServer, make: Make, store: MaterialStore, outbox: Path
):
    scans = {
        "身份证.pdf": PDF + os.urandom(3 * 2**20),  # large enough to take several writes
        "户口簿.pdf": PDF + os.urandom(40_000),
        "照片.jpg": b"\xff\xd8\xff\xe0" + os.urandom(10_000),
    }
    refs = [
        stored(store, name.split(".")[0], name, data, "image/jpeg" if name.endswith(".jpg") else "application/pdf")
        for name, data in scans.items()
    ]
    p = part(1, refs)
    connector = make()
    name = f"SB_GG00402001_{p.part_id}.xml"
    marker = outbox / f"{name}.ok"
    material_files = [f"SB_{p.part_id}_{i}_{filename}" for i, filename in enumerate(scans, start=1)]

    # the department watching its folder: the moment the marker shows, every file must be whole
    seen: dict[str, int] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if marker.exists():
                seen.update({f: (outbox / f).stat().st_size if (outbox / f).exists() else -1 for f in material_files})
                seen[name] = (outbox / name).stat().st_size if (outbox / name).exists() else -1
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    offset = sshd.log_offset()
    try:
        receipt = connector.submit(p)
    except BaseException:
        stop.set()
        raise
    finally:
        watcher.join(timeout=30)  # once it has seen the marker (there now, if submit returned)
    assert receipt.remote_id == name and receipt.received_at is not None
    assert seen == {**{f: len(scans[f.split("_", 3)[3]]) for f in material_files}, name: (outbox / name).stat().st_size}
    assert sorted(os.listdir(outbox)) == sorted([*material_files, name, f"{name}.ok"])  # nothing temporary left

    # the department reads the materials: the bytes and sha256 the hub recorded
    for file_name, (filename, data) in zip(material_files, scans.items(), strict=True):
        got = (outbox / file_name).read_bytes()
        assert got == data and sha(got) == sha(scans[filename])

    # the part file: GB18030 XML in the department's shape, markup in a name kept as text
    raw = (outbox / name).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    case = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
    assert case.tag == "Case" and case.findtext("CaseNo") == p.part_id
    assert case.findtext("Applicant/Name") == "叶䶮<&\"'>" and case.findtext("Phone") == "13905770001"
    assert case.findtext("Title") == "城乡居民基本养老保险参保登记（罗阳镇便民服务中心）"
    attachments = case.findall("Attachments/Attachment")
    assert [(a.get("file"), a.findtext("Sha256"), a.findtext("Size")) for a in attachments] == [
        (f, r.sha256, str(r.size)) for f, r in zip(material_files, refs, strict=True)
    ]

    # the order the server saw: every material renamed into place, then the part, then the marker
    ops = [line for line in sshd.wait_for_log(offset, f"{name}.ok") if "rename" in line or "open" in line]
    renamed = [i for i, line in enumerate(ops) if "posix-rename" in line]
    marker_opened = next(i for i, line in enumerate(ops) if line.startswith("open") and f"{name}.ok" in line)
    assert len(renamed) == 4 and max(renamed) < marker_opened

    # what `hub connectors render` shows is what was written
    [preview] = connector.preview(p)
    assert preview.body.encode("gb18030") == raw and f"{name}.ok (marker, last)" in preview.attachments[-1]


def test_a_material_whose_bytes_do_not_match_is_not_delivered(make: Make, store: MaterialStore, outbox: Path):
    ref = stored(store, "身份证", "身份证.pdf", PDF + b"scan")
    store.path_of(ref.sha256).write_bytes(PDF + b"tampered")  # the store's file changed under us
    with pytest.raises(DeliveryError, match="sha256") as exc:
        make().submit(part(2, [ref]))
    assert not exc.value.retryable
    assert os.listdir(outbox) == []  # no marker, no part, no half material


def test_inline_materials_go_as_base64_inside_the_part(make: Make, store: MaterialStore, outbox: Path):
    data = PDF + os.urandom(5000)
    ref = stored(store, "身份证", "身份证.pdf", data)
    extra = '  outgoing: {name: "{{ part.part_id }}.json", format: json}\n  materials: {mode: inline}\n'
    connector = make(text=_without_outgoing_and_materials(SHEBAO), extra=extra)
    p = part(3, [ref])
    receipt = connector.submit(p)
    body = json.loads((Path(connector.spec.outbox_dir) / receipt.remote_id).read_bytes().decode("gb18030"))
    [material] = body["materials"]
    got = base64.b64decode(material["content"])
    assert got == data and sha(got) == material["sha256"] == ref.sha256
    assert body["applicant_name"] == p.applicant_name  # the default body: the part as the hub sends it
    assert sorted(os.listdir(outbox)) == [receipt.remote_id, f"{receipt.remote_id}.ok"]

    small = make(
        text=_without_outgoing_and_materials(SHEBAO), extra=extra.replace("inline}", "inline, max_inline_bytes: 100}")
    )
    with pytest.raises(MappingError, match="max_inline_bytes") as exc:
        small.submit(part(4, [ref]))
    assert not exc.value.retryable


class _Links:
    """Pull mode's link maker (the hub's is tested with its /materials route): a link per file."""

    def url(self, ref: MaterialRef, part_id: str, ttl_hours: float = 72) -> str:
        return f"https://hub.example.gov.cn/materials/{part_id}/{ref.sha256}?ttl={ttl_hours:g}"


def test_csv_part_files_and_pull_links(make: Make, store: MaterialStore, outbox: Path):
    ref = stored(store, "身份证", "身份证.pdf", PDF + b"scan")
    extra = (
        '  outgoing:\n    name: "CASE_{{ part.part_id }}.csv"\n    format: csv\n'
        '    body: \'{{ materials[*].{"材料": name, "链接": url, "sha256": sha256} }}\'\n'
        "  materials: {mode: pull, link_ttl_hours: 48}\n"
    )
    connector = make(text=_without_outgoing_and_materials(SHEBAO), extra=extra)
    connector.materials = _Links()  # type: ignore[assignment]
    p = part(5, [ref, stored(store, "户口簿", "户口簿.pdf", PDF + b"hukou")])
    receipt = connector.submit(p)
    rows = list(csv.reader(io.StringIO((outbox / receipt.remote_id).read_bytes().decode("gb18030"), newline="")))
    assert rows[0] == ["材料", "链接", "sha256"] and [r[0] for r in rows[1:]] == ["身份证", "户口簿"]
    assert rows[1][1:] == [f"https://hub.example.gov.cn/materials/{p.part_id}/{ref.sha256}?ttl=48", ref.sha256]
    assert sorted(os.listdir(outbox)) == [receipt.remote_id, f"{receipt.remote_id}.ok"]  # links only, no files


def _without_outgoing_and_materials(text: str) -> str:
    lines = text.splitlines(keepends=True)
    start = lines.index("  materials: {{mode: files}}\n")
    end = lines.index("  results:\n")
    return "".join(lines[:start] + lines[end:])


# ---------------------------------------------------------------------- results


def test_gb18030_csv_results_are_mapped_back_and_bad_ones_are_recorded(make: Make, inbox: Path):
    connector = make()
    approved, returned, odd, pending, broken = (part(i) for i in range(10, 15))
    receipts = [
        Receipt(part_id=p.part_id, remote_id=f"SB_GG00402001_{p.part_id}.xml")
        for p in (approved, returned, odd, pending, broken)
    ]
    (inbox / "决定书-10.pdf").write_bytes(PDF)
    department_answers(inbox, f"RES_{approved.part_id}.csv", result_csv(approved, "已办结", "", "决定书-10.pdf"))
    department_answers(inbox, f"RES_{returned.part_id}.csv", result_csv(returned, "退回补正", "缺少户口簿首页（䶮）"))
    department_answers(inbox, f"RES_{odd.part_id}.csv", result_csv(odd, "挂起"))  # a word nobody mapped
    (inbox / f"RES_{pending.part_id}.csv").write_bytes(b"")  # still being written: no marker
    department_answers(
        inbox, f"RES_{broken.part_id}.csv", result_csv(broken, "已办结") + f"{broken.part_id},不予受理,,\r\n"
    )

    answers = connector.poll(receipts)
    updates = {a.part_id: a for a in answers if isinstance(a, Update)}
    failures = {a.part_id: a.message for a in answers if isinstance(a, PollFailure)}
    assert sorted(updates) == sorted([approved.part_id, returned.part_id])
    assert sorted(failures) == sorted([odd.part_id, broken.part_id])  # the pending one: no answer yet

    done = updates[approved.part_id]
    assert done.status == "approved" and done.reason is None and done.remote_id == receipts[0].remote_id
    [document] = done.documents
    assert (document.name, document.media_type, document.content) == ("决定书-10.pdf", "application/pdf", PDF)
    back = updates[returned.part_id]
    assert back.status == "supplement_requested" and back.reason == "缺少户口簿首页（䶮）"

    # an unmapped word: named, with the connection file and the line of its status_map
    assert 'unmapped status "挂起"' in failures[odd.part_id]
    assert f"connections/shebao-dept.yaml:{STATUS_MAP_LINE} (config.status_map)" in failures[odd.part_id]
    assert "one record" in failures[broken.part_id] and "config.results.format" in failures[broken.part_id]

    # the department fixes its answer: the next poll reads it
    department_answers(inbox, f"RES_{odd.part_id}.csv", result_csv(odd, "审核中"))
    again = {a.part_id: a for a in connector.poll(receipts[2:3])}
    assert isinstance(again[odd.part_id], Update) and again[odd.part_id].status == "in_review"


def test_xml_results_parsed_without_entities_and_json_results_by_path(make: Make, inbox: Path):
    xml = (
        '  results:\n    name: "{{ remote_stem }}.result.xml"\n    format: xml\n    status: Status\n'
        '    reason: Reason\n    documents: \'to_array(Documents.Document)[*].{file: "@file", name: "@title"}\'\n'
    )
    connector = make(text=_without_results(SHEBAO), extra=xml)
    ok, exploding = part(20), part(21)
    receipts = [Receipt(part_id=p.part_id, remote_id=f"SB_{p.part_id}.xml") for p in (ok, exploding)]
    (inbox / "证明.pdf").write_bytes(PDF)
    department_answers(
        inbox,
        f"SB_{ok.part_id}.result.xml",
        '<?xml version="1.0" encoding="GB18030"?>\n<Result xmlns="urn:shebao:result"><Status>不予受理</Status>'
        '<Reason>缴费年限不足十五年</Reason><Documents><Document file="证明.pdf" title="不予受理通知书"/></Documents></Result>',
    )
    department_answers(
        inbox,
        f"SB_{exploding.part_id}.result.xml",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<Result><Status>&b;</Status></Result>",
    )
    answers = {a.part_id: a for a in connector.poll(receipts)}
    decided = answers[ok.part_id]
    assert isinstance(decided, Update) and (decided.status, decided.reason) == ("denied", "缴费年限不足十五年")
    assert [(d.name, d.content) for d in decided.documents] == [("不予受理通知书", PDF)]
    refused = answers[exploding.part_id]
    assert isinstance(refused, PollFailure) and "DOCTYPE" in refused.message

    as_json = (
        '  results:\n    name: "{{ part_id }}.json"\n    format: json\n    status: data.state\n'
        "    reason: data.note\n    documents: null\n"
    )
    connector = make(text=_without_results(SHEBAO), extra=as_json)
    p = part(22)
    department_answers(inbox, f"{p.part_id}.json", json.dumps({"data": {"state": "已受理", "note": None}}), "gb18030")
    [update] = connector.poll([Receipt(part_id=p.part_id, remote_id="x")])
    assert isinstance(update, Update) and update.status == "received" and update.reason is None
    department_answers(inbox, f"{p.part_id}.json", json.dumps({"data": {}}))
    [failure] = connector.poll([Receipt(part_id=p.part_id, remote_id="x")])
    assert (
        isinstance(failure, PollFailure)
        and "'data.state'" in failure.message
        and "config.results.status" in failure.message
    )


def _without_results(text: str) -> str:
    lines = text.splitlines(keepends=True)
    start, end = lines.index("  results:\n"), lines.index("  status_map:\n")
    return "".join(lines[:start] + lines[end:])


# ---------------------------------------------------------------------- bounds


def test_a_submit_or_poll_past_max_call_seconds_is_cut_off(
    make: Make, store: MaterialStore, outbox: Path, inbox: Path, caplog
):
    # max_call_seconds this small is passed by the time the SSH handshake is done: what a server
    # answering at a trickle does to a real budget, without the wait
    hurried = make("  max_call_seconds: 0.001\n")
    scan = PDF + os.urandom(2 * 2**20)
    p = part(60, [stored(store, "身份证", "身份证.pdf", scan)])
    with pytest.raises(DeliveryError, match="max_call_seconds") as exc:
        hurried.submit(p)
    assert exc.value.retryable
    assert not [
        n for n in os.listdir(outbox) if n.endswith(".ok") or not n.startswith(".")
    ]  # no marker, nothing in place
    assert hurried._take() is None  # the cut session is not used again
    receipt = make().submit(p)  # the retry, within its budget
    assert (outbox / f"SB_{p.part_id}_1_身份证.pdf").read_bytes() == scan and (
        outbox / f"{receipt.remote_id}.ok"
    ).exists()

    # a poll reads at least one result, then leaves the rest for the next sync (each poll starts
    # at a random receipt: which one it reads is not fixed)
    parts = [part(i) for i in range(61, 64)]
    for q in parts:
        department_answers(inbox, f"RES_{q.part_id}.csv", result_csv(q, "审核中"))
    receipts = [Receipt(part_id=q.part_id, remote_id=f"SB_{q.part_id}.xml") for q in parts]
    [answer] = make("  max_call_seconds: 0.001\n").poll(receipts)
    assert isinstance(answer, Update) and answer.status == "in_review"
    assert answer.part_id in {q.part_id for q in parts}
    assert "2 receipts left for the next sync" in caplog.text
    assert len(make().poll(receipts)) == 3

    # a result whose document is still being read when the budget runs out: that part's failure
    (inbox / "大文书.pdf").write_bytes(PDF + os.urandom(2**20))
    slow = part(64)
    department_answers(inbox, f"RES_{slow.part_id}.csv", result_csv(slow, "已办结", "", "大文书.pdf"))
    [failure] = make("  max_call_seconds: 0.001\n").poll([Receipt(part_id=slow.part_id, remote_id="x")])
    assert isinstance(failure, PollFailure) and "max_call_seconds" in failure.message


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("find", "replace", "message"),
    [
        ('name: "SB_{{{{ part.item_code }}}}_', 'name: "out/SB_{{{{ part.item_code }}}}_', "one file name"),
        ('name: "RES_{{{{ part_id }}}}.csv"', 'name: "../RES_{{{{ part_id }}}}.csv"', "one file name"),
        ('material_name: "SB_', 'material_name: ".SB_', "one file name"),
        ("_{{{{ part.part_id }}}}.xml", ".xml", "must use part.part_id"),  # two parts, one file: a false success
        ('name: "RES_{{{{ part_id }}}}.csv"', 'name: "RES.csv"', "must use part_id"),  # every part, one answer
        ("status: 状态", "status: 状态[", "invalid expression"),
        ("已受理: received", "已受理: accepted", "received"),
        ("materials: {{mode: files}}", "materials: {{mode: multipart}}", "multipart is for rest"),
        ("format: csv", "format: xlsx", "json"),
        ("root: Case", "root: 1Case", "XML element name"),
    ],
)
def test_mistakes_in_the_file_are_refused_at_load_with_file_and_line(
    tmp_path, sshd, outbox, inbox, find, replace, message
):
    assert find in SHEBAO
    text = SHEBAO.replace(find, replace)
    line = next(i for i, x in enumerate(text.splitlines(), start=1) if replace in x)
    with pytest.raises(ConfigInvalid) as exc:
        load(tmp_path, sshd, outbox, inbox, text=text).make(TYPES)
    shown = str(exc.value)
    assert message in shown and f"shebao-dept.yaml:{line}" in shown, shown


def test_a_name_made_unsafe_by_the_data_is_refused_before_anything_is_written(make: Make, outbox: Path):
    with pytest.raises(MappingError, match="unsafe file name") as exc:
        make().submit(part(30, item_code="../../etc"))
    assert not exc.value.retryable and "config.outgoing.name" in str(exc.value)
    with pytest.raises(MappingError, match="over 255 bytes") as exc:
        make().submit(part(31, item_code="养" * 90))
    assert "config.outgoing.name" in str(exc.value)
    assert os.listdir(outbox) == []


# ---------------------------------------------------------------------- outage


def _listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_outage_is_retryable_then_delivered_exactly_once(
    tmp_path: Path, store: MaterialStore, outbox: Path, inbox: Path
):
    folder = tmp_path / "own-sshd"
    with running_sshd(folder) as server:  # its own server: this test stops and restarts it
        connection = load(tmp_path, server, outbox, inbox)
        connector = connection.make(TYPES)
        assert isinstance(connector, SftpConnector)
        connector.materials = OutgoingMaterials(store, None, connection.name)  # type: ignore[arg-type]
        scan = PDF + os.urandom(100_000)
        p = part(40, [stored(store, "身份证", "身份证.pdf", scan)])
        restarted: subprocess.Popen | None = None
        try:
            os.kill(int((folder / "sshd.pid").read_text().strip()), signal.SIGTERM)  # the sshd this test started
            _wait(lambda: not _listening(server.port), "sshd to stop")
            with pytest.raises(DeliveryError, match="connection failed") as exc:
                connector.submit(p)
            assert exc.value.retryable
            assert os.listdir(outbox) == []

            with (folder / "sshd-restarted.log").open("wb") as log:
                restarted = subprocess.Popen(command(folder / "sshd_config"), stdout=log, stderr=log)
            _wait(lambda: _listening(server.port), "sshd to listen again")
            offset = server.log_offset()
            first = connector.submit(p)  # the dispatcher's retry
            name = f"SB_GG00402001_{p.part_id}.xml"
            assert first.remote_id == name
            server.wait_for_log(offset, f"{name}.ok")
            again = connector.submit(p)  # a retry after a lost answer: nothing written twice
            assert (again.remote_id, again.received_at) == (first.remote_id, first.received_at)
            assert connector.poll([first]) == []  # on the same session: its listing is logged after the retry
            log_lines = server.wait_for_log(offset, f'opendir "{inbox}"')
            written = [line for line in log_lines if line.startswith("open") and "WRITE" in line]
            assert len(written) == 3  # the material, the part, the marker: once each
            assert (outbox / f"SB_{p.part_id}_1_身份证.pdf").read_bytes() == scan
        finally:
            connector.close()
            if restarted is not None:
                restarted.terminate()
                restarted.wait(timeout=10)


# ---------------------------------------------------------------------- the documentation's example


DOC = Path(__file__).parents[1] / "docs" / "connect" / "sftp.md"


def test_the_worked_example_in_the_docs_runs_as_written(tmp_path, sshd, outbox, inbox, store):
    """docs/connect/sftp.md's connection file, with only the server's address, key and folders
    swapped for this test's (line for line, so the line numbers the page quotes are checked)."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    swaps = {
        "host: sftp.rsj.example.gov.cn": f"host: {sshd.host}",
        "port: 22": f"port: {sshd.port}",
        "username: tongban": f"username: {sshd.user}",
        "file:/run/secrets/shebao_key": f"file:{sshd.client_key}",
        "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8": sshd.host_fingerprint,
        "outbox_dir: /upload": f"outbox_dir: {outbox}",
        "inbox_dir: /download": f"inbox_dir: {inbox}",
    }
    for find, replace in swaps.items():
        assert find in block
        block = block.replace(find, replace)
    folder = tmp_path / "doc-connections"
    folder.mkdir()
    (folder / "shebao-dept.yaml").write_text(block, encoding="utf-8")
    connections, problems = load_connections(folder, TYPES)
    assert problems == []
    connector = connections["shebao-dept"].make(TYPES)
    assert isinstance(connector, SftpConnector)
    connector.materials = OutgoingMaterials(store, None, "shebao-dept")  # type: ignore[arg-type]
    # the bounds as the page writes them are the defaults, and its longest delivery fits the
    # default dispatch lease (300 s) with the share the hub keeps free
    assert connector.spec.max_poll_bytes == SftpSpec.model_fields["max_poll_bytes"].default == 256 * 2**20
    assert connector.longest_call() == (245, ("max_call_seconds",)) and 245 <= 0.9 * 300
    try:
        assert connector.check().ok
        scan = PDF + os.urandom(20_000)
        p = part(50, [stored(store, "身份证", "身份证.pdf", scan)])
        receipt = connector.submit(p)
        assert receipt.remote_id == f"SB_GG00402001_{p.part_id}.xml"
        assert (outbox / f"SB_{p.part_id}_1_身份证.pdf").read_bytes() == scan
        department_answers(inbox, f"RES_{p.part_id}.csv", result_csv(p, "退回补正", "缺少户口簿首页"))
        [update] = connector.poll([receipt])
        assert isinstance(update, Update) and (update.status, update.reason) == (
            "supplement_requested",
            "缺少户口簿首页",
        )
        department_answers(inbox, f"RES_{p.part_id}.csv", result_csv(p, "挂起"))
        [failure] = connector.poll([receipt])
        assert isinstance(failure, PollFailure)
        quoted = 'connections/shebao-dept.yaml:35 (config.status_map): 未映射的状态\n  unmapped status "挂起"'
        assert quoted.replace("\n  ", " ") in failure.message and quoted in text
    finally:
        connector.close()

    # the load-time refusal the page's table quotes, at the line it names
    (folder / "shebao-dept.yaml").write_text(block.replace('name: "SB_{{', 'name: "out/SB_{{', 1), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as exc:
        load_connections(folder, TYPES)[0]["shebao-dept"].make(TYPES)
    assert "connections/shebao-dept.yaml:15:" in str(exc.value) and "须为单个文件名" in str(exc.value)
    assert "`connections/shebao-dept.yaml:15: … 文件名模板 'out/SB_…' 须为单个文件名`" in text


# ---------------------------------------------------------------------- through the hub


def test_through_the_hub_dispatch_delivers_the_scans_and_sync_records_each_answer(
    home, db_url, clock, sshd, outbox, inbox
):
    """The hub's own path: dispatch makes the connector from connections/ with the hub's material
    store, the department reads the applicant's scans, sync applies one answer and records the
    other (an unmapped word) on its outbox row."""
    # the catalogue's 异地就医备案 items route to `yibao-rest`: here that connection is this SFTP drop
    (home / "connections" / "yibao-rest.yaml").write_text(
        SHEBAO.format(
            host=sshd.host,
            port=sshd.port,
            user=sshd.user,
            key=sshd.client_key,
            fingerprint=sshd.host_fingerprint,
            outbox=outbox,
            inbox=inbox,
            extra="",
        ),
        encoding="utf-8",
    )
    hub = Hub.open(home, database_url=db_url, clock=clock)
    try:
        applications = [filing(i) for i in range(2)]
        for new in applications:
            svc.transition(hub, svc.create(hub, new, HZ_CLERK).number, "accept", YBJ)
        assert dispatch(hub).delivered == 2
        with hub.sessions() as s:
            rows = sorted(s.scalars(select(OutboxRow)), key=lambda r: r.remote_id)
        for row in rows:
            case = etree.fromstring((outbox / row.remote_id).read_bytes())
            sent = {
                a.findtext("Name"): (outbox / a.get("file")).read_bytes()
                for a in case.findall("Attachments/Attachment")
            }
            applicant = next(a for a in applications if a.applicant.name == case.findtext("Applicant/Name"))
            assert sent == {m.name: m.content for m in applicant.materials}  # the applicant's very bytes
        first, second = rows
        (inbox / "决定书.pdf").write_bytes(PDF)
        department_answers(inbox, f"RES_{first.part_id}.csv", result_csv(_part_of(first), "已办结", "", "决定书.pdf"))
        department_answers(inbox, f"RES_{second.part_id}.csv", result_csv(_part_of(second), "挂起"))
        summary = sync(hub)
        assert (summary.decided, summary.documents, summary.errors) == (1, 1, 1)
        with hub.sessions() as s:
            by_id = {r.part_id: r for r in s.scalars(select(OutboxRow))}
        assert by_id[first.part_id].remote_status == "approved" and by_id[first.part_id].synced_at is not None
        error = by_id[second.part_id].last_error or ""
        assert 'unmapped status "挂起"' in error and f"yibao-rest.yaml:{STATUS_MAP_LINE}" in error
        assert dispatch(hub).delivered == 0  # nothing sent twice
    finally:
        hub.close()


def _part_of(row) -> PartMessage:
    return part(0, part_id=row.part_id)


# ---------------------------------------------------------------------- the commands ops use


def _hub(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_HOME", "HUB_DATABASE_URL")}
    env["COLUMNS"] = "400"  # the check table's reason column on one line
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_check_render_and_poll_from_the_command_line(tmp_path, sshd, outbox, inbox):
    home = tmp_path / "home"
    made = subprocess.run([sys.executable, "-m", "hub", "init", str(home)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    connection = home / "connections" / "shebao-sftp.yaml"  # the sample 社保 items route here
    values = {
        "host": sshd.host,
        "port": sshd.port,
        "user": sshd.user,
        "fingerprint": sshd.host_fingerprint,
        "outbox": outbox,
        "inbox": inbox,
        "extra": "",
    }
    connection.write_text(SHEBAO.format(key=sshd.client_key, **values), encoding="utf-8")

    checked = _hub(home, "connectors", "check", "shebao-sftp")
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr

    rendered = _hub(home, "connectors", "render", "shebao-sftp")
    assert rendered.returncode == 0, rendered.stderr
    [message] = json.loads(rendered.stdout)["messages"]
    assert (
        message["summary"].startswith(f"SFTP {sshd.user}@{sshd.host}:{outbox}/SB_")
        and "(xml, gb18030)" in message["summary"]
    )
    case = etree.fromstring(message["body"].split("?>", 1)[1].encode())  # the declaration names GB18030; this is text
    assert case.tag == "Case" and case.findtext("CaseNo") == "sample-part-0001"
    assert message["attachments"][0].startswith(f"{outbox}/SB_sample-part-0001_1_sample.pdf (")
    assert os.listdir(outbox) == []  # nothing sent

    department_answers(inbox, "RES_p-1.csv", "办件编号,状态,原因,文书文件\r\np-1,退回补正,缺少户口簿首页,\r\n")
    polled = _hub(home, "connectors", "poll", "shebao-sftp", "--receipt", "SB_X_p-1.xml", "--part", "p-1")
    assert polled.returncode == 0, polled.stdout + polled.stderr
    [update] = json.loads(polled.stdout)["updates"]
    assert (update["status"], update["reason"]) == ("supplement_requested", "缺少户口簿首页")
    department_answers(inbox, "RES_p-1.csv", "办件编号,状态,原因,文书文件\r\np-1,挂起,,\r\n")
    polled = _hub(home, "connectors", "poll", "shebao-sftp", "--receipt", "SB_X_p-1.xml", "--part", "p-1")
    assert polled.returncode == 1 and 'unmapped status \\"挂起\\"' in polled.stdout

    connection.write_text(SHEBAO.format(key=sshd.stranger_key, **values), encoding="utf-8")
    refused = _hub(home, "connectors", "check", "shebao-sftp")
    assert refused.returncode == 1 and "FAIL" in refused.stdout and "authentication failed" in refused.stdout
