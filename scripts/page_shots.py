"""Screenshots of the pages for the README: the wall at 1920x1080 and 3840x2160, the console, the review console
and the situation screen, with live demo video, alarms and cases, in headless Chromium.

    python scripts/page_shots.py [out_dir]     (default docs/screenshots)

Runs the real wall server in-process on config/demo.yaml (as scripts/wall_shots.py does): a private
redis-server, the demo RTSP server, ingest (live video only), a throw-away case store with a few filed cases and
alarms. Each PNG is kept under 400 KB (fewer colour levels where the video makes it larger). Not a test.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from aiohttp import web  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from broker.bus import Bus  # noqa: E402
from broker.embedded import EmbeddedRedis  # noqa: E402
from cases.filing import build_filer  # noqa: E402
from cases.store import CaseStore  # noqa: E402
from citywall.up import _publish_statuses, resolve_sources  # noqa: E402
from config import load_settings  # noqa: E402
from demo.media import ensure_media  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from messages.alarm import Alarm  # noqa: E402
from tests.fixtures.browser import start_chromium  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402
from wall.app import create_app  # noqa: E402

MAX_BYTES = 400_000
LIVE = "[...document.querySelectorAll('cw-tile')].filter(t => t.stats.state === 'live').length >= 3"


def indexed_png(img: np.ndarray, levels: tuple[int, int, int]) -> bytes:
    """``img`` (BGR) as an 8-bit palette PNG on a uniform ``levels`` (r, g, b) colour cube: one byte per pixel,
    rows filtered with Sub (flat UI areas compress to almost nothing)."""
    lr, lg, lb = levels
    b, g, r = (img[..., i].astype(np.uint16) for i in range(3))
    idx = (((r * (lr - 1) + 127) // 255) * lg * lb + ((g * (lg - 1) + 127) // 255) * lb
           + (b * (lb - 1) + 127) // 255).astype(np.uint8)
    palette = bytes(round(c * 255 / (n - 1)) for i in range(lr) for j in range(lg) for k in range(lb)
                    for c, n in ((i, lr), (j, lg), (k, lb)))
    h, w = idx.shape
    rows = np.zeros((h, w + 1), np.uint8)
    rows[:, 0] = 1
    rows[:, 1] = idx[:, 0]
    rows[:, 2:] = (idx[:, 1:].astype(np.int16) - idx[:, :-1]).astype(np.uint8)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + chunk(b"IEND", b""))


def shrink(path: Path, crop: tuple[int, int, int, int] | None = None) -> int:
    """Re-encode ``path`` (full colour, else a 252- or 120-colour palette) to fit MAX_BYTES; when even that does
    not fit, keep the ``crop`` (x, y, w, h) part at full size (the 4K wall: its header and alarm column)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    for part in (img, None if crop is None else img[crop[1]:crop[1] + crop[3], crop[0]:crop[0] + crop[2]]):
        if part is None:
            break
        ok, png = cv2.imencode(".png", part, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        candidates = [png.tobytes(), indexed_png(part, (6, 7, 6)), indexed_png(part, (5, 6, 4))]
        for data in candidates:
            if len(data) <= MAX_BYTES:
                path.write_bytes(data)
                return len(data)
    path.write_bytes(candidates[-1])
    return len(candidates[-1])


def alarm(n: int, camera: str, name: str, zone: str, zone_name: str, event: str, dwell: float, *, phase="raised",
          confidence: float = 0.9, box=(0.42, 0.5, 0.52, 0.74)) -> Alarm:
    now = time.time()
    return Alarm(alarm_id=f"shot-{n}", phase=phase, camera_id=camera, zone_id=zone, event=event,
                 started_at=now - dwell, at=now - (60 - n), dwell_s=dwell, confidence=confidence, boxes=[box],
                 camera_name=name, zone_name=zone_name, detector="shots/1")


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="citywall-pages-"))
    settings = load_settings(ROOT / "config" / "demo.yaml")
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"data_dir": tmp})})
    redis = EmbeddedRedis(tmp / "redis")
    url = redis.start()
    media = ensure_media(ROOT / "var" / "demo-media", settings.demo.seed)
    rtsp = DemoRtspServer(media)
    rtsp.start()
    bus = await Bus.connect(url, prefix="pages")
    store = CaseStore.open(f"sqlite:///{tmp}/cases.sqlite")
    ingest = IngestService(resolve_sources(settings, rtsp.url), sample_keyframes=False)
    await ingest.start()
    statuses = asyncio.create_task(_publish_statuses(ingest, bus))
    (tmp / "evidence").mkdir()
    cams = {c.id: c for c in settings.cameras}
    filer = build_filer(settings, store)
    history = []
    for n, cam in enumerate(list(cams)[:4]):
        c = cams[cam]
        zone = c.zones[0] if c.zones else None
        event = zone.events[0] if zone and zone.events else "vending"
        a = alarm(n + 1, cam, c.name, zone.id if zone else "z", zone.name if zone else "", event, 95 + 40 * n,
                  confidence=0.9 if n % 2 == 0 else 0.5)
        history.append(a)
        if n % 2 == 0:
            filer.file(a)
    app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=tmp / "evidence")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    for a in history:
        await bus.publish(a)
    chromium = start_chromium()
    sizes: dict[str, int] = {}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.connect_over_cdp(chromium.cdp_url)
            for w, h, name in ((1920, 1080, "wall-1080p"), (3840, 2160, "wall-4k")):
                ctx = await browser.new_context(viewport={"width": w, "height": h})
                page = await ctx.new_page()
                await page.request.post(f"{base}/api/login", data={"username": "leader", "password": "citywall"})
                await page.goto(f"{base}/wall/main")
                await page.wait_for_function(LIVE, timeout=90_000)
                await asyncio.sleep(2)
                path = out / f"{name}.png"
                await page.screenshot(path=str(path))
                # At 4K the whole screen does not fit 400 KB: its right half (header, alarms, cases) at full size.
                sizes[path.name] = shrink(path, crop=(w // 2, 0, w // 2, h) if w > 1920 else None)
                await ctx.close()
            ctx = await browser.new_context(viewport={"width": 1920, "height": 1080})
            page = await ctx.new_page()
            await page.request.post(f"{base}/api/login", data={"username": "leader", "password": "citywall"})
            for path_, name, ready in (("/console", "console", "body[data-ready='1']"),
                                       ("/review", "review", "body[data-ready='1']"),
                                       ("/situation", "situation", "body[data-ready='1']"),
                                       ("/broadcast", "broadcast", "body[data-ready='1']")):
                await page.goto(f"{base}{path_}")
                await page.locator(ready).wait_for(timeout=30_000)
                await asyncio.sleep(1.5)
                path = out / f"{name}.png"
                await page.screenshot(path=str(path))
                sizes[path.name] = shrink(path)
            # The wall with an alarm pop-up (a repeat of one place: the count badge) at 1080p.
            await page.goto(f"{base}/wall/main")
            await page.wait_for_function(LIVE, timeout=90_000)
            # Two more alarms of the place whose alarm holds the tile (the highest priority): its pop-up counts 3.
            shown = await page.evaluate("window.citywall.screen.alarm && window.citywall.screen.alarm.camera_id")
            c = cams.get(shown) or cams[list(cams)[0]]
            for n in (20, 21):
                await bus.publish(alarm(n, c.id, c.name, c.zones[0].id, c.zones[0].name, c.zones[0].events[0], 130))
            await page.locator(".pop .pop-count").wait_for(timeout=15_000)
            await asyncio.sleep(2)
            path = out / "wall-alarm.png"
            await page.screenshot(path=str(path))
            sizes[path.name] = shrink(path)
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
    for name, size in sizes.items():
        print(f"{out / name}: {size / 1000:.0f} KB")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"))
