"""What stays on the labelled street-life scenes of the accuracy bench, under the conditions that broke it.

Each test builds one scenario of ``bench/scenarios.py`` (the life suite: a shaking pole, or x264 at crf 38 with
traffic through the zone), feeds it at 1 frame/s to ``CameraAnalyzer`` with ``now`` advancing (no clock, no
sleeps) and scores the alarms with the bench's own matching (``bench/bench_detectors_accuracy.py``):

- a seated ground-mat seller on a shaking pole moves a pixel or two: registered place by place, she is alive, so
  her mat is a stall (vending) and never goods nobody minds (road occupation);
- a bicycle parked in busy, heavily compressed traffic gets a new track id every few samples and passers-by
  brush past it: its unattended time is kept by its place, and it raises 非机动车乱停放 within dwell + 5 s;
- a pile of goods in that traffic is unattended goods (road occupation), never a stall.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from config import load_settings

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("citywall_bench_accuracy", BENCH / "bench_detectors_accuracy.py")


def _outcome(bench, name: str, condition: str, seed: int):
    (scenario,) = [s for s in bench.build_life_suite(seed, (condition,)) if f"/{name}/" in s.name]
    return scenario, bench.run_scenario(scenario, load_settings(bench.CONFIG))


def _alarms(outcome) -> list[tuple[str, float]]:
    return [(a.event, a.t_raise) for a in outcome.alarms]


def test_a_seated_mat_seller_on_a_shaking_pole_is_vending(bench):
    scenario, out = _outcome(bench, "mat-vendor", "shake", 7)
    ((truth, hit),) = out.matches
    assert hit is not None, _alarms(out)
    assert out.false_positives == [], _alarms(out)
    zone_dwell = next(z.dwell_s for z in scenario.camera.zones if z.id == truth.zone_id)
    assert hit.t_raise - truth.start_s <= zone_dwell + 5.0, _alarms(out)


def test_a_bicycle_parked_in_compressed_traffic_raises_bike_parking_in_time(bench):
    scenario, out = _outcome(bench, "parked-bicycle", "lowrate", 8)
    ((truth, hit),) = out.matches
    assert hit is not None, _alarms(out)
    zone_dwell = next(z.dwell_s for z in scenario.camera.zones if z.id == truth.zone_id)
    assert hit.t_raise - truth.start_s <= zone_dwell + 5.0, _alarms(out)
    assert out.false_positives == [], _alarms(out)


def test_a_pile_in_compressed_traffic_is_unattended_goods_not_a_stall(bench):
    _, out = _outcome(bench, "pile-on-pavement", "lowrate", 7)
    ((truth, hit),) = out.matches
    assert hit is not None and hit.event == "road_occupation", _alarms(out)
    assert "vending" not in [a.event for a in out.alarms], _alarms(out)
