"""FrameSampler: a camera's pictures for analysis, at the analysis interval whatever the GOP, off the event loop.

Detection of slow street events needs about one picture a second (``detection.interval_s``). Cameras send a
keyframe every 1–20 s ("smart codecs" stretch the GOP), so decoding keyframes only would analyse a 2 s GOP camera
every 2 s and a 20 s GOP one almost never. So each camera has one persistent decoder on its own thread that is fed
what the pictures between keyframes need, and only the picture due at the interval is converted to BGR (the
conversion costs about as much as the decode):

- On the event loop :meth:`FrameSampler.packet` marks the first access unit whose presentation time reaches the
  next due time as *due*, and queues it and every unit a later picture may refer to. A unit nobody refers to
  (H.264 ``nal_ref_idc`` 0, an H.265 sub-layer non-reference picture) is skipped unless it is due — for a typical
  camera with B-frames that halves the decode work; without B-frames (every P refers to the one before) nothing
  can be skipped. Units are immutable: queuing one copies nothing.
- The queue to the thread is bounded (``queue_size`` units, about 2.5 s at 25 fps by default). When it is full
  the decoder is behind: everything queued is dropped (counted in ``dropped``) and queuing resumes at the next
  keyframe (counted in ``gaps``).
- The thread decodes every queued unit; decoders put pictures out in presentation order, ``reorder`` frames late
  when the stream has B-frames. A picture whose presentation time reaches a due one is converted to BGR and put
  into the :class:`LatestFrameSlot` stamped with its own presentation time and its own arrival time — the newest
  picture the decoder can give, at most the stream's reorder depth (B-frames: typically 1–2 frames, 40–80 ms at
  25 fps) behind the newest unit that arrived.
- ``decode_cpu_s`` and ``convert_cpu_s`` add up the thread's CPU time spent decoding and converting.

``mode="keyframes"`` is the old path (keyframes only; each one drained out of the decoder so B-frame streams give
that keyframe's picture, not the previous one); ``mode="all"`` decodes and converts every frame (the bench's upper
bound). Open-GOP and intra-refresh streams start at recovery points, which the camera source marks as keyframes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import av

from video_ingest import h26x
from video_ingest.fanout import StreamInfo
from video_ingest.frames import Frame, to_bgr
from video_ingest.slot import LatestFrameSlot

log = logging.getLogger("citywall.ingest.sampler")

SampleMode = Literal["interval", "keyframes", "all"]
SAMPLE_MODES: tuple[str, ...] = ("interval", "keyframes", "all")
DEFAULT_QUEUE_UNITS = 64
"""Units queued for the decoder at most (2.5 s at 25 fps) before it counts as behind."""


@dataclass(frozen=True, slots=True)
class _Job:
    info: StreamInfo
    packet: Any
    """An AccessUnit (immutable) or a PyAV packet; made into a PyAV packet of its own on the worker thread."""
    arrived_at: float
    due: bool
    """The picture of this unit (or the next one out of the decoder after it) is to be analysed."""
    drain: bool = False
    """A keyframe decoded on its own: take its picture out of the decoder at once (B-frame reorder)."""


def to_av_packet(unit: Any) -> av.Packet:
    """A PyAV packet of its own with ``unit``'s bytes and timing (``unit``: an AccessUnit or a PyAV packet)."""
    copy = av.Packet(bytes(unit))
    copy.pts = unit.pts
    copy.dts = unit.pts  # decoders take the order packets come in; the timestamp travels to the picture
    copy.time_base = unit.time_base
    copy.is_keyframe = unit.is_keyframe
    return copy


def video_decoder(codec: str) -> av.VideoCodecContext:
    """A new PyAV decoder for video ``codec`` (``h264``, ``hevc``); ValueError naming it when it is no video codec."""
    ctx = av.CodecContext.create(codec, "r")
    if not isinstance(ctx, av.VideoCodecContext):
        raise ValueError(f"codec {codec!r} is not a video codec")
    return ctx


class FrameSampler:
    """A :class:`~video_ingest.fanout.PacketSink` that decodes one camera on its own thread and puts a BGR picture
    into ``slot`` every ``interval_s`` of stream time (see the module docstring)."""

    def __init__(self, camera_id: str, slot: LatestFrameSlot, *, interval_s: float = 1.0,
                 mode: SampleMode = "interval", queue_size: int | None = None, skip_disposable: bool = True) -> None:
        if mode not in SAMPLE_MODES:
            raise ValueError(f"sampler mode must be one of {', '.join(SAMPLE_MODES)}; got {mode!r}")
        if not interval_s > 0:
            raise ValueError(f"sampler interval_s must be > 0, got {interval_s}")
        queue_size = (2 if mode == "keyframes" else DEFAULT_QUEUE_UNITS) if queue_size is None else queue_size
        if queue_size < 1:
            raise ValueError(f"sampler queue_size must be >= 1, got {queue_size}")
        self.camera_id = camera_id
        self.slot = slot
        self.interval_s = interval_s
        self.mode = mode
        self.skip_disposable = skip_disposable
        self._jobs: deque[_Job] = deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._info: StreamInfo | None = None
        self._interval_ticks = 0
        self._next_due: int | None = None
        self._last_key_pts: int | None = None
        self._gop_ticks: int | None = None
        """Observed keyframe distance (time-base ticks): when it is no longer than the interval, only keyframes
        are decoded."""
        self._need_key = True
        self._max_sub_layers = 1
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.queued = 0
        """Units handed to the decoder thread."""
        self.skipped = 0
        """Non-reference units not decoded (nothing needed their picture)."""
        self.dropped = 0
        """Units dropped because the decoder was behind (queue full), or replaced keyframes in keyframes mode."""
        self.gaps = 0
        """Times the decoder fell behind and resumed at the next keyframe."""
        self.decoded = 0
        """Pictures put into the slot."""
        self.decode_errors = 0
        self.decode_cpu_s = 0.0
        """CPU seconds of the decoder thread spent decoding."""
        self.convert_cpu_s = 0.0
        """CPU seconds of the decoder thread spent converting pictures to BGR."""

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the decode thread."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: sampler already started")
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the decode thread (after the unit in hand, if any); True when it has ended."""
        with self._cond:
            self._stopping = True
            self._jobs.clear()
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """Counters (see the attributes) for status and metrics."""
        return {"mode": self.mode, "sampled": self.decoded, "queued": self.queued, "skipped": self.skipped,
                "dropped": self.dropped, "gaps": self.gaps, "decode_errors": self.decode_errors,
                "decode_cpu_s": round(self.decode_cpu_s, 3), "convert_cpu_s": round(self.convert_cpu_s, 3)}

    # -- PacketSink (event loop) -------------------------------------------------------------------------------
    def stream_started(self, info: StreamInfo) -> None:
        """A new session: its units go to a decoder made for it, starting at its first keyframe."""
        self._info = info
        self._interval_ticks = max(1, round(self.interval_s / float(info.time_base)))
        self._next_due = None
        self._last_key_pts = self._gop_ticks = None
        self._need_key = True
        sps = h26x.config_sps(info.codec, info.extradata)
        self._max_sub_layers = sps.max_sub_layers if sps is not None else 1

    def packet(self, packet: Any, arrived_at: float) -> None:
        """Decide whether the decoder needs this unit and queue it; never blocks."""
        info = self._info
        if info is None:
            return
        key = packet.is_keyframe
        if self._need_key:
            if not key:
                return
            self._need_key = False
        mode = self.mode
        pts = packet.pts
        if mode == "keyframes":
            if not key:
                return
            self._put(_Job(info, packet, arrived_at, True), replace=True)
            return
        due = mode == "all"
        if mode == "interval" and pts is not None:
            if key:
                if self._last_key_pts is not None and pts > self._last_key_pts:
                    self._gop_ticks = pts - self._last_key_pts
                self._last_key_pts = pts
            short_gop = self._gop_ticks is not None and self._gop_ticks <= 1.05 * self._interval_ticks
            if short_gop:
                # A keyframe comes at least once per interval: it is all analysis needs (one decode a second, as
                # keyframe sampling always did); a keyframe up to half an interval early still counts as due.
                if not key:
                    self.skipped += 1
                    return
                nxt = self._next_due
                if nxt is None or pts >= nxt - self._interval_ticks // 2 or pts < nxt - 2 * self._interval_ticks:
                    self._next_due = pts + self._interval_ticks
                    self._put(_Job(info, packet, arrived_at, True, drain=True), replace=True)
                else:
                    self.skipped += 1
                return
        if not due and pts is not None:
            nxt = self._next_due
            # pts far behind the grid: the camera's clock went back (not B-frame reorder, a few frames): start over
            if nxt is None or pts >= nxt or pts < nxt - 2 * self._interval_ticks:
                due = True
                # Keep the grid (no drift) unless the stream jumped ahead by more than an interval.
                if nxt is not None and nxt <= pts < nxt + self._interval_ticks:
                    self._next_due = nxt + self._interval_ticks
                else:
                    self._next_due = pts + self._interval_ticks
        if not due and not key and self.skip_disposable and h26x.is_disposable(
                bytes(packet), info.codec, max_sub_layers=self._max_sub_layers):
            self.skipped += 1
            return
        self._put(_Job(info, packet, arrived_at, due), replace=False)

    def _put(self, job: _Job, *, replace: bool) -> None:
        with self._cond:
            if len(self._jobs) >= self._queue_size:
                if replace:  # keyframes mode: the newest keyframe wins
                    self._jobs.popleft()
                    self.dropped += 1
                else:  # the decoder is behind: drop what waits and resume at the next keyframe
                    self.dropped += len(self._jobs) + 1
                    self.gaps += 1
                    self._jobs.clear()
                    self._need_key = True
                    self._next_due = None
                    if not job.packet.is_keyframe:
                        return
                    self._need_key = False
                    job = _Job(job.info, job.packet, job.arrived_at, True)
            self._jobs.append(job)
            self.queued += 1
            self._cond.notify()

    def stream_ended(self, reason: str) -> None:
        """Forget the session; units of it already queued are still decoded."""
        self._info = None

    # -- worker thread -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        decoder: av.VideoCodecContext | None = None
        session = -1
        due: deque[int] = deque()          # presentation times of due units, in arrival order
        arrivals: dict[int, float] = {}     # presentation time → arrival time, for units still in the decoder
        need_key = False
        drain = self.mode == "keyframes"
        convert_all = self.mode == "all"
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._jobs.popleft()
            unit = job.packet
            if decoder is None or session != job.info.session:
                decoder = self._decoder(job.info)
                session = job.info.session
                due.clear()
                arrivals.clear()
                need_key = False
            if need_key:
                if not unit.is_keyframe:
                    continue
                need_key = False
            pts = unit.pts
            if pts is not None:
                arrivals[pts] = job.arrived_at
                if job.due:
                    due.append(pts)
            t0 = time.thread_time()
            try:
                frames = decoder.decode(to_av_packet(unit))
                if drain or job.drain:  # keyframes only: take this keyframe's picture now, not one keyframe later
                    frames += decoder.decode(None)
                    decoder.flush_buffers()
            except Exception as exc:  # a corrupt unit: count it, start again at the next keyframe with a new decoder
                self.decode_cpu_s += time.thread_time() - t0
                self.decode_errors += 1
                log.warning("camera %s: decode failed: %r", self.camera_id, exc)
                decoder = self._decoder(job.info)
                due.clear()
                arrivals.clear()
                need_key = True
                continue
            self.decode_cpu_s += time.thread_time() - t0
            for picture in frames:
                p = picture.pts
                if p is None:
                    continue
                wanted = convert_all
                while due and due[0] <= p:
                    due.popleft()
                    wanted = True
                arrived_at = arrivals.pop(p, job.arrived_at)
                if len(arrivals) > 512:  # units whose pictures never came out (skipped, broken): forget them
                    for old in [k for k in arrivals if k < p]:
                        del arrivals[old]
                if not wanted:
                    continue
                t1 = time.thread_time()
                image = to_bgr(picture)
                self.convert_cpu_s += time.thread_time() - t1
                self._seq += 1
                self.decoded += 1
                self.slot.put(Frame(camera_id=self.camera_id, image=image, captured_at=arrived_at,
                                    pts_s=float(p * unit.time_base), seq=self._seq,
                                    keyframe=bool(picture.key_frame)))

    @staticmethod
    def _decoder(info: StreamInfo) -> av.VideoCodecContext:
        ctx = video_decoder(info.codec)
        if info.extradata:
            ctx.extradata = info.extradata
        # One thread, no frame threading: frame threads would hold every picture back by a frame per thread.
        ctx.thread_count = 1
        return ctx


class KeyframeSampler(FrameSampler):
    """The keyframe-only sampler (``mode="keyframes"``), kept for comparisons (the GOP bench)."""

    def __init__(self, camera_id: str, slot: LatestFrameSlot, *, queue_size: int = 2) -> None:
        super().__init__(camera_id, slot, mode="keyframes", queue_size=queue_size)
