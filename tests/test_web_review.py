"""The review console in real headless Chromium on the real wall server (``create_app``, real Redis bus, real
SQLite case store): evidence with boxes, keyboard work (J/K, Enter, R + reason digit), an item held by another
reviewer is never offered, the confirmed case shows its timeline and the reviewer's (a monitor's) role actions."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)
SCREENSHOT = Path("/tmp/review.png")


async def _item(page) -> str:
    return await page.evaluate("document.body.dataset.item || ''")


async def test_review_console_keyboard_flow(page, tmp_path, bus, store):
    evidence = tmp_path / "evidence"
    for n in (1, 2, 3):
        alarm = make_alarm(n)
        path = evidence / alarm.snapshot
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, jpeg = cv2.imencode(".jpg", np.full((360, 640, 3), (40, 60 + 40 * n, 90), np.uint8))
        path.write_bytes(jpeg.tobytes())
        await bus.publish(alarm)
    app = create_app(settings_with_roles(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence)
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        # Another reviewer already holds the oldest item.
        other = aiohttp.ClientSession(base_url=base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            assert (await signin.login(other, "monitor2", PASSWORD)).status == 200
            got = await (await other.post("/api/review/claim", json={})).json()
            assert got["item"]["id"] == "alarm-1" and got["item"]["status"] == "mine"

            await signin.sign_in_page(page, base, "/review", "monitor", PASSWORD)
            await page.locator("body[data-ready='1']").wait_for(timeout=10_000)

            assert await _item(page) == "alarm-2"  # alarm-1 is the other reviewer's
            assert await page.locator(".q-row[data-id=alarm-1][data-status=claimed]").count() == 1
            assert await page.locator("#boxes .box").count() == 1
            meta = await page.text_content("#meta")
            assert "无照经营游商" in meta and "告警编号 alarm-2" in meta and "null" not in meta, meta
            await eventually(lambda: page.evaluate("document.getElementById('snap').naturalWidth === 640"),
                             what="the snapshot loaded")
            await page.screenshot(path="/tmp/review-item.png")
            # The box (0.1, 0.6)-(0.2, 0.8) lands on the picture itself, not on a letterbox around it.
            geo = await page.evaluate("""() => {
                const i = document.getElementById('snap').getBoundingClientRect();
                const b = document.querySelector('#boxes .box').getBoundingClientRect();
                return [(b.left - i.left) / i.width, (b.top - i.top) / i.height,
                        (b.right - i.left) / i.width, (b.bottom - i.top) / i.height];
            }""")
            assert geo == pytest.approx([0.1, 0.6, 0.2, 0.8], abs=0.01)
            await page.keyboard.press("j")
            await eventually(lambda: _is(page, "alarm-3"), what="J moves to alarm-3")
            await page.keyboard.press("k")
            await eventually(lambda: _is(page, "alarm-2"), what="K moves back to alarm-2, skipping alarm-1")

            await page.keyboard.press("Enter")  # confirm → case
            case_panel = page.locator("#case[data-state=dispatched]")
            await case_panel.wait_for(timeout=10_000)
            assert "CW20260311-0001" in await page.text_content("#case-head")
            actions = await page.eval_on_selector_all(".case-action", "bs => bs.map(b => b.dataset.action)")
            assert actions == []  # a monitor has no actions on a dispatched case (the watch officer takes it on)
            assert await page.locator(".tl-row").count() >= 5
            await eventually(lambda: _is(page, "alarm-3"), what="on to the next free item after confirming")

            await page.keyboard.press("r")
            await page.locator("#reasons:not([hidden])").wait_for(timeout=5_000)
            await page.keyboard.press("2")
            await eventually(lambda: _is(page, ""), what="nothing left for me after rejecting alarm-3")
            assert await page.is_visible("#empty")

            await page.screenshot(path=str(SCREENSHOT))

            # The other reviewer cannot decide an item someone else decided.
            resp = await other.post("/api/review/alarm-2/decision", json={"decision": "reject", "reason": "x"})
            assert resp.status == 409 and "already confirmed by monitor" in (await resp.json())["error"]
        finally:
            await other.close()
    states = store.review_states(["alarm-1", "alarm-2", "alarm-3"], now=0)
    assert states["alarm-2"]["decision"]["decision"] == "confirm" and states["alarm-2"]["decision"]["case_id"]
    assert states["alarm-3"]["decision"] == {**states["alarm-3"]["decision"], "decision": "reject",
                                             "reviewer": "monitor", "reason": "误报：正常通行或停留", "case_id": None}
    # The rejection reached the detectors' side of the bus (they suppress the same object in the same place).
    rejected = [e.data for e in await bus.history("alarm_rejections")]
    assert [(r["alarm_id"], r["reviewer"], r["reason"]) for r in rejected] == [
        ("alarm-3", "monitor", "误报：正常通行或停留")]
    case = store.list_cases()[0][0]
    assert case["state"] == "dispatched"
    assert any(e["action"] == "review_confirm" for e in case["timeline"])


async def _is(page, item: str) -> bool:
    return await _item(page) == item
