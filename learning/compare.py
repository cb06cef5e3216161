"""``citywall model compare``: what a candidate site model would change, before anyone promotes it.

Two views, both pure over what they are given (detections come from a ``detect(image) -> [(class, box,
confidence)]`` callable, so the figures are the model's, not a re-implementation):

- **held-back split** (:func:`split_scores`): per class TP / FP / FN at IoU ≥ 0.5 on the dataset's ``val`` images
  (split by camera and day), precision and recall — for the candidate and, when one is live, the current model.
- **reviewed alarms of a window** (:func:`review_scores`): each alarm a reviewer decided in the window (its label
  has the clean frame, the event and the alarm's boxes) is run through the candidate; the candidate *keeps* the
  alarm when it sees one of the event's classes (:data:`EVENT_CLASSES`) on the alarm's box. Against the reviewers'
  decisions: confirmed and kept = kept, confirmed and not = lost (a real alarm the candidate would drop), rejected
  and kept = false kept, rejected and not = false removed; per event the live judgement's precision (confirmed /
  raised; its recall is 1 on its own alarms by definition) beside the candidate's precision and recall.
- **shadow** (:func:`shadow_sightings`): the candidate's detections of event classes on the live cameras during
  its shadow run, split into those near an alarm of that camera and those away from any (alarms it would add if
  the judgement then confirmed a stay: counted, not reviewed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from learning.classes import CLASS_IDS
from learning.labels import ReviewLabel
from learning.shadow import ShadowDetection

Box = tuple[float, float, float, float]
Detect = Callable[[np.ndarray], list[tuple[str, Box, float]]]

EVENT_CLASSES: dict[str, frozenset[str]] = {
    "vending": frozenset({"vendor_stall", "goods"}),
    "shop_front": frozenset({"goods", "vendor_stall"}),
    "road_occupation": frozenset({"goods", "vendor_stall", "rubbish"}),
    "exposed_rubbish": frozenset({"rubbish"}),
    "bike_parking": frozenset({"bike"}),
    "bin_overflow": frozenset({"bin", "rubbish"}),
}
"""The label classes that support an alarm of each event."""


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _overlaps(a: Box, b: Box) -> bool:
    """The same object for an alarm: IoU ≥ 0.1, or one box's centre inside the other."""
    def inside(p: Box, q: Box) -> bool:
        cx, cy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
        return q[0] <= cx <= q[2] and q[1] <= cy <= q[3]
    return iou(a, b) >= 0.1 or inside(a, b) or inside(b, a)


def _pr(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None}


def match(pred: list[tuple[str, Box, float]], truth: list[tuple[str, Box]], *, threshold: float = 0.5,
          ) -> dict[str, Counter[str]]:
    """Greedy per-class matching, highest confidence first: ``{"tp"|"fp"|"fn": Counter(class)}``."""
    out: dict[str, Counter[str]] = {"tp": Counter(), "fp": Counter(), "fn": Counter()}
    used: set[int] = set()
    for cls, box, _ in sorted(pred, key=lambda p: -p[2]):
        best, best_iou = -1, threshold
        for j, (tcls, tbox) in enumerate(truth):
            if j in used or tcls != cls:
                continue
            v = iou(box, tbox)
            if v >= best_iou:
                best, best_iou = j, v
        if best >= 0:
            used.add(best)
            out["tp"][cls] += 1
        else:
            out["fp"][cls] += 1
    for j, (tcls, _) in enumerate(truth):
        if j not in used:
            out["fn"][tcls] += 1
    return out


def read_yolo_labels(path: Path) -> list[tuple[str, Box]]:
    truth = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        c, cx, cy, w, h = line.split()
        x, y, ww, hh = float(cx), float(cy), float(w), float(h)
        truth.append((CLASS_IDS[int(c)], (x - ww / 2, y - hh / 2, x + ww / 2, y + hh / 2)))
    return truth


def split_scores(dataset: Path, detect: Detect) -> dict[str, Any]:
    """Per-class P/R of ``detect`` on the dataset's val images (IoU ≥ 0.5); ``{"classes": {...}, "all": {...},
    "images": n}``."""
    total: dict[str, Counter[str]] = {"tp": Counter(), "fp": Counter(), "fn": Counter()}
    images = sorted((Path(dataset) / "images" / "val").glob("*"))
    for img_path in images:
        image = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        m = match(detect(image), read_yolo_labels(Path(dataset) / "labels" / "val" / f"{img_path.stem}.txt"))
        for k in total:
            total[k].update(m[k])
    classes = sorted(set(total["tp"]) | set(total["fp"]) | set(total["fn"]), key=CLASS_IDS.index)
    return {"images": len(images),
            "classes": {c: _pr(total["tp"][c], total["fp"][c], total["fn"][c]) for c in classes},
            "all": _pr(sum(total["tp"].values()), sum(total["fp"].values()), sum(total["fn"].values()))}


def review_scores(labels: Iterable[ReviewLabel], root: Path, detect: Detect) -> dict[str, Any]:
    """The candidate against the reviewers' decisions on the window's reviewed alarms (see the module doc)."""
    per: dict[str, Counter[str]] = {}
    for lab in labels:
        wanted = EVENT_CLASSES.get(lab.event)
        if wanted is None or not lab.alarm_boxes:
            continue
        image = cv2.imread(str(Path(root) / lab.snapshot), cv2.IMREAD_COLOR)
        if image is None:
            continue
        seen = [box for cls, box, _ in detect(image) if cls in wanted]
        kept = any(_overlaps(a, b) for a in lab.alarm_boxes for b in seen)
        confirmed = lab.decision == "confirm"
        key = ("kept" if kept else "true_lost") if confirmed else ("false_kept" if kept else "false_removed")
        per.setdefault(lab.event, Counter())[key] += 1
    out: dict[str, Any] = {"events": {}}
    total: Counter[str] = Counter()
    for event, c in sorted(per.items()):
        total.update(c)
        out["events"][event] = _event_figures(c)
    out.update(_event_figures(total))
    return out


def _event_figures(c: Counter[str]) -> dict[str, Any]:
    raised = sum(c.values())
    confirmed = c["kept"] + c["true_lost"]
    cand = _pr(c["kept"], c["false_kept"], c["true_lost"])
    return {"alarms": raised, "confirmed": confirmed, "kept": c["kept"], "true_lost": c["true_lost"],
            "false_kept": c["false_kept"], "false_removed": c["false_removed"],
            "live_precision": round(confirmed / raised, 4) if raised else None,
            "candidate_precision": cand["precision"], "candidate_recall": cand["recall"]}


def shadow_sightings(rows: Iterable[ShadowDetection], alarms: Iterable[tuple[str, float]], *,
                     near_s: float = 120.0) -> dict[str, Any]:
    """Event-class detections of a shadow run per class: near an alarm of that camera (±``near_s``) or away from
    any (``alarms``: (camera, time) of the window's raised alarms)."""
    by_cam: dict[str, list[float]] = {}
    for cam, at in alarms:
        by_cam.setdefault(cam, []).append(at)
    wanted = frozenset().union(*EVENT_CLASSES.values())
    near: Counter[str] = Counter()
    away: Counter[str] = Counter()
    frames = 0
    for row in rows:
        frames += 1
        close = any(abs(row.at - t) <= near_s for t in by_cam.get(row.camera_id, ()))
        for b in row.boxes:
            if b["class"] in wanted:
                (near if close else away)[b["class"]] += 1
    return {"frames": frames, "near_alarms": dict(near), "away_from_alarms": dict(away)}


def onnx_detector(path: Path, names: list[str], *, confidence: float = 0.25) -> Detect:
    """A ``Detect`` over an ONNX export (``detectors.models.OnnxBackend``), boxes by the model's class names."""
    from detectors.models import OnnxBackend

    backend = OnnxBackend(path, {n: "goods" for n in names}, name=f"compare-{Path(path).parent.name}",
                          confidence=confidence)

    def detect(image: np.ndarray) -> list[tuple[str, Box, float]]:
        d = backend.detect([image])[0]
        cls = d.data["model_class"]
        return [(names[int(cls[i])], tuple(float(v) for v in d.xyxy[i]), float(d.confidence[i]))  # type: ignore[misc]
                for i in range(len(d))]
    return detect
