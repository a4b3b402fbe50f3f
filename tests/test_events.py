"""The event chain: every transition is an event carrying the previous event's hash; an edited,
removed or reordered event is detected."""

from itertools import pairwise

from sqlalchemy import delete, update

from hub import applications as svc
from hub.events import verify_chain
from hub.storage.tables import Application, Event
from tests.samples import TELLER, elderly_card, officer

MZJ = officer("ts-mzj")


def _walk(hub):
    app = svc.create(hub, elderly_card(), TELLER)
    for who, action in [(TELLER, "pre_review"), (MZJ, "accept"), (MZJ, "start_review"), (MZJ, "approve")]:
        app = svc.transition(hub, app.number, action, who)
    return app


def test_chain_links_every_event(hub):
    app = _walk(hub)
    report = verify_chain(app)
    assert (
        report.ok and report.events == len(app.events) == 8
    )  # create, submit, pre_review, accept, start_review, start, approve, decide
    assert all(e.prev_hash == p.hash for p, e in pairwise(app.events))


def test_edited_event_is_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(update(Event).where(Event.application_id == app.id, Event.seq == 4).values(actor="someone else"))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and report.problem.startswith("event #4 (accept)")


def test_removed_event_is_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(delete(Event).where(Event.application_id == app.id, Event.seq == 3))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and "missing" in report.problem


def test_state_edited_behind_the_chain_is_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(update(Application).where(Application.id == app.id).values(state="delivered"))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and "not the chain's decided" in report.problem


def test_removed_newest_events_are_detected(hub):
    app = _walk(hub)
    with hub.transaction() as s:
        s.execute(delete(Event).where(Event.application_id == app.id, Event.seq >= 7))  # approve, decide
        s.execute(update(Application).where(Application.id == app.id).values(state="in_review"))
    report = verify_chain(svc.read(hub, app.number, MZJ))
    assert not report.ok and "newest events are missing" in report.problem
