"""Ingest against the real demo RTSP server: health, sampling, live fMP4, sharing, stalls, outages, clean stop."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from demo.server import DemoRtspServer
from messages.camera import CameraStatus
from tests.waiting import eventually
from video_ingest.live import LiveEnded, LiveUnavailable
from video_ingest.mp4 import fragment_is_keyframe, iter_boxes
from video_ingest.service import IngestService

pytestmark = pytest.mark.timeout(90)


def rtsp_connections(port: int) -> int:
    """Established TCP connections this process holds to ``127.0.0.1:port`` (read from /proc, no sampling)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            remote, state, inode = parts[2], parts[3], parts[9]
            if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
                count += 1
    return count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def no_thread_leaks() -> AsyncIterator[None]:
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == [], f"threads left behind: {left}"


async def test_camera_online_at_25_fps_with_sampled_frames(demo_rtsp: DemoRtspServer, no_thread_leaks: None) -> None:
    service = IngestService({"cam": demo_rtsp.url("vending")}, worker="w-test")
    updates = service.status_updates()
    await service.start()
    try:
        seen: list[CameraStatus] = []

        async def collect() -> None:
            async for status in updates:
                seen.append(status)

        collector = asyncio.create_task(collect())
        await eventually(lambda: service.status("cam").state == "online", timeout=15, what="online")
        await asyncio.sleep(3.2)  # a full fps window
        status = service.status("cam")
        assert status.fps == pytest.approx(25, abs=1.5)
        assert (status.width, status.height, status.codec, status.worker, status.error) == (
            1280, 720, "h264", "w-test", None)
        assert time.time() - status.last_frame_at < 1
        frame = await eventually(lambda: service.latest_frame("cam"), timeout=5, what="a sampled frame")
        assert frame.image.shape == (720, 1280, 3) and frame.keyframe and frame.camera_id == "cam"
        assert abs(frame.captured_at - time.time()) < 3
        assert service.status("cam").extra["sampled"] >= 2
        states = [s.state for s in seen]
        assert states[0] == "connecting" and "online" in states
        assert set(states[:states.index("online")]) == {"connecting"}
        with pytest.raises(KeyError):
            service.status("nope")
    finally:
        await service.stop()
    await asyncio.wait_for(collector, 2)  # the iterator ends with the service


async def test_live_viewer_gets_decodable_fmp4_starting_at_a_keyframe(demo_rtsp: DemoRtspServer,
                                                                     no_thread_leaks: None) -> None:
    service = IngestService({"cam": demo_rtsp.url("bin_overflow")}, sample_keyframes=False)
    await service.start()
    try:
        fanout = service.live.relays["cam"].fanout
        await eventually(lambda: fanout.gop_packets > 0, timeout=15, what="video with a keyframe")
        t0 = time.monotonic()
        viewer = await service.live.open("cam")  # the first viewer: the relay starts from the replayed GOP
        first = await viewer.next_fragment()
        assert time.monotonic() - t0 < 0.3
        assert viewer.mime == 'video/mp4; codecs="avc1.42C01F"'
        assert viewer.init_segment[4:8] == b"ftyp"
        assert [t for t, _, _ in iter_boxes(viewer.init_segment)] == ["ftyp", "moov"]
        t0 = time.monotonic()
        fragments = [first] + [await asyncio.wait_for(viewer.next_fragment(), 5) for _ in range(49)]
        elapsed = time.monotonic() - t0
        assert fragment_is_keyframe(fragments[0])
        assert all([t for t, _, _ in iter_boxes(f)] == ["moof", "mdat"] for f in fragments)
        assert elapsed < 3.0  # real time: 49 frames at 25 fps (the replayed GOP arrives at once)
        with av.open(io.BytesIO(viewer.init_segment + b"".join(fragments))) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 50
        assert (frames[0].width, frames[0].height) == (1280, 720)
        assert frames[0].time == 0.0 and frames[-1].time == pytest.approx(49 / 25, abs=0.01)
        viewer.close()
    finally:
        await service.stop()


async def test_viewers_share_one_connection_and_a_stalled_one_holds_back_nobody(
        demo_rtsp: DemoRtspServer, no_thread_leaks: None) -> None:
    service = IngestService({"cam": demo_rtsp.url("road_occupation")})
    await service.start()
    try:
        stalled = await service.live.open("cam", queue_size=8)
        t0 = time.monotonic()
        healthy = await service.live.open("cam")
        first_fragment_s = time.monotonic() - t0
        await healthy.next_fragment()
        assert first_fragment_s < 0.2  # served from the GOP cache, no wait for the next keyframe
        assert rtsp_connections(demo_rtsp.port) == 1  # sampler + relay + two viewers on one RTSP connection
        got, gaps, last = 0, [], time.monotonic()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:
            await asyncio.wait_for(healthy.next_fragment(), 2)
            now = time.monotonic()
            gaps.append(now - last)
            last, got = now, got + 1
        assert got >= 70  # 25/s for 3 s (a few may have been queued already)
        assert max(gaps[5:]) < 0.5
        assert healthy.dropped == 0
        assert stalled.queued == 8 and stalled.dropped >= 60
        stats = service.live.stats()["cam"]
        assert stats["viewers"] == 2 and sorted(stats["viewer_drops"]) == [0, stalled.dropped]
        # what the stalled viewer has is still a decodable run from a keyframe
        kept = [await stalled.next_fragment() for _ in range(8)]
        assert fragment_is_keyframe(kept[0])
        stalled.close()
        healthy.close()
        assert not service.live.relays["cam"].running
    finally:
        await service.stop()


async def test_unreachable_camera_is_retried_with_redacted_errors(no_thread_leaks: None) -> None:
    url = f"rtsp://admin:s3cret@127.0.0.1:{free_port()}/x"
    service = IngestService({"cam": url}, open_timeout_s=2, read_timeout_s=2)
    await service.start()
    try:
        status = await eventually(lambda: (s := service.status("cam")).reconnects >= 3 and s, timeout=15,
                                  what="3 retries")
        assert status.state in ("reconnecting", "offline")
        assert status.error and "refused" in status.error.lower()
        status = await eventually(lambda: (s := service.status("cam")).state == "offline" and s, timeout=15,
                                  what="offline")
        assert "s3cret" not in repr(status)
        service.live.relays["cam"].keyframe_timeout_s = 0.5
        with pytest.raises(LiveUnavailable, match="no keyframe"):
            await service.live.open("cam")
        with pytest.raises(KeyError):
            await service.live.open("other")
    finally:
        t0 = time.monotonic()
        await service.stop()
        assert time.monotonic() - t0 < 1.5  # waiting in backoff is interrupted at once


async def test_server_outage_and_recovery(demo_media: dict[str, Path], no_thread_leaks: None) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]})
    server.start()
    service = IngestService({"cam": server.url("vending")}, read_timeout_s=3)
    await service.start()
    try:
        await eventually(lambda: service.status("cam").state == "online", timeout=15, what="online")
        viewer = await service.live.open("cam")
        await viewer.next_fragment()
        server.stop()
        t0 = time.monotonic()
        with pytest.raises(LiveEnded):
            while True:
                await asyncio.wait_for(viewer.next_fragment(), 5)
        await eventually(lambda: service.status("cam").state != "online", timeout=5, what="not online")
        assert time.monotonic() - t0 < 5
        down = service.status("cam")
        assert down.error and down.state in ("reconnecting", "offline")
        server.start()  # same port
        await eventually(lambda: service.status("cam").state == "online", timeout=20, what="online again")
        assert service.status("cam").reconnects >= 1
        viewer = await service.live.open("cam")
        fragment = await asyncio.wait_for(viewer.next_fragment(), 5)
        assert fragment_is_keyframe(fragment)
        viewer.close()
    finally:
        await service.stop()
        server.stop()


async def test_a_silent_server_times_out_and_stop_is_bounded(no_thread_leaks: None) -> None:
    with socket.socket() as listener:  # accepts RTSP connections and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/hung"
        service = IngestService({"cam": url}, open_timeout_s=1, read_timeout_s=1, sample_keyframes=False)
        await service.start()
        try:
            status = await eventually(lambda: (s := service.status("cam")).error and s, timeout=10,
                                      what="a timeout error")
            assert status.state == "reconnecting" and "timed out" in status.error
        finally:
            t0 = time.monotonic()
            await service.stop()
            assert time.monotonic() - t0 < 1 + 1 + 1  # at worst one open timeout


async def test_an_evidence_clip_of_a_live_camera_plays_every_frame(demo_rtsp: DemoRtspServer, tmp_path: Path,
                                                                   no_thread_leaks: None) -> None:
    from video_ingest.clip_buffer import ClipBuffer

    service = IngestService({"cam": demo_rtsp.url("vending")}, sample_keyframes=False)
    buf = ClipBuffer("cam", pre_s=1.0, post_s=1.0)
    await service.start()
    try:
        service.subscribe_packets("cam", buf)
        await eventually(lambda: service.status("cam").state == "online", timeout=15, what="online")
        await asyncio.sleep(2.5)
        request = buf.request("c1", time.time(), tmp_path / "c1.mp4")
        assert request is not None
        result = await eventually(lambda: request.wait(0), timeout=10, what="the clip written")
        assert result is not None and result.error is None, result
        with av.open(str(result.path)) as c:
            packets = [p for p in c.demux(video=0) if p.size]
            frames = sum(len(p.decode()) for p in packets)
        assert len(packets) == result.packets >= 40 and frames == len(packets)
        assert min(p.size for p in packets) > 100  # whole frames, not stubs
    finally:
        buf.close()
        await service.stop()
