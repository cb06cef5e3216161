"""The hall speaker in headless Chromium against the real wall server (real bus, hub, simulated street speakers):
a leader's broadcast reaches the wall page over /api/ws, the page shows "正在广播 Broadcasting: <text> @ <place>"
and plays the Opus clip; the mute toggle (button or M) silences it."""

from __future__ import annotations

import re

from tests.fixtures.guidance import login_demo
from tests.waiting import eventually


async def test_wall_page_plays_and_shows_a_broadcast(broadcast_api, page) -> None:
    client, runtime, sims = broadcast_api
    base = f"http://127.0.0.1:{client.server.port}"
    await page.goto(f"{base}/wall")
    await page.wait_for_url(re.compile(r".*/login\?next=.*"))
    await page.fill("input[name=username]", "leader")
    await page.fill("input[name=password]", "citywall")
    await page.press("input[name=password]", "Enter")
    await page.wait_for_url(re.compile(r".*/wall$"))
    async def socket_open() -> bool:
        try:  # the page may still be navigating from the login page
            return await page.evaluate("window.citywall?.socket?._ws?.readyState === 1")
        except Exception:
            return False

    await eventually(socket_open, what="the wall's event socket open")
    assert await page.evaluate("document.querySelector('.hall-banner').hidden")

    await login_demo(client, "leader")
    resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "text": "请勿占道经营。"})
    assert resp.status == 200
    banner = page.locator(".hall-banner")
    await banner.wait_for(state="visible", timeout=10_000)
    text = await banner.text_content()
    assert "正在广播" in text and "Broadcasting:" in text and "请勿占道经营。" in text and "@ 解放路人行道喇叭" in text
    src = await page.evaluate("window.citywallHall.audio.src")
    assert re.search(r"/clips/[0-9a-f]{32}\.opus$", src), src
    # the browser fetched and decoded the clip and is playing it
    await eventually(lambda: page.evaluate("window.citywallHall.audio.currentTime > 0.2"), what="hall playback")
    assert await page.evaluate("window.citywallHall.audio.error") is None
    duration = await page.evaluate("window.citywallHall.audio.duration")
    assert 1.0 < duration < 15.0

    button = page.locator(".hall-mute")
    assert await button.get_attribute("aria-pressed") == "false"
    await page.keyboard.press("m")
    assert await button.get_attribute("aria-pressed") == "true"
    assert await page.evaluate("window.citywallHall.audio.muted")
    await button.click()
    assert not await page.evaluate("window.citywallHall.audio.muted")
