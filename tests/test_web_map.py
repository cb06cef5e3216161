"""The situation map on a real basemap, in real headless Chromium against the real wall server: offline by default
(tiles drawn by the wall server from config/grid.geojson, no network), camera markers that open the live tile,
alarms marked; with a tile URL configured (XYZ or WMTS) the browser asks that server (a tiny aiohttp tile server
on 127.0.0.1 in the test); a GCJ-02 source gets shifted points; the tile endpoint's answers and cache."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
from aiohttp import web

from admin.running import settings_data
from config import parse_settings
from maps.coords import wgs84_to_gcj02
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, make_settings, wall_client
from tests.waiting import eventually
from wall import state
from wall.app import create_app
from wall.screens_api import SCREENS

pytestmark = pytest.mark.timeout(120)
PNG_1PX = cv2.imencode(".png", np.zeros((256, 256, 3), np.uint8))[1].tobytes()


def _settings(tmp_path, **map_section):
    data = settings_data(make_settings(tmp_path))
    if map_section:
        data["map"] = map_section
    return parse_settings(data)


async def _site(settings, bus, store, evidence_dir):  # noqa: F811
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    client = wall_client(app)
    c = await client.__aenter__()
    await app[SCREENS].ready.wait()
    await app[state.HUB].ready.wait()
    c.base = str(c.make_url("")).rstrip("/")
    assert (await signin.login(c, "admin", PASSWORD)).status == 200
    return client, c


async def _open_situation(page, base):
    await signin.sign_in_page(page, base, "/situation", "admin", PASSWORD)
    await page.locator("body[data-ready='1']").wait_for(timeout=20_000)


async def test_offline_basemap_cameras_open_their_tile_and_alarms_are_marked(page, tmp_path, bus, store,  # noqa: F811
                                                                              evidence_dir):  # noqa: F811
    ctx, site = await _site(_settings(tmp_path), bus, store, evidence_dir)
    try:
        await _open_situation(page, site.base)
        assert await page.is_hidden("#map") and await page.is_visible("#basemap")

        async def tiles():
            return await page.evaluate("""() => [...document.querySelectorAll('#basemap img.leaflet-tile-loaded')]
                .map(i => i.getAttribute('src')).filter(s => s.startsWith('/api/map/tiles/')).length""")

        assert await eventually(tiles, timeout=15, what="offline tiles loaded") >= 1
        assert await page.locator("#basemap path.bm-cell").count() >= 10  # config/grid.geojson
        assert await page.locator("#basemap path.bm-cam").count() == 2
        assert "网格底图" in await page.text_content("#basemap .leaflet-control-attribution")
        await page.locator("#basemap path.bm-cam[data-camera=cam-b]").dispatch_event("click")
        await page.locator("#live-view cw-tile[camera=cam-b]").wait_for(timeout=5_000)
        await page.keyboard.press("Escape")
        await bus.publish(replace(make_alarm(1, camera="cam-a"), started_at=time.time() - 20, at=time.time()))
        await page.locator("#basemap path.bm-hot[data-camera=cam-a]").wait_for(timeout=10_000)
        await page.screenshot(path=str(tmp_path / "basemap.png"))
    finally:
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def tile_server():
    """A tiny tile server on 127.0.0.1: answers every GET with a PNG and remembers what was asked."""
    asked: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        return web.Response(body=PNG_1PX, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("kind", ["xyz", "wmts"])
async def test_a_configured_tile_source_is_asked_for_tiles(page, tmp_path, bus, store, evidence_dir,  # noqa: F811
                                                            tile_server, kind):
    base, asked = tile_server
    if kind == "xyz":
        section = {"tiles": base + "/vec/{z}/{x}/{y}.png", "attribution": "测试底图 审图号：GS(2026)0000号"}
        pattern = re.compile(r"^/vec/1\d/\d+/\d+\.png$")
    else:
        section = {"tiles": base + "/vec_w/wmts?tk=key", "kind": "wmts", "wmts_layer": "vec",
                   "attribution": "测试底图 审图号：GS(2026)0000号"}
        pattern = re.compile(r"^/vec_w/wmts\?tk=key&SERVICE=WMTS&REQUEST=GetTile&VERSION=1\.0\.0&LAYER=vec"
                             r"&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX=1\d&TILEROW=\d+&TILECOL=\d+$")
    ctx, site = await _site(_settings(tmp_path, **section), bus, store, evidence_dir)
    try:
        await _open_situation(page, site.base)

        async def requested():
            return [p for p in asked if pattern.match(p)]

        await eventually(requested, timeout=15, what=f"tiles asked from the configured {kind} source")
        assert all(pattern.match(p) for p in asked), asked
        assert "审图号" in await page.text_content("#basemap .leaflet-control-attribution")
    finally:
        await ctx.__aexit__(None, None, None)


async def test_gcj02_sources_get_shifted_points_and_tiles_are_checked_and_cached(tmp_path, bus, store,  # noqa: F811
                                                                                 evidence_dir):  # noqa: F811
    ctx, site = await _site(_settings(tmp_path, tiles="https://tiles.example/{z}/{x}/{y}.png", crs="gcj02"),
                            bus, store, evidence_dir)
    try:
        body = await (await site.get("/api/map/basemap")).json()
        cam = {c["id"]: c for c in body["cameras"]}["cam-a"]
        assert cam["lonlat"] == pytest.approx(list(wgs84_to_gcj02(120.15, 30.27)))
        assert body["tiles"]["crs"] == "gcj02" and body["tiles"]["offline"] is False
        resp = await site.get("/api/map/tiles/16/54641/26980.png")
        assert resp.status == 200 and resp.content_type == "image/png"
        image = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (256, 256, 3) and len(np.unique(image.reshape(-1, 3), axis=0)) > 3  # cells drawn
        assert (await site.get("/api/map/tiles/16/54641/26980.png")).status == 200
        cache = site.server.app[__import__("maps.api", fromlist=["TILES"]).TILES]["cache"]
        assert cache.rendered == 1 and cache.hits == 1
        resp = await site.get("/api/map/tiles/3/9/0.png")
        assert resp.status == 400 and "x and y must be 0..7" in (await resp.json())["error"]
        resp = await site.get("/api/map/tiles/30/0/0.png")
        assert resp.status == 400 and (await resp.json())["error"].startswith("z must be")
    finally:
        await ctx.__aexit__(None, None, None)


def test_map_settings_are_checked():
    from config import ConfigError

    for section, path in (({"tiles": "ftp://x/{z}"}, "map.tiles"), ({"tiles": "http://x/{z}/{x}"}, "map"),
                          ({"crs": "bd09"}, "map.crs"), ({"tiles": "http://x/{z}/{x}/{y}", "kind": "wmts"}, "map")):
        data = {"users": [{"username": "a", "role": "admin", "password_hash": "scrypt$1$1$1$00$00"}], "map": section}
        with pytest.raises(ConfigError) as err:
            parse_settings(data)
        assert err.value.problems[0][0] == path, err.value.problems
