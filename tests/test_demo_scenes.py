"""Demo scenes: deterministic rendering, and ground truth that matches both the pixels and config/demo.yaml."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from config import load_settings
from demo.scenes import SCENE_NAMES, GroundTruth, make_scene

pytestmark = pytest.mark.slow  # renders every demo scene

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
STREET_LIFE = CONFIG.with_name("street_life.yaml")  # the cameras of the bus_stop and mat_vendor scenes
DIFF = 40  # grey levels: an object, not lighting or noise


@pytest.fixture(scope="module")
def scenes():
    return {name: make_scene(name, 7) for name in SCENE_NAMES}


@pytest.fixture(scope="module")
def cameras():
    cams = [c for cfg in (CONFIG, STREET_LIFE) for c in load_settings(cfg).cameras]
    return {cam.url.removeprefix("demo://"): cam for cam in cams if cam.url.startswith("demo://")}


def zone_mask(zone, width: int, height: int) -> np.ndarray:
    pts = np.array([[x * width, y * height] for x, y in zone.polygon], np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def persistent_change(scene, times: list[float], reference: np.ndarray) -> np.ndarray:
    """Pixels that differ from ``reference`` in every frame at ``times``: what stayed put (people move on)."""
    out = None
    for t in times:
        d = np.abs(scene.render(t, noise=False).astype(np.int16) - reference).max(axis=2) > DIFF
        out = d if out is None else out & d
    return out


def empty_street(scene, times: list[float]) -> np.ndarray:
    """The street with nothing staged: per-pixel median of frames outside every ground-truth interval."""
    return np.median(np.stack([scene.render(t, noise=False) for t in times]), axis=0).astype(np.int16)


def outside_times(gts: list[GroundTruth]) -> list[float]:
    grid = [1.0, 3.0, 5.0, 6.5, 75.0, 79.0, 83.0, 87.0, 89.0]
    return [t for t in grid if not any(gt.start_s - 1.5 <= t <= gt.end_s + 4.0 for gt in gts)]


def test_scene_shape_and_metadata(scenes):
    for name, scene in scenes.items():
        frame = scene.render(12.34)
        assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
        assert (scene.name, scene.fps, scene.width, scene.height, scene.duration_s) == (name, 25, 1280, 720, 90.0)
        assert scene.frame_count == 2250


def test_same_seed_same_frames_different_seed_different():
    a, b, c = make_scene("vending", 7), make_scene("vending", 7), make_scene("vending", 8)
    for t in (0.0, 11.0, 40.08, 89.96):
        assert np.array_equal(a.render(t), b.render(t)), t
    assert np.abs(a.render(40.0).astype(int) - c.render(40.0)).mean() > 5


def test_unknown_scene_is_named():
    with pytest.raises(ValueError, match="unknown demo scene 'market'"):
        make_scene("market", 7)


def test_loop_wraps_and_snaps_to_frames(scenes):
    s = scenes["bin_overflow"]
    assert np.array_equal(s.render(3.0), s.render(93.0))
    assert np.array_equal(s.render(3.0), s.render(3.01))  # same 25 fps frame


def test_ground_truth_names_zones_of_the_demo_config(scenes, cameras):
    expected = {"vending": ("vending", "pavement"), "bin_overflow": ("bin_overflow", "bin-1"),
                "road_occupation": ("road_occupation", "lane-1"), "mat_vendor": ("vending", "pavement")}
    for name, scene in scenes.items():
        assert name in cameras, f"config/demo.yaml has no camera with url demo://{name}"
        zones = {z.id: z for z in cameras[name].zones}
        if name in ("quiet_street", "bus_stop"):  # people walking, waiting, a parked bicycle: no event
            assert scene.ground_truth == []
            continue
        [gt] = scene.ground_truth
        assert (gt.event, gt.zone_id) == expected[name]
        assert gt.zone_id in zones and gt.event in zones[gt.zone_id].events
        assert 6.0 <= gt.start_s <= 12.0 and 65.0 <= gt.end_s <= 75.0
        assert gt.end_s - gt.start_s > 3 * zones[gt.zone_id].dwell_s  # long enough for the demo's dwell


@pytest.mark.parametrize("name", ["vending", "bin_overflow", "road_occupation"])
def test_staged_object_is_in_its_zone_only_during_ground_truth(scenes, cameras, name):
    scene = scenes[name]
    [gt] = scene.ground_truth
    zone = next(z for z in cameras[name].zones if z.id == gt.zone_id)
    mask = zone_mask(zone, scene.width, scene.height)
    ref = empty_street(scene, outside_times(scene.ground_truth))
    frame_area = scene.width * scene.height

    inside = [gt.start_s + 5.0 + k * (gt.end_s - gt.start_s - 7.0) / 5 for k in range(6)]
    staged = persistent_change(scene, inside, ref)
    in_zone = (staged & mask).sum()
    assert in_zone > 2 * zone.min_area * frame_area, f"{name}: staged object covers only {in_zone} px of the zone"
    # Its footprint (lowest changed row) lies inside the zone: the object stands on the zone's ground.
    ys, xs = np.nonzero(staged)
    assert mask[ys.max(), int(np.median(xs[ys >= ys.max() - 5]))]

    # Before the start and after the end, nothing persistent anywhere (passers-by and cars move on).
    for times in ([0.5, 2.5, 4.5, gt.start_s - 1.0], [gt.end_s + 4.0, 78.0, 84.0, 88.0]):
        leftover = persistent_change(scene, times, ref).sum()
        assert leftover < 0.0005 * frame_area, f"{name}: {leftover} px persist at {times}"

    # Just inside the interval the object is already there, just after it is gone.
    assert (persistent_change(scene, [gt.start_s + 2.0, gt.start_s + 4.0], ref) & mask).sum() > 0.3 * in_zone
    assert (persistent_change(scene, [gt.end_s + 4.0, gt.end_s + 6.0], ref) & mask).sum() < 0.05 * in_zone


def test_quiet_street_has_nothing_that_stays(scenes):
    scene = scenes["quiet_street"]
    ref = empty_street(scene, [2.0, 17.0, 33.0, 49.0, 65.0, 81.0])
    for start in (0.0, 7.0, 30.0, 55.0):
        left = persistent_change(scene, [start + k * 6.0 for k in range(5)], ref).sum()
        assert left < 0.0005 * scene.width * scene.height, (start, left)
    # ...but it is not empty: people and cyclists pass.
    moving = np.abs(scene.render(20.0, noise=False).astype(np.int16) - ref).max(axis=2) > DIFF
    assert moving.sum() > 0.005 * scene.width * scene.height


def test_lighting_drift_and_sensor_noise(scenes):
    scene = scenes["quiet_street"]
    levels = [scene.brightness(t) for t in np.linspace(0, 90, 91)]
    assert 0.94 <= min(levels) < 0.97 and 1.03 < max(levels) <= 1.06
    clean = scene.render(40.0, noise=False).astype(np.float32)
    noisy = scene.render(40.0).astype(np.float32)
    region = (slice(0, 200), slice(None))  # building fronts: nothing moves there
    ratio = noisy[region].mean() / clean[region].mean()
    assert abs(ratio - scene.brightness(40.0)) < 0.01
    a, b = scene.render(40.0)[region].astype(np.float32), scene.render(40.04)[region].astype(np.float32)
    step = np.abs(a - b).mean()
    assert 0.5 < step < 6, f"frame-to-frame sensor noise {step:.2f} grey levels"


def test_render_is_fast(scenes):
    scene = scenes["vending"]
    scene.render(0.0)
    t0 = time.perf_counter()
    for i in range(50):
        scene.render(30.0 + i / 25)
    per_frame_ms = (time.perf_counter() - t0) / 50 * 1000
    assert per_frame_ms < 15, f"{per_frame_ms:.1f} ms per frame (target < 5 ms on an idle core)"
