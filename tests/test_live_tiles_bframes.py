"""A B-frame camera's live tile in real headless Chromium shows every frame (issue 21).

Frames of a B-frame stream arrive in decode order with presentation times going back and forth. Before decode times
were derived from the SPS reorder depth, the relay dropped every frame whose time went backwards (191 of ~380 in
15 s) and Chromium sometimes raised a media error. Here the browser's own count of decoded frames
(``getVideoPlaybackQuality``) is compared with the fragments the relay sent over the same window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from demo.media import encode_numbered
from demo.server import DemoRtspServer
from tests.live_page import show_tiles, tile_stats
from tests.test_live_tiles import _all, wall_for  # noqa: F401
from tests.test_wall_api import evidence_dir, store  # noqa: F401
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(180)

QUALITY = """() => { const v = document.querySelector('cw-tile').video; const q = v.getVideoPlaybackQuality();
                     return {total: q.totalVideoFrames, dropped: q.droppedVideoFrames, time: v.currentTime}; }"""


@pytest.fixture(scope="module")
def bframe_camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRtspServer]:
    path = tmp_path_factory.mktemp("bframes") / "bframes.h264"
    encode_numbered(path, frames=250, gop=50, bframes=2, refs=3)  # GOP 2 s, B-pyramid, 640x360
    server = DemoRtspServer({"cam": path})
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_b_frame_camera_tile_presents_every_frame_sent(wall_for, bframe_camera):  # noqa: F811
    ingest, page = await wall_for({"cam-b": bframe_camera.url("cam")}, viewport=(1280, 720))
    await show_tiles(page, ["cam-b"], width=640, height=360, columns=1)
    await eventually(lambda: _all(page, lambda s: s["state"] == "live" and s["videoWidth"] > 0, 1),
                     timeout=40, what="B-frame tile live")
    relay = ingest.live.relays["cam-b"]
    await asyncio.sleep(1.0)
    before, sent_before = await page.evaluate(QUALITY), relay.stats.fragments
    started = time.monotonic()
    await asyncio.sleep(8.0)
    after, sent_after = await page.evaluate(QUALITY), relay.stats.fragments
    window = time.monotonic() - started
    sent = sent_after - sent_before
    decoded = after["total"] - before["total"]
    presented = decoded - (after["dropped"] - before["dropped"])
    s = (await tile_stats(page))[0]
    print(f"window {window:.1f} s: sent {sent}, decoded {decoded}, presented {presented}, played "
          f"{after['time'] - before['time']:.2f} s, skipped by the relay {relay.stats.skipped_packets}, {s}")
    assert sent >= 0.6 * 25 * window  # the relay kept up (a starved machine slows everything down)
    assert relay.stats.skipped_packets == 0  # no frame left out for going back in time
    assert decoded >= 0.9 * sent, (decoded, sent)  # the browser decoded what it was sent (before: about half)
    assert presented >= 0.75 * sent, (presented, sent)
    assert s["reconnects"] == 0 and not s["lastError"], s
