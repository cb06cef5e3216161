"""Detections validation and helpers, zone masks and in-zone tests, the IoU tracker, evidence files."""

from __future__ import annotations

from datetime import UTC

import cv2
import numpy as np
import pytest

from detectors.detections import Detections
from detectors.evidence import EvidenceWriter
from detectors.tracking import IoUTracker, box_iou
from detectors.zones import ZoneMask
from messages.alarm import Alarm


def dets(*boxes, **kw) -> Detections:
    return Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), **kw)


# --- Detections -------------------------------------------------------------------------------------------


def test_defaults_filter_area_and_bottom_centre():
    d = dets((0.1, 0.1, 0.3, 0.5), (0.5, 0.5, 1.0, 1.0), confidence=[0.9, 0.4], data={"age_s": [3.0, 7.0]})
    assert len(d) == 2
    assert d.class_id.tolist() == [0, 0] and d.tracker_id.tolist() == [-1, -1]
    np.testing.assert_allclose(d.area, [0.08, 0.25], rtol=1e-5)
    np.testing.assert_allclose(d.bottom_centre(), [[0.2, 0.5], [0.75, 1.0]], rtol=1e-5)
    kept = d.filter(d.confidence > 0.5)
    assert len(kept) == 1 and kept.data["age_s"].tolist() == [3.0]
    assert len(d[np.array([False, False])]) == 0
    assert d.boxes() == [(0.1, 0.1, 0.3, 0.5), (0.5, 0.5, 1.0, 1.0)]


def test_empty_and_merge():
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.area.shape == (0,)
    m = Detections.merge([e, dets((0, 0, 0.1, 0.1)), dets((0.2, 0.2, 0.3, 0.3), class_id=[1])])
    assert len(m) == 2 and m.class_id.tolist() == [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"xyxy": np.zeros((2, 3))}, r"xyxy must have shape \(N, 4\); got \(2, 3\)"),
        ({"xyxy": np.zeros((2, 4)), "confidence": np.zeros(3)}, r"confidence must have 2 rows .* got shape \(3,\)"),
        ({"xyxy": np.zeros((2, 4)), "class_id": np.zeros((2, 1))}, r"class_id must have shape \(N,\); got \(2, 1\)"),
        ({"xyxy": np.zeros((1, 4)), "tracker_id": np.zeros(2)}, r"tracker_id must have 1 rows"),
        ({"xyxy": np.zeros((1, 4)), "mask": np.zeros((2, 8, 8))}, r"mask must have 1 rows"),
        ({"xyxy": np.zeros((1, 4)), "data": {"age_s": [1, 2]}}, r"data\['age_s'\] must have 1 rows; got shape \(2,\)"),
        ({"xyxy": [[0.5, 0.1, 0.2, 0.3]]}, r"x1 <= x2"),
    ],
)
def test_shape_errors_state_expected_and_actual(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


# --- zones ------------------------------------------------------------------------------------------------

LOWER_HALF = [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]


def test_zone_mask_is_cached_per_size_and_matches_the_polygon():
    z = ZoneMask(LOWER_HALF)
    m = z.mask(320, 180)
    assert m.shape == (180, 320) and m is z.mask(320, 180)
    assert m[:90].sum() == 0 and m[90:].all()
    assert z.mask(64, 36).shape == (36, 64)
    with pytest.raises(ValueError):
        m[0, 0] = True  # read-only: shared between frames


def test_points_boxes_and_holds():
    z = ZoneMask([(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)])
    assert z.contains_points(np.array([[0.5, 0.5], [0.1, 0.5], [0.8, 0.8]])).tolist() == [True, False, True]
    frac = z.box_fraction(np.array([[0.3, 0.3, 0.5, 0.5], [0.0, 0.0, 0.1, 0.1], [0.1, 0.4, 0.3, 0.6]]), 320, 180)
    np.testing.assert_allclose(frac, [1.0, 0.0, 0.5], atol=0.03)
    d = dets((0.3, 0.1, 0.4, 0.5), (0.3, 0.85, 0.4, 0.95), (0.0, 0.0, 0.1, 0.1))
    # Feet in the zone counts even when the head is above it; a box wholly outside does not.
    assert z.holds(d, 320, 180).tolist() == [True, False, False]


def test_zone_rejects_bad_polygons():
    with pytest.raises(ValueError, match="normalised"):
        ZoneMask([(0, 0), (2, 0), (0, 1)])
    with pytest.raises(ValueError, match=r"\(N >= 3, 2\)"):
        ZoneMask([(0, 0), (1, 1)])


# --- tracker ----------------------------------------------------------------------------------------------


def test_iou_values():
    np.testing.assert_allclose(box_iou([[0, 0, 1, 1]], [[0, 0, 1, 1], [0.5, 0, 1.5, 1], [2, 2, 3, 3]]),
                               [[1.0, 1 / 3, 0.0]], rtol=1e-5)


def test_tracker_keeps_ids_through_jitter_splits_and_missed_samples():
    tr = IoUTracker(max_missed=2)
    a = tr.update(dets((0.1, 0.1, 0.3, 0.5)), 0.0)
    tid = int(a.tracker_id[0])
    assert tr.update(dets((0.11, 0.1, 0.31, 0.52)), 1.0).tracker_id.tolist() == [tid]
    assert len(tr.update(Detections.empty(), 2.0)) == 0
    assert len(tr.update(Detections.empty(), 3.0)) == 0
    # The umbrella split off for a sample: the larger part keeps the id (it lies inside the old box).
    split = tr.update(dets((0.1, 0.3, 0.3, 0.5), (0.12, 0.1, 0.28, 0.2)), 4.0)
    assert tid in split.tracker_id.tolist()
    # Gone for longer than max_missed: a new object at the same place gets a new id.
    for t in (5.0, 6.0, 7.0):
        tr.update(Detections.empty(), t)
    assert tr.update(dets((0.1, 0.1, 0.3, 0.5)), 8.0).tracker_id[0] != tid


def test_tracker_first_seen_uses_the_blob_age():
    tr = IoUTracker()
    out = tr.update(dets((0.1, 0.1, 0.3, 0.5), data={"age_s": [6.0]}), 100.0)
    assert out.data["first_seen"].tolist() == [94.0]


# --- evidence ---------------------------------------------------------------------------------------------


def test_evidence_paths_and_files(tmp_path):
    image = np.full((720, 1280, 3), 90, np.uint8)
    alarm = Alarm(alarm_id="ab12cd", phase="raised", camera_id="cam-1", zone_id="z1", event="vending",
                  started_at=1717387200.0, at=1717387230.0, dwell_s=30.0, confidence=0.9,
                  boxes=[(0.25, 0.5, 0.5, 0.75)], camera_name="解放路 Gate 3", zone_name="人行道")
    writer = EvidenceWriter(tmp_path, timezone="Asia/Shanghai")
    annotated, clean = writer.write(alarm, image, [LOWER_HALF])
    assert (annotated, clean) == ("2024-06-03/cam-1/ab12cd.jpg", "2024-06-03/cam-1/ab12cd-clean.jpg")
    a = cv2.imread(str(tmp_path / annotated))
    c = cv2.imread(str(tmp_path / clean))
    assert a.shape == c.shape == (720, 1280, 3)
    assert np.abs(c.astype(int) - 90).max() < 8  # clean really is clean
    b, g, r = (int(v) for v in a[450, 320])  # the box's left edge (x = 0.25 * 1280), red
    assert r > 200 and b < 60 and g < 60
    b, g, r = (int(v) for v in a[360, 100])  # the zone outline along y = 0.5 * 720, amber
    assert r > 200 and g > 170 and b < 60
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    # The caption is burnt in at the top left (white text on a black band), in Chinese where the font exists.
    band = a[0:40, 0:400]
    assert band.max() > 200 and np.median(band) < 20
    cleared = Alarm(**{**alarm.to_dict(), "phase": "cleared", "boxes": [(0.25, 0.5, 0.5, 0.75)]})
    assert writer.write(cleared, image)[0] == "2024-06-03/cam-1/ab12cd-cleared.jpg"


def test_the_caption_is_chinese_and_rendered_with_a_cjk_font():
    from datetime import datetime

    from detectors.cjk_text import renderer
    from detectors.evidence import caption_text

    alarm = Alarm(alarm_id="ab12cd", phase="raised", camera_id="cam-1", zone_id="z1", event="vending",
                  started_at=0.0, at=0.0, dwell_s=95.0, confidence=0.9, boxes=[], camera_name="解放路人行道",
                  zone_name="人行道")
    text = caption_text(alarm, datetime(2026, 3, 11, 8, 0, 5, tzinfo=UTC))
    assert text == "解放路人行道 | 人行道 | 无照经营游商 告警 | 2026-03-11 08:00:05 | 停留 1分35秒"
    cjk = renderer()
    if cjk is None:
        pytest.skip("FreeType or the Noto CJK font is not installed: the caption falls back to ASCII")
    one, two = cjk.render("解", 28), cjk.render("放", 28)
    assert one.shape[0] == 36 and (one > 128).sum() > 40 and not np.array_equal(one, two)  # real, distinct glyphs
    assert cjk.render("解放路", 28).shape[1] > 2.5 * 28


def test_evidence_refuses_unsafe_names(tmp_path):
    alarm = Alarm(alarm_id="../../x", phase="raised", camera_id="cam-1", zone_id="z", event="vending",
                  started_at=0.0, at=0.0, dwell_s=0.0, confidence=1.0)
    with pytest.raises(ValueError, match="alarm_id"):
        EvidenceWriter(tmp_path).write(alarm, np.zeros((10, 10, 3), np.uint8))
