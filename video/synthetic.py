"""Synthetic participants for tests and benchmarks: a camera whose every picture carries its
frame number and the moment it was made (as blocks of black and white that survive VP8), a
microphone playing a tone, and a client that joins a signing session through the hub's API the
way the desk and officer pages do. Runs anywhere aiortc does; no devices needed."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from dataclasses import dataclass, field

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

BITS = 48  # 24 bits of frame number, 24 of milliseconds
COLS, ROWS, BLOCK = 8, 6, 40  # the code: an 8 x 6 grid of 40-pixel blocks in the top-left corner
HIGH, LOW, GREY = 235, 16, 128


def encode_marks(number: int, millis: int) -> int:
    return (number & 0xFFFFFF) << 24 | (millis & 0xFFFFFF)


def _luma(width: int, height: int, value: int) -> bytes:
    """The Y plane of a picture carrying `value`."""
    rows = []
    bits = [(value >> (BITS - 1 - i)) & 1 for i in range(BITS)]
    for r in range(ROWS):
        row = b"".join(bytes([HIGH if bits[r * COLS + c] else LOW]) * BLOCK for c in range(COLS))
        row += bytes([GREY]) * (width - COLS * BLOCK)
        rows.append(row * BLOCK)
    rest = bytes([GREY]) * width * (height - ROWS * BLOCK)
    return b"".join(rows) + rest


def read_marks(frame: av.VideoFrame) -> tuple[int, int] | None:
    """(frame number, milliseconds) from a picture made by `SyntheticCamera`, or None when the
    picture does not carry them (a decoder's grey start, another source)."""
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    value = 0
    for i in range(BITS):
        r, c = divmod(i, COLS)
        y, x = r * BLOCK + BLOCK // 2, c * BLOCK + BLOCK // 2
        samples = [data[(y + dy) * stride + x + dx] for dy in (-6, 0, 6) for dx in (-6, 0, 6)]
        mean = sum(samples) / len(samples)
        if 60 < mean < 190:
            return None
        value = value << 1 | (mean >= 128)
    return value >> 24, value & 0xFFFFFF


def now_millis() -> int:
    """Milliseconds of the system-wide monotonic clock: comparable between processes."""
    return int(time.monotonic() * 1000) & 0xFFFFFF


class SyntheticCamera(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: int = 15):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.sent = 0
        self._start: float | None = None
        self._chroma = bytes([128]) * (width // 2 * height // 2)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(_luma(frame.planes[0].line_size, self.height, encode_marks(self.sent, now_millis())))
        for p in frame.planes[1:]:
            p.update(bytes([128]) * (p.line_size * (self.height // 2)))
        frame.pts, frame.time_base = self.sent * (90_000 // self.fps), fractions.Fraction(1, 90_000)
        self.sent += 1
        return frame


class SyntheticMicrophone(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hz: int = 440):
        super().__init__()
        self.hz, self.samples = hz, 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.samples / 48_000 - time.monotonic()))
        n = 960
        pcm = b"".join(
            int(8000 * math.sin(2 * math.pi * self.hz * (self.samples + i) / 48_000)).to_bytes(2, "little", signed=True)
            * 2
            for i in range(n)
        )
        frame = av.AudioFrame(format="s16", layout="stereo", samples=n)
        frame.planes[0].update(pcm)
        frame.sample_rate, frame.pts, frame.time_base = 48_000, self.samples, fractions.Fraction(1, 48_000)
        self.samples += n
        return frame


@dataclass
class Received:
    """What a participant saw of the other side."""

    numbers: list[int] = field(default_factory=list)
    latencies_ms: list[int] = field(default_factory=list)
    audio_frames: int = 0
    unmarked: int = 0


class SyntheticParticipant:
    """A peer with a synthetic camera and microphone that records what the other side sends."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 15):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.camera, self.microphone = SyntheticCamera(width, height, fps), SyntheticMicrophone()
        self.pc.addTrack(self.microphone)
        self.pc.addTrack(self.camera)
        self.received = Received()
        self._tasks: list[asyncio.Task] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.received.audio_frames += 1
                    continue
                marks = read_marks(frame)
                if marks is None:
                    self.received.unmarked += 1
                    continue
                number, millis = marks
                self.received.numbers.append(number)
                self.received.latencies_ms.append((now_millis() - millis) % (1 << 24))
        except MediaStreamError:
            return

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.pc.close()
