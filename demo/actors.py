"""Things that move through a demo scene: people walking, cyclists, cars and a flatbed tricycle.

Each actor answers two questions for a time ``t`` (seconds into the 90 s loop): ``depth(t)`` — the row where it
touches the ground, or ``None`` when it is out of sight — and ``draw(img, t)``. The scene draws visible actors
far-to-near (painter's order). Passers-by and traffic repeat with the loop period, so the loop is seamless;
scripted actors (the vendor, the cleaner, the delivery tricycle) follow key frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

AA = cv2.LINE_AA
SKIN = ((140, 170, 205), (110, 140, 180), (90, 115, 150), (160, 190, 225))
HAIR = ((30, 30, 35), (40, 50, 70), (20, 20, 20), (90, 100, 120), (160, 160, 165))


class Drawable(Protocol):
    """Anything the scene can draw at a time ``t``."""

    def depth(self, t: float) -> float | None:
        """Ground-contact row at ``t`` (larger is nearer), or ``None`` when not visible."""

    def draw(self, img: np.ndarray, t: float) -> None:
        """Draw onto the BGR frame in place."""


def crossing_x(t: float, t0: float, period: float, speed: float, facing: int, width: int,
               margin: float) -> float | None:
    """x of something crossing the frame once per ``period`` from ``t0`` (off-screen by ``margin`` at both ends);
    None while it is out of view."""
    dt = (t - t0) % period
    if dt * speed > width + 2 * margin:
        return None
    return -margin + dt * speed if facing > 0 else width + margin - dt * speed


@dataclass(frozen=True)
class Look:
    """How a person looks: BGR colours of skin, hair, top and trousers, and whether they wear a hat or vest."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    top: tuple[int, int, int]
    legs: tuple[int, int, int]
    hi_vis: bool = False  # orange safety vest (cleaners, workers)


def random_look(rng: np.random.Generator) -> Look:
    """A plausible, varied outfit."""
    top = tuple(int(c) for c in rng.integers(20, 235, size=3))
    legs = ((40, 40, 45), (110, 70, 40), (60, 60, 70), (150, 150, 150), (50, 80, 120), (30, 30, 80))
    return Look(
        skin=SKIN[int(rng.integers(len(SKIN)))],
        hair=HAIR[int(rng.integers(len(HAIR)))],
        top=top,  # type: ignore[arg-type]
        legs=legs[int(rng.integers(len(legs)))],
    )


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (min(255, int(c[0] * f)), min(255, int(c[1] * f)), min(255, int(c[2] * f)))


def draw_person(img: np.ndarray, x: float, foot_y: float, height: float, phase: float, facing: int,
                look: Look, swing: float = 1.0) -> None:
    """A person seen side-on: legs and arms swing with the walk ``phase`` (radians); ``swing`` 0 stands still."""
    h = height
    hip = (x, foot_y - 0.47 * h)
    shoulder = (x + facing * 0.02 * h, foot_y - 0.80 * h)
    leg_len, arm_len = 0.47 * h, 0.36 * h
    a = 0.42 * swing * math.sin(phase)
    lw, aw = max(2, int(0.075 * h)), max(2, int(0.055 * h))
    cv2.ellipse(img, (int(x), int(foot_y)), (int(0.17 * h), max(2, int(0.025 * h))), 0, 0, 360, (70, 72, 74), -1, AA)

    def limb(origin, angle, length, colour, width, knee):
        # Two segments with a slight bend at the knee/elbow so the gait does not look like scissors.
        mid = (origin[0] + facing * math.sin(angle) * length * 0.5, origin[1] + math.cos(angle) * length * 0.5)
        bend = angle - 0.3 * abs(math.sin(angle)) if knee else angle + 0.35
        end = (mid[0] + facing * math.sin(bend) * length * 0.5, mid[1] + math.cos(bend) * length * 0.5)
        cv2.line(img, (int(origin[0]), int(origin[1])), (int(mid[0]), int(mid[1])), colour, width, AA)
        cv2.line(img, (int(mid[0]), int(mid[1])), (int(end[0]), int(end[1])), colour, width, AA)
        return end

    far_leg, near_leg = _shade(look.legs, 0.75), look.legs
    far_top = _shade(look.top, 0.75)
    # Far limbs first, then torso, then near limbs.
    end = limb(hip, -a, leg_len, far_leg, lw, True)
    cv2.line(img, (int(end[0]), int(end[1])), (int(end[0] + facing * 0.07 * h), int(end[1])), (30, 30, 30), lw, AA)
    limb(shoulder, a * 0.8, arm_len, far_top, aw, False)
    torso = np.array([
        [shoulder[0] - 0.10 * h, shoulder[1]], [shoulder[0] + 0.10 * h, shoulder[1]],
        [hip[0] + 0.085 * h, hip[1] + 0.04 * h], [hip[0] - 0.085 * h, hip[1] + 0.04 * h],
    ], np.int32)
    cv2.fillConvexPoly(img, torso, look.top, AA)
    if look.hi_vis:
        cv2.line(img, (int(hip[0] - 0.08 * h), int(hip[1] - 0.1 * h)), (int(hip[0] + 0.08 * h), int(hip[1] - 0.1 * h)),
                 (200, 230, 235), max(2, int(0.03 * h)), AA)
    end = limb(hip, a, leg_len, near_leg, lw, True)
    cv2.line(img, (int(end[0]), int(end[1])), (int(end[0] + facing * 0.07 * h), int(end[1])), (25, 25, 25), lw, AA)
    hand = limb(shoulder, -a * 0.8, arm_len, look.top, aw, False)
    cv2.circle(img, (int(hand[0]), int(hand[1])), max(2, int(0.03 * h)), look.skin, -1, AA)
    head = (int(shoulder[0]), int(foot_y - 0.9 * h))
    r = max(3, int(0.068 * h))
    cv2.circle(img, head, r, look.skin, -1, AA)
    cv2.ellipse(img, (head[0] - facing * r // 4, head[1] - r // 4), (r, int(r * 0.8)), 0, 180, 360, look.hair, -1, AA)


@dataclass(frozen=True)
class PasserBy:
    """Someone walking across the frame at a steady pace, once per loop, never stopping."""

    t0: float            # when they enter the frame (seconds into the loop)
    foot_y: float
    height: float
    speed: float         # pixels per second
    facing: int          # +1 walks right, -1 walks left
    look: Look
    period: float = 90.0
    width: int = 1280

    def _x(self, t: float) -> float | None:
        return crossing_x(t, self.t0, self.period, self.speed, self.facing, self.width, 0.4 * self.height)

    def depth(self, t: float) -> float | None:
        return None if self._x(t) is None else self.foot_y

    def draw(self, img: np.ndarray, t: float) -> None:
        x = self._x(t)
        if x is None:
            return
        stride = 0.62 * self.height  # one full gait cycle covers two steps
        phase = 2 * math.pi * ((t - self.t0) % self.period) * self.speed / stride
        bob = abs(math.sin(phase)) * 0.012 * self.height
        draw_person(img, x, self.foot_y - bob, self.height, phase, self.facing, self.look)


@dataclass(frozen=True)
class Cyclist:
    """A person riding a bicycle across the frame, once per loop."""

    t0: float
    foot_y: float        # where the wheels touch the ground
    height: float        # of a standing person at that depth (sets the scale)
    speed: float
    facing: int
    look: Look
    frame_colour: tuple[int, int, int] = (40, 40, 160)
    period: float = 90.0
    width: int = 1280

    def _x(self, t: float) -> float | None:
        return crossing_x(t, self.t0, self.period, self.speed, self.facing, self.width, 0.7 * self.height)

    def depth(self, t: float) -> float | None:
        return None if self._x(t) is None else self.foot_y

    def draw(self, img: np.ndarray, t: float) -> None:
        x = self._x(t)
        if x is None:
            return
        h, f, gy = self.height, self.facing, self.foot_y
        wr = 0.2 * h
        rear, front = (x - f * 0.33 * h, gy - wr), (x + f * 0.33 * h, gy - wr)
        crank = (x - f * 0.02 * h, gy - wr)
        seat = (x - f * 0.15 * h, gy - 0.62 * h)
        bars = (x + f * 0.25 * h, gy - 0.68 * h)
        cv2.ellipse(img, (int(x), int(gy)), (int(0.5 * h), max(2, int(0.025 * h))), 0, 0, 360, (70, 72, 74), -1, AA)
        for c in (rear, front):
            cv2.circle(img, (int(c[0]), int(c[1])), int(wr), (25, 25, 25), max(2, int(0.03 * h)), AA)
        fw = max(2, int(0.025 * h))
        for a, b in ((rear, crank), (crank, seat), (seat, rear), (crank, bars), (bars, front), (seat, bars)):
            cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), self.frame_colour, fw, AA)
        # Rider: pedalling legs, torso leaning to the bars.
        phase = 2 * math.pi * ((t - self.t0) % self.period) * self.speed / (1.2 * h)
        hip = (seat[0], seat[1] - 0.03 * h)
        shoulder = (x + f * 0.08 * h, gy - 0.98 * h)
        lw = max(2, int(0.07 * h))
        for sign, col in ((-1, _shade(self.look.legs, 0.75)), (1, self.look.legs)):
            pedal = (crank[0] + sign * 0.1 * h * math.cos(phase), crank[1] + sign * 0.1 * h * math.sin(phase))
            knee = (hip[0] + f * 0.22 * h, (hip[1] + pedal[1]) / 2 - 0.08 * h)
            cv2.line(img, (int(hip[0]), int(hip[1])), (int(knee[0]), int(knee[1])), col, lw, AA)
            cv2.line(img, (int(knee[0]), int(knee[1])), (int(pedal[0]), int(pedal[1])), col, lw, AA)
        torso = np.array([[hip[0] - 0.07 * h, hip[1]], [hip[0] + 0.07 * h, hip[1]],
                          [shoulder[0] + 0.08 * h, shoulder[1]], [shoulder[0] - 0.08 * h, shoulder[1]]], np.int32)
        cv2.fillConvexPoly(img, torso, self.look.top, AA)
        cv2.line(img, (int(shoulder[0]), int(shoulder[1] + 0.03 * h)), (int(bars[0]), int(bars[1])), self.look.top,
                 max(2, int(0.05 * h)), AA)
        r = max(3, int(0.068 * h))
        head = (int(shoulder[0] + f * 0.04 * h), int(shoulder[1] - 0.09 * h))
        cv2.circle(img, head, r, self.look.skin, -1, AA)
        cv2.ellipse(img, head, (r + 2, r), 0, 180, 360, (30, 140, 220), -1, AA)  # helmet


CAR_COLOURS = ((200, 200, 205), (30, 30, 35), (40, 40, 170), (150, 90, 30), (90, 90, 95), (235, 235, 235),
               (30, 110, 60), (60, 150, 200))


def draw_car(img: np.ndarray, x: float, ground_y: float, length: float, facing: int,
             colour: tuple[int, int, int], van: bool = False) -> None:
    """A car (or a van) side-on, ``x`` its centre; wheels touch ``ground_y``."""
    L = length
    hgt = L * (0.42 if van else 0.31)
    wr = 0.085 * L
    body_bottom = ground_y - 0.45 * wr
    x0, x1 = x - L / 2, x + L / 2
    cv2.ellipse(img, (int(x), int(ground_y)), (int(0.52 * L), max(3, int(0.03 * L))), 0, 0, 360, (40, 41, 42), -1, AA)
    belt = body_bottom - 0.45 * hgt
    lower = np.array([[x0 + 0.02 * L, belt], [x1 - 0.02 * L, belt], [x1, body_bottom - 0.08 * hgt],
                      [x1 - 0.01 * L, body_bottom], [x0 + 0.01 * L, body_bottom], [x0, body_bottom - 0.08 * hgt]],
                     np.int32)
    cv2.fillPoly(img, [lower], colour, AA)
    top = body_bottom - hgt
    if van:
        cab = np.array([[x0 + 0.03 * L, belt], [x0 + 0.05 * L, top], [x1 - 0.18 * L, top], [x1 - 0.02 * L, belt]],
                       np.int32)
    else:
        cab = np.array([[x0 + 0.12 * L, belt], [x0 + 0.28 * L, top], [x1 - 0.34 * L, top], [x1 - 0.14 * L, belt]],
                       np.int32)
    if facing < 0:  # mirror the cabin so the bonnet points the way it drives
        cab[:, 0] = (2 * x - cab[:, 0]).astype(np.int32)
    cv2.fillPoly(img, [cab], colour, AA)
    glass = cab.astype(np.float32)
    cx, cy = glass[:, 0].mean(), glass[:, 1].mean()
    glass = ((glass - [cx, cy]) * [0.9, 0.78] + [cx, cy - 0.02 * hgt]).astype(np.int32)
    cv2.fillPoly(img, [glass], (90, 72, 60), AA)
    cv2.line(img, (int(cx), int(glass[:, 1].min())), (int(cx), int(belt)), colour, max(2, int(0.012 * L)), AA)
    cv2.line(img, (int(x0 + 0.02 * L), int(belt + 0.1 * hgt)), (int(x1 - 0.02 * L), int(belt + 0.1 * hgt)),
             _shade(colour, 0.7), max(1, int(0.004 * L)), AA)
    head_x = x1 - 0.02 * L if facing > 0 else x0 + 0.02 * L
    tail_x = x0 + 0.01 * L if facing > 0 else x1 - 0.01 * L
    cv2.circle(img, (int(head_x), int(belt + 0.12 * hgt)), max(2, int(0.018 * L)), (210, 240, 250), -1, AA)
    cv2.circle(img, (int(tail_x), int(belt + 0.12 * hgt)), max(2, int(0.015 * L)), (30, 30, 200), -1, AA)
    for wx in (x0 + 0.2 * L, x1 - 0.2 * L):
        cv2.circle(img, (int(wx), int(ground_y - wr)), int(wr), (22, 22, 24), -1, AA)
        cv2.circle(img, (int(wx), int(ground_y - wr)), int(wr * 0.55), (150, 152, 155), -1, AA)


@dataclass(frozen=True)
class Car:
    """A car (or van) driving along a lane at a steady speed, once per loop; it never stops."""

    t0: float
    ground_y: float
    length: float
    speed: float
    facing: int
    colour: tuple[int, int, int]
    van: bool = False
    period: float = 90.0
    width: int = 1280

    def _x(self, t: float) -> float | None:
        return crossing_x(t, self.t0, self.period, self.speed, self.facing, self.width, 0.6 * self.length)

    def visible_span(self) -> tuple[float, float]:
        """(enter, leave) loop times, leave may exceed the period when it wraps."""
        return self.t0, self.t0 + (self.width + 1.2 * self.length) / self.speed

    def depth(self, t: float) -> float | None:
        return None if self._x(t) is None else self.ground_y

    def draw(self, img: np.ndarray, t: float) -> None:
        x = self._x(t)
        if x is not None:
            draw_car(img, x, self.ground_y, self.length, self.facing, self.colour, self.van)


def _interp(keys: tuple[tuple[float, float, float], ...], t: float) -> tuple[float, float, float] | None:
    """Piecewise-linear position from key frames (t, x, y); also returns the speed sign (dx/dt)."""
    if t < keys[0][0] or t > keys[-1][0]:
        return None
    for (ta, xa, ya), (tb, xb, yb) in zip(keys, keys[1:], strict=False):
        if ta <= t <= tb:
            f = 0.0 if tb == ta else (t - ta) / (tb - ta)
            v = 0.0 if tb == ta else (xb - xa) / (tb - ta)
            return xa + (xb - xa) * f, ya + (yb - ya) * f, v
    return None


@dataclass(frozen=True)
class ScriptedPerson:
    """A person who follows key frames (t, x, foot_y): walks between them, stands (fidgeting) when they hold."""

    keys: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]  # foot row -> person height (the layout's perspective)
    look: Look
    facing_when_still: int = 1

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
            phase = 2 * math.pi * t * abs(v) / (0.62 * h)
            draw_person(img, x, y, h, phase, 1 if v > 0 else -1, self.look)
        else:
            # Standing: a slow sway and small arm movements, as a person at a stall does.
            sway = 0.02 * h * math.sin(0.9 * t)
            draw_person(img, x + sway, y, h, 1.3 * t, self.facing_when_still, self.look, swing=0.15)


@dataclass(frozen=True)
class Tricycle:
    """A flatbed cargo tricycle with its rider, following key frames (t, x, ground_y); stops where they hold."""

    keys: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]
    look: Look
    colour: tuple[int, int, int] = (50, 120, 40)

    def depth(self, t: float) -> float | None:
        p = _interp(self.keys, t)
        return None if p is None else p[1]

    def draw(self, img: np.ndarray, t: float) -> None:
        p = _interp(self.keys, t)
        if p is None:
            return
        x, gy, v = p
        h = self.height_at(gy)
        f = 1 if v >= 0 else -1
        wr = 0.16 * h
        cv2.ellipse(img, (int(x), int(gy)), (int(0.75 * h), max(2, int(0.03 * h))), 0, 0, 360, (40, 41, 42), -1, AA)
        bed_x0, bed_x1 = x - f * 0.7 * h, x + f * 0.05 * h
        bed_y = gy - 0.42 * h
        lo, hi = min(bed_x0, bed_x1), max(bed_x0, bed_x1)
        cv2.rectangle(img, (int(lo), int(bed_y)), (int(hi), int(bed_y + 0.12 * h)), self.colour, -1, AA)
        cv2.rectangle(img, (int(lo), int(bed_y - 0.15 * h)), (int(hi), int(bed_y)), _shade(self.colour, 0.8), 3, AA)
        for wx in (x - f * 0.55 * h, x + f * 0.45 * h):
            cv2.circle(img, (int(wx), int(gy - wr)), int(wr), (22, 22, 24), max(2, int(0.03 * h)), AA)
            cv2.circle(img, (int(wx), int(gy - wr)), max(2, int(wr * 0.2)), (150, 150, 150), -1, AA)
        cv2.line(img, (int(bed_x1), int(bed_y)), (int(x + f * 0.45 * h), int(gy - wr)), (60, 60, 60), 4, AA)
        spin = 0.0 if abs(v) < 1e-3 else t * abs(v) / (0.5 * h) * 2 * math.pi
        seat_x = x + f * 0.12 * h
        draw_person(img, seat_x, gy - 0.3 * h, 0.85 * h, spin, f, self.look, swing=0.5 if abs(v) > 1e-3 else 0.05)
