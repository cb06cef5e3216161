"""The <cw-tile> element in real headless Chromium, fed a real H.264 fMP4 stream over /api/live/<camera>.

The server here is a small aiohttp app that serves ``web/static`` and speaks the wall server's live protocol
(text init frame, binary init segment, binary moof+mdat fragments at real time; error frame + close for an
offline camera). Everything the browser does — WebSocket, MediaSource, decoding, playback — is real.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

import web as web_assets
from tests.fixtures.browser import Fmp4Clip, LiveFeed, make_fmp4_clip

pytestmark = pytest.mark.timeout(90)


def _tile_page(tiles: list[tuple[str, str]], *, spacer_px: int = 0) -> str:
    cells = "\n".join(
        f'<cw-tile camera="{html.escape(cam)}" name="{html.escape(name)}" style="width:640px;height:360px"></cw-tile>'
        for cam, name in tiles
    )
    spacer = f'<div id="spacer" style="height:{spacer_px}px"></div>' if spacer_px else ""
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<script type="module" src="/static/video-tile.js"></script></head>
<body style="margin:0;background:#000">{spacer}{cells}</body></html>"""


class TileServer:
    """aiohttp app: ``/tile?...`` test pages, ``/static/`` from web/static, ``/api/live/{camera_id}``."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.pages: dict[str, str] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/page/{name}", self._page)
        app.router.add_get("/api/live/{camera_id}", self.feed.handle)
        app.router.add_static("/static/", web_assets.STATIC_DIR)
        self.runner = web.AppRunner(app, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.pages[request.match_info["name"]], content_type="text/html")


@pytest_asyncio.fixture
async def server(fmp4_clip: Fmp4Clip) -> AsyncIterator[TileServer]:
    srv = TileServer(LiveFeed(fmp4_clip))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def stats(page, camera: str = "cam-1") -> dict:
    return await page.evaluate("cam => document.querySelector(`cw-tile[camera='${cam}']`).stats", camera)


async def wait_for(page, predicate, *, camera: str = "cam-1", timeout: float = 15.0, what: str = "") -> dict:
    """Poll the tile's stats until ``predicate(stats)`` holds; fail with the last stats otherwise."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        last = await stats(page, camera)
        if predicate(last):
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or predicate}: {last}")


async def open_tile(page, server: TileServer, *, name: str = "解放路人行道", spacer_px: int = 0) -> None:
    server.pages["one"] = _tile_page([("cam-1", name)], spacer_px=spacer_px)
    await page.goto(f"{server.url}/page/one")


@pytest.mark.parametrize("every_frame", [False, True], ids=["gop-fragments", "frame-fragments"])
async def test_tile_plays_at_the_live_edge(page, every_frame, fmp4_clip):
    clip = fmp4_clip if not every_frame else make_fmp4_clip(3.0, every_frame=True)
    srv = TileServer(LiveFeed(clip))
    await srv.start()
    try:
        await open_tile(page, srv)
        first = await wait_for(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, what="live picture")
        assert first["videoWidth"] == clip.width
        assert await page.get_attribute("cw-tile", "data-state") == "live"
        await asyncio.sleep(2.0)
        later = await stats(page)
        assert later["currentTime"] > first["currentTime"] + 1.2, (first, later)
        assert later["fragments"] > first["fragments"]
        # At the live edge: never more than one fragment plus the jump threshold behind.
        assert later["behindLive"] < 1.0 + clip.fragment_s + 0.3, later
        assert later["paused"] is False
        badge = await page.evaluate("document.querySelector('cw-tile').shadowRoot.querySelector('.badge').textContent")
        assert "直播" in badge and "LIVE" in badge
    finally:
        await srv.stop()


async def test_tile_goes_offline_and_recovers_when_the_server_drops_it(page, server):
    await open_tile(page, server)
    await wait_for(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, what="live")
    server.feed.mode["cam-1"] = "offline"  # every retry is refused with an error frame, like a dead camera
    await server.feed.kick("cam-1")
    down = await wait_for(page, lambda s: s["state"] == "offline", timeout=5, what="offline")
    overlay = await page.evaluate(
        "(() => { const o = document.querySelector('cw-tile').shadowRoot.querySelector('.overlay');"
        " return {hidden: o.hidden, text: o.textContent}; })()"
    )
    assert overlay["hidden"] is False and "信号中断" in overlay["text"] and "No signal" in overlay["text"]
    # Backoff: refused retries come at 0.5, 1, 2, 4 s … — a few, not a storm.
    await asyncio.sleep(4.0)
    refused = server.feed.connections["cam-1"] - 1
    assert 2 <= refused <= 5, refused
    server.feed.mode["cam-1"] = "stream"
    back = await wait_for(page, lambda s: s["state"] == "live", timeout=12, what="live again")
    assert back["reconnects"] > down["reconnects"]
    t0 = back["currentTime"]
    await asyncio.sleep(1.5)
    assert (await stats(page))["currentTime"] > t0 + 0.8
    assert await page.evaluate("document.querySelector('cw-tile').shadowRoot.querySelector('.overlay').hidden")


async def test_tile_shows_no_signal_when_data_stops(page, server):
    await open_tile(page, server)
    await wait_for(page, lambda s: s["state"] == "live", what="live")
    server.feed.mode["cam-1"] = "stall"
    started = time.monotonic()
    stalled = await wait_for(page, lambda s: s["state"] == "offline", timeout=9, what="no-signal overlay")
    assert time.monotonic() - started >= 4.0, "offline before 5 s of silence"
    assert stalled["reconnects"] == 0  # same socket: silence alone is not a disconnect yet
    server.feed.mode["cam-1"] = "stream"
    await wait_for(page, lambda s: s["state"] == "live", timeout=5, what="live after the stall")


async def test_hidden_tile_closes_its_socket_and_reopens_when_visible(page, server):
    await open_tile(page, server, spacer_px=3000)  # starts below the fold
    await asyncio.sleep(1.0)
    assert server.feed.connections.get("cam-1", 0) == 0
    assert await page.get_attribute("cw-tile", "data-state") == "paused"
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await wait_for(page, lambda s: s["state"] == "live", what="live when scrolled into view")
    assert server.feed.open_sockets("cam-1") == 1
    await page.evaluate("window.scrollTo(0, 0)")
    await wait_for(page, lambda s: s["state"] == "paused", timeout=5, what="paused when scrolled away")
    deadline = time.monotonic() + 5
    while server.feed.open_sockets("cam-1") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert server.feed.open_sockets("cam-1") == 0, "hidden tile kept its socket"


async def test_unsupported_codec_is_reported_not_played(page, fmp4_clip):
    srv = TileServer(LiveFeed(fmp4_clip, mime='video/mp4; codecs="xyz9.000000"'))
    await srv.start()
    try:
        await open_tile(page, srv)
        s = await wait_for(page, lambda s: "Unsupported codec" in s["lastError"], timeout=8, what="codec error")
        assert s["fragments"] == 0 and s["state"] in ("offline", "connecting")
    finally:
        await srv.stop()


async def test_name_is_text_and_double_click_enlarges(page, server):
    evil = '<img src=x onerror="window.__pwned=1">摄像头'
    await open_tile(page, server, name=evil)
    await wait_for(page, lambda s: s["state"] in ("connecting", "live"), what="started")
    name = await page.evaluate("document.querySelector('cw-tile').shadowRoot.querySelector('.name').textContent")
    assert name == evil
    assert await page.evaluate("document.querySelector('cw-tile').shadowRoot.querySelectorAll('img').length") == 0
    assert await page.evaluate("window.__pwned") is None
    await page.dblclick("cw-tile")
    assert await page.get_attribute("cw-tile", "enlarged") == ""
    await page.keyboard.press("Escape")
    assert await page.get_attribute("cw-tile", "enlarged") is None
