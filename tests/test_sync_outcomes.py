"""What the core does with what a connector answers, whatever the transport: a stateless
system's decision given with its receipt, a system with nothing to poll, one receipt's unreadable
answer among good ones, and a connector that raises something unexpected. (The transports
themselves are tested against real servers in each connector's tests.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub import applications as svc
from hub.connectors import Connector, PartMessage, PollFailure, Receipt, Update
from hub.jobs.dispatch import dispatch
from hub.jobs.sync import sync
from hub.storage.tables import Application, OutboxRow
from tests.support.samples import HZ_CLERK, officer
from tests.test_dispatch import filing

YBJ = officer("ts-ybj")


class Scripted(Connector):
    """Answers as the test says (the connection `yibao-rest`, its type replaced)."""

    type = "scripted"

    def __init__(self, decide: str | None = None, poll=None, problem: str | None = None, other: bool = False):
        super().__init__("yibao-rest", None)  # type: ignore[arg-type]
        self.decide, self._poll, self.problem, self.other = decide, poll, problem, other

    def check(self):  # pragma: no cover - not used
        raise NotImplementedError

    def submit(self, part: PartMessage) -> Receipt:
        update = None
        if self.decide:
            about = "another-part" if self.other else part.part_id
            update = Update(part_id=about, remote_id=f"R-{part.part_id}", status=self.decide, reason="自动核验")
        return Receipt(part_id=part.part_id, remote_id=f"R-{part.part_id}", update=update, decision_error=self.problem)

    def poll(self, receipts):
        if self._poll is None:
            return super().poll(receipts)  # Unsupported: a submit-only system
        return self._poll(receipts)


def _accepted(hub, n: int) -> list[str]:
    return [svc.transition(hub, svc.create(hub, filing(i), HZ_CLERK).number, "accept", YBJ).number for i in range(n)]


def _rows(hub) -> list[OutboxRow]:
    with hub.sessions() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_a_stateless_decision_is_applied_with_the_delivery_and_sync_has_nothing_to_do(hub, monkeypatch):
    numbers = _accepted(hub, 2)
    monkeypatch.setattr(hub, "connector", lambda name: Scripted(decide="approved"))
    summary = dispatch(hub)
    assert (summary.delivered, summary.decided) == (2, 2)
    for number in numbers:
        assert {str(p.state) for p in _parts(hub, number)} == {"approved"}
    assert all(r.synced_at is not None and r.remote_status == "approved" for r in _rows(hub))
    # nothing waits for a status any more, and a submit-only connection is not a sync failure
    assert sync(hub).errors == 0


def test_a_submit_only_connection_is_not_a_sync_failure(hub, monkeypatch):
    _accepted(hub, 1)
    monkeypatch.setattr(hub, "connector", lambda name: Scripted())
    assert dispatch(hub).delivered == 1
    summary = sync(hub)
    assert (summary.errors, summary.updates) == (0, 0)
    assert _rows(hub)[0].last_error is None


def test_one_unreadable_answer_stops_only_its_receipt(hub, monkeypatch):
    _accepted(hub, 2)

    def answers(receipts):
        first, second = sorted(receipts, key=lambda r: r.part_id)
        return [
            Update(part_id=first.part_id, remote_id=first.remote_id, status="in_review"),
            PollFailure(part_id=second.part_id, remote_id=second.remote_id, message="未映射的状态 'XX'"),
        ]

    monkeypatch.setattr(hub, "connector", lambda name: Scripted(poll=answers))
    dispatch(hub)
    summary = sync(hub)
    assert (summary.updates, summary.errors, summary.by_connection) == (1, 1, {"yibao-rest": 1})
    assert "yibao-rest: 1" in summary.line()
    first, second = sorted(_rows(hub), key=lambda r: r.part_id)
    assert first.remote_status == "in_review" and first.last_error is None
    assert second.remote_status is None and "未映射的状态 'XX'" in second.last_error


@pytest.mark.parametrize("exc", [ValueError("Expecting value"), KeyError("status"), RecursionError()])
def test_a_connector_that_raises_anything_is_a_recorded_error_not_a_crash(hub, monkeypatch, exc):
    _accepted(hub, 1)

    def broken(receipts):
        raise exc

    monkeypatch.setattr(hub, "connector", lambda name: Scripted(poll=broken))
    dispatch(hub)
    summary = sync(hub)
    assert summary.errors == 1
    assert f"internal error ({type(exc).__name__})" in _rows(hub)[0].last_error


def _parts(hub, number):
    with hub.sessions() as s:
        app = s.scalars(select(Application).where(Application.number == number)).one()
        return list(app.parts)


def test_a_decision_that_cannot_be_read_leaves_the_delivery_standing_and_says_so(hub, monkeypatch):
    (number,) = _accepted(hub, 1)
    problem = "connections/x.yaml:9 (config.submit.decision.status): 未映射的状态 unmapped status 'MAYBE'"
    monkeypatch.setattr(hub, "connector", lambda name: Scripted(problem=problem))
    summary = dispatch(hub)
    assert (summary.delivered, summary.dead, summary.decided) == (1, 0, 0)
    (row,) = _rows(hub)
    assert row.state == "delivered" and "MAYBE" in row.last_error
    with hub.sessions() as s:
        app = s.scalars(select(Application).where(Application.number == number)).one()
        kinds = [e.action for e in app.events]
    assert "decision_unreadable" in kinds


def test_a_decision_about_another_part_is_never_applied(hub, monkeypatch):
    (number,) = _accepted(hub, 1)
    monkeypatch.setattr(hub, "connector", lambda name: Scripted(decide="denied", other=True))
    summary = dispatch(hub)
    assert (summary.delivered, summary.decided) == (1, 0)
    assert {str(p.state) for p in _parts(hub, number)} == {"pending"}
    assert "another part" in _rows(hub)[0].last_error
