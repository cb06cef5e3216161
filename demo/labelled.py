"""Street frames with known boxes and classes, from the demo's own drawings: parked bicycles and e-bikes (some
with a delivery box), vendors' cargo tricycles with goods set out, people standing — the look-alikes the
model-free judgement confuses (an e-bike with its rider beside it reads as goods + attendant).

Each object is drawn once alone on a blank frame to find its exact box (the pixels it changed), then onto the
street. Used by the learning loop's tests and bench (``learning``: labels → dataset → training) as the reviewers'
boxes would be.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from demo.actors import Look, draw_person, random_look
from demo.street_life import CargoTrike, draw_bike

BIKE_KINDS = ("bicycle", "shared", "ebike")


def _colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rng.integers(lo, hi, 3))
    return r, g, b


def _scaled(y: float, *, ph: float, gy: float) -> float:
    return ph * y / gy


def _bike(img: np.ndarray, *, x: float, gy: float, h: float, facing: int, kind: str, colour: tuple[int, int, int],
          box: bool) -> None:
    draw_bike(img, x, gy, h, facing, kind, colour, box=box)


def _trike(img: np.ndarray, *, trike: CargoTrike) -> None:
    trike.draw(img, 0.0)


def _person(img: np.ndarray, *, x: float, gy: float, h: float, facing: int, look: Look) -> None:
    draw_person(img, x, gy, h, 0.0, facing, look, swing=0.0)


def _box(draw: Callable[[np.ndarray], None], shape: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """Draw on a blank frame; the normalised box of what changed."""
    blank = np.zeros((*shape, 3), np.uint8)
    draw(blank)
    ys, xs = np.nonzero(blank.any(axis=2))
    if not len(xs):
        return None
    h, w = shape
    return (float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h))


def labelled_frame(background: np.ndarray, rng: np.random.Generator, objects: list[str],
                   ) -> tuple[np.ndarray, list[tuple[str, tuple[float, float, float, float]]]]:
    """``background`` with ``objects`` (``bike``, ``vendor_stall``, ``person``) drawn at random places on the
    pavement band (lower half), left to right; the frame and ``[(class, box)]``."""
    img = background.copy()
    h, w = img.shape[:2]
    out: list[tuple[str, tuple[float, float, float, float]]] = []
    slots = np.linspace(0.12, 0.88, len(objects) + 1)
    for i, kind in enumerate(objects):
        x = float(rng.uniform(slots[i] + 0.03, slots[i + 1] - 0.03)) * w
        gy = float(rng.uniform(0.62, 0.92)) * h
        ph = 0.1 * h + (gy - 0.55 * h) * 0.55  # a person's height grows towards the camera
        facing = int(rng.choice((-1, 1)))
        draw: Callable[[np.ndarray], None]
        if kind == "bike":
            bike_kind = str(rng.choice(BIKE_KINDS))
            colour = _colour(rng, 20, 230)
            delivery = bool(bike_kind == "ebike" and rng.random() < 0.5)
            draw = partial(_bike, x=x, gy=gy, h=ph, facing=facing, kind=bike_kind, colour=colour, box=delivery)
        elif kind == "vendor_stall":
            trike = CargoTrike(keys=((0.0, x, gy), (1.0, x, gy)), height_at=partial(_scaled, ph=ph, gy=gy),
                               rider=random_look(rng), dismount=-2.0, remount=1e9, setup=(-1.0, -0.5),
                               packup=(1e9, 1e9 + 1), seed=int(rng.integers(1 << 30)), colour=_colour(rng, 60, 200))
            draw = partial(_trike, trike=trike)
        elif kind == "person":
            draw = partial(_person, x=x, gy=gy, h=ph, facing=facing, look=random_look(rng))
        else:
            raise ValueError(f"unknown object kind {kind!r}; use bike, vendor_stall or person")
        box = _box(draw, (h, w))
        if box is None:
            continue
        draw(img)
        out.append((kind, box))
    return img, out
