"""Live view: per-camera fMP4 relays (remux only) shared by any number of viewers, each with its own bounded queue.

- :class:`LiveRelay` — one per camera. It subscribes to the camera's packet fan-out only while it has viewers
  (first viewer starts it, last one stops it), remuxes on the demux thread (cheap: ~1 % of a core, never waits on
  anything) and hands finished fragments to the event loop with ``call_soon_threadsafe``; that hand-off is bounded
  and counted. It keeps the fragments since the newest keyframe (the GOP cache) so a new viewer starts at once;
  the first viewer starts at once too, because the fan-out replays the packets since the newest keyframe.
- :class:`LiveViewer` — one per browser tile: the init segment, the MIME type, and a bounded queue. When the queue
  is full the viewer skips fragments until the next keyframe fragment (counted in ``dropped``), so a stalled
  viewer never delays another one and what it does get always decodes.
- :class:`LiveHub` — camera id → relay; what the wall server uses.

Everything on the viewer side runs on the event loop thread; only ``LiveRelay``'s ``PacketSink`` methods run on
the demux thread, and they touch nothing but the muxer (under a lock) and the posting counter.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import av

from video_ingest.fanout import PacketFanout, StreamInfo
from video_ingest.remux import Fragment, FragmentMuxer, InitSegment, UnsupportedCodec, make_muxer

log = logging.getLogger("citywall.ingest.live")

KEYFRAME_TIMEOUT_S = 10.0
MAX_PENDING_HANDOFF = 500
"""Fragments posted to the event loop and not yet run there; beyond this the relay drops (the loop is stalled)."""
GOP_CACHE_MAX_FRAGMENTS = 300
GOP_CACHE_MAX_BYTES = 16 * 1024 * 1024


class LoopMailbox:
    """Thread → event-loop hand-off shared by every relay of one loop, coalescing wake-ups.

    ``call_soon_threadsafe`` per fragment costs a self-pipe write and a loop wake-up each time (16 cameras at
    25 fps: 400 a second, most of the relay's system time). Here a demux thread appends to a deque and wakes the
    loop only when no drain is already pending, so fragments that arrive while the loop is busy or before it
    runs ride along in one wake-up. Order is kept per posting thread; bounds are the posters' business (each
    relay counts what it has pending)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._scheduled = False
        self.wakeups = 0
        """Times the loop was woken (≤ items posted)."""
        self.posted = 0

    def post(self, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        """Run ``fn(*args)`` on the loop soon; ``RuntimeError`` if the loop is closed (the item is not kept)."""
        with self._lock:
            self._items.append((fn, args))
            self.posted += 1
            if self._scheduled:
                return
            self._scheduled = True
            self.wakeups += 1
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            with self._lock:
                self._items.clear()
                self._scheduled = False
            raise

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        for fn, args in items:
            try:
                fn(*args)
            except Exception:
                log.exception("live: hand-off callback %r failed", fn)


_MAILBOXES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopMailbox]" = weakref.WeakKeyDictionary()
_MAILBOXES_LOCK = threading.Lock()


def loop_mailbox(loop: asyncio.AbstractEventLoop) -> LoopMailbox:
    """The one :class:`LoopMailbox` of ``loop``."""
    with _MAILBOXES_LOCK:
        box = _MAILBOXES.get(loop)
        if box is None:
            box = _MAILBOXES[loop] = LoopMailbox(loop)
        return box


class LiveUnavailable(Exception):
    """Live view of this camera cannot start now (offline, no keyframe in time, unsupported codec)."""


class LiveEnded(Exception):
    """The camera's stream ended for this viewer (disconnect, relay error, shutdown); open a new viewer."""


_END = object()


class LiveViewer:
    """One viewer's subscription: ``init_segment`` and ``mime`` first, then :meth:`next_fragment` until LiveEnded."""

    def __init__(self, relay: "LiveRelay", queue_size: int) -> None:
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
            if self._queue.full():
                self.dropped += 1
                return
            self._need_key = False
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
    handoff_drops: int = 0
    """Fragments dropped because the event loop did not keep up (all viewers resume at the next keyframe)."""
    skipped_packets: int = 0
    mux_errors: int = 0
    gop_fragments: int = 0


class LiveRelay:
    """Remuxes one camera into fMP4 for its viewers while it has any; a :class:`PacketSink` of the fan-out."""

    def __init__(self, camera_id: str, fanout: PacketFanout, *, keyframe_timeout_s: float = KEYFRAME_TIMEOUT_S,
                 max_pending: int = MAX_PENDING_HANDOFF) -> None:
        self.camera_id = camera_id
        self.fanout = fanout
        self.keyframe_timeout_s = keyframe_timeout_s
        self.max_pending = max_pending
        self.stats = RelayStats()
        # event-loop side
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mailbox: LoopMailbox | None = None
        self._viewers: list[LiveViewer] = []
        self._init: InitSegment | None = None
        self._gop: list[bytes] = []
        self._gop_bytes = 0
        self._run = 0
        """The current run (one per start; stale posts of an earlier run are ignored); 0 while stopped."""
        self._runs = 0
        # demux-thread side (guarded by _lock)
        self._lock = threading.Lock()
        self._active_run = 0
        """The run the demux side feeds; 0 while stopped."""
        self._muxer: FragmentMuxer | None = None
        self._pending = 0
        self._gap = False

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
        except asyncio.TimeoutError:
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
        self._mailbox = loop_mailbox(loop)
        self._runs += 1
        self._run = self._runs
        self._init = None
        self._gop.clear()
        self._gop_bytes = 0
        self.stats.starts += 1
        self.stats.running = True
        with self._lock:
            self._active_run = self._run
            self._pending = 0
            self._gap = False
        # When the camera is connected this calls stream_started and replays the packets since the newest keyframe
        # right here, so the first viewer starts at once instead of waiting up to a GOP.
        self.fanout.subscribe(self, replay_gop=True)

    def _stop(self) -> None:
        if self._run == 0:
            return
        self.fanout.unsubscribe(self)
        with self._lock:
            self._active_run = 0
            self._close_muxer()
        self._run = 0
        self._init = None
        self._gop.clear()
        self._gop_bytes = 0
        self.stats.running = False
        self.stats.gop_fragments = 0

    def _remove(self, viewer: LiveViewer) -> None:
        try:
            self._viewers.remove(viewer)
        except ValueError:
            return
        self.stats.viewers = len(self._viewers)
        if not self._viewers:
            self._stop()

    def _on_init(self, run: int, init: InitSegment) -> None:
        if run == self._run:
            self._init = init

    def _on_fragment(self, run: int, fragment: Fragment, gap: bool) -> None:
        if run != self._run:
            return
        data = fragment.data
        stats = self.stats
        stats.fragments += 1
        stats.bytes += len(data)
        if gap:
            self._gop.clear()
            self._gop_bytes = 0
            for viewer in self._viewers:
                viewer._gap()
        if fragment.keyframe:
            self._gop = [data]
            self._gop_bytes = len(data)
        elif self._gop:
            if len(self._gop) >= GOP_CACHE_MAX_FRAGMENTS or self._gop_bytes + len(data) > GOP_CACHE_MAX_BYTES:
                self._gop.clear()  # a GOP this long is not worth replaying; new viewers wait for the next keyframe
                self._gop_bytes = 0
            else:
                self._gop.append(data)
                self._gop_bytes += len(data)
        stats.gop_fragments = len(self._gop)
        for viewer in list(self._viewers):
            viewer._offer(data, fragment.keyframe)

    def _on_end(self, run: int, reason: str, error: Exception | None) -> None:
        if run != self._run:
            return
        for viewer in list(self._viewers):
            viewer._end(reason, error)
        self._viewers.clear()
        self.stats.viewers = 0
        self._stop()

    def _dispatch(self, fn: Callable[..., None], args: tuple[Any, ...], counted: bool) -> None:
        if counted:
            with self._lock:
                self._pending -= 1
        fn(*args)

    # -- PacketSink (demux thread; also stream_started from subscribe on the loop thread) -----------------------
    def stream_started(self, info: StreamInfo) -> None:
        """Create the muxer for this session (or end the viewers if the codec cannot be relayed)."""
        with self._lock:
            run = self._active_run
            if not run:
                return
            self._close_muxer()
            try:
                self._muxer = make_muxer(info.stream)
            except UnsupportedCodec as exc:
                self._post(self._on_end, (run, str(exc), LiveUnavailable(str(exc))))
            except Exception as exc:
                self.stats.mux_errors += 1
                log.exception("camera %s: cannot create the fMP4 muxer", self.camera_id)
                self._post(self._on_end, (run, f"remux failed: {exc!r}", None))

    def packet(self, packet: av.Packet, arrived_at: float) -> None:
        """Remux one packet and post what it completed to the event loop; never waits on viewers."""
        with self._lock:
            run, muxer = self._active_run, self._muxer
            if not run or muxer is None:
                return
            try:
                segments = muxer.feed(packet)
            except Exception as exc:
                self.stats.mux_errors += 1
                log.warning("camera %s: remux failed: %r", self.camera_id, exc)
                self._close_muxer()
                self._post(self._on_end, (run, f"remux failed: {exc!r}", None))
                return
            self.stats.skipped_packets = muxer.skipped
            for segment in segments:
                if isinstance(segment, InitSegment):
                    self._post(self._on_init, (run, segment))
                elif self._pending >= self.max_pending:
                    self.stats.handoff_drops += 1
                    self._gap = True
                else:
                    self._pending += 1
                    gap, self._gap = self._gap, False
                    self._post(self._on_fragment, (run, segment, gap), counted=True)

    def stream_ended(self, reason: str) -> None:
        """The camera disconnected: viewers get :class:`LiveEnded` (browsers reconnect)."""
        with self._lock:
            run = self._active_run
            self._close_muxer()
            if run:
                self._post(self._on_end, (run, f"camera {self.camera_id}: {reason}", None))

    def _post(self, fn: Callable[..., None], args: tuple[Any, ...], counted: bool = False) -> None:
        mailbox = self._mailbox
        if mailbox is None:
            return
        try:
            mailbox.post(self._dispatch, (fn, args, counted))
        except RuntimeError:  # the loop is closed: nobody is watching any more
            if counted:
                self._pending -= 1

    def _close_muxer(self) -> None:
        if self._muxer is not None:
            self._muxer.close()
            self._muxer = None

    def __repr__(self) -> str:
        return f"LiveRelay({self.camera_id!r}, running={self.running}, viewers={len(self._viewers)})"


class LiveHub:
    """Camera id → :class:`LiveRelay`; hands out :class:`LiveViewer` objects to the wall server."""

    def __init__(self, fanouts: Mapping[str, PacketFanout], *, keyframe_timeout_s: float = KEYFRAME_TIMEOUT_S) -> None:
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
