"""Things that stay put in a demo scene and change over time: a vendor's stall, a rubbish bin and its overflow,
goods dropped on the road. Each is a ``Drawable`` (see ``demo.actors``) whose look depends on the loop time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from demo.actors import AA, _interp

FRUIT = ((30, 140, 240), (40, 40, 200), (40, 200, 230), (40, 170, 60), (60, 60, 150), (20, 100, 200))


def ramp(t: float, t0: float, t1: float) -> float:
    """0 before ``t0``, 1 after ``t1``, linear between."""
    if t <= t0:
        return 0.0
    if t >= t1:
        return 1.0
    return (t - t0) / (t1 - t0)


@dataclass(frozen=True)
class Stall:
    """A street vendor's cart: pushed in along key frames, then set up (umbrella opens, a cloth of goods is
    spread on the pavement), later packed up and pushed away.

    ``keys`` are (t, x, foot_y) of the cart centre; ``setup`` = (start, done) and ``packup`` = (start, done).
    """

    keys: tuple[tuple[float, float, float], ...]
    height_at: Callable[[float], float]
    setup: tuple[float, float]
    packup: tuple[float, float]
    seed: int
    cart_colour: tuple[int, int, int] = (150, 95, 35)

    def depth(self, t: float) -> float | None:
        p = _interp(self.keys, t)
        return None if p is None else p[1]

    def open_fraction(self, t: float) -> float:
        """How far the stall is set up at ``t`` (0 packed, 1 fully open)."""
        return min(ramp(t, *self.setup), 1.0 - ramp(t, *self.packup))

    def draw(self, img: np.ndarray, t: float) -> None:
        p = _interp(self.keys, t)
        if p is None:
            return
        cx, fy, _ = p
        h = self.height_at(fy)
        k = self.open_fraction(t)
        rng = np.random.default_rng(self.seed)
        # The cloth with goods lies on the ground in front of the cart (nearer the camera).
        if k > 0.35:
            c = min(1.0, (k - 0.35) / 0.4)
            half = 0.7 * h * c
            cloth = np.array([[cx - half, fy + 0.02 * h], [cx + half, fy + 0.02 * h],
                              [cx + half + 0.08 * h, fy + 0.16 * h], [cx - half - 0.08 * h, fy + 0.16 * h]], np.int32)
            cv2.fillConvexPoly(img, cloth, (60, 60, 175), AA)
            cv2.polylines(img, [cloth], True, (40, 40, 120), 2, AA)
            n = int(18 * c)
            for i in range(n):
                gx = cx - half * 0.9 + (i % 9) * (1.8 * half / 9) + rng.uniform(0, 0.04 * h)
                gy = fy + 0.06 * h + (i // 9) * 0.06 * h
                colour = FRUIT[int(rng.integers(len(FRUIT)))]
                if i % 4 == 3:
                    cv2.rectangle(img, (int(gx), int(gy - 0.03 * h)), (int(gx + 0.06 * h), int(gy + 0.02 * h)),
                                  (90, 160, 200), -1, AA)
                else:
                    cv2.circle(img, (int(gx), int(gy)), max(2, int(0.028 * h)), colour, -1, AA)
        # Cart: wooden box on two wheels, a handle at the back, goods heaped on top.
        cv2.ellipse(img, (int(cx), int(fy)), (int(0.55 * h), max(2, int(0.03 * h))), 0, 0, 360, (70, 72, 74), -1, AA)
        x0, x1 = cx - 0.45 * h, cx + 0.45 * h
        top, bottom = fy - 0.52 * h, fy - 0.2 * h
        cv2.rectangle(img, (int(x0), int(top)), (int(x1), int(bottom)), self.cart_colour, -1, AA)
        for sx in np.linspace(x0, x1, 6)[1:-1]:
            cv2.line(img, (int(sx), int(top)), (int(sx), int(bottom)), (90, 60, 25), 2, AA)
        cv2.rectangle(img, (int(x0 - 6), int(top - 6)), (int(x1 + 6), int(top + 4)), (60, 90, 130), -1, AA)
        cv2.line(img, (int(x0), int(top + 0.05 * h)), (int(x0 - 0.22 * h), int(top - 0.12 * h)), (50, 50, 50), 5, AA)
        for wx in (cx - 0.28 * h, cx + 0.28 * h):
            cv2.circle(img, (int(wx), int(fy - 0.12 * h)), int(0.12 * h), (25, 25, 25), -1, AA)
            cv2.circle(img, (int(wx), int(fy - 0.12 * h)), int(0.05 * h), (140, 140, 140), -1, AA)
        for i in range(14):
            gx = x0 + 0.05 * h + (i % 7) * (0.8 * h / 7)
            gy = top - 0.03 * h - (i // 7) * 0.045 * h
            cv2.circle(img, (int(gx), int(gy)), max(2, int(0.032 * h)), FRUIT[i % len(FRUIT)], -1, AA)
        # Umbrella: the pole rises as it opens, the canopy spreads; striped like the real ones.
        if k > 0.0:
            pole_top = fy - (0.55 + 0.85 * min(1.0, k * 1.6)) * h
            cv2.line(img, (int(cx), int(top)), (int(cx), int(pole_top)), (200, 200, 200), max(2, int(0.02 * h)), AA)
            spread = max(0.0, (k - 0.25) / 0.75)
            if spread > 0:
                ax, ay = int(0.75 * h * spread) + 2, int(0.28 * h * (0.4 + 0.6 * spread)) + 2
                for i in range(8):
                    colour = (40, 40, 200) if i % 2 == 0 else (235, 235, 235)
                    cv2.ellipse(img, (int(cx), int(pole_top + ay)), (ax, ay), 0, 180 + i * 22.5, 180 + (i + 1) * 22.5,
                                colour, -1, AA)
                cv2.line(img, (int(cx - ax), int(pole_top + ay)), (int(cx + ax), int(pole_top + ay)), (30, 30, 120),
                         max(2, int(0.015 * h)), AA)


@dataclass(frozen=True)
class Litter:
    """One piece of the overflow: a bag or a scrap, shown between ``appear`` and ``gone``."""

    x: float
    y: float
    rx: float
    ry: float
    angle: float
    colour: tuple[int, int, int]
    kind: str  # "bag" | "box" | "scrap"
    appear: float
    gone: float


def _draw_litter(img: np.ndarray, it: Litter) -> None:
    c = (int(it.x), int(it.y))
    if it.kind == "bag":
        cv2.ellipse(img, c, (int(it.rx), int(it.ry)), it.angle, 0, 360, it.colour, -1, AA)
        dark = tuple(int(v * 0.6) for v in it.colour)
        cv2.ellipse(img, c, (int(it.rx), int(it.ry)), it.angle, 200, 320, dark, 2, AA)
        knot = (int(it.x + it.rx * 0.2), int(it.y - it.ry))
        cv2.circle(img, knot, max(2, int(it.ry * 0.25)), dark, -1, AA)
    elif it.kind == "box":
        box = cv2.boxPoints(((it.x, it.y), (2 * it.rx, 2 * it.ry), it.angle)).astype(np.int32)
        cv2.fillConvexPoly(img, box, it.colour, AA)
        cv2.polylines(img, [box], True, (60, 90, 120), 1, AA)
    else:
        pts = np.array([[it.x + it.rx * math.cos(a + it.angle), it.y + it.ry * math.sin(a + it.angle) * 0.6]
                        for a in np.linspace(0, 2 * math.pi, 6, endpoint=False)], np.int32)
        cv2.fillConvexPoly(img, pts, it.colour, AA)


BAG_COLOURS = ((25, 25, 28), (40, 42, 45), (210, 210, 215), (150, 90, 40), (60, 140, 60), (35, 35, 140))


@dataclass(frozen=True)
class Bin:
    """A green street rubbish bin with a rim; from ``overflow[0]`` bags pile above the rim and spill onto the
    ground around its base (the last piece at ``overflow[1]``); from ``cleared[0]`` a cleaner removes the pieces,
    the last one at ``cleared[1]``."""

    x: float
    foot_y: float
    height_px: float   # of a standing person at the bin's depth (sets the scale)
    overflow: tuple[float, float]
    cleared: tuple[float, float]
    seed: int

    def items(self) -> list[Litter]:
        """Every piece of the overflow, in the order they appear (removed in reverse)."""
        rng = np.random.default_rng(self.seed)
        h = self.height_px
        w, bh = 0.34 * h, 0.55 * h
        rim = self.foot_y - bh
        out: list[Litter] = []
        n_top, n_ground = 12, 14
        n = n_top + n_ground
        a0, a1 = self.overflow
        c0, c1 = self.cleared
        for i in range(n):
            appear = a0 + (a1 - a0) * i / (n - 1)
            gone = c1 - (c1 - c0) * i / (n - 1)
            if i < n_top:  # heaped above the rim, rising as it grows
                layer = i // 4
                x = self.x + rng.uniform(-0.45, 0.45) * w
                y = rim - 0.02 * h - layer * 0.07 * h - rng.uniform(0, 0.03 * h)
                out.append(Litter(x, y, rng.uniform(0.09, 0.13) * h, rng.uniform(0.06, 0.09) * h,
                                  rng.uniform(-30, 30), BAG_COLOURS[int(rng.integers(len(BAG_COLOURS)))], "bag",
                                  appear, gone))
            else:  # on the ground around the base, spreading outwards
                side = -1 if i % 2 else 1
                x = self.x + side * rng.uniform(0.3, 0.95) * h * 0.55
                y = self.foot_y + rng.uniform(-0.04, 0.08) * h
                kind = ("bag", "box", "scrap")[i % 3]
                colour = (BAG_COLOURS[int(rng.integers(len(BAG_COLOURS)))] if kind == "bag"
                          else (90, 150, 190) if kind == "box" else (220, 225, 230))
                out.append(Litter(x, y, rng.uniform(0.07, 0.12) * h, rng.uniform(0.04, 0.07) * h,
                                  rng.uniform(-40, 40), colour, kind, appear, gone))
        return out

    def depth(self, t: float) -> float | None:
        return self.foot_y

    def draw(self, img: np.ndarray, t: float) -> None:
        h = self.height_px
        w, bh = 0.34 * h, 0.55 * h
        x, fy = self.x, self.foot_y
        items = self._items
        cv2.ellipse(img, (int(x), int(fy)), (int(0.36 * h), max(2, int(0.03 * h))), 0, 0, 360, (70, 72, 74), -1, AA)
        for it in items[12:]:
            if it.appear <= t < it.gone and it.y < fy:
                _draw_litter(img, it)
        body = np.array([[x - w / 2, fy - bh], [x + w / 2, fy - bh], [x + 0.44 * w, fy], [x - 0.44 * w, fy]], np.int32)
        green = (40, 115, 35)
        cv2.fillConvexPoly(img, body, green, AA)
        for sx in np.linspace(-0.35, 0.35, 5):
            cv2.line(img, (int(x + sx * w), int(fy - bh + 0.08 * h)), (int(x + sx * w * 0.9), int(fy - 0.03 * h)),
                     (30, 85, 25), 2, AA)
        cv2.rectangle(img, (int(x - 0.18 * w), int(fy - bh * 0.6)), (int(x + 0.18 * w), int(fy - bh * 0.35)),
                      (230, 235, 235), -1, AA)
        tri = np.array([[x, fy - bh * 0.57], [x - 0.1 * w, fy - bh * 0.39], [x + 0.1 * w, fy - bh * 0.39]], np.int32)
        cv2.polylines(img, [tri], True, (40, 115, 35), 2, AA)
        rim_h = 0.06 * h
        cv2.rectangle(img, (int(x - w / 2 - 5), int(fy - bh - rim_h)), (int(x + w / 2 + 5), int(fy - bh)),
                      (25, 75, 20), -1, AA)
        cv2.ellipse(img, (int(x), int(fy - bh - rim_h)), (int(w / 2), int(0.03 * h)), 0, 180, 360, (20, 35, 15), -1, AA)
        for it in items[:12]:
            if it.appear <= t < it.gone:
                _draw_litter(img, it)
        for it in items[12:]:
            if it.appear <= t < it.gone and it.y >= fy:
                _draw_litter(img, it)

    @property
    def _items(self) -> list[Litter]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = self.items()
            object.__setattr__(self, "_cache", cached)
        return cached


@dataclass(frozen=True)
class Goods:
    """Building materials and boxes dropped on the road: stacked cardboard boxes, a pallet of bricks and a bundle
    of pipes, appearing piece by piece over ``dropped`` and removed piece by piece over ``removed``."""

    x: float
    foot_y: float
    height_px: float
    dropped: tuple[float, float]
    removed: tuple[float, float]
    seed: int

    def pieces(self) -> list[tuple[str, float, float, float, float]]:
        """(kind, x0, y0, x1, y1) rectangles in drawing order (far to near, bottom to top)."""
        h = self.height_px
        rng = np.random.default_rng(self.seed)
        out: list[tuple[str, float, float, float, float]] = []
        bw, bhh = 0.3 * h, 0.22 * h
        # Boxes: two columns of three, slightly offset as real stacks are.
        for col in range(3):
            for level in range(3 - col % 2):
                jitter = rng.uniform(-0.03, 0.03) * h
                x0 = self.x - 0.6 * h + col * (bw + 0.02 * h) + jitter
                y1 = self.foot_y - level * bhh
                out.append(("box", x0, y1 - bhh, x0 + bw, y1))
        # A pallet with bricks to the right, a bundle of pipes in front.
        out.append(("bricks", self.x + 0.45 * h, self.foot_y - 0.28 * h, self.x + 0.95 * h, self.foot_y))
        out.append(("pipes", self.x - 0.7 * h, self.foot_y + 0.02 * h, self.x + 0.8 * h, self.foot_y + 0.1 * h))
        return out

    def depth(self, t: float) -> float | None:
        return self.foot_y if self._count(t) > 0 else None

    def _count(self, t: float) -> int:
        n = len(self._pieces)
        shown = math.ceil(n * ramp(t, *self.dropped)) if t < self.dropped[1] else n
        removed = math.floor(n * ramp(t, *self.removed)) if t >= self.removed[0] else 0
        return max(0, shown - removed) if t < self.removed[1] else 0

    def draw(self, img: np.ndarray, t: float) -> None:
        n = self._count(t)
        if n == 0:
            return
        h = self.height_px
        cv2.ellipse(img, (int(self.x + 0.1 * h), int(self.foot_y)), (int(1.0 * h), max(2, int(0.04 * h))), 0, 0, 360,
                    (45, 46, 47), -1, AA)
        for kind, x0, y0, x1, y1 in self._pieces[:n]:
            p0, p1 = (int(x0), int(y0)), (int(x1), int(y1))
            if kind == "box":
                cv2.rectangle(img, p0, p1, (95, 150, 190), -1, AA)
                cv2.rectangle(img, p0, p1, (60, 100, 135), 2, AA)
                mx = (p0[0] + p1[0]) // 2
                cv2.line(img, (mx, p0[1]), (mx, p1[1]), (150, 190, 215), 4, AA)  # packing tape
            elif kind == "bricks":
                cv2.rectangle(img, (p0[0], p1[1] - 10), p1, (80, 110, 140), -1, AA)  # pallet
                rows = 5
                rh = (y1 - 10 - y0) / rows
                for r in range(rows):
                    yy = y0 + r * rh
                    off = 0 if r % 2 else (x1 - x0) / 8
                    for c in range(4):
                        bx = x0 + off + c * (x1 - x0) / 4
                        cv2.rectangle(img, (int(bx), int(yy)), (int(min(x1, bx + (x1 - x0) / 4 - 3)), int(yy + rh - 2)),
                                      (50, 70, 170), -1, AA)
            else:
                for r in range(3):
                    yy = int(y0 + r * (y1 - y0) / 3)
                    cv2.line(img, (p0[0], yy), (p1[0], yy), (150, 150, 155), max(3, int((y1 - y0) / 3)), AA)
                    cv2.circle(img, (p1[0], yy), max(2, int((y1 - y0) / 6)), (60, 60, 60), -1, AA)

    @property
    def _pieces(self) -> list[tuple[str, float, float, float, float]]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = self.pieces()
            object.__setattr__(self, "_cache", cached)
        return cached
