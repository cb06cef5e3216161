"""The wall server's map routes: the basemap the situation page and the case pages show (``GET /api/map/basemap``:
the tile source, its coordinate system, and the grid cells and cameras in that system; unit users get no cameras)
and the offline tiles (``GET /api/map/tiles/{z}/{x}/{y}.png``, drawn from ``cases.grid_file`` and cached)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from config import Role
from config.settings import MapSettings
from maps.coords import from_display, to_display
from maps.tiles import Cell, TileCache, check_tile
from wall import state
from wall.auth import current_session
from wall.errors import BadRequest, json_error

OFFLINE_URL = "/api/map/tiles/{z}/{x}/{y}.png"
TILES: web.AppKey[dict[str, Any]] = web.AppKey("map_tiles")
_INT = re.compile(r"^\d{1,8}$")


def tile_url(m: MapSettings) -> str:
    """The Leaflet URL template of the configured source (WMTS: its KVP GetTile request)."""
    if m.tiles == "offline":
        return OFFLINE_URL
    if m.kind == "xyz":
        return m.tiles
    sep = "&" if "?" in m.tiles else "?"
    return (f"{m.tiles}{sep}SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={m.wmts_layer}&STYLE={m.wmts_style}"
            f"&TILEMATRIXSET={m.wmts_matrix_set}&FORMAT={m.wmts_format}&TILEMATRIX={{z}}&TILEROW={{y}}"
            f"&TILECOL={{x}}")


def read_cells(path: Path) -> list[dict[str, Any]]:
    """The grid file's polygons: ``{grid_code, name, street, community, ring}`` (ring in lon/lat)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = []
    for feature in data.get("features", []):
        geom = feature.get("geometry") or {}
        if geom.get("type") == "Polygon" and geom.get("coordinates"):
            props = feature.get("properties") or {}
            cells.append({"grid_code": props.get("grid_code"), "name": props.get("name", ""),
                          "street": props.get("street", ""), "community": props.get("community", ""),
                          "ring": [[float(p[0]), float(p[1])] for p in geom["coordinates"][0]]})
    return cells


async def _cells(app: web.Application) -> list[dict[str, Any]]:
    holder = app[TILES]
    if "cells" not in holder:  # read once, on first use
        holder["cells"] = await asyncio.to_thread(read_cells, app[state.SETTINGS].cases.grid_file)
        holder["cache"] = TileCache([Cell(tuple(map(tuple, c["ring"])), c["street"]) for c in holder["cells"]])
    return holder["cells"]


async def basemap(request: web.Request) -> web.Response:
    """The tile source and the grid and cameras in its coordinate system (GCJ-02 sources get shifted points).
    A unit user gets the tiles and the grid but no cameras (the camera list is not theirs: ``GET /api/cameras`` is
    refused to them); their case pages draw the case's camera from the case's own location."""
    app = request.app
    m = app[state.SETTINGS].map
    crs = m.crs
    cells = await _cells(app)

    def shown(lon: float, lat: float) -> list[float]:
        return list(to_display(lon, lat, crs))

    session = current_session(request)
    unit_user = session is not None and session.role is Role.UNIT
    cams = [] if unit_user else [
        {"id": c.id, "name": c.name, "enabled": c.enabled, "lonlat": shown(c.position.lon, c.position.lat),
         "address": c.position.address} for c in app[state.RUNNING].settings.cameras]
    return web.json_response({
        "tiles": {"url": tile_url(m), "offline": m.tiles == "offline", "attribution": m.attribution or
                  ("网格底图（本地生成） Offline grid basemap" if m.tiles == "offline" else ""),
                  "subdomains": m.subdomains, "min_zoom": m.min_zoom, "max_zoom": m.max_zoom, "crs": crs},
        "cells": [{**{k: v for k, v in c.items() if k != "ring"}, "ring": [shown(*p) for p in c["ring"]]}
                  for c in cells],
        "cameras": cams,
    })


async def tile(request: web.Request) -> web.Response:
    """One offline basemap tile (PNG), drawn on first request and kept."""
    parts = [request.match_info[k] for k in ("z", "x", "y")]
    for name, raw in zip(("z", "x", "y"), parts, strict=False):
        if not _INT.match(raw):
            return json_error(400, f"{name}: must be a whole number, got {raw[:20]!r}")
    z, x, y = (int(p) for p in parts)
    problem = check_tile(z, x, y)
    if problem:
        return json_error(400, problem)
    await _cells(request.app)
    cache: TileCache = request.app[TILES]["cache"]
    png = await asyncio.to_thread(cache.get, z, x, y)
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def _coordinate(request: web.Request, name: str, limit: float) -> float:
    raw = request.query.get(name, "")
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(name, f"must be a number, got {raw[:20]!r}") from None
    if not -limit <= value <= limit:
        raise BadRequest(name, f"must be within ±{limit:g}, got {value}")
    return value


async def convert(request: web.Request) -> web.Response:
    """``?lon=&lat=&to=display|wgs84``: a stored point onto the basemap, or a point picked on it back to WGS-84 (the
    admin page's draggable camera marker on a GCJ-02 source)."""
    lon, lat = _coordinate(request, "lon", 180), _coordinate(request, "lat", 90)
    to = request.query.get("to", "")
    if to not in ("display", "wgs84"):
        raise BadRequest("to", "must be display or wgs84")
    crs = request.app[state.SETTINGS].map.crs
    x, y = to_display(lon, lat, crs) if to == "display" else from_display(lon, lat, crs)
    return web.json_response({"lon": round(x, 7), "lat": round(y, 7), "crs": crs})


def add_routes(app: web.Application) -> None:
    app[TILES] = {}
    app.router.add_get("/api/map/convert", convert)
    app.router.add_get("/api/map/basemap", basemap)
    app.router.add_get("/api/map/tiles/{z}/{x}/{y}.png", tile)
