"""The worker role: the cameras this process holds, and everything that runs per camera.

One :class:`IngestService` (a connection per camera, keyframe sampling on a thread per camera, the live relays),
an evidence-clip ring buffer per camera, recording (when on and a case store holds its index), **one**
:class:`DetectionWorker` for every camera held — the model called once per tick on the batch of all of them —
with the reviewers' suppressions, the site model (swapped in without a restart) and, under ``citywall up``, the
shadow model; camera statuses published on the bus; the running configuration's camera changes applied.

``citywall up`` holds every enabled camera from the start; ``citywall worker`` (``leased=True``) starts with none
and holds or releases each as its leases change (:meth:`WorkerRole.hold`, :meth:`WorkerRole.release`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from admin.changes import ConfigChange
from admin.running import RunningConfig, process_applier
from broker.bus import Bus
from cases.store import CaseStore
from citywall.builders import Loop
from citywall.metrics import clip_metrics, detection_metrics, ingest_metrics, recording_metrics
from config import Camera, Settings
from detectors.feedback import RejectionFollower, SuppressionList
from detectors.models import load_backends
from detectors.worker import DetectionWorker
from learning import learning_root
from learning.registry import ModelRegistry
from learning.shadow import ShadowRunner, ShadowStore
from learning.switch import ModelSwitch
from messages.review import AlarmRejected
from recording.service import build_recording
from video_ingest.clip_buffer import ClipRecorder
from video_ingest.health import LoginPolicy
from video_ingest.service import IngestService
from video_ingest.source import SourceOptions

log = logging.getLogger("citywall.worker")

DemoUrl = Callable[[str], str]
"""A demo scene's name → the private RTSP server's URL for it (``citywall up`` only)."""


def no_demo(name: str) -> str:
    raise RuntimeError("demo:// camera without demo.enabled")


def resolve_sources(settings: Settings, demo_url: DemoUrl, *, analysis: bool = False) -> dict[str, str]:
    """camera id → the URL ingest opens (with ``analysis``: the ``analysis_url`` of the cameras that have one);
    ``demo://<scene>`` becomes the private RTSP server's URL."""
    sources: dict[str, str] = {}
    for cam in settings.cameras:
        if not cam.enabled or (analysis and not cam.analysis_url):
            continue
        url = (cam.analysis_url if analysis else None) or cam.substream_url or cam.url
        if url.startswith("demo://"):
            url = demo_url(url.removeprefix("demo://"))
        sources[cam.id] = url
    return sources


def camera_options(settings: Settings, cam: Camera) -> SourceOptions:
    """A camera's connection options: its own ``transport``/``login``, else ``ingest``'s defaults."""
    login = cam.login or settings.ingest.login
    return SourceOptions(transport=cam.transport or settings.ingest.transport,
                         login=LoginPolicy(tuple(login.backoff_s), login.max_attempts, login.window_s))


async def follow_rejections(bus: Bus, follower: RejectionFollower) -> None:
    """Reviewers' rejections → the detectors' suppression list (the whole stream, then each new one)."""
    async for entry in bus.tail([AlarmRejected.STREAM], {AlarmRejected.STREAM: "0"}):
        follower.apply(entry.data)


async def publish_statuses(ingest: IngestService, bus: Bus) -> None:
    """Every camera status update → the ``cameras`` state hash and the status stream."""
    async for status in ingest.status_updates():
        await bus.put_state("cameras", status.camera_id, status.to_dict())
        await bus.publish(status)


class WorkerRole:
    """The cameras of one process (see the module docstring). ``store``: the case store that indexes recordings
    (None: no recording); ``demo_url``: how ``demo://`` URLs resolve; ``node``: this process's name in the
    recording index; ``shadow``: run a candidate model in shadow when an admin starts one (needs ``store``)."""

    def __init__(self, settings: Settings, bus: Bus, *, name: str, store: CaseStore | None = None,
                 demo_url: DemoUrl = no_demo, leased: bool = False, node: str | None = None,
                 shadow: bool = False) -> None:
        self.settings = settings
        self.bus = bus
        self.name = name
        self.leased = leased
        self._demo_url = demo_url
        self.held: set[str] = set()
        """Leased only: the cameras whose lease this process holds (otherwise it runs every enabled camera)."""
        sources = self.sources(settings)
        # One picture per analysis interval (the detection loop looks twice per interval, so the two clocks do
        # not beat); cameras whose GOP fits in the interval are decoded at keyframes only.
        self.ingest = IngestService(sources, worker=name, sample_interval_s=settings.detection.interval_s,
                                    sample_mode=settings.detection.decode,
                                    analysis_sources=self.sources(settings, analysis=True),
                                    options={cid: camera_options(settings, settings.camera(cid)) for cid in sources})
        # Evidence clips: a packet ring buffer per camera on its one connection, cut around each alarm (remuxed).
        self.clips = ClipRecorder(settings.storage.evidence_dir, list(sources))
        # Recording (录像回放): segment files from the same connections, indexed in the case store (None when off);
        # a disk that fills up or a write that fails is a system alarm on the wall.
        self.recording = (build_recording(settings, store, list(sources), publish=bus.publish, node=node or name)
                          if store is not None else None)
        # Reviewers' rejections (stream alarm_rejections, replayed from its start) suppress the same object there.
        self.suppressions = SuppressionList()
        self._rejections = RejectionFollower(self.suppressions, settings.storage.evidence_dir)
        # One detection loop over every camera held: one batched model call per tick.
        self.detection = DetectionWorker([c for c in settings.cameras if c.enabled and c.id in sources],
                                         settings.detection, settings.storage.evidence_dir, self.latest_frame,
                                         timezone=settings.timezone, backend=load_backends(settings.detection.models),
                                         clips=self._clip, suppressions=self.suppressions)
        # The site model (learning/): the live version is swapped in without a restart when an admin promotes one
        # (a cluster's workers follow the learning folder, shared with the wall servers).
        self.site_model = ModelSwitch(ModelRegistry(learning_root(settings) / "models"), self.detection.backend,
                                      lambda backend: setattr(self.detection, "backend", backend))
        self.site_model.poll()
        # A candidate model in shadow (when an admin starts one): a frame per camera every interval, stored only.
        self.shadow = (ShadowRunner(self.site_model.registry, ShadowStore(store), self.latest_frame,
                                    lambda: self.ingest.camera_ids, queue=settings.learning.shadow.queue,
                                    clock=time.time)
                       if shadow and store is not None else None)
        self._recording_started = False

    def sources(self, settings: Settings, *, analysis: bool = False) -> dict[str, str]:
        """camera id → URL of the cameras this process runs under ``settings`` (see :func:`resolve_sources`)."""
        urls = resolve_sources(settings, self._demo_url, analysis=analysis)
        return {cid: url for cid, url in urls.items() if cid in self.held} if self.leased else urls

    def latest_frame(self, camera_id: str) -> Any:
        """The newest analysed picture of ``camera_id``; None before the first or for a camera not run here."""
        try:
            return self.ingest.latest_frame(camera_id)
        except KeyError:
            return None

    def stream_url(self, url: str) -> str:
        """A configured URL as ingest opens it (``demo://`` resolved)."""
        return self._demo_url(url.removeprefix("demo://")) if url.startswith("demo://") else url

    def _clip(self, camera_id: str, clip_id: str, at: float) -> str | None:
        if self.recording is not None:
            self.recording.alarm(camera_id, at)  # alarm-mode recording keeps the time around it
        return self.clips.record(camera_id, clip_id, at)

    async def start(self) -> None:
        """Open the cameras held now, their clip buffers and recording. A leased worker's recording repairs each
        camera's part of the index as it takes the camera over (:meth:`hold`), not the whole index here."""
        await self.ingest.start()
        for cid in self.ingest.camera_ids:
            self.ingest.subscribe_packets(cid, self.clips.buffer(cid))
        if self.recording is not None:
            self._recording_started = True
            await self.recording.start(self.ingest.subscribe_packets, repair=not self.leased)

    async def stop(self) -> None:
        """Stop recording, the clip buffers and every connection (after :meth:`Loops.close` of the loops)."""
        if self.recording is not None and self._recording_started:
            await self.recording.stop()
        self.clips.close()
        await self.ingest.stop()

    async def hold(self, camera_id: str) -> None:
        """Start running ``camera_id`` (its lease was acquired): its connection, clip buffer, analysis and (when on)
        its recording, after repairing its part of the recording index."""
        self.held.add(camera_id)
        settings = self.settings
        urls = self.sources(settings)
        if camera_id not in urls or camera_id in self.ingest.camera_ids:
            return  # disabled meanwhile (the lease goes in a round), or already open
        camera = settings.camera(camera_id)
        await self.ingest.add_camera(camera_id, urls[camera_id], options=camera_options(settings, camera),
                                     analysis_url=self.sources(settings, analysis=True).get(camera_id))
        self.ingest.subscribe_packets(camera_id, self.clips.buffer(camera_id))
        self.detection.add_camera(camera)
        if self.recording is not None:
            await self.recording.take_camera(settings, camera_id, self.ingest.subscribe_packets)

    async def release(self, camera_ids: Iterable[str]) -> None:
        """Stop running ``camera_ids`` (their leases were lost or given up): analysis and recording first, then
        the connections, together."""
        closing = []
        for cid in camera_ids:
            self.held.discard(cid)
            self.detection.remove_camera(cid)
            if self.recording is not None:
                self.recording.remove_camera(cid)
            if cid in self.ingest.camera_ids:
                closing.append(cid)
        await asyncio.gather(*(self.ingest.remove_camera(cid) for cid in closing), return_exceptions=True)
        for cid in closing:
            self.clips.remove(cid)

    async def _adopt(self, old: Settings, new: Settings, change: ConfigChange) -> None:
        self.settings = new

    def attach(self, running: RunningConfig) -> None:
        """Follow the running configuration (admin pages): cameras added, removed, reconnected or re-analysed
        reach ingest, the clip buffers, recording and detection — of the held cameras only when leased (new
        cameras are leased in the next rounds); the zone editor previews from detection."""
        running.add_applier(self._adopt)
        running.add_applier(process_applier(
            ingest=self.ingest, detection=self.detection, clips=self.clips, sources=self.sources,
            analysis_sources=lambda s: self.sources(s, analysis=True), options=camera_options,
            recording=self.recording))
        running.candidates = self.detection.candidates  # the zone editor's preview of what a zone would catch
        running.stream_url = self.stream_url

    def relays(self) -> dict[str, Loop]:
        """Loops that only relay input (statuses to the bus, rejections to the suppression list): cancelled at
        shutdown rather than asked."""
        return {"camera-status": lambda _stop: publish_statuses(self.ingest, self.bus),
                "rejections": lambda _stop: follow_rejections(self.bus, self._rejections)}

    def loops(self) -> dict[str, Loop]:
        """Loops asked to stop at shutdown (each finishes its current step)."""
        loops: dict[str, Loop] = {"detection": lambda stop: self.detection.run(self.bus.publish, stop),
                                  "site-model": self.site_model.run}
        if self.shadow is not None:
            loops["shadow-model"] = self.shadow.run
        return loops

    def metrics(self) -> list[Callable[[], Any]]:
        return [ingest_metrics(self.ingest), detection_metrics(self.detection), clip_metrics(self.clips)] + (
            [recording_metrics(self.recording)] if self.recording is not None else [])
