"""The VIES-shaped SOAP test department behind a real hub: the sample `yibao-rest` connection
replaced by a declarative `soap` one (WSDL a file in the hub home, endpoint override), parts
dispatched through the outbox with their materials, inline or as pull links the department
fetches from the hub's web app; an outage, then each part delivered exactly once; a stateless
decision given at submit applied by the core with the delivery, an unreadable one leaving the
delivery standing (sent once); a connection whose longest call could outlive the dispatch claim
refused with its line."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from sqlalchemy import select

from hub import applications as svc
from hub.context import Hub
from hub.errors import ConfigInvalid
from hub.jobs.dispatch import dispatch
from hub.jobs.sync import sync
from hub.storage.tables import OutboxRow
from tests.support.samples import HZ_CLERK, officer
from tests.support.soap_vat_department import PATH, VatDepartment
from tests.support.webserver import serving
from tests.test_dispatch import filing
from tests.test_soap_declarative import PASSWORD, config, wsdl_folder

YBJ = officer("ts-ybj")
CONNECTION = "yibao-rest"  # the catalogue routes 医保 items here; its type is now soap


def applicant(i: int) -> str:
    return filing(i).applicant.id


@pytest.fixture
def vat():
    # even applicants are registered: their parts are approved at submit in the stateless setup
    d = VatDepartment(password=PASSWORD, registry={("CN", applicant(i)): (f"申请人{i}", "杭州") for i in (0, 2, 4)})
    yield d.start()
    d.stop()


def wire(home, db_url, clock, monkeypatch, conf) -> Hub:
    monkeypatch.setenv("VAT_WSSE_PASSWORD", PASSWORD)
    monkeypatch.delenv("HUB_HOME", raising=False)  # the hub's own home resolves the relative WSDL path
    wsdl_folder(home)
    doc = {"type": "soap", "limits": {"concurrency": 3, "max_attempts": 5, "backoff_seconds": 60}, "config": conf}
    (home / "connections" / f"{CONNECTION}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return Hub.open(home, database_url=db_url, clock=clock)


def accepted(hub: Hub, n: int) -> list[str]:
    return [svc.transition(hub, svc.create(hub, filing(i), HZ_CLERK).number, "accept", YBJ).number for i in range(n)]


def rows(hub: Hub) -> list[OutboxRow]:
    with hub.sessions() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def stored(hub: Hub, number: str) -> dict[str, bytes]:
    """sha256 -> bytes of the application's materials, as the hub stored them."""
    app = svc.read(hub, number, YBJ)
    return {m.sha256: hub.store.path_of(m.sha256).read_bytes() for m in app.materials if m.kind == "material"}


def test_outage_then_every_part_delivered_once_with_its_materials_and_synced(home, db_url, clock, vat, monkeypatch):
    hub = wire(home, db_url, clock, monkeypatch, config(vat))
    try:
        numbers = accepted(hub, 3)
        vat.down = True
        first = dispatch(hub)
        assert (first.delivered, first.retrying) == (0, 3)
        assert all(r.attempts == 1 and "HTTP 503" in r.last_error for r in rows(hub))
        vat.down = False
        clock.advance(hours=1)
        assert dispatch(hub).delivered == 3
        assert dispatch(hub).delivered == 0
        assert sorted(vat.submissions.values()) == [1, 1, 1] and vat.received.total() == 3
        assert {path for path, _ in vat.calls} == {PATH}  # the endpoint override, never the public address
        by_reference = {c.reference: c for c in vat.cases.values()}
        for row, number in zip(rows(hub), numbers, strict=True):
            case = by_reference[row.part_id]
            assert row.state == "delivered" and row.remote_id == case.ref
            expected = stored(hub, number)
            assert len(case.attachments) == 2 and {a.sha256: a.content for a in case.attachments} == expected
            assert all(a.how == "inline" and a.claimed_sha256 == a.sha256 for a in case.attachments)
        # the department decides; sync brings the decisions back, mapped
        a, b, c = (by_reference[r.part_id].ref for r in rows(hub))
        vat.decide(a, "DONE")
        vat.decide(b, "REJ", "非异地长期居住人员")
        vat.decide(c, "BZ", "请补充居住证明")
        summary = sync(hub)
        assert (summary.decided, summary.supplements, summary.errors) == (2, 1, 0)
        states = [svc.read(hub, n, YBJ).state for n in numbers]
        assert states == ["decided", "decided", "supplement_requested"]
    finally:
        hub.close()


def test_a_stateless_decision_at_submit_is_applied_by_the_core(home, db_url, clock, vat, monkeypatch):
    conf = config(vat, status=None, status_map={True: "approved", False: "denied"})
    conf["submit"]["decision"] = {"status": "valid", "reason": "remark"}
    hub = wire(home, db_url, clock, monkeypatch, conf)
    try:
        numbers = accepted(hub, 2)  # applicant 0 registered, applicant 1 not
        summary = dispatch(hub)
        assert (summary.delivered, summary.decided) == (2, 2)
        approved, denied = (svc.read(hub, n, YBJ) for n in numbers)
        assert approved.state == "decided" and approved.parts[0].state == "approved"
        assert denied.state == "decided" and denied.parts[0].state == "denied"
        assert next(e for e in denied.events if e.action == "deny").reason == "VAT number not registered"
        assert sync(hub).errors == 0  # a submit-only connection: nothing to poll is not a failure
        assert [op for _, op in vat.calls] == ["submitCase", "submitCase"]
    finally:
        hub.close()


def test_pull_links_are_fetched_by_the_department_and_match(home, db_url, clock, vat, monkeypatch):
    conf = config(vat, materials={"mode": "pull", "link_ttl_hours": 2})
    conf["submit"]["message"]["attachment"] = (
        "{{ materials[*].{fileName: filename, mediaType: media_type, sha256: sha256, link: url} }}"
    )
    hub = wire(home, db_url, clock, monkeypatch, conf)
    try:
        (number,) = accepted(hub, 1)
        with serving(hub) as url:
            hub.settings.public_url = url
            assert dispatch(hub).delivered == 1
        (case,) = vat.cases.values()
        assert [a.how for a in case.attachments] == ["link", "link"]
        assert {a.sha256: a.content for a in case.attachments} == stored(hub, number)
        assert all(hashlib.sha256(a.content).hexdigest() == a.claimed_sha256 for a in case.attachments)
    finally:
        hub.close()


def test_an_unmapped_decision_keeps_the_delivery_and_the_department_gets_the_part_once(
    home, db_url, clock, vat, monkeypatch
):
    conf = config(vat, status=None, status_map={True: "approved"})  # `false` forgotten
    conf["submit"]["decision"] = {"status": "valid", "reason": "remark"}
    hub = wire(home, db_url, clock, monkeypatch, conf)
    try:
        approved, unread = accepted(hub, 2)  # applicant 1 is not registered: <valid>false</valid>
        summary = dispatch(hub)
        assert (summary.delivered, summary.decided, summary.dead) == (2, 1, 0)
        clock.advance(hours=1)
        assert dispatch(hub).delivered == 0  # the department opened the case: nothing is sent again
        assert vat.received.total() == 2 and sorted(vat.submissions.values()) == [1, 1]
        row = next(r for r in rows(hub) if r.part_id == svc.read(hub, unread, YBJ).parts[0].id)
        assert row.state == "delivered" and row.remote_id == vat.cases[vat.by_reference[row.part_id]].ref
        assert f"connections/{CONNECTION}.yaml:" in row.last_error
        assert "(config.submit.decision.status)" in row.last_error and "unmapped status false" in row.last_error
        app = svc.read(hub, unread, YBJ)
        event = next(e for e in app.events if e.action == "decision_unreadable")  # for ops and the officer
        assert "unmapped status false" in event.reason
        assert app.state != "decided" and app.parts[0].state not in ("approved", "denied")  # decided by hand
        assert svc.read(hub, approved, YBJ).parts[0].state == "approved"
    finally:
        hub.close()


def test_a_call_that_could_outlive_the_dispatch_claim_is_refused_with_its_line(home, db_url, clock, vat, monkeypatch):
    # a WSDL read from a URL, then the call: 2 x (120 + 60) s, over 90 % of the 300 s lease
    conf = config(vat, wsdl=f"{vat.base}/docs/vies_vat.wsdl", timeout_seconds=120, connect_timeout_seconds=60)
    hub = wire(home, db_url, clock, monkeypatch, conf)
    try:
        with pytest.raises(ConfigInvalid, match=rf"{CONNECTION}\.yaml:\d+: .*outlives its claim") as refused:
            hub.connector(CONNECTION)
        line = int(str(refused.value).split(f"{CONNECTION}.yaml:")[1].split(":")[0])
        text = (home / "connections" / f"{CONNECTION}.yaml").read_text(encoding="utf-8").splitlines()
        assert "360 s" in str(refused.value) and text[line - 1].strip().startswith("timeout_seconds:")
    finally:
        hub.close()
    conf["timeout_seconds"] = 60  # 2 x (60 + 60) = 240 s: within the lease
    hub = wire(home, db_url, clock, monkeypatch, conf)
    try:
        assert hub.connector(CONNECTION).longest_call() == (240, ("timeout_seconds",))
    finally:
        hub.close()
