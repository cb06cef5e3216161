"""The worker's evidence-clip hook with a real ClipRecorder: the demo's H.264 packets flow into the camera's ring
while the worker analyses the same scene; the raised alarm names a clip that is an MP4 around the alarm."""

from __future__ import annotations

from pathlib import Path

import av

from config import load_settings
from demo.scenes import make_scene
from detectors.worker import DetectionWorker
from video_ingest.clip_buffer import ClipRecorder
from video_ingest.fanout import StreamInfo
from video_ingest.frames import Frame

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
T0 = 1_717_387_200.0
FPS = 25


async def test_a_raised_alarm_gets_a_clip_around_it(demo_media, tmp_path):
    settings = load_settings(CONFIG)
    cams = [c for c in settings.cameras if c.id == "cam-vending"]
    recorder = ClipRecorder(tmp_path, ["cam-vending"], pre_s=3.0, post_s=2.0)
    buf = recorder.buffer("cam-vending")
    scene = make_scene("vending", settings.demo.seed)
    clock = {"t": 0}

    def frames(cam_id: str) -> Frame:
        t = clock["t"]
        return Frame(cam_id, scene.render(float(t)), captured_at=T0 + t, pts_s=float(t), seq=t)

    worker = DetectionWorker(cams, settings.detection, tmp_path, frames, timezone=settings.timezone,
                             clips=recorder.record)
    alarms = []
    with av.open(str(demo_media["vending"]), format="h264") as inp:
        s = inp.streams.video[0]
        buf.stream_started(StreamInfo("cam-vending", 1, "h264", s.width, s.height, s.time_base,
                                      s.codec_context.extradata, T0))
        packets = (p for p in inp.demux(s) if p.size)
        i = 0
        for t in range(30):
            while i < (t + 1) * FPS:  # the camera's packets up to the frame the worker analyses
                buf.packet(next(packets), T0 + i / FPS)
                i += 1
            clock["t"] = t
            alarms += await worker.tick()
    recorder.close()
    (raised,) = [a for a in alarms if a.phase == "raised"]
    assert raised.extra["clip"] == f"clips/cam-vending/{raised.alarm_id}.mp4"
    with av.open(str(tmp_path / raised.extra["clip"])) as c:
        v = c.streams.video[0]
        n = sum(1 for p in c.demux(v) if p.size)
    assert v.codec_context.name == "h264" and 5 * FPS <= n <= 5 * FPS + 2  # 3 s before + 2 s after
    assert worker.stats()["clip_errors"] == 0
