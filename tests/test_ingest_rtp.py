"""RTP depacketizing and SDP parsing (video_ingest.rtp), on real frames.

The frames are the demo camera's H.264 (and an H.265 clip encoded here); the test packetizes them the way RFC 6184
/ RFC 7798 senders do (single NAL units, STAP-A/AP aggregates, FU-A/FU fragments at a 1400-byte MTU), then checks
that the depacketizer gives back exactly the frames, that a lost packet costs the frames up to the next keyframe and
no more, and that what comes out decodes.
"""

from __future__ import annotations

import base64
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from video_ingest import h26x
from video_ingest.rtp import Depacketizer, SdpError, parse_sdp

SLOW_FIXTURES = {"h265_frames"}  # encodes with x265: tests using it are slow (tests/conftest.py)

MTU = 1400


def rtp(seq: int, ts: int, payload: bytes, marker: bool, pt: int = 96) -> bytes:
    return bytes([0x80, (0x80 if marker else 0) | pt]) + (seq & 0xFFFF).to_bytes(2, "big") + \
        (ts & 0xFFFFFFFF).to_bytes(4, "big") + b"\x12\x34\x56\x78" + payload


def packetize(codec: str, nals: list[bytes], seq: int, ts: int, *, aggregate: bool = True) -> list[bytes]:
    """One frame → RTP packets as senders make them: small NALs together in one aggregate (H.264 STAP-A, H.265
    AP), big ones in fragments (FU-A, FU), the marker bit on the last packet."""
    hevc = codec == "hevc"
    payloads: list[bytes] = []
    small = [n for n in nals if len(n) < 200] if aggregate else []
    if len(small) > 1:
        head = bytes([48 << 1, 1]) if hevc else bytes([24])
        payloads.append(head + b"".join(len(n).to_bytes(2, "big") + n for n in small))
    for nal in nals:
        if nal in small and len(small) > 1:
            continue
        if len(nal) <= MTU:
            payloads.append(nal)
            continue
        header_len = 2 if hevc else 1
        kind = (nal[0] >> 1) & 0x3F if hevc else nal[0] & 0x1F
        prefix = bytes([(nal[0] & 0x81) | (49 << 1), nal[1]]) if hevc else bytes([(nal[0] & 0xE0) | 28])
        body = nal[header_len:]
        chunks = [body[i:i + MTU] for i in range(0, len(body), MTU)]
        for i, chunk in enumerate(chunks):
            fu = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | kind
            payloads.append(prefix + bytes([fu]) + chunk)
    return [rtp(seq + i, ts, p, i == len(payloads) - 1) for i, p in enumerate(payloads)]


def frames_of(path: Path, fmt: str, n: int) -> list[list[bytes]]:
    """The first ``n`` frames of an Annex-B file as NAL lists (the parser splits access units)."""
    out = []
    with av.open(str(path), format=fmt) as inp:
        for packet in inp.demux(video=0):
            if packet.size:
                out.append(h26x.split_annexb(bytes(packet)))
            if len(out) == n:
                break
    return out


@pytest.fixture(scope="module")
def h264_frames(demo_media: dict[str, Path]) -> list[list[bytes]]:
    return frames_of(demo_media["vending"], "h264", 60)


@pytest.fixture(scope="module")
def h265_frames(tmp_path_factory: pytest.TempPathFactory) -> list[list[bytes]]:
    path = tmp_path_factory.mktemp("rtp") / "clip.hevc"
    out = av.open(str(path), "w", format="hevc")
    stream = out.add_stream("libx265", rate=25, options={"x265-params": "keyint=10:min-keyint=10:bframes=0:"
                                                                         "repeat-headers=1:log-level=error"})
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(30):
        img = np.random.default_rng(i).integers(0, 255, (240, 320, 3), np.uint8)  # noisy: big frames → FUs
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = i, Fraction(1, 25)
        for p in stream.encode(frame):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)
    out.close()
    return frames_of(path, "hevc", 30)


def decode(codec: str, units: list[list[bytes]]) -> int:
    ctx = av.CodecContext.create(codec, "r")
    frames = 0
    for nals in units:
        frames += len(ctx.decode(av.Packet(b"".join(b"\x00\x00\x00\x01" + n for n in nals))))
    frames += len(ctx.decode(None))
    return frames


def test_h264_frames_come_back_exactly(h264_frames: list[list[bytes]]) -> None:
    d = Depacketizer("h264")
    got = []
    seq = 65500  # wraps past 65535 on the way
    for i, nals in enumerate(h264_frames):
        packets = packetize("h264", nals, seq, 4294960000 + i * 3600)  # the timestamp wraps too
        seq += len(packets)
        for p in packets:
            unit = d.push(p)
            if unit is not None:
                got.append(unit)
    assert [u.nals for u in got] == h264_frames
    assert [u.keyframe for u in got] == [any(n[0] & 0x1F == 5 for n in f) for f in h264_frames]
    assert got[0].keyframe and got[1].timestamp == (4294960000 + 3600) & 0xFFFFFFFF
    assert d.lost_packets == d.dropped_units == d.bad_payloads == 0
    assert decode("h264", [u.nals for u in got]) == len(h264_frames)


def test_a_lost_packet_drops_frames_up_to_the_next_keyframe_only(h264_frames: list[list[bytes]]) -> None:
    d = Depacketizer("h264")
    keys = [i for i, f in enumerate(h264_frames) if any(n[0] & 0x1F == 5 for n in f)]
    assert len(keys) >= 2, keys
    hit = keys[0] + 3  # a P-frame in the first GOP
    got, seq = [], 0
    for i, nals in enumerate(h264_frames):
        packets = packetize("h264", nals, seq, i * 3600)
        seq += len(packets)
        for j, p in enumerate(packets):
            if i == hit and j == 0:
                continue  # lost
            unit = d.push(p)
            if unit is not None:
                got.append(unit)
    assert d.lost_packets == 1
    expected = h264_frames[:hit] + h264_frames[keys[1]:]
    assert [u.nals for u in got] == expected
    assert d.dropped_units == keys[1] - hit
    assert decode("h264", [u.nals for u in got]) == len(expected)


def test_a_camera_without_marker_bits_still_gives_every_frame(h264_frames: list[list[bytes]]) -> None:
    d = Depacketizer("h264")
    got, seq = [], 0
    for i, nals in enumerate(h264_frames[:20]):
        for p in packetize("h264", nals, seq, i * 3600, aggregate=False):
            seq += 1
            unit = d.push(p[:1] + bytes([p[1] & 0x7F]) + p[2:])  # marker cleared
            if unit is not None:
                got.append(unit)
    assert [u.nals for u in got] == h264_frames[:19]  # the last one ends only when the next starts


def test_h265_aggregates_and_fragments(h265_frames: list[list[bytes]]) -> None:
    d = Depacketizer("hevc")
    got, seq = [], 0
    for i, nals in enumerate(h265_frames):
        packets = packetize("hevc", nals, seq, i * 3600)
        seq += len(packets)
        for p in packets:
            unit = d.push(p)
            if unit is not None:
                got.append(unit)
    assert [u.nals for u in got] == h265_frames
    assert sum(u.keyframe for u in got) == 3  # keyint 10
    assert decode("hevc", [u.nals for u in got]) == len(h265_frames)


def test_garbage_packets_are_counted_not_raised() -> None:
    d = Depacketizer("h264")
    for junk in (b"", b"\x00" * 5, b"\x40" + b"\x00" * 20, rtp(1, 0, b"\x18\x00\xff\x65", True),
                 rtp(2, 0, b"\x1c", False), rtp(3, 0, b"\x1c\x05abc", True)):
        assert d.push(junk) is None
    assert d.bad_payloads >= 3
    with pytest.raises(ValueError, match="codec must be h264 or hevc"):
        Depacketizer("mjpeg")


SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=Camera
a=control:rtsp://cam.local/ch1/
m=audio 0 RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=control:trackID=2
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42C01F;packetization-mode=1;sprop-parameter-sets={sps},{pps}
a=control:trackID=1
"""


def test_sdp_picks_the_video_track_and_its_parameter_sets(h264_frames: list[list[bytes]]) -> None:
    sps = next(n for n in h264_frames[0] if n[0] & 0x1F == 7)
    pps = next(n for n in h264_frames[0] if n[0] & 0x1F == 8)
    text = SDP.format(sps=base64.b64encode(sps).decode().rstrip("="), pps=base64.b64encode(pps).decode())
    track = parse_sdp(text, "rtsp://cam.local/ch1")
    assert (track.codec, track.payload_type, track.clock_rate) == ("h264", 96, 90000)
    assert track.control == "rtsp://cam.local/ch1/trackID=1"
    assert track.parameter_sets == (sps, pps)
    absolute = parse_sdp(text.replace("a=control:trackID=1", "a=control:rtsp://other/x"), "rtsp://cam.local/ch1")
    assert absolute.control == "rtsp://other/x"
    hevc = parse_sdp("m=video 0 RTP/AVP 97\na=rtpmap:97 H265/90000\na=fmtp:97 sprop-vps=QAEMAf//;sprop-sps=QgEB;"
                     "sprop-pps=RAHA\na=control:*\n", "rtsp://h/live")
    assert hevc.codec == "hevc" and hevc.control == "rtsp://h/live" and len(hevc.parameter_sets) == 3


def test_sdp_without_usable_video_says_what_was_offered() -> None:
    with pytest.raises(SdpError, match="no H.264/H.265 video \\(the camera offers MP4V-ES\\)"):
        parse_sdp("m=video 0 RTP/AVP 96\na=rtpmap:96 MP4V-ES/90000\n", "rtsp://h/")
    with pytest.raises(SdpError, match="offers no video track"):
        parse_sdp("m=audio 0 RTP/AVP 0\n", "rtsp://h/")
    with pytest.raises(SdpError, match="bad payload type or clock rate"):
        parse_sdp("m=video 0 RTP/AVP 96\na=rtpmap:96 H264/fast\n", "rtsp://h/")
