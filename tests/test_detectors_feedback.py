"""Reviewer feedback (detectors.feedback): rejections, the same-object-same-place test, persistence, and the
pipeline on the demo vending scene not raising again for a stall a reviewer rejected."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from config import load_settings
from demo.scenes import make_scene
from detectors.feedback import Rejection, SuppressionList, crop_signature, similarity
from detectors.pipeline import CameraAnalyzer

T0 = 1_717_387_200.0
CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"


def _frame(colour: tuple[int, int, int] = (30, 90, 200), at: tuple[int, int] = (300, 300),
           light: float = 1.0) -> np.ndarray:
    img = np.full((720, 1280, 3), (120, 125, 130), np.uint8)
    x, y = at
    cv2.rectangle(img, (x, y), (x + 200, y + 150), colour, -1)
    for i in range(x, x + 200, 25):
        cv2.line(img, (i, y), (i, y + 150), (40, 200, 230), 5)
    return np.clip(img.astype(np.float32) * light, 0, 255).astype(np.uint8)


def _box(at: tuple[int, int] = (300, 300)) -> tuple[float, float, float, float]:
    x, y = at
    return (x / 1280, y / 720, (x + 200) / 1280, (y + 150) / 720)


def _rejected() -> SuppressionList:
    s = SuppressionList()
    s.reject(camera_id="cam", zone_id="z", event="vending", box=_box(), image=_frame(), at=T0, alarm_id="a1")
    return s


@pytest.mark.parametrize("case, kwargs, suppressed", [
    ("same object, same place", {}, True),
    ("same object, darker light", {"light": 0.6}, True),
    ("same object, a little shifted", {"at": (330, 310), "box_at": (330, 310)}, True),
    ("a different object, same place", {"colour": (200, 40, 40)}, False),
    ("same object, moved elsewhere", {"at": (800, 300), "box_at": (800, 300)}, False),
    ("other camera", {"camera_id": "cam-2"}, False),
    ("other zone", {"zone_id": "z2"}, False),
    ("other event", {"event": "road_occupation"}, False),
    ("after the rejection expired", {"now": T0 + 8 * 86400}, False),
])
def test_same_object_in_the_same_place_is_suppressed(case, kwargs, suppressed):
    s = _rejected()
    img = _frame(kwargs.get("colour", (30, 90, 200)), kwargs.get("at", (300, 300)), kwargs.get("light", 1.0))
    box = _box(kwargs.get("box_at", (300, 300)))
    hit = s.match(camera_id=kwargs.get("camera_id", "cam"), zone_id=kwargs.get("zone_id", "z"),
                  event=kwargs.get("event", "vending"), box=box, signature=crop_signature(img, box),
                  now=kwargs.get("now", T0 + 60))
    assert (hit is not None) == suppressed, case


def test_signature_basics():
    a = crop_signature(_frame(), _box())
    assert a.sum() == pytest.approx(1.0) and similarity(a, a) == pytest.approx(1.0)
    assert not crop_signature(_frame(), (0.5, 0.5, 0.5, 0.5)).any()  # empty crop
    assert similarity(a, np.zeros_like(a)) == 0.0


def test_rejections_survive_a_restart(tmp_path):
    s = _rejected()
    path = tmp_path / "feedback" / "rejections.json"
    s.save(path)
    again = SuppressionList()
    assert again.load(path) == 1 and len(again) == 1
    assert again.match(camera_id="cam", zone_id="z", event="vending", box=_box(),
                       signature=crop_signature(_frame(), _box()), now=T0 + 1) is not None
    assert SuppressionList().load(tmp_path / "none.json") == 0


@pytest.mark.parametrize("content, words", [
    ("{not json", "not a JSON rejection list"),
    ('{"a": 1}', "expected a JSON list"),
    (json.dumps([{"camera_id": "c", "zone_id": "z"}]), "rejection #0: rejection record lacks event, box"),
    (json.dumps([{"camera_id": "c", "zone_id": "z", "event": "e", "box": [1, 2], "signature": [], "at": 0}]),
     "box must have 4 numbers"),
])
def test_a_bad_rejection_file_is_a_clear_error(tmp_path, content, words):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=words):
        SuppressionList().load(path)


def test_rejection_round_trips_through_a_dict():
    r = _rejected()._items[0]
    back = Rejection.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.box == pytest.approx(r.box, abs=1e-4) and np.allclose(back.signature, r.signature, atol=1e-5)


@pytest.mark.slow
def test_a_rejected_stall_does_not_raise_again_but_another_camera_still_does():
    settings = load_settings(CONFIG)
    scene = make_scene("vending", settings.demo.seed)
    (cam,) = [c for c in settings.cameras if c.url == "demo://vending"]

    def run(suppressions: SuppressionList | None, camera=cam):
        analyzer = CameraAnalyzer(camera, settings.detection, timezone=settings.timezone, suppressions=suppressions)
        raised = []
        for t in range(0, 40):
            img = scene.render(float(t))
            for f in analyzer.analyze(img, T0 + t):
                if f.alarm.phase == "raised":
                    raised.append((f.alarm, img))
        return raised

    first = run(None)
    assert len(first) == 1
    alarm, img = first[0]
    s = SuppressionList()
    for box in alarm.boxes:  # the reviewer rejects the alarm: its boxes on its clean snapshot
        s.reject(camera_id=alarm.camera_id, zone_id=alarm.zone_id, event=alarm.event, box=box, image=img,
                 at=alarm.at, alarm_id=alarm.alarm_id)
    assert run(s) == [] and s.suppressed > 0
    other = cam.model_copy(update={"id": "cam-vending-2"})
    assert len(run(s, other)) == 1  # the rejection is about that camera's view only


def _rejection(snapshot: str | None, alarm_id: str = "a9") -> dict:
    return {"alarm_id": alarm_id, "camera_id": "cam", "zone_id": "z", "event": "vending", "boxes": [list(_box())],
            "snapshot_clean": snapshot, "reviewer": "duty", "reason": "误报", "at": T0}


def test_a_reviewers_rejection_from_the_bus_suppresses_the_object_in_its_snapshot(tmp_path):
    from detectors.feedback import RejectionFollower

    (tmp_path / "cam").mkdir()
    cv2.imwrite(str(tmp_path / "cam" / "a9-clean.jpg"), _frame())
    suppressions = SuppressionList()
    follower = RejectionFollower(suppressions, tmp_path)
    assert follower.apply(_rejection("cam/a9-clean.jpg")) is not None
    assert follower.apply(_rejection("cam/a9-clean.jpg")) is None  # a replayed stream counts each alarm once
    sig = crop_signature(_frame(light=0.8), _box())
    assert suppressions.match(camera_id="cam", zone_id="z", event="vending", box=_box(), signature=sig,
                              now=T0 + 60) is not None
    other = crop_signature(_frame(colour=(200, 40, 40)), _box())
    assert suppressions.match(camera_id="cam", zone_id="z", event="vending", box=_box(), signature=other,
                              now=T0 + 60) is None


@pytest.mark.parametrize("snapshot", [None, "cam/missing.jpg", "../outside.jpg", "/etc/passwd"])
def test_a_rejection_without_a_readable_snapshot_inside_the_evidence_dir_is_skipped(tmp_path, snapshot):
    from detectors.feedback import RejectionFollower

    cv2.imwrite(str(tmp_path.parent / "outside.jpg"), _frame())
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    follower = RejectionFollower(SuppressionList(), evidence)
    assert follower.apply(_rejection(snapshot)) is None and follower.skipped == 1 and not follower.suppressions
