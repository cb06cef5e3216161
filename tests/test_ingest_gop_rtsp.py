"""Real cameras' stream structures over RTSP (issue 21): B-frames, open GOP and intra refresh from the demo server.

The media are numbered (frame ``i`` shows ``i`` as blocks, ``demo.media.encode_numbered``) and served by the real
GStreamer RTSP server with their presentation times (B-frames: RTP timestamps go back and forth). A recorder on the
camera's fan-out keeps every unit as it arrived; decoding them all afterwards gives the reference picture of every
timestamp, which each analysed picture is compared with.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator

import av
import pytest

from demo.media import encode_numbered, read_number
from demo.server import DemoRtspServer
from tests.waiting import eventually
from video_ingest.fanout import AccessUnit, StreamInfo
from video_ingest.frames import Frame
from video_ingest.mp4 import fragment_is_keyframe
from video_ingest.service import IngestService

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]  # RTSP servers and encoded cameras

FPS = 25


@pytest.fixture(scope="module")
def numbered_rtsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRtspServer]:
    folder = tmp_path_factory.mktemp("numbered")
    media = {}
    for name, kwargs in {
        "bframes": dict(frames=250, gop=50, bframes=2, refs=3),                 # GOP 2 s, B-pyramid
        # one IDR per 20 s loop; in between only recovery points every 2 s
        "open_gop": dict(frames=500, gop=50, bframes=2, refs=3, open_gop=True),
        "intra_refresh": dict(frames=500, gop=50, intra_refresh=True),
        "substream": dict(frames=100, gop=50, width=544, height=304),          # a camera's analysis sub-stream
    }.items():
        path = folder / f"{name}.h264"
        encode_numbered(path, **kwargs)  # type: ignore[arg-type]
        media[name] = path
    server = DemoRtspServer(media)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Recorder:
    """A packet sink keeping every unit of the first session with its arrival time."""

    def __init__(self) -> None:
        self.info: StreamInfo | None = None
        self.units: list[tuple[AccessUnit, float]] = []

    def stream_started(self, info: StreamInfo) -> None:
        self.info = self.info or info

    def packet(self, unit: AccessUnit, arrived_at: float) -> None:
        if self.info is not None:
            self.units.append((unit, arrived_at))

    def stream_ended(self, reason: str) -> None:
        pass

    def reference(self) -> dict[int, int | None]:
        """pts → the number its picture shows, from decoding every recorded unit."""
        assert self.info is not None
        ctx = av.CodecContext.create("h264", "r")
        ctx.extradata = self.info.extradata
        out: dict[int, int | None] = {}
        for unit, _ in self.units:
            packet = av.Packet(unit.data)
            packet.pts = unit.pts
            for frame in ctx.decode(packet):
                out[frame.pts] = read_number(frame.to_ndarray(format="bgr24"))
        for frame in ctx.decode(None):
            out[frame.pts] = read_number(frame.to_ndarray(format="bgr24"))
        return out


async def collect_frames(service: IngestService, camera: str, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = service.latest_frame(camera)
        if frame is not None and (not frames or frame.seq != frames[-1].seq):
            frames.append(frame)
        await asyncio.sleep(0.02)
    return frames


async def test_b_frame_camera_analysed_picture_is_the_newest_and_matches_its_timestamp(
        numbered_rtsp: DemoRtspServer) -> None:
    service = IngestService({"cam": numbered_rtsp.url("bframes")}, sample_interval_s=0.5)
    recorder = Recorder()
    service.subscribe_packets("cam", recorder, replay_gop=False)
    await service.start()
    try:
        await eventually(lambda: service.latest_frame("cam"), timeout=15, what="a first analysed picture")
        frames = await collect_frames(service, "cam", 6.0)
    finally:
        await service.stop()
    assert len(frames) >= 9  # every 0.5 s, whatever the 2 s GOP
    reference = recorder.reference()
    arrivals = {unit.pts: at for unit, at in recorder.units}
    for frame in frames:
        pts = round(frame.pts_s * 90000)
        shown = read_number(frame.image)
        assert shown is not None and shown == reference[pts], (
            f"analysed picture shows frame {shown}, the source frame of its timestamp is {reference[pts]}")
        assert frame.captured_at == arrivals[pts]  # stamped with its own arrival
        arrived_before = [u.pts for u, at in recorder.units if at <= frame.captured_at]
        assert pts == max(arrived_before)  # the newest picture that had arrived
    stats = service.stats()["cameras"]["cam"]["sampler"]
    assert stats["skipped"] > 0 and stats["decode_errors"] == 0 and stats["decode_cpu_s"] > 0


@pytest.mark.parametrize("name", ["open_gop", "intra_refresh"])
async def test_open_gop_and_intra_refresh_cameras_joined_mid_stream_play_and_are_analysed(
        numbered_rtsp: DemoRtspServer, name: str) -> None:
    url = numbered_rtsp.url(name)
    holder = IngestService({"hold": url}, sample_keyframes=False)  # keeps the shared media running past its IDR
    await holder.start()
    service = IngestService({"cam": url}, sample_interval_s=0.5)
    try:
        await eventually(lambda: holder.status("hold").state == "online", timeout=15, what="the first client online")
        await asyncio.sleep(2.5)  # the stream's only IDR is behind us; recovery points every 2 s follow
        await service.start()
        t0 = time.monotonic()
        await eventually(lambda: service.status("cam").state == "online", timeout=10,
                         what="online from a recovery point")
        viewer = await service.live.open("cam")
        first = await asyncio.wait_for(viewer.next_fragment(), 5)
        assert fragment_is_keyframe(first)
        fragments = [first] + [await asyncio.wait_for(viewer.next_fragment(), 5) for _ in range(74)]
        assert time.monotonic() - t0 < 12
        with av.open(io.BytesIO(viewer.init_segment + b"".join(fragments))) as container:
            numbers = [read_number(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
        # The frames play in order. An intra refresh repaints the picture column by column over one GOP (2 s);
        # FFmpeg's decoder (Chromium's too) puts out nothing before the recovery point's picture count has passed.
        assert len(numbers) >= (75 if name == "open_gop" else 30), numbers
        assert None not in numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
        viewer.close()
        frames = await collect_frames(service, "cam", 3.0)
        assert len(frames) >= 4
        offsets = {(read_number(f.image) - round(f.pts_s * FPS)) % 500 for f in frames
                   if read_number(f.image) is not None}
        assert len(offsets) == 1  # every analysed picture is the one of its timestamp
        assert service.status("cam").extra["decode_errors"] == 0
    finally:
        await service.stop()
        await holder.stop()


async def test_a_cameras_analysis_substream_feeds_detection_and_the_main_stream_the_tile(
        numbered_rtsp: DemoRtspServer) -> None:
    service = IngestService({"cam": numbered_rtsp.url("bframes")},
                            analysis_sources={"cam": numbered_rtsp.url("substream")}, sample_interval_s=0.5)
    await service.start()
    try:
        frame = await eventually(lambda: service.latest_frame("cam"), timeout=15, what="an analysed sub-stream picture")
        assert frame.image.shape == (304, 544, 3)
        viewer = await service.live.open("cam")
        await asyncio.wait_for(viewer.next_fragment(), 5)
        status = service.status("cam")
        assert (status.width, status.height) == (640, 360)  # the camera's own (main) stream
        assert status.extra["analysis_state"] == "online" and status.extra["analysis_size"] == "544x304"
        assert service.stats()["cameras"]["cam"]["analysis_packets"] > 0
        viewer.close()
    finally:
        await service.stop()


def test_analysis_sources_must_name_known_cameras() -> None:
    with pytest.raises(ValueError, match="analysis_sources: other not among the cameras"):
        IngestService({"cam": "rtsp://127.0.0.1:1/a"}, analysis_sources={"other": "rtsp://127.0.0.1:1/b"})
    with pytest.raises(ValueError, match=r"analysis_sources\['cam'\]: expected a URL"):
        IngestService({"cam": "rtsp://127.0.0.1:1/a"}, analysis_sources={"cam": "nope"})
