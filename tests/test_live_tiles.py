"""Live tiles end to end: real RTSP cameras → real IngestService + live relay → real wall server → ``<cw-tile>``
elements in real headless Chromium.

- The wall page itself (``/wall/main``, layout 4x4) with 16 cameras (16 camera ids over the four demo scenes,
  each its own ingest source and RTSP connection): every tile keeps playing.
- A tile scrolled out of view (or a hidden document) closes its socket and resumes at the live edge.
- A camera that drops shows the offline overlay, and plays again soon after it comes back on the same port.

The other tests use a same-origin document of the wall server with the tiles laid out by the test, so each
looks at one tile's behaviour without the wall page around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import async_playwright

from config import Settings, parse_settings
from demo.clock import ClockRtspServer
from demo.scenes import SCENE_NAMES
from demo.server import DemoRtspServer
from tests.fixtures.wall import PASSWORD, PASSWORD_HASH, make_settings, wall_client
from tests.live_page import login_page, overlay_shown, show_tiles, tile_stats
from tests.waiting import eventually
from video_ingest.service import IngestService
from wall.app import create_app

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def wall_for(tmp_path, bus, store, evidence_dir, browser):  # noqa: F811
    """``await wall_for(sources)`` → (ingest, page): everything is stopped after the test. ``layout`` defines the
    wall screen ``main`` with ``sources`` as its tiles (else the wall has the stock test settings)."""
    stack: list = []

    async def make(sources: dict[str, str], *, viewport=(1920, 1080), layout: str | None = None):
        # A killed camera closes its TCP connection (noticed at once); the read timeout only covers a hung one,
        # and must not trip on a starved machine.
        ingest = IngestService(sources, open_timeout_s=5.0, read_timeout_s=5.0, sample_keyframes=False)
        await ingest.start()
        stack.append(ingest.stop)
        settings = wall_settings(tmp_path, list(sources), layout) if layout else make_settings(tmp_path)
        app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=evidence_dir)
        cm = wall_client(app)
        client = await cm.__aenter__()
        stack.append(lambda: cm.__aexit__(None, None, None))
        base = str(client.make_url("")).rstrip("/")
        pw = await async_playwright().start()
        stack.append(pw.stop)
        connected = await pw.chromium.connect_over_cdp(browser.cdp_url)
        stack.append(connected.close)
        context = await connected.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                              device_scale_factor=1)
        stack.append(context.close)
        page = await login_page(context, base, "admin", PASSWORD)
        return ingest, page

    try:
        yield make
    finally:
        for close in reversed(stack):
            with contextlib.suppress(Exception):
                await close()


def wall_settings(tmp_path, cameras: list[str], layout: str) -> Settings:
    """An admin, ``cameras`` (live video comes from the test's own ingest) and screen ``main`` showing them."""
    return parse_settings({
        "site_name": "测试中心",
        "storage": {"data_dir": str(tmp_path / "var")},
        "users": [{"username": "admin", "display_name": "管理员", "role": "admin", "password_hash": PASSWORD_HASH}],
        "cameras": [{"id": c, "name": f"摄像头 {c}", "url": f"rtsp://127.0.0.1:1/{c}",
                     "position": {"lon": 120.15 + i / 1000, "lat": 30.27}} for i, c in enumerate(cameras)],
        "video_wall": {"screens": [{"id": "main", "name": "主屏", "layout": layout, "tiles": cameras}]},
    })


def _sync(fn):
    async def check():
        return fn()
    return check


async def _all(page, predicate, n: int) -> bool:
    stats = await tile_stats(page)
    return len(stats) == n and all(predicate(s) for s in stats)


@pytest.mark.timeout(300)  # 16 software decodes in Chromium next to 16 ingests on a 2-core machine
async def test_sixteen_tiles_on_the_wall_page_all_keep_playing(wall_for, demo_rtsp):
    cams = {f"cam-{i:02d}": demo_rtsp.url(SCENE_NAMES[i % len(SCENE_NAMES)]) for i in range(16)}
    ingest, page = await wall_for(cams, layout="4x4")
    await page.goto(page.url.replace("/login", "/wall/main"))
    await page.locator("#link[data-state=open]").wait_for(timeout=30_000)
    shown = await page.evaluate(
        "() => [...document.querySelectorAll('#grid cw-tile')].map(t => t.getAttribute('camera'))")
    assert sorted(shown) == sorted(cams), shown
    await eventually(lambda: _all(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, 16),
                     timeout=90, what="all 16 tiles showing a picture")
    # Sum each tile's forward playback over >= 12 s, sampled often, so a tile that had to reconnect (its clock
    # restarts) is judged by how much it played, not by one difference.
    before = await tile_stats(page)
    played = [0.0] * 16
    last = [s["currentTime"] for s in before]
    started = time.monotonic()
    while time.monotonic() - started < 12.0:
        await asyncio.sleep(1.0)
        now = await tile_stats(page)
        for i, s in enumerate(now):
            if s["currentTime"] > last[i]:
                played[i] += s["currentTime"] - last[i]
            last[i] = s["currentTime"]
    window = time.monotonic() - started
    after = await tile_stats(page)
    print(f"window {window:.1f} s")
    print("\n".join(f"{a['camera']}: played {p:.1f} s, behind {a['behindLive']:.2f} s, jumps {a['jumps']}, "
                    f"reconnects {a['reconnects']}, resyncs {a['resyncs']}, batched {a['batched']}, {a['lastError']!r}"
                    for p, a in zip(played, after, strict=False)))
    for p, b, a in zip(played, before, after, strict=False):
        # No tile may freeze. Real-time speed is the benchmark's business: on a starved 2-core CI machine 16
        # software decodes of 720p25 get what CPU there is, so ask for a modest amount of playback on every tile.
        assert p > 0.15 * window, (a["camera"], p, window, a)  # quiet machine: ~1.0 × window, 0 jumps
        assert a["videoWidth"] == 1280 and a["fragments"] > b["fragments"], a
    # one RTSP connection per camera id, each relayed to exactly one viewer
    stats = ingest.live.stats()
    assert sorted(stats) == sorted(cams) and all(stats[c]["viewers"] == 1 for c in cams), stats


async def test_hidden_tile_pauses_and_resumes_at_the_live_edge(wall_for, demo_rtsp):
    ingest, page = await wall_for({"cam-x": demo_rtsp.url("vending")}, viewport=(1280, 720))
    await show_tiles(page, ["cam-x"], width=640, height=360, columns=1)
    await eventually(lambda: _all(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, 1),
                     timeout=30, what="tile live")
    relay = ingest.live.relays["cam-x"]

    # Out of view: the IntersectionObserver pauses the tile and its socket (and so the relay's viewer) goes.
    await page.evaluate("document.getElementById('spacer').style.height = '3000px'")
    await eventually(lambda: _all(page, lambda s: s["state"] == "paused", 1), timeout=10, what="paused")
    await eventually(_sync(lambda: relay.stats.viewers == 0), timeout=10, what="viewer gone on the server")
    await asyncio.sleep(3.0)  # the camera moves on meanwhile
    await page.evaluate("document.getElementById('spacer').style.height = '0px'")
    await eventually(lambda: _all(page, lambda s: s["state"] == "live", 1), timeout=15, what="live again")
    await asyncio.sleep(2.0)
    s = (await tile_stats(page))[0]
    assert s["behindLive"] < 1.5, s  # resumed at the live edge, not 3 s in the past
    assert s["reconnects"] == 0  # a resume is a fresh start, not a failure

    # A hidden document (minimised window, another tab) pauses it the same way.
    await page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    await eventually(lambda: _all(page, lambda s: s["state"] == "paused", 1), timeout=10, what="paused (hidden)")
    await page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    await eventually(lambda: _all(page, lambda s: s["state"] == "live" and not s["paused"], 1), timeout=15,
                     what="live again (visible)")
    t0 = (await tile_stats(page))[0]["currentTime"]
    await asyncio.sleep(1.5)
    assert (await tile_stats(page))[0]["currentTime"] > t0 + 0.7


@pytest.fixture
async def own_rtsp(demo_media) -> AsyncIterator[DemoRtspServer]:
    server = DemoRtspServer({"vending": demo_media["vending"]})
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def measure_recovery(page, server: DemoRtspServer, *, down_s: float) -> float:
    """Stop the camera, wait for the offline overlay, keep it down ``down_s``, restart it on the same port, and
    return seconds from the restart to the tile's picture moving again."""
    server.stop()
    await eventually(lambda: overlay_shown(page), timeout=15, what="offline overlay")
    assert (await tile_stats(page))[0]["state"] == "offline"
    await asyncio.sleep(down_s)
    before = (await tile_stats(page))[0]
    server.start()
    started = time.monotonic()
    t_then = before["currentTime"]

    async def moving() -> bool:
        s = (await tile_stats(page))[0]
        return s["state"] == "live" and s["currentTime"] > 0.3 and not await overlay_shown(page) and (
            s["reconnects"] > before["reconnects"] or s["currentTime"] != t_then)

    await eventually(moving, timeout=30, interval=0.05, what="tile playing again")
    t1 = (await tile_stats(page))[0]["currentTime"]
    while (await tile_stats(page))[0]["currentTime"] <= t1:  # advancing, not just a first frame
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_camera_drop_shows_offline_and_recovers_quickly(wall_for, own_rtsp):
    ingest, page = await wall_for({"cam-r": own_rtsp.url("vending")}, viewport=(1280, 720))
    await show_tiles(page, ["cam-r"], width=640, height=360, columns=1)
    await eventually(lambda: _all(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, 1),
                     timeout=30, what="tile live")
    took = await measure_recovery(page, own_rtsp, down_s=6.0)
    print(f"camera back -> tile playing: {took:.2f} s")
    assert took <= 8.0, took  # target 3 s; generous for a noisy CI machine (bench/bench_live_recovery.py measures)
    assert ingest.status("cam-r").state == "online"


@pytest.fixture
async def hevc_camera() -> AsyncIterator[ClockRtspServer]:
    server = ClockRtspServer(("hevc",), width=1280, height=720, codec="h265", bitrate_kbps=1500)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_hevc_camera_plays_transcoded_with_a_badge(wall_for, hevc_camera):
    ingest, page = await wall_for({"cam-h": hevc_camera.url("hevc")}, viewport=(1280, 720))
    await show_tiles(page, ["cam-h"], width=640, height=360, columns=1)
    await eventually(lambda: _all(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, 1),
                     timeout=40, what="transcoded tile live")
    s = (await tile_stats(page))[0]
    assert (s["videoWidth"], s["videoHeight"]) == (640, 360) and s["transcoded"] == "hevc", s
    assert ingest.status("cam-h").codec == "hevc"
    badge = await page.evaluate(
        "() => { const b = document.querySelector('cw-tile').shadowRoot.querySelector('.xcode');"
        " return {hidden: b.hidden, text: b.textContent}; }")
    assert badge == {"hidden": False, "text": "H.265→H.264 转码"}
    t0 = s["currentTime"]
    await asyncio.sleep(2.0)
    assert (await tile_stats(page))[0]["currentTime"] > t0 + 1.0
