"""A recorder that cannot write is a wall alarm (系统告警): the pure raise/clear rule, a real full filesystem (a 6 MiB
tmpfs) raising and clearing ``recording_disk_full`` on the real bus, and an injected write error on a real path
(the day's directory taken by a file) reaching the real wall server — its event socket, ``/api/system-alarms`` and
the wall page in Chromium — and clearing when writing resumes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from messages import SystemAlarm, streams
from recording.faults import fault_alarms
from recording.service import RecordingService
from tests import signin
from tests.fixtures.wall import PASSWORD, wall_client
from tests.test_recording import rec_settings, tiny_disk  # noqa: F401 (the fixture)
from tests.waiting import eventually
from video_ingest.service import IngestService
from wall.app import create_app
from wall.system_alarms import raised

pytestmark = pytest.mark.timeout(240)

FULL = ("disk_full", "writing cam-a/x.mp4: No space left on device")
BROKEN = ("write_error", "cannot create cam-b/x.mp4: Not a directory")


def _raised(kind: str, cameras: list[str], at: float) -> SystemAlarm:
    return SystemAlarm(alarm_id=f"{kind}@up", kind=kind, phase="raised", at=at, node="up", label="x",
                       cameras=cameras)


@pytest.mark.parametrize("published, failing, expected", [
    ({}, {}, []),
    ({}, {"cam-a": FULL}, [("recording_disk_full", "raised", ["cam-a"], 10.0)]),
    ({"recording_disk_full": _raised("recording_disk_full", ["cam-a"], 5.0)}, {"cam-a": FULL}, []),
    # another camera joins: raised again (same alarm id), still from when it began
    ({"recording_disk_full": _raised("recording_disk_full", ["cam-a"], 5.0)}, {"cam-a": FULL, "cam-c": FULL},
     [("recording_disk_full", "raised", ["cam-a", "cam-c"], 5.0)]),
    ({"recording_disk_full": _raised("recording_disk_full", ["cam-a"], 5.0)}, {},
     [("recording_disk_full", "cleared", ["cam-a"], 10.0)]),
    ({"recording_disk_full": _raised("recording_disk_full", ["cam-a"], 5.0)}, {"cam-b": BROKEN},
     [("recording_write_error", "raised", ["cam-b"], 10.0), ("recording_disk_full", "cleared", ["cam-a"], 10.0)]),
])
def test_faults_raise_once_and_clear_when_no_camera_has_them(published, failing, expected):
    out = fault_alarms(published, failing, node="up", now=10.0)
    assert [(m.kind, m.phase, m.cameras, m.at) for m in out] == expected
    assert all(m.alarm_id == f"{m.kind}@up" for m in out)
    assert all(m.label.startswith(("录像", "已恢复")) for m in out)


def test_the_raised_ones_are_those_whose_newest_entry_is_raised():
    entries = [("3-0", {"alarm_id": "a", "phase": "cleared"}), ("2-0", {"alarm_id": "b", "phase": "raised"}),
               ("1-0", {"alarm_id": "a", "phase": "raised"})]
    assert raised(entries) == [{"alarm_id": "b", "phase": "raised", "id": "2-0"}]


async def _start(settings, store, bus, url: str, **kw) -> tuple[IngestService, RecordingService]:
    ingest = IngestService({"cam-v": url}, sample_keyframes=False, open_timeout_s=10, read_timeout_s=10)
    await ingest.start()
    service = RecordingService(settings, store, ["cam-v"], publish=bus.publish, **kw)
    await service.start(ingest.subscribe_packets)
    return ingest, service


async def _phases(bus) -> list[tuple[str, str]]:
    return [(e.data["kind"], e.data["phase"]) for e in reversed(await bus.history(streams.SYSTEM_ALARMS, count=50))]


async def test_a_full_disk_raises_a_system_alarm_and_clears_it_when_writing_resumes(
        tmp_path, bus, store, demo_rtsp, tiny_disk):  # noqa: F811
    settings = rec_settings(tmp_path, root=tiny_disk, segment_s=2, janitor_interval_s=1)
    ingest, service = await _start(settings, store, bus, demo_rtsp.url("vending"), node="node-7")
    try:
        async def raised_then_cleared():
            return (await _phases(bus))[:2] == [("recording_disk_full", "raised"), ("recording_disk_full", "cleared")]
        await eventually(raised_then_cleared, timeout=150, what="disk full raised, then cleared")
        first = (await bus.history(streams.SYSTEM_ALARMS, count=50))[-1].message
        assert isinstance(first, SystemAlarm) and first.alarm_id == "recording_disk_full@node-7"
        assert first.cameras == ["cam-v"] and "No space left on device" in first.detail, first
        assert first.label.startswith("录像磁盘已满"), first.label
        assert service.writer.disk_full >= 1 and service.deleted >= 1
    finally:
        await ingest.stop()
        await service.stop()


async def test_a_write_error_reaches_the_wall_and_clears_when_writing_resumes(
        tmp_path, bus, store, evidence_dir, demo_rtsp, browser):  # noqa: F811
    from playwright.async_api import async_playwright

    settings = rec_settings(tmp_path, segment_s=2)
    root = settings.storage.data_dir / "recordings"
    # The injected fault: today's directory of the camera is a file, so no segment can be created under it.
    blocker = root / "cam-v" / datetime.now(UTC).strftime("%Y-%m-%d")
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"not a directory")
    pw = await async_playwright().start()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    try:
        async with wall_client(app) as client:
            assert (await signin.login(client, "duty", PASSWORD)).status == 200
            base = str(client.make_url("")).rstrip("/")
            connected = await pw.chromium.connect_over_cdp(browser.cdp_url)
            context = await connected.new_context(viewport={"width": 1600, "height": 900})
            page = await context.new_page()
            await signin.sign_in_page(page, base, "/wall", "duty", PASSWORD)
            strip = page.locator("#system-alarms .sys-alarm[data-kind='recording_write_error']")
            async with client.ws_connect("/api/ws") as ws:
                ingest, service = await _start(settings, store, bus, demo_rtsp.url("vending"))
                try:
                    frame = await _next_system_alarm(ws)
                    assert frame["alarm"]["kind"] == "recording_write_error" and frame["alarm"]["phase"] == "raised"
                    assert "cannot create" in frame["alarm"]["detail"], frame
                    body = await (await client.get("/api/system-alarms")).json()
                    assert [a["kind"] for a in body["alarms"]] == ["recording_write_error"], body
                    await strip.wait_for(timeout=15_000)
                    assert "录像写入失败" in await strip.text_content()
                    assert service.writer.write_errors >= 1

                    blocker.unlink()  # the fault goes away: the next keyframe starts a segment
                    frame = await _next_system_alarm(ws)
                    assert frame["alarm"]["phase"] == "cleared", frame
                    assert (await (await client.get("/api/system-alarms")).json())["alarms"] == []
                    await strip.wait_for(state="detached", timeout=15_000)
                    await eventually(lambda: _some_recorded(service), timeout=30, what="a segment after the fault")
                finally:
                    await ingest.stop()
                    await service.stop()
            await context.close()
    finally:
        await pw.stop()


async def _next_system_alarm(ws) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if msg.get("type") == "system_alarm":
            return msg
    raise AssertionError("no system_alarm frame within 60 s")


async def _some_recorded(service: RecordingService) -> bool:
    rows = await asyncio.to_thread(service.index.segments, "cam-v", 0, time.time() + 60)
    return any(r.complete for r in rows)
