"""Reviewers' labels → YOLO dataset (learning.dataset) on a real case store (SQLite and PostgreSQL): box lines,
the split by camera and day, near-duplicate frames dropped, the summary per class, and the retention rule."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from learning.classes import CLASS_IDS
from learning.dataset import DatasetError, dhash, export_dataset, hamming, prune, split_groups
from learning.labels import LabelError, LabelStore, parse_boxes

pytestmark = pytest.mark.every_backend
DAY = 86_400.0
T0 = 1_773_198_000.0  # 2026-03-11 10:20 +08:00


def _frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8), (320, 180), interpolation=cv2.INTER_NEAREST)


def _label(labels: LabelStore, evidence, n: int, camera: str, at: float, image: np.ndarray, boxes) -> None:
    rel = f"{camera}/alarm-{n}-clean.jpg"
    (evidence / camera).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(evidence / rel), image)
    alarm = {"alarm_id": f"alarm-{n}", "camera_id": camera, "at": at, "snapshot_clean": rel}
    labels.save(alarm=alarm, decision="confirm", decided_by="monitor", decided_at=at + 60,
                boxes=parse_boxes(boxes), evidence_dir=evidence)


def test_export_splits_by_camera_and_day_and_drops_near_duplicates(store, tmp_path):
    evidence, root = tmp_path / "evidence", tmp_path / "learning"
    labels = LabelStore(store, root)
    stall = [{"class": "vendor_stall", "box": [0.1, 0.5, 0.3, 0.9]}, {"class": "person", "box": [0.3, 0.4, 0.4, 0.9]}]
    bike = [{"class": "bike", "box": [0.6, 0.6, 0.8, 0.9]}]
    n = 0
    for day in range(3):
        for camera in ("cam-a", "cam-b"):
            for k in range(2):
                n += 1
                _label(labels, evidence, n, camera, T0 + day * DAY + k * 600, _frame(n), stall if k == 0 else bike)
    # A near-identical frame of cam-a (a little noise on the same scene) and one of cam-b that is the same
    # picture as a cam-a frame (another camera: kept).
    noisy = np.clip(_frame(1).astype(np.int16) + 3, 0, 255).astype(np.uint8)
    _label(labels, evidence, 100, "cam-a", T0 + 30, noisy, bike)
    _label(labels, evidence, 101, "cam-b", T0 + 40, _frame(1), [])
    assert hamming(dhash(noisy), dhash(_frame(1))) <= 4

    out = tmp_path / "ds"
    summary = export_dataset(labels.all(), root, out, val_share=0.2)
    assert summary.duplicates == 1 and summary.missing == 0
    assert summary.images["train"] + summary.images["val"] == 13
    # Six camera/day groups; ceil(0.2 * 6) = 2 held back, and no group on both sides.
    assert len(summary.groups["val"]) == 2 and len(summary.groups["train"]) == 4
    assert not set(summary.groups["val"]) & set(summary.groups["train"])
    for split in ("train", "val"):
        for img in (out / "images" / split).iterdir():
            camera = img.name.split("-alarm-")[0]
            txt = out / "labels" / split / (img.stem + ".txt")
            assert txt.is_file() and camera in ("cam-a", "cam-b")
    total = {c: summary.boxes["train"].get(c, 0) + summary.boxes["val"].get(c, 0) for c in CLASS_IDS}
    assert total["vendor_stall"] == 6 and total["person"] == 6 and total["bike"] == 6
    lines = (out / "labels" / "train").glob("*.txt")
    for path in lines:
        for line in path.read_text().splitlines():
            cls, cx, cy, w, h = line.split()
            assert CLASS_IDS[int(cls)] in ("vendor_stall", "person", "bike")
            assert 0 < float(w) <= 1 and 0 < float(h) <= 1 and 0 <= float(cx) <= 1
    stall_line = next(line for p in (out / "labels").rglob("cam-a-alarm-1.txt") for line in p.read_text().splitlines()
                      if line.startswith("0 "))
    assert [float(v) for v in stall_line.split()[1:]] == pytest.approx([0.2, 0.7, 0.2, 0.4])
    data = (out / "data.yaml").read_text()
    assert "train: images/train" in data and "val: images/val" in data and "0: vendor_stall" in data
    assert json.loads((out / "summary.json").read_text())["duplicates"] == 1

    with pytest.raises(DatasetError, match="not empty"):
        export_dataset(labels.all(), root, out)


def test_split_is_stable_and_leaves_both_sides():
    keys = [f"cam-{c}/2026-03-{d:02d}" for c in "ab" for d in range(1, 11)]
    val = split_groups(keys, 0.2)
    assert len(val) == 4 and val == split_groups(list(reversed(keys)), 0.2)
    assert split_groups(["cam-a/2026-03-01"], 0.5) == set()
    assert len(split_groups(["x", "y"], 0.9)) == 1


def test_prune_by_age_then_by_bytes(store, tmp_path):
    evidence, root = tmp_path / "evidence", tmp_path / "learning"
    labels = LabelStore(store, root)
    for n in range(6):
        _label(labels, evidence, n, "cam-a", T0 + n * DAY, _frame(n), [])
    every = labels.all()
    size = every[0].bytes
    now = T0 + 6 * DAY
    report = prune(labels, now=now, retention_days=4.5, retention_bytes=10**9)
    assert (report.too_old, report.over_budget) == (2, 0)  # frames 0 and 1 are over 4.5 days old
    assert not (root / every[0].snapshot).exists() and (root / every[2].snapshot).exists()
    budget = sum(lab.bytes for lab in every[3:]) + size // 2
    report = prune(labels, now=now, retention_days=30, retention_bytes=budget)
    assert report.over_budget == 1 and report.bytes_kept <= budget
    assert [lab.alarm_id for lab in labels.all()] == ["alarm-3", "alarm-4", "alarm-5"]


@pytest.mark.parametrize(("boxes", "field"), [
    (None, "boxes"), ([1], "boxes[0]"), ([{"class": "cat", "box": [0, 0, 1, 1]}], "boxes[0].class"),
    ([{"class": "goods", "box": [0, 0, 1]}], "boxes[0].box"), ([{"class": "goods", "box": [0, 0, 1, 2]}],
                                                               "boxes[0].box"),
    ([{"class": "goods", "box": [0.5, 0, 0.5, 1]}], "boxes[0].box"), ([{"class": "goods", "box": [0, 0, True, 1]}],
                                                                       "boxes[0].box"),
    ([{"class": "goods", "box": [0, 0, 1, 1], "why": 1}], "boxes[0].why"),
    ([{"class": "goods", "box": [0, 0, 1, 1]}] * 65, "boxes"),
])
def test_bad_boxes_name_the_field(boxes, field):
    with pytest.raises(LabelError) as err:
        parse_boxes(boxes)
    assert err.value.field == field
