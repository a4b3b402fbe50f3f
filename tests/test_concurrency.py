"""Writers at the same time: each change lands once, in order, and the event chain stays whole."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from hub import applications as svc
from hub.applications.batch import insert_received
from hub.errors import IllegalTransition
from hub.events import verify_chain
from hub.lifecycle import Role
from hub.storage.tables import Application
from tests.conftest import PDF
from tests.support.samples import HZ_CLERK, elderly_card, fund_rent, officer


def test_concurrent_attachments_are_serialised(hub):
    app = svc.create(hub, fund_rent(materials=["居民身份证"]), HZ_CLERK)

    def attach(i: int):
        item = svc.MaterialIn(name="房屋租赁合同", filename=f"p{i}.pdf", content=PDF + f"page {i}".encode())
        return svc.attach(hub, app.number, [item], HZ_CLERK)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(attach, range(12)))
    final = svc.read(hub, app.number, HZ_CLERK)
    assert [e.seq for e in final.events] == list(range(1, 3 + 12))  # create, submit, 12 attachments
    assert len(final.materials) == 13 and verify_chain(final).ok


def test_racing_transitions_take_effect_once(hub):
    app = svc.create(hub, fund_rent(), HZ_CLERK)
    gjj = officer("ts-gjj")

    def accept(_):
        try:
            return svc.transition(hub, app.number, "accept", gjj).state
        except IllegalTransition:
            return "refused"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = sorted(pool.map(accept, range(4)))
    assert results == ["accepted", "refused", "refused", "refused"]
    final = svc.read(hub, app.number, gjj)
    assert [e.action for e in final.events].count("accept") == 1 and verify_chain(final).ok


def test_a_record_received_by_another_writer_meanwhile_is_a_duplicate(hub):
    """Two ingest workers may receive the same record at once (it was in two chunks). The one
    that commits second waits on the first, then finds the record there: a duplicate, once."""
    new = elderly_card(source_ref="XH-B1:7")
    subject, form, problems = svc.check_new(hub, new)
    assert subject is not None and not problems
    entry = svc.Received(
        new=new, subject=subject, form=form, stored=[hub.store.put(m.content) for m in new.materials], pre_review={}
    )
    actor = svc.Actor(name="intake:test", role=Role.system, desk=new.desk)
    holding, release = threading.Event(), threading.Event()

    def first_writer() -> None:
        with hub.transaction() as session:  # received, not yet committed
            insert_received(hub, session.connection(), [entry], actor, hub.now(), ["330329-20260921-90001"])
            holding.set()
            release.wait(10)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(first_writer)
        assert holding.wait(10)
        second = pool.submit(svc.receive_batch, hub, [entry], actor)
        time.sleep(0.5)  # the second writer is waiting on the first now
        assert not second.done()
        release.set()
        first.result(10)
        assert second.result(10) == ["duplicate"]
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 1
