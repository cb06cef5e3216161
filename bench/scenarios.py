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
from demo.backdrop import H, StreetLayout, W
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
        for xi, yi, li in zip(x, y, length, strict=False):
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
    for (ta, xa, ya), (tb, xb, yb) in zip(keys, keys[1:], strict=False):
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
    return Scene(name, seed, _Plan(ROAD_LAYOUT, actors), rng)


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


# --- what stays: street life that is no event, and the look-alikes that are (issue "know what stays") -------------
#
# One pavement camera, three zones as a 街道 would draw them: the pavement (no vending, no piles, no rubbish; dwell
# 30 s), the same pavement as a no-parking zone for two-wheelers (dwell 60 s) and the strip along the shop fronts
# (店外经营, dwell 30 s). Every scene runs under three conditions: normal, a shaking pole (the picture jumps a few
# pixels every second), and a low bit rate (x264 crf 38) with extra traffic walking and riding through the zone.

from demo.props import Goods as PileOfGoods  # noqa: E402
from demo.street_life import (  # noqa: E402
    Bench,
    BusStop,
    CargoTrike,
    DroppedBags,
    GroundMat,
    ShopGoods,
    Sitter,
    TwoWheeler,
    Walker,
    waiting_person,
)

LIFE_LAYOUT = StreetLayout(building_bottom=300, kerb_y=565, keep_clear=((120, 1160),))
LIFE_SECONDS = 150
CONDITIONS = ("normal", "shake", "lowrate")


def life_camera() -> Camera:
    """The street-life scenarios' camera: pavement, no-parking and shop-front zones."""
    pave = [[0.0, 0.5], [1.0, 0.5], [1.0, 0.78], [0.0, 0.78]]
    return Camera.model_validate({
        "id": "cam-life", "name": "解放路公交站", "url": "demo://vending",
        "position": {"lon": 120.1552, "lat": 30.2741, "address": "解放路公交站", "street": "湖滨街道"}, "zones": [
            {"id": "pavement", "name": "人行道", "events": ["vending", "road_occupation", "exposed_rubbish"],
             "dwell_s": 30, "min_area": 0.004, "polygon": pave},
            {"id": "no-parking", "name": "非机动车禁停区", "events": ["bike_parking"], "dwell_s": 60,
             "min_area": 0.004, "polygon": pave},
            {"id": "shopfront", "name": "门前三包区", "events": ["shop_front"], "dwell_s": 30, "min_area": 0.003,
             "polygon": [[0.0, 0.41], [1.0, 0.41], [1.0, 0.5], [0.0, 0.5]]},
        ]})


def _shaken(render: Callable[[float], np.ndarray], perturb: Perturb) -> Callable[[float], np.ndarray]:
    """``render`` with ``perturb`` applied to every frame."""
    return lambda t: perturb(render(t), t)


def shake(amplitude_px: float = 3.0, seed: int = 0) -> Perturb:
    """A pole in the wind: every sample the picture is shifted (σ ``amplitude_px``) and turned a little."""

    def apply(img: np.ndarray, t: float) -> np.ndarray:
        rng = np.random.default_rng([seed, int(round(t * 10)), 5])
        dx, dy = np.clip(rng.normal(0, amplitude_px, 2), -2.5 * amplitude_px, 2.5 * amplitude_px)
        ang = float(rng.normal(0, 0.12))
        m = cv2.getRotationMatrix2D((W / 2, H / 2), ang, 1.0)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REFLECT)

    return apply


class Compressed:
    """The frames of ``frame(t)`` for t = 0..seconds-1 through x264 at ``crf`` (1 frame/s, a keyframe every 2 s,
    as a low-bit-rate camera sampled once a second), decoded back; encoded once, on first use."""

    def __init__(self, frame: Callable[[float], np.ndarray], seconds: int, crf: int = 38) -> None:
        self._frame, self._seconds, self._crf = frame, seconds, crf
        self._frames: list[np.ndarray] | None = None

    def _encode(self) -> list[np.ndarray]:
        import av

        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
        enc.time_base = __import__("fractions").Fraction(1, 1)
        enc.options = {"crf": str(self._crf), "preset": "veryfast", "g": "2", "bf": "0", "tune": "zerolatency"}
        dec = av.CodecContext.create("h264", "r")
        out: list[np.ndarray] = []
        packets = []
        for i in range(self._seconds):
            vf = av.VideoFrame.from_ndarray(self._frame(float(i)), format="bgr24")
            vf.pts = i
            packets += enc.encode(vf)
        packets += enc.encode(None)
        for pkt in packets:
            for fr in dec.decode(pkt):
                out.append(fr.to_ndarray(format="bgr24"))
        for fr in dec.decode(None):
            out.append(fr.to_ndarray(format="bgr24"))
        return out

    def __call__(self, t: float) -> np.ndarray:
        if self._frames is None:
            self._frames = self._encode()
        return self._frames[min(int(round(t)), len(self._frames) - 1)].copy()


def _life_scene(name: str, seed: int, extra: Sequence[Drawable], busy: bool = False) -> Scene:
    """The pavement street with ``extra`` actors, its own passers-by and traffic; ``busy`` adds people walking and
    cycling through the zone."""
    from demo.actors import Cyclist

    rng = np.random.default_rng([seed, 77])
    lay = LIFE_LAYOUT
    actors: list[Drawable] = list(extra)
    actors += crowd(22, (330.0, 560.0), lay, seed + 21, t_range=(0.0, float(LIFE_SECONDS)))
    actors += _traffic(lay, 706.0, 9, seed + 22, facing=1)
    if busy:
        actors += crowd(40, (340.0, 560.0), lay, seed + 23, t_range=(0.0, float(LIFE_SECONDS)))
        for _k in range(8):
            fy = float(rng.uniform(380.0, 550.0))
            h = lay.person_height(fy)
            actors.append(Cyclist(t0=float(rng.uniform(0, LIFE_SECONDS)), foot_y=fy, height=h,
                                  speed=float(h * rng.uniform(2.0, 3.0)), facing=int(rng.choice((-1, 1))),
                                  look=random_look(rng), period=float(LIFE_SECONDS)))
    scene = Scene(name, seed, _Plan(lay, actors), rng)
    scene.duration_s = float(LIFE_SECONDS)  # one pass, no 90 s loop
    return scene


def _looks(seed: int, n: int) -> list[Look]:
    rng = np.random.default_rng([seed, 31])
    return [random_look(rng) for _ in range(n)]


def life_plans(seed: int) -> list[tuple[str, str, list[Drawable], list[Truth], str]]:
    """(name, what it is, actors, truth, note) of every street-life scene."""
    lay = LIFE_LAYOUT
    ph = lay.person_height
    lk = _looks(seed, 12)
    plans: list[tuple[str, str, list[Drawable], list[Truth], str]] = []
    end = float(LIFE_SECONDS)

    # People waiting at a bus stop for two minutes, then the bus comes.
    fy = 500.0
    stop = BusStop(x=640.0, foot_y=fy, height_px=ph(fy))
    queue: list[Drawable] = [stop]
    for k in range(5):
        queue.append(waiting_person(8.0 + 4 * k, 128.0 + k, 470.0 + k * 70 + (k % 2) * 12, fy + (k % 2) * 10, ph,
                                    lk[k], enter_from=-150.0 if k % 2 else 1450.0))
    plans.append(("bus-queue", "people waiting", queue, [], "5 people queue at a bus stop 8-130 s"))

    # A person sitting on a bench for minutes.
    fy = 470.0
    bench = Bench(x=560.0, foot_y=fy, height_px=ph(fy))
    sit = Sitter(walk_in=((4.0, -120.0, fy + 8), (10.0, 540.0, fy + 8)), sit=(10.0, 140.0), x=540.0,
                 seat_y=bench.seat_y, foot_y=fy + 4, walk_out=((140.0, 540.0, fy + 8), (147.0, 1400.0, fy + 8)),
                 height_at=ph, look=lk[5])
    plans.append(("bench-sitter", "person on a bench", [bench, sit], [], "sits on a bench 10-140 s"))

    # Two people chatting, standing still.
    fy = 480.0
    a = Walker(((2.0, -150.0, fy), (9.0, 560.0, fy), (135.0, 560.0, fy), (142.0, -150.0, fy)), ph, lk[6], 1)
    b = Walker(((3.0, 1450.0, fy + 6), (10.0, 640.0, fy + 6), (135.0, 640.0, fy + 6), (143.0, 1450.0, fy + 6)),
               ph, lk[7], -1)
    plans.append(("chatting", "people chatting", [a, b], [], "two people chat 10-135 s"))

    # Two-wheelers parked, the rider walks away; taken at 135 s.
    fy = 480.0
    for kind, colour, ridden in (("bicycle", (40, 40, 160), True), ("shared", (20, 170, 240), False),
                                 ("ebike", (200, 200, 205), True)):
        if ridden:  # ridden in at cycling speed, the rider gets off at 12 s
            keys = ((6.0, -200.0, fy), (11.0, 600.0, fy), (136.0, 600.0, fy), (141.0, 1500.0, fy))
            ride: tuple[tuple[float, float], ...] = ((0.0, 12.0), (136.0, 200.0))
        else:  # pushed in by hand at walking pace
            keys = ((2.0, -200.0, fy), (11.0, 600.0, fy), (136.0, 600.0, fy), (145.0, 1500.0, fy))
            ride = ()
        bike = TwoWheeler(keys, ph, kind, colour, lk[8], ride=ride)
        owner = Walker(((12.0, 620.0, fy + 12), (19.0, 1450.0, fy + 12)) if ridden else
                       ((2.0, -240.0, fy + 12), (11.0, 560.0, fy + 12), (12.5, 560.0, fy + 12),
                        (19.0, -240.0, fy + 12)),
                       ph, lk[8])
        back = Walker(((129.0, 1450.0, fy + 12), (136.0, 620.0, fy + 12)), ph, lk[8]) if ridden else \
            Walker(((129.0, -240.0, fy + 12), (136.0, 560.0, fy + 12), (145.0, 1400.0, fy + 12)), ph, lk[8])
        plans.append((f"parked-{kind}", "parked two-wheeler", [bike, owner, back],
                      [Truth("bike_parking", "no-parking", 13.0, 136.0)],
                      f"a {kind} {'ridden' if ridden else 'pushed'} in and left 12-136 s"))

    # An e-bike parked next to a bench its rider sits on: minded, no event (the case that raised vending before).
    fy = 470.0
    bench = Bench(x=430.0, foot_y=fy, height_px=ph(fy))
    ebike = TwoWheeler(((5.0, 1500.0, fy + 14), (11.0, 640.0, fy + 14), (150.0, 640.0, fy + 14)), ph, "ebike",
                       (60, 60, 200), lk[9], ride=((0.0, 12.0),))
    rider = Sitter(walk_in=((12.0, 600.0, fy + 10), (15.0, 450.0, fy + 10)), sit=(15.0, 150.0), x=450.0,
                   seat_y=bench.seat_y, foot_y=fy + 4, walk_out=(), height_at=ph, look=lk[9], facing=1)
    plans.append(("bench-and-ebike", "person on a bench + e-bike", [bench, ebike, rider], [],
                  "rides an e-bike in, parks it beside the bench and sits there 15-150 s"))

    # A delivery rider's e-bike with its box, stopped 3 minutes' worth: rider beside it on the phone, then into a
    # shop for 50 s (less than the no-parking dwell), back and away. No goods out: no event.
    fy = 485.0
    dl = TwoWheeler(((4.0, -200.0, fy), (9.0, 700.0, fy), (128.0, 700.0, fy), (133.0, 1500.0, fy)), ph, "ebike",
                    (40, 150, 240), lk[10], ride=((0.0, 10.0), (127.0, 200.0)), box=True)
    courier = Walker(((10.0, 760.0, fy + 14), (11.0, 780.0, fy + 14), (60.0, 780.0, fy + 14),
                      (64.0, 830.0, 330.0), (114.0, 830.0, 330.0), (118.0, 760.0, fy + 14), (127.0, 760.0, fy + 14)),
                     ph, lk[10])
    plans.append(("delivery-ebike", "delivery e-bike stopped", [dl, courier], [],
                  "e-bike with a box stopped 9-128 s; rider beside it, 64-114 s in a shop"))

    # A seller on a ground mat (地摊): must alarm.
    fy = 470.0
    mat = GroundMat(x=560.0, foot_y=fy + 30, height_px=ph(fy + 30), setup=(12.0, 16.0), packup=(136.0, 140.0),
                    seed=seed)
    seller = Sitter(walk_in=((5.0, -150.0, fy), (11.0, 470.0, fy)), sit=(16.0, 136.0), x=450.0,
                    seat_y=fy - 0.12 * ph(fy), foot_y=fy, walk_out=((140.0, 470.0, fy), (147.0, -150.0, fy)),
                    height_at=ph, look=lk[11])
    stand = Walker(((11.0, 470.0, fy), (16.0, 470.0, fy)), ph, lk[11])
    pack = Walker(((136.0, 470.0, fy), (140.0, 470.0, fy)), ph, lk[11])
    plans.append(("mat-vendor", "ground-mat vendor", [mat, seller, stand, pack],
                  [Truth("vending", "pavement", 16.0, 140.0)], "seller sets out a mat of goods 12-16 s, sits by it"))

    # The same, but the seller leaves for a minute and comes back: one alarm, not two.
    seller2 = Sitter(walk_in=((5.0, -150.0, fy), (11.0, 470.0, fy)), sit=(16.0, 55.0), x=450.0,
                     seat_y=fy - 0.12 * ph(fy), foot_y=fy, walk_out=((55.0, 470.0, fy), (61.0, -150.0, fy)),
                     height_at=ph, look=lk[11])
    seller3 = Sitter(walk_in=((109.0, -150.0, fy), (115.0, 470.0, fy)), sit=(115.0, 136.0), x=450.0,
                     seat_y=fy - 0.12 * ph(fy), foot_y=fy, walk_out=((140.0, 470.0, fy), (147.0, -150.0, fy)),
                     height_at=ph, look=lk[11])
    plans.append(("vendor-steps-away", "vendor leaves 1 min", [mat, seller2, seller3, stand, pack],
                  [Truth("vending", "pavement", 16.0, 140.0)], "as mat-vendor; the seller is away 55-115 s"))

    # A vendor rides in on a cargo tricycle, gets off and sets out goods beside it: must alarm.
    fy = 480.0
    trike = CargoTrike(keys=((4.0, -300.0, fy), (9.0, 640.0, fy), (138.0, 640.0, fy), (143.0, 1600.0, fy)),
                       height_at=ph, rider=lk[3], dismount=11.0, remount=137.0, setup=(13.0, 18.0),
                       packup=(133.0, 136.0), seed=seed)
    vendor = Walker(((11.0, 700.0, fy + 8), (12.0, 740.0, fy + 8), (137.0, 740.0, fy + 8)), ph, lk[3], -1)
    plans.append(("trike-vendor", "tricycle vendor", [trike, vendor], [Truth("vending", "pavement", 18.0, 136.0)],
                  "rides in 4-9 s, sets out goods 13-18 s, stands by them"))

    # A shop's goods pushed out beyond its front, the shopkeeper carrying them and coming and going.
    fy = 345.0
    goods = ShopGoods(x=640.0, foot_y=fy, height_px=ph(fy), out=(10.0, 25.0), back=(130.0, 136.0))
    keeper_keys: list[tuple[float, float, float]] = []
    t = 8.0
    while t < 136.0:
        keeper_keys += [(t, 720.0, 318.0), (t + 2.0, 560.0, fy + 12), (t + 6.0, 560.0, fy + 12),
                        (t + 8.0, 720.0, 318.0)]
        t += 14.0 if 25.0 < t < 120.0 else 9.0
    keeper = Walker(tuple(keeper_keys), ph, lk[4])
    plans.append(("shop-goods", "shop goods outside", [goods, keeper], [Truth("shop_front", "shopfront", 25.0, 136.0)],
                  "crates carried out 10-25 s, taken in 130-136 s; the shopkeeper comes and goes"))

    # Rubbish bags dropped on the pavement by someone walking by.
    fy = 500.0
    bags = DroppedBags(x=600.0, foot_y=fy, height_px=ph(fy), drop=20.0, removed=132.0, seed=seed)
    dropper = Walker(((12.0, -150.0, fy + 10), (19.0, 580.0, fy + 10), (20.5, 580.0, fy + 10), (27.0, 1450.0, fy + 10)),
                     ph, lk[2])
    cleaner = Walker(((126.0, 1450.0, fy + 10), (130.0, 640.0, fy + 10), (133.0, 640.0, fy + 10),
                      (140.0, 1450.0, fy + 10)),
                     ph, Look((110, 140, 180), (30, 30, 35), (20, 120, 245), (60, 60, 70), hi_vis=True))
    plans.append(("rubbish-bags", "rubbish left", [bags, dropper, cleaner],
                  [Truth("exposed_rubbish", "pavement", 20.0, 132.0)], "4 bags left 20-132 s"))

    # Boxes and materials piled on the pavement with nobody at them.
    fy = 470.0
    pile = PileOfGoods(x=560.0, foot_y=fy, height_px=ph(fy), dropped=(12.0, 15.0), removed=(128.0, 131.0), seed=seed)
    plans.append(("pile-on-pavement", "goods unattended", [pile], [Truth("road_occupation", "pavement", 15.0, 131.0)],
                  "boxes, bricks and pipes piled 12-131 s"))
    del end
    return plans


def build_life_suite(seed: int = 7, conditions: Sequence[str] = CONDITIONS) -> list[Scenario]:
    """Every street-life scene under every condition (deterministic for ``seed``)."""
    cam = life_camera()
    out: list[Scenario] = []
    for name, what, actors, truth, note in life_plans(seed):
        for cond in conditions:
            scene = _life_scene(f"life-{name}", seed, actors, busy=(cond == "lowrate"))
            frame: Callable[[float], np.ndarray] = scene.render
            if cond == "shake":
                frame = _shaken(frame, shake(3.0, seed))
            elif cond == "lowrate":
                frame = Compressed(frame, LIFE_SECONDS, crf=38)
            out.append(Scenario(f"life/{name}/{cond}@{seed}", cam, frame, LIFE_SECONDS, list(truth), what, note,
                                tags=(cond,)))
    return out
