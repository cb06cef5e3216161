"""The static street behind every demo scene: building fronts with shop signs, pavement, kerb, road, trees.

Painted once per scene (it is the expensive part); ``demo.scenes`` copies it for every frame and draws only what
moves or changes on top. The camera faces the street side-on from across the road and a little above, so the
ground recedes towards a vanishing point above the frame and people lower in the frame are nearer and larger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

W, H = 1280, 720

SHOP_NAMES = (
    "FRESH MART", "CAFE 88", "BAKERY", "PHARMACY", "NOODLE HOUSE", "BOOKS", "TEA SHOP", "HARDWARE",
    "FRUIT & VEG", "OPTICIAN", "DUMPLINGS", "MOBILE", "FLOWERS", "BANK", "HAIR SALON", "SHOES",
)
FACADE_COLOURS = (  # BGR
    (170, 196, 214), (120, 130, 168), (176, 176, 170), (190, 214, 226), (196, 180, 150), (140, 160, 190),
    (160, 170, 150), (205, 205, 200),
)
SIGN_COLOURS = ((40, 40, 170), (150, 70, 20), (30, 120, 30), (20, 110, 190), (90, 40, 110), (60, 60, 60))


@dataclass(frozen=True)
class StreetLayout:
    """Where the regions of the street lie, in pixels of the 1280x720 frame.

    ``building_bottom``: the foot of the building fronts (top of the pavement). ``kerb_y``: top of the kerb;
    ``None`` for a pedestrian street paved to the bottom of the frame. ``lane_line_y``: a dashed centre line
    across the road, if any. ``keep_clear``: x ranges where no tree or pole may stand (the scene's props go there).
    """

    building_bottom: int
    kerb_y: int | None
    lane_line_y: int | None = None
    keep_clear: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    kerb_h: int = 14
    horizon_y: float = -70.0  # the ground's vanishing line lies above the frame: the camera looks down a little

    @property
    def pavement_bottom(self) -> int:
        """Lowest pavement row (the kerb top, or the frame bottom on a pedestrian street)."""
        return self.kerb_y if self.kerb_y is not None else H

    @property
    def road_top(self) -> int | None:
        """First asphalt row below the kerb, or ``None`` without a road."""
        return None if self.kerb_y is None else self.kerb_y + self.kerb_h

    def person_height(self, foot_y: float) -> float:
        """Height in pixels of a 1.7 m person whose feet touch the ground at row ``foot_y`` (ground perspective)."""
        return max(40.0, 0.32 * (foot_y - self.horizon_y))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int], amp: float) -> np.ndarray:
    """Low-frequency noise (stains, weathering) of about ``amp`` grey levels, float32 HxW."""
    small = rng.normal(0.0, 1.0, size=cells).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp


def _texture(img: np.ndarray, rng: np.random.Generator, y0: int, y1: int, coarse: float, fine: float) -> None:
    """Add weathering and grain to rows ``y0:y1`` in place, so no region is a flat colour."""
    h = y1 - y0
    if h <= 0:
        return
    n = _smooth_noise(rng, h, W, (max(2, h // 24), W // 24), coarse)
    n += rng.normal(0.0, fine, size=(h, W)).astype(np.float32)
    region = img[y0:y1].astype(np.float32) + n[:, :, None]
    img[y0:y1] = np.clip(region, 0, 255).astype(np.uint8)


def _shade(colour: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, c * f))) for c in colour)  # type: ignore[return-value]


def _building(img: np.ndarray, rng: np.random.Generator, x0: int, x1: int, bottom: int, names: list[str]) -> None:
    """One building front: upper-floor windows, a shop sign, a glazed shopfront with a door, maybe an awning."""
    colour = FACADE_COLOURS[int(rng.integers(len(FACADE_COLOURS)))]
    cv2.rectangle(img, (x0, 0), (x1, bottom), colour, -1)
    cv2.line(img, (x1, 0), (x1, bottom), _shade(colour, 0.6), 3)  # party wall shadow
    shop_top = bottom - int(0.42 * bottom)
    sign_top = shop_top - int(0.13 * bottom)
    # Upper floors: a grid of windows with sills, some lit, some with blinds.
    win_w, win_h = int(rng.integers(38, 56)), int(rng.integers(46, 64))
    n_cols = max(1, (x1 - x0 - 30) // (win_w + 34))
    gap = (x1 - x0 - n_cols * win_w) / (n_cols + 1)
    y = sign_top - 22 - win_h
    while y > -win_h:
        for c in range(n_cols):
            wx = int(x0 + gap + c * (win_w + gap))
            glass = (95, 80, 70) if rng.random() < 0.7 else (150, 190, 215)
            cv2.rectangle(img, (wx - 4, y - 4), (wx + win_w + 4, y + win_h + 4), _shade(colour, 0.8), -1)
            cv2.rectangle(img, (wx, y), (wx + win_w, y + win_h), glass, -1)
            cv2.line(img, (wx + win_w // 2, y), (wx + win_w // 2, y + win_h), _shade(colour, 0.9), 2)
            if rng.random() < 0.3:
                cv2.rectangle(img, (wx, y), (wx + win_w, y + int(win_h * rng.uniform(0.2, 0.6))), (200, 205, 210), -1)
            cv2.rectangle(img, (wx - 6, y + win_h + 4), (wx + win_w + 6, y + win_h + 9), _shade(colour, 1.15), -1)
        y -= win_h + 48
    # Shop sign with the shop's name.
    sign = SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]
    cv2.rectangle(img, (x0 + 8, sign_top), (x1 - 8, shop_top - 6), sign, -1)
    cv2.rectangle(img, (x0 + 8, sign_top), (x1 - 8, shop_top - 6), _shade(sign, 0.6), 2)
    name = names.pop() if names else SHOP_NAMES[int(rng.integers(len(SHOP_NAMES)))]
    scale = 0.9
    (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
    while tw > (x1 - x0 - 36) and scale > 0.4:
        scale -= 0.1
        (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
    ty = (sign_top + shop_top - 6 + th) // 2
    cv2.putText(img, name, ((x0 + x1 - tw) // 2, ty), cv2.FONT_HERSHEY_DUPLEX, scale, (235, 240, 245), 2, cv2.LINE_AA)
    # Shopfront: glass with a reflection band, a door, a stall riser.
    gx0, gx1 = x0 + 14, x1 - 14
    cv2.rectangle(img, (gx0, shop_top), (gx1, bottom - 10), (70, 62, 55), -1)
    for i in range(0, gx1 - gx0, 6):
        band = int(40 * max(0.0, np.sin((i / (gx1 - gx0)) * np.pi * 2 + 0.8)))
        cv2.line(img, (gx0 + i, shop_top), (gx0 + i + 30, bottom - 10), (80 + band, 72 + band, 64 + band), 3)
    door_w = int(min(70, (x1 - x0) * 0.28))
    dx = int(rng.uniform(gx0 + 6, max(gx0 + 7, gx1 - door_w - 6)))
    cv2.rectangle(img, (dx, shop_top + 12), (dx + door_w, bottom - 10), (45, 40, 38), -1)
    cv2.rectangle(img, (dx, shop_top + 12), (dx + door_w, bottom - 10), (150, 150, 150), 2)
    cv2.line(img, (dx + door_w // 2, shop_top + 12), (dx + door_w // 2, bottom - 10), (150, 150, 150), 2)
    for mx in range(gx0, gx1, 70):  # mullions
        cv2.line(img, (mx, shop_top), (mx, bottom - 10), (120, 120, 120), 2)
    cv2.rectangle(img, (x0, bottom - 10), (x1, bottom), _shade(colour, 0.55), -1)
    if rng.random() < 0.45:  # striped awning
        a = SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]
        pts = np.array([[x0 + 10, shop_top], [x1 - 10, shop_top], [x1 + 6, shop_top + 34], [x0 - 6, shop_top + 34]])
        cv2.fillConvexPoly(img, pts, a, cv2.LINE_AA)
        for sx in range(x0, x1, 36):
            stripe = np.array([[sx + 10, shop_top], [sx + 28, shop_top], [sx + 30, shop_top + 34],
                               [sx + 12, shop_top + 34]])
            cv2.fillConvexPoly(img, stripe, (225, 230, 235), cv2.LINE_AA)


def _paving(img: np.ndarray, layout: StreetLayout, y0: int, y1: int) -> None:
    """Tile joints of the pavement in ground perspective: rows widen towards the camera, columns converge."""
    vp = (W / 2, layout.horizon_y)
    joint = (118, 122, 126)
    y = float(y0 + 6)
    while y < y1:
        cv2.line(img, (0, int(y)), (W, int(y)), joint, 1, cv2.LINE_AA)
        y += max(8.0, 0.16 * (y - layout.horizon_y))
    for xb in range(-3000, W + 3000, 150):
        # Point on the line from (xb, y1) towards the vanishing point, at row y0.
        f = (y1 - y0) / (y1 - vp[1])
        xt = xb + (vp[0] - xb) * f
        cv2.line(img, (int(xb), y1), (int(xt), y0), joint, 1, cv2.LINE_AA)


def _tree(img: np.ndarray, rng: np.random.Generator, x: int, base_y: int, size: float) -> None:
    trunk_h = int(size * 1.6)
    cv2.rectangle(img, (x - int(size * 0.06), base_y - trunk_h), (x + int(size * 0.06), base_y), (40, 60, 80), -1)
    cv2.rectangle(img, (x - int(size * 0.2), base_y - 4), (x + int(size * 0.2), base_y + 6), (60, 62, 64), -1)
    cy = base_y - trunk_h - int(size * 0.25)
    for _ in range(26):
        r = int(size * rng.uniform(0.18, 0.32))
        dx, dy = rng.normal(0, size * 0.3), rng.normal(0, size * 0.2)
        g = int(rng.integers(90, 150))
        cv2.circle(img, (int(x + dx), int(cy + dy)), r, (int(g * 0.35), g, int(g * 0.45)), -1, cv2.LINE_AA)


def _lamp_post(img: np.ndarray, x: int, base_y: int, height: int) -> None:
    top = base_y - height
    cv2.rectangle(img, (x - 4, top), (x + 4, base_y), (70, 72, 75), -1)
    cv2.rectangle(img, (x - 8, base_y - 24), (x + 8, base_y), (60, 62, 64), -1)
    cv2.line(img, (x, top), (x + 46, top - 10), (70, 72, 75), 5, cv2.LINE_AA)
    cv2.ellipse(img, (x + 52, top - 6), (20, 7), 0, 0, 360, (210, 225, 230), -1, cv2.LINE_AA)


def _clear(x: int, half: int, keep_clear: tuple[tuple[int, int], ...]) -> bool:
    return all(x + half < a or x - half > b for a, b in keep_clear)


def paint_street(layout: StreetLayout, rng: np.random.Generator) -> np.ndarray:
    """The static street for ``layout`` as a BGR uint8 720x1280 image (deterministic given ``rng``'s state)."""
    img = np.zeros((H, W, 3), np.uint8)
    bb = layout.building_bottom
    x = -int(rng.integers(0, 120))
    names = [SHOP_NAMES[i] for i in rng.permutation(len(SHOP_NAMES))]
    while x < W:
        w = int(rng.integers(220, 380))
        _building(img, rng, x, x + w, bb, names)
        x += w
    _texture(img, rng, 0, bb, coarse=5.0, fine=3.0)

    pb = layout.pavement_bottom
    pave = np.array([150, 156, 160], np.float32) * rng.uniform(0.92, 1.05)
    img[bb:pb] = pave.astype(np.uint8)
    _paving(img, layout, bb, pb)
    _texture(img, rng, bb, pb, coarse=3.5, fine=4.0)

    if layout.kerb_y is not None:
        ky, kh = layout.kerb_y, layout.kerb_h
        img[ky:ky + kh] = (175, 178, 180)
        img[ky:ky + 3] = (205, 208, 210)
        for kx in range(int(rng.integers(0, 80)), W, 96):
            cv2.line(img, (kx, ky), (kx, ky + kh), (130, 132, 134), 1)
        img[ky + kh:ky + kh + 4] = (55, 56, 58)  # gutter shadow
        road_top = ky + kh + 4
        img[road_top:] = (72, 74, 76)
        _texture(img, rng, ky, H, coarse=3.0, fine=6.0)
        cv2.line(img, (0, road_top + 14), (W, road_top + 14), (200, 205, 208), 3)  # edge line
        if layout.lane_line_y is not None:
            ly = layout.lane_line_y
            for dx in range(-40 + int(rng.integers(0, 40)), W, 160):
                cv2.rectangle(img, (dx, ly - 3), (dx + 90, ly + 3), (225, 228, 230), -1)

    # Street furniture along the kerb (or the building line on a pedestrian street).
    base = (pb - 12) if layout.kerb_y is not None else bb + 70
    for tx in range(int(rng.integers(60, 200)), W, int(rng.integers(330, 420))):
        if not _clear(tx, 70, layout.keep_clear):
            continue
        if rng.random() < 0.65:
            _tree(img, rng, tx, base, size=float(layout.person_height(base)) * 0.65)
        else:
            _lamp_post(img, tx, base, int(layout.person_height(base) * 2.6))
    return img
