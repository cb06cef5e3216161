"""Zones: a camera's normalised polygons as pixel masks at analysis resolution, and in-zone tests for boxes.

A ``ZoneMask`` is built once per zone and caches its raster per image size, so every frame's tests are array
lookups. Boxes and points are normalised (0..1) like ``Detections.xyxy``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detectors.detections import Detections

Point = tuple[float, float]


class ZoneMask:
    """One polygon (normalised ``(x, y)`` points) and its cached pixel masks."""

    def __init__(self, polygon: Sequence[Point]) -> None:
        pts = np.asarray(polygon, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 3:
            raise ValueError(f"zone polygon must be (N >= 3, 2) normalised points; got shape {pts.shape}")
        if np.any(pts < 0) or np.any(pts > 1):
            raise ValueError("zone polygon points must be normalised (0..1)")
        self.polygon = pts
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def mask(self, width: int, height: int) -> np.ndarray:
        """bool (height, width): pixels whose centre lies inside the polygon (cached per size; do not modify)."""
        key = (width, height)
        cached = self._masks.get(key)
        if cached is None:
            raster = np.zeros((height, width), np.uint8)
            # Pixel centres: point (x, y) normalised maps to x * width - 0.5 in pixel index space.
            pix = np.round(self.polygon * (width, height) - 0.5 + 1e-9).astype(np.int32)
            cv2.fillPoly(raster, [pix], 1)
            cached = raster.astype(bool)
            cached.setflags(write=False)
            self._masks[key] = cached
        return cached

    def pixel_polygon(self, width: int, height: int) -> np.ndarray:
        """int32 (N, 2): the polygon in pixel coordinates of a ``width`` x ``height`` image (for drawing)."""
        return np.round(self.polygon * (width, height)).astype(np.int32)

    def contains_points(self, points: np.ndarray) -> np.ndarray:
        """bool (N,): whether each normalised point (N, 2) lies inside the polygon (boundary counts as inside)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        contour = self.polygon.astype(np.float32).reshape(-1, 1, 2)
        return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0 for x, y in pts], bool)

    def box_fraction(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """float32 (N,): the fraction of each normalised box's pixels inside the zone, at ``width`` x ``height``."""
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        zone = self.mask(width, height)
        out = np.zeros(len(boxes), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            c1, r1 = int(np.floor(x1 * width)), int(np.floor(y1 * height))
            c2, r2 = max(int(np.ceil(x2 * width)), c1 + 1), max(int(np.ceil(y2 * height)), r1 + 1)
            c1, r1, c2, r2 = max(c1, 0), max(r1, 0), min(c2, width), min(r2, height)
            if c2 > c1 and r2 > r1:
                out[i] = float(zone[r1:r2, c1:c2].mean())
        return out

    def holds(self, detections: Detections, width: int, height: int, *, min_fraction: float = 0.5) -> np.ndarray:
        """bool (N,): objects in the zone — standing in it (bottom centre inside) or mostly inside it."""
        if not len(detections):
            return np.zeros(0, bool)
        feet = self.contains_points(detections.bottom_centre())
        return feet | (self.box_fraction(detections.xyxy, width, height) >= min_fraction)
