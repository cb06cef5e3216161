"""Street life that stays but is not an event: people waiting, sitting and chatting, parked bicycles and e-bikes —
and the look-alikes that are events: a seller on a ground mat, a vendor who rides in on a cargo tricycle and sets
out goods, a shop's goods pushed out beyond its front, rubbish bags left on the pavement.

Every class is a ``demo.actors.Drawable`` driven by the loop time, like the rest of the demo scenes. They exist so
the detectors can be judged on *what* stays (issue "know what stays"), not only on *that* something stays: the
labelled scenarios in ``bench/scenarios.py`` and two demo scenes (``bus_stop``, ``mat_vendor``) are built from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from demo.actors import AA, Look, _interp, _shade, draw_person
from demo.props import BAG_COLOURS, FRUIT, ramp


def draw_seated_person(img: np.ndarray, x: float, seat_y: float, height: float, facing: int, look: Look,
                       t: float, fidget: float = 1.0) -> None:
    """A person sitting on something ``seat_y`` high (hips there), feet on the ground ~0.26 h below, side-on.
    ``fidget`` scales small head and arm movements (a living person is never pixel-still)."""
    h = height
    f = facing
    sway = fidget * 0.012 * h * math.sin(0.8 * t)
    hip = (x, seat_y)
    knee = (x + f * 0.22 * h, seat_y + 0.01 * h)
    foot = (x + f * 0.25 * h, seat_y + 0.25 * h)
    shoulder = (x + f * 0.03 * h + sway, seat_y - 0.32 * h)
    lw, aw = max(2, int(0.075 * h)), max(2, int(0.055 * h))
    cv2.ellipse(img, (int(x + f * 0.12 * h), int(foot[1])), (int(0.2 * h), max(2, int(0.02 * h))), 0, 0, 360,
                (70, 72, 74), -1, AA)
    for col in (_shade(look.legs, 0.75), look.legs):
        cv2.line(img, (int(hip[0]), int(hip[1])), (int(knee[0]), int(knee[1])), col, lw, AA)
        cv2.line(img, (int(knee[0]), int(knee[1])), (int(foot[0]), int(foot[1])), col, lw, AA)
    cv2.line(img, (int(foot[0]), int(foot[1])), (int(foot[0] + f * 0.07 * h), int(foot[1])), (30, 30, 30), lw, AA)
    torso = np.array([[shoulder[0] - 0.1 * h, shoulder[1]], [shoulder[0] + 0.1 * h, shoulder[1]],
                      [hip[0] + 0.09 * h, hip[1] + 0.03 * h], [hip[0] - 0.09 * h, hip[1] + 0.03 * h]], np.int32)
    cv2.fillConvexPoly(img, torso, look.top, AA)
    # Forearms resting on the knees, hands moving a little (a phone, a snack).
    hand = (knee[0] - f * 0.02 * h, knee[1] - 0.05 * h + fidget * 0.015 * h * math.sin(1.7 * t))
    elbow = (shoulder[0] + f * 0.05 * h, shoulder[1] + 0.2 * h)
    cv2.line(img, (int(shoulder[0]), int(shoulder[1])), (int(elbow[0]), int(elbow[1])), look.top, aw, AA)
    cv2.line(img, (int(elbow[0]), int(elbow[1])), (int(hand[0]), int(hand[1])), look.top, aw, AA)
    cv2.circle(img, (int(hand[0]), int(hand[1])), max(2, int(0.03 * h)), look.skin, -1, AA)
    nod = fidget * 0.01 * h * math.sin(0.5 * t + 1.0)
    head = (int(shoulder[0] + f * 0.01 * h), int(shoulder[1] - 0.1 * h + nod))
    r = max(3, int(0.068 * h))
    cv2.circle(img, head, r, look.skin, -1, AA)
    cv2.ellipse(img, (head[0] - f * r // 4, head[1] - r // 4), (r, int(r * 0.8)), 0, 180, 360, look.hair, -1, AA)


# --- street furniture (present from the first frame: part of the background) ------------------------------------


@dataclass(frozen=True)
class Bench:
    """A park bench on the pavement, ``x`` its centre, feet on ``foot_y``; ``height_px`` of a person there."""

    x: float
    foot_y: float
    height_px: float

    @property
    def seat_y(self) -> float:
        return self.foot_y - 0.26 * self.height_px

    def depth(self, t: float) -> float | None:
        return self.foot_y - 0.5  # behind anyone standing on the same row

    def draw(self, img: np.ndarray, t: float) -> None:
        h, x, fy = self.height_px, self.x, self.foot_y
        half = 0.6 * h
        seat = self.seat_y
        wood, dark = (60, 95, 140), (40, 60, 90)
        for lx in (x - 0.85 * half, x + 0.85 * half):
            cv2.rectangle(img, (int(lx - 3), int(seat)), (int(lx + 3), int(fy)), (50, 50, 55), -1)
        cv2.rectangle(img, (int(x - half), int(seat - 0.03 * h)), (int(x + half), int(seat + 0.02 * h)), wood, -1)
        for k in range(3):
            yy = seat - 0.12 * h - k * 0.07 * h
            cv2.rectangle(img, (int(x - half), int(yy - 0.025 * h)), (int(x + half), int(yy + 0.01 * h)), dark, -1)


@dataclass(frozen=True)
class BusStop:
    """A bus stop: a pole with the route sign and a shelter roof on two posts (background)."""

    x: float
    foot_y: float
    height_px: float

    def depth(self, t: float) -> float | None:
        return self.foot_y - 40.0

    def draw(self, img: np.ndarray, t: float) -> None:
        h, x, fy = self.height_px, self.x, self.foot_y - 40.0
        roof = fy - 1.35 * h
        for px in (x - 1.4 * h, x + 1.4 * h):
            cv2.rectangle(img, (int(px - 3), int(roof)), (int(px + 3), int(fy)), (120, 120, 125), -1)
        cv2.rectangle(img, (int(x - 1.6 * h), int(roof - 0.08 * h)), (int(x + 1.6 * h), int(roof)), (60, 110, 40), -1)
        panel = img[int(roof + 0.05 * h):int(fy - 0.1 * h), int(x - 1.35 * h):int(x + 1.35 * h)]
        panel[:] = (panel.astype(np.uint16) * 3 // 4 + np.array([40, 45, 35], np.uint16)).astype(np.uint8)
        sx = x + 1.9 * h
        cv2.rectangle(img, (int(sx - 3), int(fy - 1.5 * h)), (int(sx + 3), int(fy + 40)), (90, 90, 95), -1)
        cv2.rectangle(img, (int(sx - 0.25 * h), int(fy - 1.5 * h)), (int(sx + 0.25 * h), int(fy - 1.05 * h)),
                      (150, 80, 20), -1)
        cv2.putText(img, "K58", (int(sx - 0.2 * h), int(fy - 1.22 * h)), cv2.FONT_HERSHEY_SIMPLEX, 0.012 * h,
                    (240, 240, 240), 2, AA)


# --- people who stay but are no event ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sitter:
    """Walks in along ``walk_in`` key frames, sits at (x, seat_y) from ``sit[0]`` to ``sit[1]``, then walks off
    along ``walk_out`` (both (t, x, foot_y) keys). ``seat_y`` is where the hips rest (a bench, a stool, a kerb)."""

    walk_in: tuple[tuple[float, float, float], ...]
    sit: tuple[float, float]
    x: float
    seat_y: float
    foot_y: float
    walk_out: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]
    look: Look
    facing: int = 1
    fidget: float = 1.0

    def depth(self, t: float) -> float | None:
        if self.sit[0] <= t < self.sit[1]:
            return self.foot_y
        for keys in (self.walk_in, self.walk_out):
            p = _interp(keys, t) if keys else None
            if p is not None:
                return p[1]
        return None

    def draw(self, img: np.ndarray, t: float) -> None:
        if self.sit[0] <= t < self.sit[1]:
            draw_seated_person(img, self.x, self.seat_y, self.height_at(self.foot_y), self.facing, self.look, t,
                               self.fidget)
            return
        for keys in (self.walk_in, self.walk_out):
            p = _interp(keys, t) if keys else None
            if p is not None:
                x, y, v = p
                h = self.height_at(y)
                if abs(v) > 1e-3:
                    draw_person(img, x, y, h, 2 * math.pi * t * abs(v) / (0.62 * h), 1 if v > 0 else -1, self.look)
                else:
                    draw_person(img, x, y, h, 1.3 * t, self.facing, self.look, swing=0.15)
                return


def waiting_person(arrive: float, leave: float, x: float, foot_y: float, height_at: Callable[[float], float],
                   look: Look, enter_from: float = -120.0, exit_to: float = 1400.0, pace: float = 0.8
                   ) -> Walker:
    """Someone who walks in from ``enter_from``, stands at ``x`` from ``arrive`` to ``leave`` (swaying, looking
    about), then walks off to ``exit_to`` — at a bus stop, chatting, waiting for a friend."""
    h = height_at(foot_y)
    t_in = abs(x - enter_from) / (pace * h)
    t_out = abs(exit_to - x) / (pace * h)
    return Walker(((arrive - t_in, enter_from, foot_y), (arrive, x, foot_y), (leave, x, foot_y),
                   (leave + t_out, exit_to, foot_y)), height_at, look, facing_when_still=1 if exit_to > x else -1)


@dataclass(frozen=True)
class Walker:
    """A scripted person like ``demo.actors.ScriptedPerson``, standing with a natural sway and shifting weight."""

    keys: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]
    look: Look
    facing_when_still: int = 1
    fidget: float = 1.0

    def depth(self, t: float) -> float | None:
        p = _interp(self.keys, t)
        return None if p is None else p[1]

    def draw(self, img: np.ndarray, t: float) -> None:
        p = _interp(self.keys, t)
        if p is None:
            return
        x, y, v = p
        h = self.height_at(y)
        if abs(v) > 1e-3:
            draw_person(img, x, y, h, 2 * math.pi * t * abs(v) / (0.62 * h), 1 if v > 0 else -1, self.look)
        else:
            k = self.fidget
            sway = k * 0.025 * h * math.sin(0.7 * t + x)
            turn = self.facing_when_still if math.sin(0.13 * t + x) > -0.6 else -self.facing_when_still
            draw_person(img, x + sway, y, h, 1.1 * t + x, turn, self.look, swing=0.2 * k)


# --- two-wheelers ------------------------------------------------------------------------------------------------

BIKE_KINDS = ("bicycle", "shared", "ebike")


def draw_bike(img: np.ndarray, x: float, gy: float, h: float, facing: int, kind: str,
              colour: tuple[int, int, int], box: bool = False) -> None:
    """A two-wheeler side-on, ``x`` its centre, wheels on ``gy``; ``h`` a person's height there. ``kind``:
    ``bicycle`` (thin frame), ``shared`` (a shared bike: sturdy frame, basket, mudguards), ``ebike`` (an e-bike:
    small wheels, a solid body, a seat; ``box``: a delivery box on the rack)."""
    f = facing
    wr = (0.15 if kind == "ebike" else 0.2) * h
    rear, front = (x - f * 0.33 * h, gy - wr), (x + f * 0.33 * h, gy - wr)
    cv2.ellipse(img, (int(x), int(gy)), (int(0.5 * h), max(2, int(0.025 * h))), 0, 0, 360, (70, 72, 74), -1, AA)
    tyre = max(2, int((0.045 if kind == "ebike" else 0.03) * h))
    for c in (rear, front):
        cv2.circle(img, (int(c[0]), int(c[1])), int(wr), (25, 25, 25), tyre, AA)
        cv2.circle(img, (int(c[0]), int(c[1])), max(2, int(0.03 * h)), (150, 150, 150), -1, AA)
    if kind == "ebike":
        body = np.array([[rear[0], rear[1] - 0.05 * h], [x - f * 0.05 * h, gy - 0.45 * h],
                         [x + f * 0.18 * h, gy - 0.5 * h], [front[0] - f * 0.05 * h, front[1] - 0.05 * h],
                         [x + f * 0.05 * h, gy - 0.12 * h], [x - f * 0.15 * h, gy - 0.12 * h]], np.int32)
        cv2.fillPoly(img, [body], colour, AA)
        seat = (x - f * 0.12 * h, gy - 0.5 * h)
        cv2.ellipse(img, (int(seat[0]), int(seat[1])), (int(0.13 * h), int(0.03 * h)), 0, 0, 360, (30, 30, 30), -1, AA)
        bars = (front[0] - f * 0.02 * h, gy - 0.75 * h)
        cv2.line(img, (int(front[0]), int(front[1])), (int(bars[0]), int(bars[1])), (40, 40, 40),
                 max(2, int(0.03 * h)), AA)
        cv2.line(img, (int(bars[0] - 0.08 * h), int(bars[1])), (int(bars[0] + 0.08 * h), int(bars[1])), (40, 40, 40),
                 max(2, int(0.025 * h)), AA)
        if box:
            bx = rear[0] - f * 0.05 * h
            cv2.rectangle(img, (int(bx - 0.17 * h), int(gy - 0.82 * h)), (int(bx + 0.17 * h), int(gy - 0.5 * h)),
                          (20, 170, 240), -1, AA)
            cv2.rectangle(img, (int(bx - 0.17 * h), int(gy - 0.82 * h)), (int(bx + 0.17 * h), int(gy - 0.5 * h)),
                          (10, 110, 170), 2, AA)
        return
    crank = (x - f * 0.02 * h, gy - wr)
    seat = (x - f * 0.15 * h, gy - 0.62 * h)
    bars = (x + f * 0.25 * h, gy - 0.68 * h)
    fw = max(2, int((0.04 if kind == "shared" else 0.025) * h))
    for a, b in ((rear, crank), (crank, seat), (seat, rear), (crank, bars), (bars, front), (seat, bars)):
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, fw, AA)
    cv2.ellipse(img, (int(seat[0]), int(seat[1] - 0.02 * h)), (int(0.08 * h), int(0.02 * h)), 0, 0, 360, (30, 30, 30),
                -1, AA)
    if kind == "shared":
        for c in (rear, front):
            cv2.ellipse(img, (int(c[0]), int(c[1])), (int(wr + 4), int(wr + 4)), 0, 200, 340, colour, 3, AA)
        bk = (bars[0] + f * 0.08 * h, bars[1] + 0.06 * h)
        cv2.rectangle(img, (int(bk[0] - 0.08 * h), int(bk[1] - 0.06 * h)),
                      (int(bk[0] + 0.08 * h), int(bk[1] + 0.06 * h)), (60, 60, 60), 2, AA)


@dataclass(frozen=True)
class TwoWheeler:
    """A bicycle, shared bike or e-bike following key frames (t, x, ground_y). Ridden while ``ridden(t)`` (the
    rider is drawn on it), pushed or parked otherwise (the person who parks it is a separate actor)."""

    keys: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]
    kind: str
    colour: tuple[int, int, int]
    rider: Look
    ride: tuple[tuple[float, float], ...] = ()
    """Spans (from, to) during which someone sits on it."""
    box: bool = False

    def depth(self, t: float) -> float | None:
        p = _interp(self.keys, t)
        return None if p is None else p[1] + 0.2

    def draw(self, img: np.ndarray, t: float) -> None:
        p = _interp(self.keys, t)
        if p is None:
            return
        x, gy, v = p
        h = self.height_at(gy)
        f = 1 if v >= 0 else -1
        draw_bike(img, x, gy, h, f, self.kind, self.colour, self.box)
        if any(a <= t < b for a, b in self.ride):
            seat_y = gy - (0.5 if self.kind == "ebike" else 0.6) * h
            draw_seated_person(img, x - f * 0.12 * h, seat_y, h * 0.95, f, self.rider, t, fidget=0.5)


# --- events: sellers, shop goods, rubbish -------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundMat:
    """A seller's ground mat (地摊): the cloth is spread and goods set out over ``setup``, packed over ``packup``.
    The seller is a separate actor (a ``Sitter`` behind the mat, or anyone)."""

    x: float
    foot_y: float
    height_px: float
    setup: tuple[float, float]
    packup: tuple[float, float]
    seed: int
    cloth: tuple[int, int, int] = (150, 60, 40)

    def depth(self, t: float) -> float | None:
        return self.foot_y + 1.0 if self.setup[0] <= t < self.packup[1] else None

    def draw(self, img: np.ndarray, t: float) -> None:
        k = min(ramp(t, *self.setup), 1.0 - ramp(t, *self.packup))
        if k <= 0:
            return
        h, x, fy = self.height_px, self.x, self.foot_y
        half = 0.65 * h * min(1.0, 0.3 + k)
        mat = np.array([[x - half, fy - 0.1 * h], [x + half, fy - 0.1 * h], [x + half + 0.1 * h, fy + 0.12 * h],
                        [x - half - 0.1 * h, fy + 0.12 * h]], np.int32)
        cv2.fillConvexPoly(img, mat, self.cloth, AA)
        cv2.polylines(img, [mat], True, _shade(self.cloth, 0.6), 2, AA)
        rng = np.random.default_rng(self.seed)
        n = int(24 * k)
        for i in range(n):
            gx = x - half * 0.85 + (i % 8) * (1.7 * half / 8) + rng.uniform(0, 0.04 * h)
            gy = fy - 0.06 * h + (i // 8) * 0.06 * h
            colour = FRUIT[int(rng.integers(len(FRUIT)))]
            if i % 3 == 2:
                cv2.rectangle(img, (int(gx), int(gy - 0.05 * h)), (int(gx + 0.08 * h), int(gy + 0.015 * h)),
                              (int(rng.integers(60, 230)), int(rng.integers(60, 230)), int(rng.integers(60, 230))),
                              -1, AA)
            else:
                cv2.circle(img, (int(gx), int(gy)), max(2, int(0.032 * h)), colour, -1, AA)


@dataclass(frozen=True)
class CargoTrike:
    """A vendor's cargo tricycle: ridden in along ``keys``, the rider gets off at ``dismount`` (a separate actor
    from then on), goods heaped on the bed (and, from ``setup``, spread on a cloth beside it)."""

    keys: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]
    rider: Look
    dismount: float
    remount: float
    setup: tuple[float, float]
    packup: tuple[float, float]
    seed: int
    colour: tuple[int, int, int] = (140, 90, 40)

    def depth(self, t: float) -> float | None:
        p = _interp(self.keys, t)
        return None if p is None else p[1]

    def draw(self, img: np.ndarray, t: float) -> None:
        p = _interp(self.keys, t)
        if p is None:
            return
        x, gy, v = p
        h = self.height_at(gy)
        f = -1 if v < 0 else 1
        wr = 0.16 * h
        k = min(ramp(t, *self.setup), 1.0 - ramp(t, *self.packup))
        if k > 0:  # the cloth of goods spread in front of the bed
            half = 0.7 * h * k
            cx = x - f * 0.35 * h
            cloth = np.array([[cx - half, gy + 0.03 * h], [cx + half, gy + 0.03 * h],
                              [cx + half + 0.08 * h, gy + 0.2 * h], [cx - half - 0.08 * h, gy + 0.2 * h]], np.int32)
            cv2.fillConvexPoly(img, cloth, (50, 140, 200), AA)
            rng = np.random.default_rng(self.seed)
            for i in range(int(16 * k)):
                gx = cx - half * 0.85 + (i % 8) * (1.7 * half / 8)
                gyy = gy + 0.08 * h + (i // 8) * 0.06 * h
                fruit = FRUIT[int(rng.integers(len(FRUIT)))]
                cv2.circle(img, (int(gx), int(gyy)), max(2, int(0.03 * h)), fruit, -1, AA)
        cv2.ellipse(img, (int(x), int(gy)), (int(0.75 * h), max(2, int(0.03 * h))), 0, 0, 360, (40, 41, 42), -1, AA)
        lo, hi = sorted((x - f * 0.75 * h, x + f * 0.05 * h))
        bed_y = gy - 0.42 * h
        cv2.rectangle(img, (int(lo), int(bed_y)), (int(hi), int(bed_y + 0.12 * h)), self.colour, -1, AA)
        cv2.rectangle(img, (int(lo), int(bed_y - 0.2 * h)), (int(hi), int(bed_y)), _shade(self.colour, 0.8), 3, AA)
        for i in range(12):  # goods heaped on the bed
            gx = lo + 0.06 * h + (i % 6) * ((hi - lo - 0.12 * h) / 5)
            gyy = bed_y - 0.05 * h - (i // 6) * 0.06 * h
            cv2.circle(img, (int(gx), int(gyy)), max(2, int(0.035 * h)), FRUIT[i % len(FRUIT)], -1, AA)
        for wx in (x - f * 0.6 * h, x + f * 0.45 * h):
            cv2.circle(img, (int(wx), int(gy - wr)), int(wr), (22, 22, 24), max(2, int(0.03 * h)), AA)
        cv2.line(img, (int(x + f * 0.05 * h), int(bed_y)), (int(x + f * 0.45 * h), int(gy - wr)), (60, 60, 60), 4, AA)
        if not (self.dismount <= t < self.remount):
            spin = 0.0 if abs(v) < 1e-3 else t * abs(v) / (0.5 * h) * 2 * math.pi
            draw_person(img, x + f * 0.12 * h, gy - 0.3 * h, 0.85 * h, spin, f, self.rider,
                        swing=0.5 if abs(v) > 1e-3 else 0.05)


@dataclass(frozen=True)
class ShopGoods:
    """A shop's goods pushed out beyond its front: crates, a rack and boxes appear one by one over ``out`` and are
    taken back in over ``back`` (the shopkeeper carrying them is a separate actor)."""

    x: float
    foot_y: float
    height_px: float
    out: tuple[float, float]
    back: tuple[float, float]

    def pieces(self) -> list[tuple[str, float, float, float, float, tuple[int, int, int]]]:
        h, x, fy = self.height_px, self.x, self.foot_y
        cols = ((40, 160, 60), (30, 90, 200), (180, 120, 40), (60, 60, 180), (200, 200, 60), (40, 120, 160))
        out = []
        for i in range(6):
            x0 = x - 0.9 * h + i * 0.32 * h
            tall = 0.3 * h if i % 2 else 0.45 * h
            out.append(("crate", x0, fy - tall, x0 + 0.28 * h, fy, cols[i]))
        return out

    def _count(self, t: float) -> int:
        n = 6
        if t < self.out[0] or t >= self.back[1]:
            return 0
        shown = math.ceil(n * ramp(t, *self.out)) if t < self.out[1] else n
        gone = math.floor(n * ramp(t, *self.back)) if t >= self.back[0] else 0
        return max(0, shown - gone)

    def depth(self, t: float) -> float | None:
        return self.foot_y if self._count(t) else None

    def draw(self, img: np.ndarray, t: float) -> None:
        n = self._count(t)
        for _kind, x0, y0, x1, y1, colour in self.pieces()[:n]:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1, AA)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), _shade(colour, 0.6), 2, AA)
            for k in range(1, 3):  # produce in the crate
                yy = y0 + k * (y1 - y0) / 3
                cv2.line(img, (int(x0 + 3), int(yy)), (int(x1 - 3), int(yy)), _shade(colour, 1.4), 2, AA)


@dataclass(frozen=True)
class DroppedBags:
    """Rubbish bags left on the pavement at ``drop`` (by a passer-by who walks on), removed at ``removed``."""

    x: float
    foot_y: float
    height_px: float
    drop: float
    removed: float
    seed: int
    count: int = 4

    def depth(self, t: float) -> float | None:
        return self.foot_y if self.drop <= t < self.removed else None

    def draw(self, img: np.ndarray, t: float) -> None:
        if not (self.drop <= t < self.removed):
            return
        rng = np.random.default_rng(self.seed)
        h = self.height_px
        for i in range(self.count):
            bx = self.x + (i - self.count / 2) * 0.2 * h + rng.uniform(-0.04, 0.04) * h
            by = self.foot_y - rng.uniform(0, 0.05) * h
            rx, ry = rng.uniform(0.1, 0.14) * h, rng.uniform(0.08, 0.12) * h
            colour = BAG_COLOURS[int(rng.integers(len(BAG_COLOURS)))]
            cv2.ellipse(img, (int(bx), int(by - ry)), (int(rx), int(ry)), rng.uniform(-20, 20), 0, 360, colour, -1, AA)
            dark = _shade(colour, 0.6)
            cv2.ellipse(img, (int(bx), int(by - ry)), (int(rx), int(ry)), 0, 200, 320, dark, 2, AA)
            cv2.circle(img, (int(bx + rx * 0.2), int(by - 2 * ry)), max(2, int(ry * 0.3)), dark, -1, AA)
        if self.count >= 4:  # loose litter around the bags
            for _ in range(5):
                lx = self.x + rng.uniform(-0.6, 0.6) * h
                ly = self.foot_y + rng.uniform(-0.02, 0.06) * h
                pts = np.array([[lx + 0.04 * h * math.cos(a), ly + 0.02 * h * math.sin(a)]
                                for a in np.linspace(0, 2 * math.pi, 5, endpoint=False)], np.int32)
                cv2.fillConvexPoly(img, pts, (220, 225, 230), AA)

