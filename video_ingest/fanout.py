"""Packet fan-out: the one place a camera's frames (:class:`AccessUnit`) reach every consumer — the one message
type of the boundary between a camera's connection and everything that uses it.

A camera has one RTSP connection; the live relay, the frame sampler and the evidence clip ring all feed on it.
The camera's source (a task on the event loop) calls each sink in turn, so a sink must return at once (hand off
to its own bounded queue or do bounded work); access units are immutable and may be kept by reference. A sink
that raises is counted and skipped for that unit; it never ends the connection.

A *session* is one successful connection: ``stream_started(info)`` before its first packet, ``stream_ended(reason)``
after its last. A sink that subscribes mid-session gets ``stream_started`` at once and, if it asks, the packets
since the newest keyframe (references kept by the fan-out, bounded), so a live relay can start at a keyframe
without waiting up to a GOP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

log = logging.getLogger("citywall.ingest.fanout")

GOP_REPLAY_MAX_PACKETS = 300
GOP_REPLAY_MAX_BYTES = 8 * 1024 * 1024


class AccessUnit:
    """One frame of one camera: ``data`` is its NAL units, each behind a 4-byte big-endian length (the MP4
    sample format, what ``extradata``'s avcC/hvcC describes); ``pts`` counts ``time_base`` ticks from the session's
    start. RTP carries presentation times only, so ``dts`` is ``pts``; with B-frames units arrive in decode order and
    ``pts`` goes back and forth — the muxers derive decode times (:mod:`video_ingest.reorder`).

    Read-only by contract (a plain slotted class, not a frozen dataclass: it is made 25 times a second per camera).
    Named like PyAV's packet fields (``is_keyframe``, ``time_base``, ``size``, ``bytes(unit)``) so code that
    handles either reads the same."""

    __slots__ = ("data", "pts", "is_keyframe", "time_base")

    def __init__(self, data: bytes, pts: int, is_keyframe: bool, time_base: Fraction) -> None:
        self.data = data
        self.pts = pts
        self.is_keyframe = is_keyframe
        self.time_base = time_base

    @property
    def dts(self) -> int:
        return self.pts

    @property
    def size(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return f"AccessUnit(pts={self.pts}, keyframe={self.is_keyframe}, size={len(self.data)})"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a sink needs to know about the video stream of one session."""

    camera_id: str
    session: int
    """Increases by one per successful connection of this camera."""
    codec: str
    """FFmpeg codec name, e.g. ``h264`` or ``hevc``."""
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None
    """The codec configuration record: avcC (H.264) or hvcC (H.265) with the camera's parameter sets; what a
    decoder or an MP4 muxer needs for the length-prefixed ``AccessUnit.data``."""
    started_at: float
    """Unix time the session began."""


class PacketSink(Protocol):
    """A consumer of one camera's access units. Every method runs on the event loop and must not block."""

    def stream_started(self, info: StreamInfo) -> None:
        """A session began; packets of ``info.session`` follow."""
        ...

    def packet(self, packet: AccessUnit, arrived_at: float) -> None:
        """One frame (immutable). ``arrived_at`` is the Unix time it was read."""
        ...

    def stream_ended(self, reason: str) -> None:
        """The session ended (disconnect, error or stop); ``reason`` has credentials redacted."""
        ...


class PacketFanout:
    """Delivers one camera's sessions and packets to its current sinks; counts sinks that raised."""

    def __init__(self, camera_id: str, *, keep_gop: bool = True) -> None:
        self.camera_id = camera_id
        self.keep_gop = keep_gop
        # One lock orders everything: a subscriber's replay can never interleave with a live packet.
        self._lock = threading.Lock()
        self._sinks: tuple[PacketSink, ...] = ()
        self._info: StreamInfo | None = None
        self._gop: list[tuple[AccessUnit, float]] = []
        self._gop_bytes = 0
        self.packets = 0
        """Packets published since creation."""
        self.sink_errors = 0
        """Calls into a sink that raised (the sink missed that call)."""

    @property
    def info(self) -> StreamInfo | None:
        """The current session, or None while disconnected."""
        return self._info

    @property
    def sink_count(self) -> int:
        """How many sinks are subscribed."""
        return len(self._sinks)

    @property
    def gop_packets(self) -> int:
        """Packets held for replay (those since the newest keyframe)."""
        return len(self._gop)

    def subscribe(self, sink: PacketSink, *, replay_gop: bool = False) -> None:
        """Add ``sink``. If a session is running it gets ``stream_started`` now (on the caller's thread) and, with
        ``replay_gop``, the packets since the newest keyframe, before any later packet."""
        with self._lock:
            if sink in self._sinks:
                return
            if self._info is not None:
                self._call(sink.stream_started, self._info)
                if replay_gop:
                    for packet, arrived_at in self._gop:
                        self._call(sink.packet, packet, arrived_at)
            self._sinks = self._sinks + (sink,)

    def unsubscribe(self, sink: PacketSink) -> None:
        """Remove ``sink`` (idempotent); waits for a delivery in progress, so no call follows."""
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def start_session(self, info: StreamInfo) -> None:
        """Called by the camera source when a connection is up."""
        with self._lock:
            self._info = info
            self._clear_gop()
            for sink in self._sinks:
                self._call(sink.stream_started, info)

    def publish(self, packet: AccessUnit, arrived_at: float) -> None:
        """Called by the camera source for each packet; never blocks on a sink's consumer."""
        with self._lock:
            self.packets += 1
            if self.keep_gop:
                self._keep(packet, arrived_at)
            for sink in self._sinks:
                try:  # _call's guard, inlined: this runs per frame for every sink of every camera
                    sink.packet(packet, arrived_at)
                except Exception:  # a consumer's bug must not end the camera's connection
                    self.sink_errors += 1
                    log.exception("camera %s: packet sink %r failed", self.camera_id, sink)

    def _keep(self, packet: AccessUnit, arrived_at: float) -> None:
        # References only: access units are immutable, so holding one costs no copy.
        if packet.is_keyframe:
            self._clear_gop()
        elif not self._gop:
            return  # no keyframe yet: nothing worth replaying
        if len(self._gop) >= GOP_REPLAY_MAX_PACKETS or self._gop_bytes + packet.size > GOP_REPLAY_MAX_BYTES:
            self._clear_gop()  # a GOP this long is not worth replaying; wait for the next keyframe
            return
        self._gop.append((packet, arrived_at))
        self._gop_bytes += packet.size

    def _clear_gop(self) -> None:
        self._gop = []
        self._gop_bytes = 0

    def end_session(self, reason: str) -> None:
        """Called by the camera source when the connection is gone (idempotent per session)."""
        with self._lock:
            if self._info is None:
                return
            self._info = None
            self._clear_gop()
            for sink in self._sinks:
                self._call(sink.stream_ended, reason)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # a consumer's bug must not end the camera's connection
            self.sink_errors += 1
            log.exception("camera %s: packet sink %r failed", self.camera_id, fn)
