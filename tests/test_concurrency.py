"""Writers at the same time: each change lands once, in order, and the event chain stays whole."""

from concurrent.futures import ThreadPoolExecutor

from hub import applications as svc
from hub.errors import IllegalTransition
from hub.events import verify_chain
from tests.conftest import PDF
from tests.samples import HZ_CLERK, fund_rent, officer


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
