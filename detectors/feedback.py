"""Reviewer feedback: an alarm rejected as a false positive stops the same object in the same place firing again.

A ``Rejection`` keeps where the rejected alarm was (camera, zone, event, normalised box) and what it looked
like (``crop_signature``: a hue/saturation histogram of the box crop — robust to lighting, cheap to compare).
``SuppressionList.match`` says whether a candidate is "the same object in the same place": same camera and
zone (and event), box overlap ≥ ``iou`` (or one box mostly inside the other) and appearance correlation
≥ ``similarity``. A *different* object put in the same place still fires; the same object moved elsewhere
fires too. Rejections expire after ``ttl_s``.

Pure apart from ``save``/``load`` (a JSON file written atomically) and :class:`RejectionFollower` (reads the
rejected alarm's clean snapshot); time comes in as ``now``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

Box = tuple[float, float, float, float]

_H_BINS, _S_BINS = 18, 8


def crop_signature(image: np.ndarray, box: Box) -> np.ndarray:
    """float32 (_H_BINS * _S_BINS,): L1-normalised hue/saturation histogram of the ``box`` (normalised xyxy)
    crop of a BGR uint8 ``image``; all zeros for an empty crop."""
    h, w = image.shape[:2]
    x1, y1 = int(max(0.0, box[0]) * w), int(max(0.0, box[1]) * h)
    x2, y2 = int(np.ceil(min(1.0, box[2]) * w)), int(np.ceil(min(1.0, box[3]) * h))
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return np.zeros(_H_BINS * _S_BINS, np.float32)
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [_H_BINS, _S_BINS], [0, 180, 0, 256]).reshape(-1)
    total = float(hist.sum())
    return (hist / total).astype(np.float32) if total > 0 else hist.astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two signatures (1 = same distribution of colours; ≤ 0 = unrelated)."""
    if not a.any() or not b.any():
        return 0.0
    return float(cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_CORREL))


def _overlap(a: Box, b: Box) -> tuple[float, float]:
    """(IoU, intersection over the smaller box)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    aa = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    ab = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = aa + ab - inter
    smaller = min(aa, ab)
    return (inter / union if union > 0 else 0.0), (inter / smaller if smaller > 0 else 0.0)


@dataclass(frozen=True)
class Rejection:
    """One alarm a reviewer rejected as a false positive."""

    camera_id: str
    zone_id: str
    event: str
    box: Box
    signature: np.ndarray
    at: float
    """When it was rejected (unix s)."""
    alarm_id: str = ""
    reviewer: str = ""

    def to_dict(self) -> dict:
        return {"camera_id": self.camera_id, "zone_id": self.zone_id, "event": self.event,
                "box": [round(v, 5) for v in self.box], "signature": [round(float(v), 6) for v in self.signature],
                "at": self.at, "alarm_id": self.alarm_id, "reviewer": self.reviewer}

    @classmethod
    def from_dict(cls, d: dict) -> Rejection:
        missing = [k for k in ("camera_id", "zone_id", "event", "box", "signature", "at") if k not in d]
        if missing:
            raise ValueError(f"rejection record lacks {', '.join(missing)}")
        box = tuple(float(v) for v in d["box"])
        if len(box) != 4:
            raise ValueError(f"rejection box must have 4 numbers; got {d['box']!r}")
        return cls(str(d["camera_id"]), str(d["zone_id"]), str(d["event"]), box,
                   np.asarray(d["signature"], np.float32), float(d["at"]), str(d.get("alarm_id", "")),
                   str(d.get("reviewer", "")))


class SuppressionList:
    """Rejected alarms, and the test whether a new candidate is one of them again; see the module docstring."""

    def __init__(self, *, iou: float = 0.5, containment: float = 0.8, similarity: float = 0.7,
                 ttl_s: float = 7 * 86400.0, max_entries: int = 10_000) -> None:
        self.iou = iou
        self.containment = containment
        self.similarity = similarity
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: list[Rejection] = []
        self._lock = threading.Lock()  # rejections arrive on the event loop while detection matches in its thread
        self.suppressed = 0
        """Candidates suppressed so far (a counter for stats)."""

    def __len__(self) -> int:
        return len(self._items)

    def add(self, rejection: Rejection) -> None:
        """Record a rejection (the oldest goes when ``max_entries`` is reached)."""
        with self._lock:
            self._items.append(rejection)
            if len(self._items) > self.max_entries:
                del self._items[0]

    def reject(self, *, camera_id: str, zone_id: str, event: str, box: Box, image: np.ndarray, at: float,
               alarm_id: str = "", reviewer: str = "") -> Rejection:
        """Record a rejection of the object in ``box`` of ``image`` (the alarm's clean snapshot)."""
        r = Rejection(camera_id, zone_id, event, (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                      crop_signature(image, box), at, alarm_id, reviewer)
        self.add(r)
        return r

    def count_suppressed(self) -> None:
        """Count one suppressed candidate (cameras are analysed on several threads)."""
        with self._lock:
            self.suppressed += 1

    def has(self, camera_id: str) -> bool:
        """Whether any rejection concerns ``camera_id`` (callers skip computing signatures otherwise)."""
        return any(r.camera_id == camera_id for r in self._items)

    def match(self, *, camera_id: str, zone_id: str, event: str, box: Box, signature: np.ndarray,
              now: float) -> Rejection | None:
        """The live rejection this candidate repeats, or None."""
        with self._lock:
            self._items = [r for r in self._items if now - r.at <= self.ttl_s]
            items = list(self._items)
        for r in items:
            if (r.camera_id, r.zone_id, r.event) != (camera_id, zone_id, event):
                continue
            iou, cont = _overlap(r.box, box)
            if iou < self.iou and cont < self.containment:
                continue
            if similarity(r.signature, signature) >= self.similarity:
                return r
        return None

    def save(self, path: str | Path) -> None:
        """Write all rejections as JSON, atomically (write a temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps([r.to_dict() for r in self._items]), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, path: str | Path) -> int:
        """Add the rejections saved at ``path`` (none if it does not exist); returns how many were read."""
        path = Path(path)
        if not path.exists():
            return 0
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON rejection list ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of rejections")
        for i, d in enumerate(records):
            try:
                self.add(Rejection.from_dict(d))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}: rejection #{i}: {exc}") from None
        return len(records)


class RejectionFollower:
    """Applies reviewers' rejections (``cases.review.AlarmRejected`` dicts from stream ``alarm_rejections``) to a
    ``SuppressionList``: the object's look comes from the alarm's clean snapshot under ``evidence_dir``. Each alarm
    counts once, so replaying the stream from its start at every start-up rebuilds the list."""

    def __init__(self, suppressions: SuppressionList, evidence_dir: str | Path) -> None:
        self.suppressions = suppressions
        self.evidence_dir = Path(evidence_dir).resolve()
        self.applied = 0
        self.skipped = 0
        self._seen: set[str] = set()

    def apply(self, data: dict) -> Rejection | None:
        """One rejection; None (counted as skipped) when it is a repeat, malformed, or its snapshot is unreadable."""
        try:
            alarm_id = str(data["alarm_id"])
            box = tuple(float(v) for v in data["boxes"][0])
            rel = str(data["snapshot_clean"])
            at = float(data["at"])
            camera_id, zone_id, event = str(data["camera_id"]), str(data["zone_id"]), str(data["event"])
        except (KeyError, IndexError, TypeError, ValueError):
            self.skipped += 1
            return None
        if alarm_id in self._seen or len(box) != 4:
            self.skipped += 1
            return None
        path = (self.evidence_dir / rel).resolve()
        image = cv2.imread(str(path)) if path.is_relative_to(self.evidence_dir) and path.is_file() else None
        if image is None:
            self.skipped += 1
            return None
        self._seen.add(alarm_id)
        self.applied += 1
        return self.suppressions.reject(camera_id=camera_id, zone_id=zone_id, event=event, box=box,
                                        image=image, at=at, alarm_id=alarm_id, reviewer=str(data.get("reviewer", "")))
