"""The analyzer on the demo scenes (demo/scenes.py) with the zones of config/demo.yaml, at 1 frame/s.

For each staged event: one raised alarm within dwell + 5 s of the ground-truth start, cleared within 10 s of its
end; nothing on the quiet street. Also started mid-loop (objects already in place at start-up, as when the
wall starts while the RTSP loop is running): no false alarm when they leave, and the next loop is detected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from demo.scenes import SCENE_NAMES, make_scene
from detectors.pipeline import CameraAnalyzer

pytestmark = pytest.mark.slow  # runs whole demo scenes through detection

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
STREET_LIFE = CONFIG.with_name("street_life.yaml")  # the cameras of the bus_stop and mat_vendor scenes
T0 = 1_717_387_200.0


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG)


def camera_for(settings, scene_name: str):
    cams = settings.cameras + load_settings(STREET_LIFE).cameras
    (cam,) = [c for c in cams if c.url == f"demo://{scene_name}"]
    return cam


def run_scene(settings, name: str, start_s: float, seconds: int):
    scene = make_scene(name, settings.demo.seed)
    cam = camera_for(settings, name)
    analyzer = CameraAnalyzer(cam, settings.detection, timezone=settings.timezone)
    alarms, ms = [], []
    for i in range(seconds):
        t = start_s + i
        step = analyzer.step(scene.render(t), T0 + t)
        ms.append(step.analysis_ms)
        alarms.extend((t, f.alarm) for f in step.findings)
    return scene, cam, alarms, sorted(ms)[len(ms) // 2]


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_one_loop_matches_ground_truth(settings, name):
    scene, cam, alarms, median_ms = run_scene(settings, name, 0.0, 90)
    print(f"{name}: {median_ms:.1f} ms/frame, alarms {[(t, a.phase) for t, a in alarms]}")
    assert scene.duration_s == 90
    if not scene.ground_truth:
        assert alarms == []
        return
    (gt,) = scene.ground_truth
    zone = next(z for z in cam.zones if z.id == gt.zone_id)
    assert [(a.phase, a.event, a.zone_id) for _, a in alarms] == [
        ("raised", gt.event, gt.zone_id), ("cleared", gt.event, gt.zone_id)]
    (t_raise, raised), (t_clear, cleared) = alarms
    assert gt.start_s + zone.dwell_s <= t_raise <= gt.start_s + zone.dwell_s + 5
    assert gt.end_s < t_clear <= gt.end_s + 10
    assert raised.alarm_id == cleared.alarm_id
    assert raised.started_at >= T0 + gt.start_s - 1  # nothing was there before the event began
    assert raised.boxes and all(0 <= v <= 1 for b in raised.boxes for v in b)


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_started_mid_loop(settings, name):
    """Start at 30 s (the event already staged), run two loops: only the second loop's event is reported."""
    scene, cam, alarms, _ = run_scene(settings, name, 30.0, 150)  # loop time 30 .. 180
    if not scene.ground_truth:
        assert alarms == []
        return
    (gt,) = scene.ground_truth
    zone = next(z for z in cam.zones if z.id == gt.zone_id)
    assert [a.phase for _, a in alarms] == ["raised", "cleared"]
    (t_raise, _), (t_clear, _) = alarms
    assert 90 + gt.start_s + zone.dwell_s <= t_raise <= 90 + gt.start_s + zone.dwell_s + 5
    assert 90 + gt.end_s < t_clear <= 90 + gt.end_s + 10
