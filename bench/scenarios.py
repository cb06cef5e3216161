"""Labelled benchmark scenarios for the detectors: demo scenes plus perturbations, and a few scenes of our own.

A ``Scenario`` is a camera (from config/demo.yaml, optionally with a changed dwell), a frame source at 1 frame/s
(``frame(t_s)`` → BGR uint8 720p) and the ground-truth event intervals a perfect detector would report. The
frames come from ``demo.scenes`` renders, composed with perturbations done here in numpy/OpenCV:

- ``gain_ramp``: global brightness ramps (dusk, a cloud covering the sun) — multiplicative, whole frame;
- ``shadow_band``: a soft dark band sweeping across the frame (a cloud shadow, fast) or a shadow edge creeping
  across it (a building's shadow, slow);
- ``sensor_noise``: strong additive Gaussian noise (a cheap camera at night), a fresh field each frame;
- ``rain``: bright slanted streaks, different every frame, and a slight loss of contrast;
- extra actors drawn on top: a dense crowd passing, a parked car, a delivery tricycle that stops 20 s, goods
  dumped beside a parked car.

Labels follow what the operations centre wants, not what a class-agnostic analyzer can do: a parked car or a
stopped delivery vehicle in a lane is *not* road occupation by goods (it is a parking/loading matter), so those
scenarios carry no ``road_occupation`` truth; the benchmark reports what the analyzer does with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from config.settings import Camera, Settings
from demo.actors import CAR_COLOURS, Drawable, Look, PasserBy, Tricycle, draw_car, random_look
from demo.backdrop import H, W, StreetLayout
from demo.scenes import GroundTruth, Scene, make_scene

Perturb = Callable[[np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class Truth:
    """A ground-truth event: ``event`` in zone ``zone_id`` from ``start_s`` to ``end_s`` (scenario seconds)."""

    event: str
    zone_id: str
    start_s: float
    end_s: float


@dataclass
class Scenario:
    """One labelled run: ``seconds`` frames at 1 frame/s from ``frame(t)`` into an analyzer for ``camera``."""

    name: str
    camera: Camera
    frame: Callable[[float], np.ndarray]
    seconds: int
    truth: list[Truth]
    hard_case: str = ""
    """Which hard case of the issue this exercises ('' for the plain demo scenes)."""
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


# --- perturbations ------------------------------------------------------------------------------------------


def gain_ramp(points: Sequence[tuple[float, float]]) -> Perturb:
    """Whole-frame brightness factor, piecewise linear through ``(t_s, gain)`` points (held outside)."""
    ts = np.array([p[0] for p in points], float)
    gs = np.array([p[1] for p in points], float)

    def apply(img: np.ndarray, t: float) -> np.ndarray:
        g = float(np.interp(t, ts, gs))
        if abs(g - 1.0) < 1e-3:
            return img
        lut = np.clip(np.arange(256, dtype=np.float32) * g, 0, 255).astype(np.uint8)
        return cv2.LUT(img, lut)

    return apply


def shadow_band(*, x0: float, speed: float, width: float, depth: float, soft: float = 60.0,
                slant: float = 0.35, start_s: float = 0.0, edge_only: bool = False) -> Perturb:
    """A dark band (``depth`` = fraction of light removed) ``width`` px wide with ``soft`` px soft edges, slanted,
    moving along x at ``speed`` px/s from ``x0`` at ``start_s``. ``edge_only``: everything left of the leading
    edge stays dark (a building's shadow creeping across the street)."""
    xs = np.arange(W, dtype=np.float32)[None, :]
    ys = np.arange(H, dtype=np.float32)[:, None]
    skew = (ys - H / 2) * slant  # slanted shadow edges

    def apply(img: np.ndarray, t: float) -> np.ndarray:
        if t < start_s:
            return img
        lead = x0 + speed * (t - start_s)
        u = xs + skew  # (H, W)
        inside = np.clip((lead - u) / soft + 0.5, 0, 1)  # 1 left of the leading edge
        if not edge_only:
            inside = inside * np.clip((u - (lead - width)) / soft + 0.5, 0, 1)
        if not inside.any():
            return img
        factor = (1.0 - depth * inside).astype(np.float32)
        return (img.astype(np.float32) * factor[:, :, None]).astype(np.uint8)

    return apply


def sensor_noise(sigma: float, seed: int = 0, fields: int = 12) -> Perturb:
    """Additive zero-mean Gaussian noise of ``sigma`` grey levels, per channel (cycled from pre-drawn fields)."""
    rng = np.random.default_rng(seed)
    pool = [rng.normal(0.0, sigma, size=(H, W, 3)).astype(np.int16) for _ in range(fields)]

    def apply(img: np.ndarray, t: float) -> np.ndarray:
        n = pool[int(round(t)) % fields]
        return np.clip(img.astype(np.int16) + n, 0, 255).astype(np.uint8)

    return apply


def rain(density: int = 700, seed: int = 0, dim: float = 0.88) -> Perturb:
    """Rain: ``density`` bright slanted streaks per frame at random places (new every frame), and the scene a
    little darker and flatter (overcast)."""

    def apply(img: np.ndarray, t: float) -> np.ndarray:
        rng = np.random.default_rng([seed, int(round(t * 10))])
        out = cv2.addWeighted(img, dim, np.full_like(img, 128), (1 - dim) * 0.6, 0)
        layer = np.zeros_like(img)
        x = rng.uniform(0, W, density)
        y = rng.uniform(0, H, density)
        length = rng.uniform(15, 45, density)
        for xi, yi, li in zip(x, y, length):
            cv2.line(layer, (int(xi), int(yi)), (int(xi + 0.25 * li), int(yi + li)), (70, 70, 70), 1, cv2.LINE_AA)
        return cv2.add(out, layer)

    return apply


def compose(*fns: Perturb) -> Perturb:
    """Apply perturbations left to right."""

    def apply(img: np.ndarray, t: float) -> np.ndarray:
        for f in fns:
            img = f(img, t)
        return img

    return apply


# --- extra actors -------------------------------------------------------------------------------------------


def _interp(keys: Sequence[tuple[float, float, float]], t: float) -> tuple[float, float] | None:
    if t < keys[0][0] or t > keys[-1][0]:
        return None
    for (ta, xa, ya), (tb, xb, yb) in zip(keys, keys[1:]):
        if ta <= t <= tb:
            f = 0.0 if tb == ta else (t - ta) / (tb - ta)
            return xa + (xb - xa) * f, ya + (yb - ya) * f
    return None


@dataclass(frozen=True)
class KeyedCar:
    """A car following key frames (t, x, ground_y): drives in, parks where keys hold, drives off."""

    keys: tuple[tuple[float, float, float], ...]
    length: float
    colour: tuple[int, int, int]
    facing: int = -1
    van: bool = False

    def depth(self, t: float) -> float | None:
        p = _interp(self.keys, t)
        return None if p is None else p[1]

    def draw(self, img: np.ndarray, t: float) -> None:
        p = _interp(self.keys, t)
        if p is not None:
            draw_car(img, p[0], p[1], self.length, self.facing, self.colour, self.van)


def crowd(n: int, y_range: tuple[float, float], layout: StreetLayout, seed: int,
          speed: tuple[float, float] = (0.5, 0.9), t_range: tuple[float, float] = (0.0, 90.0)) -> list[Drawable]:
    """``n`` passers-by entering between ``t_range`` at feet rows in ``y_range`` (a dense crowd for large n)."""
    rng = np.random.default_rng(seed)
    out: list[Drawable] = []
    for _ in range(n):
        fy = float(rng.uniform(*y_range))
        h = layout.person_height(fy)
        out.append(PasserBy(t0=float(rng.uniform(*t_range)), foot_y=fy, height=h,
                            speed=float(h * rng.uniform(*speed)), facing=int(rng.choice((-1, 1))),
                            look=random_look(rng)))
    return out


def _overlay(base: Callable[[float], np.ndarray], actors: Sequence[Drawable]) -> Callable[[float], np.ndarray]:
    def frame(t: float) -> np.ndarray:
        img = base(t)
        visible = sorted((d, i) for i, a in enumerate(actors) if (d := a.depth(t)) is not None)
        for _, i in visible:
            actors[i].draw(img, t)
        return img

    return frame


class _Plan:
    """What ``demo.scenes.Scene`` needs from a plan: a layout, actors, ground truth."""

    def __init__(self, layout: StreetLayout, actors: Sequence[Drawable], truth: Sequence[GroundTruth] = ()) -> None:
        self.layout = layout
        self.actors = tuple(actors)
        self.ground_truth = tuple(truth)


def _traffic(layout: StreetLayout, ground_y: float, n: int, seed: int, facing: int) -> list[Drawable]:
    """``n`` cars evenly spread over the 90 s loop in one lane, steady speeds, never overlapping."""
    from demo.actors import Car

    rng = np.random.default_rng(seed)
    h = layout.person_height(ground_y)
    out: list[Drawable] = []
    for k in range(n):
        out.append(Car(t0=90.0 * k / n + float(rng.uniform(0, 2)), ground_y=ground_y,
                       length=float(h * rng.uniform(2.4, 2.8)), speed=float(h * 4.5), facing=facing,
                       colour=CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))], van=bool(rng.random() < 0.3)))
    return out


ROAD_LAYOUT = StreetLayout(building_bottom=200, kerb_y=300, lane_line_y=508)
FAR_LANE_Y = 470.0


def road_scene(name: str, seed: int, extra: Sequence[Drawable]) -> Scene:
    """The road camera's street (same layout as the demo ``road_occupation`` scene) without the goods: near-lane
    traffic all the time, passers-by on the pavement, plus ``extra`` actors."""
    rng = np.random.default_rng([seed, 99])
    actors: list[Drawable] = list(extra)
    actors += crowd(20, (215.0, 292.0), ROAD_LAYOUT, seed + 1, speed=(0.65, 0.95))
    actors += _traffic(ROAD_LAYOUT, 705.0, 10, seed + 2, facing=1)
    return Scene(name, seed, _Plan(ROAD_LAYOUT, actors), rng)  # type: ignore[arg-type]


# --- the suite ----------------------------------------------------------------------------------------------


def _camera(settings: Settings, scene_name: str, dwell_s: float | None = None) -> Camera:
    (cam,) = [c for c in settings.cameras if c.url == f"demo://{scene_name}"]
    if dwell_s is None:
        return cam
    return cam.model_copy(update={"zones": [z.model_copy(update={"dwell_s": dwell_s}) for z in cam.zones]})


def _demo_truth(scene: Scene, offset: float = 0.0) -> list[Truth]:
    return [Truth(g.event, g.zone_id, g.start_s + offset, g.end_s + offset) for g in scene.ground_truth]


def build_suite(settings: Settings, seed: int | None = None) -> list[Scenario]:
    """Every scenario of the accuracy benchmark (deterministic for a seed; default the demo seed)."""
    seed = settings.demo.seed if seed is None else seed
    scenes = {n: make_scene(n, seed) for n in ("vending", "bin_overflow", "road_occupation", "quiet_street")}
    out: list[Scenario] = []

    def demo(scene_name: str, label: str, perturb: Perturb | None = None, *, hard: str = "",
             extra: Sequence[Drawable] = (), seconds: int = 90, note: str = "") -> None:
        scene = scenes[scene_name]
        base: Callable[[float], np.ndarray] = scene.render
        if extra:
            base = _overlay(base, list(extra))
        frame = base if perturb is None else (lambda t, b=base, p=perturb: p(b(t), t))
        out.append(Scenario(f"{scene_name}/{label}@{seed}", _camera(settings, scene_name), frame, seconds,
                            _demo_truth(scene), hard, note))

    dusk = gain_ramp([(0, 1.0), (20, 1.0), (50, 0.6), (90, 0.6)])            # 40 % darker over 30 s
    cloud = gain_ramp([(0, 1.0), (30, 1.0), (33, 0.7), (45, 0.7), (48, 1.0), (62, 1.0), (64, 1.25),
                       (75, 1.25), (77, 1.0)])                                    # cloud over the sun, then glare
    cloud_shadow = compose(shadow_band(x0=-300, speed=45, width=350, depth=0.35, start_s=12),
                           shadow_band(x0=-300, speed=60, width=250, depth=0.3, start_s=50))
    creeping = shadow_band(x0=-200, speed=6, width=0, depth=0.4, soft=80, start_s=10, edge_only=True)
    noisy = sensor_noise(9.0, seed)
    rainy = rain(800, seed)

    for scene_name in ("vending", "bin_overflow", "road_occupation", "quiet_street"):
        demo(scene_name, "plain")
        demo(scene_name, "dusk-ramp", dusk, hard="lighting change")
        demo(scene_name, "cloud-steps", cloud, hard="lighting change")
        demo(scene_name, "cloud-shadows", cloud_shadow, hard="moving shadows")
        demo(scene_name, "creeping-shadow", creeping, hard="moving shadows",
             note="a building shadow edge creeping 6 px/s")
        demo(scene_name, "noise-9", noisy, hard="camera noise")
        demo(scene_name, "rain", rainy, hard="rain")

    vend = scenes["vending"].layout
    demo("vending", "crowd", extra=crowd(90, (480.0, 560.0), vend, seed + 10), hard="crowds passing",
         note="90 extra passers-by in front of the stall")
    quiet = scenes["quiet_street"].layout
    demo("quiet_street", "crowd", extra=crowd(220, (290.0, 712.0), quiet, seed + 11), hard="crowds passing",
         note="220 extra passers-by")
    demo("quiet_street", "slow-crowd",
         extra=crowd(120, (290.0, 712.0), quiet, seed + 12, speed=(0.15, 0.3)), hard="crowds passing",
         note="120 extra strollers at a third of walking pace")

    # Vehicles stopping in the lane: no road_occupation truth (parking / loading is not goods on the road).
    h = ROAD_LAYOUT.person_height(FAR_LANE_Y)
    car = KeyedCar(keys=((8.0, 1500.0, FAR_LANE_Y), (11.0, 600.0, FAR_LANE_Y), (61.0, 600.0, FAR_LANE_Y),
                         (64.0, -300.0, FAR_LANE_Y)), length=2.6 * h, colour=(40, 40, 170))
    rider = Look((110, 140, 180), (30, 30, 35), (90, 90, 90), (50, 60, 80))
    trike = Tricycle(keys=((8.0, -300.0, FAR_LANE_Y + 30), (11.0, 700.0, FAR_LANE_Y + 30),
                           (31.0, 700.0, FAR_LANE_Y + 30), (34.0, 1600.0, FAR_LANE_Y + 30)),
                     height_at=ROAD_LAYOUT.person_height, look=rider)
    for label, actor, hard, note in (
            ("parked-car-50s", car, "parked car", "a car parks in lane-1 for 50 s (11-61 s)"),
            ("delivery-stop-20s", trike, "delivery stops 20 s", "a cargo tricycle stops in lane-1 for 20 s")):
        scene = road_scene(f"road-{label}", seed, [actor])
        for dwell in (None, 60.0):
            cam = _camera(settings, "road_occupation", dwell)
            suffix = "" if dwell is None else f" (dwell {dwell:g} s)"
            out.append(Scenario(f"road/{label}{'' if dwell is None else '-dwell60'}@{seed}", cam, scene.render, 90, [],
                                hard, note + suffix))

    # Goods dumped in the lane right beside a car that parked there first: the car is not occupation, the goods
    # are. (No delivery vehicle: the goods appear piece by piece, as when people carry them out of a shop.)
    from demo.props import Goods

    gy = 455.0
    goods = Goods(x=1020.0, foot_y=gy, height_px=ROAD_LAYOUT.person_height(gy), dropped=(20.0, 22.0),
                  removed=(68.0, 70.0), seed=seed)
    scene = road_scene("road-parked-car-and-goods", seed, [car, goods])
    out.append(Scenario(f"road/parked-car-and-goods@{seed}", _camera(settings, "road_occupation"), scene.render, 90,
                        [Truth("road_occupation", "lane-1", 20.0, 70.0)], "parked car",
                        "a car parks in lane-1 (11-61 s); goods dumped beside it 20-22 s, removed 68-70 s"))
    return out
