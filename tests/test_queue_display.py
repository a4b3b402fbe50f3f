"""The 叫号屏's broadcaster on SQLite and PostgreSQL: one per process, fanning each call out to the
streams of its desk only; a call another API process made (a row it did not hear about) arrives
by the poll, a call made in this process wakes it at once; streams per process are bounded."""

from __future__ import annotations

import asyncio

import pytest

from hub.applications import Actor
from hub.appointments import calls, tickets
from hub.appointments.display import Broadcaster, TooManyStreams
from hub.lifecycle import Role
from hub.storage.tables import QueueCall, naive_utc

HALL = Actor(name="窗口人员张敏", role=Role.clerk, desk="hall-county")
GUARD = 30  # seconds: only against a broadcaster that never delivers


def test_fan_out_by_desk_poll_for_other_processes_wake_for_ours_and_bound(hub):
    first = tickets.take(hub, HALL, "hall-county", group="zonghe")
    tickets.take(hub, HALL, "hall-county", group="zonghe")

    async def scenario() -> None:
        b = Broadcaster(hub, poll_seconds=0.05, max_streams=3)
        try:
            a1 = await b.subscribe("hall-county")
            a2 = await b.subscribe("hall-county")
            other = await b.subscribe("enclave-hangzhou")
            with pytest.raises(TooManyStreams):
                await b.subscribe("hall-county")
            # another process's call: only the row, no wake-up in this one
            with hub.transaction() as s:
                s.add(
                    QueueCall(
                        desk_code="hall-county",
                        ticket_id=first.id,
                        number="E001",
                        counter="7",
                        kind="call",
                        at=naive_utc(hub.now()),
                    )
                )
            got = [await asyncio.wait_for(q.queue.get(), GUARD) for q in (a1, a2)]
            assert got[0] == got[1] and '"number": "E001", "counter": "7"' in got[0][1]
            # this process's call: woken by calls.on_call, with a poll too slow to be the one that delivers
            b.poll_seconds = GUARD * 10
            called = await asyncio.to_thread(calls.call_next, hub, HALL, "2")
            assert called is not None
            _id, shown = await asyncio.wait_for(a1.queue.get(), GUARD)
            assert f'"number": "{called.number}", "counter": "2", "kind": "call"' in shown
            assert other.queue.empty()  # another desk's screen hears nothing of it
            # a call that committed after a higher id (PostgreSQL takes ids at insert, not commit)
            b.poll_seconds = 0.05
            b._woken()  # out of the long wait set above
            at = naive_utc(hub.now())
            late = []
            for cid in (1000, 999):  # 1000 delivered first; then 999 commits
                with hub.transaction() as s:
                    s.add(
                        QueueCall(
                            id=cid,
                            desk_code="hall-county",
                            ticket_id=first.id,
                            number=f"N{cid}",
                            counter="1",
                            kind="call",
                            at=at,
                        )
                    )
                late.append((await asyncio.wait_for(a1.queue.get(), GUARD))[0])
            assert late == [1000, 999]
            assert a1.queue.empty()  # and neither comes again with the next polls' re-reads
            await b.pump()
            assert a1.queue.empty()
            b.unsubscribe(a2)
            assert b.count == 2
            await b.subscribe("hall-county")  # room again
        finally:
            b.close()

    asyncio.run(scenario())
