"""Tracking: give stationary blobs stable ids across samples so one stall is one event.

A greedy IoU tracker suited to objects that do not move: a blob is matched to the track whose last box
overlaps it most (IoU, or one box mostly inside the other — a stall whose umbrella splits off for a sample),
and a track survives ``max_missed`` samples without a match (a van driving in front of the goods).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.detections import Detections


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 (N, M): IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def box_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 (N, M): intersection over the smaller of each pair of boxes (1.0 when one holds the other)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(smaller > 0, ix * iy / np.maximum(smaller, 1e-12), 0.0).astype(np.float32)


@dataclass
class Track:
    """One tracked object."""

    track_id: int
    box: np.ndarray
    first_seen: float
    """Unix time the object first appeared (from the blob's own age where known)."""
    last_seen: float
    hits: int = 1
    missed: int = 0


class IoUTracker:
    """Greedy IoU tracker; ``update`` returns the detections with ``tracker_id`` and ``data['first_seen']``."""

    def __init__(self, *, iou_threshold: float = 0.25, containment_threshold: float = 0.8,
                 max_missed: int = 3) -> None:
        self.iou_threshold = iou_threshold
        self.containment_threshold = containment_threshold
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, detections: Detections, now: float) -> Detections:
        """Match ``detections`` (one sample at ``now``) to tracks; unmatched ones start new tracks."""
        tracks = list(self.tracks.values())
        n = len(detections)
        assigned = np.full(n, -1, np.int64)
        if n and tracks:
            old = np.stack([t.box for t in tracks])
            iou = box_iou(detections.xyxy, old)
            cont = box_containment(detections.xyxy, old)
            # Score: IoU, lifted for a box mostly inside the other, so splits and merges keep the id.
            score = np.where(cont >= self.containment_threshold, np.maximum(iou, self.iou_threshold), iou)
            used_tracks: set[int] = set()
            for flat in np.argsort(-score, axis=None):
                i, j = divmod(int(flat), len(tracks))
                if score[i, j] < self.iou_threshold:
                    break
                if assigned[i] >= 0 or j in used_tracks:
                    continue
                assigned[i] = tracks[j].track_id
                used_tracks.add(j)
        ages = detections.data.get("age_s")
        first_seen = np.zeros(n, np.float64)
        for i in range(n):
            since = now - float(ages[i]) if ages is not None else now
            if assigned[i] < 0:
                track = Track(self._next_id, detections.xyxy[i].copy(), since, now)
                self.tracks[track.track_id] = track
                self._next_id += 1
                assigned[i] = track.track_id
            else:
                track = self.tracks[int(assigned[i])]
                track.box = detections.xyxy[i].copy()
                track.last_seen = now
                track.hits += 1
                track.missed = 0
                track.first_seen = min(track.first_seen, since)
            first_seen[i] = track.first_seen
        matched = set(int(a) for a in assigned)
        for tid in list(self.tracks):
            if tid not in matched:
                track = self.tracks[tid]
                track.missed += 1
                if track.missed > self.max_missed:
                    del self.tracks[tid]
        data = dict(detections.data)
        data["first_seen"] = first_seen
        return Detections(xyxy=detections.xyxy, confidence=detections.confidence, class_id=detections.class_id,
                          tracker_id=assigned, mask=detections.mask, data=data)
