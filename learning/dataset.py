"""The reviewers' labels as a YOLO dataset, and the retention rule of the labelled snapshots.

:func:`export_dataset` writes ``images/{train,val}/``, ``labels/{train,val}/`` (one ``class cx cy w h`` line per
box, normalised; an empty file for a frame with nothing in it), ``data.yaml`` (every ``learning.classes`` class in
its fixed order, so class indices mean the same in every export) and ``summary.json``. Validation is honest: the
split is by *camera and day* — all frames of one camera on one day fall on the same side — so near-identical
frames of the same scene never sit on both sides. Groups are ordered by a hash of ``camera/day`` and the first
``val_share`` of them (at least one, when there are two or more) are held back. Before that, near-identical
frames of one camera (64-bit difference hash of a 9x8 grey thumbnail within ``dedupe_bits`` bits of a frame
already kept) are dropped, the oldest kept.

:func:`prune` applies ``learning.retention_days`` and ``learning.retention_bytes``: labels whose frame is older,
then the oldest beyond the byte budget, are removed with their snapshot, and counted. Time comes in as ``now``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from learning.classes import CLASS_IDS, INDEX
from learning.labels import LabelStore, ReviewLabel


class DatasetError(ValueError):
    """The dataset cannot be written (no labels, an output folder that is not empty …)."""


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: a 9x8 grey thumbnail, one bit per horizontal neighbour pair (left brighter)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, :-1] > small[:, 1:]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _day(at: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d")


def split_groups(keys: list[str], val_share: float) -> set[str]:
    """The (camera/day) group keys held back for validation: ordered by a stable hash, the first
    ``ceil(val_share * n)`` (at least one and at most n − 1 when there are two groups or more; none for one)."""
    unique = sorted(set(keys), key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    if len(unique) < 2:
        return set()
    n_val = min(len(unique) - 1, max(1, math.ceil(val_share * len(unique))))
    return set(unique[:n_val])


@dataclass
class ExportSummary:
    out: str
    images: dict[str, int] = field(default_factory=dict)
    """split → frames written."""
    boxes: dict[str, dict[str, int]] = field(default_factory=dict)
    """split → class → boxes."""
    frames_with: dict[str, dict[str, int]] = field(default_factory=dict)
    """split → class → frames with at least one such box."""
    groups: dict[str, list[str]] = field(default_factory=dict)
    """split → the camera/day groups in it."""
    duplicates: int = 0
    """Near-identical frames dropped."""
    missing: int = 0
    """Labels whose snapshot file was gone or unreadable."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _yolo_lines(label: ReviewLabel) -> list[str]:
    lines = []
    for b in label.boxes:
        x1, y1, x2, y2 = b.box
        lines.append(f"{INDEX[b.cls]} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return lines


def export_dataset(labels: list[ReviewLabel], root: Path, out: Path, *, tz: str = "Asia/Shanghai",
                   val_share: float = 0.2, dedupe_bits: int = 4) -> ExportSummary:
    """Write the YOLO dataset of ``labels`` (snapshots under ``root``) into ``out`` (new or empty)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} is not empty: export into a new folder")
    if not labels:
        raise DatasetError("no reviewed labels to export (label objects in the review console first)")
    zone = ZoneInfo(tz)
    summary = ExportSummary(out=str(out))
    kept: list[tuple[ReviewLabel, Path]] = []
    hashes: dict[str, list[int]] = defaultdict(list)
    for label in sorted(labels, key=lambda lab: (lab.frame_at, lab.alarm_id)):
        path = Path(root) / label.snapshot
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            summary.missing += 1
            continue
        h = dhash(image)
        if any(hamming(h, other) <= dedupe_bits for other in hashes[label.camera_id]):
            summary.duplicates += 1
            continue
        hashes[label.camera_id].append(h)
        kept.append((label, path))
    if not kept:
        raise DatasetError(f"none of the {len(labels)} labels has its snapshot any more")
    group = {lab.alarm_id: f"{lab.camera_id}/{_day(lab.frame_at, zone)}" for lab, _ in kept}
    val_groups = split_groups(list(group.values()), val_share)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    frames: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    images: Counter[str] = Counter()
    groups: dict[str, set[str]] = {"train": set(), "val": set()}
    for label, path in kept:
        split = "val" if group[label.alarm_id] in val_groups else "train"
        name = f"{label.camera_id}-{label.alarm_id}"
        dst = out / "images" / split / f"{name}{path.suffix or '.jpg'}"
        try:
            os.link(path, dst)
        except OSError:  # another file system
            shutil.copyfile(path, dst)
        lines = _yolo_lines(label)
        (out / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""),
                                                            encoding="utf-8")
        images[split] += 1
        groups[split].add(group[label.alarm_id])
        counts[split].update(b.cls for b in label.boxes)
        frames[split].update({b.cls for b in label.boxes})
    summary.images = dict(images)
    summary.boxes = {s: {c: counts[s][c] for c in CLASS_IDS if counts[s][c]} for s in counts}
    summary.frames_with = {s: {c: frames[s][c] for c in CLASS_IDS if frames[s][c]} for s in frames}
    summary.groups = {s: sorted(g) for s, g in groups.items()}
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASS_IDS))
    val_dir = "images/val" if images["val"] else "images/train"  # one group only: ultralytics needs a val set
    (out / "data.yaml").write_text(
        f"# citywall dataset export: reviewers' labels, split by camera and day (see summary.json)\n"
        f"path: {out.resolve()}\ntrain: images/train\nval: {val_dir}\nnames:\n{names}\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    return summary


@dataclass(frozen=True)
class PruneReport:
    too_old: int
    over_budget: int
    bytes_freed: int
    bytes_kept: int


def prune(labels: LabelStore, *, now: float, retention_days: float, retention_bytes: int) -> PruneReport:
    """Remove labelled snapshots (rows and files) older than ``retention_days``, then the oldest beyond
    ``retention_bytes`` in all."""
    every = labels.all()
    cutoff = now - retention_days * 86_400
    old = [lab for lab in every if lab.frame_at < cutoff]
    rest = [lab for lab in every if lab.frame_at >= cutoff]
    total = sum(lab.bytes for lab in rest)
    over: list[ReviewLabel] = []
    for lab in rest:  # oldest first
        if total <= retention_bytes:
            break
        over.append(lab)
        total -= lab.bytes
    gone = old + over
    for lab in gone:
        with_path = labels.root / lab.snapshot
        with_path.unlink(missing_ok=True)
    labels.remove([lab.alarm_id for lab in gone])
    return PruneReport(len(old), len(over), sum(lab.bytes for lab in gone), total)
