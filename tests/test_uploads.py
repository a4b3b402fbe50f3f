"""Uploads stream into the material store as they arrive (hashed on the way, kept only when an
application takes them), the intake fast path writes what the ORM path would, verification
tickets expire, and a busy API never waits on itself for a database connection."""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub import applications as svc
from hub.context import Hub
from hub.jobs import housekeeping
from hub.lifecycle import Role
from hub.presenters import application_summary
from hub.storage.engine import make_engine, session_factory
from hub.storage.tables import Application, Blob
from hub.tokens import create_token
from hub.web import desk_intake, uploads
from hub.web.app import create_app
from tests.conftest import JPEG, PDF, make_id
from tests.support.samples import elderly_card

TELLER = svc.Actor(name="王芳", role=Role.teller, desk="bank-xiahong")
CHECKLIST = ["identity", "materials", "signature", "informed"]


@pytest.fixture
def web(hub: Hub) -> TestClient:
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def teller(hub: Hub) -> dict[str, str]:
    secret, _ = create_token(
        hub,
        "bank",
        role=Role.teller,
        desk="bank-xiahong",
        scopes=["applications:read", "applications:write"],
        created_by="test",
    )
    return {"authorization": f"Bearer {secret}"}


def data(seq: str, **extra) -> str:
    return json.dumps(
        {
            "subject": "GG00501000",
            "applicant": {"name": "林阿婆", "id": make_id(seq=seq)},
            "form": {"delivery_method": "窗口领取", "contact_phone": "13905770001"},
            "materials": ["居民身份证", "近期免冠彩色证件照"],
            "checklist": CHECKLIST,
        }
        | extra,
        ensure_ascii=False,
    )


def files_in(store_root: Path) -> list[Path]:
    return sorted(p for p in store_root.rglob("*") if p.is_file()) if store_root.exists() else []


def multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# ---------------------------------------------------------------- the staging area


def test_staging_hashes_as_it_writes_and_adopts_once(hub: Hub):
    store = hub.store
    content = PDF + os.urandom(300_000)
    staging = store.stage()
    for i in range(0, len(content), 65_536):
        staging.write(memoryview(content)[i : i + 65_536])
    staged = staging.finish()
    assert staged.sha256 == hashlib.sha256(content).hexdigest() and staged.size == len(content)
    assert staged.media_type == "application/pdf" and store.check(staged) is None
    stored = store.adopt(staged)
    assert stored.path.read_bytes() == content and not staged.path.exists()
    assert [p.name for p in files_in(store.root)] == [staged.sha256]

    over = store.stage()
    over.write(PDF + b"0" * (store.max_bytes + 10))
    cut = over.finish()
    assert cut.size > store.max_bytes and "大小上限" in str(store.check(cut))
    cut.discard()
    assert [p.name for p in files_in(store.root)] == [staged.sha256]  # nothing left of the refused one


# ---------------------------------------------------------------- through the API


def test_accepted_files_are_kept_refused_ones_leave_nothing(web: TestClient, teller, hub: Hub):
    photo = JPEG + os.urandom(2000)
    r = web.post(
        "/api/v1/applications",
        data={"data": data("201")},
        files=[("files", ("id.pdf", PDF, "application/pdf")), ("files", ("photo.jpg", photo, "image/jpeg"))],
        headers=teller,
    )
    assert r.status_code == 201, r.text
    kept = {hashlib.sha256(PDF).hexdigest(), hashlib.sha256(photo).hexdigest()}
    assert {p.name for p in files_in(hub.store.root)} == kept
    # refused after the upload arrived: a wrong check digit, a file of the wrong type, an unknown item
    wrong_digit = json.loads(data("202"))
    wrong_digit["applicant"]["id"] = wrong_digit["applicant"]["id"][:-1] + (
        "0" if wrong_digit["applicant"]["id"][-1] != "0" else "1"
    )
    for body, files in (
        (json.dumps(wrong_digit), [("files", ("a.pdf", PDF + b"x", "application/pdf")), ("files", ("b.jpg", photo))]),
        (data("203"), [("files", ("a.pdf", b"plain text")), ("files", ("b.jpg", JPEG + b"y"))]),
        (data("204", subject="NOPE"), [("files", ("a.pdf", PDF + b"z")), ("files", ("b.jpg", JPEG + b"z"))]),
    ):
        r = web.post("/api/v1/applications", data={"data": body}, files=files, headers=teller)
        assert r.status_code == 422, r.text
    assert {p.name for p in files_in(hub.store.root)} == kept  # no orphans, no .incoming- leftovers
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 1
        assert session.scalar(select(func.count()).select_from(Blob)) == 2


def test_chunked_body_over_the_limit_is_413_and_leaves_nothing(hub: Hub, teller):
    hub.settings.max_material_bytes = hub.store.max_bytes = 1024  # so the body limit is 10 KiB + 1 MiB
    boundary = "tbhTestBoundary"
    head = multipart(boundary, [("data", None, data("211").encode())])[: -len(f"--{boundary}--\r\n")]
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.pdf"\r\n\r\n'.encode()

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield head + PDF
        for _ in range(40):
            yield b"0" * 65_536
        yield f"\r\n--{boundary}--\r\n".encode()

    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        r = web.post(
            "/api/v1/applications",
            content=chunks(),
            headers=teller | {"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 413 and "上限" in r.json()["detail"], r.text
    assert files_in(hub.store.root) == []


def test_malformed_bodies_are_422_naming_what_is_wrong(web: TestClient, teller, hub: Hub):
    boundary = "tbhTestBoundary"
    whole = multipart(boundary, [("data", None, data("221").encode()), ("files", "a.pdf", PDF)])
    cases = {
        "content-type": (whole, "application/json"),  # not multipart at all
        "body": (whole[: len(whole) // 2], f"multipart/form-data; boundary={boundary}"),  # cut off
        "data": (  # a form field longer than any intake JSON can be
            multipart(boundary, [("data", None, b"x" * (300 * 1024))]),
            f"multipart/form-data; boundary={boundary}",
        ),
    }
    for field, (body, content_type) in cases.items():
        r = web.post("/api/v1/applications", content=body, headers=teller | {"content-type": content_type})
        assert r.status_code == 422, (field, r.text)
        assert field in {e["field"] for e in r.json()["errors"]}, (field, r.text)
    assert files_in(hub.store.root) == []


# ---------------------------------------------------------------- the intake fast path


def test_brief_receipt_says_what_a_full_read_says(hub: Hub):
    new = svc.NewApplication(
        subject="GG00501000",
        desk="bank-xiahong",
        applicant=svc.Applicant(name="林阿婆", id=make_id(seq="231")),
        form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        materials=[svc.MaterialIn(name="居民身份证", filename="id.pdf", content=PDF)],
        source_ref="web:231",
    )
    review = svc.FirstReview(checklist=CHECKLIST, commitment_due=hub.today() + timedelta(days=10), note="容缺")
    brief, created = svc.receive(hub, new, TELLER, first_review=review, brief=True)
    full = svc.read(hub, brief.number, TELLER)
    assert created and application_summary(hub, brief) == application_summary(hub, full)
    assert [p.item_code for p in brief.parts] == [p.item_code for p in full.parts]
    pre = full.events[-1]
    assert (pre.action, pre.reason, pre.data["commitment_due"]) == (
        "pre_review",
        "容缺",
        review.commitment_due.isoformat(),
    )
    again, created = svc.receive(hub, new, TELLER, first_review=review, brief=True)
    assert (again.number, created) == (brief.number, False)


def test_many_submissions_at_once_on_a_small_pool(hub: Hub, home: Path, db_url: str, clock):
    """Each submission takes its number and writes its rows one connection after the other; a
    thread that held one connection while asking for a second would, with more threads than
    connections, wait for ever (here: fail after the pool's 5 s timeout). Half the submissions
    repeat another's source_ref at the same moment: each key makes one application."""
    small = Hub.open(home, database_url=db_url, clock=clock)
    small.engine.dispose()
    small.engine = make_engine(db_url, pool_size=1, pool_timeout=5)  # one connection, one more in a burst
    small.sessions = session_factory(small.engine)

    def one(i: int) -> tuple[str, bool]:
        key = i // 2  # two requests per key
        app, created = desk_intake.submit(
            small,
            TELLER,
            subject_code="GG00501000",
            applicant={"name": "林阿婆", "id": make_id(seq=f"{300 + key}")},
            agent=None,
            form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
            uploads=[
                desk_intake.Upload("居民身份证", "id.pdf", PDF + bytes([key])),
                desk_intake.Upload("近期免冠彩色证件照", "p.jpg", JPEG + bytes([key])),
            ],
            tickets=[],
            checklist=CHECKLIST,
            commitment_due=None,
            note=None,
            source_ref=f"web:{key}",
            secret=b"k" * 32,
        )
        return app.number, created

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(24)))
    finally:
        small.close()
    assert len({n for n, _ in results}) == 12 and sum(created for _, created in results) == 12
    for key in range(12):  # both requests of a key got the same application
        assert results[2 * key][0] == results[2 * key + 1][0]


def test_a_retry_is_answered_before_its_content_is_checked_again(hub: Hub, tmp_path: Path):
    """A request that was accepted is accepted again, whatever changed since: the file it named
    moved, a verification ticket expired."""
    scan = tmp_path / "id.pdf"
    scan.write_bytes(PDF)
    new = svc.NewApplication(
        subject="GG00501000",
        desk="bank-xiahong",
        applicant=svc.Applicant(name="林阿婆", id=make_id(seq="251")),
        form={"delivery_method": "窗口领取", "contact_phone": "13905770001"},
        materials=[
            svc.MaterialIn(name="居民身份证", filename="id.pdf", path=scan),
            svc.MaterialIn(name="近期免冠彩色证件照", filename="p.jpg", content=JPEG),
        ],
        source_ref="retry:1",
    )
    first, created = svc.receive(hub, new, TELLER)
    scan.unlink()
    again, created_again = svc.receive(hub, new, TELLER)
    assert created and not created_again and again.number == first.number
    ticket = desk_intake.verification_ticket(b"k" * 32, "居民身份证", make_id(seq="251"), {"ok": True}, hub.now())
    hub.clock = lambda: datetime.now(UTC) + timedelta(days=2)  # the ticket is long expired
    prior, created = desk_intake.submit(
        hub,
        TELLER,
        subject_code="GG00501000",
        applicant={"name": "林阿婆", "id": make_id(seq="251")},
        agent=None,
        form={},
        uploads=[],
        tickets=[ticket],
        checklist=[],
        commitment_due=None,
        note=None,
        source_ref="retry:1",
        secret=b"k" * 32,
    )
    assert (prior.number, created) == (first.number, False)


def test_files_no_application_refers_to_are_swept_after_an_hour(hub: Hub):
    """A write that fails after its files were put in place leaves them (another request may be
    taking the same bytes that moment); housekeeping removes them once they are an hour old,
    and half-received uploads once they are a day old. Files an application uses stay."""
    kept = svc.create(hub, elderly_card(), TELLER)
    used = {m.sha256 for m in kept.materials}
    orphan = hub.store.put(PDF + b"orphan")
    fresh_orphan = hub.store.put(PDF + b"fresh")
    staging = hub.store.stage()
    staging.write(PDF)
    abandoned = staging.finish()
    old = time.time() - 2 * 86_400
    for path in [*hub.store.root.rglob("*")]:
        if path.is_file() and path.name != fresh_orphan.sha256:
            os.utime(path, (old, old))
    assert housekeeping.sweep_store(hub) == (1, 1)
    left = {p.name for p in files_in(hub.store.root)}
    assert left == used | {fresh_orphan.sha256} and orphan.sha256 not in left and not abandoned.path.exists()


def test_a_failing_close_still_removes_the_staged_file(hub: Hub):
    """A full disk makes even closing the file fail; the file must go all the same."""
    staging = hub.store.stage()
    staging.write(PDF)

    class FullDisk:
        def close(self):
            raise OSError(28, "No space left on device")

    real, staging._file = staging._file, FullDisk()
    real.close()
    staging.discard()
    assert not staging.path.exists()


def test_part_names_are_cleaned_and_must_be_utf8(web: TestClient, teller, hub: Hub):
    boundary = "tbhTestBoundary"
    owed = data("261", materials=["居民身份证"], commitment_due="2026-10-09")
    nasty = "../../ev\u202eil\x00gpj.pdf"  # a path, a right-to-left override, a NUL
    body = multipart(boundary, [("data", None, owed.encode()), ("files", nasty, PDF)])
    content_type = {"content-type": f"multipart/form-data; boundary={boundary}"}
    r = web.post("/api/v1/applications", content=body, headers=teller | content_type)
    assert r.status_code == 201, r.text
    detail = web.get(f"/api/v1/applications/{r.json()['number']}", headers=teller).json()
    assert [m["filename"] for m in detail["materials"]] == ["evilgpj.pdf"]
    gbk = multipart(boundary, [("data", None, data("262").encode("gbk"))])  # an old system's encoding
    r = web.post("/api/v1/applications", content=gbk, headers=teller | content_type)
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"data"}
    assert uploads._safe_name("C:\\scan\\ev\u202eil\x00gpj.pdf", 0) == "evilgpj.pdf"
    assert uploads._safe_name("\x01\x02", 3) == "file-3"


# ---------------------------------------------------------------- 网上核验 tickets


def test_verification_tickets_are_bound_signed_and_dated(hub: Hub):
    secret, ident, now = b"k" * 32, make_id(seq="241"), hub.now()
    ticket = desk_intake.verification_ticket(secret, "户口簿", ident, {"ok": True}, now)
    assert desk_intake.read_ticket(secret, ticket, ident, now + timedelta(hours=1)) == ("户口簿", {"ok": True})
    assert desk_intake.read_ticket(secret, ticket, make_id(seq="242"), now) is None  # another applicant
    assert desk_intake.read_ticket(b"x" * 32, ticket, ident, now) is None  # not signed by this hub
    assert (
        desk_intake.read_ticket(secret, ticket, ident, now + timedelta(hours=desk_intake.TICKET_HOURS, seconds=1))
        is None
    )
    assert desk_intake.read_ticket(secret, ticket[:-2] + "00", ident, now) is None
