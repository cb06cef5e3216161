"""Alarms as the hall lives with them, in real headless Chromium on the real wall server (real Redis bus, real
SQLite case store): the cue repeats until acknowledged (and can be muted), repeats of one place are one pop-up
with a count, 全部确认 acknowledges everything (one audited ack each), a cleared alarm does not pop up, and an
alarm card plays its evidence clip in the page (wall and review console)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, sign_in
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def write_clip(path: Path, seconds: float = 3.0, fps: int = 25) -> None:
    """A real H.264 MP4 (moving pattern) as the ingest's clip recorder writes them."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.options = {"preset": "ultrafast", "bf": "0"}
        ys, xs = np.mgrid[0:180, 0:320]
        for i in range(int(seconds * fps)):
            img = np.stack([(xs + i * 6) % 256, (ys + i * 3) % 256, np.full_like(xs, 90)], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)




async def wall_alarm(page) -> str | None:
    return await page.evaluate("window.citywall && window.citywall.screen && window.citywall.screen.alarm"
                               " ? window.citywall.screen.alarm.alarm_id : null")


async def test_a_cleared_alarm_does_not_pop_up_and_ends_its_pop_up(page, site, bus):
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}/wall/main")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    await bus.publish(make_alarm(1, camera="cam-e"))                     # pops onto the alarm tile
    await eventually(lambda: _is(page, "alarm-1"), timeout=10, what="alarm-1 pops up")
    await page.locator(".pop[data-alarm-id=alarm-1]").wait_for(timeout=10_000)
    await bus.publish(make_alarm(1, camera="cam-e", phase="cleared"))    # the street is clear again
    await eventually(lambda: _is(page, None), timeout=10, what="the cleared alarm's pop-up ends")
    assert await page.locator(".pop").count() == 0
    # The alarm list keeps it, marked cleared.
    await page.locator(".alarm-card[data-alarm-id=alarm-1][data-phase=cleared]").wait_for(timeout=10_000)


async def _is(page, alarm_id):
    return await wall_alarm(page) == alarm_id or None if alarm_id is not None else (await wall_alarm(page)) is None


async def test_the_cue_repeats_until_acknowledged_and_can_be_muted(page, site, bus):
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}/wall/main?cue_s=1")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    await page.evaluate("localStorage.clear()")
    await bus.publish(make_alarm(2, camera="cam-e"))
    await page.locator(".pop[data-alarm-id=alarm-2]").wait_for(timeout=10_000)
    await eventually(lambda: page.evaluate("window.citywall.cues.played >= 3"), timeout=15, what="the cue repeats")
    await page.click(".pop .mute")
    assert await page.text_content(".pop .mute") == "已静音"
    muted_at = await page.evaluate("window.citywall.cues.played")
    repeats = await page.evaluate("window.citywall.cue.repeats")
    await page.wait_for_function(f"window.citywall.cue.repeats >= {repeats} + 2")
    assert await page.evaluate("window.citywall.cues.played") == muted_at       # muted: ticks, no sound
    await page.click(".pop .mute")                                              # unmute: it sounds again
    await eventually(lambda: page.evaluate(f"window.citywall.cues.played > {muted_at}"), timeout=10,
                     what="the cue after unmuting")
    await page.click(".pop .ack")
    await eventually(lambda: _is(page, None), timeout=10, what="acknowledged")
    after = await page.evaluate("window.citywall.cues.played")
    await page.wait_for_timeout(2500)   # two intervals: nothing waits, nothing sounds
    assert await page.evaluate("window.citywall.cues.played") == after


async def test_repeats_group_with_a_count_and_ack_all_is_audited(page, site, bus):
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}/console")
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    for n in (10, 11, 12):                              # three repeats of one place
        await bus.publish(make_alarm(n, camera="cam-e"))
    await bus.publish(make_alarm(13, camera="cam-d"))    # another place
    rows = page.locator("#alarms li.alarm")
    await eventually(lambda: _count(page, "#alarms li.alarm .count", 1), timeout=10, what="a grouped row")
    assert await rows.count() == 2
    assert await page.text_content("#alarms li.alarm .count") == "×3"
    await page.click("#ack-all")
    await page.locator("#alarms li.none").wait_for(timeout=10_000)
    assert "全部确认 2 条" in await page.text_content("#status")
    audit = await (await site.get("/api/audit?action=alarm.ack&actor=duty")).json() if await _admin(site) else None
    assert audit is not None and {e["target"] for e in audit["entries"]} == {"alarm-10", "alarm-13"}, audit
    assert all(e["outcome"] == 200 for e in audit["entries"])


async def _admin(site) -> bool:
    from tests import signin
    return (await signin.login(site, "admin", PASSWORD)).status == 200


async def _count(page, selector: str, n: int) -> bool:
    return await page.locator(selector).count() == n


async def test_an_alarm_card_plays_its_clip_on_the_wall_and_in_review(page, site, bus, evidence_dir):
    write_clip(Path(evidence_dir) / "clips/cam-a/alarm-5.mp4")
    await bus.publish(make_alarm(5, camera="cam-a", extra={"clip": "clips/cam-a/alarm-5.mp4"}))
    await sign_in(page, site, "leader")
    await page.goto(f"{site.base}/wall/main")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    await page.click(".alarm-card[data-alarm-id=alarm-5]")
    video = page.locator("#clip-view video")
    await video.wait_for(timeout=10_000)
    await eventually(lambda: page.evaluate("document.querySelector('#clip-view video').currentTime > 0.5"),
                     timeout=15, what="the clip plays in the wall page")
    assert await page.evaluate("document.querySelector('#clip-view video').videoWidth") == 320
    await page.keyboard.press("Escape")
    assert await page.locator("#clip-view").count() == 0

    await page.goto(f"{site.base}/review")
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    await eventually(lambda: page.evaluate("document.body.dataset.item === 'alarm-5'"), timeout=10,
                     what="alarm-5 in review")
    await page.keyboard.press("v")
    await eventually(lambda: page.evaluate("document.getElementById('clip').currentTime > 0.5"), timeout=15,
                     what="the clip plays in the review console")
    assert await page.is_hidden("#snap")


async def test_older_alarms_page_in_the_history_view(page, site, bus):
    for n in range(45):
        await bus.publish(make_alarm(100 + n, camera="cam-b"))
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}/wall/main")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    await page.click("#alarm-history")
    rows = page.locator("#alarm-history tbody tr")
    await eventually(lambda: _count(page, "#alarm-history tbody tr[data-alarm-id]", 20), timeout=10, what="page 1")
    first = await rows.first.get_attribute("data-alarm-id")
    assert first == "alarm-144"
    await page.click("#alarm-history .ah-older")
    await eventually(lambda: _first_is(page, "alarm-124"), timeout=10, what="page 2 (更早)")
    await page.click("#alarm-history .ah-older")
    await eventually(lambda: _first_is(page, "alarm-104"), timeout=10, what="page 3")
    assert await rows.count() == 5 and await page.is_disabled("#alarm-history .ah-older")   # the oldest page
    await page.click("#alarm-history .ah-newer")
    await eventually(lambda: _first_is(page, "alarm-124"), timeout=10, what="较新 goes forward again")
    await page.click("#alarm-history .ah-latest")
    await eventually(lambda: _first_is(page, "alarm-144"), timeout=10, what="最新")


async def _first_is(page, alarm_id: str) -> bool:
    return await page.evaluate("document.querySelector('#alarm-history tbody tr')?.dataset.alarmId") == alarm_id
