"""Notices as sealed PDF documents: every kind rendered for a sample case, its text read back with
pdftotext (authority, desk, limit, due date, phone, codes, the 补正 items, the reason), the CJK
font embedded, A4, the seal valid by pyHanko and by poppler's pdfsig, one byte changed → invalid,
issued once, and a page image of each kind in test-artifacts/notices/."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub import applications as svc
from hub import documents, seals
from hub.cli import app as cli
from hub.context import Hub
from hub.documents import templates
from hub.documents.kinds import KINDS
from hub.documents.owe import normal_code
from hub.errors import ConfigInvalid
from hub.storage.tables import Document
from hub.web import desk_intake
from tests.support.samples import ELDER_ID, TELLER, elderly_card, officer

MZJ = officer("ts-mzj", "民政审批员")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "notices"
ASK = svc.SupplementAsk(
    fields=[svc.Wanted(name="contact_phone", note="电话无法接通，请核对。")],
    materials=[svc.Wanted(name="近期免冠彩色证件照", note="须近期免冠彩色照片")],
)
POPPLER = all(shutil.which(t) for t in ("pdftotext", "pdffonts", "pdfinfo", "pdfsig", "pdftoppm"))
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils not installed")


@pytest.fixture
def sealed_hub(hub: Hub) -> Hub:
    seals.ensure_test_seals(hub)
    return hub


def _text(pdf: bytes, tmp_path: Path, name: str = "doc.pdf") -> str:
    path = tmp_path / name
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _docs(hub: Hub, number: str) -> dict[str, Document]:
    return {d.kind: d for d in documents.documents_of(hub, svc.read(hub, number, svc.SYSTEM))}


def walk_every_kind(hub: Hub, clock) -> dict[str, tuple[Document, str]]:
    """One application through every step that owes a document; a second one refused; a third
    decided 不予. Returns {kind: (document, application number)}."""
    clock.set(date(2026, 9, 21))
    out: dict[str, tuple[Document, str]] = {}
    app = svc.create(hub, elderly_card(), TELLER)
    svc.transition(hub, app.number, "accept", MZJ)
    svc.transition(hub, app.number, "request_supplement", MZJ, reason="照片不合格，电话有误。", ask=ASK)
    svc.transition(hub, app.number, "resume", MZJ)
    svc.transition(hub, app.number, "start_review", MZJ)
    svc.transition(hub, app.number, "approve", MZJ)
    svc.transition(hub, app.number, "issue", MZJ)
    svc.transition(hub, app.number, "deliver", MZJ)
    out |= {k: (d, app.number) for k, d in _docs(hub, app.number).items()}

    refused = svc.create(hub, elderly_card(), TELLER)
    svc.transition(hub, refused.number, "reject", MZJ, reason="申请人户籍不在本县，不属于本机关职权范围。")
    out["rejection"] = (_docs(hub, refused.number)["rejection"], refused.number)

    denied = svc.create(hub, elderly_card(), TELLER)
    svc.transition(hub, denied.number, "accept", MZJ)
    svc.transition(hub, denied.number, "start_review", MZJ)
    svc.transition(hub, denied.number, "deny", MZJ, reason="经核查，申请人已持有有效优待证。")
    out["denial"] = (_docs(hub, denied.number)["denial"], denied.number)
    return out


def test_events_owe_their_documents_in_their_transaction(sealed_hub: Hub, clock) -> None:
    hub = sealed_hub
    app = svc.create(hub, elderly_card(), TELLER)
    with hub.sessions() as s:  # the ORM path: owed with the submit event, before anyone asks
        kinds = s.scalars(select(Document.kind).where(Document.application_id == app.id)).all()
    assert kinds == ["receipt"]
    svc.transition(hub, app.number, "accept", MZJ)
    docs = _docs(hub, app.number)
    assert set(docs) == {"receipt", "acceptance"}
    assert docs["receipt"].authority == seals.HUB_AUTHORITY and docs["acceptance"].authority == "ts-mzj"
    assert all(d.state == "pending" and normal_code(d.code) == d.code for d in docs.values())
    acc = docs["acceptance"].data
    assert acc["limit"]["due_date"] and not acc["limit"]["expected"]
    assert acc["applicant"]["id"] != ELDER_ID and "*" in acc["applicant"]["id"]  # masked in the snapshot


@needs_poppler
def test_every_kind_renders_seals_and_reads_back(sealed_hub: Hub, clock, tmp_path: Path) -> None:
    hub = sealed_hub
    walked = walk_every_kind(hub, clock)
    missing = set(KINDS) - set(walked) - {"commitment"}  # 容缺: its own test below
    assert not missing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for kind, (doc, number) in walked.items():
        pdf = documents.pdf_of(hub, doc)
        text = _text(pdf, tmp_path, f"{kind}.pdf")
        flat = "".join(text.split())
        snap = doc.data
        assert KINDS[kind].title.replace(" ", "") in flat or snap["title"] in flat, kind
        assert doc.code in flat and number in flat, kind
        assert snap["authority"]["name"] in flat and snap["desk"]["name"] in flat, kind
        assert snap["authority"]["phone"] and snap["authority"]["phone"] in flat, kind
        if snap["limit"]["due_date"]:
            assert (
                snap["limit"]["due_date"] in flat
                and (f"{snap['limit']['workdays']}个工作日" if snap["limit"]["workdays"] else "即办") in flat
            ), kind
        path = tmp_path / f"{kind}.pdf"
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        assert "595.276 x 841.89 pts (A4)" in info or "(A4)" in info, info
        fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
        assert "NotoSansCJK" in fonts and " yes yes yes " in fonts, fonts
        checks = seals.verify_pdf(hub, pdf)
        assert len(checks) == 1 and checks[0].ok, (kind, checks)
        sig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
        assert "Signature is Valid" in sig.stdout and "Total document signed" in sig.stdout, sig.stdout
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(path), str(ARTIFACTS / kind)], check=True)
    supplement = "".join(_text(documents.pdf_of(hub, walked["supplement"][0]), tmp_path).split())
    assert "联系电话" in supplement and "近期免冠彩色证件照" in supplement and "电话无法接通" in supplement
    rejection = "".join(_text(documents.pdf_of(hub, walked["rejection"][0]), tmp_path).split())
    assert "不属于本机关职权范围" in rejection and "行政复议" in rejection and "六个月内" in rejection
    assert "泰顺县人民政府" in rejection and "泰顺县人民法院" in rejection
    denial = "".join(_text(documents.pdf_of(hub, walked["denial"][0]), tmp_path).split())
    assert "已持有有效优待证" in denial and "行政诉讼" in denial


@needs_poppler
def test_one_byte_changed_is_invalid_by_both_checkers(sealed_hub: Hub, tmp_path: Path) -> None:
    hub = sealed_hub
    app = svc.create(hub, elderly_card(), TELLER)
    doc = _docs(hub, app.number)["receipt"]
    pdf = bytearray(documents.pdf_of(hub, doc))
    at = pdf.index(b"/Title") + 8  # inside the signed bytes: the document's title
    pdf[at] ^= 0x01
    bad = bytes(pdf)
    checks = seals.verify_pdf(hub, bad)
    assert checks and not checks[0].ok
    path = tmp_path / "bad.pdf"
    path.write_bytes(bad)
    sig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    assert "Signature is Valid" not in sig.stdout
    result = documents.verify_file(hub, bad)
    assert not result.ok and result.document is None


def test_issued_once_and_never_changes(sealed_hub: Hub) -> None:
    hub = sealed_hub
    app = svc.create(hub, elderly_card(), TELLER)
    doc = _docs(hub, app.number)["receipt"]
    first = documents.pdf_of(hub, doc)
    again = documents.issue(hub, doc.id)
    assert again.state == "issued" and documents.pdf_of(hub, again) == first
    summary = documents.issue_pending(hub)
    assert summary.failed == [] and summary.issued == 0
    check = documents.verify_file(hub, first)
    assert check.ok and check.document.code == doc.code and check.number == app.number


def test_the_job_issues_what_the_desks_plain_row_intake_owes(sealed_hub: Hub) -> None:
    hub = sealed_hub
    review = svc.FirstReview(checklist=[key for key, _zh, _en in desk_intake.CHECKLIST], note=None)
    app = svc.create(hub, elderly_card(), TELLER, first_review=review)  # plain rows: no ORM flush
    with hub.sessions() as s:
        assert s.scalars(select(Document).where(Document.application_id == app.id)).all() == []
    summary = documents.issue_pending(hub)
    assert summary.failed == [] and summary.issued >= 1
    assert _docs(hub, app.number)["receipt"].state == "issued"


def test_commitment_names_what_is_owed_and_both_signatures(sealed_hub: Hub, clock, tmp_path: Path) -> None:
    hub = sealed_hub
    clock.set(date(2026, 9, 21))
    new = elderly_card()
    photo = "近期免冠彩色证件照"
    new = new.model_copy(update={"materials": [m for m in new.materials if m.name != photo]})
    app = svc.create(hub, new, TELLER)
    svc.transition(hub, app.number, "accept", MZJ, commitment_due=date(2026, 9, 28))
    doc = _docs(hub, app.number)["commitment"]
    assert doc.data["owed"] == [{"material": photo, "due_date": "2026-09-28"}]
    if POPPLER:
        flat = "".join(_text(documents.pdf_of(hub, doc), tmp_path, "commitment.pdf").split())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ["pdftoppm", "-png", "-r", "60", "-singlefile", str(tmp_path / "commitment.pdf")]
        subprocess.run([*shot, str(ARTIFACTS / "commitment")], check=True)
        assert (
            photo in flat and "2026-09-28" in flat and "承诺人（申请人签字）" in flat and "窗口工作人员（签字）" in flat
        )


def test_a_broken_template_is_named_with_file_and_line(home: Path) -> None:
    path = home / "notices" / "acceptance.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    body = next(i for i, line in enumerate(lines) if line.startswith("body:"))
    lines.insert(body + 2, "  {{ applicant.nmae }}")  # the body's second line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = templates.check(home, list(KINDS), set())
    assert [(p.file, p.line) for p in problems] == [("home/notices/acceptance.yaml", body + 3)], problems
    assert "nmae" in problems[0].message
    lines[body + 2] = "  {% if %}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as exc:
        templates.load(path, "notices/acceptance.yaml")
    assert exc.value.problems[0].line == body + 3


def test_an_items_own_template_wins(sealed_hub: Hub, home: Path, tmp_path: Path) -> None:
    hub = sealed_hub
    app = svc.create(hub, elderly_card(), TELLER)
    own = home / "notices" / app.subject_code
    own.mkdir()
    text = (home / "notices" / "receipt.yaml").read_text(encoding="utf-8")
    (own / "receipt.yaml").write_text(text.replace("title: 收件凭证", "title: 老年人优待证收件凭证"), encoding="utf-8")
    assert templates.check(home, list(KINDS), {app.subject_code}) == []
    if POPPLER:
        flat = "".join(_text(documents.pdf_of(hub, _docs(hub, app.number)["receipt"]), tmp_path).split())
        assert "老年人优待证收件凭证" in flat


@needs_poppler
def test_first_review_promise_owes_a_commitment_sealed_by_the_hub(sealed_hub: Hub, clock, tmp_path: Path) -> None:
    hub = sealed_hub
    clock.set(date(2026, 9, 21))
    photo = "近期免冠彩色证件照"
    new = elderly_card()
    new = new.model_copy(update={"materials": [m for m in new.materials if m.name != photo]})
    checklist = [key for key, _zh, _en in desk_intake.CHECKLIST]
    review = svc.FirstReview(checklist=checklist, commitment_due=date(2026, 9, 25))
    app = svc.create(hub, new, TELLER, first_review=review)  # plain rows: owed on first sight
    docs = _docs(hub, app.number)
    assert set(docs) == {"receipt", "commitment"}
    assert docs["commitment"].authority == seals.HUB_AUTHORITY
    assert docs["commitment"].data["owed"] == [{"material": photo, "due_date": "2026-09-25"}]
    receipt = "".join(_text(documents.pdf_of(hub, docs["receipt"]), tmp_path).split())
    assert f"{photo}（2026-09-25前补交）" in receipt
    svc.transition(hub, app.number, "accept", MZJ)  # the promise was made: no second 承诺书
    assert sorted(_docs(hub, app.number)) == ["acceptance", "commitment", "receipt"]


@needs_poppler
def test_data_is_text_and_rare_characters_are_drawn(sealed_hub: Hub, tmp_path: Path) -> None:
    hub = sealed_hub
    new = elderly_card()
    new = new.model_copy(update={"applicant": new.applicant.model_copy(update={"name": "王堃"})})  # 堃: not in GB 2312
    app = svc.create(hub, new, TELLER)
    svc.transition(hub, app.number, "reject", MZJ, reason="**不符合** <b>条件</b> {{ applicant.id }}")
    doc = _docs(hub, app.number)["rejection"]
    pdf = documents.pdf_of(hub, doc)
    flat = "".join(_text(pdf, tmp_path, "r.pdf").split())
    assert "王堃" in flat and "**不符合**<b>条件</b>{{applicant.id}}" in flat  # as typed: no markup, no template
    fonts = subprocess.run(["pdffonts", str(tmp_path / "r.pdf")], capture_output=True, text=True, check=True).stdout
    assert fonts.count("NotoSansCJK") == 2  # the cut face, and the full face for 堃


def test_catalog_check_names_a_broken_template(home: Path) -> None:
    path = home / "notices" / "denial.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("{{ reason }}", "{{ reason | nosuchfilter }}"), encoding="utf-8")
    line = next(i for i, row in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "nosuchfilter" in row)
    result = CliRunner().invoke(cli, ["catalog", "check", "--dir", str(home)])
    assert result.exit_code == 1
    assert f"home/notices/denial.yaml:{line}:" in result.output, result.output


def test_we_seal_only_what_is_ours_to_say_across_regions() -> None:
    from hub.documents.owe import _ours
    from hub.storage.tables import Application, Part

    ours = Part(item_code="GG00501000", department_code="ts-mzj")
    theirs = Part(item_code="fuding:GG00201000", department_code="fuding")
    proxy = Application(parts=[theirs], origin_partner=None)  # our desk collects, the partner decides
    assert _ours(proxy, "receipt", None, "submit") and _ours(proxy, "commitment", None, "pre_review")
    assert not _ours(proxy, "acceptance", None, "accept") and not _ours(proxy, "approval", theirs, "approve")
    joint = Application(parts=[ours, theirs], origin_partner=None)  # 多地联办: our lead, one part theirs
    assert _ours(joint, "acceptance", None, "accept") and _ours(joint, "approval", ours, "approve")
    assert not _ours(joint, "denial", theirs, "deny")
    collected = Application(parts=[ours], origin_partner="fuding")  # their desk collected it for us
    assert not _ours(collected, "receipt", None, "submit") and _ours(collected, "acceptance", None, "accept")


def test_without_a_seal_the_document_waits_and_the_job_says_why(hub: Hub) -> None:
    app = svc.create(hub, elderly_card(), TELLER)  # no seals made in this home
    summary = documents.issue_pending(hub)
    assert summary.issued == 0 and len(summary.failed) == 1 and "no seal for 'hub'" in summary.failed[0]
    doc = _docs(hub, app.number)["receipt"]
    with pytest.raises(documents.DocumentUnavailable):
        documents.pdf_of(hub, doc)
    assert _docs(hub, app.number)["receipt"].state == "pending"  # nothing half-issued
    seals.ensure_test_seals(hub)
    assert documents.issue_pending(hub).issued == 1


def test_with_sm3_configured_the_digest_is_sm3_as_openssl_computes_it(sealed_hub: Hub, tmp_path: Path) -> None:
    hub = sealed_hub
    hub.settings = hub.settings.model_copy(update={"crypto": hub.settings.crypto.model_copy(update={"hash": "sm3"})})
    app = svc.create(hub, elderly_card(), TELLER)
    pdf = documents.pdf_of(hub, _docs(hub, app.number)["receipt"])
    doc = _docs(hub, app.number)["receipt"]
    assert doc.digest_algorithm == "sm3" and doc.digest != doc.sha256
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    openssl = subprocess.run(["openssl", "dgst", "-sm3", "-r", str(path)], capture_output=True, text=True, check=True)
    assert openssl.stdout.split()[0] == doc.digest
    assert documents.verify_file(hub, pdf).ok
