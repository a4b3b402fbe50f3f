"""A session's media starts once in a process, however many first offers arrive together."""

from __future__ import annotations

import asyncio

from hub import applications as svc
from hub import signing
from hub.context import Hub
from tests.support.samples import SH_CLERK, fund_retire, officer
from video import web

GJJ = officer("ts-gjj", "公积金审批员")


def test_two_first_offers_at_once_share_one_room(hub: Hub):
    """Both pages offer as soon as they load. The second used to find no room yet, fail to
    take the folder lock the first held, and be told the session ran on another media node."""
    number = svc.create(hub, fund_retire(), SH_CLERK).number
    svc.transition(hub, number, "pre_review", SH_CLERK)
    svc.transition(hub, number, "accept", GJJ)
    s = signing.start(hub, number, GJJ)

    async def both() -> tuple[web.Live, web.Live]:
        first, second = await asyncio.gather(web._live(hub, s), web._live(hub, s))
        try:
            return first, second
        finally:
            await web._end(hub, first, None, "测试结束 (test over)", seal=False)

    first, second = asyncio.run(both())
    assert first is second
    assert web.rooms(hub) == {} and hub.extensions["video.starting"] == {}  # ended: nothing left behind
