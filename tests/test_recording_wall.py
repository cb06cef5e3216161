"""Recording on the pages (录像回放), in real headless Chromium against the real wall server, a real demo RTSP camera
and real segment files: the wall tile's menu (回放 / 截图 / 单屏, Esc back to live), the deep link to the recording
at an alarm's time, and the synchronised 2×2 playback view."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from recording.service import RecordingService
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, wall_client
from tests.live_page import login_page
from tests.test_recording import _recorded_s, rec_settings, start_recording
from tests.waiting import eventually
from video_ingest.service import IngestService
from wall.app import create_app

pytestmark = pytest.mark.timeout(240)


async def test_wall_tile_menu_plays_back_snapshots_and_goes_fullscreen(
        tmp_path, bus, store, evidence_dir, demo_rtsp, browser):  # noqa: F811
    from playwright.async_api import async_playwright

    settings = rec_settings(tmp_path)
    ingest, service = await start_recording(settings, store, demo_rtsp.url("vending"))
    pw = await async_playwright().start()
    try:
        began = time.time()
        await eventually(lambda: _recorded_s(service, began, 8.0), timeout=90, what="8 s recorded")
        first_recorded = service.index.segments("cam-v", began - 60, time.time())[0].start_at
        app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=evidence_dir,
                         recordings=service.library)
        async with wall_client(app) as client:
            base = str(client.make_url("")).rstrip("/")
            connected = await pw.chromium.connect_over_cdp(browser.cdp_url)
            context = await connected.new_context(viewport={"width": 1600, "height": 900}, accept_downloads=True)
            page = await login_page(context, base, "monitor", PASSWORD)
            await page.goto(f"{base}/wall")
            tile = page.locator("#grid cw-tile[camera='cam-v']")
            await tile.wait_for(timeout=30_000)
            await page.wait_for_function(
                "() => { const t = document.querySelector('#grid cw-tile'); return t && t.stats.state === 'live'"
                " && t.stats.videoWidth > 0 && !t.playback; }", timeout=30_000)

            # right-click: the menu over the tile
            await tile.click(button="right")
            menu = page.locator(".tile-menu[data-camera='cam-v']")
            await menu.wait_for(timeout=5_000)
            text = await menu.text_content()
            assert "回放" in text and "截图" in text and "单屏" in text, text

            # 截图: a PNG of the picture on screen, named after the camera
            async with page.expect_download(timeout=10_000) as info:
                await menu.locator("button[data-action='snapshot']").click()
            download = await info.value
            assert download.suggested_filename.startswith("cam-v-") and download.suggested_filename.endswith(".png")
            png = Path(await download.path()).read_bytes()
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
            assert await menu.count() == 0  # a choice closes the menu

            # the M key on a focused tile, then 回放 最近5分钟: the playback panel from 5 minutes ago (the recording
            # began later, so it plays from its first keyframe), with the 24 h timeline
            await tile.focus()
            await page.keyboard.press("m")
            await menu.wait_for(timeout=5_000)
            clicked_at = time.time()
            await menu.locator("button[data-action='playback']").click()
            await page.locator(".pb-view .pb-span").first.wait_for(timeout=15_000)
            asked = float(await page.evaluate(
                "() => document.querySelector('.pb-view').tile.getAttribute('playback-at')"))
            assert clicked_at - 302 <= asked <= clicked_at - 298, (asked, clicked_at)
            position = await page.wait_for_function(
                "() => { const t = document.querySelector('.pb-view').tile; return t.stats.state === 'live'"
                " && t.playback && t.position > 0 ? t.position : null; }", timeout=30_000)
            assert first_recorded - 1.5 <= await position.json_value() <= first_recorded + 6.0
            labels = await page.evaluate("() => document.querySelector('.pb-controls').textContent")
            assert "导出" in labels  # the monitor may export

            # Esc: back to the live wall (the wall's tile never stopped)
            await page.keyboard.press("Escape")
            await page.locator(".pb-view").wait_for(state="detached", timeout=5_000)
            assert await page.evaluate("() => { const t = document.querySelector('#grid cw-tile');"
                                       " return !t.playback && t.stats.state === 'live'; }")

            # a chosen time in the past, then 单屏 from the menu; Esc leaves it
            await tile.click(button="right")
            await menu.wait_for(timeout=5_000)
            await menu.locator("input[name='playback-at']").fill("2099-01-01 00:00:00")
            await menu.locator("button[data-action='playback-at']").click()
            assert "请选择过去的时间" in await menu.locator(".tm-note").text_content()
            await menu.locator("button[data-action='fullscreen']").click()
            assert await page.evaluate("() => document.querySelector('#grid cw-tile').hasAttribute('enlarged')")
            await page.keyboard.press("Escape")
            assert not await page.evaluate("() => document.querySelector('#grid cw-tile').hasAttribute('enlarged')")
            await context.close()
    finally:
        await pw.stop()
        await ingest.stop()
        await service.stop()


SCENES = {"cam-v": "vending", "cam-b": "bin_overflow", "cam-r": "road_occupation", "cam-q": "quiet_street"}


def four_camera_settings(tmp_path):
    base = rec_settings(tmp_path)
    cams = [base.cameras[0].model_copy(update={"id": cid, "name": f"{scene} 路口"}) for cid, scene in SCENES.items()]
    return base.model_copy(update={"cameras": cams})


async def test_review_link_opens_the_recording_30_s_before_the_alarm_and_four_cameras_play_in_step(
        tmp_path, bus, store, evidence_dir, demo_rtsp, browser):  # noqa: F811
    from playwright.async_api import async_playwright

    settings = four_camera_settings(tmp_path)
    ingest = IngestService({cid: demo_rtsp.url(scene) for cid, scene in SCENES.items()}, sample_keyframes=False,
                           open_timeout_s=10, read_timeout_s=10)
    await ingest.start()
    service = RecordingService(settings, store, list(SCENES))
    await service.start(ingest.subscribe_packets)
    pw = await async_playwright().start()
    try:
        began = time.time()

        async def all_recorded():
            rows = [await asyncio.to_thread(service.index.segments, cid, began - 60, time.time()) for cid in SCENES]
            return all(sum(r.end_at - r.start_at for r in rs if r.complete) >= 16.0 for rs in rows)
        await eventually(all_recorded, timeout=120, what="16 s recorded on each of four cameras")
        start = max(service.index.segments(cid, began - 60, time.time())[0].start_at for cid in SCENES)
        alarm = dataclasses.replace(make_alarm(1, camera="cam-v"), started_at=start + 35, at=start + 40)
        await bus.publish(alarm)
        app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=evidence_dir,
                         recordings=service.library)
        async with wall_client(app) as client:
            base = str(client.make_url("")).rstrip("/")
            connected = await pw.chromium.connect_over_cdp(browser.cdp_url)
            context = await connected.new_context(viewport={"width": 1600, "height": 1000})
            page = await login_page(context, base, "monitor", PASSWORD)

            # the review console: 录像 links to /playback at the alarm's time - 30 s
            await page.goto(f"{base}/review")
            await page.locator("body[data-ready='1']").wait_for(timeout=20_000)
            await page.wait_for_function("() => document.body.dataset.item === 'alarm-1'", timeout=20_000)
            href = await page.get_attribute("#recording-link", "href")
            url = urlsplit(href)
            query = parse_qs(url.query)
            assert url.path == "/playback" and query["camera"] == ["cam-v"], href
            assert datetime.fromisoformat(query["at"][0]).timestamp() == pytest.approx(start + 10, abs=0.01)

            # the link: the playback panel at that time, playing
            await page.goto(f"{base}{href}")
            await page.locator(".pb-view").wait_for(timeout=20_000)
            position = await page.wait_for_function(
                "() => { const t = document.querySelector('.pb-view').tile; return t.stats.state === 'live'"
                " && t.position > 0 ? t.position : null; }", timeout=30_000)
            assert start + 8.5 <= await position.json_value() <= start + 14.0
            # a bad link says what is wrong
            await page.goto(f"{base}/playback?camera=cam-v&at=soon")
            await page.wait_for_function("() => document.getElementById('msg').textContent.includes('at 不是时间')",
                                         timeout=10_000)

            # four cameras in step: one clock; every tile within the drift bound of it
            q = "&".join(f"camera={cid}" for cid in SCENES)
            await page.goto(f"{base}/playback?{q}&at={start + 2}")
            await page.locator(".sp-view").wait_for(timeout=20_000)
            positions = ("() => { const v = document.querySelector('.sp-view'); return {clock: v.clock(),"
                         " tiles: v.tiles.map(t => t.stats.state === 'live' ? t.position : 0)}; }")

            async def in_step():
                s = await page.evaluate(positions)
                ok = all(p > 0 for p in s["tiles"]) and max(s["tiles"]) - min(s["tiles"]) <= 1.6
                return s if ok else None
            first = await eventually(in_step, timeout=45, what="four tiles playing in step")
            assert all(abs(p - first["clock"]) <= 1.6 for p in first["tiles"]), first
            assert start <= first["clock"] <= start + 12, first
            assert await page.locator(".sp-row").count() == 4

            # 暂停: every tile holds; 4×: the clock and the tiles run four times as fast
            await page.locator(".sp-controls button", has_text="暂停").click()
            await asyncio.sleep(0.5)
            held = await page.evaluate(positions)
            await asyncio.sleep(2.0)
            still = await page.evaluate(positions)
            assert still["clock"] == held["clock"]
            assert all(abs(a - b) <= 0.1 for a, b in zip(still["tiles"], held["tiles"], strict=True)), (held, still)
            await page.locator(".sp-controls button", has_text="继续").click()
            await page.locator(".sp-controls button[data-speed='4']").click()
            await asyncio.sleep(1.0)
            a = await page.evaluate(positions)
            t0 = time.monotonic()
            await asyncio.sleep(2.0)
            b = await page.evaluate(positions)
            rate = (b["clock"] - a["clock"]) / (time.monotonic() - t0)
            assert 3.5 <= rate <= 4.5, rate
            assert await eventually(in_step, timeout=30, what="in step at 4x")
            await page.keyboard.press("Escape")
            await page.locator(".sp-view").wait_for(state="detached", timeout=5_000)
            await context.close()
    finally:
        await pw.stop()
        await ingest.stop()
        await service.stop()
