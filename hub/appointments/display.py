"""The 叫号屏's broadcaster: one per API process. It follows `queue_calls` by id — woken at once by
a call made in this process (calls.on_call), and every `poll_seconds` for calls other processes
on the same database made — and fans each new row out in memory to the streams of that row's
desk. Fifty screens cost one query per poll, not fifty; streams per process are bounded.

A stream registers before it reads what it missed (Last-Event-ID), and drops any id it has
already sent, so a call made in between is neither lost nor shown twice.

On PostgreSQL ids are taken when a row is inserted, not when it commits: two counters (or two
API processes) calling at once may commit id 11 before id 10. Each poll therefore reads again
the last LOOKBACK ids before the highest seen and hands on only those not delivered yet, so a
call that committed late still reaches the screens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field

from anyio import to_thread

from hub.appointments import calls
from hub.context import Hub

log = logging.getLogger(__name__)


def frame(event: dict) -> str:
    """One server-sent event: its id (what the browser sends back as Last-Event-ID), its type,
    its data on one line."""
    return f"id: {event['id']}\nevent: call\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


LOOKBACK = 100  # ids re-read below the highest seen: calls that committed out of id order
REMEMBERED = 2000  # delivered ids kept to skip the re-read ones


class TooManyStreams(Exception):
    """This process serves its maximum of display streams; the screen retries (another process)."""


@dataclass(eq=False)
class Stream:
    desk: str
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=200))
    sent: deque = field(default_factory=lambda: deque(maxlen=200))  # ids sent on this stream

    def first_time(self, event_id: int) -> bool:
        """True once per id: the catch-up read and the live feed may both carry a call."""
        if event_id in self.sent:
            return False
        self.sent.append(event_id)
        return True


class Broadcaster:
    def __init__(self, hub: Hub, *, poll_seconds: float, max_streams: int):
        self.hub = hub
        self.poll_seconds = poll_seconds
        self.max_streams = max_streams
        self.streams: dict[str, set[Stream]] = defaultdict(set)
        self.count = 0
        self.last_id: int | None = None
        self._delivered: deque[int] = deque(maxlen=REMEMBERED)
        self._delivered_set: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener = calls.on_call(self._woken)

    def _woken(self) -> None:
        """From a worker thread that committed a call: wake the loop (thread-safe)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def subscribe(self, desk: str) -> Stream:
        if self.count >= self.max_streams:
            raise TooManyStreams()
        self._loop = asyncio.get_running_loop()
        if self.last_id is None:
            self.last_id = await to_thread.run_sync(calls.last_call_id, self.hub)
            # what is already there when the first screen connects is not news (the lookback
            # would otherwise hand the last LOOKBACK calls on again)
            for old in await to_thread.run_sync(calls.calls_after, self.hub, max(self.last_id - LOOKBACK, 0)):
                self._delivered.append(old.id)
                self._delivered_set.add(old.id)
        stream = Stream(desk)
        self.streams[desk].add(stream)
        self.count += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="queue-display-broadcaster")
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        if stream in self.streams[stream.desk]:
            self.streams[stream.desk].discard(stream)
            self.count -= 1

    async def _run(self) -> None:
        """Until the last stream leaves: wait for a wake-up or the poll, then read what is new."""
        while self.count > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()
            try:
                await self.pump()
            except Exception:  # the database away for a moment: the screens keep their streams
                log.warning("queue display: reading calls failed", exc_info=True)

    async def pump(self) -> int:
        """Read the calls after the last seen and hand each to its desk's streams."""
        since = max((self.last_id or 0) - LOOKBACK, 0)
        rows = await to_thread.run_sync(calls.calls_after, self.hub, since)
        fresh = 0
        for row in rows:
            self.last_id = max(self.last_id or 0, row.id)
            if row.id in self._delivered_set:
                continue
            if len(self._delivered) == self._delivered.maxlen:
                self._delivered_set.discard(self._delivered[0])
            self._delivered.append(row.id)
            self._delivered_set.add(row.id)
            fresh += 1
            payload = (row.id, frame(calls.event(row)))  # framed once for all the desk's screens
            for stream in list(self.streams.get(row.desk_code, ())):
                try:
                    stream.queue.put_nowait(payload)
                except asyncio.QueueFull:  # a screen that stopped reading: it reconnects and catches up
                    self.unsubscribe(stream)
        return fresh

    def close(self) -> None:
        calls.off_call(self._listener)
        if self._task is not None:
            self._task.cancel()
