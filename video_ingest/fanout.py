"""Packet fan-out: the one place a camera's demux thread hands its packets to every consumer.

A camera has one RTSP connection; the live relay and the keyframe sampler both feed on it. The demux thread calls
each sink in turn, so a sink must return at once (hand off to its own bounded queue or do bounded work) and must
treat the packet as read-only — a sink that keeps or changes a packet copies it first. A sink that raises is
counted and skipped for that packet; it never ends the demux loop.

A *session* is one successful connection: ``stream_started(info)`` before its first packet, ``stream_ended(reason)``
after its last. A sink that subscribes mid-session gets ``stream_started`` at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av

log = logging.getLogger("citywall.ingest.fanout")


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a sink needs to know about the video stream of one session."""

    camera_id: str
    session: int
    """Increases by one per successful connection of this camera."""
    stream: av.video.stream.VideoStream
    """The input stream (template for a remux; valid until ``stream_ended``)."""
    codec: str
    """FFmpeg codec name, e.g. ``h264`` or ``hevc``."""
    width: int
    height: int
    time_base: Fraction
    extradata: bytes | None
    """Codec configuration (SPS/PPS) from the session description, if the camera sent it."""
    started_at: float
    """Unix time the session began."""


class PacketSink(Protocol):
    """A consumer of one camera's packets. Every method runs on the demux thread and must not block."""

    def stream_started(self, info: StreamInfo) -> None:
        """A session began; packets of ``info.session`` follow."""
        ...

    def packet(self, packet: av.Packet, arrived_at: float) -> None:
        """One video packet (read-only; copy to keep). ``arrived_at`` is the Unix time it was read."""
        ...

    def stream_ended(self, reason: str) -> None:
        """The session ended (disconnect, error or stop); ``reason`` has credentials redacted."""
        ...


class PacketFanout:
    """Delivers one camera's sessions and packets to its current sinks; counts sinks that raised."""

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self._lock = threading.Lock()
        self._sinks: tuple[PacketSink, ...] = ()
        self._info: StreamInfo | None = None
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

    def subscribe(self, sink: PacketSink) -> None:
        """Add ``sink``; if a session is running it gets ``stream_started`` now (on the caller's thread)."""
        with self._lock:
            if sink in self._sinks:
                return
            self._sinks = self._sinks + (sink,)
            if self._info is not None:
                self._call(sink.stream_started, self._info)

    def unsubscribe(self, sink: PacketSink) -> None:
        """Remove ``sink`` (idempotent). It may still see a packet already being delivered."""
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def start_session(self, info: StreamInfo) -> None:
        """Called by the camera source when a connection is up."""
        with self._lock:
            self._info = info
            for sink in self._sinks:
                self._call(sink.stream_started, info)

    def publish(self, packet: av.Packet, arrived_at: float) -> None:
        """Called by the camera source for each packet; never blocks on a sink's consumer."""
        self.packets += 1
        # The sink tuple is replaced, never mutated, so reading it needs no lock (subscribe stays cheap).
        for sink in self._sinks:
            self._call(sink.packet, packet, arrived_at)

    def end_session(self, reason: str) -> None:
        """Called by the camera source when the connection is gone (idempotent per session)."""
        with self._lock:
            if self._info is None:
                return
            self._info = None
            for sink in self._sinks:
                self._call(sink.stream_ended, reason)

    def _call(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except Exception:  # a consumer's bug must not end the camera's connection
            self.sink_errors += 1
            log.exception("camera %s: packet sink %r failed", self.camera_id, fn)
