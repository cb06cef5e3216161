"""Unit grid cells (万米单元网格): polygons in WGS-84 lon/lat with a grid code, street and community; point lookup
and the validity checks (simple polygons, no two cells overlapping).

Grid codes follow the usual 14-digit layout: district (6) + street (3) + community (3) + cell sequence (2).
Geometry is plain planar arithmetic on lon/lat, which is exact enough at the 100 m scale of a grid cell.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Pt = tuple[float, float]
EPS = 1e-12


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CellProperties(_Strict):
    grid_code: Annotated[str, Field(pattern=r"^\d{14}$", description="district(6)+street(3)+community(3)+seq(2)")]
    street: str = Field(min_length=1, description="街道")
    community: str = Field(min_length=1, description="社区")
    name: str = ""


class PolygonGeometry(_Strict):
    type: Literal["Polygon"]
    coordinates: list[list[tuple[float, float]]] = Field(min_length=1, max_length=1,
                                                         description="one outer ring, no holes")

    @field_validator("coordinates")
    @classmethod
    def _ring(cls, rings: list[list[Pt]]) -> list[list[Pt]]:
        ring = rings[0]
        if len(ring) < 4 or ring[0] != ring[-1]:
            raise ValueError("the ring must be closed (first point repeated last) with at least 3 corners")
        for i, (lon, lat) in enumerate(ring):
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError(f"point {i} ({lon}, {lat}) is not a WGS-84 lon/lat")
        problem = polygon_problem(ring[:-1])
        if problem:
            raise ValueError(problem)
        return rings


class CellFeature(_Strict):
    type: Literal["Feature"]
    properties: CellProperties
    geometry: PolygonGeometry
    id: Any = None


class GridConfig(_Strict):
    """The grid file: a GeoJSON FeatureCollection of cells with unique codes that never overlap."""

    type: Literal["FeatureCollection"]
    name: str = ""
    features: list[CellFeature] = Field(min_length=1)
    crs: Any = None

    @model_validator(mode="after")
    def _cells(self) -> GridConfig:
        seen: dict[str, int] = {}
        for i, feature in enumerate(self.features):
            code = feature.properties.grid_code
            if code in seen:
                raise ValueError(f"features[{i}]: grid_code {code} is already used by features[{seen[code]}]")
            seen[code] = i
        overlaps = find_overlaps([(f.properties.grid_code, f.geometry.coordinates[0][:-1]) for f in self.features])
        if overlaps:
            pairs = "; ".join(f"{a} overlaps {b}" for a, b in overlaps[:10])
            raise ValueError(f"grid cells must not overlap: {pairs}")
        return self


class GridCell:
    """One cell, ready for lookups."""

    __slots__ = ("grid_code", "street", "community", "name", "ring", "bbox")

    def __init__(self, grid_code: str, street: str, community: str, name: str, ring: list[Pt]):
        self.grid_code = grid_code
        self.street = street
        self.community = community
        self.name = name
        self.ring = ring
        self.bbox = _bbox(ring)

    def contains(self, lon: float, lat: float) -> bool:
        x0, y0, x1, y1 = self.bbox
        return x0 <= lon <= x1 and y0 <= lat <= y1 and point_in_polygon((lon, lat), self.ring)

    def __repr__(self) -> str:
        return f"GridCell({self.grid_code} {self.street}/{self.community})"


class Grid:
    """All cells; ``locate`` answers which cell a camera stands in."""

    def __init__(self, cfg: GridConfig):
        self.cells = [
            GridCell(f.properties.grid_code, f.properties.street, f.properties.community, f.properties.name,
                     list(f.geometry.coordinates[0][:-1]))
            for f in cfg.features
        ]

    def locate(self, lon: float, lat: float) -> GridCell | None:
        for cell in self.cells:
            if cell.contains(lon, lat):
                return cell
        return None

    def streets(self) -> list[str]:
        return sorted({c.street for c in self.cells})

    def get(self, grid_code: str) -> GridCell | None:
        return next((c for c in self.cells if c.grid_code == grid_code), None)


# -- geometry -------------------------------------------------------------------------------------------------
def _bbox(ring: list[Pt]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def signed_area(ring: list[Pt]) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=False)) / 2


def _orient(a: Pt, b: Pt, c: Pt) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def segments_cross(a: Pt, b: Pt, c: Pt, d: Pt) -> bool:
    """True when segments ab and cd cross at a single interior point (touching or collinear overlap is not a cross)."""
    d1, d2 = _orient(c, d, a), _orient(c, d, b)
    d3, d4 = _orient(a, b, c), _orient(a, b, d)
    return (((d1 > EPS and d2 < -EPS) or (d1 < -EPS and d2 > EPS))
            and ((d3 > EPS and d4 < -EPS) or (d3 < -EPS and d4 > EPS)))


def _on_segment(p: Pt, a: Pt, b: Pt) -> bool:
    return (abs(_orient(a, b, p)) <= EPS and min(a[0], b[0]) - EPS <= p[0] <= max(a[0], b[0]) + EPS
            and min(a[1], b[1]) - EPS <= p[1] <= max(a[1], b[1]) + EPS)


def on_boundary(p: Pt, ring: list[Pt]) -> bool:
    return any(_on_segment(p, a, b) for a, b in zip(ring, ring[1:] + ring[:1], strict=False))


def point_in_polygon(p: Pt, ring: list[Pt]) -> bool:
    """Ray casting with a half-open rule, so a point on an edge shared by two cells lands in exactly one of them."""
    x, y = p
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=False):
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


def strictly_inside(p: Pt, ring: list[Pt]) -> bool:
    return point_in_polygon(p, ring) and not on_boundary(p, ring)


def polygon_problem(ring: list[Pt]) -> str | None:
    """Why ``ring`` (open, without the repeated last point) is not a simple polygon with area, or None."""
    if len(set(ring)) != len(ring):
        return "the ring repeats a corner"
    n = len(ring)
    edges = [(ring[i], ring[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            if segments_cross(*edges[i], *edges[j]):
                return f"the polygon crosses itself (edges {i} and {j})"
    if abs(signed_area(ring)) <= EPS:
        return "the polygon has no area"
    return None


def interior_point(ring: list[Pt]) -> Pt:
    """A point strictly inside a simple polygon: the centroid when it is inside, else an ear's centroid."""
    a = signed_area(ring)
    edges = list(zip(ring, ring[1:] + ring[:1], strict=True))
    cx = sum((x1 + x2) * (x1 * y2 - x2 * y1) for (x1, y1), (x2, y2) in edges) / (6 * a)
    cy = sum((y1 + y2) * (x1 * y2 - x2 * y1) for (x1, y1), (x2, y2) in edges) / (6 * a)
    if strictly_inside((cx, cy), ring):
        return cx, cy
    n = len(ring)
    for i in range(n):
        p, q, r = ring[i - 1], ring[i], ring[(i + 1) % n]
        c = ((p[0] + q[0] + r[0]) / 3, (p[1] + q[1] + r[1]) / 3)
        if strictly_inside(c, ring):
            return c
    return cx, cy


def polygons_overlap(a: list[Pt], b: list[Pt]) -> bool:
    """True when two simple polygons share interior area; sharing an edge or a corner is allowed."""
    ax0, ay0, ax1, ay1 = _bbox(a)
    bx0, by0, bx1, by1 = _bbox(b)
    if ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0:
        return False
    ea = list(zip(a, a[1:] + a[:1], strict=False))
    eb = list(zip(b, b[1:] + b[:1], strict=False))
    if any(segments_cross(p, q, r, s) for p, q in ea for r, s in eb):
        return True
    if any(strictly_inside(p, b) for p in a) or any(strictly_inside(p, a) for p in b):
        return True
    # Edge midpoints catch cells that share corners but cut into each other; an interior point catches identical or
    # nested cells whose boundaries coincide.
    if any(strictly_inside(((p[0] + q[0]) / 2, (p[1] + q[1]) / 2), b) for p, q in ea):
        return True
    if any(strictly_inside(((p[0] + q[0]) / 2, (p[1] + q[1]) / 2), a) for p, q in eb):
        return True
    return point_in_polygon(interior_point(a), b) or point_in_polygon(interior_point(b), a)


def find_overlaps(cells: list[tuple[str, list[Pt]]]) -> list[tuple[str, str]]:
    """Every overlapping pair of cells by code; a sweep on min longitude keeps it near-linear for real grids."""
    order = sorted(cells, key=lambda c: _bbox(c[1])[0])
    found: list[tuple[str, str]] = []
    for i, (code_a, ring_a) in enumerate(order):
        max_x = _bbox(ring_a)[2]
        for code_b, ring_b in order[i + 1:]:
            if _bbox(ring_b)[0] >= max_x:
                break
            if polygons_overlap(ring_a, ring_b):
                first, second = sorted((code_a, code_b))
                found.append((first, second))
    return found
