"""Broken and unusual cameras over real RTSP: corrupt and giant NAL units, a frame size change mid-stream, 1 fps and
60 fps. Each must be survived by ingest (connection kept or retried, frames still sampled, live video still served)
and by detection (frames of any size analysed, nothing raised out of the worker) — never a dead worker.

The streams are encoded here with libx264 and served by the real GStreamer RTSP server of the demo
(``DemoRtspServer`` loops any Annex-B file at a given frame rate without re-encoding).
"""

from __future__ import annotations

import asyncio
import random
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from config import load_settings
from demo.server import DemoRtspServer
from detectors.worker import DetectionWorker
from tests.waiting import eventually
from video_ingest.service import IngestService

pytestmark = pytest.mark.slow  # encodes hostile streams, RTSP

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"


def _encode(width: int, height: int, frames: int, fps: int, gop: int) -> list[tuple[bytes, bool]]:
    """Access units (Annex-B, SPS/PPS repeated at each IDR) of a moving pattern: [(bytes, keyframe)]."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), Fraction(fps, 1)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                   "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"}
    out: list[tuple[bytes, bool]] = []
    for i in range(frames):
        img = np.full((height, width, 3), 90, np.uint8)
        img[:, (i * 7) % width] = 250
        img[(i * 5) % height, :] = 20
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
    return out


def _corrupt(units: list[tuple[bytes, bool]], seed: int = 3) -> bytes:
    """Every 7th non-key frame has its slice bytes overwritten with noise (start code and NAL header kept), every
    31st gets a giant garbage NAL unit (256 KiB) appended, and the file ends in the middle of a frame."""
    rnd = random.Random(seed)
    data = bytearray()
    for i, (au, key) in enumerate(units):
        au = bytearray(au)
        if not key and i % 7 == 3 and len(au) > 16:
            for j in range(8, len(au)):
                au[j] = rnd.randrange(256)
        data += au
        if not key and i % 31 == 5:
            data += b"\x00\x00\x00\x01\x01" + bytes(rnd.randrange(256) for _ in range(256 * 1024))
    return bytes(data[: len(data) - 200])


def _nal_units(au: bytes) -> list[bytes]:
    """An Annex-B access unit split into NAL units (each with its start code)."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", au)]
    starts = [i - 1 if i > 0 and au[i - 1] == 0 else i for i in starts]
    return [au[a:b] for a, b in zip(starts, starts[1:] + [len(au)], strict=False)]


def _wrong_sps(units: list[tuple[bytes, bool]], other: bytes, seed: int = 5) -> bytes:
    """Every other GOP starts with a wrong SPS: alternately the SPS of a different stream (320x240 for these
    640x360 slices) and an SPS of random bytes (header kept); the first GOP is intact so the stream can start."""
    rnd = random.Random(seed)
    foreign = next(n for n in _nal_units(other) if n[n.index(b"\x00\x00\x01") + 3] & 0x1F == 7)
    data = bytearray()
    gop = -1
    for au, key in units:
        if key:
            gop += 1
        if key and gop % 2 == 1:
            for nal in _nal_units(au):
                if nal[nal.index(b"\x00\x00\x01") + 3] & 0x1F == 7:
                    nal = foreign if gop % 4 == 1 else b"\x00\x00\x00\x01\x67" + rnd.randbytes(40)
                data += nal
        else:
            data += au
    return bytes(data)


def _write(path: Path, units: list[tuple[bytes, bool]] | bytes) -> Path:
    path.write_bytes(units if isinstance(units, bytes) else b"".join(au for au, _ in units))
    return path


@pytest.fixture(scope="module")
def hostile_media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    return {
        "corrupt": _write(d / "corrupt.h264", _corrupt(_encode(640, 360, 250, 25, 25))),
        # 4 s at 640x360, then 4 s at 320x240: a new SPS at the switch, as when a camera's profile is changed.
        "badsps": _write(d / "badsps.h264",
                         _wrong_sps(_encode(640, 360, 250, 25, 25), _encode(320, 240, 1, 25, 25)[0][0])),
        "resize": _write(d / "resize.h264", _encode(640, 360, 100, 25, 25) + _encode(320, 240, 100, 25, 25)),
    }


def _settings():
    return load_settings(CONFIG)


async def _run(sources: dict[str, str], tmp_path: Path, seconds: float, check) -> None:
    """Ingest + detection (each camera given the vending camera's zones) for ``seconds``, then ``check(...)``."""
    settings = _settings()
    template = settings.camera("cam-vending")
    cameras = [template.model_copy(update={"id": cid, "url": url}) for cid, url in sources.items()]
    ingest = IngestService(sources, worker="hostile-test")
    detection = DetectionWorker(cameras, settings.detection, tmp_path / "evidence", ingest.latest_frame,
                                timezone=settings.timezone)
    await ingest.start()
    shapes: dict[str, set[tuple[int, int]]] = {cid: set() for cid in sources}
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await detection.tick()
            for cid in sources:
                frame = ingest.latest_frame(cid)
                if frame is not None:
                    shapes[cid].add(frame.image.shape[:2])
            await asyncio.sleep(0.5)
        await check(ingest, detection, shapes)
    finally:
        await ingest.stop()


async def _live_fragments(ingest: IngestService, camera_id: str, n: int = 3) -> int:
    viewer = await asyncio.wait_for(ingest.live.open(camera_id), 10)
    try:
        assert viewer.init_segment[4:8] == b"ftyp"
        for _ in range(n):
            fragment = await asyncio.wait_for(viewer.next_fragment(), 10)
            assert fragment[4:8] == b"moof"
        return n
    finally:
        viewer.close()


@pytest.fixture(scope="module")
def hostile_rtsp(hostile_media):
    server = DemoRtspServer(hostile_media)
    server.start()
    yield server
    server.stop()


async def test_corrupt_and_giant_nal_units_are_survived(hostile_rtsp, tmp_path):
    async def check(ingest, detection, shapes):
        status = ingest.status("corrupt")
        assert status.state == "online", status
        stats = ingest.stats()["cameras"]["corrupt"]
        assert stats["sampled"] >= 8, stats  # keyframes kept being decoded through the damage
        det = detection.stats()
        assert det["errors"] == 0 and det["cameras"]["corrupt"]["frames_analysed"] >= 8, det
        assert await _live_fragments(ingest, "corrupt") == 3

    await _run({"corrupt": hostile_rtsp.url("corrupt")}, tmp_path, 12.0, check)


async def test_wrong_and_garbage_sps_mid_stream_are_survived(hostile_rtsp, tmp_path):
    async def check(ingest, detection, shapes):
        assert ingest.status("badsps").state in ("online", "reconnecting"), ingest.status("badsps")
        stats = ingest.stats()["cameras"]["badsps"]
        assert stats["sampled"] >= 4, stats  # the intact GOPs kept being decoded between the broken ones
        det = detection.stats()
        assert det["errors"] == 0 and det["cameras"]["badsps"]["frames_analysed"] >= 4, det
        assert shapes["badsps"] >= {(360, 640)}, shapes
        await eventually(lambda: _serves(ingest, "badsps"), timeout=15, what="live video through wrong SPS units")

    await _run({"badsps": hostile_rtsp.url("badsps")}, tmp_path, 12.0, check)


async def test_a_frame_size_change_mid_stream_is_followed(hostile_rtsp, tmp_path):
    async def check(ingest, detection, shapes):
        assert shapes["resize"] >= {(360, 640), (240, 320)}, shapes  # both sizes reached detection
        det = detection.stats()
        assert det["errors"] == 0, det
        assert ingest.status("resize").state in ("online", "reconnecting")
        # Live video is served after the change too (a new session starts with its own init segment).
        await eventually(lambda: _serves(ingest, "resize"), timeout=15, what="live video after the size change")

    await _run({"resize": hostile_rtsp.url("resize")}, tmp_path, 18.0, check)


async def _serves(ingest: IngestService, camera_id: str) -> bool:
    try:
        return await _live_fragments(ingest, camera_id) == 3
    except Exception:
        return False


@pytest.mark.parametrize("fps, gop", [(1, 1), (60, 60)])
async def test_one_and_sixty_frames_per_second(tmp_path, fps, gop):
    media = {"cam": _write(tmp_path / f"fps{fps}.h264", _encode(320, 240, max(8, fps * 6), fps, gop))}
    server = DemoRtspServer(media, fps=fps)
    server.start()
    try:
        async def check(ingest, detection, shapes):
            status = ingest.status("cam")
            assert status.state == "online", status
            assert fps * 0.6 <= status.fps <= fps * 1.4, status
            det = detection.stats()
            assert det["errors"] == 0 and det["cameras"]["cam"]["frames_analysed"] >= 3, det
            assert await _live_fragments(ingest, "cam", n=2) == 2

        # At 1 fps the stream probe on connect waits for several frames (FFmpeg's analyzeduration), so allow longer.
        await _run({"cam": server.url("cam")}, tmp_path, 9.0 if fps > 1 else 16.0, check)
    finally:
        server.stop()
