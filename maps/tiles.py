"""The offline basemap: Web-Mercator tiles drawn from the site's grid file (``cases.grid_file``, GeoJSON polygons of
the 万米单元网格 with their street and community), so the situation map has a plain basemap with no network.

``render_tile(cells, z, x, y)`` is pure (cells in, PNG bytes out): each street's cells share a fill colour, cell
edges are thin lines, the outline of each street a thicker one. ``TileCache`` keeps the last tiles rendered
(bounded, least recently used goes first); a tile outside every cell is the plain background, rendered once.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

TILE = 256
MAX_ZOOM = 22
BACKGROUND = (0x22, 0x17, 0x0f)   # BGR of the page's panel colour (#0f1722)
EDGE = (0x7a, 0x61, 0x4a)
STREET_EDGE = (0xd0, 0xb0, 0x8a)


@dataclass(frozen=True)
class Cell:
    """One grid cell: its outer ring (lon/lat, WGS-84) and the street it belongs to."""

    ring: tuple[tuple[float, float], ...]
    street: str = ""


def lonlat_to_world(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Web-Mercator pixel coordinates of a point at zoom ``z`` (the world is ``256·2^z`` pixels wide)."""
    lat = max(-85.05112878, min(85.05112878, lat))
    n = TILE * (1 << z)
    x = (lon + 180.0) / 360.0 * n
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * n
    return x, y


def check_tile(z: int, x: int, y: int) -> str | None:
    """Why ``z/x/y`` is not a tile (None when it is)."""
    if not 0 <= z <= MAX_ZOOM:
        return f"z must be 0..{MAX_ZOOM}, got {z}"
    if not (0 <= x < 1 << z and 0 <= y < 1 << z):
        return f"x and y must be 0..{(1 << z) - 1} at zoom {z}, got {x}, {y}"
    return None


def _street_colour(street: str) -> tuple[int, int, int]:
    h = hashlib.sha1(street.encode()).digest()
    # Dim, distinct fills on the dark panel colour: a street reads as an area, the video stays the brightest thing.
    return (0x30 + h[0] % 0x28, 0x28 + h[1] % 0x20, 0x18 + h[2] % 0x18)


def render_tile(cells: Sequence[Cell], z: int, x: int, y: int) -> bytes:
    """The PNG of tile ``z/x/y`` with ``cells`` drawn on it."""
    problem = check_tile(z, x, y)
    if problem:
        raise ValueError(problem)
    scale = 4  # draw large and shrink: smooth edges without per-shape anti-aliasing seams between cells
    image = np.empty((TILE * scale, TILE * scale, 3), np.uint8)
    image[:] = BACKGROUND
    ox, oy = x * TILE, y * TILE
    polys: dict[str, list[np.ndarray]] = {}
    for cell in cells:
        pts = np.array([[(px - ox) * scale, (py - oy) * scale]
                        for px, py in (lonlat_to_world(lon, lat, z) for lon, lat in cell.ring)], np.float64)
        if (pts[:, 0].max() < 0 or pts[:, 1].max() < 0 or pts[:, 0].min() > TILE * scale
                or pts[:, 1].min() > TILE * scale):
            continue
        polys.setdefault(cell.street, []).append(np.round(pts).astype(np.int32))
    for street, shapes in polys.items():
        cv2.fillPoly(image, shapes, _street_colour(street))
    width = max(1, scale * (1 if z < 16 else 2))
    for shapes in polys.values():
        cv2.polylines(image, shapes, True, EDGE, width)
    for street, shapes in polys.items():
        if street:
            outline = np.zeros(image.shape[:2], np.uint8)
            cv2.fillPoly(outline, shapes, 255)
            contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(image, contours, -1, STREET_EDGE, width * 2)
    small = cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", small)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


class TileCache:
    """The last ``size`` tiles rendered, least recently used dropped first; counts hits and renders."""

    def __init__(self, cells: Sequence[Cell], size: int = 2048) -> None:
        self.cells = list(cells)
        self.size = size
        self._tiles: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self.hits = 0
        self.rendered = 0

    def get(self, z: int, x: int, y: int) -> bytes:
        key = (z, x, y)
        tile = self._tiles.get(key)
        if tile is not None:
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile
        tile = render_tile(self.cells, z, x, y)
        self.rendered += 1
        self._tiles[key] = tile
        while len(self._tiles) > self.size:
            self._tiles.popitem(last=False)
        return tile
