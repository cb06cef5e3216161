"""Screenshots of the wall screens, the console and the situation panel with live demo video, in headless Chromium.

    python scripts/wall_shots.py [out_dir]     (default var/shots)

Runs the real wall server in-process on config/demo.yaml: a private redis-server, the demo RTSP server, ingest
(live video only, no detection), a throw-away case store. Publishes one demo alarm so the pop-up shows. For
checking readability from 5 m by eye; not a test.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from broker.bus import Bus  # noqa: E402
from broker.embedded import EmbeddedRedis  # noqa: E402
from cases.store import CaseStore  # noqa: E402
from citywall.builders.worker import publish_statuses, resolve_sources  # noqa: E402
from config import load_settings  # noqa: E402
from demo.media import ensure_media  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from messages.alarm import Alarm  # noqa: E402
from tests.fixtures.browser import start_chromium  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402
from wall.app import create_app  # noqa: E402


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="citywall-shots-"))
    settings = load_settings(ROOT / "config" / "demo.yaml")
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"data_dir": tmp})})
    redis = EmbeddedRedis(tmp / "redis")
    url = redis.start()
    media = ensure_media(ROOT / "var" / "demo-media", settings.demo.seed)
    rtsp = DemoRtspServer(media)
    rtsp.start()
    bus = await Bus.connect(url, prefix="shots")
    store = CaseStore.open(f"sqlite:///{tmp}/cases.sqlite")
    ingest = IngestService(resolve_sources(settings, rtsp.url), sample_keyframes=False)
    await ingest.start()
    statuses = asyncio.create_task(publish_statuses(ingest, bus))
    (tmp / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=tmp / "evidence")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    chromium = start_chromium()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.connect_over_cdp(chromium.cdp_url)
            ctx = await browser.new_context(viewport={"width": 1920, "height": 1080})
            page = await ctx.new_page()
            await page.request.post(f"{base}/api/login", data={"username": "leader", "password": "citywall"})
            await page.goto(f"{base}/wall/main")
            await page.wait_for_function(
                "[...document.querySelectorAll('cw-tile')].filter(t => t.stats.state === 'live').length >= 3",
                timeout=60_000)
            await asyncio.sleep(2)
            await page.screenshot(path=str(out / "wall-main.png"))
            now = time.time()
            await bus.publish(Alarm(
                alarm_id="shot-1", phase="raised", camera_id="cam-vending", zone_id="pavement", event="vending",
                started_at=now - 95, at=now, dwell_s=95, confidence=0.9, boxes=[(0.42, 0.5, 0.52, 0.74)],
                camera_name="解放路人行道", zone_name="人行道禁止摆摊区", detector="shots/1"))
            await page.locator(".pop").wait_for(timeout=10_000)
            await asyncio.sleep(2)
            await page.screenshot(path=str(out / "wall-main-alarm.png"))
            aux = await ctx.new_page()
            await aux.goto(f"{base}/wall/aux")
            await aux.wait_for_function(
                "[...document.querySelectorAll('cw-tile')].filter(t => t.stats.state === 'live').length >= 3",
                timeout=60_000)
            await asyncio.sleep(1)
            await aux.screenshot(path=str(out / "wall-aux.png"))
            console = await ctx.new_page()
            await console.goto(f"{base}/console")
            await console.locator("body[data-ready='1']").wait_for()
            await asyncio.sleep(1)
            await console.screenshot(path=str(out / "console.png"))
            await console.keyboard.press("?")
            await console.screenshot(path=str(out / "console-help.png"))
            sit = await ctx.new_page()
            await sit.goto(f"{base}/situation")
            await sit.locator("body[data-ready='1']").wait_for()
            await asyncio.sleep(1)
            await sit.screenshot(path=str(out / "situation.png"))
            await sit.goto(f"{base}/wall/lobby")
            await sit.screenshot(path=str(out / "unknown-screen.png"))
            await ctx.close()
            await browser.close()
    finally:
        chromium.stop()
        await runner.cleanup()
        statuses.cancel()
        await ingest.stop()
        await bus.close()
        store.close()
        rtsp.stop()
        redis.stop()
    print("screenshots in", out)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "var" / "shots"))
