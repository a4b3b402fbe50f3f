"""Reliable dispatch through the outbox to a sandbox department over loopback, and status sync
back: delivered once despite outages, retries and a dispatcher killed mid-run."""

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
import yaml
from sqlalchemy import func, select

from hub import applications as svc
from hub import outbox
from hub.context import Hub
from hub.jobs.dispatch import DispatchSummary, _claim, _finish, dispatch
from hub.jobs.sync import sync
from hub.presenters import application_detail
from hub.storage.tables import Event, OutboxRow
from plugins.sandbox.rest_department import RestDepartment
from tests.conftest import PDF, make_id
from tests.support.samples import HZ_CLERK, MEDICAL_FILING, officer

TOKEN = "dispatch-test-token"
YBJ = officer("ts-ybj")


@pytest.fixture
def dept():
    d = RestDepartment(token=TOKEN).start()
    yield d
    d.stop()


@pytest.fixture
def wired(home, db_url, clock, dept, monkeypatch):
    """The hub, with its yibao-rest connection pointed at the sandbox."""
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    path = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = dept.url
    conf["config"]["retries"] = 0
    conf["limits"] = {"concurrency": 3, "max_attempts": 3, "backoff_seconds": 60}
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    h = Hub.open(home, database_url=db_url, clock=clock)
    yield h
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
            svc.MaterialIn(name="居民身份证", filename="id.pdf", content=PDF + str(i).encode()),
            svc.MaterialIn(name="异地长期居住个人承诺书", filename="p.pdf", content=PDF + b"p"),
        ],
    )


def accepted(hub, n: int) -> list[str]:
    numbers = []
    for i in range(n):
        app = svc.create(hub, filing(i), HZ_CLERK)
        numbers.append(svc.transition(hub, app.number, "accept", YBJ).number)
    return numbers


def rows(hub) -> list[OutboxRow]:
    with hub.sessions() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_acceptance_queues_in_the_same_transaction_and_dispatch_delivers_once(wired, dept):
    (number,) = accepted(wired, 1)
    assert [(r.state, r.connection) for r in rows(wired)] == [("pending", "yibao-rest")]
    assert dispatch(wired).delivered == 1
    assert dispatch(wired).delivered == 0  # nothing left
    (row,) = rows(wired)
    assert row.state == "delivered" and row.remote_id == "YB-000001"
    assert dept.received == {row.part_id: 1}  # one request: nothing sent twice on the happy path
    sent = dept.parts["YB-000001"].body
    assert sent["application_number"] == number and [m["name"] for m in sent["materials"]] == [
        "居民身份证",
        "异地长期居住个人承诺书",
    ]
    view = application_detail(wired, svc.read(wired, number, YBJ))
    assert view["deliveries"][0]["remote_id"] == "YB-000001" and view["chain"]["ok"]
    assert view["events"][-1]["action"] == "dispatch"


def test_department_down_then_up_receives_every_part_once(wired, dept, clock):
    accepted(wired, 5)
    dept.down = True
    first = dispatch(wired)
    assert (first.delivered, first.retrying) == (0, 5)
    assert all(r.attempts == 1 and "503" in r.last_error for r in rows(wired))
    assert dispatch(wired).retrying == 0  # backing off: not yet due
    dept.down = False
    clock.advance(hours=1)
    assert dispatch(wired).delivered == 5
    assert sorted(dept.submissions.values()) == [1] * 5
    assert dept.received.total() == 5  # requests refused with 503 never reached the handler's count


def test_dead_letter_then_retry_by_hand(wired, dept, clock):
    (number,) = accepted(wired, 1)
    dept.down = True
    for _ in range(3):
        dispatch(wired)
        clock.advance(hours=2)
    (row,) = rows(wired)
    assert row.state == "dead" and row.attempts == 3 and "503" in row.last_error
    assert svc.read(wired, number, YBJ).events[-1].action == "dispatch_dead"
    dept.down = False
    with wired.transaction() as s:
        assert outbox.retry(s, wired.now(), all_dead=True) == 1
    assert dispatch(wired).delivered == 1 and dept.received.total() == 1


def test_a_refusal_is_dead_at_once(wired, dept):
    accepted(wired, 1)
    dept.token = "rotated"
    summary = dispatch(wired)
    assert summary.dead == 1 and "401" in rows(wired)[0].last_error


def test_sync_brings_decisions_and_documents_back_once(wired, dept):
    a, b, c = accepted(wired, 3)
    dispatch(wired)
    ids = {r.part_id: r.remote_id for r in rows(wired)}
    remote = {svc.read(wired, n, YBJ).parts[0].id: n for n in (a, b, c)}
    by_number = {n: ids[p] for p, n in remote.items()}
    dept.decide(by_number[a], "approved")
    dept.decide(by_number[b], "denied", "非异地长期居住人员")
    dept.decide(by_number[c], "supplement_requested", "请补充居住证明")
    summary = sync(wired)
    assert (summary.decided, summary.supplements, summary.documents) == (2, 1, 1)
    app_a = application_detail(wired, svc.read(wired, a, YBJ))
    assert app_a["state"] == "decided" and app_a["outcome"] == "approved"
    assert app_a["results"][0]["media_type"] == "application/pdf"
    app_b = svc.read(wired, b, YBJ)
    assert (
        app_b.state == "decided" and next(e for e in app_b.events if e.action == "deny").reason == "非异地长期居住人员"
    )
    assert svc.read(wired, c, YBJ).state == "supplement_requested"
    svc.transition(wired, c, "resume", HZ_CLERK)
    again = sync(wired)  # the department still shows 补正: not requested a second time
    assert (again.updates, again.decided, again.supplements) == (0, 0, 0)
    assert svc.read(wired, c, YBJ).state == "accepted"


def test_killed_dispatcher_loses_nothing_and_delivers_nothing_twice(wired, dept, db_url, home):
    accepted(wired, 12)
    settings = yaml.safe_load((home / "hub.yaml").read_text(encoding="utf-8"))
    settings["dispatch_lease_seconds"] = 2
    (home / "hub.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    # a short lease needs short calls: a connection whose call could outlive its claim is refused
    conn = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(conn.read_text(encoding="utf-8"))
    conf["config"] |= {"max_call_seconds": 0.8, "timeout_seconds": 0.8, "connect_timeout_seconds": 0.8}
    conn.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    dept.latency = 0.3  # slow enough to be killed mid-run
    env = {**os.environ, "HUB_DATABASE_URL": db_url, "HUB_SANDBOX_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "hub", "--home", str(home), "run", "dispatch"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while dept.received.total() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    done_before = sum(r.state == "delivered" for r in rows(wired))
    assert dept.received.total() > 0 and done_before < 12, "the kill must land mid-run"
    time.sleep(2.5)  # the dead dispatcher's lease runs out
    dept.latency = 0.0
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=60)
    assert "dispatch:" in result.stdout
    assert [r.state for r in rows(wired)] == ["delivered"] * 12
    # the parts in flight at the kill were sent again; the department kept one case each
    assert dept.received.total() >= 12 and sorted(dept.submissions.values()) == [1] * 12
    with wired.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == 12
        dispatched = s.scalars(select(Event.part_id).where(Event.action == "dispatch")).all()
    assert sorted(dispatched) == sorted(r.part_id for r in rows(wired))  # one dispatch event per part


def test_secrets_never_reach_the_logs(wired, dept, caplog, clock):
    import logging

    caplog.set_level(logging.DEBUG)  # everything: httpx, httpcore, the hub
    accepted(wired, 2)
    dispatch(wired)
    dept.token = "rotated"  # refusals produce error text too
    accepted(wired, 1)
    dispatch(wired)
    sync(wired)
    assert caplog.records, "DEBUG logging must have captured something for this test to mean anything"
    assert TOKEN not in caplog.text
    for row in rows(wired):
        assert TOKEN not in (row.last_error or "")


def test_an_outcome_is_recorded_only_under_the_claim_that_delivered(wired, dept, clock):
    """A dispatcher that outlived its lease must not record over the one that took the row since."""
    accepted(wired, 1)
    stale = _claim(wired, "yibao-rest")
    clock.advance(seconds=wired.settings.dispatch_lease_seconds + 1)
    current = _claim(wired, "yibao-rest")
    assert stale.row_id == current.row_id and stale.token != current.token
    summary = DispatchSummary()
    _finish(wired, stale, None, "late failure", True, summary)
    (row,) = rows(wired)
    assert (row.state, row.attempts, row.last_error, row.claim_token) == ("pending", 0, None, current.token)
    _finish(wired, current, "YB-1", None, False, summary)
    _finish(wired, stale, "YB-1", None, False, summary)  # the stale one again, after: nothing
    (row,) = rows(wired)
    assert (row.state, row.attempts, summary.delivered) == ("delivered", 1, 1)


def test_withdrawal_cancels_what_is_owed(wired, dept, clock):
    first, second = accepted(wired, 2)
    dispatch(wired)  # the first two reach the department
    (third,) = accepted(wired, 1)
    svc.transition(wired, third, "withdraw", HZ_CLERK, reason="申请人撤回")
    svc.transition(wired, first, "withdraw", HZ_CLERK, reason="申请人撤回")
    by_app = {svc.read(wired, n, YBJ).parts[0].id: n for n in (first, second, third)}
    states = {by_app[r.part_id]: r.state for r in rows(wired)}
    assert states == {first: "delivered", second: "delivered", third: "cancelled"}
    assert dispatch(wired).delivered == 0 and dept.received.total() == 2
    withdrawn = svc.read(wired, first, YBJ).events[-1]
    assert withdrawn.action == "withdraw" and withdrawn.data["held_by_departments"] == ["yibao-rest"]
    assert svc.read(wired, third, YBJ).events[-1].data["deliveries_cancelled"] == 1


def test_a_refused_result_document_does_not_hold_the_decision_back(wired, dept):
    (number,) = accepted(wired, 1)
    dispatch(wired)
    (row,) = rows(wired)
    dept.decide(row.remote_id, "approved")
    dept.documents[f"{row.remote_id}-result"] = b"MZ\x90\x00 an executable, not a decision"
    summary = sync(wired)
    assert (summary.decided, summary.documents, summary.refused) == (1, 0, 1)
    app = svc.read(wired, number, YBJ)
    assert app.state == "decided" and not [m for m in app.materials if m.kind == "result"]
    refused = next(e for e in app.events if e.action == "result_refused")
    assert "不接受的文件类型" in refused.reason and refused.data["connection"] == "yibao-rest"
    assert sync(wired).updates == 0  # applied once


def test_a_decision_that_cannot_apply_yet_is_applied_when_it_can(wired, dept):
    """The department approves while the hub waits for the applicant's 补正: the approval is
    not marked seen, and lands once the application resumes."""
    (number,) = accepted(wired, 1)
    dispatch(wired)
    (row,) = rows(wired)
    svc.transition(wired, number, "request_supplement", YBJ, reason="请补充居住证明")
    dept.decide(row.remote_id, "approved")
    assert sync(wired).decided == 0
    assert svc.read(wired, number, YBJ).state == "supplement_requested" and rows(wired)[0].remote_status is None
    svc.transition(wired, number, "resume", HZ_CLERK)
    assert sync(wired).decided == 1
    assert svc.read(wired, number, YBJ).state == "decided" and rows(wired)[0].remote_status == "approved"
