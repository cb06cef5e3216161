"""The wall page on the real wall server: ``wall.app.create_app`` on a real bus (Redis), a real SQLite case
store and the real ingest LiveHub remuxing the demo RTSP camera, in headless Chromium.

Checks the pieces meet: login redirect and cookie, the tile plays the remuxed stream, the unknown-to-ingest
camera is shown offline, an alarm published on the bus reaches the page as a card with its tile flagged, a
camera status published on the bus moves the online counter, and the stored case is listed.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from messages.camera import CameraStatus
from tests.fixtures.cases import insert_case
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, make_settings, wall_client
from tests.waiting import eventually
from wall.app import create_app

service = pytest.importorskip("video_ingest.service", reason="video_ingest.service (IngestService) not built yet")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def ingest(demo_rtsp):
    svc = service.IngestService({"cam-a": demo_rtsp.url("vending")}, open_timeout_s=5.0, read_timeout_s=5.0)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


async def _stats(page, camera: str) -> dict:
    return await page.evaluate("c => document.querySelector(`cw-tile[camera='${c}']`).stats", camera)




async def test_wall_page_on_the_real_server(page, tmp_path, bus, store, ingest):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    insert_case(store, 1)
    await bus.publish(CameraStatus(camera_id="cam-a", state="online", at=time.time()))
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=ingest.live, evidence_dir=evidence)
    async with wall_client(app) as client:
        url = str(client.make_url("")).rstrip("/")
        await page.goto(f"{url}/wall")
        await page.wait_for_url(re.compile(r".*/login\?next=.*"))
        await page.fill("input[name=username]", "admin")
        await page.fill("input[name=password]", PASSWORD)
        await page.press("input[name=password]", "Enter")
        await page.wait_for_url(re.compile(r".*/wall$"))

        await page.locator("cw-tile").first.wait_for(timeout=10_000)
        assert await page.locator("cw-tile").count() == 2
        first = await eventually(
            lambda: _live(page, "cam-a"), timeout=40, what="cam-a playing the remuxed RTSP stream")
        assert first["videoWidth"] == 1280
        await asyncio.sleep(2.0)
        later = await _stats(page, "cam-a")
        assert later["currentTime"] > first["currentTime"] + 1.0, (first, later)
        assert later["behindLive"] < 1.5, later
        # cam-b is configured but ingest does not serve it: the server refuses, the tile shows it offline.
        down = await _stats(page, "cam-b")
        assert down["state"] in ("offline", "connecting") and down["videoWidth"] == 0
        assert await page.locator(".case-row").count() == 1
        assert "无照经营游商" in await page.text_content(".case-row")
        await page.locator("#link[data-state=open]").wait_for(timeout=10_000)

        # Published on the bus → pushed through the hub → a card and a flagged tile.
        await bus.publish(make_alarm(7))
        card = page.locator(".alarm-card[data-alarm-id=alarm-7]")
        await card.wait_for(timeout=10_000)
        assert "无照经营游商" in await card.text_content() and "解放路人行道" in await card.text_content()
        assert await page.get_attribute("cw-tile[camera=cam-a]", "alarm") == ""

        await bus.publish(CameraStatus(camera_id="cam-a", state="offline", at=time.time(), error="test"))
        await eventually(lambda: _counter(page, "0/2"), timeout=10, what="online counter 0/2")
        await page.screenshot(path="/tmp/wall-real.png")


async def _live(page, camera: str):
    s = await _stats(page, camera)
    return s if s["state"] == "live" and s["videoWidth"] > 0 else None


async def _counter(page, expected: str):
    return (await page.text_content("#count-cameras .value") or "").replace(" ", "") == expected
