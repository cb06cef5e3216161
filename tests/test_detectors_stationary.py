"""Stationary-object analysis and the per-camera pipeline on synthetic street frames built here.

A textured street (buildings, paving, kerb, road) with moving figures (passers-by, cars), props that appear
and stay (a stall, goods, rubbish on a bin), global lighting drift and sensor noise. Frames are fed at 1 s
steps with ``now`` advancing — no sleeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from config.settings import Camera, Detection, Position, Zone
from detectors.pipeline import CameraAnalyzer
from detectors.stationary import StationaryObjectAnalyzer

W, H = 1280, 720
T0 = 1_717_387_200.0  # 2024-06-03 12:00 Asia/Shanghai


@dataclass(frozen=True)
class Mover:
    """A figure crossing the view horizontally: starts at x0 at t0, ``speed`` px/s, ``size`` (w, h)."""

    t0: float
    x0: float
    foot_y: float
    speed: float
    size: tuple[int, int]
    colour: tuple[int, int, int]
    car: bool = False

    def draw(self, img: np.ndarray, t: float) -> None:
        x = self.x0 + self.speed * (t - self.t0)
        w, h = self.size
        if t < self.t0 or x < -w or x > W + w:
            return
        x1, y1 = int(x - w / 2), int(self.foot_y - h)
        if self.car:
            cv2.rectangle(img, (x1, y1 + h // 3), (x1 + w, int(self.foot_y)), self.colour, -1)
            cv2.rectangle(img, (x1 + w // 5, y1), (x1 + 4 * w // 5, y1 + h // 3), self.colour, -1)
            for cx in (x1 + w // 5, x1 + 4 * w // 5):
                cv2.circle(img, (cx, int(self.foot_y)), h // 5, (20, 20, 20), -1)
        else:
            cv2.ellipse(img, (int(x), int(self.foot_y - 0.6 * h)), (w // 2, int(0.4 * h)), 0, 0, 360,
                        self.colour, -1)
            cv2.circle(img, (int(x), int(self.foot_y - 0.9 * h)), w // 3, (140, 170, 210), -1)
            swing = int(0.25 * w * math.sin(t * 6.0 + self.t0))
            cv2.line(img, (int(x), int(self.foot_y - 0.3 * h)), (int(x) + swing, int(self.foot_y)), (40, 40, 50), 4)
            cv2.line(img, (int(x), int(self.foot_y - 0.3 * h)), (int(x) - swing, int(self.foot_y)), (40, 40, 50), 4)


@dataclass(frozen=True)
class Prop:
    """Something put down at ``on`` and taken away at ``off``: a patterned box (stall, goods, rubbish)."""

    x: int
    y: int
    w: int
    h: int
    on: float
    off: float
    colour: tuple[int, int, int] = (170, 90, 30)

    def draw(self, img: np.ndarray, t: float) -> None:
        if not self.on <= t < self.off:
            return
        cv2.rectangle(img, (self.x, self.y), (self.x + self.w, self.y + self.h), self.colour, -1)
        for i in range(0, self.w, 24):  # stripes, so the object has texture of its own
            cv2.line(img, (self.x + i, self.y), (self.x + i, self.y + self.h), (40, 200, 230), 5)
        cv2.rectangle(img, (self.x, self.y), (self.x + self.w, self.y + self.h), (30, 30, 30), 3)


@dataclass
class Street:
    """A deterministic synthetic street camera."""

    seed: int = 1
    movers: list[Mover] = field(default_factory=list)
    props: list[Prop] = field(default_factory=list)
    drift: float = 0.05
    """Peak global brightness change (±), a slow sine over ``drift_period_s``."""
    drift_period_s: float = 120.0
    noise_sigma: float = 2.5
    exposure_steps: tuple[tuple[float, float], ...] = ()
    """(at_s, factor): sudden global brightness changes (auto-exposure, a cloud), applied from ``at_s`` on."""

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        img = np.zeros((H, W, 3), np.uint8)
        # Buildings: blocks of colour with windows.
        x = 0
        while x < W:
            bw = int(rng.integers(140, 260))
            colour = tuple(int(v) for v in rng.integers(90, 220, 3))
            cv2.rectangle(img, (x, 0), (x + bw, 260), colour, -1)
            for wx in range(x + 15, x + bw - 30, 45):
                for wy in (40, 120, 190):
                    cv2.rectangle(img, (wx, wy), (wx + 25, wy + 40), (70, 60, 50), -1)
            x += bw
        # Paving with tile lines and a mottled texture; kerb; road.
        tex = cv2.GaussianBlur(rng.normal(0, 12, (H, W)).astype(np.float32), (0, 0), 3)
        paving = np.clip(165 + tex, 0, 255).astype(np.uint8)
        img[260:560] = paving[260:560, :, None]
        for ty in range(260, 560, 40):
            cv2.line(img, (0, ty), (W, ty), (135, 135, 135), 1)
        for tx in range(0, W, 60):
            cv2.line(img, (tx, 260), (tx, 560), (135, 135, 135), 1)
        img[560:575] = 205
        road = np.clip(80 + tex, 0, 255).astype(np.uint8)
        img[575:] = road[575:, :, None]
        for lx in range(0, W, 160):
            cv2.rectangle(img, (lx, 645), (lx + 80, 652), (230, 230, 230), -1)
        self.background = img
        self._noise = [rng.normal(0, self.noise_sigma, (H, W, 3)).astype(np.float32) for _ in range(5)]

    def render(self, t: float) -> np.ndarray:
        img = self.background.copy()
        for p in self.props:
            p.draw(img, t)
        for m in self.movers:
            m.draw(img, t)
        gain = 1.0 + self.drift * math.sin(2 * math.pi * t / self.drift_period_s)
        for at, factor in self.exposure_steps:
            gain *= factor if t >= at else 1.0
        out = img.astype(np.float32) * gain + self._noise[int(t) % len(self._noise)]
        return np.clip(out, 0, 255).astype(np.uint8)


def crowd(seed: int, n: int, duration: float) -> list[Mover]:
    """``n`` passers-by on the pavement and cars on the road, at realistic speeds for 1 fps sampling."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        direction = 1 if rng.random() < 0.5 else -1
        speed = float(rng.uniform(50, 110)) * direction  # ~1-1.5 m/s at this scale
        out.append(Mover(t0=float(rng.uniform(-20, duration)), x0=-60.0 if direction > 0 else W + 60.0,
                         foot_y=float(rng.uniform(330, 555)), speed=speed, size=(int(rng.integers(34, 50)), 120),
                         colour=tuple(int(v) for v in rng.integers(0, 255, 3))))  # type: ignore[arg-type]
    for _ in range(n // 3):
        out.append(Mover(t0=float(rng.uniform(-10, duration)), x0=-300.0, foot_y=float(rng.uniform(640, 700)),
                         speed=float(rng.uniform(350, 600)), size=(260, 110), car=True,
                         colour=tuple(int(v) for v in rng.integers(0, 255, 3))))  # type: ignore[arg-type]
    return out


PAVEMENT = [(0.0, 0.40), (1.0, 0.40), (1.0, 0.78), (0.0, 0.78)]
ROAD = [(0.0, 0.80), (1.0, 0.80), (1.0, 1.0), (0.0, 1.0)]


def camera(zones: list[Zone]) -> Camera:
    return Camera(id="cam-test", name="Test St", url="rtsp://127.0.0.1:8554/test", position=Position(lon=120, lat=30),
                  zones=zones)


def zone(polygon=PAVEMENT, **kw) -> Zone:
    # The props here are objects nobody minds (no seller beside them): judged goods, so road_occupation (乱堆物堆料);
    # vending needs goods with an attendant (tests/test_detectors_judgement.py).
    args = dict(id="pavement", name="Pavement", events=["road_occupation"], polygon=polygon, dwell_s=10, min_area=0.004,
                cooldown_s=0)
    args.update(kw)
    return Zone(**args)


def feed(street: Street, cam: Camera, seconds: int, start: float = 0.0) -> list:
    """Run a ``CameraAnalyzer`` over ``seconds`` samples; returns [(t, Alarm)]."""
    analyzer = CameraAnalyzer(cam, Detection(), timezone="Asia/Shanghai")
    out = []
    for i in range(seconds):
        t = start + i
        for f in analyzer.analyze(street.render(t), T0 + t):
            out.append((t, f.alarm))
    return out


# --- tests ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_stall_in_zone_raises_once_after_dwell_and_clears_when_it_leaves():
    street = Street(seed=3, movers=crowd(3, 30, 80), props=[Prop(500, 380, 180, 140, on=12, off=50)])
    alarms = feed(street, camera([zone()]), 70)
    assert [(a.phase, a.event, a.zone_id) for _, a in alarms] == [
        ("raised", "road_occupation", "pavement"), ("cleared", "road_occupation", "pavement")]
    (t_raise, raised), (t_clear, cleared) = alarms
    assert 12 + 10 <= t_raise <= 12 + 10 + 4
    assert 50 < t_clear <= 50 + 8
    assert raised.alarm_id == cleared.alarm_id and len(raised.alarm_id) == 32
    assert raised.detector == "stationary-bg/1" and raised.camera_name == "Test St" and raised.zone_name == "Pavement"
    assert raised.started_at == pytest.approx(T0 + 12, abs=3) and raised.dwell_s >= 10
    # The reported box is the stall: (500, 380)-(680, 520) in 1280x720.
    x1, y1, x2, y2 = raised.boxes[0]
    assert abs(x1 - 500 / W) < 0.03 and abs(x2 - 680 / W) < 0.03
    assert abs(y1 - 380 / H) < 0.04 and abs(y2 - 520 / H) < 0.04
    assert 0.0 < raised.confidence <= 1.0


@pytest.mark.slow
def test_passers_by_and_traffic_only_raise_nothing():
    street = Street(seed=4, movers=crowd(4, 60, 150))
    analyzer = CameraAnalyzer(camera([zone(), zone(ROAD, id="road", events=["road_occupation"])]), Detection())
    stationary_samples = moving_samples = 0
    for t in range(150):
        step = analyzer.step(street.render(t), T0 + t)
        assert not step.findings, f"alarm at t={t}: {step.findings}"
        stationary_samples += bool(len(step.stationary.detections))
        moving_samples += step.stationary.foreground.mean() > 0.01
    assert moving_samples > 100  # the crowd is seen, as foreground that moves
    assert stationary_samples <= 3  # a coincidental overlap may flicker, never persists


@pytest.mark.slow
def test_lighting_drift_alone_is_not_foreground():
    # ±8 % over 60 s — faster and larger than the ±5 % the brief asks for.
    street = Street(seed=5, drift=0.08, drift_period_s=60.0)
    analyzer = StationaryObjectAnalyzer()
    for t in range(120):
        r = analyzer.update(street.render(t), T0 + t)
        if r.ready:
            assert len(r.detections) == 0, f"t={t}: {r.detections.xyxy}"
            assert r.foreground.mean() < 0.002, f"t={t}: {r.foreground.mean():.4f} of the frame is foreground"
    assert abs(r.gain - 1.0) < 0.1


@pytest.mark.slow
def test_sudden_exposure_change_is_not_foreground():
    """A camera's auto-exposure jumps by 12 %: the gain-matched comparison sees no object anywhere."""
    street = Street(seed=5, movers=crowd(5, 10, 80), exposure_steps=((30.0, 0.88), (55.0, 1.12)))
    analyzer = CameraAnalyzer(camera([zone()]), Detection())
    for t in range(80):
        step = analyzer.step(street.render(t), T0 + t)
        assert not step.findings
        assert len(step.stationary.detections) == 0, f"t={t}: {step.stationary.detections.xyxy}"


@pytest.mark.slow
def test_object_outside_the_zone_is_seen_but_raises_nothing():
    street = Street(seed=6, movers=crowd(6, 20, 60), props=[Prop(520, 600, 200, 90, on=5, off=999)])
    cam = camera([zone()])  # pavement zone; the goods lie on the road
    analyzer = CameraAnalyzer(cam, Detection())
    seen = 0
    for t in range(50):
        step = analyzer.step(street.render(t), T0 + t)
        assert not step.findings
        seen += len(step.tracked) > 0
    assert seen > 30  # the analyzer does find it; the zone keeps it out
    # The same object with a road zone raises road_occupation.
    alarms = feed(street, camera([zone(ROAD, id="lane", events=["road_occupation"])]), 30)
    assert [(a.phase, a.event, a.zone_id) for _, a in alarms] == [("raised", "road_occupation", "lane")]


@pytest.mark.slow
def test_ghost_of_an_object_present_at_start_up_is_absorbed():
    """A stall standing there when analysis starts is part of the first background; when it leaves, the hole it
    leaves must not become an alarm, and when it comes back it must."""
    street = Street(seed=7, movers=crowd(7, 20, 120), props=[Prop(500, 380, 180, 140, on=-10, off=20),
                                                              Prop(500, 380, 180, 140, on=60, off=999)])
    alarms = feed(street, camera([zone()]), 90)
    assert [(a.phase) for _, a in alarms] == ["raised"]
    assert 60 + 10 <= alarms[0][0] <= 60 + 14


@pytest.mark.slow
def test_bin_overflow_raises_and_clears():
    street = Street(seed=8, movers=crowd(8, 20, 90))
    bin_ = Prop(600, 420, 70, 110, on=-100, off=999, colour=(40, 120, 40))
    rubbish = [Prop(590, 385, 90, 38, on=10, off=60, colour=(60, 60, 160)),
               Prop(540, 505, 50, 25, on=12, off=60, colour=(200, 200, 200))]
    street.props = [bin_, *rubbish]
    bin_zone = Zone(id="bin-1", name="Bin 1", events=["bin_overflow"], dwell_s=10, min_area=0.002, cooldown_s=0,
                    polygon=[(0.40, 0.50), (0.58, 0.50), (0.58, 0.76), (0.40, 0.76)])
    alarms = feed(street, camera([bin_zone]), 80)
    assert [(a.phase, a.event, a.detector) for _, a in alarms] == [
        ("raised", "bin_overflow", "bin-state/1"), ("cleared", "bin_overflow", "bin-state/1")]
    (t_raise, raised), (t_clear, _) = alarms
    assert 20 <= t_raise <= 25 and 60 < t_clear <= 68
    assert raised.extra["fill_fraction"] > 0.05


def test_empty_bin_raises_nothing():
    street = Street(seed=8, movers=crowd(8, 20, 90), props=[Prop(600, 420, 70, 110, on=-100, off=999,
                                                               colour=(40, 120, 40))])
    bin_zone = Zone(id="bin-1", events=["bin_overflow"], dwell_s=10, min_area=0.002,
                    polygon=[(0.40, 0.50), (0.58, 0.50), (0.58, 0.76), (0.40, 0.76)])
    assert feed(street, camera([bin_zone]), 60) == []


@pytest.mark.parametrize("spans, expect_alarm", [(["00:00-08:00"], False), (["08:00-20:00"], True)])
def test_schedule_outside_hours_raises_nothing(spans, expect_alarm):
    # The feed runs at 12:00 Shanghai time.
    street = Street(seed=9, movers=crowd(9, 10, 60), props=[Prop(500, 380, 180, 140, on=5, off=999)])
    alarms = feed(street, camera([zone(schedule=spans)]), 30)
    assert bool(alarms) is expect_alarm


@pytest.mark.slow
def test_cooldown_is_honoured():
    props = [Prop(500, 380, 180, 140, on=5, off=25), Prop(300, 400, 160, 120, on=34, off=999)]
    street = Street(seed=10, movers=crowd(10, 15, 120), props=props)
    alarms = feed(street, camera([zone(cooldown_s=40)]), 110)
    phases = [(t, a.phase) for t, a in alarms]
    assert [p for _, p in phases] == ["raised", "cleared", "raised"]
    t_clear, t_again = phases[1][0], phases[2][0]
    assert t_again >= t_clear + 40
    # Without the cooldown the second stall would have raised after its own dwell.
    quick = feed(street, camera([zone(cooldown_s=0)]), 110)
    assert [p for _, p in [(t, a.phase) for t, a in quick]] == ["raised", "cleared", "raised"]
    assert quick[2][0] <= 34 + 10 + 4 < t_again


@pytest.mark.slow
def test_one_alarm_per_stall_with_people_walking_in_front():
    """A long-standing stall, constantly passed in front of, is one track and one alarm."""
    street = Street(seed=11, movers=crowd(11, 70, 200), props=[Prop(500, 380, 180, 140, on=5, off=999)])
    analyzer = CameraAnalyzer(camera([zone()]), Detection())
    ids: list[int] = []
    raised = 0
    for t in range(180):
        step = analyzer.step(street.render(t), T0 + t)
        raised += sum(f.alarm.phase == "raised" for f in step.findings)
        assert not [f for f in step.findings if f.alarm.phase == "cleared"]
        ids.extend(int(i) for i in step.tracked.tracker_id)
    assert raised == 1
    main_id = max(set(ids), key=ids.count)
    assert ids.count(main_id) / len(ids) > 0.9


def test_resolution_change_resets_the_background():
    street = Street(seed=12)
    analyzer = StationaryObjectAnalyzer()
    for t in range(6):
        analyzer.update(street.render(t), T0 + t)
    assert analyzer.ready
    other = cv2.resize(street.render(6), (640, 480))  # a 4:3 substream: analysis size 320x240
    r = analyzer.update(other, T0 + 6)
    assert not r.ready and r.size == (320, 240) and analyzer.resets == 1


def test_a_staying_object_is_not_absorbed_for_many_minutes():
    """Sampled every 10 s for 15 minutes, a stall is still reported, with its age, as one blob."""
    street = Street(seed=14, movers=crowd(14, 10, 1000), props=[Prop(500, 380, 180, 140, on=60, off=99999)])
    analyzer = StationaryObjectAnalyzer()
    for t in range(0, 15 * 60 + 61, 10):
        r = analyzer.update(street.render(float(t)), T0 + t)
    assert len(r.detections) == 1
    assert r.detections.data["age_s"][0] == pytest.approx(15 * 60, abs=40)
    assert float(r.age.max()) == pytest.approx(15 * 60, abs=40)


# --- lighting, shadows and vehicles (the hard cases of the accuracy bench, in miniature) -----------------------


def _gain_ramp(t: float, t0: float = 20.0, t1: float = 50.0, low: float = 0.55) -> float:
    return 1.0 + (low - 1.0) * min(max((t - t0) / (t1 - t0), 0.0), 1.0)


def _shadow(img: np.ndarray, t: float, *, speed: float, width: float, depth: float, edge_only: bool) -> np.ndarray:
    """A soft slanted dark band (or, ``edge_only``, everything left of a creeping edge) moving along x."""
    xs = np.arange(W, dtype=np.float32)[None, :] + (np.arange(H, dtype=np.float32)[:, None] - H / 2) * 0.35
    lead = -200 + speed * t
    inside = np.clip((lead - xs) / 60 + 0.5, 0, 1)
    if not edge_only:
        inside = inside * np.clip((xs - (lead - width)) / 60 + 0.5, 0, 1)
    return (img.astype(np.float32) * (1.0 - depth * inside)[:, :, None]).astype(np.uint8)


def _run(cam: Camera, render, seconds: int) -> list:
    analyzer = CameraAnalyzer(cam, Detection(), timezone="Asia/Shanghai")
    return [(t, f.alarm) for t in range(seconds) for f in analyzer.analyze(render(float(t)), T0 + t)]


@pytest.mark.slow
def test_a_dusk_ramp_does_not_clear_a_standing_stall_early():
    street = Street(seed=11, movers=crowd(11, 25, 90), props=[Prop(400, 330, 220, 170, on=10, off=70)], drift=0)

    def render(t: float) -> np.ndarray:
        return np.clip(street.render(t).astype(np.float32) * _gain_ramp(t), 0, 255).astype(np.uint8)

    alarms = _run(camera([zone()]), render, 90)
    assert [(a.phase) for _, a in alarms] == ["raised", "cleared"]
    (t_raise, _), (t_clear, _) = alarms
    assert t_raise <= 10 + 10 + 5 and 70 <= t_clear <= 80


@pytest.mark.parametrize("speed, width, edge_only", [
    (45.0, 350.0, False),  # a cloud shadow sweeping across
    (6.0, 0.0, True),      # a building's shadow edge creeping over the street and staying
])
def test_moving_and_creeping_shadows_raise_nothing(speed, width, edge_only):
    street = Street(seed=12, movers=crowd(12, 25, 90), drift=0)
    alarms = _run(camera([zone()]), lambda t: _shadow(street.render(t), t, speed=speed, width=width, depth=0.35,
                                                       edge_only=edge_only), 90)
    assert alarms == []


@dataclass(frozen=True)
class ParkingCar:
    """A car that drives in from the right at 300 px/s, parks at ``park_x`` from ``t_stop`` to ``t_go``."""

    park_x: float
    t_stop: float
    t_go: float
    foot_y: float = 700.0
    size: tuple[int, int] = (300, 110)

    def draw(self, img: np.ndarray, t: float) -> None:
        if t < self.t_stop:
            x = self.park_x + 300.0 * (self.t_stop - t)
        elif t <= self.t_go:
            x = self.park_x
        else:
            x = self.park_x - 300.0 * (t - self.t_go)
        Mover(t0=t, x0=x, foot_y=self.foot_y, speed=0.0, size=self.size, car=True, colour=(40, 40, 170)).draw(img, t)


@pytest.mark.slow
def test_a_car_that_parks_in_the_lane_is_not_road_occupation_but_goods_beside_it_are():
    car = ParkingCar(park_x=400.0, t_stop=10.0, t_go=60.0)
    goods = Prop(850, 610, 160, 90, on=20, off=70, colour=(60, 120, 150))
    street = Street(seed=13, movers=crowd(13, 15, 90), props=[goods], drift=0)
    lane = zone(ROAD, id="lane", events=["road_occupation"], min_area=0.004)

    def render(t: float) -> np.ndarray:
        img = street.render(t)
        car.draw(img, t)
        return img

    alarms = _run(camera([lane]), render, 90)
    assert [a.phase for _, a in alarms] == ["raised", "cleared"]
    (t_raise, raised), (t_clear, _) = alarms
    assert 20 + 10 <= t_raise <= 20 + 15 and 70 <= t_clear <= 80
    (x1, _, x2, _), = raised.boxes
    assert x1 >= 0.6 and x2 <= 0.85  # the goods (850-1010 px), not the car (250-550 px)


@dataclass(frozen=True)
class CarriedBox:
    """A person carrying a box at walking pace (80 px/s) from the left, putting it down at ``x_stop`` at
    ``t_put`` and walking on; the box stays until ``t_gone``."""

    x_stop: float
    t_put: float
    t_gone: float
    foot_y: float = 690.0

    def draw(self, img: np.ndarray, t: float) -> None:
        bx = self.x_stop - 80.0 * max(self.t_put - t, 0.0)
        if t < self.t_gone:
            Prop(int(bx), int(self.foot_y - 90), 150, 90, on=-1e9, off=1e9, colour=(60, 120, 150)).draw(img, t)
        px = bx + 170 + 80.0 * max(t - self.t_put, 0.0)
        Mover(t0=t, x0=px, foot_y=self.foot_y, speed=0.0, size=(44, 120), colour=(30, 160, 60)).draw(img, t)


@pytest.mark.slow
def test_a_box_carried_in_at_walking_pace_and_put_down_is_road_occupation():
    carried = CarriedBox(x_stop=600.0, t_put=20.0, t_gone=70.0)
    street = Street(seed=14, movers=crowd(14, 15, 90), drift=0)
    lane = zone(ROAD, id="lane", events=["road_occupation"], min_area=0.004)

    def render(t: float) -> np.ndarray:
        img = street.render(t)
        carried.draw(img, t)
        return img

    alarms = _run(camera([lane]), render, 90)
    assert [a.phase for _, a in alarms] == ["raised", "cleared"]
    (t_raise, _), (t_clear, _) = alarms
    # Dwell 10 s from the put-down (a sample early: the slow-moving box already covered part of its place).
    assert 20 + 9 <= t_raise <= 20 + 15 and 70 <= t_clear <= 80
