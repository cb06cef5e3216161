"""Coordinate systems of Chinese basemaps, as pure functions.

- WGS-84: GPS, what citywall stores (camera positions, ``grid.geojson``).
- CGCS2000 (天地图, most city GIS services): differs from WGS-84 by centimetres; at map scale it *is* WGS-84.
- GCJ-02 ("火星坐标", 高德/腾讯 tiles): WGS-84 shifted by the published obfuscation polynomial, up to ~500 m
  inside China, none outside. ``wgs84_to_gcj02`` is that forward formula; ``gcj02_to_wgs84`` inverts it by
  fixed-point iteration (to ~1e-7° in a few steps; the formula has no closed inverse).
"""

from __future__ import annotations

import math
from typing import Literal

Crs = Literal["wgs84", "gcj02", "cgcs2000"]
CRSES: tuple[str, ...] = ("wgs84", "gcj02", "cgcs2000")

_A = 6378245.0                       # Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses
_EE = 0.00669342162296594323         # its first eccentricity squared


def outside_china(lon: float, lat: float) -> bool:
    """The GCJ-02 shift applies only inside this box (the formula's own rough boundary of China)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _shift_lat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _shift_lon(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """A WGS-84 point as a GCJ-02 basemap shows it (unchanged outside China)."""
    if outside_china(lon, lat):
        return lon, lat
    d_lat = _shift_lat(lon - 105.0, lat - 35.0)
    d_lon = _shift_lon(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: float, lat: float, *, tolerance: float = 1e-9, max_steps: int = 30) -> tuple[float, float]:
    """The WGS-84 point whose GCJ-02 image is ``(lon, lat)`` (a point read off a GCJ-02 map)."""
    if outside_china(lon, lat):
        return lon, lat
    x, y = lon, lat
    for _ in range(max_steps):
        gx, gy = wgs84_to_gcj02(x, y)
        dx, dy = gx - lon, gy - lat
        x, y = x - dx, y - dy
        if abs(dx) < tolerance and abs(dy) < tolerance:
            break
    return x, y


def to_display(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """A stored (WGS-84) point in the coordinate system of the basemap's tiles."""
    return wgs84_to_gcj02(lon, lat) if crs == "gcj02" else (lon, lat)


def from_display(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """A point picked on the basemap (its coordinate system) back to WGS-84 for storing."""
    return gcj02_to_wgs84(lon, lat) if crs == "gcj02" else (lon, lat)
