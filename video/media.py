"""The media side of a remote signing session: one aiortc peer per participant on the hub, each
participant's audio and video encoded once — off the event loop — and the same packets both
relayed to the other participant and written to the recording.

Designed around what aiortc does (see docs/signing.md):

- receivers always decode, so what the hub relays must be encoded again; it is encoded *once*
  per participant, by a `Pipeline` thread, and the relay sends those packets as they are
  (aiortc's senders pack pre-encoded `av.Packet`s without touching them);
- aiortc's `MediaRecorder` encodes inside the event loop and an MP4 cut short is unplayable: the
  pipeline writes WebM (Matroska) segments of a few seconds, each a file of its own starting with
  a keyframe, synced and hashed as it closes; a crash loses at most the segment being written,
  and even that one plays up to the crash;
- `MediaRelay` queues are unbounded: every queue here has a bound, and what overflows is dropped
  and counted (a dropped video packet also drops what follows up to the next keyframe, which a
  decoder could not use anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from video.evidence import sha256_file

log = logging.getLogger(__name__)

VIDEO_CLOCK = fractions.Fraction(1, 90_000)
AUDIO_RATE = 48_000
AUDIO_CLOCK = fractions.Fraction(1, AUDIO_RATE)
KEYFRAME_SECONDS = 2.0  # a receiver that lost packets recovers at the next keyframe


def restrict_host_addresses(addresses: list[str] | None) -> None:
    """Offer media only on these local addresses. aioice offers every interface but loopback;
    a hub on a closed network (or a test on 127.0.0.1) names its own. Applies process-wide."""
    if addresses is None:
        return
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: [  # type: ignore[assignment]
        a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
    ]


# ---------------------------------------------------------------- relay


class Outgoing(MediaStreamTrack):
    """What the hub sends one participant on one kind: the other participant's encoded packets,
    from a bounded queue (the oldest dropped when the sender falls behind)."""

    def __init__(self, kind: str, depth: int):
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(maxsize=depth)
        self._want_keyframe = False
        self.dropped = 0

    def offer(self, packet: av.Packet) -> None:
        if self.readyState != "live":
            return
        if self._want_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                return
            self._want_keyframe = False
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            self._want_keyframe = self.kind == "video" and not packet.is_keyframe
            if self._want_keyframe:
                self.dropped += 1
                return
        self._queue.put_nowait(packet)

    async def recv(self) -> av.Packet:  # type: ignore[override]
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


# ---------------------------------------------------------------- the encoder and recorder


@dataclass
class Segment:
    index: int
    path: Path
    started: float  # media seconds from the pipeline's start
    frames: int = 0
    audio_frames: int = 0
    first_pts: int | None = None
    last_pts: int = 0


@dataclass
class PipelineStats:
    frames_in: int = 0
    audio_in: int = 0
    dropped: int = 0  # frames the recorder's queue had no room for
    encoded: int = 0
    segments: int = 0


class Pipeline(threading.Thread):
    """One participant's media, encoded once off the event loop: decoded frames come in through
    a bounded queue; VP8 and Opus packets go out to the relay (`on_packet`, called in the event
    loop) and into the current WebM segment. `on_segment` (called in this thread) hears of each
    segment as it is closed, synced and hashed."""

    def __init__(
        self,
        folder: Path,
        role: str,
        loop: asyncio.AbstractEventLoop,
        on_packet: Callable[[str, av.Packet], None],
        on_segment: Callable[[dict[str, Any]], None],
        *,
        segment_seconds: float = 4.0,
        bitrate: int = 800_000,
        fps: int = 15,
        seconds_queued: float = 2.0,  # beyond that the recorder is not keeping up: frames are dropped
    ):
        super().__init__(name=f"pipeline-{role}", daemon=True)
        self.folder, self.role, self.loop = folder, role, loop
        self.on_packet, self.on_segment = on_packet, on_segment
        self.segment_seconds, self.bitrate, self.fps = segment_seconds, bitrate, fps
        self.inbox: queue.Queue[tuple[str, Any, float] | None] = queue.Queue()
        # bounded per kind (sound comes 50 times a second, pictures 15): counted in, counted out
        self._limit = {"video": round(fps * seconds_queued), "audio": round(50 * seconds_queued)}
        self._queued = {"video": 0, "audio": 0}
        self._count_lock = threading.Lock()
        self.stats = PipelineStats()
        self.latest_video: av.VideoFrame | None = None
        self.error: BaseException | None = None
        self._segment: Segment | None = None
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._resampler: av.AudioResampler | None = None
        self._audio_next = 0
        self._t0: float | None = None
        self._count = 0
        self._size: tuple[int, int] | None = None  # the pictures' size, for a segment opened on sound
        self.folder.mkdir(parents=True, exist_ok=True)
        # a second media run for the session (after a restart) goes on after the first's files
        self._last_index = max((int(p.stem) for p in self.folder.glob("*.webm") if p.stem.isdigit()), default=0)

    # -- called from the event loop

    def put(self, kind: str, frame: Any) -> None:
        """Hand a decoded frame over; never blocks the loop (a full queue drops it, counted)."""
        if kind == "video":
            self.stats.frames_in += 1
            self.latest_video = frame
        else:
            self.stats.audio_in += 1
        with self._count_lock:
            if self._queued[kind] >= self._limit[kind]:
                self.stats.dropped += 1
                return
            self._queued[kind] += 1
        self.inbox.put_nowait((kind, frame, time.monotonic()))

    def close(self, timeout: float = 30.0) -> bool:
        """Finish the current segment and stop (blocks: call from a worker thread). False if the
        thread is still writing after `timeout`: then nothing may be sealed yet."""
        self.inbox.put(None)
        self.join(timeout)
        return not self.is_alive()

    # -- the thread

    def run(self) -> None:
        try:
            while (item := self.inbox.get()) is not None:
                kind, frame, arrived = item
                with self._count_lock:
                    self._queued[kind] -= 1
                if self._t0 is None:
                    self._t0 = arrived
                if kind == "video":
                    self._video_frame(frame, arrived - self._t0)
                elif self._segment is not None:  # audio before the first picture waits for no one
                    self._audio_frame(frame, arrived - self._t0)
        except BaseException as exc:
            self.error = exc
            log.exception("%s pipeline failed", self.role)
        finally:
            with contextlib.suppress(Exception):
                self._close_segment()

    def _video_frame(self, frame: av.VideoFrame, at: float) -> None:
        pts = round(at / VIDEO_CLOCK)
        seg = self._segment
        if seg is None or at - seg.started >= self.segment_seconds:
            self._close_segment()
            seg = self._open_segment(frame.width, frame.height, at)
        if seg.last_pts and pts <= seg.last_pts:
            pts = seg.last_pts + 1  # strictly increasing, whatever the arrival times did
        if frame.width != self._video.codec_context.width or frame.height != self._video.codec_context.height:
            frame = frame.reformat(width=self._video.codec_context.width, height=self._video.codec_context.height)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = pts, VIDEO_CLOCK
        seg.first_pts = pts if seg.first_pts is None else seg.first_pts
        seg.last_pts = pts
        seg.frames += 1
        self._count += 1
        if self._count % round(self.fps * KEYFRAME_SECONDS) == 0:
            frame.pict_type = av.video.frame.PictureType.I
        self._emit("video", self._video.encode(frame))

    def _audio_frame(self, frame: av.AudioFrame, at: float) -> None:
        seg = self._segment
        if seg is not None and self._size and at - seg.started >= self.segment_seconds * 1.5:
            # no pictures for a while (a camera stalled): segments still close on time
            self._close_segment()
            self._open_segment(*self._size, at)
        assert self._resampler is not None
        for f in self._resampler.resample(frame):
            expected = round(at * AUDIO_RATE)
            # follow the clock: after a gap (loss, a stalled sender) start where the time is now
            if self._audio_next == 0 or expected - self._audio_next > AUDIO_RATE // 5:
                self._audio_next = expected
            f.pts, f.time_base = self._audio_next, AUDIO_CLOCK
            self._audio_next += f.samples
            if self._segment is not None:
                self._segment.audio_frames += 1
            self._emit("audio", self._audio.encode(f))

    def _emit(self, kind: str, packets: list[av.Packet]) -> None:
        stream = self._video if kind == "video" else self._audio
        for p in packets:
            relay = av.Packet(bytes(p))  # the muxer rebases the original's timestamps
            relay.pts, relay.dts, relay.time_base = p.pts, p.dts, p.time_base
            relay.is_keyframe = p.is_keyframe
            p.stream = stream
            self._container.mux(p)
            self.stats.encoded += 1
            self.loop.call_soon_threadsafe(self.on_packet, kind, relay)

    def _open_segment(self, width: int, height: int, at: float) -> Segment:
        self._last_index += 1
        index = self._last_index
        path = self.folder / f"{index:06d}.webm"
        self._size = (width, height)
        # clusters of at most half a second, each written through as it closes: a process killed
        # mid-segment leaves a file that plays up to half a second before the end
        container = av.open(
            str(path), "w", format="webm", container_options={"flush_packets": "1", "cluster_time_limit": "500"}
        )
        video = container.add_stream("libvpx", rate=self.fps)
        cc = video.codec_context
        cc.width, cc.height, cc.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        cc.time_base, cc.bit_rate = VIDEO_CLOCK, self.bitrate
        cc.gop_size = round(self.fps * KEYFRAME_SECONDS)
        cc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "static-thresh": "1"}
        cc.thread_count = 1
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        audio.codec_context.layout, audio.codec_context.format = "stereo", "s16"
        audio.codec_context.bit_rate = 48_000
        audio.codec_context.time_base = AUDIO_CLOCK
        audio.codec_context.options = {"application": "voip"}
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE, frame_size=960)
        self._container, self._video, self._audio = container, video, audio
        self._segment = Segment(index, path, at)
        return self._segment

    def _close_segment(self) -> None:
        seg, container = self._segment, self._container
        if seg is None or container is None:
            return
        self._emit("video", self._video.encode(None))  # flush what the encoders hold
        self._emit("audio", self._audio.encode(None))
        container.close()
        self._container = None
        with open(seg.path, "rb") as f:
            os.fsync(f.fileno())
        self.stats.segments += 1
        duration = (
            ((seg.last_pts - (seg.first_pts or 0)) * VIDEO_CLOCK + fractions.Fraction(1, self.fps)) if seg.frames else 0
        )
        self.on_segment(
            {
                "participant": self.role,
                "index": seg.index,
                "path": seg.path.relative_to(self.folder.parent).as_posix(),
                "sha256": sha256_file(seg.path),
                "bytes": seg.path.stat().st_size,
                "frames": seg.frames,
                "audio_frames": seg.audio_frames,
                "seconds": round(float(duration), 3),
                "starts_at": round(seg.started, 3),
            }
        )


# ---------------------------------------------------------------- a participant's peer


@dataclass
class Quality:
    """What a participant's incoming media looked like since the last sample."""

    fps: float
    frames: int
    freezes: int  # gaps of more than FREEZE seconds between pictures
    longest_gap: float
    packets_lost: int
    state: str


FREEZE = 0.5


@dataclass
class Participant:
    role: str
    pc: RTCPeerConnection
    video_out: Outgoing
    audio_out: Outgoing
    tasks: list[asyncio.Task] = field(default_factory=list)
    frames: int = 0
    last_frame_at: float | None = None
    freezes: int = 0
    longest_gap: float = 0.0
    _sampled_frames: int = 0
    _sampled_at: float = field(default_factory=time.monotonic)

    def saw_frame(self) -> None:
        now = time.monotonic()
        if self.last_frame_at is not None:
            gap = now - self.last_frame_at
            self.longest_gap = max(self.longest_gap, gap)
            if gap > FREEZE:
                self.freezes += 1
        self.last_frame_at, self.frames = now, self.frames + 1

    async def sample(self) -> Quality:
        now = time.monotonic()
        lost = 0
        with contextlib.suppress(Exception):  # stats of a peer closing under us
            for s in (await self.pc.getStats()).values():
                if getattr(s, "type", "") == "inbound-rtp":
                    lost += getattr(s, "packetsLost", 0) or 0
        frames = self.frames - self._sampled_frames
        q = Quality(
            fps=round(frames / max(now - self._sampled_at, 1e-3), 1),
            frames=frames,
            freezes=self.freezes,
            longest_gap=round(self.longest_gap, 3),
            packets_lost=lost,
            state=self.pc.connectionState,
        )
        self._sampled_frames, self._sampled_at, self.freezes, self.longest_gap = self.frames, now, 0, 0.0
        return q


class Room:
    """The media of one session: a peer per participant (`desk`, `officer`), each one's
    pipeline, and the relay between them. Lives in the API process that runs the session."""

    ROLES = ("desk", "officer")

    def __init__(
        self,
        folder: Path,
        on_segment: Callable[[dict[str, Any]], None],
        *,
        segment_seconds: float = 4.0,
        bitrate: int = 800_000,
        relay_depth: int = 30,
    ):
        self.folder = folder
        self.started = time.monotonic()
        self.loop = asyncio.get_running_loop()
        self.relay_depth = relay_depth
        self.participants: dict[str, Participant] = {}
        self._joining = {role: asyncio.Lock() for role in self.ROLES}  # one join per side at a time
        self.pipelines = {
            role: Pipeline(
                folder / role,
                role,
                self.loop,
                lambda kind, packet, role=role: self._relay(role, kind, packet),
                on_segment,
                segment_seconds=segment_seconds,
                bitrate=bitrate,
            )
            for role in self.ROLES
        }
        for p in self.pipelines.values():
            p.start()
        self.closed = False

    @staticmethod
    def other(role: str) -> str:
        return "officer" if role == "desk" else "desk"

    def _relay(self, source: str, kind: str, packet: av.Packet) -> None:
        target = self.participants.get(self.other(source))
        if target is not None:
            (target.video_out if kind == "video" else target.audio_out).offer(packet)

    async def join(self, role: str, sdp: str, kind: str = "offer") -> str:
        """A participant's offer; the hub's answer. Joining again (a dropped connection) replaces
        the peer; the pipeline, and so the recording, goes on."""
        if role not in self.ROLES or self.closed:
            raise ValueError(f"cannot join as {role}")
        async with self._joining[role]:
            return await self._join(role, sdp, kind)

    async def _join(self, role: str, sdp: str, kind: str) -> str:
        old = self.participants.pop(role, None)
        if old is not None:
            await self._close_participant(old)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        me = Participant(role, pc, Outgoing("video", self.relay_depth), Outgoing("audio", self.relay_depth * 2))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            me.tasks.append(asyncio.ensure_future(self._pump(me, track)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.sender.replaceTrack(me.video_out)
                vp8 = [
                    c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")
                ]
                t.setCodecPreferences(vp8)
            elif t.kind == "audio":
                t.sender.replaceTrack(me.audio_out)
            t.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        self.participants[role] = me
        return pc.localDescription.sdp

    async def _pump(self, me: Participant, track: MediaStreamTrack) -> None:
        """Take a participant's decoded frames as they come (the receiver's own queue has no
        bound: it must never wait for us) and hand them to the pipeline."""
        pipeline = self.pipelines[me.role]
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    me.saw_frame()
                pipeline.put(track.kind, frame)

    async def still(self, role: str) -> bytes | None:
        """The participant's latest picture as a JPEG (for the evidence)."""
        frame = self.pipelines[role].latest_video
        if frame is None:
            return None
        return await asyncio.get_running_loop().run_in_executor(None, _jpeg, frame)

    async def _close_participant(self, p: Participant) -> None:
        p.video_out.end()
        p.audio_out.end()
        for t in p.tasks:
            t.cancel()
        await p.pc.close()

    async def close(self) -> bool:
        """Hang up and finish the recordings (the last segments are closed and hashed). False if
        a recorder is still writing."""
        if self.closed:
            return True
        self.closed = True
        for p in list(self.participants.values()):
            await self._close_participant(p)
        self.participants.clear()
        done = await asyncio.gather(*(asyncio.to_thread(p.close) for p in self.pipelines.values()))
        return all(done)


def _jpeg(frame: av.VideoFrame) -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt, codec.time_base = "yuvj420p", fractions.Fraction(1, 25)
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    return b"".join(bytes(p) for p in codec.encode(picture) + codec.encode(None))
