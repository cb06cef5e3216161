"""RecordingService: recording wired for one process — repair, recorders on the cameras, the writer, the janitor.

What ``citywall up`` calls: ``build_recording(settings, store, camera_ids)`` → a service (None when
recording is off for every camera); ``await service.start(subscribe)`` repairs the index, starts the writer
thread and subscribes one :class:`recording.recorder.CameraRecorder` per camera through ``subscribe(camera_id,
sink)`` (``IngestService.subscribe_packets``); the janitor applies :func:`recording.policy.plan_deletions`
every ``janitor_interval_s`` and at once when the disk is full (asking for room: the larger of 5 % of what is
stored and four of the largest segments), then lets the writer resume. ``library`` is what the wall serves.
With ``publish`` (the bus's), a fault of the writer — disk full, a write error — is raised as a ``SystemAlarm`` on
``system_alarms`` within ``FAULT_CHECK_S`` and cleared when writing succeeds again (:mod:`recording.faults`).

A cluster worker (``citywall worker``) builds one with no cameras, starts it without the full repair and calls
:meth:`RecordingService.take_camera` / ``remove_camera`` as its leases come and go; a wall server without cameras
(``citywall wall``) serves :func:`build_library` — the same index and files, read where the disk is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from config import Settings
from messages.system import SystemAlarm
from recording.faults import fault_alarms
from recording.index import RecordingIndex, RepairReport
from recording.playback import RecordingLibrary
from recording.policy import Plan, RetentionRules, plan_deletions
from recording.recorder import CameraPolicy, CameraRecorder, SegmentWriter

log = logging.getLogger("citywall.recording")

DAY_S = 86400.0
SWEEP_OLDEST = 5000
FAULT_CHECK_S = 1.0
"""How often the writer's faults are compared with the system alarms published."""
"""Oldest segments the janitor reads per sweep for the quota and a full disk (the rest waits for the next)."""


def camera_policy(settings: Settings, camera_id: str) -> CameraPolicy:
    """A camera's policy: its override in ``recording.cameras``, else the section's values."""
    rec = settings.recording
    own = rec.cameras.get(camera_id)

    def pick(name: str) -> Any:
        value = getattr(own, name) if own is not None else None
        return getattr(rec, name) if value is None else value

    return CameraPolicy(mode=pick("mode"), segment_s=pick("segment_s"), pre_s=pick("pre_s"), post_s=pick("post_s"))


def retention_rules(settings: Settings) -> RetentionRules:
    rec = settings.recording
    return RetentionRules(
        default_retention_s=rec.retention_days * DAY_S,
        retention_s={cid: o.retention_days * DAY_S for cid, o in rec.cameras.items() if o.retention_days},
        quota_bytes=None if rec.quota_gb is None else int(rec.quota_gb * 1e9),
        hold_pre_s=rec.case_pre_s, hold_post_s=rec.case_post_s, keep_after_close_s=rec.keep_after_close_days * DAY_S)


class RecordingService:
    """See the module docstring."""

    def __init__(self, settings: Settings, store: Any, camera_ids: list[str], *, root: str | Path | None = None,
                 clock: Callable[[], float] = time.time,
                 publish: Callable[[SystemAlarm], Awaitable[Any]] | None = None, node: str = "up") -> None:
        rec = settings.recording
        self._default_mode = rec.mode
        self.root = Path(root) if root is not None else settings.storage.data_dir / "recordings"
        self.rules = retention_rules(settings)
        self.interval_s = rec.janitor_interval_s
        self.clock = clock
        self.index = RecordingIndex(store, self.root)
        self.library = RecordingLibrary(self.index, max_export_s=rec.max_export_s, clock=clock)
        self._full = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.writer = SegmentWriter(self.root, self.index, queue_size=rec.writer_queue, on_full=self._on_full)
        self.recorders = {cid: CameraRecorder(cid, self.writer, camera_policy(settings, cid)) for cid in camera_ids}
        self._task: asyncio.Task[None] | None = None
        self._fault_task: asyncio.Task[None] | None = None
        self._publish = publish
        self.node = node
        self.system_alarms: dict[str, SystemAlarm] = {}
        """Raised system alarms by kind, as last published (cleared ones are removed)."""
        self.repair_report: RepairReport | None = None
        self.last_plan: Plan | None = None
        self.deleted = 0
        self.deleted_bytes = 0

    @property
    def active(self) -> bool:
        """Whether any camera is recorded at all, or a camera added while running would be (the default mode)."""
        return self._default_mode != "off" or any(r.policy.mode != "off" for r in self.recorders.values())

    def add_camera(self, settings: Settings, camera_id: str, subscribe: Callable[[str, Any], None]) -> None:
        """A camera added or reconnected while running (``admin.running``): record it under ``settings``' policy
        from its connection's next packets (a recorder it had before ends its segment first)."""
        self.remove_camera(camera_id)
        recorder = CameraRecorder(camera_id, self.writer, camera_policy(settings, camera_id))
        self.recorders[camera_id] = recorder
        if recorder.policy.mode != "off":
            subscribe(camera_id, recorder)

    async def take_camera(self, settings: Settings, camera_id: str, subscribe: Callable[[str, Any], None]) -> None:
        """A cluster worker took ``camera_id`` over (its lease): repair that camera's part of the index — a segment
        the previous holder left open (killed) is completed — then record it (:meth:`add_camera`)."""
        await asyncio.to_thread(self.index.repair, [camera_id])
        self.add_camera(settings, camera_id, subscribe)

    def remove_camera(self, camera_id: str) -> None:
        """A camera removed or about to reconnect: end its segment; its recordings stay until retention."""
        recorder = self.recorders.pop(camera_id, None)
        if recorder is not None:
            recorder.close()

    async def start(self, subscribe: Callable[[str, Any], None], *, repair: bool = True) -> None:
        """Repair the index (``repair``; a cluster worker repairs each camera as it takes it over instead, see
        :meth:`take_camera`), start the writer and subscribe every recorded camera."""
        self._loop = asyncio.get_running_loop()
        self.root.mkdir(parents=True, exist_ok=True)
        if repair:
            self.repair_report = await asyncio.to_thread(self.index.repair)
        self.writer.start()
        for cid, recorder in self.recorders.items():
            if recorder.policy.mode != "off":
                subscribe(cid, recorder)
        self._task = asyncio.create_task(self._janitor(), name="recording-janitor")
        if self._publish is not None:
            self._fault_task = asyncio.create_task(self._faults(), name="recording-faults")

    async def stop(self) -> None:
        """End every segment (the recorders see their streams end first when ingest stops) and stop the writer."""
        for task in (self._task, self._fault_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for recorder in self.recorders.values():
            recorder.close()
        await asyncio.to_thread(self.writer.stop)

    def alarm(self, camera_id: str, at: float) -> None:
        """An alarm at ``camera_id`` (mode ``alarms`` records around it)."""
        recorder = self.recorders.get(camera_id)
        if recorder is not None:
            recorder.alarm(at)

    def clip_hook(self, record: Callable[[str, str, float], Any]) -> Callable[[str, str, float], Any]:
        """Wrap the detectors' evidence-clip call so that every alarm also reaches :meth:`alarm`."""
        def hook(camera_id: str, clip_id: str, at: float) -> Any:
            self.alarm(camera_id, at)
            return record(camera_id, clip_id, at)
        return hook

    def _on_full(self) -> None:  # writer thread
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._full.set)

    async def sweep(self, *, disk_full: bool = False) -> Plan:
        """Plan and carry out the deletions due now (see :mod:`recording.policy`); ``disk_full`` asks for room:
        the larger of 5 % of what is stored and four of the largest segments."""
        now = self.clock()
        shortest = min([self.rules.default_retention_s, *self.rules.retention_s.values()])
        facts, total, largest = await asyncio.to_thread(self.index.candidates, now - shortest, SWEEP_OLDEST)
        holds = await asyncio.to_thread(self.index.case_holds)
        free = max(total // 20, 4 * largest, 1) if disk_full else 0
        plan = plan_deletions(facts, holds, now, self.rules, free_bytes=free, total_bytes=total)
        if plan.delete:
            removed = await asyncio.to_thread(self.index.delete, plan.delete)
            self.deleted += removed
            self.deleted_bytes += plan.freed_bytes
            log.info("recording: deleted %d segment(s), %.1f MB (retention %d, quota %d, disk full %d; %d kept "
                     "for cases)", removed, plan.freed_bytes / 1e6, plan.retention, plan.quota, plan.disk_full,
                     plan.held)
        if plan.over_quota_bytes:
            log.error("recording: %.1f MB over the quota, all of it kept for cases (open, or closed less than "
                      "keep_after_close_days ago)", plan.over_quota_bytes / 1e6)
        self.last_plan = plan
        return plan

    async def _janitor(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.interval_s)
            try:
                if self._full.is_set():
                    self._full.clear()
                    plan = await self.sweep(disk_full=True)
                    if plan.freed_bytes:
                        self.writer.resume()
                    else:
                        log.error("recording: disk full and nothing may be deleted (cases hold it all); "
                                  "retrying in %g s", self.interval_s)
                else:
                    await self.sweep()
                    if self.writer.full:  # nothing freed last time: try again now that time has passed
                        self._full.set()
            except Exception:  # the janitor must keep running; the next round tries again
                log.exception("recording: retention sweep failed")

    async def _faults(self) -> None:
        assert self._publish is not None
        while True:
            await asyncio.sleep(FAULT_CHECK_S)
            for message in fault_alarms(self.system_alarms, self.writer.failing(), node=self.node, now=self.clock()):
                try:
                    await self._publish(message)
                except Exception as exc:  # the bus is down: the same change is tried again next round
                    log.warning("recording: system alarm %s %s not published: %s", message.kind, message.phase, exc)
                    break
                if message.phase == "raised":
                    self.system_alarms[message.kind] = message
                else:
                    self.system_alarms.pop(message.kind, None)

    def stats(self) -> dict[str, Any]:
        """Figures for /metrics."""
        return {"bytes_written": self.writer.bytes_written, "segments_written": self.writer.segments_written,
                "disk_full": self.writer.disk_full, "write_errors": self.writer.write_errors,
                "index_errors": self.writer.index_errors, "writer_queue": self.writer.queued,
                "stopped_disk_full": int(self.writer.full), "deleted": self.deleted,
                "deleted_bytes": self.deleted_bytes,
                "cameras": {cid: r.stats() for cid, r in self.recorders.items()}}


def recording_wanted(settings: Settings) -> bool:
    """Whether any camera is recorded (the default mode or a camera's own is not off)."""
    rec = settings.recording
    return rec.mode != "off" or any(o.mode not in (None, "off") for o in rec.cameras.values())


def build_library(settings: Settings, store: Any) -> RecordingLibrary | None:
    """What a wall server without cameras (``citywall wall``) serves: the recordings the workers write, when
    recording is on and ``<data_dir>/recordings`` is a readable directory here (a shared disk mounted at the same
    path; created when missing, as on a fresh site); else None (the recording routes answer 503), said in the
    log."""
    rec = settings.recording
    if not recording_wanted(settings):
        return None
    root = settings.storage.data_dir / "recordings"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("recording: cannot use %s here (%s)", root, exc)
    if not (root.is_dir() and os.access(root, os.R_OK | os.X_OK)):
        log.warning("recording: %s is not a readable directory here — playback and export are off on this wall "
                    "server (mount the workers' recording directory at the same path to serve them)", root)
        return None
    return RecordingLibrary(RecordingIndex(store, root), max_export_s=rec.max_export_s)


def build_recording(settings: Settings, store: Any, camera_ids: list[str], *,
                    publish: Callable[[SystemAlarm], Awaitable[Any]] | None = None,
                    node: str = "up") -> RecordingService | None:
    """The process's recording, or None when every camera's mode and the default are off; ``publish`` (the bus's)
    raises its faults on the wall."""
    service = RecordingService(settings, store, camera_ids, publish=publish, node=node)
    return service if service.active else None
