"""Deterministic synthetic street scenes for the demo cameras (1280x720, 25 fps, 90 s loops).

A scene is a fixed camera across a street: a static backdrop (``demo.backdrop``) painted once, and per frame
the moving and changing things (``demo.actors``, ``demo.props``) drawn far-to-near, then a gentle global
lighting drift (±5 % over the loop) and sensor noise. Everything follows from ``(name, seed)``: the same seed
gives bit-identical frames. ``ground_truth`` lists the events a detector should find, with the zone ids of
``config/demo.yaml``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from demo.actors import (
    CAR_COLOURS,
    Car,
    Cyclist,
    Drawable,
    Look,
    PasserBy,
    ScriptedPerson,
    Tricycle,
    random_look,
)
from demo.backdrop import H, StreetLayout, W, paint_street
from demo.props import Bin, Goods, Stall

SCENE_NAMES = ("vending", "bin_overflow", "road_occupation", "quiet_street", "bus_stop", "mat_vendor")
"""Every scene. The demo cameras (config/demo.yaml) show the first four; ``bus_stop`` (people waiting, a parked
bicycle: no event) and ``mat_vendor`` (a seller on a ground mat: vending) are the street-life pair the end-to-end
test of the judgement runs over RTSP."""
FPS = 25
DURATION_S = 90.0
NOISE_FRAMES = 8        # distinct sensor-noise fields, cycled frame by frame
NOISE_SIGMA = 2.5       # grey levels
LIGHT_DRIFT = 0.05      # ±5 % brightness over one loop


@dataclass(frozen=True)
class GroundTruth:
    """An event the scene stages: ``event`` (an EventType value) in zone ``zone_id`` from ``start_s`` to
    ``end_s`` (seconds into the loop; the object is in place and unmoving in between)."""

    event: str
    zone_id: str
    start_s: float
    end_s: float

    def active(self, t_s: float) -> bool:
        """Whether the event is staged at loop time ``t_s``."""
        return self.start_s <= (t_s % DURATION_S) < self.end_s


@dataclass(frozen=True)
class _Plan:
    layout: StreetLayout
    actors: tuple[Drawable, ...]
    ground_truth: tuple[GroundTruth, ...]


class ScenePlan(Protocol):
    """What a :class:`Scene` is drawn from: ``_Plan`` here, or a bench's own scenario plan."""

    @property
    def layout(self) -> StreetLayout: ...

    @property
    def actors(self) -> tuple[Drawable, ...]: ...

    @property
    def ground_truth(self) -> tuple[GroundTruth, ...]: ...


class Scene:
    """One demo camera's scene. ``render(t_s)`` returns the BGR uint8 (720, 1280, 3) frame at loop time ``t_s``
    (wrapped into the 90 s loop, snapped to the 25 fps frame grid)."""

    def __init__(self, name: str, seed: int, plan: ScenePlan, rng: np.random.Generator) -> None:
        self.name = name
        self.seed = seed
        self.duration_s = DURATION_S
        self.fps = FPS
        self.width = W
        self.height = H
        self.layout = plan.layout
        self.ground_truth: list[GroundTruth] = list(plan.ground_truth)
        self._actors = plan.actors
        self._background = paint_street(plan.layout, rng)
        # Sensor noise is centred on +8 so one saturating add and one lookup table apply noise and lighting.
        noise = rng.normal(8.0, NOISE_SIGMA, size=(NOISE_FRAMES, H, W, 1))
        self._noise = [np.ascontiguousarray(np.repeat(np.clip(n, 0, 16).astype(np.uint8), 3, axis=2))
                       for n in noise]
        self._light_phase = float(rng.uniform(0, 2 * math.pi))

    @property
    def frame_count(self) -> int:
        """Frames in one loop (2250)."""
        return int(round(self.duration_s * self.fps))

    def brightness(self, t_s: float) -> float:
        """Global lighting factor at ``t_s`` (1 ± 0.05, periodic with the loop)."""
        return 1.0 + LIGHT_DRIFT * math.sin(2 * math.pi * t_s / self.duration_s + self._light_phase)

    def render(self, t_s: float, *, noise: bool = True) -> np.ndarray:
        """The frame at loop time ``t_s``. ``noise=False`` skips sensor noise and lighting drift (for tests that
        compare object pixels)."""
        n = int(round(t_s * self.fps)) % self.frame_count
        t = n / self.fps
        img = self._background.copy()
        visible = [(d, i, a) for i, a in enumerate(self._actors) if (d := a.depth(t)) is not None]
        for _, _, actor in sorted(visible, key=lambda v: (v[0], v[1])):
            actor.draw(img, t)
        if not noise:
            return img
        img = cv2.add(img, self._noise[n % NOISE_FRAMES])
        f = self.brightness(t)
        lut = np.clip((np.arange(256, dtype=np.float32) - 8.0) * f, 0, 255).astype(np.uint8)
        return cv2.LUT(img, lut)

    def __repr__(self) -> str:
        return f"Scene({self.name!r}, seed={self.seed})"


# --- scene plans ----------------------------------------------------------------------------------------------


def _passers(rng: np.random.Generator, layout: StreetLayout, n: int, y_range: tuple[float, float]) -> list[Drawable]:
    out: list[Drawable] = []
    for _ in range(n):
        fy = float(rng.uniform(*y_range))
        h = layout.person_height(fy)
        out.append(PasserBy(t0=float(rng.uniform(0, DURATION_S)), foot_y=fy, height=h,
                            speed=float(h * rng.uniform(0.65, 0.95)), facing=int(rng.choice((-1, 1))),
                            look=random_look(rng)))
    return out


def _traffic(rng: np.random.Generator, layout: StreetLayout, ground_y: float, n: int,
             allowed: Callable[[float, float], bool] = lambda a, b: True, vans: float = 0.15) -> list[Drawable]:
    """``n`` cars along one lane, all driving at a steady speed; ``allowed(enter, leave)`` vetoes time slots."""
    out: list[Drawable] = []
    h = layout.person_height(ground_y)
    tries = 0
    while len(out) < n and tries < 500:
        tries += 1
        car = Car(t0=float(rng.uniform(0, DURATION_S)), ground_y=ground_y + float(rng.uniform(-4, 4)),
                  length=float(h * rng.uniform(2.4, 2.8)), speed=float(h * rng.uniform(3.5, 5.0)),
                  facing=1 if ground_y > 600 else -1,  # two-way road: near lane drives right
                  colour=CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))], van=bool(rng.random() < vans))
        enter, leave = car.visible_span()
        if not allowed(enter, leave):
            continue
        # Cars in one lane must not overlap each other.
        if any(isinstance(o, Car) and o.facing == car.facing and abs(o.t0 - enter) < (leave - enter) + 0.5
               for o in out):
            continue
        out.append(car)
    return out


def _vending(rng: np.random.Generator, seed: int) -> _Plan:
    layout = StreetLayout(building_bottom=300, kerb_y=565, keep_clear=((80, 560),))
    fy = 470.0
    stall_x = 320.0
    vendor_y = fy - 8
    h = layout.person_height(vendor_y)
    offset = 0.75 * h  # the vendor walks behind the cart, pushing it
    # Arrive from the left 7–10 s, set up 10–12.5 s, pack up 67.5–70 s, push the cart away to the left by ~73.5 s.
    stall = Stall(keys=((7.0, -260.0, fy), (10.0, stall_x, fy), (70.0, stall_x, fy), (73.5, -320.0, fy)),
                  height_at=layout.person_height, setup=(10.0, 12.5), packup=(67.5, 70.0), seed=seed)
    vendor = ScriptedPerson(
        keys=((7.0, -260.0 - offset, vendor_y), (10.0, stall_x - offset, vendor_y),
              (10.6, stall_x - offset, vendor_y), (11.6, stall_x - 0.55 * h, vendor_y - 14),
              (67.4, stall_x - 0.55 * h, vendor_y - 14), (68.4, stall_x + 0.75 * h, vendor_y - 14),
              (69.5, stall_x + 0.75 * h, vendor_y - 14), (70.0, stall_x + offset, vendor_y),
              (73.5, -320.0 + offset, vendor_y)),
        height_at=layout.person_height, look=Look((120, 150, 190), (30, 30, 35), (60, 140, 170), (60, 60, 70)))
    actors: list[Drawable] = [stall, vendor]
    actors += _passers(rng, layout, 36, (330.0, 555.0))
    actors += _traffic(rng, layout, 706.0, 9)
    return _Plan(layout, tuple(actors), (GroundTruth("vending", "pavement", 10.0, 70.0),))


def _bin_overflow(rng: np.random.Generator, seed: int) -> _Plan:
    layout = StreetLayout(building_bottom=300, kerb_y=565, keep_clear=((470, 810),))
    fy, bx = 515.0, 640.0
    h = layout.person_height(fy)
    the_bin = Bin(x=bx, foot_y=fy, height_px=h, overflow=(8.0, 14.0), cleared=(68.0, 70.0), seed=seed)
    cy = fy + 25
    cleaner = ScriptedPerson(
        keys=((63.0, 1400.0, cy), (67.5, bx + 0.45 * h, cy), (70.5, bx + 0.45 * h, cy), (74.5, 1420.0, cy)),
        height_at=layout.person_height, facing_when_still=-1,
        look=Look((110, 140, 180), (30, 30, 35), (20, 120, 245), (60, 60, 70), hi_vis=True))
    actors: list[Drawable] = [the_bin, cleaner]
    actors += _passers(rng, layout, 32, (330.0, 555.0))
    actors += _traffic(rng, layout, 706.0, 8)
    return _Plan(layout, tuple(actors), (GroundTruth("bin_overflow", "bin-1", 8.0, 70.0),))


def _road_occupation(rng: np.random.Generator, seed: int) -> _Plan:
    layout = StreetLayout(building_bottom=200, kerb_y=300, lane_line_y=508)
    fy, gx = 455.0, 560.0
    h = layout.person_height(fy)
    goods = Goods(x=gx, foot_y=fy, height_px=h, dropped=(8.0, 10.0), removed=(68.0, 70.0), seed=seed)
    ty = fy + 30
    stop_x = gx + 1.75 * h
    th = layout.person_height(ty)
    rider = Look((110, 140, 180), (30, 30, 35), (90, 90, 90), (50, 60, 80))
    delivery = Tricycle(keys=((4.5, -300.0, ty), (7.5, stop_x, ty), (10.5, stop_x, ty), (13.5, 1600.0, ty)),
                        height_at=layout.person_height, look=rider)
    pickup = Tricycle(keys=((64.5, -300.0, ty), (67.5, stop_x, ty), (70.5, stop_x, ty), (73.5, 1600.0, ty)),
                      height_at=layout.person_height, look=rider)
    del th
    actors: list[Drawable] = [goods, delivery, pickup]
    actors += _passers(rng, layout, 20, (215.0, 292.0))
    # The far lane (lane-1) carries traffic only while it is clear; the near lane all the time, vans included,
    # which pass in front of the goods and hide them for a moment.
    actors += _traffic(rng, layout, 470.0, 3, allowed=lambda a, b: b < 4.3 or a > 74.0, vans=0.0)
    actors += _traffic(rng, layout, 705.0, 12, vans=0.35)
    return _Plan(layout, tuple(actors), (GroundTruth("road_occupation", "lane-1", 8.0, 70.0),))


def _quiet_street(rng: np.random.Generator, seed: int) -> _Plan:
    layout = StreetLayout(building_bottom=260, kerb_y=None)
    actors: list[Drawable] = _passers(rng, layout, 40, (290.0, 712.0))
    for _ in range(8):
        fy = float(rng.uniform(420.0, 700.0))
        h = layout.person_height(fy)
        actors.append(Cyclist(t0=float(rng.uniform(0, DURATION_S)), foot_y=fy, height=h,
                              speed=float(h * rng.uniform(2.0, 3.0)), facing=int(rng.choice((-1, 1))),
                              look=random_look(rng),
                              frame_colour=CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]))
    return _Plan(layout, tuple(actors), ())


def _bus_stop(rng: np.random.Generator, seed: int) -> _Plan:
    """People queue at a bus stop most of the loop; a cyclist parks a bicycle beside it and walks off. Nothing
    here is an event (the bike is not in a no-parking zone in the demo)."""
    from demo.street_life import BusStop, TwoWheeler, Walker, waiting_person

    layout = StreetLayout(building_bottom=300, kerb_y=565, keep_clear=((120, 1160),))
    ph = layout.person_height
    fy = 500.0
    actors: list[Drawable] = [BusStop(x=560.0, foot_y=fy, height_px=ph(fy))]
    for k in range(4):
        actors.append(waiting_person(5.0 + 3 * k, 80.0 + k, 420.0 + k * 75 + (k % 2) * 10, fy + (k % 2) * 10, ph,
                                     random_look(rng), enter_from=-150.0 if k % 2 else 1450.0))
    by = 470.0
    actors.append(TwoWheeler(((5.0, 1500.0, by), (9.0, 960.0, by), (82.0, 960.0, by), (86.0, -200.0, by)), ph,
                             "bicycle", (40, 40, 160), random_look(rng), ride=((0.0, 10.0), (82.0, 90.0))))
    rider = random_look(rng)
    actors.append(Walker(((10.0, 930.0, by + 12), (16.0, 1450.0, by + 12)), ph, rider))
    actors.append(Walker(((76.0, 1450.0, by + 12), (82.0, 930.0, by + 12)), ph, rider))
    actors += _passers(rng, layout, 24, (330.0, 555.0))
    actors += _traffic(rng, layout, 706.0, 8)
    return _Plan(layout, tuple(actors), ())


def _mat_vendor(rng: np.random.Generator, seed: int) -> _Plan:
    """A seller walks in, spreads a mat of goods (12-16 s), sits beside it and packs up at 70-74 s: vending."""
    from demo.street_life import GroundMat, Sitter, Walker

    layout = StreetLayout(building_bottom=300, kerb_y=565, keep_clear=((120, 1160),))
    ph = layout.person_height
    fy = 470.0
    seller = Look((120, 150, 190), (30, 30, 35), (40, 60, 160), (60, 60, 70))
    actors: list[Drawable] = [
        GroundMat(x=560.0, foot_y=fy + 30, height_px=ph(fy + 30), setup=(12.0, 16.0), packup=(70.0, 74.0), seed=seed),
        Sitter(walk_in=((5.0, -150.0, fy), (11.0, 470.0, fy)), sit=(16.0, 70.0), x=450.0, seat_y=fy - 0.12 * ph(fy),
               foot_y=fy, walk_out=((74.0, 470.0, fy), (80.0, -150.0, fy)), height_at=ph, look=seller),
        Walker(((11.0, 470.0, fy), (16.0, 470.0, fy)), ph, seller),
        Walker(((70.0, 470.0, fy), (74.0, 470.0, fy)), ph, seller),
    ]
    actors += _passers(rng, layout, 24, (330.0, 555.0))
    actors += _traffic(rng, layout, 706.0, 8)
    return _Plan(layout, tuple(actors), (GroundTruth("vending", "pavement", 12.0, 74.0),))


_PLANS: dict[str, Callable[[np.random.Generator, int], _Plan]] = {
    "bus_stop": _bus_stop,
    "mat_vendor": _mat_vendor,
    "vending": _vending,
    "bin_overflow": _bin_overflow,
    "road_occupation": _road_occupation,
    "quiet_street": _quiet_street,
}


def make_scene(name: str, seed: int) -> Scene:
    """The scene ``name`` (one of ``SCENE_NAMES``) for ``seed``; raises ``ValueError`` for an unknown name."""
    if name not in _PLANS:
        raise ValueError(f"unknown demo scene {name!r}; known: {', '.join(SCENE_NAMES)}")
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(name.encode())])
    plan = _PLANS[name](rng, seed)
    return Scene(name, seed, plan, rng)
