"""Labelling on the review console (learning loop) in real headless Chromium on the real wall server (real Redis
bus, real SQLite case store): the boxes start from the judgement's parts on the clean snapshot, keys set classes,
a drag adds a box, and the decision stores the label with the full-resolution clean frame; the API refuses bad
boxes naming the field and labels on undecided items."""

from __future__ import annotations

import dataclasses

import aiohttp
import cv2
import numpy as np
import pytest

from learning.labels import LabelStore
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)

JUDGEMENT = {"kind": "stall", "label": "货物 + 看摊人", "evidence": "货物 + 看摊人 52 s", "parts": [
    {"kind": "goods", "box": [0.10, 0.60, 0.20, 0.80], "why": "goods"},
    {"kind": "person", "box": [0.22, 0.50, 0.27, 0.80], "why": "person"}]}


def _write(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, jpeg = cv2.imencode(".jpg", image)
    path.write_bytes(jpeg.tobytes())


async def test_labels_set_by_keys_and_drag_are_stored_with_the_decision(page, tmp_path, bus, store):
    evidence = tmp_path / "evidence"
    alarms = []
    for n in (1, 2):
        alarm = make_alarm(n, extra={"judgement": JUDGEMENT})
        alarm = dataclasses.replace(alarm, snapshot_clean=f"cam-a/2026/alarm-{n}-clean.jpg")
        _write(evidence / alarm.snapshot, np.full((360, 640, 3), (40, 60, 90), np.uint8))
        _write(evidence / alarm.snapshot_clean, np.full((720, 1280, 3), (90, 100, 110), np.uint8))
        alarms.append(alarm)
        await bus.publish(alarm)
    settings = settings_with_roles(tmp_path)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence)
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        api = aiohttp.ClientSession(base_url=base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            assert (await signin.login(api, "monitor2", PASSWORD)).status == 200
            # Not decided yet: no label.
            resp = await api.put("/api/review/alarm-2/labels", json={"boxes": []})
            assert resp.status == 409 and "not decided" in (await resp.json())["error"]
            for body, field in (({"boxes": [{"class": "stall", "box": [0, 0, 1, 1]}]}, "boxes[0].class"),
                                ({"boxes": [{"class": "goods", "box": [0.5, 0.5, 0.4, 0.9]}]}, "boxes[0].box"),
                                ({"boxes": [{"class": "goods", "box": [0, 0, 1, 1], "x": 1}]}, "boxes[0].x"),
                                ({"boxes": "all"}, "boxes"), ({"boxes": [], "why": 1}, "why")):
                resp = await api.put("/api/review/alarm-2/labels", json=body)
                assert resp.status == 400, (body, resp.status)
                assert (await resp.json())["error"].startswith(f"{field}: "), await resp.text()
            got = await (await api.get("/api/review/alarm-2/labels")).json()
            assert [b["class"] for b in got["proposed"]] == ["goods", "person"]
            assert [c["key"] for c in got["classes"]] == [str(i) for i in range(1, 9)]

            await signin.sign_in_page(page, base, "/review", "monitor", PASSWORD)
            await page.locator("body[data-ready='1']").wait_for(timeout=10_000)
            assert await page.evaluate("document.body.dataset.item") == "alarm-1"
            await page.locator("#label-boxes .lbox").nth(1).wait_for(timeout=10_000)
            await eventually(lambda: page.evaluate(
                "document.getElementById('snap').naturalWidth === 1280"), what="the clean snapshot is shown")
            assert await page.eval_on_selector_all("#label-boxes .lbox", "bs => bs.map(b => b.dataset.cls)") == [
                "goods", "person"]
            await page.keyboard.press("s")  # select the first box: it was a stall, not loose goods
            await page.keyboard.press("1")
            # Draw a missed box (a bicycle) from 60 %/50 % to 80 %/90 % of the picture, then say what it is.
            r = await page.evaluate("(() => { const b = document.getElementById('label-boxes')"
                                    ".getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; })()")
            await page.mouse.move(r[0] + 0.6 * r[2], r[1] + 0.5 * r[3])
            await page.mouse.down()
            await page.mouse.move(r[0] + 0.7 * r[2], r[1] + 0.7 * r[3], steps=3)
            await page.mouse.move(r[0] + 0.8 * r[2], r[1] + 0.9 * r[3], steps=3)
            await page.mouse.up()
            await page.keyboard.press("4")
            # The person box is wrong: select it (the second) and remove it.
            await page.keyboard.press("s")
            await page.keyboard.press("s")
            assert await page.eval_on_selector_all("#label-boxes .lbox", "bs => bs.map(b => b.dataset.cls)") == [
                "vendor_stall", "person", "bike"]
            await page.keyboard.press("x")
            # Fix the stall's box: drag its corner handle 5 % of the picture to the right.
            handle = await page.locator("#label-boxes .lbox").nth(0).locator(".lh").bounding_box()
            hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
            await page.mouse.move(hx, hy)
            await page.mouse.down()
            await page.mouse.move(hx + 0.05 * r[2], hy, steps=4)
            await page.mouse.up()
            await page.screenshot(path="/tmp/review-labels.png")
            await page.keyboard.press("Enter")  # confirm: the label is stored with the decision
            await eventually(lambda: page.evaluate("document.body.dataset.item === 'alarm-2'"),
                             what="on to alarm-2")
            # Reject alarm-2 with its proposed boxes unchanged.
            await page.locator("#label-boxes .lbox").nth(1).wait_for(timeout=10_000)
            await page.keyboard.press("r")
            await page.locator("#reasons:not([hidden])").wait_for(timeout=5_000)
            await page.keyboard.press("2")
            await eventually(lambda: page.evaluate("document.body.dataset.item === ''"), what="queue done")
        finally:
            await api.close()
    labels = LabelStore(store, settings.storage.learning_dir)
    first = await eventually(lambda: labels.get("alarm-1"), what="alarm-1's label stored")
    assert first.decision == "confirm" and first.decided_by == "monitor" and first.camera_id == "cam-a"
    assert (first.width, first.height) == (1280, 720) and first.frame_at == alarms[0].at
    assert [b.cls for b in first.boxes] == ["vendor_stall", "bike"]
    assert first.boxes[0].box == pytest.approx((0.1, 0.6, 0.25, 0.8), abs=0.01)
    assert first.boxes[1].box == pytest.approx((0.6, 0.5, 0.8, 0.9), abs=0.01)
    copied = settings.storage.learning_dir / first.snapshot
    assert cv2.imread(str(copied)).shape == (720, 1280, 3)
    second = await eventually(lambda: labels.get("alarm-2"), what="alarm-2's label stored")
    assert second.decision == "reject" and [b.cls for b in second.boxes] == ["goods", "person"]
