"""Real cameras' stream structures without a network: long GOPs, B-frames, open GOP and intra refresh (issue 21).

Media are numbered (``demo.media.encode_numbered``: frame ``i`` shows ``i`` as blocks), encoded with libx264 the
way cameras send them, and fed as RTP would deliver them: access units in decode order with presentation
timestamps only (``dts`` = ``pts``). What the sampler analyses, what the live remux and the evidence clips carry,
is then checked picture by picture against the number each picture shows.
"""

from __future__ import annotations

import io
import json
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from demo.media import encode_numbered, read_number
from tests.fixtures.wall import PASSWORD_HASH
from video_ingest import h26x
from video_ingest.clip_buffer import ClipPacket, write_mp4
from video_ingest.fanout import AccessUnit, PacketFanout, StreamInfo
from video_ingest.frames import Frame
from video_ingest.remux import Fragment, FragmentMuxer, InitSegment
from video_ingest.reorder import DecodeTimes
from video_ingest.sampler import FrameSampler, KeyframeSampler
from video_ingest.slot import LatestFrameSlot

SLOW_FIXTURES = {"streams"}  # encodes the test streams: tests using it are slow (tests/conftest.py)

FPS = 25
TICKS = 90000 // FPS
TB = Fraction(1, 90000)

MEDIA = {  # name → encode_numbered arguments
    "bframes": dict(frames=150, gop=50, bframes=2, refs=3),          # GOP 2 s, B-pyramid
    "gop10": dict(frames=300, gop=250),                                # a 10 s GOP, P only
    "open_gop": dict(frames=150, gop=50, bframes=2, refs=3, open_gop=True),
    "intra_refresh": dict(frames=150, gop=50, intra_refresh=True),
}


class Stream:
    """A numbered file as a camera delivers it: AccessUnits in decode order, pts only, avcC extradata."""

    def __init__(self, path: Path) -> None:
        order = json.loads(Path(f"{path}.pts").read_text())
        container = av.open(str(path), format="h264")
        packets = [p for p in container.demux(video=0) if p.size]
        container.close()
        assert len(packets) == len(order)
        self.units: list[AccessUnit] = []
        params: dict[int, bytes] = {}
        for p, index in zip(packets, order, strict=False):
            nals = h26x.split_annexb(bytes(p))
            for nal in nals:
                if nal[0] & 0x1F in (h26x.H264_NAL_SPS, h26x.H264_NAL_PPS):
                    params.setdefault(nal[0] & 0x1F, nal)
            key = any(n[0] & 0x1F == h26x.H264_NAL_IDR for n in nals) or h26x.has_recovery_point(nals, "h264")
            self.units.append(AccessUnit(h26x.length_prefixed(nals), index * TICKS, key, TB))
        self.extradata = h26x.avc_decoder_config([params[h26x.H264_NAL_SPS]], [params[h26x.H264_NAL_PPS]])
        self.order = order

    def info(self, session: int = 1) -> StreamInfo:
        return StreamInfo(camera_id="cam", session=session, codec="h264", width=640, height=360, time_base=TB,
                          extradata=self.extradata, started_at=time.time())


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stream]:
    folder = tmp_path_factory.mktemp("gop")
    out = {}
    for name, kwargs in MEDIA.items():
        path = folder / f"{name}.h264"
        encode_numbered(path, **kwargs)  # type: ignore[arg-type]
        out[name] = Stream(path)
    return out


def run_sampler(stream: Stream, sampler: FrameSampler, *, arrival0: float = 1000.0) -> list[Frame]:
    """Feed every unit (arrival time 1000 + decode position / 25) and collect each picture the sampler puts."""
    seen: list[Frame] = []
    slot = sampler.slot
    put = slot.put

    def record(frame: Frame) -> None:
        seen.append(frame)
        put(frame)

    slot.put = record  # type: ignore[method-assign]
    sampler.start()
    fanout = PacketFanout("cam")
    fanout.subscribe(sampler)
    fanout.start_session(stream.info())
    try:
        for i, unit in enumerate(stream.units):
            fanout.publish(unit, arrival0 + i / FPS)
            if i % 20 == 19:  # let the decoder keep up, as it does in real time
                deadline = time.monotonic() + 10
                while sampler._jobs and time.monotonic() < deadline:
                    time.sleep(0.005)
        deadline = time.monotonic() + 10
        while sampler._jobs and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)
    finally:
        assert sampler.stop()
    return seen


def test_a_10_s_gop_is_analysed_every_interval_with_the_picture_of_its_own_time(streams) -> None:
    stream = streams["gop10"]
    sampler = FrameSampler("cam", LatestFrameSlot(), interval_s=1.0)
    frames = run_sampler(stream, sampler)
    # 300 frames = 12 s: due at 0, 1, ..., 11 s — one keyframe in the whole run (the old sampler analysed 2)
    assert [round(f.pts_s * FPS) for f in frames] == [25 * k for k in range(12)]
    for f in frames:
        index = round(f.pts_s * FPS)
        assert read_number(f.image) == index
        assert f.captured_at == pytest.approx(1000.0 + index / FPS)  # P only: decode position = index
    assert sampler.decoded == 12 and sampler.dropped == 0 and sampler.decode_errors == 0
    assert sampler.decode_cpu_s > 0 and sampler.convert_cpu_s > 0
    old = KeyframeSampler("cam", LatestFrameSlot())
    assert len(run_sampler(stream, old)) == 2  # the keyframe-only path: frames 0 and 250


def test_b_frames_give_the_newest_picture_stamped_with_its_own_arrival(streams) -> None:
    stream = streams["bframes"]
    sampler = FrameSampler("cam", LatestFrameSlot(), interval_s=0.4)
    frames = run_sampler(stream, sampler)
    position = {index: i for i, index in enumerate(stream.order)}  # presentation index → decode position
    assert len(frames) >= 14  # 6 s every 0.4 s (the first due picture is the IDR)
    for f in frames:
        index = round(f.pts_s * FPS)
        assert read_number(f.image) == index, "the picture shown is not the one of its timestamp"
        arrived = position[index]
        assert f.captured_at == pytest.approx(1000.0 + arrived / FPS)
        # the newest picture: nothing that arrived up to it shows a later moment
        assert index == max(stream.order[:arrived + 1])
    assert sampler.skipped > 0  # non-reference B-frames nobody needed were not decoded
    assert sampler.decode_errors == 0


def test_keyframe_mode_with_b_frames_gives_that_keyframes_picture(streams) -> None:
    frames = run_sampler(streams["bframes"], KeyframeSampler("cam", LatestFrameSlot(), queue_size=8))
    assert [(round(f.pts_s * FPS), read_number(f.image)) for f in frames] == [(0, 0), (50, 50), (100, 100)]


@pytest.mark.parametrize("name", ["open_gop", "intra_refresh"])
def test_open_gop_and_intra_refresh_are_analysed_from_a_recovery_point(streams, name: str) -> None:
    stream = streams[name]
    late = Stream.__new__(Stream)  # the camera joined mid-stream: the first unit it can start at is a recovery point
    start = next(i for i, u in enumerate(stream.units) if u.is_keyframe and i > 0)
    late.units, late.extradata, late.order = stream.units[start:], stream.extradata, stream.order[start:]
    assert not any(n[0] & 0x1F == h26x.H264_NAL_IDR for u in late.units for n in h26x.sample_nals(u.data))
    frames = run_sampler(late, FrameSampler("cam", LatestFrameSlot(), interval_s=0.2))
    numbers = [read_number(f.image) for f in frames]
    assert len(frames) >= 10
    clean = [(round(f.pts_s * FPS), n) for f, n in zip(frames, numbers, strict=False) if n is not None]
    assert len(clean) >= len(frames) - 3  # an intra refresh's first pictures may still show missing parts
    assert all(index == n for index, n in clean)


def test_a_decoder_that_falls_behind_drops_to_the_next_keyframe_counted(streams) -> None:
    stream = streams["bframes"]
    sampler = FrameSampler("cam", LatestFrameSlot(), interval_s=0.2, queue_size=10)  # thread not started
    sampler.stream_started(stream.info())
    for unit in stream.units[:60]:
        sampler.packet(unit, 1.0)
    assert sampler.gaps >= 1 and sampler.dropped >= 10
    assert sampler._jobs and sampler._jobs[0].packet.is_keyframe  # resumed at the keyframe of frame 50
    assert sampler._jobs[0].packet.pts == 50 * TICKS and sampler._jobs[0].due
    assert sampler.stop()


def test_sampler_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        FrameSampler("cam", LatestFrameSlot(), mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        FrameSampler("cam", LatestFrameSlot(), interval_s=0)


# -- decode order -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth, presentation", [
    (0, [0, 1, 2, 3, 4]),
    (1, [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]),          # IPBB
    (2, [0, 4, 2, 1, 3, 8, 6, 5, 7, 12, 10, 9, 11]),  # B-pyramid
])
def test_decode_times_increase_and_never_pass_presentation(depth: int, presentation: list[int]) -> None:
    times = DecodeTimes(depth, 1)
    decode = [times.next(p) for p in presentation]
    assert all(b > a for a, b in zip(decode, decode[1:], strict=False))
    assert all(d <= p for d, p in zip(decode, presentation, strict=False))
    assert decode[depth] == 0 and times.start == -depth


def test_reorder_depth_disposable_units_and_recovery_points(streams) -> None:
    assert h26x.reorder_depth("h264", streams["bframes"].extradata) == 2
    assert h26x.reorder_depth("h264", streams["gop10"].extradata) == 0
    units = streams["bframes"].units
    assert not h26x.is_disposable(units[0].data, "h264")
    assert any(h26x.is_disposable(u.data, "h264") for u in units)
    keys = [i for i, u in enumerate(streams["intra_refresh"].units) if u.is_keyframe]
    assert keys == [0, 50, 100]  # one IDR, then recovery points only
    assert h26x.has_recovery_point(h26x.sample_nals(streams["intra_refresh"].units[50].data), "h264")
    assert not h26x.has_recovery_point(h26x.sample_nals(units[1].data), "h264")


# -- live remux and clips -----------------------------------------------------------------------------------------
def decode_mp4(data: bytes) -> list[int | None]:
    with av.open(io.BytesIO(data)) as container:
        return [read_number(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


@pytest.mark.parametrize("name", ["bframes", "open_gop"])
def test_the_live_remux_carries_every_b_frame_in_presentation_order(streams, name: str) -> None:
    stream = streams[name]
    muxer = FragmentMuxer(stream.info())
    assert muxer.reorder == 2
    out: list[InitSegment | Fragment] = []
    for unit in stream.units:
        out += muxer.feed(unit)
    out += muxer.flush()
    assert muxer.skipped == 0 and isinstance(out[0], InitSegment)
    assert len(out) == 1 + len(stream.units)  # every frame (191 of ~380 were dropped before)
    numbers = decode_mp4(b"".join(s.data for s in out))
    assert numbers == list(range(len(stream.units)))


def test_an_evidence_clip_with_b_frames_has_every_frame_in_order(streams, tmp_path: Path) -> None:
    stream = streams["bframes"]
    packets = [ClipPacket(u.data, u.pts, u.dts, u.is_keyframe, 0.0, TB) for u in stream.units[50:]]
    write_mp4(tmp_path / "clip.mp4", packets, codec="h264", width=640, height=360, extradata=stream.extradata)
    assert decode_mp4((tmp_path / "clip.mp4").read_bytes()) == list(range(50, 150))


def test_analysis_settings_are_validated_with_their_key_paths() -> None:
    from config import ConfigError, parse_settings

    camera = {"id": "c1", "name": "一号", "url": "rtsp://127.0.0.1:1/main", "position": {"lon": 120.1, "lat": 30.2}}
    users = [{"username": "admin", "display_name": "管理员", "role": "admin", "password_hash": PASSWORD_HASH}]
    settings = parse_settings({"users": users, "cameras": [{**camera, "analysis_url": "rtsp://127.0.0.1:1/sub"}],
                               "detection": {"interval_s": 0.5, "decode": "keyframes"}})
    assert settings.cameras[0].analysis_url == "rtsp://127.0.0.1:1/sub" and settings.detection.decode == "keyframes"
    assert parse_settings({"users": users}).detection.decode == "interval"
    with pytest.raises(ConfigError) as info:
        parse_settings({"users": users, "cameras": [{**camera, "analysis_url": "http://127.0.0.1/sub"}],
                        "detection": {"decode": "sometimes"}})
    paths = [path for path, _ in info.value.problems]
    assert "cameras[0].analysis_url" in paths and "detection.decode" in paths, info.value.problems


def test_a_camera_clock_that_jumps_back_does_not_stop_analysis(streams) -> None:
    stream = streams["gop10"]
    sampler = FrameSampler("cam", LatestFrameSlot(), interval_s=1.0, queue_size=1000)  # thread not started
    sampler.stream_started(stream.info())
    for unit in stream.units[:100]:
        sampler.packet(unit, 1.0)
    for unit in stream.units[100:200]:  # the same frames again, 4 s earlier on the camera's clock
        sampler.packet(AccessUnit(unit.data, unit.pts - 100 * TICKS, unit.is_keyframe, TB), 1.0)
    due = [round(j.packet.pts / TICKS) for j in sampler._jobs if j.due]
    assert due == [0, 25, 50, 75, 0, 25, 50, 75]
    assert sampler.stop()


def test_hevc_reorder_depth_and_sub_layer_non_reference_pictures() -> None:
    import numpy as np

    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4")
    stream = out.add_stream("libx265", rate=FPS, options={"x265-params": "keyint=50:bframes=3:log-level=error"})
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(60):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), (i * 4) % 255, np.uint8), format="bgr24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    buf.seek(0)
    with av.open(buf) as container:
        video = container.streams.video[0]
        config = bytes(video.codec_context.extradata)
        packets = [bytes(p) for p in container.demux(video) if p.size]
    assert h26x.reorder_depth("hevc", config) == 2  # sps_max_num_reorder_pics
    disposable = [h26x.is_disposable(p, "hevc") for p in packets]
    assert not disposable[0] and 0 < sum(disposable) < len(packets)
    # a _N picture of a lower sub-layer may be referenced by a higher one: kept when the stream has more layers
    assert not any(h26x.is_disposable(p, "hevc", max_sub_layers=2) for p in packets)
