"""KeyframeSampler: decodes only a camera's keyframes, off the event loop, into its latest-frame slot.

Detection of slow street events needs about one picture a second, and the GOP gives exactly that: decoding only
keyframes costs ~1.4 % of a core per 720p stream against ~10.7 % for decoding every frame to BGR. On the event
loop the sampler only puts a keyframe (an immutable access unit: no copy) into a tiny bounded queue (the newest
wins, a replaced one is counted); one worker thread per camera decodes it to BGR and puts a :class:`Frame` into
the :class:`LatestFrameSlot`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import av

from video_ingest.fanout import StreamInfo
from video_ingest.frames import Frame
from video_ingest.slot import LatestFrameSlot

log = logging.getLogger("citywall.ingest.sampler")


@dataclass(frozen=True, slots=True)
class _Job:
    info: StreamInfo
    packet: Any
    """An AccessUnit (immutable) or a PyAV packet; made into a PyAV packet of its own on the worker thread."""
    arrived_at: float


def to_av_packet(unit: Any) -> av.Packet:
    """A PyAV packet of its own with ``unit``'s bytes and timing (``unit``: an AccessUnit or a PyAV packet)."""
    copy = av.Packet(bytes(unit))
    copy.pts = unit.pts
    copy.dts = unit.dts
    copy.time_base = unit.time_base
    copy.is_keyframe = unit.is_keyframe
    return copy


class KeyframeSampler:
    """A :class:`~video_ingest.fanout.PacketSink` that decodes keyframes into ``slot`` on its own thread."""

    def __init__(self, camera_id: str, slot: LatestFrameSlot, *, queue_size: int = 2) -> None:
        if queue_size < 1:
            raise ValueError(f"KeyframeSampler.queue_size must be >= 1, got {queue_size}")
        self.camera_id = camera_id
        self.slot = slot
        self._jobs: deque[_Job] = deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._info: StreamInfo | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.dropped = 0
        """Keyframes replaced in the queue before the worker got to them."""
        self.decoded = 0
        self.decode_errors = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the decode thread."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: sampler already started")
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the decode thread (after the frame in hand, if any); True when it has ended."""
        with self._cond:
            self._stopping = True
            self._jobs.clear()
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- PacketSink (event loop) -------------------------------------------------------------------------------
    def stream_started(self, info: StreamInfo) -> None:
        """Remember the session; its keyframes are decoded with a decoder made for it."""
        self._info = info

    def packet(self, packet: Any, arrived_at: float) -> None:
        """Queue a copy of a keyframe; other packets are ignored. Never blocks."""
        info = self._info
        if info is None or not packet.is_keyframe:
            return
        job = _Job(info, packet, arrived_at)
        with self._cond:
            if len(self._jobs) >= self._queue_size:
                self._jobs.popleft()
                self.dropped += 1
            self._jobs.append(job)
            self._cond.notify()

    def stream_ended(self, reason: str) -> None:
        """Forget the session; queued keyframes of it are still decoded."""
        self._info = None

    # -- worker thread -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        decoder: av.CodecContext | None = None
        decoder_session = -1
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._jobs.popleft()
            if decoder is None or decoder_session != job.info.session:
                decoder = self._decoder(job.info)
                decoder_session = job.info.session
            try:
                image = self._decode(decoder, to_av_packet(job.packet))
            except Exception as exc:  # a corrupt keyframe: count it, start the next one with a fresh decoder
                self.decode_errors += 1
                log.warning("camera %s: keyframe decode failed: %r", self.camera_id, exc)
                decoder = None
                continue
            if image is None:
                continue
            self._seq += 1
            self.decoded += 1
            pts_s = float(job.packet.pts * job.packet.time_base) if job.packet.pts is not None else 0.0
            self.slot.put(Frame(camera_id=self.camera_id, image=image, captured_at=job.arrived_at,
                                pts_s=pts_s, seq=self._seq, keyframe=True))

    @staticmethod
    def _decoder(info: StreamInfo) -> av.CodecContext:
        ctx = av.CodecContext.create(info.codec, "r")
        if info.extradata:
            ctx.extradata = info.extradata
        # One thread and no frame threading: a keyframe comes out of the decoder as soon as it goes in.
        ctx.thread_count = 1
        return ctx

    @staticmethod
    def _decode(decoder: av.CodecContext, packet: av.Packet):  # type: ignore[no-untyped-def]
        frames = decoder.decode(packet)
        if not frames:
            return None
        return frames[-1].to_ndarray(format="bgr24")
