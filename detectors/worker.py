"""DetectionWorker: the asyncio adapter that feeds cameras' latest frames to their ``CameraAnalyzer`` and publishes.

Every ``interval_s`` it takes each camera's latest frame (skipping a ``seq`` it has already analysed), runs all
of that tick's analyses and evidence writes off the event loop (``asyncio.to_thread``; the cameras' analyses
spread over ``detection.analysis_threads`` threads) so the event loop never blocks on pixels, then publishes
each raised/cleared ``Alarm``. A crash in one camera's analysis is logged and counted and the other cameras go
on. Alarms that could not be published wait in a bounded outbox (oldest dropped and counted when full) and are
retried on the next tick, in order, so a Redis hiccup loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any

from broker.histogram import Histogram
from config.settings import Camera, Detection
from detectors.detections import Detections
from detectors.evidence import EvidenceWriter
from detectors.feedback import SuppressionList
from detectors.models import DetectorBackend
from detectors.pipeline import AnalysisStep, CameraAnalyzer, Observation
from messages.alarm import Alarm
from video_ingest.frames import Frame

log = logging.getLogger("citywall.detectors")


@dataclass
class CameraCounters:
    """Per-camera counters exported through ``DetectionWorker.stats``."""

    frames_analysed: int = 0
    frames_skipped: int = 0
    """Ticks where the camera had no frame or no new one."""
    errors: int = 0
    alarms_raised: int = 0
    alarms_cleared: int = 0
    last_seq: int | None = None
    analysis_ms_last: float = 0.0
    analysis_ms_total: float = 0.0

    def as_dict(self) -> dict[str, object]:
        avg = self.analysis_ms_total / self.frames_analysed if self.frames_analysed else 0.0
        return {
            "frames_analysed": self.frames_analysed,
            "frames_skipped": self.frames_skipped,
            "errors": self.errors,
            "alarms_raised": self.alarms_raised,
            "alarms_cleared": self.alarms_cleared,
            "last_seq": self.last_seq,
            "analysis_ms_last": round(self.analysis_ms_last, 2),
            "analysis_ms_avg": round(avg, 2),
        }


@dataclass
class _Totals:
    ticks: int = 0
    evidence_errors: int = 0
    published: int = 0
    publish_errors: int = 0
    outbox_dropped: int = 0
    tick_ms_last: float = 0.0
    model_calls: int = 0
    model_images: int = 0
    model_errors: int = 0
    clip_errors: int = 0
    cameras: dict[str, CameraCounters] = field(default_factory=dict)


class DetectionWorker:
    """Runs detection for ``cameras`` on frames from ``frames(camera_id)``; see the module docstring.

    ``timezone`` (an IANA name such as ``settings.timezone``) sets the local time of zone schedules and evidence
    folders; None uses the machine's local time.
    """

    def __init__(self, cameras: list[Camera], settings: Detection, evidence_dir: Path,
                 frames: Callable[[str], Frame | None], *, timezone: str | tzinfo | None = None,
                 outbox_size: int = 1000, backend: DetectorBackend | None = None,
                 clips: Callable[[str, str, float], str | None] | None = None,
                 suppressions: SuppressionList | None = None) -> None:
        self.settings = settings
        self.clips = clips
        self.suppressions = suppressions
        """Reviewer rejections shared by all cameras (``detectors.feedback``); add to it while running."""
        """``clips(camera_id, clip_id, at) -> path | None`` starts an evidence clip around an alarm (e.g.
        ``video_ingest.clip_buffer.ClipRecorder.record``); the path goes into ``alarm.extra['clip']``."""
        self.backend = backend
        """A model (``detectors.models``) asked about the tick's frames that have a stationary candidate in a
        zone, all cameras in one batched call."""
        self.frames = frames
        self._timezone = timezone
        self.evidence = EvidenceWriter(evidence_dir, timezone=timezone)
        self.analyzers: dict[str, CameraAnalyzer] = {
            cam.id: CameraAnalyzer(cam, settings, timezone=timezone, suppressions=suppressions) for cam in cameras
        }
        self._totals = _Totals(cameras={cam.id: CameraCounters() for cam in cameras})
        self.analysis_seconds = Histogram()
        """Analysis time per frame, every camera of this worker (the metrics page's detector latency)."""
        self._outbox: deque[Alarm] = deque()
        self._outbox_size = outbox_size
        self._analysed_at: dict[str, tuple[float, float]] = {}
        """Camera → (arrival time, stream time) of the last picture analysed."""
        self._pool = (ThreadPoolExecutor(max_workers=settings.analysis_threads, thread_name_prefix="analysis")
                      if settings.analysis_threads > 1 else None)
        self._timezone = timezone
        self._cameras_lock = asyncio.Lock()
        self._candidates: dict[str, tuple[float, list[list[float]]]] = {}

    def candidates(self, camera_id: str) -> tuple[float, list[list[float]]] | None:
        """The stationary candidates of ``camera_id``'s last analysed frame: ``(captured_at, [[x1, y1, x2, y2],
        …])`` normalised; None before the first (the admin's zone preview reads it)."""
        return self._candidates.get(camera_id)

    async def set_cameras(self, cameras: list[Camera], changed: Collection[str] = ()) -> None:
        """The running configuration changed (``admin.running``): analyse ``cameras`` from the next tick on.
        Cameras in ``changed`` (zones, stream) and new ones get a fresh analyser; the others keep their state."""
        async with self._cameras_lock:
            analyzers = {}
            for cam in cameras:
                keep = self.analyzers.get(cam.id)
                analyzers[cam.id] = keep if keep is not None and cam.id not in changed else CameraAnalyzer(
                    cam, self.settings, timezone=self._timezone, suppressions=self.suppressions)
            self.analyzers = analyzers
            self._totals.cameras = {cid: self._totals.cameras.get(cid) or CameraCounters() for cid in analyzers}
            for cid in list(self._analysed_at):
                if cid not in analyzers or cid in changed:
                    del self._analysed_at[cid]
                    self._candidates.pop(cid, None)

    # --- public ------------------------------------------------------------------------------------------

    def add_camera(self, camera: Camera) -> None:
        """Analyse ``camera`` from the next tick on (a cluster worker acquired it); its frames come from ``frames``."""
        self.analyzers[camera.id] = CameraAnalyzer(camera, self.settings, timezone=self._timezone,
                                                   suppressions=self.suppressions)
        self._totals.cameras[camera.id] = CameraCounters()

    def remove_camera(self, camera_id: str) -> None:
        """Stop analysing ``camera_id`` (released); a tick already in the analysis thread finishes with it."""
        self.analyzers.pop(camera_id, None)
        self._totals.cameras.pop(camera_id, None)
        self._analysed_at.pop(camera_id, None)

    async def run(self, publish: Callable[[Alarm], Awaitable[object]], stop: asyncio.Event) -> None:
        """Analyse every ``interval_s`` until ``stop`` is set, awaiting ``publish(alarm)`` for each alarm."""
        loop = asyncio.get_running_loop()
        log.info("detection running for %d cameras every %.1f s", len(self.analyzers), self.settings.interval_s)
        while not stop.is_set():
            started = loop.time()
            alarms = await self.tick()
            self._enqueue(alarms)
            await self._flush(publish)
            # Look twice per interval: the samplers deliver a picture per interval on their own clocks, and two
            # clocks of the same period beat (a picture missed now and then); a camera is still analysed at most
            # about once per interval (``tick``).
            delay = max(0.0, self.settings.interval_s / 2 - (loop.time() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        # One last attempt to hand over what is still waiting.
        await self._flush(publish)

    async def tick(self) -> list[Alarm]:
        """One round: collect new frames, analyse them in a worker thread; returns the alarms decided."""
        batch: list[tuple[str, Frame]] = []
        for cam_id, counters in self._totals.cameras.items():
            try:
                frame = self.frames(cam_id)
            except Exception:
                log.exception("frame source failed for camera %s", cam_id)
                counters.errors += 1
                continue
            if frame is None or frame.seq == counters.last_seq:
                counters.frames_skipped += 1
                continue
            taken, pts = frame.captured_at, frame.pts_s
            last_taken, last_pts = self._analysed_at.get(cam_id, (-1e18, -1e18))
            soon = 0.6 * self.settings.interval_s
            if 0 <= taken - last_taken < soon and 0 <= pts - last_pts < soon:
                # A picture from a moment after the last one analysed: wait for the next look. Both clocks must
                # say so: packets arrive with the network's and the event loop's jitter (a keyframe 0.45 s late,
                # the next one on time), and judging by arrival alone lost one picture in twenty-five at 64
                # cameras, while the stream's own time says a whole interval passed.
                continue
            self._analysed_at[cam_id] = (taken, pts)
            counters.last_seq = frame.seq
            batch.append((cam_id, frame))
        self._totals.ticks += 1
        if not batch:
            return []
        t0 = time.perf_counter()
        async with self._cameras_lock:  # set_cameras waits for the batch in hand
            # The analysers and counters of this batch, taken here on the event loop: a camera removed while the
            # thread runs (remove_camera) finishes this tick with its own objects.
            batch = [(c, f) for c, f in batch if c in self.analyzers]
            analyzers = {cam_id: self.analyzers[cam_id] for cam_id, _ in batch}
            cameras = {cam_id: self._totals.cameras[cam_id] for cam_id, _ in batch}
            alarms = await asyncio.to_thread(self._analyse_batch, batch, analyzers, cameras)
        self._totals.tick_ms_last = (time.perf_counter() - t0) * 1000.0
        return alarms

    def stats(self) -> dict[str, object]:
        """Counters: totals plus one dict per camera (frames analysed/skipped, errors, analysis ms)."""
        t = self._totals
        cams = {cid: c.as_dict() for cid, c in t.cameras.items()}
        analysed = sum(c.frames_analysed for c in t.cameras.values())
        total_ms = sum(c.analysis_ms_total for c in t.cameras.values())
        return {
            "ticks": t.ticks,
            "frames_analysed": analysed,
            "frames_skipped": sum(c.frames_skipped for c in t.cameras.values()),
            "errors": sum(c.errors for c in t.cameras.values()),
            "evidence_errors": t.evidence_errors,
            "alarms_raised": sum(c.alarms_raised for c in t.cameras.values()),
            "alarms_cleared": sum(c.alarms_cleared for c in t.cameras.values()),
            "published": t.published,
            "publish_errors": t.publish_errors,
            "outbox": len(self._outbox),
            "outbox_dropped": t.outbox_dropped,
            "analysis_ms_avg": round(total_ms / analysed, 2) if analysed else 0.0,
            "tick_ms_last": round(t.tick_ms_last, 2),
            "model_calls": t.model_calls,
            "model_images": t.model_images,
            "model_errors": t.model_errors,
            "clip_errors": t.clip_errors,
            "suppressed": self.suppressions.suppressed if self.suppressions is not None else 0,
            "cameras": cams,
        }

    # --- internals ---------------------------------------------------------------------------------------

    def _analyse_batch(self, batch: list[tuple[str, Frame]], analyzers: dict[str, CameraAnalyzer],
                       cameras: dict[str, CameraCounters]) -> list[Alarm]:
        """Runs in the worker thread: analysis + evidence for every frame of the tick.

        Two passes: every camera's stationary analysis first; then, if a model is configured, one batched call
        for the frames that have a candidate in a zone (gating: quiet frames cost the model nothing); then the
        rules. Both passes spread the cameras over ``analysis_threads`` threads (a camera's analyzer is used by
        one thread at a time; OpenCV and NumPy release the GIL in the pixel work); evidence is written here, in
        order, on this thread."""
        out: list[Alarm] = []
        observed = [o for o in self._map(lambda item: self._observe_one(item, analyzers, cameras), batch)
                    if o is not None]
        model: dict[str, Detections] = {}
        wanted = [(cam_id, frame) for cam_id, frame, obs in observed if obs.candidates]
        if self.backend is not None and wanted:
            try:
                dets = self.backend.detect([frame.image for _, frame in wanted])
                model = {cam_id: d for (cam_id, _), d in zip(wanted, dets, strict=False)}
                self._totals.model_calls += 1
                self._totals.model_images += len(wanted)
            except Exception:
                # Without the model the class-agnostic rules still decide; the count shows the trouble.
                self._totals.model_errors += 1
                log.exception("model %s failed on %d frames", getattr(self.backend, "name", "?"), len(wanted))
        steps = self._map(lambda o: self._decide_one(o, model.get(o[0]), analyzers, cameras), observed)
        for (cam_id, frame, _), step in zip(observed, steps, strict=True):
            if step is None:
                continue
            counters = cameras[cam_id]
            counters.frames_analysed += 1
            self.analysis_seconds.observe(step.analysis_ms / 1000.0)
            counters.analysis_ms_last = step.analysis_ms
            counters.analysis_ms_total += step.analysis_ms
            for finding in step.findings:
                alarm = finding.alarm
                try:
                    annotated, clean = self.evidence.write(alarm, frame.image, [finding.zone.polygon])
                    alarm = replace(alarm, snapshot=annotated, snapshot_clean=clean)
                except Exception:
                    # An alarm without pictures is still worth filing; the count shows the disk trouble.
                    self._totals.evidence_errors += 1
                    log.exception("evidence for alarm %s could not be written", alarm.alarm_id)
                if self.clips is not None:
                    clip_id = alarm.alarm_id if alarm.phase == "raised" else f"{alarm.alarm_id}-cleared"
                    try:
                        clip = self.clips(cam_id, clip_id, alarm.at)
                    except Exception:
                        clip = None
                        log.exception("evidence clip for alarm %s could not be started", alarm.alarm_id)
                    if clip is not None:
                        alarm = replace(alarm, extra={**alarm.extra, "clip": clip})
                    else:
                        self._totals.clip_errors += 1
                if alarm.phase == "raised":
                    counters.alarms_raised += 1
                else:
                    counters.alarms_cleared += 1
                log.info("alarm %s %s camera=%s zone=%s event=%s dwell=%.0fs", alarm.alarm_id, alarm.phase,
                         alarm.camera_id, alarm.zone_id, alarm.event, alarm.dwell_s)
                out.append(alarm)
        return out

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``[fn(x) for x in items]``, spread over the analysis threads when there is more than one item."""
        if self._pool is None or len(items) < 2:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))

    def _observe_one(self, item: tuple[str, Frame], analyzers: dict[str, CameraAnalyzer],
                     cameras: dict[str, CameraCounters]) -> tuple[str, Frame, Observation] | None:
        cam_id, frame = item
        try:
            obs = analyzers[cam_id].observe(frame.image, frame.captured_at)
            self._candidates[cam_id] = (frame.captured_at, obs.tracked.xyxy.round(4).tolist())
            return cam_id, frame, obs
        except Exception:
            cameras[cam_id].errors += 1
            log.exception("analysis failed for camera %s (seq %d)", cam_id, frame.seq)
            return None

    def _decide_one(self, item: tuple[str, Frame, Observation], model: Detections | None,
                    analyzers: dict[str, CameraAnalyzer], cameras: dict[str, CameraCounters]) -> AnalysisStep | None:
        cam_id, frame, obs = item
        try:
            return analyzers[cam_id].decide(obs, frame.image, frame.captured_at, model)
        except Exception:
            cameras[cam_id].errors += 1
            log.exception("analysis failed for camera %s (seq %d)", cam_id, frame.seq)
            return None

    def _enqueue(self, alarms: list[Alarm]) -> None:
        for alarm in alarms:
            if len(self._outbox) >= self._outbox_size:
                dropped = self._outbox.popleft()
                self._totals.outbox_dropped += 1
                log.error("alarm outbox full; dropped %s %s", dropped.alarm_id, dropped.phase)
            self._outbox.append(alarm)

    async def _flush(self, publish: Callable[[Alarm], Awaitable[object]]) -> None:
        while self._outbox:
            alarm = self._outbox[0]
            try:
                await publish(alarm)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._totals.publish_errors += 1
                log.warning("publishing alarm %s failed (%s); %d waiting, retry next tick", alarm.alarm_id, exc,
                            len(self._outbox))
                return
            self._outbox.popleft()
            self._totals.published += 1
