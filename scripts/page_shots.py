"""Screenshots of the pages for the README: the wall at 1920x1080 and 3840x2160, the console, the review console,
the situation screen, the admin's cameras page and the case office (desk list, case page, the unit's phone page at
390x844), with live demo video, alarms and cases, in headless Chromium.

    python scripts/page_shots.py [out_dir] [--only cases]     (default docs/screenshots; --only cases: the case
                                                               office's three shots alone)

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
from citywall.builders.worker import publish_statuses, resolve_sources  # noqa: E402
from config import load_settings  # noqa: E402
from demo.media import ensure_media  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from messages.alarm import Alarm  # noqa: E402
from tests.fixtures.browser import start_chromium  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402
from wall import state  # noqa: E402
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
    if img is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
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


async def case_office_data(settings, store, filer, evidence: Path, live) -> str:
    """Thirty cases over the last days in every stage for the list; returns the case the shots open (fed back by
    the unit with a photo, waiting for 核查; its alarm picture is a frame of the demo camera)."""
    from cases.desk import CaseDesk
    from wall.case_office import _grab

    desk = CaseDesk(filer.config, store)
    cams = list(settings.cameras)
    now = time.time()
    shown = ""
    for n in range(30):
        c = cams[n % len(cams)]
        zone = c.zones[n % len(c.zones)] if c.zones else None
        at = now - 3600 * (n * 2.5 + 0.5)
        snapshot = None
        if n == 2:  # the case the shots open: a real frame of its camera as the alarm's picture
            snapshot = f"{c.id}/office-2.jpg"
            (evidence / c.id).mkdir(parents=True, exist_ok=True)
            (evidence / snapshot).write_bytes(await asyncio.wait_for(_grab(live, c.id), 60))
        # a zone id of its own per case: the filer attaches a repeat of one place to its open case
        a = Alarm(alarm_id=f"office-{n}", phase="raised", camera_id=c.id, zone_id=f"{zone.id if zone else 'z'}-{n}",
                  event=zone.events[0] if zone and zone.events else "vending", started_at=at - 120, at=at, dwell_s=120,
                  confidence=0.9, boxes=[(0.4, 0.5, 0.55, 0.8)], camera_name=c.name, snapshot=snapshot,
                  zone_name=zone.name if zone else "", detector="shots/1")
        case = filer.file(a).case
        steps = [[], ["start"], ["feedback"], ["feedback", "verify", "close"], ["start"], ["return"]][n % 6]
        if n == 2:
            shown = case["id"]
        for step in steps:
            desk.act(case["id"], step, role="admin", user="duty", now=at + 900)
        if n % 7 == 3 and store.get_case(case["id"])["state"] != "closed":
            desk.supervise(case["id"], role="leader", user="leader", now=at + 1200, note="请加快处置")
    photo = evidence / "field" / shown / "demo.jpg"
    photo.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((900, 1200, 3), (70, 110, 90), np.uint8)
    cv2.putText(img, "field photo", (360, 460), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (235, 235, 235), 4)
    cv2.imwrite(str(photo), img)
    desk.add_photo(shown, f"field/{shown}/demo.jpg", kind="field_photo", role="unit", user="squad", now=now - 600,
                   taken_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 700)), note="已劝离，现场已清理")
    return shown


async def case_office_shots(browser, base: str, out: Path, shown: str, sizes: dict[str, int]) -> None:
    """The desk list and the case page at 1920x1080 (duty), the phone page at 390x844 (the unit)."""
    ctx = await browser.new_context(viewport={"width": 1920, "height": 1080})
    page = await ctx.new_page()
    await page.request.post(f"{base}/api/login", data={"username": "duty", "password": "citywall"})
    await page.goto(f"{base}/cases")
    await page.locator("body[data-ready='1']").wait_for(timeout=30_000)
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await asyncio.sleep(1)
    await page.screenshot(path=str(out / "cases-list.png"))
    sizes["cases-list.png"] = shrink(out / "cases-list.png")
    await page.goto(f"{base}/cases/{shown}")
    await page.locator("body[data-ready='1']").wait_for(timeout=30_000)
    await page.wait_for_function("document.querySelector('cw-tile') && "
                                 "document.querySelector('cw-tile').stats.state === 'live'",
                                 timeout=60_000)
    await page.keyboard.press("s")  # 现场抓拍: the camera's picture now beside the alarm's
    await page.locator("#cmp-now:not([hidden])").wait_for(timeout=30_000)
    await asyncio.sleep(2)
    await page.screenshot(path=str(out / "case-detail.png"))
    sizes["case-detail.png"] = shrink(out / "case-detail.png")
    await ctx.close()
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                    has_touch=True)
    page = await ctx.new_page()
    await page.request.post(f"{base}/api/login", data={"username": "squad", "password": "citywall"})
    await page.goto(f"{base}/field")
    await page.locator("body[data-ready='1']").wait_for(timeout=30_000)
    first = await page.get_attribute(".fd-card", "data-case-id")
    await page.goto(f"{base}/field#{first}")
    await page.locator("#case-view:not([hidden])").wait_for(timeout=30_000)
    await page.locator("#c-map img.leaflet-tile-loaded").first.wait_for(timeout=30_000)  # the case on the basemap
    await asyncio.sleep(1)
    await page.screenshot(path=str(out / "field-phone.png"))
    sizes["field-phone.png"] = shrink(out / "field-phone.png")
    await ctx.close()


async def main(out: Path, only: str = "") -> None:
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
    statuses = asyncio.create_task(publish_statuses(ingest, bus))
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
    # 测试连接 / the zone editor's picture on demo cameras: demo://<scene> is the demo RTSP server (as in citywall up).
    app[state.RUNNING].stream_url = lambda u: rtsp.url(u.removeprefix("demo://")) if u.startswith("demo://") else u
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    for a in history:
        await bus.publish(a)
    shown = await case_office_data(settings, store, filer, tmp / "evidence", ingest.live)
    chromium = start_chromium()
    sizes: dict[str, int] = {}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.connect_over_cdp(chromium.cdp_url)
            await case_office_shots(browser, base, out, shown, sizes)
            for w, h, name in ((1920, 1080, "wall-1080p"), (3840, 2160, "wall-4k")) if only != "cases" else ():
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
            for path_, name, ready in () if only == "cases" else (("/console", "console", "body[data-ready='1']"),
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
            if only != "cases":
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
            # 摄像机与区域 (admin): the zone editor on the vending camera's current picture.
            ctx = await browser.new_context(viewport={"width": 1920, "height": 1080})
            page = await ctx.new_page()
            await page.request.post(f"{base}/api/login", data={"username": "admin", "password": "citywall"})
            await page.goto(f"{base}/admin/cameras")
            await page.locator("body[data-ready='1']").wait_for(timeout=30_000)
            first = next(iter(cams.values()))
            await page.click(f"#cameras tr[data-camera='{first.id}'] button:text('区域')")
            await page.wait_for_function("document.getElementById('snapshot').naturalWidth > 0", timeout=30_000)
            await asyncio.sleep(1)
            path = out / "admin-cameras.png"
            await page.screenshot(path=str(path), full_page=True)
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
    import argparse

    parser = argparse.ArgumentParser(description="Screenshots of the pages for the README")
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=["cases"], default="", help="only the case office's shots")
    ns = parser.parse_args()
    asyncio.run(main(ns.out, only=ns.only))
