"""Intake batches from a bank outlet's SFTP drop (a real OpenSSH sshd) and from an enclave
window's REST system (the sandbox), through `ingest`: good records received, bad ones reported
with line and reason on the source, mismatched batches quarantined, nothing twice."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub import applications as svc
from hub.applications import SYSTEM
from hub.batches.writer import write_batch
from hub.context import Hub
from hub.events import verify_chain
from hub.jobs.ingest import ingest
from hub.jobs.locks import exclusive
from hub.storage.tables import Application, Event, IntakeBatch
from plugins.sandbox.enclave_source import EnclaveSource
from tests.support.intake_samples import HALL_ONLY, files_for, material, material_files, person_id, record, sha
from tests.support.samples import AGE_WORDS, FUND_RENT, FUND_RENT_FORM, POST_WORDS, TELLER, YOUNG, officer
from tests.support.sshd import SshServer, running_sshd

TOKEN = "enclave-test-token"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    """The bank's SFTP drop folder (sshd serves the local file system)."""
    (tmp_path / "bank-drop").mkdir()
    return tmp_path / "bank-drop"


@pytest.fixture
def enclave(tmp_path: Path) -> Iterator[EnclaveSource]:
    source = EnclaveSource(tmp_path / "enclave", token=TOKEN).start()
    yield source
    source.stop()


@pytest.fixture
def hub(home: Path, db_url: str, clock, sshd: SshServer, drop: Path, enclave: EnclaveSource, monkeypatch):
    monkeypatch.setenv("ENCLAVE_TOKEN", TOKEN)
    (home / "connections" / "bank-xiahong-sftp.yaml").write_text(
        f"""type: sftp
intake: {{desks: [bank-xiahong], chunk: 2}}
config:
  host: {sshd.host}
  port: {sshd.port}
  username: {sshd.user}
  auth: {{private_key: "file:{sshd.client_key}"}}
  host_key_fingerprint: "{sshd.host_fingerprint}"
  inbox_dir: "{drop}"
  outbox_dir: "{drop}/unused"
""",
        encoding="utf-8",
    )
    (home / "connections" / "enclave-hangzhou-rest.yaml").write_text(
        f"""type: rest
intake: {{desks: [enclave-hangzhou]}}
config:
  base_url: {enclave.url}
  auth: {{bearer: "${{ENCLAVE_TOKEN}}"}}
  retries: 0
""",
        encoding="utf-8",
    )
    h = Hub.open(home, database_url=db_url, clock=clock)
    yield h
    h.close()


def drop_batch(folder: Path, batch_id: str, records, *, desk: str = "bank-xiahong", files=None, **kw) -> Path:
    files = files_for(records) | (files or {})
    write_batch(folder / batch_id, batch_id=batch_id, desk=desk, records=records, files=files, **kw)
    (folder / f"{batch_id}.ok").write_bytes(b"")
    return folder / batch_id


def applications(hub) -> list[Application]:
    with hub.sessions() as s:
        return list(s.scalars(select(Application).order_by(Application.id)))


def errors_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_good_records_are_received_bad_ones_reported_with_line_and_reason(hub, drop):
    good = [record(1, with_materials=True), record(2), record(3)]
    files = material_files(1) | {"materials/x.pdf": b"%PDF-1.4 unreferenced but listed"}
    bad = [
        record(4, applicant={"type": "person", "name": "错号", "id": person_id(4)[:-1] + "0"}),  # check digit
        record(5, subject=HALL_ONLY),  # not delegated to bank outlets
        record(6, form={k: v for k, v in record(6)["form"].items() if k != "contact_phone"}),  # required field
        record(7, materials=[{"name": "居民身份证", "file": "materials/none.pdf", "sha256": "0" * 64}]),
        record(8, materials=[{"name": "居民身份证", "file": "materials/x.pdf", "sha256": "1" * 64}]),
    ]
    folder = drop_batch(drop, "XH-20261123-01", good[:1] + bad + good[1:], files=files)
    # a bank system's stray bytes and an enormous line, written into the records as they come
    lines = (folder / "records.jsonl").read_bytes().splitlines(keepends=True)
    lines.insert(3, b'{"record_id": "XH-bad-bytes", "applicant": "\xff\xfe"}\n')
    lines.insert(5, b'{"record_id": "' + b"X" * 10_000_000 + b'"}\n')
    (folder / "records.jsonl").write_bytes(b"".join(lines))
    _refresh_manifest(folder, count=len(lines))

    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.batches, summary.records, summary.created, summary.bad) == (1, 10, 3, 7)
    report = errors_of(drop / "errors" / "XH-20261123-01.jsonl")
    by_line = {(e["line"], e["field"]) for e in report}
    assert {
        (2, "applicant.id"),
        (4, "(line)"),  # invalid UTF-8
        (3, "subject"),
        (5, "form.contact_phone"),
        (6, "(line)"),  # the 10 MB line
        (7, "materials[0].file"),
        (8, "materials[0].sha256"),
    } <= by_line
    assert all(e["reason_zh"] and e["reason_en"] for e in report)
    assert next(e for e in report if e["line"] == 6)["reason_en"] == "line too long"
    assert (drop / "done" / "XH-20261123-01").is_dir() and not (drop / "XH-20261123-01.ok").exists()

    apps = applications(hub)
    assert [a.source_ref for a in apps] == ["XH-0000001", "XH-0000002", "XH-0000003"]
    assert {(a.state, a.desk_code, a.channel) for a in apps} == {("pre_reviewed", "bank-xiahong", "bank")}
    with hub.sessions() as s:
        first = s.get(Application, apps[0].id)
        assert [m.name for m in first.materials] == ["居民身份证", "异地长期居住个人承诺书"]
        pre = s.scalars(select(Event).where(Event.application_id == first.id, Event.action == "pre_review")).one()
        assert pre.data["by"] == "柜员王芳" and pre.data["batch"] == "XH-20261123-01" and pre.data["line"] == 1
        batch = s.scalars(select(IntakeBatch)).one()
        assert (batch.state, batch.records, batch.created, batch.bad) == ("received", 10, 3, 7)

    assert ingest(hub, "bank-xiahong-sftp").batches == 0  # taken: nothing left to read
    shutil.copytree(drop / "done" / "XH-20261123-01", drop / "XH-20261123-01")  # the bank sends it again
    (drop / "XH-20261123-01.ok").write_bytes(b"")
    again = ingest(hub, "bank-xiahong-sftp")
    assert (again.created, again.duplicates, again.bad) == (0, 3, 7) and len(applications(hub)) == 3


def test_the_desks_first_review_needs_a_complete_file_or_a_promise(hub, drop, clock):
    def listed(i: int, *kinds_names: tuple[str, str]) -> list[dict]:
        return [{"name": n, "file": f"materials/{i}-{k}.pdf", "sha256": sha(material(i, k))} for k, n in kinds_names]

    rent = [("id", "居民身份证"), ("acct", "住房公积金账户信息"), ("nohouse", "本人及配偶名下无房证明")]
    records = [
        record(1, materials=listed(1, ("id", "居民身份证"))),  # the promise letter is not deferrable
        record(2, subject=FUND_RENT, form=dict(FUND_RENT_FORM), materials=listed(2, *rent)),  # no lease, no promise
        record(
            3,
            subject=FUND_RENT,
            form=dict(FUND_RENT_FORM),
            materials=listed(3, *rent),
            commitment_due="2026-12-15",  # 容缺: the lease is brought later
        ),
    ]
    drop_batch(drop, "XH-P", records)
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.created, summary.bad) == (1, 2)
    report = {e["line"]: e for e in errors_of(drop / "errors" / "XH-P.jsonl")}
    assert report[1]["field"] == "materials" and "异地长期居住个人承诺书" in report[1]["reason_zh"]
    assert report[2]["field"] == "commitment_due"
    (app,) = applications(hub)
    accepted = svc.transition(hub, app.number, "accept", officer("ts-gjj"))  # the desk's record of the promise
    assert [(d.material, d.due_date.isoformat()) for d in accepted.deficiencies] == [("房屋租赁合同", "2026-12-15")]


def _refresh_manifest(folder: Path, count: int) -> None:
    from hub.batches.staging import sha256_of

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["records.jsonl"] = sha256_of(folder / "records.jsonl")
    manifest["record_count"] = count
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_the_same_record_in_two_batches_is_one_application(hub, drop):
    drop_batch(drop, "XH-A", [record(1), record(2)])
    drop_batch(drop, "XH-B", [record(2), record(3), record(3)])
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.batches, summary.created, summary.duplicates) == (2, 3, 2)
    drop_batch(drop, "XH-C", [record(3, applicant={"type": "person", "name": "别人", "id": person_id(99)})])
    clash = ingest(hub, "bank-xiahong-sftp")
    assert clash.bad == 1 and errors_of(drop / "errors" / "XH-C.jsonl")[0]["field"] == "record_id"
    assert len(applications(hub)) == 3


@pytest.mark.parametrize(
    "spoil, field",
    [
        (lambda f: _recount(f, +1), "record_count"),
        (lambda f: (f / "materials" / "1-id.pdf").write_bytes(b"%PDF-1.4 changed"), None),
        (lambda f: (f / "extra.pdf").write_bytes(b"%PDF-1.4"), None),
        (lambda f: (f / "manifest.json").write_text("{not json", encoding="utf-8"), None),
    ],
    ids=["count", "hash", "unlisted-file", "manifest-json"],
)
def test_a_batch_that_does_not_match_its_manifest_is_quarantined_whole(hub, drop, spoil, field):
    folder = drop_batch(drop, "XH-Q", [record(1, with_materials=True), record(2)], files=material_files(1))
    spoil(folder)
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.quarantined, summary.created) == (1, 0) and applications(hub) == []
    assert (drop / "rejected" / "XH-Q").is_dir() and not (drop / "XH-Q").exists()
    report = errors_of(drop / "errors" / "XH-Q.jsonl")
    assert report and all(e["reason_zh"] and e["reason_en"] for e in report)
    if field:
        assert report[0]["field"] == field
    with hub.sessions() as s:
        assert s.scalars(select(IntakeBatch.state)).one() == "quarantined"


def _recount(folder: Path, delta: int) -> None:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["record_count"] += delta
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_desk_the_source_does_not_serve_quarantines_the_batch(hub, drop):
    drop_batch(drop, "XH-OTHER", [record(1)], desk="bank-baizhang")
    assert ingest(hub, "bank-xiahong-sftp").quarantined == 1
    assert errors_of(drop / "errors" / "XH-OTHER.jsonl")[0]["field"] == "desk"


def test_gb18030_csv_with_crlf_and_bom_and_a_zip_archive(hub, drop):
    folder = drop_batch(
        drop, "XH-CSV", [record(1), record(2)], records_file="records.csv", encoding="GB18030", newline="\r\n"
    )
    raw = (folder / "records.csv").read_bytes()
    assert "申请人1".encode("gb18030") in raw and b"\r\n" in raw
    (folder / "records.csv").write_bytes(b"\x84\x31\x95\x33" + raw)  # GB18030's byte-order mark
    _refresh_manifest_csv(folder)
    staged = drop / "zip-src"
    write_batch(
        staged / "XH-ZIP", batch_id="XH-ZIP", desk="bank-xiahong", records=[record(3)], files=files_for([record(3)])
    )
    with zipfile.ZipFile(drop / "XH-ZIP.zip", "w") as z:
        for p in sorted((staged / "XH-ZIP").rglob("*")):
            z.write(p, p.relative_to(staged / "XH-ZIP").as_posix())
    shutil.rmtree(staged)
    (drop / "XH-ZIP.zip.ok").write_bytes(b"")
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.batches, summary.created, summary.bad) == (2, 3, 0), summary
    assert sorted(a.applicant_name for a in applications(hub)) == ["申请人1", "申请人2", "申请人3"]
    assert (drop / "done" / "XH-ZIP.zip").exists()


def _refresh_manifest_csv(folder: Path) -> None:
    from hub.batches.staging import sha256_of

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["records.csv"] = sha256_of(folder / "records.csv")
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_run_killed_halfway_resumes_without_duplicates(hub, drop):
    drop_batch(drop, "XH-R", [record(i) for i in range(1, 8)])

    def crash_after_first_chunk(n: int) -> None:
        raise KeyboardInterrupt  # the process dies after the first chunk committed

    with pytest.raises(KeyboardInterrupt):
        ingest(hub, "bank-xiahong-sftp", progress=crash_after_first_chunk)
    assert len(applications(hub)) == 2 and (drop / "XH-R.ok").exists()  # not acknowledged
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.created, summary.duplicates) == (5, 2)
    with hub.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Application)) == 7


def test_enclave_window_batches_over_rest(hub, enclave):
    root = enclave.root
    write_batch(
        root / "HZ-20261123-01",
        batch_id="HZ-20261123-01",
        desk="enclave-hangzhou",
        records=[
            record(11, record_id="HZ-1", with_materials=True),
            record(12, record_id="HZ-2", form={"destination_division": "330105"}),
        ],
        files=material_files(11) | material_files(12),
    )
    write_batch(root / "HZ-still-writing", batch_id="HZ-still-writing", desk="enclave-hangzhou", records=[])
    (root / "HZ-20261123-01.ok").write_bytes(b"")
    summary = ingest(hub, "enclave-hangzhou-rest")
    assert (summary.batches, summary.created, summary.bad) == (1, 1, 1)
    report = [json.loads(x) for x in enclave.report("HZ-20261123-01").splitlines()]
    assert {e["field"] for e in report} >= {"form.residence_address", "form.contact_phone"}
    assert {e["line"] for e in report} == {2}
    assert (root / "done" / "HZ-20261123-01").is_dir() and (root / "HZ-still-writing").is_dir()
    (app,) = applications(hub)
    assert (app.desk_code, app.channel, app.state, app.source_ref) == (
        "enclave-hangzhou",
        "enclave",
        "pre_reviewed",
        "HZ-1",
    )
    assert ingest(hub, "enclave-hangzhou-rest").batches == 0


def test_control_characters_encodings_and_line_ends_are_per_record(hub, drop):
    """NUL and lone surrogates would fail a whole chunk at commit (PostgreSQL refuses them): they
    are bad records with their field. Invalid GB18030 bytes, a UTF-8 BOM and CRLF line ends."""
    records = [
        record(1),
        record(2, applicant={"type": "person", "name": "张\u0000三", "id": person_id(2)}),
        record(3, form=dict(record(3)["form"], residence_address="杭州LONE")),
        record(4),
        record(7, applicant={"type": "person", "name": "王\b五\f", "id": person_id(7)}),  # JSON writes \b, \f
        record(8, applicant={"type": "person", "name": "李\x7f四", "id": person_id(8)}),  # DEL, as it is
        record(9, applicant={"type": "person", "name": "无号"}),  # no ID: bad, never "already received"
    ]
    folder = drop_batch(drop, "XH-CTRL", records, newline="\r\n")
    raw = (folder / "records.jsonl").read_bytes()
    assert raw.count(b"\r\n") == 7 and b"\\b" in raw and b"\x7f" in raw
    (folder / "records.jsonl").write_bytes(b"\xef\xbb\xbf" + raw.replace(b"LONE", b"\\ud800"))  # JSON escape
    _refresh_manifest(folder, count=7)
    gb = drop_batch(drop, "XH-GB", [record(5), record(6)], records_file="records.csv", encoding="GB18030")
    lines = (gb / "records.csv").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace("申请人6".encode("gb18030"), b"\x81\x20")  # not a GB18030 sequence
    (gb / "records.csv").write_bytes(b"".join(lines))
    _refresh_manifest_csv(gb)

    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.batches, summary.created, summary.duplicates, summary.bad) == (2, 3, 0, 6), summary
    ctrl = {(e["line"], e["field"]) for e in errors_of(drop / "errors" / "XH-CTRL.jsonl")}
    assert ctrl == {
        (2, "applicant.name"),
        (3, "form.residence_address"),
        (5, "applicant.name"),
        (6, "applicant.name"),
        (7, "applicant.id"),
    }
    (bad_gb,) = errors_of(drop / "errors" / "XH-GB.jsonl")
    assert (bad_gb["line"], bad_gb["field"]) == (3, "(line)") and "GB18030" in bad_gb["reason_en"]
    assert sorted(a.source_ref for a in applications(hub)) == ["XH-0000001", "XH-0000004", "XH-0000005"]


def test_a_batch_record_is_held_to_the_same_character_rule_as_every_surface(hub, drop):
    """hub.text, as at the window and the API: bidi overrides and BEL anywhere, line breaks in a
    single-line field, a NUL in the record id (which used to reach the duplicate lookup and fail
    the chunk on PostgreSQL); a line break in a multi-line form field is fine."""
    records = [
        record(1, applicant={"type": "person", "name": "张\u202e三", "id": person_id(1)}),  # raw, no escape
        record(2, record_id="XH-\u0000-2"),
        record(3, applicant={"type": "person", "name": "王\n五", "id": person_id(3)}),
        record(4, pre_review={"by": "柜员\r\n王芳", "at": "2026-11-23T09:30:00+08:00"}),
        record(5, form=dict(record(5)["form"], residence_address="杭州\u0007拱墅")),
        record(6, form=dict(record(6)["form"], residence_address="杭州市拱墅区\n湖墅南路88号")),
    ]
    drop_batch(drop, "XH-TEXT", records)
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.created, summary.bad) == (1, 5), summary
    report = errors_of(drop / "errors" / "XH-TEXT.jsonl")
    assert {(e["line"], e["field"]) for e in report} == {
        (1, "applicant.name"),
        (2, "record_id"),
        (3, "applicant.name"),
        (4, "pre_review.by"),
        (5, "form.residence_address"),
    }
    assert all("U+" in e["reason_en"] for e in report)
    (app,) = applications(hub)
    assert app.form["residence_address"] == "杭州市拱墅区\n湖墅南路88号"
    assert app.number.endswith("-00001")  # the refused records took no number


def test_schema_errors_are_reported_in_chinese_too(hub, drop):
    drop_batch(drop, "XH-ZH", [record(1, pre_review={"by": "王芳", "at": "not a time"}, colour="red")])
    ingest(hub, "bank-xiahong-sftp")
    report = errors_of(drop / "errors" / "XH-ZH.jsonl")
    assert {e["field"] for e in report} == {"pre_review.at", "colour"}
    assert all(any("\u4e00" <= c <= "\u9fff" for c in e["reason_zh"]) for e in report), report


def test_a_batch_refuses_by_the_catalogues_rules_as_every_surface_does(hub, drop):
    """The same inputs tests/test_rules.py gives the core, the CLI and the API: a 36-year-old for
    the 老年人优待证, and 邮寄送达 without an address — the same fields, the same words."""

    def card(i: int, **changes) -> dict:
        r = record(
            i,
            subject="GG00501000",
            form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
            materials=[{"name": "居民身份证", "file": f"materials/{i}-id.pdf", "sha256": sha(material(i, "id"))}],
            commitment_due="2026-12-31",
        )
        return r | changes

    young = card(1, applicant={"type": "person", "name": "青年", "id": YOUNG})
    post = card(2, form={"delivery_method": "邮寄送达", "contact_phone": "13905770001"})
    drop_batch(drop, "XH-RULES", [young, post])
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.created, summary.bad) == (0, 2)
    report = {(e["line"], e["field"]): e["reason_zh"] for e in errors_of(drop / "errors" / "XH-RULES.jsonl")}
    assert AGE_WORDS in report[(1, "applicant.id")]
    assert POST_WORDS in report[(2, "form.mailing_address")]


def _tar(drop: Path, batch_id: str, extra=None) -> None:
    staged = drop / "src"
    write_batch(
        staged / batch_id, batch_id=batch_id, desk="bank-xiahong", records=[record(1)], files=files_for([record(1)])
    )
    with tarfile.open(drop / f"{batch_id}.tar.gz", "w:gz") as t:
        t.add(staged / batch_id, arcname=batch_id)
        if extra:
            extra(t)
    shutil.rmtree(staged)
    (drop / f"{batch_id}.tar.gz.ok").write_bytes(b"")


def _symlink(t: tarfile.TarFile) -> None:
    link = tarfile.TarInfo("XH-LINK/materials/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    t.addfile(link)


def test_archives_good_and_hostile(hub, drop):
    _tar(drop, "XH-TGZ")
    _tar(drop, "XH-LINK", _symlink)
    with zipfile.ZipFile(drop / "XH-UP.zip", "w") as z:
        z.writestr("../../escaped.txt", b"x")
    (drop / "XH-UP.zip.ok").write_bytes(b"")
    (drop / "XH-BROKEN.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (drop / "XH-BROKEN.zip.ok").write_bytes(b"")
    # zipped with writestr: entries carry permission bits but no Unix file type (regular files)
    src = write_batch(
        drop / "src" / "XH-WS", batch_id="XH-WS", desk="bank-xiahong", records=[record(2)], files=files_for([record(2)])
    )
    with zipfile.ZipFile(drop / "XH-WS.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.writestr(p.relative_to(src).as_posix(), p.read_bytes())
    shutil.rmtree(drop / "src")
    (drop / "XH-WS.zip.ok").write_bytes(b"")
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.batches, summary.created, summary.quarantined, summary.errors) == (5, 2, 3, 0), summary
    assert (drop / "done" / "XH-WS.zip").exists()
    for name in ("XH-LINK", "XH-UP", "XH-BROKEN"):
        (problem,) = errors_of(drop / "errors" / f"{name}.jsonl")
        assert problem["file"] == "(archive)" and problem["reason_zh"].startswith("无法解包"), problem
    assert (drop / "done" / "XH-TGZ.tar.gz").exists() and (drop / "rejected" / "XH-LINK.tar.gz").exists()
    assert not (drop.parent / "escaped.txt").exists()


def test_a_batch_is_what_its_name_says_and_odd_names_are_left_alone(hub, drop):
    drop_batch(drop, "XH-NAME", [record(1)])
    manifest = json.loads((drop / "XH-NAME" / "manifest.json").read_text(encoding="utf-8"))
    manifest["batch_id"] = "XH-OTHER"
    (drop / "XH-NAME" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    drop_batch(drop, "bad name!", [record(2)])  # not a safe batch id: never touched
    folder = drop_batch(drop, "XH-HIDDEN", [record(3)])
    (folder / ".hidden").write_bytes(b"")  # not in the manifest
    summary = ingest(hub, "bank-xiahong-sftp")
    assert (summary.batches, summary.quarantined, summary.created) == (2, 2, 0), summary
    assert errors_of(drop / "errors" / "XH-NAME.jsonl")[0]["field"] == "batch_id"
    assert errors_of(drop / "errors" / "XH-HIDDEN.jsonl")[0]["file"] == ".hidden"
    assert (drop / "bad name!").is_dir() and (drop / "bad name!.ok").exists()


def test_two_runs_of_one_source_never_overlap(hub, drop):
    drop_batch(drop, "XH-LOCK", [record(1)])
    with exclusive(hub, "ingest:bank-xiahong-sftp") as held:
        assert held
        blocked = ingest(hub, "bank-xiahong-sftp")
        assert blocked.busy and blocked.batches == 0 and "another run" in blocked.line()
        assert applications(hub) == [] and (drop / "XH-LOCK.ok").exists()
    assert ingest(hub, "bank-xiahong-sftp").created == 1


def test_a_record_received_before_is_a_duplicate_even_if_it_would_not_pass_today(hub, drop, clock):
    rent = [("id", "居民身份证"), ("acct", "住房公积金账户信息"), ("nohouse", "本人及配偶名下无房证明")]
    materials = [{"name": n, "file": f"materials/3-{k}.pdf", "sha256": sha(material(3, k))} for k, n in rent]
    promised = record(3, subject=FUND_RENT, form=dict(FUND_RENT_FORM), materials=materials, commitment_due="2026-10-01")
    drop_batch(drop, "XH-D1", [promised])
    assert ingest(hub, "bank-xiahong-sftp").created == 1
    clock.advance(days=30)  # the promised date is now past: a new record like it would be refused
    drop_batch(drop, "XH-D2", [promised])
    again = ingest(hub, "bank-xiahong-sftp")
    assert (again.duplicates, again.bad) == (1, 0) and not (drop / "errors" / "XH-D2.jsonl").exists()


def test_a_received_record_is_the_application_a_teller_would_have_created(hub, drop):
    """Batches are written in bulk (rows, COPY on PostgreSQL), not object by object: what lands
    must be exactly what `create` + the desk's first review write, chain and all, and live on."""
    rec = record(1)
    drop_batch(drop, "XH-20261123-01", [rec])
    assert ingest(hub, "bank-xiahong-sftp").created == 1
    new = svc.NewApplication(
        subject=rec["subject"],
        desk="bank-xiahong",
        applicant=svc.Applicant(**rec["applicant"]),
        form=rec["form"],
        materials=[
            svc.MaterialIn(name=m["name"], filename=m["file"].rpartition("/")[2], content=material(1, kind))
            for m, kind in zip(rec["materials"], ("id", "p"), strict=True)
        ],
    )
    by_hand = svc.create(hub, new, TELLER)
    svc.transition(hub, by_hand.number, "pre_review", TELLER)
    [batched] = [a for a in applications(hub) if a.source_ref == rec["record_id"]]

    def shape(number: str) -> dict:
        app = svc.read(hub, number, SYSTEM)
        assert verify_chain(app).ok, verify_chain(app)
        columns = {c: getattr(app, c) for c in Application.__table__.columns.keys()}  # noqa: SIM118
        for varying in ("id", "number", "source_ref", "chain_head", "created_at", "updated_at"):
            columns.pop(varying)
        return columns | {
            "parts": [(p.position, p.item_code, p.title, p.department_code, p.connection, p.state) for p in app.parts],
            "materials": [(m.name, m.filename, m.sha256, m.kind, m.part_id) for m in app.materials],
            "events": [(e.seq, e.action, e.from_state, e.to_state, e.at, e.data.get("materials")) for e in app.events],
        }

    assert shape(batched.number) == shape(by_hand.number)
    part = svc.read(hub, batched.number, SYSTEM).parts[0]
    accepted = svc.transition(hub, batched.number, "accept", officer(part.department_code))
    assert accepted.state == "accepted" and verify_chain(accepted).ok and len(accepted.events) == 4


def test_a_large_batch_on_postgresql_is_worked_by_worker_processes(hub, drop, home, db_url, clock, caplog):
    """Chunks checked and received in other processes come out as they would in one: the same
    applications once each, the error report in line order, duplicates across chunks (possibly
    received by two workers at the same moment) recognised. SQLite keeps to one process."""
    conf = home / "connections" / "bank-xiahong-sftp.yaml"
    conf.write_text(conf.read_text(encoding="utf-8").replace("chunk: 2}", "chunk: 3, workers: 2}"), encoding="utf-8")
    parallel = Hub.open(home, database_url=db_url, clock=clock)
    records = [record(i) for i in range(1, 31)]
    records[6] = record(7, applicant={"type": "person", "name": "错号", "id": person_id(7)[:-1] + "0"})
    records[20] = record(2)  # the same record again, seven chunks on
    records[26] = record(5, applicant={"type": "person", "name": "别人", "id": person_id(99)})  # its id reused
    records[28] = record(29, subject=HALL_ONLY)
    drop_batch(drop, "XH-BIG", records)
    caplog.set_level(logging.INFO, logger="hub.jobs.ingest")
    try:
        summary = ingest(parallel, "bank-xiahong-sftp")
        assert (summary.records, summary.created, summary.duplicates, summary.bad) == (30, 26, 1, 3)
        report = errors_of(drop / "errors" / "XH-BIG.jsonl")
        # lines 5 and 27 use one record id for two people: whichever is received first stands
        # (in one process: line 5), the other is refused
        clash = next(e["line"] for e in report if e["field"] == "record_id")
        assert [e["line"] for e in report] == sorted(e["line"] for e in report)  # in file order
        fields = {line: {e["field"] for e in report if e["line"] == line} for line in (7, clash, 29)}
        assert {e["line"] for e in report} == {7, clash, 29}
        assert fields[7] == {"applicant.id"} and fields[clash] == {"record_id"} and "subject" in fields[29]
        assert clash in (5, 27) and (clash == 27 or parallel.engine.dialect.name == "postgresql")
        apps = applications(parallel)
        (five,) = [a for a in apps if a.source_ref == "XH-0000005"]
        assert five.applicant_id == (person_id(5) if clash == 27 else person_id(99))
        assert sorted(a.source_ref for a in apps) == sorted(
            {r["record_id"] for r in records} - {"XH-0000007", "XH-0000029"}
        )
        assert all(verify_chain(svc.read(parallel, a.number, SYSTEM)).ok for a in apps)
        assert len({a.number for a in apps}) == 26
        worked = [r.getMessage() for r in caplog.records if "worker processes" in r.getMessage()]
        if parallel.engine.dialect.name == "postgresql":
            (line,) = worked
            pids = {int(p) for p in line.rpartition("(")[2].strip("[])").split(",")}
            assert os.getpid() not in pids  # the records were worked elsewhere
        else:
            assert worked == []  # one writer at a time: no workers
        shutil.copytree(drop / "done" / "XH-BIG", drop / "XH-BIG")  # delivered again
        (drop / "XH-BIG.ok").write_bytes(b"")
        again = ingest(parallel, "bank-xiahong-sftp")
        assert (again.created, again.duplicates, again.bad) == (0, 27, 3) and len(applications(parallel)) == 26
    finally:
        parallel.close()


def test_a_killed_ingest_leaves_no_worker_behind_and_loses_nothing(hub, drop, home, db_url):
    """SIGKILL (the OOM killer, kill -9) of `hub run ingest` mid-batch: its worker processes end
    too, instead of waiting for work for ever or writing on beside the next run; the next run
    receives every record exactly once."""
    conf = home / "connections" / "bank-xiahong-sftp.yaml"
    conf.write_text(conf.read_text(encoding="utf-8").replace("chunk: 2}", "chunk: 3, workers: 2}"), encoding="utf-8")
    drop_batch(drop, "XH-KILL", [record(i) for i in range(1, 301)])
    env = os.environ | {"HUB_HOME": str(home), "HUB_DATABASE_URL": db_url}
    run = subprocess.Popen(
        [sys.executable, "-m", "hub", "run", "ingest", "--source", "bank-xiahong-sftp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(applications(hub)) < 10:  # under way, with some chunks committed
        assert run.poll() is None and time.monotonic() < deadline, "ingest ended before it could be killed"
        time.sleep(0.05)
    workers = _children(run.pid)
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    deadline = time.monotonic() + 15
    while (alive := [pid for pid in workers if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == [], f"workers left running: {alive}"
    if hub.engine.dialect.name == "postgresql":
        assert workers, "the batch was not worked by worker processes"
    assert (drop / "XH-KILL.ok").exists()  # not acknowledged
    partial = len(applications(hub))
    assert 10 <= partial < 300
    again = ingest(hub, "bank-xiahong-sftp")
    assert (again.created + again.duplicates, again.bad) == (300, 0) and again.duplicates >= partial
    assert sorted(a.source_ref for a in applications(hub)) == [f"XH-{i:07d}" for i in range(1, 301)]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, parent pid, … ([] once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _stat(int(p.name))[1:2] == [str(pid)]]


def _running(pid: int) -> bool:
    state = _stat(pid)
    return bool(state) and state[0] != "Z"  # a zombie has ended; only its entry is left
