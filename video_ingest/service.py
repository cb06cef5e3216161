"""IngestService: every camera of this worker — connections, keyframe sampling, live relays and status updates.

One :class:`CameraSource` per camera (a task on this event loop), a :class:`FrameSampler` feeding a
:class:`LatestFrameSlot` per camera when ``sample_keyframes`` is on (a picture every ``sample_interval_s``; its
decode runs on its own thread), and a :class:`LiveHub` over the same packet fan-outs, so a camera has exactly one
RTSP connection however many consumers it has. A camera listed in ``analysis_sources`` (its sub-stream, D1/CIF)
gets a second connection that only the sampler reads; live view and clips stay on the main stream. Each
``status_updates()`` reader has its own bounded queue (the oldest update is dropped and counted when a reader falls
behind).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from messages.camera import CameraStatus
from video_ingest.fanout import PacketFanout
from video_ingest.frames import Frame
from video_ingest.live import LiveHub
from video_ingest.sampler import FrameSampler, SampleMode
from video_ingest.slot import LatestFrameSlot
from video_ingest.source import CameraSource, SourceOptions

log = logging.getLogger("citywall.ingest")

HEARTBEAT_S = 5.0
STATUS_QUEUE_SIZE = 1000
_STOP = object()


class IngestService:
    """Pulls the cameras in ``sources`` (camera id → resolved ``rtsp://`` URL) for detection and live view;
    ``options`` (camera id → :class:`SourceOptions`: transport, login backoff) where a camera needs other than the
    defaults."""

    def __init__(self, sources: dict[str, str], *, worker: str = "local", open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0, sample_keyframes: bool = True, heartbeat_s: float = HEARTBEAT_S,
                 status_queue_size: int = STATUS_QUEUE_SIZE, options: dict[str, SourceOptions] | None = None,
                 sample_interval_s: float = 1.0, sample_mode: SampleMode = "interval",
                 analysis_sources: dict[str, str] | None = None) -> None:
        analysis_sources = dict(analysis_sources or {})
        for what, urls in (("sources", sources), ("analysis_sources", analysis_sources)):
            for camera_id, url in urls.items():
                if not camera_id:
                    raise ValueError(f"{what}: empty camera id")
                if not isinstance(url, str) or "://" not in url:
                    raise ValueError(f"{what}[{camera_id!r}]: expected a URL such as rtsp://host/path "
                                     f"(no scheme given)")
        unknown = sorted(set(analysis_sources) - set(sources))
        if unknown:
            raise ValueError(f"analysis_sources: {', '.join(unknown)} not among the cameras (sources)")
        options = options or {}
        unknown = sorted(set(options) - set(sources))
        if unknown:
            raise ValueError(f"options: no such camera: {', '.join(unknown)}")
        if heartbeat_s <= 0:
            raise ValueError(f"heartbeat_s must be > 0, got {heartbeat_s}")
        self.worker = worker
        self._open_timeout_s, self._read_timeout_s = open_timeout_s, read_timeout_s
        self._sample_keyframes, self._sample_interval_s, self._sample_mode = \
            sample_keyframes, sample_interval_s, sample_mode
        self.heartbeat_s = heartbeat_s
        self._status_queue_size = status_queue_size
        self._sources: dict[str, CameraSource] = {
            cid: CameraSource(cid, url, worker=worker, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                              on_status=self._broadcast, fanout=PacketFanout(cid), options=options.get(cid))
            for cid, url in sources.items()
        }
        self._slots: dict[str, LatestFrameSlot] = {cid: LatestFrameSlot() for cid in sources}
        self._samplers: dict[str, FrameSampler] = {}
        if sample_keyframes:
            self._samplers = {cid: FrameSampler(cid, self._slots[cid], interval_s=sample_interval_s, mode=sample_mode)
                              for cid in sources}
        # A sub-stream for analysis: its own connection, read by the sampler only (no live view, no clips).
        self._analysis: dict[str, CameraSource] = {
            cid: CameraSource(cid, url, worker=worker, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                              fanout=PacketFanout(cid, keep_gop=False))
            for cid, url in analysis_sources.items() if sample_keyframes
        }
        self.live = LiveHub({cid: src.fanout for cid, src in self._sources.items()})
        """Live fMP4 viewers of these cameras."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readers: set[asyncio.Queue[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False
        self.status_drops = 0
        """Status updates dropped because a reader of status_updates() fell behind."""

    @property
    def camera_ids(self) -> list[str]:
        """The cameras of this service, in configuration order."""
        return list(self._sources)

    async def start(self) -> None:
        """Start every camera's connection task (and sampler thread) and the status heartbeat."""
        if self._started:
            raise RuntimeError("IngestService.start(): already started")
        self._started = True
        self._loop = asyncio.get_running_loop()
        for cid, source in self._sources.items():
            sampler = self._samplers.get(cid)
            analysis = self._analysis.get(cid)
            if sampler is not None:
                sampler.start()
                (analysis or source).fanout.subscribe(sampler)
            source.start()
            if analysis is not None:
                analysis.start()
        self._heartbeat = asyncio.create_task(self._beat(), name="ingest-status-heartbeat")

    async def stop(self) -> None:
        """Stop everything and wait until every thread this service started has ended. Idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        self.live.close("ingest stopped")
        await asyncio.gather(*(source.stop() for source in (*self._sources.values(), *self._analysis.values())))
        for sampler in self._samplers.values():
            sampler.stop(timeout=0)
        # Poll rather than join in an executor: an executor would leave its own idle threads behind.
        deadline = time.monotonic() + 5
        while any(s._thread is not None and s._thread.is_alive() for s in self._samplers.values()) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stuck = [cid for cid, s in self._samplers.items() if s._thread is not None and s._thread.is_alive()]
        if stuck:
            log.warning("ingest stop: frame decoders still busy: %s", ", ".join(stuck))
        for queue in self._readers:
            self._put(queue, _STOP, force=True)

    async def add_camera(self, camera_id: str, url: str, *, options: SourceOptions | None = None,
                         analysis_url: str | None = None) -> None:
        """Open a camera while running (the administrator added or enabled it): its connection, sampler and live
        relay start now. ``ValueError`` for a camera already here or a URL without a scheme."""
        if not self._started or self._stopped:
            raise RuntimeError("IngestService.add_camera(): the service is not running")
        if camera_id in self._sources:
            raise ValueError(f"camera {camera_id!r} is already open")
        for what, value in (("url", url), ("analysis_url", analysis_url)):
            if value is not None and (not isinstance(value, str) or "://" not in value):
                raise ValueError(f"{what} of {camera_id!r}: expected a URL such as rtsp://host/path")
        source = CameraSource(camera_id, url, worker=self.worker, open_timeout_s=self._open_timeout_s,
                              read_timeout_s=self._read_timeout_s, on_status=self._broadcast,
                              fanout=PacketFanout(camera_id), options=options)
        self._sources[camera_id] = source
        self._slots[camera_id] = slot = LatestFrameSlot()
        analysis = None
        if self._sample_keyframes:
            sampler = self._samplers[camera_id] = FrameSampler(camera_id, slot, interval_s=self._sample_interval_s,
                                                               mode=self._sample_mode)
            if analysis_url:
                analysis = self._analysis[camera_id] = CameraSource(
                    camera_id, analysis_url, worker=self.worker, open_timeout_s=self._open_timeout_s,
                    read_timeout_s=self._read_timeout_s, fanout=PacketFanout(camera_id, keep_gop=False))
            sampler.start()
            (analysis or source).fanout.subscribe(sampler)
        self.live.add(camera_id, source.fanout)
        source.start()
        if analysis is not None:
            analysis.start()

    async def remove_camera(self, camera_id: str) -> None:
        """Close a camera while running (removed or disabled): its live viewers end, its connection closes.
        ``KeyError`` if unknown."""
        source = self._sources.pop(camera_id)
        analysis = self._analysis.pop(camera_id, None)
        self.live.remove(camera_id)
        await asyncio.gather(*(s.stop() for s in (source, analysis) if s is not None))
        sampler = self._samplers.pop(camera_id, None)
        if sampler is not None:
            sampler.stop(timeout=0)
        self._slots.pop(camera_id, None)

    def subscribe_packets(self, camera_id: str, sink: Any, *, replay_gop: bool = True) -> None:
        """Add a packet consumer to ``camera_id``'s one connection (e.g. an evidence clip ring buffer); it is called
        on the event loop and must not block. ``KeyError`` if unknown."""
        self._sources[camera_id].fanout.subscribe(sink, replay_gop=replay_gop)

    def latest_frame(self, camera_id: str) -> Frame | None:
        """The newest analysed picture of ``camera_id`` (None before the first); ``KeyError`` if unknown."""
        return self._slots[camera_id].get()

    def status(self, camera_id: str) -> CameraStatus:
        """The current status of ``camera_id``; ``KeyError`` if unknown."""
        status = self._sources[camera_id].status()
        sampler = self._samplers.get(camera_id)
        if sampler is None:
            return status
        slot = self._slots[camera_id]
        # Unread pictures are not drops: citywall samples at twice the detection rate (see citywall/builders/worker.py).
        status.extra.update(sampled=sampler.decoded, sample_drops=sampler.dropped, unread=slot.overwritten,
                            decode_errors=sampler.decode_errors, decode_cpu_s=round(sampler.decode_cpu_s, 2))
        analysis = self._analysis.get(camera_id)
        if analysis is not None:  # the sub-stream analysed: its own state, so a dead one is not hidden
            sub = analysis.status()
            status.extra.update(analysis_state=sub.state, analysis_error=sub.error)
            if sub.state == "online":
                status.extra.update(analysis_size=f"{sub.width}x{sub.height}")
        return status

    def statuses(self) -> list[CameraStatus]:
        """The current status of every camera."""
        return [self.status(cid) for cid in self._sources]

    def status_updates(self) -> AsyncIterator[CameraStatus]:
        """Every camera's current status at once, then each change as it happens and every camera again every
        ``heartbeat_s``. Ends when the service stops. Each reader has its own bounded queue."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for status in self.statuses():
            self._put(queue, status)
        if self._stopped:
            self._put(queue, _STOP, force=True)
        else:
            self._readers.add(queue)
        return self._iterate(queue)

    async def _iterate(self, queue: asyncio.Queue[Any]) -> AsyncIterator[CameraStatus]:
        try:
            while True:
                item = await queue.get()
                if item is _STOP:
                    return
                yield item
        finally:
            self._readers.discard(queue)

    def stats(self) -> dict[str, Any]:
        """Counters for health endpoints: per camera packets, sink errors, sampler and relay figures."""
        live = self.live.stats()
        out: dict[str, Any] = {"status_drops": self.status_drops, "cameras": {}}
        for cid, source in self._sources.items():
            entry: dict[str, Any] = {"packets": source.fanout.packets, "sink_errors": source.fanout.sink_errors,
                                     "live": live[cid]}
            sampler = self._samplers.get(cid)
            if sampler is not None:
                entry.update(sampled=sampler.decoded, sample_queue_drops=sampler.dropped,
                             slot_overwritten=self._slots[cid].overwritten, decode_errors=sampler.decode_errors,
                             decode_cpu_s=sampler.decode_cpu_s + sampler.convert_cpu_s,
                             decode_skipped=sampler.skipped, sampler=sampler.stats())
                if cid in self._analysis:
                    entry["analysis_packets"] = self._analysis[cid].fanout.packets
            out["cameras"][cid] = entry
        return out

    # -- internals -----------------------------------------------------------------------------------------------
    def _broadcast(self, status: CameraStatus) -> None:
        if self._stopped:
            return
        for queue in self._readers:
            self._put(queue, status)

    def _put(self, queue: asyncio.Queue[Any], item: Any, force: bool = False) -> None:
        while queue.qsize() >= self._status_queue_size:
            queue.get_nowait()  # the oldest update goes; a newer one about the same camera follows
            if not force:
                self.status_drops += 1
        queue.put_nowait(item)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            statuses = self.statuses()
            for queue in self._readers:
                for status in statuses:
                    self._put(queue, status)
