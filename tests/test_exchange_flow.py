"""跨省通办 end to end between two real hubs: 泰顺 (A, SQLite) collects, 福鼎 (B, PostgreSQL when
HUB_TEST_DATABASE_URL is set) decides. Both are `hub serve` processes on loopback with homes,
databases and keys of their own (tests/support/partner_hubs.py); this process plays the desks,
the officers and `hub run exchange`.

- 异地代收代办: a bank teller's first-reviewed application reaches B's partner desk, B decides and
  issues it with a result document, and A's application follows B step by step.
- 多地联办: a bundle with one part decided in A and one in B; B denies its part, A approves its own,
  the application is decided `partial` with B's reason on A's chain.
- Exactly once: B down, then up; the sender killed (SIGKILL) after B took the message but before
  the sender recorded B's answer.
- The message log names an entry edited in the database or in an export."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from hub import applications as svc
from hub.errors import Forbidden
from hub.events import verify_chain
from hub.exchange.catalogue import sync
from hub.exchange.send import send
from hub.storage.tables import Event, MessageLogEntry, PartnerInbox, PartnerLink, PartnerMessage, naive_utc
from tests.support.partner_hubs import (
    FD_MZJ,
    FD_RSJ,
    HALL_CLERK,
    HUB_BIN,
    PG_URL,
    READER,
    TELLER,
    TS_RSJ,
    HeldProxy,
    Pair,
    count,
    outbox_rows,
    partner_hubs,
    pdf,
    proxy_application,
    resident_id,
    wait_for,
)

DELIVERY_SECONDS = 60  # a guard on "sent again until delivered" loops; they end on the real condition


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with partner_hubs(tmp_path_factory.mktemp("exchange")) as pair:
        # the desks may collect 福鼎's items once its signed item list is kept here
        synced = pair.a.cli("partners", "sync-catalogue")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        pair.a.hub.partner_lists_current(force=True)
        assert "fuding:GG00501000" in pair.a.hub.catalog.items
        assert pair.b.hub.engine.dialect.name == ("postgresql" if PG_URL else "sqlite")
        yield pair


def _one_application(hubs: Pair, number: str) -> svc.Application:
    """B's one application for A's `number`, read whole."""
    (row,) = hubs.applications_from_a(number)
    return svc.read(hubs.b.hub, row.number, READER)


def _send_until(hub, condition, what: str) -> None:
    """`hub run exchange` until `condition()` holds: each round makes what is owed due now (no
    waiting out the backoff), then sends."""

    def round_() -> bool:
        with hub.transaction() as session:
            session.execute(
                update(PartnerMessage)
                .where(PartnerMessage.state == "pending")
                .values(next_attempt_at=naive_utc(hub.now()))
            )
        send(hub)
        return condition()

    wait_for(round_, seconds=DELIVERY_SECONDS, what=what, every=0.1)


def _log_verdicts(hub, message_id: str, direction: str = "in") -> list[str]:
    with hub.sessions() as session:
        return list(
            session.scalars(
                select(MessageLogEntry.verdict)
                .where(MessageLogEntry.message_id == message_id, MessageLogEntry.direction == direction)
                .order_by(MessageLogEntry.seq)
            )
        )


def _partner_received(app: svc.Application) -> list[Event]:
    return [e for e in app.events if e.action == "partner_received"]


def test_proxy_application_collected_in_taishun_is_decided_and_issued_in_fuding(hubs: Pair):
    a, b = hubs.a, hubs.b
    applicant = "350982195003150212"  # 福鼎 resident, valid GB 11643 check digit
    app = proxy_application(a.hub, applicant)
    assert (app.state, app.deciding_division) == ("pre_reviewed", "350982")
    (owed,) = outbox_rows(a.hub, app.number)
    assert (owed.kind, owed.partner, owed.state) == ("application", "fuding", "pending")

    sent = send(a.hub)
    assert (sent.delivered, sent.retrying, sent.dead) == (1, 0, 0), sent.line()
    theirs = _one_application(hubs, app.number)
    assert theirs.state == "pre_reviewed"
    assert (theirs.desk_code, theirs.origin_partner, theirs.origin_number) == ("partner-taishun", "taishun", app.number)
    assert theirs.applicant_id == applicant and theirs.parts[0].item_code == "GG00501000"
    assert sorted(m.name for m in theirs.materials) == ["居民身份证", "近期免冠彩色证件照"]
    (received,) = _partner_received(theirs)
    assert received.data["origin_number"] == app.number and received.data["mode"] == "proxy"
    mine = svc.read(a.hub, app.number, READER)
    assert {m.sha256 for m in theirs.materials} == {m.sha256 for m in mine.materials}  # the files, byte for byte
    (link,) = _links(a.hub, mine.id)
    assert link.remote_number == theirs.number and link.mode == "proxy"

    # 福鼎民政 accepts and decides; the result (优待证) is issued with its document
    for action in ("accept", "start_review", "approve"):
        svc.transition(b.hub, theirs.number, action, FD_MZJ)
    result = pdf("老年人优待证 " + theirs.number)
    svc.attach_result(b.hub, theirs.number, theirs.parts[0].id, "老年人优待证.pdf", result, FD_MZJ)
    svc.transition(b.hub, theirs.number, "issue", FD_MZJ)
    back = send(b.hub)
    assert back.delivered >= 2 and (back.retrying, back.dead) == (0, 0), back.line()
    assert {r.state for r in _all_outbox(b.hub)} == {"delivered"}

    mine = svc.read(a.hub, app.number, READER)
    assert mine.state == "issued" and svc.outcome_of(mine) == "approved"
    from_partner = {e.action: e for e in mine.events if e.desk == "partner-fuding"}
    for action in ("accept", "start_review", "approve", "issue"):
        assert action in from_partner, f"{action} missing from {[e.action for e in mine.events]}"
        assert from_partner[action].data["partner"] == "fuding"
        assert from_partner[action].data["remote_number"] == theirs.number
    (decide,) = [e for e in mine.events if e.action == "decide"]
    assert decide.data["outcome"] == "approved"
    (doc,) = [m for m in mine.materials if m.kind == "result"]
    assert doc.name == "老年人优待证.pdf" and a.hub.store.path_of(doc.sha256).read_bytes() == result
    assert verify_chain(mine).ok, verify_chain(mine)
    assert verify_chain(svc.read(b.hub, theirs.number, READER)).ok

    for side in (a, b):
        checked = side.cli("partners", "verify-log")
        assert checked.returncode == 0, f"{side.label}: {checked.stdout}{checked.stderr}"
        assert "message log verified" in checked.stdout


def test_joint_bundle_decided_partially_when_fuding_denies_its_part(hubs: Pair):
    a, b = hubs.a, hubs.b
    version, items, _ = sync(a.hub, a.hub.partners.by_name["fuding"])
    assert version and items == 2
    assert "YJS-KSYL" in a.hub.catalog.bundles  # offered: 福鼎's current list holds its item
    subject = a.hub.catalog.subject("YJS-KSYL")
    form = {f.name for f in a.hub.catalog.form_of(subject)}
    assert {"retirement_type", "contact_phone", "contribution_grade"} <= form  # one form for both parts
    applicant = resident_id("330329", date(1965, 6, 1), 31)
    app = svc.create(
        a.hub,
        svc.NewApplication(
            subject="YJS-KSYL",
            desk=HALL_CLERK.desk,
            applicant=svc.Applicant(name="吴建国", id=applicant),
            form={
                "retirement_type": "正常退休",
                "retirement_date": "2026-12-01",
                "payee_bank_name": "浙江泰顺农村商业银行",
                "payee_bank_account": "6230910199001234567",
                "contact_phone": "13905770002",
                "contribution_grade": "500元",
            },
            materials=[
                svc.MaterialIn(name="居民身份证", filename="id.pdf", content=pdf("身份证 吴建国")),
                svc.MaterialIn(name="参保缴费记录", filename="record.pdf", content=pdf("缴费记录 吴建国")),
                svc.MaterialIn(name="本人人事档案", filename="file.pdf", content=pdf("档案 吴建国")),
            ],
        ),
        HALL_CLERK,
        first_review=svc.FirstReview(checklist=["材料齐全"]),
    )
    assert outbox_rows(a.hub, app.number) == []  # a joint application goes to 福鼎 when it is accepted here
    svc.transition(a.hub, app.number, "accept", TS_RSJ)
    (owed,) = outbox_rows(a.hub, app.number)
    assert (owed.kind, owed.data["mode"]) == ("application", "joint")
    sent = send(a.hub)
    why = outbox_rows(a.hub, app.number)[0].last_error
    assert (sent.delivered, sent.retrying, sent.dead) == (1, 0, 0), f"{sent.line()}: {why}"

    theirs = _one_application(hubs, app.number)
    assert theirs.state == "pre_reviewed" and [p.item_code for p in theirs.parts] == ["GG00201000"]
    assert _partner_received(theirs)[0].data["mode"] == "joint"
    reason = "申请人已在福鼎市参加城乡居民基本养老保险，不得重复参保登记"
    svc.transition(b.hub, theirs.number, "accept", FD_RSJ)
    svc.transition(b.hub, theirs.number, "start_review", FD_RSJ)
    svc.transition(b.hub, theirs.number, "deny", FD_RSJ, reason=reason)
    back = send(b.hub)
    assert back.delivered >= 1 and (back.retrying, back.dead) == (0, 0), back.line()

    mine = svc.read(a.hub, app.number, READER)
    ours, partners = mine.parts
    assert partners.item_code == "fuding:GG00201000" and partners.state == "denied"
    assert mine.state == "in_review"  # our part is still to decide
    (denied,) = [e for e in mine.events if e.action == "deny"]
    assert denied.part_id == partners.id and denied.desk == "partner-fuding" and denied.reason == reason

    svc.transition(a.hub, app.number, "start_review", TS_RSJ, part=ours.item_code)
    svc.transition(a.hub, app.number, "approve", TS_RSJ, part=ours.item_code)
    mine = svc.read(a.hub, app.number, READER)
    assert mine.state == "decided" and svc.outcome_of(mine) == "partial"
    (decide,) = [e for e in mine.events if e.action == "decide"]
    assert decide.data["outcome"] == "partial"
    assert decide.data["parts"] == {"GG00104001": "approved", "fuding:GG00201000": "denied"}
    assert verify_chain(mine).ok, verify_chain(mine)


def test_fuding_down_for_a_while_then_up_takes_the_application_once(hubs: Pair):
    a, b = hubs.a, hubs.b
    app = proxy_application(a.hub, resident_id("350982", date(1952, 8, 8), 41), name="陈阿公")
    b.server.stop()
    try:
        down = send(a.hub)
        assert (down.delivered, down.retrying, down.dead) == (0, 1, 0), down.line()
        (row,) = outbox_rows(a.hub, app.number)
        assert (row.state, row.attempts, row.claim_token) == ("pending", 1, None)
        assert "无应答" in row.last_error
        assert hubs.applications_from_a(app.number) == []  # nothing delivered
    finally:
        b.server.start()  # the same port: A's partner file still names it

    _send_until(a.hub, lambda: outbox_rows(a.hub, app.number)[0].state == "delivered", "delivered after B is back")
    (row,) = outbox_rows(a.hub, app.number)
    assert (row.state, row.attempts) == ("delivered", 2)
    assert len(hubs.applications_from_a(app.number)) == 1
    assert count(b.hub, PartnerInbox, PartnerInbox.message_id == row.message_id) == 1
    assert _log_verdicts(b.hub, row.message_id) == ["accepted"]
    mine = svc.read(a.hub, app.number, READER)
    assert len(_partner_received(mine)) == 1 and verify_chain(mine).ok


def test_sender_killed_after_fuding_took_the_message_sends_it_again_and_fuding_keeps_one(hubs: Pair):
    a, b = hubs.a, hubs.b
    app = proxy_application(a.hub, resident_id("350982", date(1949, 10, 1), 53), name="郑阿婆")
    (row,) = outbox_rows(a.hub, app.number)
    proxy = HeldProxy(b.server.port)
    original = a.read_partner("fuding")
    held = {**original, "url": proxy.url, "limits": {**original.get("limits", {}), "timeout_seconds": 60}}
    a.write_partner("fuding", held)  # the killed sender's way to B: through the proxy, answers held
    sender = None
    try:
        sender = subprocess.Popen(
            [str(HUB_BIN), "--home", str(a.home), "run", "exchange"],
            env=a.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: proxy.answer_held.is_set() or sender.poll() is not None, seconds=60, what="B's answer")
        assert sender.poll() is None, sender.stdout.read().decode()
        assert len(hubs.applications_from_a(app.number)) == 1  # B took it and answered
        sender.send_signal(signal.SIGKILL)
        sender.wait(10)
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
            sender.wait(10)
        a.write_partner("fuding", original)
        proxy.close()

    (row,) = outbox_rows(a.hub, app.number)
    assert (row.state, row.attempts) == ("pending", 0) and row.claim_token is not None  # claimed, no outcome
    mine = svc.read(a.hub, app.number, READER)
    assert _partner_received(mine) == []
    # the dead sender's claim runs out (here: at once), and the next run sends it again
    with a.hub.transaction() as session:
        session.execute(
            update(PartnerMessage)
            .where(PartnerMessage.id == row.id)
            .values(claimed_until=naive_utc(a.hub.now()) - timedelta(seconds=1))
        )
    again = send(a.hub)
    assert (again.delivered, again.retrying, again.dead) == (1, 0, 0), again.line()

    (row,) = outbox_rows(a.hub, app.number)
    assert (row.state, row.attempts, row.claim_token) == ("delivered", 1, None)
    assert len(hubs.applications_from_a(app.number)) == 1
    assert count(b.hub, PartnerInbox, PartnerInbox.message_id == row.message_id) == 1
    assert _log_verdicts(b.hub, row.message_id) == ["accepted", "duplicate"]  # the same answer, given again
    mine = svc.read(a.hub, app.number, READER)
    (received,) = _partner_received(mine)
    assert received.data["remote_number"] == hubs.b_number(app.number)
    assert verify_chain(mine).ok


def test_message_log_verification_names_an_edited_entry(hubs: Pair, tmp_path: Path):
    a = hubs.a
    if count(a.hub, MessageLogEntry) < 4:  # run alone: make some traffic first
        proxy_application(a.hub, resident_id("350982", date(1951, 1, 1), 61))
        send(a.hub)
    clean = a.cli("partners", "verify-log")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    with a.hub.sessions() as session:
        answer = session.scalars(
            select(MessageLogEntry).where(MessageLogEntry.verdict == "answer:ack").order_by(MessageLogEntry.seq)
        ).first()
        sent = session.scalars(
            select(MessageLogEntry).where(MessageLogEntry.verdict == "sent").order_by(MessageLogEntry.seq.desc())
        ).first()
    for seq, column, edited, original in (
        (answer.seq, "verdict", "answer:refusal", answer.verdict),
        (sent.seq, "body", sent.body.replace('"kind":"', '"kind":"x', 1), sent.body),
    ):
        assert edited != original
        a.execute(f"UPDATE partner_message_log SET {column} = :v WHERE seq = :s", v=edited, s=seq)
        try:
            broken = a.cli("partners", "verify-log")
        finally:
            a.execute(f"UPDATE partner_message_log SET {column} = :v WHERE seq = :s", v=original, s=seq)
        assert broken.returncode != 0, broken.stdout
        assert f"FAIL #{seq}:" in broken.stdout, broken.stdout
        others = [line for line in broken.stdout.splitlines() if line.startswith("FAIL") and f"#{seq}:" not in line]
        assert others == [], broken.stdout  # the edited entry, and no other, is named
    assert a.cli("partners", "verify-log").returncode == 0

    export = tmp_path / "log.jsonl"
    written = a.cli("partners", "log", "--export", str(export))
    assert written.returncode == 0, written.stdout + written.stderr
    checked = a.cli("partners", "verify-log", "--file", str(export))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = export.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[1])
    entry["verdict"] = "refused:bad_signature"
    lines[1] = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    edited = a.cli("partners", "verify-log", "--file", str(export))
    assert edited.returncode != 0, edited.stdout
    assert f"FAIL #{entry['seq']}:" in edited.stdout, edited.stdout


def test_message_log_verification_notices_the_newest_entries_removed(hubs: Pair):
    a = hubs.a
    if count(a.hub, MessageLogEntry) < 4:  # run alone: make some traffic first
        proxy_application(a.hub, resident_id("350982", date(1951, 1, 2), 62))
        send(a.hub)
    log_table = MessageLogEntry.__table__
    with a.hub.engine.connect() as conn:
        last = conn.execute(select(func.max(log_table.c.seq))).scalar_one()
        removed = [dict(r) for r in conn.execute(select(log_table).where(log_table.c.seq >= last - 1)).mappings()]
    assert len(removed) == 2
    a.execute("DELETE FROM partner_message_log WHERE seq >= :s", s=last - 1)
    try:
        cut = a.cli("partners", "verify-log")
    finally:  # put them back: the log is whole again for whatever runs next
        with a.hub.engine.begin() as conn:
            conn.execute(log_table.insert(), removed)
    assert a.cli("partners", "verify-log").returncode == 0
    assert cut.returncode != 0, cut.stdout
    assert f"#{last - 1}" in cut.stdout, cut.stdout


def _links(hub, application_id: int) -> list[PartnerLink]:
    with hub.sessions() as session:
        return list(session.scalars(select(PartnerLink).where(PartnerLink.application_id == application_id)))


def _all_outbox(hub) -> list[PartnerMessage]:
    with hub.sessions() as session:
        return list(session.scalars(select(PartnerMessage)))


def test_withdrawn_after_an_answer_was_lost_the_partner_is_told_not_forgotten(hubs: Pair):
    """The teller withdraws an application whose first send reached 福鼎 but whose answer never
    came back: the partner may hold the case, so it is told (never silently cancelled here)."""
    a = hubs.a
    app = proxy_application(a.hub, resident_id("350982", date(1947, 2, 3), 71), name="吴阿公")
    _send_until(a.hub, lambda: outbox_rows(a.hub, app.number)[0].state == "delivered", "delivered")
    with a.hub.transaction() as session:  # as if B's answer had been lost: still owed, tried once
        session.execute(
            update(PartnerMessage)
            .where(PartnerMessage.conversation == app.number)
            .values(state="pending", attempts=1, delivered_at=None)
        )
    svc.transition(a.hub, app.number, "withdraw", TELLER, reason="申请人不再需要")
    rows = {r.kind: r for r in outbox_rows(a.hub, app.number)}
    assert rows["application"].state == "cancelled" and rows["withdraw"].state == "pending"
    _send_until(a.hub, lambda: outbox_rows(a.hub, app.number)[-1].state == "delivered", "withdrawal delivered")
    (theirs,) = hubs.applications_from_a(app.number)
    assert theirs.state == "withdrawn"
    mine = svc.read(a.hub, app.number, READER)
    (answer,) = [e for e in mine.events if e.action == "partner_withdraw_answer"]
    assert answer.data["withdrawn"] is True and answer.reason is None
    assert verify_chain(mine).ok


def test_a_case_fuding_decides_cannot_be_moved_here(hubs: Pair):
    """Our application follows the partner's case step by step; a step taken here as well (补正,
    受理, 出件) would put the two apart for good, so only the partner takes them."""
    a = hubs.a
    app = proxy_application(a.hub, resident_id("350982", date(1946, 6, 6), 72), name="孙阿婆")
    clerk = svc.Actor(name="网点综合窗口", role="clerk", desk=TELLER.desk)  # a role that accepts at home
    for action, actor in (("request_supplement", TELLER), ("accept", clerk), ("reject", clerk)):
        with pytest.raises(Forbidden, match="对方地区"):
            svc.transition(a.hub, app.number, action, actor, reason="测试")
    assert svc.read(a.hub, app.number, READER).state == "pre_reviewed"


def test_joint_part_decided_there_while_our_part_waits_for_supplement(hubs: Pair):
    """多地联办: our officer asks for 补正 on our part; meanwhile 福鼎 approves its part. Its
    decision is applied at once, and the application is decided when our 补正 is done and our
    part approved — nothing is lost while the states differ."""
    a, b = hubs.a, hubs.b
    number = _joint_application(hubs, resident_id("330329", date(1960, 1, 1), 73), "钱阿公")
    svc.transition(a.hub, number, "accept", TS_RSJ)
    _send_until(a.hub, lambda: all(r.state == "delivered" for r in outbox_rows(a.hub, number)), "sent to B")
    svc.transition(a.hub, number, "request_supplement", TS_RSJ, reason="请补交退休审批表")
    (theirs,) = hubs.applications_from_a(number)
    for action in ("accept", "start_review", "approve"):
        svc.transition(b.hub, theirs.number, action, FD_RSJ)
    _send_until(b.hub, lambda: _partner_part(a.hub, number).state == "approved", "B's decision applied")
    assert svc.read(a.hub, number, READER).state == "supplement_requested"
    svc.transition(a.hub, number, "resume", TS_RSJ)
    svc.transition(a.hub, number, "start_review", TS_RSJ, part="GG00104001")
    mine = svc.transition(a.hub, number, "approve", TS_RSJ, part="GG00104001")
    assert mine.state == "decided" and svc.outcome_of(mine) == "approved"
    assert verify_chain(svc.read(a.hub, number, READER)).ok


def test_fuding_down_while_its_news_piles_up_then_up(hubs: Pair):
    """The other direction: 泰顺 (A) is down while 福鼎 decides and issues; B's status and result
    messages wait and arrive exactly once when A is back."""
    a, b = hubs.a, hubs.b
    app = proxy_application(a.hub, resident_id("350982", date(1945, 9, 9), 74), name="周阿婆")
    _send_until(a.hub, lambda: outbox_rows(a.hub, app.number)[0].state == "delivered", "delivered")
    (theirs,) = hubs.applications_from_a(app.number)
    a.server.stop()
    try:
        for action in ("accept", "start_review", "approve"):
            svc.transition(b.hub, theirs.number, action, FD_MZJ)
        theirs = svc.read(b.hub, theirs.number, FD_MZJ)
        svc.attach_result(b.hub, theirs.number, theirs.parts[0].id, "优待证.pdf", pdf("card-74"), FD_MZJ)
        svc.transition(b.hub, theirs.number, "issue", FD_MZJ)
        down = send(b.hub)
        assert down.delivered == 0 and down.retrying >= 1, down.line()
    finally:
        a.server.start()
    _send_until(b.hub, lambda: svc.read(a.hub, app.number, READER).state == "issued", "A caught up")
    _send_until(b.hub, lambda: not [r for r in _all_outbox(b.hub) if r.state == "pending"], "B's backlog drained")
    mine = svc.read(a.hub, app.number, READER)
    assert [m.name for m in mine.materials if m.kind == "result"] == ["优待证.pdf"]
    steps = [e.action for e in mine.events if e.actor.startswith("福鼎")]
    for step in ("accept", "start_review", "approve", "issue"):
        assert steps.count(step) == 1, steps  # each of B's steps once, however many messages carried it
    assert verify_chain(mine).ok


def _partner_part(hub, number: str):
    return next(p for p in svc.read(hub, number, READER).parts if ":" in p.item_code)


def _joint_application(hubs: Pair, applicant: str, name: str) -> str:
    """A 多地联办 application (YJS-KSYL: our 养老保险待遇申领 and 福鼎's 参保登记) at our hall desk."""
    app = svc.create(
        hubs.a.hub,
        svc.NewApplication(
            subject="YJS-KSYL",
            desk=HALL_CLERK.desk,
            applicant=svc.Applicant(name=name, id=applicant),
            form={
                "retirement_type": "正常退休",
                "retirement_date": "2026-12-01",
                "payee_bank_name": "浙江泰顺农村商业银行",
                "payee_bank_account": "6230910199001234567",
                "contact_phone": "13905770002",
                "contribution_grade": "500元",
            },
            materials=[
                svc.MaterialIn(name="居民身份证", filename="id.pdf", content=pdf(f"身份证 {name}")),
                svc.MaterialIn(name="参保缴费记录", filename="record.pdf", content=pdf(f"缴费记录 {name}")),
                svc.MaterialIn(name="本人人事档案", filename="file.pdf", content=pdf(f"档案 {name}")),
            ],
        ),
        HALL_CLERK,
        first_review=svc.FirstReview(checklist=["材料齐全"]),
    )
    return app.number
