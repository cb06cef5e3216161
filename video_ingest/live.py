"""Live view: per-camera fMP4 relays (remux only) shared by any number of viewers, each with its own bounded queue.

- :class:`LiveRelay` — one per camera. It subscribes to the camera's packet fan-out only while it has viewers
  (first viewer starts it, last one stops it) and remuxes each access unit as it arrives on the event loop (our
  own fMP4 writer: microseconds a frame), straight into the viewers' queues — no thread, no hand-off. It keeps the
  fragments since the newest keyframe (the GOP cache) so a new viewer starts at once; the first viewer starts at
  once too, because the fan-out replays the units since the newest keyframe.
- :class:`LiveViewer` — one per browser tile: the init segment, the MIME type, and a bounded queue. When the queue
  is full the viewer skips fragments until the next keyframe fragment (counted in ``dropped``), so a stalled
  viewer never delays another one and what it does get always decodes.
- :class:`LiveHub` — camera id → relay; what the wall server uses.

Everything runs on the event loop thread (camera sources are loop tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from video_ingest.fanout import PacketFanout, StreamInfo
from video_ingest.remux import Fragment, FragmentMuxer, InitSegment, UnsupportedCodec, make_muxer, needs_transcode

if TYPE_CHECKING:
    from video_ingest.transcode import TranscodeThread

log = logging.getLogger("citywall.ingest.live")

KEYFRAME_TIMEOUT_S = 10.0
GOP_CACHE_MAX_FRAGMENTS = 300
GOP_CACHE_MAX_BYTES = 16 * 1024 * 1024


class LiveUnavailable(Exception):
    """Live view of this camera cannot start now (offline, no keyframe in time, unsupported codec)."""


class LiveEnded(Exception):
    """The camera's stream ended for this viewer (disconnect, relay error, shutdown); open a new viewer."""


_END = object()


class LiveViewer:
    """One viewer's subscription: ``init_segment`` and ``mime`` first, then :meth:`next_fragment` until LiveEnded."""

    def __init__(self, relay: LiveRelay, queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.relay = relay
        self.camera_id = relay.camera_id
        self.mime = ""
        """MIME type for MediaSource, e.g. ``video/mp4; codecs="avc1.42C01F"``."""
        self.init_segment = b""
        """ftyp+moov, to append before any fragment."""
        self.transcoded_from: str | None = None
        """The camera's own codec when the relay transcodes it for the browser (``"hevc"``), else None."""
        self.dropped = 0
        """Fragments this viewer missed because its own queue was full (skipped up to the next keyframe)."""
        self.delivered = 0
        """Fragments handed out by :meth:`next_fragment`."""
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._need_key = True
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended: str | None = None
        self._end_queued = 0
        self._closed = False
        self._write: Callable[[bytes], bool] | None = None
        self._ended_event = asyncio.Event()

    def attach(self, write: Callable[[bytes], bool]) -> None:
        """Push mode: from now on each fragment is handed to ``write(fragment)`` on the event loop as soon as the
        relay makes it, instead of through the queue and :meth:`next_fragment` (no task wake-up per fragment per
        viewer). What is already queued goes first, in order. ``write`` returns False when its consumer cannot
        take the fragment now (a socket whose send buffer is full): the viewer then skips to the next keyframe,
        counted in ``dropped``, exactly as when the queue is full. :meth:`wait_ended` tells when the stream ends."""
        self._write = write
        while self._queue.qsize() > self._end_queued:
            item = self._queue.get_nowait()
            if self._need_key:
                self.dropped += 1
            elif write(item):
                self.delivered += 1
            else:
                self.dropped += 1
                self._need_key = True  # what follows in the queue depends on this one

    async def wait_ended(self) -> str:
        """Wait until the stream ends or the viewer is closed; the reason."""
        await self._ended_event.wait()
        return self._ended or "closed"

    async def next_fragment(self) -> bytes:
        """The next ``moof+mdat`` (the first one starts at a keyframe). Raises :class:`LiveEnded` when the
        camera's stream ended or the viewer was closed (fragments already queued are handed out first)."""
        if self._queue.empty() and self._ended is not None:
            raise LiveEnded(self._ended)
        item = await self._queue.get()
        if item is _END:
            self._end_queued = 0
            raise LiveEnded(self._ended or "closed")
        self.delivered += 1
        return item

    def close(self) -> None:
        """Stop receiving; the relay stops when its last viewer closes. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._end("viewer closed")
        self.relay._remove(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def queued(self) -> int:
        """Fragments waiting in this viewer's queue."""
        return self._queue.qsize() - self._end_queued

    # -- relay side (event loop thread) --------------------------------------------------------------------------
    def _offer(self, fragment: bytes, keyframe: bool) -> None:
        if self._ended is not None:
            return
        started = self._started.done()
        if self._need_key:
            if not keyframe:
                if started:
                    self.dropped += 1
                return
            if self._write is None and self._queue.full():
                self.dropped += 1
                return
            self._need_key = False
        if self._write is not None:
            if self._write(fragment):
                self.delivered += 1
            else:
                self.dropped += 1
                self._need_key = True
            return
        try:
            self._queue.put_nowait(fragment)
        except asyncio.QueueFull:
            self.dropped += 1
            self._need_key = True
            return
        if not started:
            self._started.set_result(None)

    def _gap(self) -> None:
        """Fragments were lost upstream: resume only at a keyframe."""
        self._need_key = True

    def _end(self, reason: str, error: Exception | None = None) -> None:
        if self._ended is not None:
            return
        self._ended = reason
        self._ended_event.set()
        if not self._started.done():
            self._started.set_exception(error or LiveUnavailable(reason))
            self._started.exception()  # retrieved: a viewer nobody waits for must not warn
        try:
            self._queue.put_nowait(_END)
            self._end_queued = 1
        except asyncio.QueueFull:
            pass  # the reader is not waiting; it sees _ended after draining the queue

    def __repr__(self) -> str:
        return (f"LiveViewer({self.camera_id!r}, queued={self.queued}, dropped={self.dropped}, "
                f"ended={self._ended!r})")


@dataclass
class RelayStats:
    """Counters of one relay (exported through ``LiveHub.stats``)."""

    running: bool = False
    viewers: int = 0
    starts: int = 0
    fragments: int = 0
    bytes: int = 0
    skipped_packets: int = 0
    mux_errors: int = 0
    gop_fragments: int = 0


class LiveRelay:
    """Remuxes one camera into fMP4 for its viewers while it has any; a :class:`PacketSink` of the fan-out.

    Its sink methods run where the fan-out is fed — the event loop, since camera sources are loop tasks — so a
    fragment goes from the muxer straight into every viewer's queue. Fed from another thread (a test, a tool), it
    hands each step to the loop with ``call_soon_threadsafe`` instead."""

    def __init__(self, camera_id: str, fanout: PacketFanout, *,
                 keyframe_timeout_s: float = KEYFRAME_TIMEOUT_S) -> None:
        self.camera_id = camera_id
        self.fanout = fanout
        self.keyframe_timeout_s = keyframe_timeout_s
        self.stats = RelayStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._viewers: list[LiveViewer] = []
        self._init: InitSegment | None = None
        self._gop: list[bytes] = []
        self._gop_bytes = 0
        self._run = 0
        """The current run (one per start; stale calls of an earlier run are ignored); 0 while stopped."""
        self._runs = 0
        self._muxer: FragmentMuxer | TranscodeThread | None = None
        self._info: StreamInfo | None = None

    # -- event loop side -----------------------------------------------------------------------------------------
    async def open(self, queue_size: int = 256) -> LiveViewer:
        """A new viewer, starting at a keyframe. Starts the relay if it is the first. Raises
        :class:`LiveUnavailable` if no keyframe arrives within ``keyframe_timeout_s`` or the codec is unsupported."""
        viewer = LiveViewer(self, queue_size)
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop and self._viewers:
            raise RuntimeError(f"camera {self.camera_id}: live relay is serving another event loop")
        self._viewers.append(viewer)
        self.stats.viewers = len(self._viewers)
        if self._run == 0:
            self._start(loop)
        elif self._init is not None and self._gop:
            self._prefill(viewer)
        try:
            await asyncio.wait_for(asyncio.shield(viewer._started), self.keyframe_timeout_s)
        except TimeoutError:
            viewer.close()
            raise LiveUnavailable(f"camera {self.camera_id}: no keyframe within {self.keyframe_timeout_s:g} s "
                                  f"(camera offline?)") from None
        except BaseException:
            viewer.close()
            raise
        assert self._init is not None
        viewer.init_segment = self._init.data
        viewer.mime = self._init.mime
        viewer.transcoded_from = self._init.transcoded_from
        return viewer

    def close(self, reason: str = "live relay closed") -> None:
        """End every viewer with :class:`LiveEnded` and stop (event loop thread)."""
        for viewer in list(self._viewers):
            viewer._end(reason)
        self._viewers.clear()
        self.stats.viewers = 0
        self._stop()

    @property
    def running(self) -> bool:
        """Whether the relay is subscribed to the camera (it has viewers)."""
        return self._run != 0

    def _prefill(self, viewer: LiveViewer) -> None:
        for i, fragment in enumerate(self._gop):
            viewer._offer(fragment, i == 0)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._runs += 1
        self._run = self._runs
        self._init = None
        self._clear_gop()
        self.stats.starts += 1
        self.stats.running = True
        # When the camera is connected this calls stream_started and replays the units since the newest keyframe
        # right here, so the first viewer starts at once instead of waiting up to a GOP.
        self.fanout.subscribe(self, replay_gop=True)

    def _stop(self) -> None:
        if self._run == 0:
            return
        self.fanout.unsubscribe(self)
        self._close_muxer()
        self._run = 0
        self._init = None
        self._clear_gop()
        self.stats.running = False

    def _clear_gop(self) -> None:
        self._gop = []
        self._gop_bytes = 0
        self.stats.gop_fragments = 0

    def _remove(self, viewer: LiveViewer) -> None:
        try:
            self._viewers.remove(viewer)
        except ValueError:
            return
        self.stats.viewers = len(self._viewers)
        if not self._viewers:
            self._stop()

    def _segments(self, run: int, segments: list[InitSegment | Fragment]) -> None:
        if run != self._run:
            return
        for segment in segments:
            if isinstance(segment, InitSegment):
                self._init = segment
            else:
                self._fragment(segment)

    def _fragment(self, fragment: Fragment) -> None:
        data = fragment.data
        stats = self.stats
        stats.fragments += 1
        stats.bytes += len(data)
        if fragment.keyframe:
            self._gop = [data]
            self._gop_bytes = len(data)
        elif self._gop:
            if len(self._gop) >= GOP_CACHE_MAX_FRAGMENTS or self._gop_bytes + len(data) > GOP_CACHE_MAX_BYTES:
                self._clear_gop()  # a GOP this long is not worth replaying; new viewers wait for the next keyframe
            else:
                self._gop.append(data)
                self._gop_bytes += len(data)
        stats.gop_fragments = len(self._gop)
        for viewer in self._viewers:
            viewer._offer(data, fragment.keyframe)

    def _on_end(self, run: int, reason: str, error: Exception | None) -> None:
        if run != self._run:
            return
        for viewer in list(self._viewers):
            viewer._end(reason, error)
        self._viewers.clear()
        self.stats.viewers = 0
        self._stop()

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the loop after the current callback (ends unsubscribe from the fan-out, which must not
        happen inside one of its deliveries)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is watching any more
            loop.call_soon_threadsafe(fn, *args)

    # -- PacketSink (where the fan-out is fed: normally the event loop) ------------------------------------------
    def stream_started(self, info: StreamInfo) -> None:
        """Create the muxer for this session (or end the viewers if the codec cannot be relayed)."""
        run = self._run
        if not run:
            return
        self._close_muxer()
        self._info = info
        try:
            muxer = make_muxer(info)
            if isinstance(muxer, FragmentMuxer):
                self._muxer = muxer
            else:  # a transcoder: its own thread, segments come back through the loop
                self._muxer = self._transcoder(muxer, run)
        except UnsupportedCodec as exc:
            self._later(self._on_end, run, str(exc), LiveUnavailable(str(exc)))
        except Exception as exc:
            self.stats.mux_errors += 1
            log.exception("camera %s: cannot create the fMP4 muxer", self.camera_id)
            self._later(self._on_end, run, f"remux failed: {exc!r}", None)

    def _transcoder(self, muxer: Any, run: Any) -> TranscodeThread:
        from video_ingest.transcode import TranscodeThread
        return TranscodeThread(muxer, lambda segments: self._later(self._segments, run, segments),
                               lambda reason: self._later(self._on_end, run, reason, None))

    def packet(self, packet: Any, arrived_at: float) -> None:
        """Remux one access unit and hand what it completed to the viewers; never waits on them."""
        run, muxer = self._run, self._muxer
        if not run or muxer is None:
            return
        if (isinstance(muxer, FragmentMuxer) and muxer.init is None and packet.is_keyframe
                and self._info is not None and needs_transcode(self._info, packet)):
            # The stream starts at a recovery point (open GOP, intra refresh): browsers start only at an IDR,
            # which may not come for minutes. Decode it here and send H.264 with IDRs instead.
            from video_ingest.transcode import TranscodingMuxer
            log.info("camera %s: no IDR to start the tile at (recovery points only): transcoding it",
                     self.camera_id)
            muxer.close()
            self._muxer = muxer = self._transcoder(TranscodingMuxer(self._info), run)
        try:
            segments = muxer.feed(packet)
        except Exception as exc:
            self.stats.mux_errors += 1
            log.warning("camera %s: remux failed: %r", self.camera_id, exc)
            self._close_muxer()
            self._later(self._on_end, run, f"remux failed: {exc!r}", None)
            return
        self.stats.skipped_packets = muxer.skipped
        if not segments:
            return
        if threading.get_ident() == self._loop_thread:
            self._segments(run, segments)
        else:
            self._later(self._segments, run, segments)

    def stream_ended(self, reason: str) -> None:
        """The camera disconnected: viewers get :class:`LiveEnded` (browsers reconnect)."""
        run = self._run
        self._close_muxer()
        if run:
            self._later(self._on_end, run, f"camera {self.camera_id}: {reason}", None)

    def _close_muxer(self) -> None:
        if self._muxer is not None:
            self._muxer.close()
            self._muxer = None

    def __repr__(self) -> str:
        return f"LiveRelay({self.camera_id!r}, running={self.running}, viewers={len(self._viewers)})"


class LiveHub:
    """Camera id → :class:`LiveRelay`; hands out :class:`LiveViewer` objects to the wall server."""

    def __init__(self, fanouts: Mapping[str, PacketFanout], *, keyframe_timeout_s: float = KEYFRAME_TIMEOUT_S) -> None:
        self._keyframe_timeout_s = keyframe_timeout_s
        self.relays: dict[str, LiveRelay] = {
            cid: LiveRelay(cid, fanout, keyframe_timeout_s=keyframe_timeout_s) for cid, fanout in fanouts.items()
        }

    def has_camera(self, camera_id: str) -> bool:
        """Whether ``camera_id`` is known."""
        return camera_id in self.relays

    async def open(self, camera_id: str, *, queue_size: int = 256) -> LiveViewer:
        """A viewer of ``camera_id``; ``KeyError`` for an unknown camera, :class:`LiveUnavailable` if no keyframe
        arrives within ~10 s (camera offline) or the camera's codec cannot be relayed."""
        try:
            relay = self.relays[camera_id]
        except KeyError:
            raise KeyError(f"unknown camera {camera_id!r}") from None
        return await relay.open(queue_size)

    def add(self, camera_id: str, fanout: PacketFanout) -> None:
        """Serve a camera added while running (``admin.running``); ``ValueError`` if it is already here."""
        if camera_id in self.relays:
            raise ValueError(f"camera {camera_id!r} already has a live relay")
        self.relays[camera_id] = LiveRelay(camera_id, fanout, keyframe_timeout_s=self._keyframe_timeout_s)

    def remove(self, camera_id: str, reason: str = "camera removed") -> None:
        """Stop serving ``camera_id``: its viewers end with ``reason`` (event loop thread). Unknown: nothing."""
        relay = self.relays.pop(camera_id, None)
        if relay is not None:
            relay.close(reason)

    def close(self, reason: str = "live view shut down") -> None:
        """End every viewer and stop every relay (event loop thread)."""
        for relay in self.relays.values():
            relay.close(reason)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-camera relay counters plus each viewer's queue and drop count."""
        out: dict[str, dict[str, Any]] = {}
        for cid, relay in self.relays.items():
            entry: dict[str, Any] = dict(relay.stats.__dict__)
            entry["viewer_drops"] = [v.dropped for v in relay._viewers]
            out[cid] = entry
        return out
