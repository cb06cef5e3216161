"""Shadow run: a candidate site model looks at the live cameras beside the live judgement, and decides nothing.

An admin starts it for a version (``POST /api/admin/models/{version}/shadow`` or ``citywall model shadow``); the plan
(version, start, end, interval) is ``<models>/shadow.json``. :class:`ShadowRunner`, run by ``citywall up``, takes
at most one frame per camera every ``learning.shadow.interval_s`` from the cameras' latest-frame slots (no extra
decode) into a bounded queue (``learning.shadow.queue``; a full queue drops the frame and counts it), runs the
candidate on one thread at a time, and stores its would-be detections (class, box, confidence) in the case store's
``shadow_detections`` for ``citywall model compare``. It stops by itself at the plan's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from learning.registry import ModelRegistry

log = logging.getLogger("citywall.learning.shadow")


@dataclass(frozen=True)
class ShadowPlan:
    version: str
    started_at: float
    until: float
    interval_s: float
    by: str

    def to_dict(self, now: float) -> dict[str, Any]:
        return {**asdict(self), "running": self.started_at <= now < self.until}

    def write(self, models_dir: Path) -> None:
        path = Path(models_dir) / "shadow.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def read(cls, models_dir: Path) -> ShadowPlan | None:
        try:
            data = json.loads((Path(models_dir) / "shadow.json").read_text(encoding="utf-8"))
            return cls(**data)
        except (FileNotFoundError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class ShadowDetection:
    version: str
    camera_id: str
    at: float
    boxes: tuple[dict[str, Any], ...]
    """``{"class", "box": [x1, y1, x2, y2], "confidence"}`` per detection (model class names)."""


class ShadowStore:
    """``shadow_detections`` rows in ``store`` (a ``cases.store.CaseStore``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def add(self, row: ShadowDetection) -> None:
        with self.store.transaction() as tx:
            tx.execute("INSERT INTO shadow_detections (version, camera_id, at, boxes) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (version, camera_id, at) DO NOTHING",
                       (row.version, row.camera_id, row.at, json.dumps(list(row.boxes))))

    def window(self, version: str, since: float, until: float) -> list[ShadowDetection]:
        with self.store.transaction() as tx:
            rows = tx.execute("SELECT version, camera_id, at, boxes FROM shadow_detections WHERE version = ? "
                              "AND at >= ? AND at < ? ORDER BY at, camera_id", (version, since, until)).fetchall()
        return [ShadowDetection(str(r[0]), str(r[1]), float(r[2]), tuple(json.loads(r[3]))) for r in rows]


def detections_to_boxes(dets: Any, names: list[str]) -> tuple[dict[str, Any], ...]:
    """A backend's ``Detections`` as stored boxes, by the model's own class names."""
    classes = dets.data.get("model_class") if dets.data else None
    out = []
    for i in range(len(dets)):
        cls = int(classes[i]) if classes is not None else int(dets.class_id[i])
        out.append({"class": names[cls] if 0 <= cls < len(names) else str(cls),
                    "box": [round(float(v), 5) for v in dets.xyxy[i]],
                    "confidence": round(float(dets.confidence[i]), 4)})
    return tuple(out)


class ShadowRunner:
    def __init__(self, registry: ModelRegistry, store: ShadowStore, latest_frame: Callable[[str], Any],
                 cameras: Callable[[], list[str]], *, queue: int = 8, clock: Callable[[], float]) -> None:
        self.registry = registry
        self.store = store
        self.latest_frame = latest_frame
        self.cameras = cameras
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=queue)
        self.clock = clock
        self.sampled = 0
        self.analysed = 0
        self.dropped = 0
        self.errors = 0
        self._backend: Any = None
        self._version: str | None = None
        self._last: dict[str, float] = {}

    def stats(self) -> dict[str, object]:
        return {"version": self._version, "sampled": self.sampled, "analysed": self.analysed,
                "dropped": self.dropped, "errors": self.errors, "queued": self.queue.qsize()}

    def sample(self, plan: ShadowPlan, now: float) -> None:
        """Put each camera's latest frame in the queue when its interval has passed; a full queue drops it."""
        for cam in self.cameras():
            if now - self._last.get(cam, float("-inf")) < plan.interval_s:
                continue
            frame = self.latest_frame(cam)
            if frame is None:
                continue
            self._last[cam] = now
            self.sampled += 1
            try:
                self.queue.put_nowait((cam, frame))
            except asyncio.QueueFull:
                self.dropped += 1

    def _load(self, version: str) -> Any:
        from detectors.models import OnnxBackend

        card = self.registry.card(version)
        # Every class the model knows (a role for each; the rules never see these boxes).
        names = [c["id"] for c in card["classes"]]
        return OnnxBackend(self.registry.onnx(version), {n: "goods" for n in names}, name=f"shadow-{version}",
                           confidence=0.25), names

    def analyse(self, version: str, cam: str, frame: Any) -> None:
        if version != self._version:
            self._backend, self._version = self._load(version), version
        backend, names = self._backend
        dets = backend.detect([frame.image])[0]
        at = float(frame.captured_at)
        self.store.add(ShadowDetection(version, cam, at, detections_to_boxes(dets, names)))
        self.analysed += 1

    async def run(self, stop: asyncio.Event, tick_s: float = 1.0) -> None:
        worker = asyncio.create_task(self._consume(stop))
        try:
            while not stop.is_set():
                plan = ShadowPlan.read(self.registry.root)
                now = self.clock()
                if plan is not None and plan.started_at <= now < plan.until:
                    self.sample(plan, now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick_s)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _consume(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            cam, frame = await self.queue.get()
            plan = ShadowPlan.read(self.registry.root)
            if plan is None:
                continue
            try:
                await asyncio.to_thread(self.analyse, plan.version, cam, frame)
            except Exception:
                self.errors += 1
                log.exception("shadow model %s failed on camera %s", plan.version, cam)
