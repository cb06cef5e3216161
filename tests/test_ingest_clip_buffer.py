"""Evidence clips (video_ingest.clip_buffer): the demo's real H.264 packets through the ring, cut around a moment,
remuxed into MP4 (decodable, starting at a keyframe, same packets — not re-encoded), and the bounded paths."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from video_ingest.clip_buffer import ClipBuffer, ClipPacket, write_mp4
from video_ingest.fanout import StreamInfo

T0 = 1_717_387_200.0
FPS = 25


def _feed(buf: ClipBuffer, media: Path, seconds: float, *, start_session: bool = True, after=None) -> int:
    """Demux ``media`` (raw H.264, 25 fps, a keyframe a second) into ``buf`` as if packet i arrived at T0 + i/25;
    ``after(i, t)`` runs after each packet. Returns the total bytes fed."""
    total = 0
    with av.open(str(media), format="h264") as inp:
        s = inp.streams.video[0]
        if start_session:
            buf.stream_started(StreamInfo("cam", 1, s.codec_context.name, s.width, s.height, s.time_base,
                                          s.codec_context.extradata, T0))
        i = 0
        for pkt in inp.demux(s):
            if pkt.size == 0:
                continue
            t = T0 + i / FPS
            if t >= T0 + seconds:
                break
            buf.packet(pkt, t)
            total += pkt.size
            if after is not None:
                after(i, t)
            i += 1
    return total


def _probe(path: Path) -> tuple[str, int, int, bool]:
    """(codec, packets, payload bytes, first frame is a keyframe), decoding every frame."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pkts = [p for p in c.demux(v) if p.size]
        frames = []
        for p in pkts:
            frames.extend(p.decode())
        return v.codec_context.name, len(pkts), sum(p.size for p in pkts), frames[0].key_frame if frames else False


def test_a_clip_spans_before_and_after_the_alarm_and_is_a_remux(demo_media, tmp_path):
    buf = ClipBuffer("cam", pre_s=3.0, post_s=2.0)
    reqs = []
    _feed(buf, demo_media["vending"], 16.0,
          after=lambda i, t: reqs.append(buf.request("a1", t, tmp_path / "a1.mp4")) if i == 10 * FPS else None)
    (req,) = reqs
    result = req.wait(20)
    buf.close()
    assert result is not None and result.error is None, result
    # Starts at the keyframe 3 s before the alarm (keyframes each second), ends 2 s after it: 5 s, 125 frames.
    assert result.starts_before_s == pytest.approx(3.0, abs=0.05)
    assert result.seconds == pytest.approx(5.0, abs=0.1)
    codec, packets, payload, key_first = _probe(result.path)
    assert codec == "h264" and key_first
    assert packets == result.packets == 5 * FPS + 1  # the packet arriving at at + post_s closes the clip
    # The same compressed packets: sizes agree up to the Annex-B start codes turned into length prefixes.
    source = sum(len(p.data) for p in req.packets)
    assert abs(payload - source) <= 0.01 * source
    assert buf.written == 1 and buf.refused == 0


def test_the_ring_stays_about_pre_s_long(demo_media):
    buf = ClipBuffer("cam", pre_s=2.0)
    _feed(buf, demo_media["bin_overflow"], 12.0)
    span = buf._ring[-1].arrived_at - buf._ring[0].arrived_at
    assert buf._ring[0].keyframe and 2.0 <= span < 3.05
    # The GOP boundaries it trims at are exactly the ring's keyframes after the first; the byte count is the ring's.
    ring = list(buf._ring)
    assert list(buf._keys) == [p for p in ring[1:] if p.keyframe] and len(buf._keys) >= 1
    assert buf._bytes == sum(len(p.data) for p in ring)


def test_a_byte_bound_drops_whole_gops(demo_media):
    buf = ClipBuffer("cam", pre_s=60.0, max_bytes=200_000)
    _feed(buf, demo_media["road_occupation"], 10.0)
    assert buf._ring[0].keyframe and list(buf._keys) == [p for p in list(buf._ring)[1:] if p.keyframe]
    # Never more than the bound plus the one GOP the ring must keep whole.
    assert buf._bytes <= 200_000 + max(len(p.data) for p in buf._ring) * FPS


def test_a_session_ending_cuts_pending_clips_short(demo_media, tmp_path):
    buf = ClipBuffer("cam", pre_s=1.0, post_s=30.0)
    reqs = []
    _feed(buf, demo_media["vending"], 6.0,
          after=lambda i, t: reqs.append(buf.request("a2", t, tmp_path / "a2.mp4")) if i == 3 * FPS else None)
    buf.stream_ended("camera went away")
    result = reqs[0].wait(20)
    buf.close()
    assert result is not None and result.error is None
    assert 3.0 <= result.seconds <= 4.2  # from the keyframe at 2 s to the last packet before 6 s
    assert _probe(result.path)[0] == "h264"


def test_requests_are_bounded_and_need_a_session(demo_media, tmp_path):
    buf = ClipBuffer("cam", pre_s=1.0, post_s=60.0, max_pending=2)
    assert buf.request("x", T0, tmp_path / "x.mp4") is None  # no session yet
    _feed(buf, demo_media["vending"], 2.0)
    assert buf.request("a", T0 + 1, tmp_path / "a.mp4") is not None
    assert buf.request("b", T0 + 1, tmp_path / "b.mp4") is not None
    assert buf.request("c", T0 + 1, tmp_path / "c.mp4") is None
    assert buf.refused == 2
    buf.close()


def test_writing_needs_a_keyframe_first(tmp_path):
    p = ClipPacket(b"\x00\x00\x00\x01\x41", None, None, False, T0, Fraction(1, 90000))
    with pytest.raises(ValueError, match="keyframe"):
        write_mp4(tmp_path / "x.mp4", [p], codec="h264", width=64, height=64, extradata=None)
    with pytest.raises(ValueError, match="no packets"):
        write_mp4(tmp_path / "x.mp4", [], codec="h264", width=64, height=64, extradata=None)


def _decoded_frames(path: Path) -> tuple[int, int, list[int]]:
    """(packets, frames decoded, packet sizes) of an MP4, decoding every packet."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pkts = [p for p in c.demux(v) if p.size]
        frames = sum(len(p.decode()) for p in pkts)
        return len(pkts), frames, [p.size for p in pkts]


def test_camera_access_units_make_an_mp4_where_every_frame_decodes(demo_media, tmp_path):
    # What the RTSP sources deliver: length-prefixed samples described by an avcC. (FFmpeg's muxer, given an
    # encoder's stream for these, wrote 1-byte samples: every clip of a real camera was unplayable.)
    from video_ingest import h26x

    with av.open(str(demo_media["vending"]), format="h264") as inp:
        units = [h26x.split_annexb(bytes(p)) for p, _ in zip(inp.demux(video=0), range(60), strict=False)]
    sps = next(n for n in units[0] if h26x.h264_nal_type(n) == h26x.H264_NAL_SPS)
    pps = next(n for n in units[0] if h26x.h264_nal_type(n) == h26x.H264_NAL_PPS)
    packets = [ClipPacket(h26x.length_prefixed(nals), i * 3600, i * 3600,
                          any(h26x.h264_nal_type(n) == h26x.H264_NAL_IDR for n in nals), T0 + i / FPS,
                          Fraction(1, 90000)) for i, nals in enumerate(units)]
    size, seconds = write_mp4(tmp_path / "c.mp4", packets, codec="h264", width=1280, height=720,
                              extradata=h26x.avc_decoder_config([sps], [pps]))
    assert seconds == pytest.approx(60 / FPS)
    n, frames, sizes = _decoded_frames(tmp_path / "c.mp4")
    assert n == frames == 60 and sizes == [len(p.data) for p in packets]
    assert size == (tmp_path / "c.mp4").stat().st_size


@pytest.mark.slow
def test_an_hevc_camera_clip_decodes_too(tmp_path):
    import numpy as np

    src = tmp_path / "src.mp4"
    out = av.open(str(src), "w")
    stream = out.add_stream("libx265", rate=25, options={"x265-params": "keyint=25:bframes=0:log-level=error"})
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(40):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), i * 5, np.uint8), format="bgr24")
        frame.pts, frame.time_base = i, Fraction(1, 25)
        for p in stream.encode(frame):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)
    out.close()
    with av.open(str(src)) as inp:
        s = inp.streams.video[0]
        extradata = bytes(s.codec_context.extradata)  # hvcC, samples length-prefixed: what an HEVC source gives
        packets = [ClipPacket(bytes(p), p.pts, p.dts, p.is_keyframe, T0, p.time_base)
                   for p in inp.demux(s) if p.size]
    write_mp4(tmp_path / "h.mp4", packets, codec="hevc", width=320, height=240, extradata=extradata)
    n, frames, _ = _decoded_frames(tmp_path / "h.mp4")
    assert n == frames == 40
    with av.open(str(tmp_path / "h.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert float(c.duration / av.time_base) == pytest.approx(40 / 25, abs=0.05)


def test_a_clip_without_parameter_sets_or_of_another_codec_is_refused(tmp_path):
    p = ClipPacket(b"\x00\x00\x00\x01\x65\x88", 0, 0, True, T0, Fraction(1, 90000))
    with pytest.raises(ValueError, match="no h264 parameter sets"):
        write_mp4(tmp_path / "x.mp4", [p], codec="h264", width=2, height=2, extradata=None)
    with pytest.raises(ValueError, match="H.264 and H.265 cameras, not mjpeg"):
        write_mp4(tmp_path / "x.mp4", [p], codec="mjpeg", width=2, height=2, extradata=None)
    assert not list(tmp_path.iterdir())
