"""Reviewers' labels: what each decided alarm's objects are, on the clean full-resolution snapshot.

A label belongs to one reviewed alarm (``alarm_id``): the camera, the frame's time, the decision (confirm/reject),
who decided and when, the boxes (normalised ``x1, y1, x2, y2``) each with a class from ``learning.classes``, and
the clean snapshot (the frame without overlays) copied out of the evidence folder into the learning folder, so
that evidence retention and the dataset's own retention (``learning.dataset.prune``) are independent.

Table ``review_labels`` (a case-store migration), written through the store's transactions like the recording
index. :func:`parse_boxes` validates a client's boxes and names the bad field (``boxes[2].class``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from learning.classes import CLASS_IDS, JUDGEMENT_CLASS

MAX_BOXES = 64
MIN_SIDE = 0.002
"""Smallest box side, as a fraction of the frame (a click without a drag is no box)."""


class LabelError(ValueError):
    """A label that cannot be stored; ``field`` names what was wrong."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class LabelBox:
    cls: str
    """A ``learning.classes`` id."""
    box: tuple[float, float, float, float]
    """Normalised x1, y1, x2, y2 (0..1, x1 < x2, y1 < y2)."""

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "box": [round(v, 5) for v in self.box]}


@dataclass(frozen=True, slots=True)
class ReviewLabel:
    alarm_id: str
    camera_id: str
    frame_at: float
    """When the snapshot was taken (the alarm's time)."""
    decision: str
    decided_by: str
    decided_at: float
    snapshot: str
    """The clean snapshot, relative to the learning folder."""
    width: int
    height: int
    bytes: int
    boxes: tuple[LabelBox, ...]
    event: str = ""
    """The alarm's event (``vending`` …): what the reviewer confirmed or rejected."""
    alarm_boxes: tuple[tuple[float, float, float, float], ...] = ()
    """The boxes the alarm was raised on (normalised)."""

    def to_dict(self) -> dict[str, Any]:
        return {"alarm_id": self.alarm_id, "camera_id": self.camera_id, "frame_at": self.frame_at,
                "decision": self.decision, "decided_by": self.decided_by, "decided_at": self.decided_at,
                "snapshot": self.snapshot, "width": self.width, "height": self.height,
                "boxes": [b.to_dict() for b in self.boxes], "event": self.event,
                "alarm_boxes": [list(b) for b in self.alarm_boxes]}


def parse_boxes(value: Any) -> tuple[LabelBox, ...]:
    """``[{"class": "goods", "box": [x1, y1, x2, y2]}, ...]`` → boxes; :class:`LabelError` naming the bad field."""
    if not isinstance(value, list):
        raise LabelError("boxes", "must be a list of {class, box}")
    if len(value) > MAX_BOXES:
        raise LabelError("boxes", f"at most {MAX_BOXES} boxes, got {len(value)}")
    out = []
    for i, item in enumerate(value):
        where = f"boxes[{i}]"
        if not isinstance(item, dict):
            raise LabelError(where, "must be an object {class, box}")
        unknown = sorted(set(item) - {"class", "box"})
        if unknown:
            raise LabelError(f"{where}.{unknown[0]}", "unknown field (expected class and box)")
        cls = item.get("class")
        if cls not in CLASS_IDS:
            raise LabelError(f"{where}.class", f"must be one of {', '.join(CLASS_IDS)}, got {str(cls)[:40]!r}")
        box = item.get("box")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)):
            raise LabelError(f"{where}.box", "must be four numbers [x1, y1, x2, y2] in 0..1")
        x1, y1, x2, y2 = (float(v) for v in box)
        if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
            raise LabelError(f"{where}.box", "coordinates must lie in 0..1 (fractions of the frame)")
        if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
            raise LabelError(f"{where}.box", "needs x1 < x2 and y1 < y2 (a box, not a point or a line)")
        out.append(LabelBox(str(cls), (x1, y1, x2, y2)))
    return tuple(out)


def proposed_boxes(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The boxes a label starts from: the judgement's parts with their kinds, else the alarm's boxes with the
    judgement's kind (``other`` when there is none)."""
    judgement = (alarm.get("extra") or {}).get("judgement") or {}
    parts = judgement.get("parts") if isinstance(judgement, dict) else None
    out: list[dict[str, Any]] = []
    if isinstance(parts, list):
        for p in parts:
            if isinstance(p, dict) and isinstance(p.get("box"), list) and len(p["box"]) == 4:
                out.append({"class": JUDGEMENT_CLASS.get(str(p.get("kind")), "other"), "box": p["box"]})
    if not out:
        cls = JUDGEMENT_CLASS.get(str(judgement.get("kind")), "other") if isinstance(judgement, dict) else "other"
        out = [{"class": cls, "box": list(b)} for b in alarm.get("boxes") or [] if len(b) == 4]
    return out


_COLS = ("alarm_id, camera_id, frame_at, decision, decided_by, decided_at, snapshot, width, height, bytes, boxes, "
         "event, alarm_boxes")


def _label(r: Any) -> ReviewLabel:
    boxes = tuple(LabelBox(b["class"], tuple(b["box"])) for b in json.loads(r[10]))
    alarm_boxes = tuple(tuple(float(v) for v in b) for b in json.loads(r[12]))
    return ReviewLabel(str(r[0]), str(r[1]), float(r[2]), str(r[3]), str(r[4]), float(r[5]), str(r[6]), int(r[7]),
                       int(r[8]), int(r[9]), boxes, str(r[11]), alarm_boxes)  # type: ignore[arg-type]


class LabelStore:
    """Labels in ``store`` (a ``cases.store.CaseStore``), snapshots under ``root`` (the learning folder)."""

    def __init__(self, store: Any, root: str | Path) -> None:
        self.store = store
        self.root = Path(root)

    def save(self, *, alarm: dict[str, Any], decision: str, decided_by: str, decided_at: float,
             boxes: tuple[LabelBox, ...], evidence_dir: Path) -> ReviewLabel:
        """Store (or replace) the label of ``alarm``, copying its clean snapshot from ``evidence_dir``.
        :class:`LabelError` (field ``snapshot``) when the alarm has no readable clean snapshot."""
        rel = alarm.get("snapshot_clean")
        if not isinstance(rel, str) or not rel:
            raise LabelError("snapshot", "this alarm kept no clean snapshot (frame without overlays) to label")
        src = (Path(evidence_dir) / rel).resolve()
        if not src.is_relative_to(Path(evidence_dir).resolve()) or not src.is_file():
            raise LabelError("snapshot", f"the clean snapshot {rel} is not in the evidence folder any more")
        image = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise LabelError("snapshot", f"the clean snapshot {rel} is not a readable image")
        height, width = image.shape[:2]
        day = time.strftime("%Y-%m-%d", time.gmtime(float(alarm["at"])))
        snapshot = f"snapshots/{day}/{alarm['camera_id']}/{alarm['alarm_id']}{src.suffix or '.jpg'}"
        dst = self.root / snapshot
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(dst.suffix + ".part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        alarm_boxes = tuple(tuple(float(v) for v in b) for b in alarm.get("boxes") or () if len(b) == 4)
        label = ReviewLabel(str(alarm["alarm_id"]), str(alarm["camera_id"]), float(alarm["at"]), decision,
                            decided_by, decided_at, snapshot, int(width), int(height), dst.stat().st_size, boxes,
                            str(alarm.get("event", "")), alarm_boxes)  # type: ignore[arg-type]
        with self.store.transaction() as tx:
            tx.execute(f"INSERT INTO review_labels ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (alarm_id) DO UPDATE SET decision = excluded.decision, "
                       "decided_by = excluded.decided_by, decided_at = excluded.decided_at, "
                       "snapshot = excluded.snapshot, width = excluded.width, height = excluded.height, "
                       "bytes = excluded.bytes, boxes = excluded.boxes, event = excluded.event, "
                       "alarm_boxes = excluded.alarm_boxes",
                       (label.alarm_id, label.camera_id, label.frame_at, label.decision, label.decided_by,
                        label.decided_at, label.snapshot, label.width, label.height, label.bytes,
                        json.dumps([b.to_dict() for b in boxes]), label.event,
                        json.dumps([list(b) for b in alarm_boxes])))
        return label

    def get(self, alarm_id: str) -> ReviewLabel | None:
        with self.store.transaction() as tx:
            row = tx.execute(f"SELECT {_COLS} FROM review_labels WHERE alarm_id = ?", (alarm_id,)).fetchone()
        return _label(row) if row else None

    def all(self, *, since: float | None = None, until: float | None = None) -> list[ReviewLabel]:
        """Every label whose frame is in ``[since, until)``, oldest first."""
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        with self.store.transaction() as tx:
            rows = tx.execute(f"SELECT {_COLS} FROM review_labels ORDER BY frame_at, alarm_id").fetchall()
        return [lab for lab in map(_label, rows) if lo <= lab.frame_at < hi]

    def remove(self, alarm_ids: list[str]) -> None:
        """Forget labels (their snapshot files are the caller's to delete)."""
        with self.store.transaction() as tx:
            for alarm_id in alarm_ids:
                tx.execute("DELETE FROM review_labels WHERE alarm_id = ?", (alarm_id,))
