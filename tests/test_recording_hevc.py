"""H.265 recordings to browsers that cannot decode them: the playback socket transcodes to H.264 on the fly (real
HEVC access units through the real recorder and writer, the real wall server, PyAV decoding what comes out), passes
H.265 through for a browser that says it plays it, and refuses a transcode beyond the server's slots."""

from __future__ import annotations

import io
import threading
import time

import av
import pytest

from recording.recorder import CameraPolicy, CameraRecorder, SegmentWriter
from recording.service import RecordingService
from tests import signin
from tests.fixtures.wall import PASSWORD, wall_client
from tests.test_recording import _units, rec_settings
from tests.waiting import eventually
from video_ingest.fanout import AccessUnit
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)


def _record_hevc(service: RecordingService, start: float) -> int:
    writer = SegmentWriter(service.root, service.index)
    writer.start()
    recorder = CameraRecorder("cam-v", writer, CameraPolicy(segment_s=2))
    info, units = _units("hevc", n=150)  # 320x240, 25 fps, a keyframe every 6 frames: 6 s
    recorder.stream_started(info)
    for unit, offset in units:
        recorder.packet(AccessUnit(unit.data, unit.pts, unit.is_keyframe, unit.time_base), start + offset)
    recorder.stream_ended("test over")
    writer.stop()
    return len(units)


async def _play(client, params: dict) -> tuple[dict, bytes, list[bytes], list[dict]]:
    async with client.ws_connect("/api/recordings/cam-v/play", params=params) as ws:
        head = await ws.receive_json(timeout=20)
        if head["type"] != "init":
            return head, b"", [], []
        init = await ws.receive_bytes(timeout=20)
        fragments, texts = [], []
        while len(fragments) < 60:
            msg = await ws.receive(timeout=20)
            if isinstance(msg.data, bytes):
                fragments.append(msg.data)
            else:
                texts.append(msg.json())
        return head, init, fragments, texts


async def test_h265_recordings_are_transcoded_for_browsers_without_h265(tmp_path, bus, store, evidence_dir):  # noqa: F811
    settings = rec_settings(tmp_path)
    service = RecordingService(settings, store, ["cam-v"])
    start = time.time() - 30
    _record_hevc(service, start)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir, recordings=service.library)
    async with wall_client(app) as client:
        assert (await signin.login(client, "duty", PASSWORD)).status == 200

        # a browser without H.265: H.264 at tile size (never upscaled), every frame, the time marks as before
        head, init, fragments, texts = await _play(client, {"at": f"{start + 1}"})
        assert head["transcoded"] == "hevc" and head["mime"].startswith('video/mp4; codecs="avc1.'), head
        assert [t["type"] for t in texts[:1]] == ["time"] and texts[0]["at"] <= start + 1
        with av.open(io.BytesIO(init + b"".join(fragments))) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = list(c.decode(video=0))
        assert len(frames) >= 55 and (frames[0].width, frames[0].height) == (320, 240)

        async def slot_back():
            return service.library.transcode_slots._value == 2
        await eventually(slot_back, timeout=10, what="the slot back once the socket closed")

        # a browser that plays H.265 gets the recording as it is
        head, init, fragments, _ = await _play(client, {"at": f"{start + 1}", "hevc": "1"})
        assert head["transcoded"] is None and ('"hvc1.' in head["mime"] or '"hev1.' in head["mime"]), head
        with av.open(io.BytesIO(init + b"".join(fragments))) as c:
            assert c.streams.video[0].codec_context.name == "hevc"
            assert sum(1 for _ in c.decode(video=0)) >= 55

        # no slot free: said on the socket, nothing else breaks
        service.library.transcode_slots = threading.BoundedSemaphore(1)
        service.library.transcode_slots.acquire()
        head, *_ = await _play(client, {"at": f"{start + 1}"})
        assert head["type"] == "error" and "transcode slot" in head["error"], head
