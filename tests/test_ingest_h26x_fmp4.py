"""The relay's own muxer on real streams: H.264/H.265 SPS parsing, avcC/hvcC records and the fMP4 writer.

Streams: the 720p25 demo camera (H.264 constrained baseline, Annex-B, the cached demo media) and short clips
encoded here in memory with libx264/libx265 (odd sizes that need cropping, 4:2:2/4:4:4/monochrome, 10-bit,
interlaced, B-frames, temporal sub-layers; SPS scaling matrices and sub-layer profiles spliced into real SPS).
Each is checked against FFmpeg: the parsed size equals what its decoder reports, its decoder accepts our
avcC/hvcC as extradata for length-prefixed packets, and its mp4 demuxer (and ffprobe) reads our init +
one-fragment-per-frame output back frame for frame.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from demo.media import ensure_media
from video_ingest import h26x
from video_ingest.fmp4 import KEYFRAME_FLAGS, NON_KEYFRAME_FLAGS, Sample, init_segment, media_segment
from video_ingest.h26x import (
    SpsInfo,
    avc_decoder_config,
    codec_string,
    h264_nal_type,
    h265_nal_type,
    hevc_decoder_config,
    length_prefixed,
    parse_h264_sps,
    parse_h265_sps,
    split_annexb,
)
from video_ingest.mp4 import avc_codec_string, find_box, fragment_is_keyframe, iter_boxes

SLOW_FIXTURES = {"demo_clip"}  # needs the demo media: tests using it are slow (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]
TICKS = 3600  # one frame at 25 fps in the 90 kHz track timescale


# ------------------------------------------------------------------------------------------------ streams


@dataclass
class Clip:
    """An elementary stream as the relay sees it: access units (NAL lists, decode order) with 90 kHz times."""

    codec: str             # "h264" | "hevc"
    aus: list[list[bytes]]
    pts: list[int]
    dts: list[int]
    keyframes: list[bool]
    width: int             # what FFmpeg's decoder reports for the Annex-B stream
    height: int

    def params(self) -> tuple[list[bytes], ...]:
        """The first distinct parameter sets: (sps, pps) for H.264, (vps, sps, pps) for H.265."""
        if self.codec == "h264":
            kinds, type_of = (h26x.H264_NAL_SPS, h26x.H264_NAL_PPS), h264_nal_type
        else:
            kinds, type_of = (h26x.H265_NAL_VPS, h26x.H265_NAL_SPS, h26x.H265_NAL_PPS), h265_nal_type
        found: dict[int, list[bytes]] = {k: [] for k in kinds}
        for au in self.aus:
            for nal in au:
                t = type_of(nal)
                if t in found and nal not in found[t]:
                    found[t].append(nal)
        return tuple(found[k] for k in kinds)

    def sps(self) -> bytes:
        return self.params()[-2][0]

    def config(self) -> bytes:
        return avc_decoder_config(*self.params()) if self.codec == "h264" else hevc_decoder_config(*self.params())

    def parse_sps(self) -> SpsInfo:
        return parse_h264_sps(self.sps()) if self.codec == "h264" else parse_h265_sps(self.sps())


def is_vcl(codec: str, nal: bytes) -> bool:
    return h264_nal_type(nal) in (1, 5) if codec == "h264" else h265_nal_type(nal) < 32


def first_slice(codec: str, nal: bytes) -> bool:
    """first_mb_in_slice == 0 (H.264: ue(v) 0 is a single 1 bit) / first_slice_segment_in_pic_flag (H.265)."""
    return bool(nal[1] & 0x80) if codec == "h264" else bool(nal[2] & 0x80)


def access_units(codec: str, nals: list[bytes]) -> list[list[bytes]]:
    """Group NAL units into access units: a new one starts at the first non-VCL NAL after a picture's slices or
    at a picture's first slice."""
    aus: list[list[bytes]] = []
    cur: list[bytes] = []
    seen_vcl = False
    for nal in nals:
        vcl = is_vcl(codec, nal)
        if cur and seen_vcl and (not vcl or first_slice(codec, nal)):
            aus.append(cur)
            cur, seen_vcl = [], False
        cur.append(nal)
        seen_vcl = seen_vcl or vcl
    if cur and seen_vcl:
        aus.append(cur)
    return aus


def is_key(codec: str, au: list[bytes]) -> bool:
    if codec == "h264":
        return any(h264_nal_type(n) == h26x.H264_NAL_IDR for n in au)
    return any(h26x.H265_NAL_IRAP_FIRST <= h265_nal_type(n) <= h26x.H265_NAL_IRAP_LAST for n in au)


def decoded_size(codec: str, annexb: bytes) -> tuple[int, int]:
    """Frame size FFmpeg's decoder reports for an Annex-B stream (no extradata: in-band parameter sets)."""
    with av.open(io.BytesIO(annexb), format=codec) as container:
        frame = next(container.decode(video=0))
    return frame.width, frame.height


def encode(codec: str, w: int, h: int, pix: str = "yuv420p", n: int = 12, params: str = "",
           options: dict[str, str] | None = None) -> Clip:
    """``n`` frames encoded in memory (Annex-B packets with pts/dts), a moving bar so frames differ."""
    lib = {"h264": "libx264", "hevc": "libx265"}[codec]
    ctx = av.CodecContext.create(lib, "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, pix
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    opts = {"preset": "ultrafast", "g": "6", **(options or {})}
    if codec == "hevc":
        opts["x265-params"] = "log-level=error:keyint=6:min-keyint=6" + (":" + params if params else "")
    elif params:
        opts["x264-params"] = params
    ctx.options = opts
    packets = []
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        img[:, (i * 7) % w] = 255
        img[(i * 5) % h, :] = 200
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format=pix)
        frame.pts = i
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    aus, pts, dts, keys = [], [], [], []
    for p in packets:
        units = access_units(codec, split_annexb(bytes(p)))
        assert len(units) == 1, "one packet should be one access unit"
        aus.append(units[0])
        pts.append(p.pts * TICKS)
        dts.append(p.dts * TICKS)
        keys.append(is_key(codec, units[0]))
        assert keys[-1] == p.is_keyframe
    width, height = decoded_size(codec, b"".join(bytes(p) for p in packets))
    return Clip(codec, aus, pts, dts, keys, width, height)


@pytest.fixture(scope="module")
def demo_clip() -> Clip:
    """The first 100 frames (4 GOPs) of the vending demo camera: 1280x720 constrained baseline, 25 fps."""
    path = ensure_media(ROOT / "var" / "demo-media", 7, ("vending",))["vending"]
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        width, height = ctx.width, ctx.height
    with open(path, "rb") as f:
        head = f.read(6_000_000)  # ~10 s at 2 Mbit/s; the last, possibly cut, access unit is dropped
    aus = access_units("h264", split_annexb(head))[:100]
    assert len(aus) == 100
    times = [i * TICKS for i in range(len(aus))]
    return Clip("h264", aus, times, times, [is_key("h264", au) for au in aus], width, height)


# (codec, width, height, pix_fmt, encoder params, encoder options): sizes needing cropping, other chroma formats,
# bit depths, interlacing, B-frames (composition offsets) and temporal sub-layers. Neither encoder writes SPS
# scaling matrices (x264 puts them in the PPS) or sub-layer profiles: see the spliced SPS tests.
CASES = {
    "h264-642x362": ("h264", 642, 362, "yuv420p", "", None),
    "h264-1920x1080": ("h264", 1920, 1080, "yuv420p", "", None),
    "h264-interlaced-320x180": ("h264", 320, 180, "yuv420p", "interlaced=1", None),
    "h264-high-bframes": ("h264", 320, 240, "yuv420p", "bframes=2:b-pyramid=none:8x8dct=1", {"bf": "2"}),
    "h264-444": ("h264", 322, 182, "yuv444p", "", None),
    "h264-422": ("h264", 320, 180, "yuv422p", "", None),
    "h264-10bit": ("h264", 320, 180, "yuv420p10le", "", None),
    "h264-gray": ("h264", 320, 180, "gray", "", None),
    "hevc-320x240-bframes": ("hevc", 320, 240, "yuv420p", "bframes=2", None),
    "hevc-642x362": ("hevc", 642, 362, "yuv420p", "bframes=0", None),
    "hevc-444": ("hevc", 322, 180, "yuv444p", "bframes=0", None),
    "hevc-10bit": ("hevc", 320, 180, "yuv420p10le", "bframes=0", None),
    "hevc-sublayers": ("hevc", 320, 180, "yuv420p", "temporal-layers=3:bframes=3:b-pyramid=1", None),
    "hevc-gray": ("hevc", 320, 180, "gray", "bframes=0", None),
}


@pytest.fixture(scope="module", params=["demo", *sorted(CASES)])
def any_clip(request: pytest.FixtureRequest, demo_clip: Clip) -> Clip:
    """The demo camera, then each encoded case (encoded once per module)."""
    if request.param == "demo":
        return demo_clip
    codec, w, h, pix, params, options = CASES[request.param]
    return encode(codec, w, h, pix, params=params, options=options)


# ------------------------------------------------------------------------------------------------ helpers


def fmp4_bytes(clip: Clip, config: bytes | None = None) -> tuple[bytes, list[bytes]]:
    """Init segment and one media segment per access unit (durations from dts steps, offsets pts - dts)."""
    config = config or clip.config()
    info = clip.parse_sps()
    init = init_segment(codec=clip.codec, width=info.width, height=info.height, config=config)
    segments = []
    dts0 = clip.dts[0]
    for i, au in enumerate(clip.aus):
        duration = clip.dts[i + 1] - clip.dts[i] if i + 1 < len(clip.aus) else TICKS
        sample = Sample(length_prefixed(au), duration, clip.keyframes[i], clip.pts[i] - clip.dts[i])
        segments.append(media_segment(i + 1, clip.dts[i] - dts0, [sample]))
    return init, segments


def decode_length_prefixed(codec: str, config: bytes, aus: list[list[bytes]]) -> list[av.VideoFrame]:
    """Decode with FFmpeg given our record as extradata and AVCC/HVCC packets (fails on any decode error)."""
    ctx = av.CodecContext.create(codec, "r")
    ctx.extradata = config
    frames: list[av.VideoFrame] = []
    for au in aus:
        frames += ctx.decode(av.Packet(length_prefixed(au)))
    frames += ctx.decode(None)
    return frames


def ffmpeg_extradata(clip: Clip) -> bytes:
    """The avcC/hvcC FFmpeg's mp4 muxer writes for the same Annex-B stream (PyAV remux, like FragmentMuxer)."""
    annexb = b"".join(b"\x00\x00\x00\x01" + nal for au in clip.aus for nal in au)
    with av.open(io.BytesIO(annexb), format=clip.codec) as src:
        stream = src.streams.video[0]
        out_buf = io.BytesIO()
        with av.open(out_buf, "w", format="mp4") as out:
            ostream = out.add_stream_from_template(stream)
            for i, packet in enumerate(p for p in src.demux(stream) if p.size):
                copy = av.Packet(bytes(packet))  # as FragmentMuxer does: the demuxed packet itself is refused
                copy.pts = copy.dts = i
                copy.time_base = Fraction(1, 25)
                copy.is_keyframe = packet.is_keyframe
                copy.stream = ostream
                out.mux(copy)
    with av.open(io.BytesIO(out_buf.getvalue()), format="mp4") as back:
        return bytes(back.streams.video[0].codec_context.extradata)


# ------------------------------------------------------------------------------------------------ h26x


def test_sps_size_matches_ffmpeg(any_clip: Clip) -> None:
    info = any_clip.parse_sps()
    assert (info.width, info.height) == (any_clip.width, any_clip.height)
    assert info.coded_width >= info.width and info.coded_height >= info.height


def test_sps_fields_of_the_encoded_cases() -> None:
    """Profiles, chroma formats, bit depths and crop arithmetic of a few cases, spelled out."""
    sps = encode("h264", 642, 362, n=1).parse_sps()
    assert (sps.coded_width, sps.coded_height, sps.width, sps.height) == (656, 368, 642, 362)
    sps = encode("h264", 320, 180, n=1, params="interlaced=1").parse_sps()
    assert (sps.coded_height, sps.height) == (192, 180)  # 6 field-pair map units of 32 lines, crop 3 x 4
    sps = encode("h264", 322, 182, "yuv444p", n=1).parse_sps()
    assert (sps.profile_idc, sps.chroma_format_idc, sps.width, sps.height) == (244, 3, 322, 182)
    sps = encode("h264", 320, 180, "yuv420p10le", n=1).parse_sps()
    assert (sps.profile_idc, sps.bit_depth_luma, sps.bit_depth_chroma) == (110, 10, 10)
    sps = encode("h264", 320, 180, "gray", n=1).parse_sps()
    assert (sps.chroma_format_idc, sps.height) == (0, 180)
    hevc = encode("hevc", 642, 362, n=1, params="bframes=0").parse_sps()
    assert (hevc.width, hevc.height, hevc.profile_idc, hevc.chroma_format_idc) == (642, 362, 1, 1)
    assert len(hevc.profile_tier_level) == 12 and hevc.profile_tier_level[11] == hevc.level_idc
    hevc = encode("hevc", 320, 180, "yuv420p10le", n=1, params="bframes=0").parse_sps()
    assert (hevc.profile_idc, hevc.bit_depth_luma) == (2, 10)
    hevc = encode("hevc", 320, 180, n=8, params="temporal-layers=3:bframes=3:b-pyramid=1").parse_sps()
    assert hevc.max_sub_layers == 3 and not hevc.temporal_id_nesting


def test_decoder_accepts_our_record(any_clip: Clip) -> None:
    """FFmpeg decodes every access unit, length-prefixed, with our avcC/hvcC as its only parameter sets source
    (parameter sets are also in-band here; see the stripped variant below)."""
    frames = decode_length_prefixed(any_clip.codec, any_clip.config(), any_clip.aus)
    assert len(frames) == len(any_clip.aus)
    assert {(f.width, f.height) for f in frames} == {(any_clip.width, any_clip.height)}


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_decoder_needs_only_the_record(codec: str) -> None:
    """With VPS/SPS/PPS stripped from the samples, the record is what makes the stream decodable."""
    clip = encode(codec, 642, 362, params="bframes=0" if codec == "hevc" else "")
    params = {7, 8} if codec == "h264" else {32, 33, 34}
    type_of = h264_nal_type if codec == "h264" else h265_nal_type
    stripped = [[n for n in au if type_of(n) not in params] for au in clip.aus]
    frames = decode_length_prefixed(codec, clip.config(), stripped)
    assert len(frames) == len(clip.aus)
    assert {(f.width, f.height) for f in frames} == {(642, 362)}


def split_avcc(record: bytes) -> tuple[bytes, list[bytes], list[bytes], bytes]:
    """(first 5 bytes, SPS list, PPS list, trailer) of an avcC payload; NAL trailing zero bytes dropped."""
    pos, lists = 5, []
    for mask in (0x1F, 0xFF):
        count = record[pos] & mask
        pos += 1
        nals = []
        for _ in range(count):
            size = int.from_bytes(record[pos:pos + 2], "big")
            nals.append(record[pos + 2:pos + 2 + size].rstrip(b"\x00"))
            pos += 2 + size
        lists.append(nals)
    return record[:5], lists[0], lists[1], record[pos:]


def test_avcc_equals_ffmpeg(demo_clip: Clip) -> None:
    """The avcC FFmpeg's mp4 muxer writes for the same stream (baseline and high profiles, with the chroma format /
    bit depth trailer). FFmpeg keeps a trailing zero byte on the PPS it cut out of the Annex-B stream, so the NAL
    units are compared without trailing zeros."""
    assert split_avcc(demo_clip.config()) == split_avcc(ffmpeg_extradata(demo_clip))
    for case in ("h264-high-bframes", "h264-444", "h264-10bit", "h264-gray"):
        codec, w, h, pix, params, options = CASES[case]
        clip = encode(codec, w, h, pix, n=3, params=params, options=options)
        ours = split_avcc(clip.config())
        assert ours == split_avcc(ffmpeg_extradata(clip)), case
        assert len(ours[3]) == 4, case


@pytest.mark.parametrize("case", ["hevc-642x362", "hevc-444", "hevc-10bit", "hevc-sublayers"])
def test_hvcc_fields_equal_ffmpeg(case: str) -> None:
    """Profile/tier/level, chroma format, bit depths, temporal layers and nesting as FFmpeg's mp4 muxer writes
    them (it also fills spatial segmentation/parallelism from the VUI, and may add SEI arrays; we write 0)."""
    codec, w, h, pix, params, options = CASES[case]
    clip = encode(codec, w, h, pix, n=8, params=params, options=options)
    ours, theirs = clip.config(), ffmpeg_extradata(clip)
    assert ours[:13] == theirs[:13]                    # version, profile_tier_level
    assert ours[16:19] == theirs[16:19]                # chroma_format_idc, bit depths
    assert ours[21] & 0x3F == theirs[21] & 0x3F        # numTemporalLayers, temporalIdNested, lengthSizeMinusOne
    assert ours[22] == 3 and ours[23] == 0x80 | 32


def test_codec_strings(demo_clip: Clip) -> None:
    config = demo_clip.config()
    assert codec_string("h264", config) == "avc1.42C01F"
    init = init_segment(codec="h264", width=1280, height=720, config=config)
    assert avc_codec_string(init) == codec_string("h264", config)
    high = encode("h264", 320, 240, n=1, params="8x8dct=1").config()
    assert avc_codec_string(init_segment(codec="h264", width=320, height=240, config=high)) == \
        codec_string("h264", high) == "avc1.64000D"
    main = encode("hevc", 320, 240, n=1, params="bframes=0").config()
    assert codec_string("hevc", main) == "hvc1.1.6.L60.90"  # Main, compatible with Main+Main10, level 2, progressive
    assert codec_string("hevc", encode("hevc", 320, 180, "yuv420p10le", n=1).config()) == "hvc1.2.4.L60.90"
    # ISO/IEC 14496-15 annex E examples: the fields only, header of a hand-made record
    assert codec_string("hevc", bytes([1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93])) == "hvc1.1.6.L93.B0"
    assert codec_string("hevc", bytes([1, 0x64, 0x82, 0, 0, 0, 0xB0, 0x23, 0, 0, 0, 0, 120])) == \
        "hvc1.A4.41.H120.B0.23"
    with pytest.raises(ValueError, match="unknown codec 'vp9'"):
        codec_string("vp9", config)
    with pytest.raises(ValueError, match="avcC"):
        codec_string("h264", b"\x00")


def test_split_annexb_and_length_prefixed() -> None:
    stream = (b"\xff\x01"                          # junk before the first start code: dropped
              + b"\x00\x00\x00\x01\x67\x42\x00" + b"\x00\x00\x01\x68\xce"
              + b"\x00\x00\x01" + b"\x00\x00\x01\x65\x88\x84\x00\x00"   # an empty NAL; trailing zeros
              + b"\x00\x00\x00\x01\x41\x9a\x00\x00\x03\x01")             # emulation prevention kept
    nals = split_annexb(stream)
    assert nals == [b"\x67\x42", b"\x68\xce", b"\x65\x88\x84", b"\x41\x9a\x00\x00\x03\x01"]
    sample = length_prefixed(nals)
    assert sample == b"".join(len(n).to_bytes(4, "big") + n for n in nals)
    assert length_prefixed([]) == b"" and split_annexb(b"") == [] and split_annexb(b"\x00\x00\x01") == []
    assert h264_nal_type(b"\x65") == h26x.H264_NAL_IDR and h265_nal_type(b"\x40\x01") == h26x.H265_NAL_VPS


class BitWriter:
    """Builds hand-made SPS RBSPs for paths no encoder here takes (pic_order_cnt_type 1, extreme cropping)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, v: int) -> BitWriter:
        self.bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, v: int) -> BitWriter:
        code = v + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, v: int) -> BitWriter:
        return self.ue(2 * v - 1 if v > 0 else -2 * v)

    def nal(self, header: bytes) -> bytes:
        bits = self.bits + [1]                         # rbsp_stop_one_bit
        bits += [0] * (-len(bits) % 8)
        rbsp = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for b in rbsp:                                 # emulation prevention
            if zeros >= 2 and b <= 3:
                out.append(3)
                zeros = 0
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        return header + bytes(out)


def h264_sps(*, poc_type: int = 1, crop: tuple[int, int, int, int] = (0, 0, 0, 0), frame_mbs_only: int = 1,
             width_mbs: int = 20, height_units: int = 15) -> bytes:
    w = BitWriter().u(8, 77).u(8, 0).u(8, 30).ue(0).ue(0).ue(poc_type)
    if poc_type == 0:
        w.ue(2)
    elif poc_type == 1:
        w.u(1, 0).se(-3).se(2).ue(3).se(1).se(-1).se(5)
    w.ue(1).u(1, 0).ue(width_mbs - 1).ue(height_units - 1).u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 0)
    w.u(1, 1).u(1, any(crop))
    if any(crop):
        for c in crop:
            w.ue(c)
    return w.u(1, 0).nal(b"\x67")


def test_hand_made_h264_sps() -> None:
    assert parse_h264_sps(h264_sps(poc_type=1)) == SpsInfo(
        width=320, height=240, profile_idc=77, level_idc=30, coded_width=320, coded_height=240)
    field = parse_h264_sps(h264_sps(poc_type=0, frame_mbs_only=0, height_units=8, crop=(1, 2, 1, 1)))
    assert (field.coded_height, field.width, field.height) == (256, 320 - 6, 256 - 8)
    with pytest.raises(ValueError, match=r"H\.264 SPS: frame cropping .* leaves 0x240"):
        parse_h264_sps(h264_sps(crop=(80, 80, 0, 0)))
    with pytest.raises(ValueError, match=r"H\.264 SPS: pic_order_cnt_type = 3 is out of range"):
        parse_h264_sps(h264_sps(poc_type=3))


def rbsp_bits(nal: bytes, header: int) -> str:
    return "".join(f"{b:08b}" for b in h26x.unescape_rbsp(nal[header:]))


def read_ue(bits: str, pos: int) -> tuple[int, int]:
    zeros = bits.index("1", pos) - pos
    end = pos + 2 * zeros + 1
    return int(bits[pos + zeros:end], 2) - 1, end


def rebuild(header: bytes, bits: str) -> bytes:
    """A NAL unit from RBSP bits that end with the stop bit (and maybe alignment zeros)."""
    w = BitWriter()
    w.bits = [int(c) for c in bits.rstrip("0")[:-1]]
    return w.nal(header)


def with_scaling_lists(sps: bytes) -> bytes:
    """A real high-profile H.264 SPS with seq_scaling_matrix_present_flag set and scaling lists inserted: full
    4x4 and 8x8 lists, one 'use the default' list (delta to 0 at the first entry) and one absent list."""
    bits = rbsp_bits(sps, 1)
    assert int(bits[:8], 2) in h26x.H264_HIGH_PROFILES
    _, pos = read_ue(bits, 24)                     # seq_parameter_set_id
    chroma, pos = read_ue(bits, pos)
    pos += chroma == 3                             # separate_colour_plane_flag
    _, pos = read_ue(bits, pos)
    _, pos = read_ue(bits, pos)                    # bit depths
    pos += 1                                       # qpprime_y_zero_transform_bypass_flag
    assert bits[pos] == "0", "already has scaling matrices"
    w = BitWriter()
    for i in range(12 if chroma == 3 else 8):
        if i == 2:
            w.u(1, 0)                              # not present: fall-back rule A
            continue
        w.u(1, 1)
        if i == 1:
            w.se(-8)                               # nextScale 0 at j = 0: useDefaultScalingMatrixFlag
            continue
        last = 8
        for j in range(16 if i < 6 else 64):
            target = 4 + (i * 7 + j * 3) % 60
            w.se(target - last)
            last = target
    return rebuild(sps[:1], bits[:pos] + "1" + "".join(map(str, w.bits)) + bits[pos + 1:])


@pytest.mark.parametrize("pix", ["yuv420p", "yuv444p"])
def test_h264_sps_with_scaling_matrices(pix: str) -> None:
    """8 (4:2:0) or 12 (4:4:4) scaling lists skipped right: the size still parses, and FFmpeg decodes the clip
    with the spliced SPS (it changes dequantisation only) from our avcC."""
    clip = encode("h264", 322, 182, pix, n=6, params="8x8dct=1")
    (sps,), pps = clip.params()
    spliced = with_scaling_lists(sps)
    info = parse_h264_sps(spliced)
    assert (info.width, info.height, info.chroma_format_idc) == (322, 182, 3 if pix == "yuv444p" else 1)
    assert decoded_size("h264", b"\x00\x00\x00\x01" + spliced + b"".join(
        b"\x00\x00\x00\x01" + n for au in clip.aus for n in au if h264_nal_type(n) != 7)) == (322, 182)
    stripped = [[n for n in au if h264_nal_type(n) not in (7, 8)] for au in clip.aus]
    frames = decode_length_prefixed("h264", avc_decoder_config([spliced], pps), stripped)
    assert len(frames) == len(clip.aus) and {(f.width, f.height) for f in frames} == {(322, 182)}


def test_h265_sps_with_sub_layer_profile() -> None:
    """sub_layer_profile_present/level_present set for sub-layer 0 of a 3-layer SPS, 88 + 8 bits inserted."""
    clip = encode("hevc", 322, 182, n=8, params=CASES["hevc-sublayers"][4])
    vps, (sps,), pps = clip.params()
    bits = rbsp_bits(sps, 2)
    minus1 = int(bits[4:7], 2)
    assert minus1 == 2 and bits[104:108] == "0000"
    data_at = 104 + 2 * minus1 + 2 * (8 - minus1)
    sub = BitWriter().u(2, 0).u(1, 0).u(5, 1).u(32, 0x60000000).u(4, 0b1001).u(43, 0).u(1, 0).u(8, 60)
    spliced = rebuild(sps[:2], bits[:104] + "1100" + bits[108:data_at] + "".join(map(str, sub.bits))
                      + bits[data_at:])
    info = parse_h265_sps(spliced)
    assert (info.width, info.height, info.max_sub_layers) == (322, 182, 3)
    assert info.profile_tier_level == parse_h265_sps(sps).profile_tier_level
    stripped = [[n for n in au if not 32 <= h265_nal_type(n) <= 34] for au in clip.aus]
    frames = decode_length_prefixed("hevc", hevc_decoder_config(vps, [spliced], pps), stripped)
    assert len(frames) == len(clip.aus) and {(f.width, f.height) for f in frames} == {(322, 182)}


def test_garbage_sps_raises_value_error(demo_clip: Clip) -> None:
    real = demo_clip.sps()
    with pytest.raises(ValueError, match=r"H\.264 SPS: .*too short"):
        parse_h264_sps(b"")
    with pytest.raises(ValueError, match=r"H\.264 SPS: truncated reading pic_width_in_mbs_minus1"):
        parse_h264_sps(real[:6])
    with pytest.raises(ValueError, match=r"H\.264 SPS: nal_unit_type is 8, expected 7"):
        parse_h264_sps(b"\x68" + real[1:])
    with pytest.raises(ValueError, match=r"H\.264 SPS: .*not a valid exp-Golomb"):
        parse_h264_sps(b"\x67\x42\xc0\x1f" + bytes(8))
    hevc = encode("hevc", 320, 240, n=1, params="bframes=0").sps()
    with pytest.raises(ValueError, match=r"H\.265 SPS: truncated reading general profile_tier_level"):
        parse_h265_sps(hevc[:8])
    with pytest.raises(ValueError, match=r"H\.265 SPS: nal_unit_type is 32"):
        parse_h265_sps(b"\x40\x01" + hevc[2:])
    with pytest.raises(ValueError, match=r"H\.265 SPS"):
        parse_h265_sps(b"")
    zero = BitWriter().u(4, 0).u(3, 0).u(1, 1).u(96, 0).ue(0).ue(1).ue(0).ue(240).u(1, 0).ue(0).ue(0).nal(b"\x42\x01")
    with pytest.raises(ValueError, match=r"H\.265 SPS: picture size 0x240"):
        parse_h265_sps(zero)
    # every truncation and random bytes: a ValueError naming the SPS, or a result, never another exception
    rng = random.Random(7)
    inputs = [real[:i] for i in range(len(real))] + [hevc[:i] for i in range(len(hevc))]
    inputs += [bytes([0x67]) + rng.randbytes(rng.randrange(0, 40)) for _ in range(1000)]
    inputs += [bytes([0x42, 0x01]) + rng.randbytes(rng.randrange(0, 60)) for _ in range(1000)]
    for data in inputs:
        parse = parse_h265_sps if data[:1] == b"\x42" else parse_h264_sps
        try:
            info = parse(data)
        except ValueError as exc:
            assert str(exc).startswith(("H.264 SPS: ", "H.265 SPS: ")), exc
        else:
            assert info.width > 0 and info.height > 0


def test_records_refuse_bad_parameter_sets(demo_clip: Clip) -> None:
    sps, pps = demo_clip.params()
    with pytest.raises(ValueError, match="avcC: no PPS"):
        avc_decoder_config(sps, [])
    with pytest.raises(ValueError, match=r"avcC: sps\[0\] is empty"):
        avc_decoder_config([b""], pps)
    with pytest.raises(ValueError, match=r"avcC: pps\[0\] has NAL type 7, expected 8"):
        avc_decoder_config(sps, sps)
    with pytest.raises(ValueError, match=r"H\.264 SPS: truncated"):
        avc_decoder_config([sps[0][:5]], pps)
    vps, hsps, hpps = encode("hevc", 320, 240, n=1, params="bframes=0").params()
    with pytest.raises(ValueError, match="hvcC: no VPS"):
        hevc_decoder_config([], hsps, hpps)
    with pytest.raises(ValueError, match=r"hvcC: sps\[0\] has NAL type 32, expected 33"):
        hevc_decoder_config(vps, vps, hpps)
    with pytest.raises(ValueError, match="H.264 NAL unit is empty"):
        h264_nal_type(b"")


# ------------------------------------------------------------------------------------------------ fmp4


def read_back(data: bytes) -> tuple[list[av.Packet], list[av.VideoFrame], av.video.stream.VideoStream]:
    """Demux and decode an mp4 from memory; fails on any error."""
    container = av.open(io.BytesIO(data), format="mp4")
    stream = container.streams.video[0]
    packets, frames = [], []
    for packet in container.demux(stream):
        if packet.size:
            packets.append(packet)
        frames += packet.decode()
    info = stream
    container.close()
    return packets, frames, info


def test_fmp4_reads_back_frame_for_frame(any_clip: Clip) -> None:
    init, segments = fmp4_bytes(any_clip)
    packets, frames, stream = read_back(init + b"".join(segments))
    assert stream.codec_context.name == any_clip.codec
    assert (stream.codec_context.width, stream.codec_context.height) == (any_clip.width, any_clip.height)
    assert Fraction(stream.time_base) == Fraction(1, 90000)
    assert len(packets) == len(frames) == len(any_clip.aus)
    dts0 = any_clip.dts[0]
    assert [p.dts for p in packets] == [d - dts0 for d in any_clip.dts]
    assert [p.pts for p in packets] == [p - dts0 for p in any_clip.pts]
    assert [p.is_keyframe for p in packets] == any_clip.keyframes
    assert sorted(f.pts for f in frames) == sorted(p - dts0 for p in any_clip.pts)
    assert {(f.width, f.height) for f in frames} == {(any_clip.width, any_clip.height)}
    for segment, key in zip(segments, any_clip.keyframes, strict=False):
        (kind, _, moof_end), (kind2, _, end) = list(iter_boxes(segment))
        assert (kind, kind2, end) == ("moof", "mdat", len(segment))
        assert fragment_is_keyframe(segment[:moof_end]) == key


def test_demo_fmp4_steps_by_one_frame(demo_clip: Clip) -> None:
    """25 fps: pts 0, 3600, 7200, ...; a keyframe every 25 frames (the demo camera's GOP)."""
    init, segments = fmp4_bytes(demo_clip)
    packets, _, _ = read_back(init + b"".join(segments))
    assert [p.pts for p in packets] == [i * TICKS for i in range(100)]
    assert [i for i, p in enumerate(packets) if p.is_keyframe] == [0, 25, 50, 75]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
@pytest.mark.parametrize("case", ["demo", "hevc-642x362"])
def test_ffprobe_reads_written_file(case: str, demo_clip: Clip, tmp_path: Path) -> None:
    clip = demo_clip if case == "demo" else encode(*CASES[case][:4], params=CASES[case][4])
    init, segments = fmp4_bytes(clip)
    path = tmp_path / "out.mp4"
    path.write_bytes(init + b"".join(segments))
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stderr == ""
    (stream,) = json.loads(out.stdout)["streams"]
    assert stream == {"codec_name": clip.codec, "width": clip.width, "height": clip.height,
                      "nb_read_frames": str(len(clip.aus))}


def test_init_segment_layout(demo_clip: Clip) -> None:
    config = demo_clip.config()
    init = init_segment(codec="h264", width=1280, height=720, config=config)
    assert [b[0] for b in iter_boxes(init)] == ["ftyp", "moov"]
    assert init[8:32] == b"isom\x00\x00\x02\x00isomiso6mp41avc1"
    tkhd = find_box(init, ["moov", "trak", "tkhd"])
    assert init[tkhd[0]:tkhd[0] + 4] == b"\x00\x00\x00\x03" and init[tkhd[1] - 8:tkhd[1]] == \
        (1280 << 16).to_bytes(4, "big") + (720 << 16).to_bytes(4, "big")
    mdhd = find_box(init, ["moov", "trak", "mdia", "mdhd"])
    assert int.from_bytes(init[mdhd[0] + 12:mdhd[0] + 16], "big") == 90000
    trex = find_box(init, ["moov", "mvex", "trex"])
    assert init[trex[0] + 4:trex[0] + 12] == b"\x00\x00\x00\x01\x00\x00\x00\x01"
    assert init.find(b"avcC" + config) > 0
    hvcc = encode("hevc", 320, 240, n=1, params="bframes=0").config()
    hinit = init_segment(codec="hevc", width=320, height=240, config=hvcc, timescale=1000)
    assert b"hvc1" in hinit and hinit.find(b"hvcC" + hvcc) > 0 and b"avc1" not in hinit


def test_init_segment_refuses_bad_arguments(demo_clip: Clip) -> None:
    config = demo_clip.config()
    with pytest.raises(ValueError, match="width 0 is not in 1..65535"):
        init_segment(codec="h264", width=0, height=720, config=config)
    with pytest.raises(ValueError, match="height 65536 is not in 1..65535"):
        init_segment(codec="h264", width=1280, height=65536, config=config)
    with pytest.raises(ValueError, match="unknown codec 'vp8'"):
        init_segment(codec="vp8", width=1280, height=720, config=config)
    with pytest.raises(ValueError, match="empty h264 decoder configuration record"):
        init_segment(codec="h264", width=1280, height=720, config=b"")


def test_media_segment_layout_and_errors() -> None:
    key = media_segment(7, 2**40, [Sample(b"\x00\x00\x00\x01\x65", 3600, True)])
    moof_end = next(iter_boxes(key))[2]
    assert key[moof_end:] == b"\x00\x00\x00\x0dmdat\x00\x00\x00\x01\x65"
    assert key[20:24] == (7).to_bytes(4, "big")                          # mfhd sequence_number
    tfdt = find_box(key, ["traf", "tfdt"], 8, moof_end)
    assert key[tfdt[0]:tfdt[0] + 12] == b"\x01\x00\x00\x00" + (2**40).to_bytes(8, "big")
    tfhd = find_box(key, ["traf", "tfhd"], 8, moof_end)
    assert key[tfhd[0]:tfhd[1]] == b"\x00\x02\x00\x00\x00\x00\x00\x01"
    trun = find_box(key, ["traf", "trun"], 8, moof_end)
    assert key[trun[0]:trun[1]] == (b"\x01\x00\x07\x01" + (1).to_bytes(4, "big") + (moof_end + 8).to_bytes(4, "big")
                                    + (3600).to_bytes(4, "big") + (5).to_bytes(4, "big")
                                    + KEYFRAME_FLAGS.to_bytes(4, "big"))
    # several samples, one with a negative composition offset: trun carries offsets (flag 0x800), signed
    many = media_segment(1, 0, [Sample(b"ab", 3600, True, 7200), Sample(b"cde", 3600, False, -3600)])
    moof_end = next(iter_boxes(many))[2]
    trun = find_box(many, ["traf", "trun"], 8, moof_end)
    assert many[trun[0]:trun[0] + 12] == (b"\x01\x00\x0f\x01" + (2).to_bytes(4, "big")
                                         + (moof_end + 8).to_bytes(4, "big"))
    assert many[trun[0] + 12:trun[1]] == b"".join(
        x.to_bytes(4, "big", signed=True) for x in (3600, 2, KEYFRAME_FLAGS, 7200, 3600, 3, NON_KEYFRAME_FLAGS, -3600))
    assert many[moof_end:] == b"\x00\x00\x00\x0dmdatabcde"
    assert fragment_is_keyframe(many[:moof_end])
    one_cto = media_segment(1, 0, [Sample(b"ab", 3600, False, 3600)])
    assert not fragment_is_keyframe(one_cto[:next(iter_boxes(one_cto))[2]])
    with pytest.raises(ValueError, match="fMP4 media segment: no samples"):
        media_segment(1, 0, [])
    with pytest.raises(ValueError, match="out of range"):
        media_segment(1, 0, [Sample(b"ab", -1, True)])
    with pytest.raises(ValueError, match="out of range"):
        media_segment(2**32, 0, [Sample(b"ab", 3600, True)])


def test_media_segment_cost(demo_clip: Clip) -> None:
    """The hot path: one single-sample segment per frame. Prints µs per call (run with -s); the bound is loose
    (a shared 2-core machine), bench/bench_fmp4.py compares with PyAV's muxer."""
    samples = [Sample(length_prefixed(au), TICKS, key)
               for au, key in zip(demo_clip.aus, demo_clip.keyframes, strict=False)]
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for i, s in enumerate(samples):
            media_segment(i + 1, i * TICKS, (s,))
        runs.append((time.perf_counter() - t0) / len(samples) * 1e6)
    median = statistics.median(runs)
    print(f"\nmedia_segment, one 720p sample: {median:.2f} µs median of 7 runs over {len(samples)} frames")
    assert median < 200
