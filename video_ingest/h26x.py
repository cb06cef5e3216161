"""H.264/H.265 bitstream helpers for the relay's own fMP4 writer: NAL units, SPS fields, decoder configuration records.

Owns everything the muxer needs to know about the elementary stream: splitting an Annex-B byte stream into NAL
units, the AVCC/HVCC sample format (each NAL prefixed by a 4-byte big-endian length), NAL unit types, the few SPS
fields a sample entry needs (size after cropping, profile, level, chroma format, bit depths, the H.265
profile_tier_level), the ISO/IEC 14496-15 ``avcC``/``hvcC`` payloads and their RFC 6381 codec strings. Pure
functions on bytes — no I/O, no PyAV. Bad input raises ``ValueError("H.264 SPS: ...")`` and the like, never an
IndexError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# H.264 nal_unit_type (ITU-T H.264 table 7-1)
H264_NAL_SLICE = 1
H264_NAL_IDR = 5
H264_NAL_SEI = 6
H264_NAL_SPS = 7
H264_NAL_PPS = 8
H264_NAL_AUD = 9

# H.265 nal_unit_type (ITU-T H.265 table 7-1)
H265_NAL_IRAP_FIRST = 16  # BLA_W_LP
H265_NAL_IRAP_LAST = 23   # RSV_IRAP_VCL23; 16..23 are IRAP pictures (BLA, IDR, CRA)
H265_NAL_VPS = 32
H265_NAL_SPS = 33
H265_NAL_PPS = 34
H265_NAL_AUD = 35
H265_NAL_PREFIX_SEI = 39
H265_NAL_SUFFIX_SEI = 40

H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
"""profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling matrices."""

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_START = b"\x00\x00\x01"


def split_annexb(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The NAL units of an Annex-B byte stream (3- or 4-byte start codes), without start codes.

    Trailing zero bytes of each NAL (the next start code's leading zero, trailing_zero_8bits) are removed; bytes
    before the first start code (a stream cut mid-NAL) and empty NAL units are dropped."""
    data = bytes(data)
    pos = data.find(_START)
    nals: list[bytes] = []
    while pos >= 0:
        start = pos + 3
        pos = data.find(_START, start)
        nal = data[start:] if pos < 0 else data[start:pos]
        nal = nal.rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def length_prefixed(nals: Iterable[bytes]) -> bytes:
    """The AVCC/HVCC sample for ``nals``: each NAL unit prefixed by its 4-byte big-endian length."""
    pack = _U32.pack
    parts: list[bytes] = []
    append = parts.append
    for nal in nals:
        append(pack(len(nal)))
        append(nal)
    return b"".join(parts)


def h264_nal_type(nal: bytes) -> int:
    """H.264 nal_unit_type (the low 5 bits of the 1-byte NAL header)."""
    if not nal:
        raise ValueError("H.264 NAL unit is empty")
    return nal[0] & 0x1F


def h265_nal_type(nal: bytes) -> int:
    """H.265 nal_unit_type (bits 1..6 of the 2-byte NAL header)."""
    if not nal:
        raise ValueError("H.265 NAL unit is empty")
    return (nal[0] >> 1) & 0x3F


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """What a sample entry needs from a sequence parameter set.

    ``width``/``height`` are the displayed size (after the cropping / conformance window), ``coded_*`` the decoded
    picture size before it. ``profile_tier_level`` is H.265's 12-byte general profile_tier_level (profile space,
    tier, profile_idc, 32 compatibility flags, 48 constraint flags, level_idc), empty for H.264, where
    ``constraint_flags`` holds the constraint_set byte instead."""

    width: int
    height: int
    profile_idc: int
    level_idc: int
    chroma_format_idc: int = 1
    bit_depth_luma: int = 8
    bit_depth_chroma: int = 8
    coded_width: int = 0
    coded_height: int = 0
    constraint_flags: int = 0
    profile_tier_level: bytes = b""
    max_sub_layers: int = 1
    temporal_id_nesting: bool = True
    # Not compared: only the decode-order side reads them, and a camera restating them is no new stream.
    max_num_ref_frames: int = field(default=0, compare=False)
    reorder_frames: int | None = field(default=None, compare=False)
    """How many frames may precede a frame in decode order and follow it in output order (H.264 VUI
    max_num_reorder_frames, H.265 sps_max_num_reorder_pics of the highest sub-layer); None when the SPS does
    not say (an H.264 SPS without VUI bitstream_restriction)."""


def unescape_rbsp(nal: bytes) -> bytes:
    """The RBSP of a NAL unit's payload: emulation-prevention bytes (``00 00 03`` → ``00 00``) removed."""
    if b"\x00\x00\x03" not in nal:
        return bytes(nal)
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    """MSB-first bit reader with exp-Golomb codes; running out raises ValueError prefixed with ``label``."""

    __slots__ = ("_value", "_total", "pos", "label")

    def __init__(self, data: bytes, label: str) -> None:
        self._value = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self.pos = 0
        self.label = label

    def _fail(self, field: str, n: int) -> ValueError:
        return ValueError(f"{self.label}: truncated reading {field} (needs {n} bit(s) at bit {self.pos}, "
                          f"only {self._total} bits in the RBSP)")

    def u(self, n: int, field: str) -> int:
        """The next ``n`` bits as an unsigned integer."""
        end = self.pos + n
        if end > self._total:
            raise self._fail(field, n)
        self.pos = end
        return (self._value >> (self._total - end)) & ((1 << n) - 1)

    def skip(self, n: int, field: str) -> None:
        if self.pos + n > self._total:
            raise self._fail(field, n)
        self.pos += n

    def ue(self, field: str, limit: int = 0xFFFFFFFE) -> int:
        """ue(v): unsigned exp-Golomb; a value above ``limit`` raises ValueError naming ``field``."""
        zeros = 0
        while not self.u(1, field):
            zeros += 1
            if zeros > 31:
                raise ValueError(f"{self.label}: {field} is not a valid exp-Golomb code (more than 31 leading zeros)")
        value = (1 << zeros) - 1 + (self.u(zeros, field) if zeros else 0)
        if value > limit:
            raise ValueError(f"{self.label}: {field} = {value} is out of range (at most {limit})")
        return value

    def se(self, field: str) -> int:
        """se(v): signed exp-Golomb."""
        k = self.ue(field)
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _crop_units(chroma_array_type: int) -> tuple[int, int]:
    """(SubWidthC, SubHeightC) for a ChromaArrayType (0 = monochrome or separate colour planes)."""
    return {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[chroma_array_type]


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    """scaling_list(): read and discard one 4x4 (16) or 8x8 (64) list of delta_scale values."""
    last = nxt = 8
    for _ in range(size):
        if nxt:
            delta = bits.se("delta_scale")
            if not -128 <= delta <= 127:
                raise ValueError(f"{bits.label}: delta_scale {delta} out of range -128..127")
            nxt = (last + delta + 256) % 256
        last = nxt or last


def parse_h264_sps(nal: bytes) -> SpsInfo:
    """The fields of an H.264 sequence parameter set NAL unit (starting with its 1-byte NAL header)."""
    label = "H.264 SPS"
    if len(nal) < 4:
        raise ValueError(f"{label}: {len(nal)} byte(s), too short for a NAL header and profile/level")
    if nal[0] & 0x80:
        raise ValueError(f"{label}: forbidden_zero_bit is set (not an H.264 NAL unit)")
    if nal[0] & 0x1F != H264_NAL_SPS:
        raise ValueError(f"{label}: nal_unit_type is {nal[0] & 0x1F}, expected {H264_NAL_SPS}")
    bits = _Bits(unescape_rbsp(nal[1:]), label)
    profile_idc = bits.u(8, "profile_idc")
    constraint_flags = bits.u(8, "constraint_set flags")
    level_idc = bits.u(8, "level_idc")
    bits.ue("seq_parameter_set_id", 31)
    chroma_format_idc, separate_colour_plane = 1, 0
    depth_luma = depth_chroma = 8
    if profile_idc in H264_HIGH_PROFILES:
        chroma_format_idc = bits.ue("chroma_format_idc", 3)
        if chroma_format_idc == 3:
            separate_colour_plane = bits.u(1, "separate_colour_plane_flag")
        depth_luma = 8 + bits.ue("bit_depth_luma_minus8", 6)
        depth_chroma = 8 + bits.ue("bit_depth_chroma_minus8", 6)
        bits.skip(1, "qpprime_y_zero_transform_bypass_flag")
        if bits.u(1, "seq_scaling_matrix_present_flag"):
            for i in range(12 if chroma_format_idc == 3 else 8):
                if bits.u(1, f"seq_scaling_list_present_flag[{i}]"):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue("log2_max_frame_num_minus4", 12)
    poc_type = bits.ue("pic_order_cnt_type", 2)
    if poc_type == 0:
        bits.ue("log2_max_pic_order_cnt_lsb_minus4", 12)
    elif poc_type == 1:
        bits.skip(1, "delta_pic_order_always_zero_flag")
        bits.se("offset_for_non_ref_pic")
        bits.se("offset_for_top_to_bottom_field")
        for _ in range(bits.ue("num_ref_frames_in_pic_order_cnt_cycle", 255)):
            bits.se("offset_for_ref_frame")
    max_num_ref_frames = bits.ue("max_num_ref_frames")
    bits.skip(1, "gaps_in_frame_num_value_allowed_flag")
    width_mbs = bits.ue("pic_width_in_mbs_minus1", 4095) + 1
    height_map_units = bits.ue("pic_height_in_map_units_minus1", 4095) + 1
    frame_mbs_only = bits.u(1, "frame_mbs_only_flag")
    if not frame_mbs_only:
        bits.skip(1, "mb_adaptive_frame_field_flag")
    bits.skip(1, "direct_8x8_inference_flag")
    coded_width = width_mbs * 16
    coded_height = (2 - frame_mbs_only) * height_map_units * 16
    width, height = coded_width, coded_height
    if bits.u(1, "frame_cropping_flag"):
        left = bits.ue("frame_crop_left_offset")
        right = bits.ue("frame_crop_right_offset")
        top = bits.ue("frame_crop_top_offset")
        bottom = bits.ue("frame_crop_bottom_offset")
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        sub_w, sub_h = _crop_units(chroma_array_type)
        width -= sub_w * (left + right)
        height -= sub_h * (2 - frame_mbs_only) * (top + bottom)
        if width <= 0 or height <= 0:
            raise ValueError(f"{label}: frame cropping ({left}, {right}, {top}, {bottom}) leaves "
                             f"{width}x{height} of the coded {coded_width}x{coded_height}")
    reorder: int | None = None
    try:  # the VUI only matters for the reorder depth: a camera's odd VUI must not cost its stream
        if bits.u(1, "vui_parameters_present_flag"):
            reorder = _h264_vui_reorder(bits)
    except ValueError:
        reorder = None
    return SpsInfo(width=width, height=height, profile_idc=profile_idc, level_idc=level_idc,
                   chroma_format_idc=chroma_format_idc, bit_depth_luma=depth_luma, bit_depth_chroma=depth_chroma,
                   coded_width=coded_width, coded_height=coded_height, constraint_flags=constraint_flags,
                   max_num_ref_frames=max_num_ref_frames, reorder_frames=reorder)


def _h264_hrd(bits: _Bits) -> None:
    """hrd_parameters() (H.264 E.1.2), read and discarded."""
    count = bits.ue("cpb_cnt_minus1", 31) + 1
    bits.skip(8, "bit_rate_scale, cpb_size_scale")
    for _ in range(count):
        bits.ue("bit_rate_value_minus1")
        bits.ue("cpb_size_value_minus1")
        bits.skip(1, "cbr_flag")
    bits.skip(20, "hrd delay lengths")


def _h264_vui_reorder(bits: _Bits) -> int | None:
    """max_num_reorder_frames from vui_parameters() (H.264 E.1.1), or None without bitstream_restriction."""
    if bits.u(1, "aspect_ratio_info_present_flag") and bits.u(8, "aspect_ratio_idc") == 255:
        bits.skip(32, "sar_width, sar_height")
    if bits.u(1, "overscan_info_present_flag"):
        bits.skip(1, "overscan_appropriate_flag")
    if bits.u(1, "video_signal_type_present_flag"):
        bits.skip(4, "video_format, video_full_range_flag")
        if bits.u(1, "colour_description_present_flag"):
            bits.skip(24, "colour description")
    if bits.u(1, "chroma_loc_info_present_flag"):
        bits.ue("chroma_sample_loc_type_top_field")
        bits.ue("chroma_sample_loc_type_bottom_field")
    if bits.u(1, "timing_info_present_flag"):
        bits.skip(65, "timing info")
    nal_hrd = bits.u(1, "nal_hrd_parameters_present_flag")
    if nal_hrd:
        _h264_hrd(bits)
    vcl_hrd = bits.u(1, "vcl_hrd_parameters_present_flag")
    if vcl_hrd:
        _h264_hrd(bits)
    if nal_hrd or vcl_hrd:
        bits.skip(1, "low_delay_hrd_flag")
    bits.skip(1, "pic_struct_present_flag")
    if not bits.u(1, "bitstream_restriction_flag"):
        return None
    bits.skip(1, "motion_vectors_over_pic_boundaries_flag")
    for name in ("max_bytes_per_pic_denom", "max_bits_per_mb_denom", "log2_max_mv_length_horizontal",
                 "log2_max_mv_length_vertical"):
        bits.ue(name)
    return bits.ue("max_num_reorder_frames", 16)


def parse_h265_sps(nal: bytes) -> SpsInfo:
    """The fields of an H.265 sequence parameter set NAL unit (starting with its 2-byte NAL header)."""
    label = "H.265 SPS"
    if len(nal) < 3:
        raise ValueError(f"{label}: {len(nal)} byte(s), too short for a NAL header and payload")
    if nal[0] & 0x80:
        raise ValueError(f"{label}: forbidden_zero_bit is set (not an H.265 NAL unit)")
    if (nal[0] >> 1) & 0x3F != H265_NAL_SPS:
        raise ValueError(f"{label}: nal_unit_type is {(nal[0] >> 1) & 0x3F}, expected {H265_NAL_SPS}")
    rbsp = unescape_rbsp(nal[2:])
    bits = _Bits(rbsp, label)
    bits.skip(4, "sps_video_parameter_set_id")
    max_sub_layers_minus1 = bits.u(3, "sps_max_sub_layers_minus1")
    if max_sub_layers_minus1 > 6:
        raise ValueError(f"{label}: sps_max_sub_layers_minus1 is {max_sub_layers_minus1} (at most 6)")
    nesting = bits.u(1, "sps_temporal_id_nesting_flag")
    # profile_tier_level(1, sps_max_sub_layers_minus1); the general part is byte-aligned: RBSP bytes 1..12
    bits.skip(96, "general profile_tier_level")
    ptl = rbsp[1:13]
    general_profile_idc = ptl[0] & 0x1F
    general_level_idc = ptl[11]
    present = [(bits.u(1, "sub_layer_profile_present_flag"), bits.u(1, "sub_layer_level_present_flag"))
               for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        bits.skip(2 * (8 - max_sub_layers_minus1), "reserved_zero_2bits")
    for profile_present, level_present in present:
        if profile_present:
            bits.skip(88, "sub_layer profile")
        if level_present:
            bits.skip(8, "sub_layer_level_idc")
    bits.ue("sps_seq_parameter_set_id", 15)
    chroma_format_idc = bits.ue("chroma_format_idc", 3)
    separate_colour_plane = bits.u(1, "separate_colour_plane_flag") if chroma_format_idc == 3 else 0
    coded_width = bits.ue("pic_width_in_luma_samples", 65535)
    coded_height = bits.ue("pic_height_in_luma_samples", 65535)
    if coded_width == 0 or coded_height == 0:
        raise ValueError(f"{label}: picture size {coded_width}x{coded_height}")
    width, height = coded_width, coded_height
    if bits.u(1, "conformance_window_flag"):
        left = bits.ue("conf_win_left_offset")
        right = bits.ue("conf_win_right_offset")
        top = bits.ue("conf_win_top_offset")
        bottom = bits.ue("conf_win_bottom_offset")
        sub_w, sub_h = _crop_units(0 if separate_colour_plane else chroma_format_idc)
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
        if width <= 0 or height <= 0:
            raise ValueError(f"{label}: conformance window ({left}, {right}, {top}, {bottom}) leaves "
                             f"{width}x{height} of the coded {coded_width}x{coded_height}")
    depth_luma = 8 + bits.ue("bit_depth_luma_minus8", 8)
    depth_chroma = 8 + bits.ue("bit_depth_chroma_minus8", 8)
    reorder: int | None = None
    try:
        bits.ue("log2_max_pic_order_cnt_lsb_minus4", 12)
        all_layers = bits.u(1, "sps_sub_layer_ordering_info_present_flag")
        for _ in range(max_sub_layers_minus1 + 1 if all_layers else 1):  # the last one read is the highest's
            bits.ue("sps_max_dec_pic_buffering_minus1")
            reorder = bits.ue("sps_max_num_reorder_pics", 16)
            bits.ue("sps_max_latency_increase_plus1")
    except ValueError:
        reorder = None
    return SpsInfo(width=width, height=height, profile_idc=general_profile_idc, level_idc=general_level_idc,
                   chroma_format_idc=chroma_format_idc, bit_depth_luma=depth_luma, bit_depth_chroma=depth_chroma,
                   coded_width=coded_width, coded_height=coded_height, profile_tier_level=bytes(ptl),
                   max_sub_layers=max_sub_layers_minus1 + 1, temporal_id_nesting=bool(nesting),
                   reorder_frames=reorder)


def _nal_array(label: str, what: str, nals: list[bytes], type_of: Callable[[bytes], int],
               expected: int) -> list[bytes]:
    """Check a parameter-set list: bytes, non-empty each, of the expected NAL type, each at most 65535 bytes."""
    out = []
    for i, nal in enumerate(nals):
        nal = bytes(nal)
        if not nal:
            raise ValueError(f"{label}: {what}[{i}] is empty")
        if len(nal) > 0xFFFF:
            raise ValueError(f"{label}: {what}[{i}] is {len(nal)} bytes (at most 65535)")
        if type_of(nal) != expected:
            raise ValueError(f"{label}: {what}[{i}] has NAL type {type_of(nal)}, expected {expected}")
        out.append(nal)
    return out


def avc_decoder_config(sps: list[bytes], pps: list[bytes]) -> bytes:
    """The ISO/IEC 14496-15 AVCDecoderConfigurationRecord (the ``avcC`` box payload), lengthSizeMinusOne = 3.

    Profile, compatibility and level are copied from ``sps[0]``; for the high profiles (those whose SPS carries
    chroma_format_idc) the chroma format / bit depth trailer is written, as FFmpeg does."""
    label = "avcC"
    if not sps:
        raise ValueError(f"{label}: no SPS")
    if not pps:
        raise ValueError(f"{label}: no PPS")
    if len(sps) > 31:
        raise ValueError(f"{label}: {len(sps)} SPS (at most 31)")
    if len(pps) > 255:
        raise ValueError(f"{label}: {len(pps)} PPS (at most 255)")
    sps = _nal_array(label, "sps", sps, h264_nal_type, H264_NAL_SPS)
    pps = _nal_array(label, "pps", pps, h264_nal_type, H264_NAL_PPS)
    info = parse_h264_sps(sps[0])
    out = bytearray((1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)))
    for nal in sps:
        out += _U16.pack(len(nal)) + nal
    out.append(len(pps))
    for nal in pps:
        out += _U16.pack(len(nal)) + nal
    if info.profile_idc in H264_HIGH_PROFILES:
        out += bytes((0xFC | info.chroma_format_idc, 0xF8 | (info.bit_depth_luma - 8),
                      0xF8 | (info.bit_depth_chroma - 8), 0))  # numOfSequenceParameterSetExt = 0
    return bytes(out)


def hevc_decoder_config(vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> bytes:
    """The ISO/IEC 14496-15 HEVCDecoderConfigurationRecord (the ``hvcC`` box payload), lengthSizeMinusOne = 3.

    Profile, tier, level, chroma format, bit depths and temporal layers come from ``sps[0]``; spatial
    segmentation, parallelism and frame rate are written as unknown (0). Three arrays follow (VPS, SPS, PPS), each
    with array_completeness = 1 (all parameter sets are in the sample entry, as ``hvc1`` requires)."""
    label = "hvcC"
    for what, nals in (("VPS", vps), ("SPS", sps), ("PPS", pps)):
        if not nals:
            raise ValueError(f"{label}: no {what}")
        if len(nals) > 0xFFFF:
            raise ValueError(f"{label}: {len(nals)} {what} (at most 65535)")
    arrays = [(H265_NAL_VPS, _nal_array(label, "vps", vps, h265_nal_type, H265_NAL_VPS)),
              (H265_NAL_SPS, _nal_array(label, "sps", sps, h265_nal_type, H265_NAL_SPS)),
              (H265_NAL_PPS, _nal_array(label, "pps", pps, h265_nal_type, H265_NAL_PPS))]
    info = parse_h265_sps(arrays[1][1][0])
    out = bytearray((1,))
    out += info.profile_tier_level  # profile space/tier/idc, compatibility flags, constraint flags, level
    out += _U16.pack(0xF000)        # reserved 1111 + min_spatial_segmentation_idc 0
    out += bytes((0xFC,             # reserved 111111 + parallelismType 0 (unknown)
                  0xFC | info.chroma_format_idc,
                  0xF8 | (info.bit_depth_luma - 8),
                  0xF8 | (info.bit_depth_chroma - 8)))
    out += _U16.pack(0)             # avgFrameRate: unspecified
    # constantFrameRate 0 (2 bits), numTemporalLayers (3), temporalIdNested (1), lengthSizeMinusOne 3 (2)
    out.append((info.max_sub_layers & 0x7) << 3 | int(info.temporal_id_nesting) << 2 | 3)
    out.append(len(arrays))
    for nal_type, nals in arrays:
        out.append(0x80 | nal_type)  # array_completeness 1, reserved 0, NAL_unit_type
        out += _U16.pack(len(nals))
        for nal in nals:
            out += _U16.pack(len(nal)) + nal
    return bytes(out)


def codec_string(codec: str, config: bytes) -> str:
    """The RFC 6381 codec string of a decoder configuration record: ``avc1.PPCCLL`` for ``"h264"`` (an avcC
    payload), ``hvc1.<space><profile>.<compat>.<tier><level>[.<constraint bytes>]`` for ``"hevc"`` (an hvcC
    payload, ISO/IEC 14496-15 annex E: compatibility flags bit-reversed in hex, trailing zero constraint bytes
    dropped)."""
    if codec == "h264":
        if len(config) < 4 or config[0] != 1:
            raise ValueError(f"avcC: {len(config)} bytes / version {config[0] if config else None}, "
                             "expected configurationVersion 1 and profile, compatibility, level")
        return f"avc1.{config[1]:02X}{config[2]:02X}{config[3]:02X}"
    if codec == "hevc":
        if len(config) < 13 or config[0] != 1:
            raise ValueError(f"hvcC: {len(config)} bytes / version {config[0] if config else None}, "
                             "expected configurationVersion 1 and a 12-byte profile_tier_level")
        space = ("", "A", "B", "C")[config[1] >> 6]
        tier = "H" if config[1] & 0x20 else "L"
        profile_idc = config[1] & 0x1F
        (compat,) = _U32.unpack_from(config, 2)
        reversed_compat = int(f"{compat:032b}"[::-1], 2)
        constraints = bytes(config[6:12]).rstrip(b"\x00")
        parts = [f"hvc1.{space}{profile_idc}", f"{reversed_compat:X}", f"{tier}{config[12]}"]
        parts += [f"{b:X}" for b in constraints]
        return ".".join(parts)
    raise ValueError(f"codec_string: unknown codec {codec!r} (expected 'h264' or 'hevc')")


# -- decode order, random access and reference pictures (analysis between keyframes, B-frames, open GOP) ---------
SEI_RECOVERY_POINT = 6
"""SEI payloadType of recovery_point() in both H.264 (D.1.8) and H.265 (D.2.8)."""


def sample_nals(sample: bytes) -> list[bytes]:
    """The NAL units of a length-prefixed (AVCC/HVCC, 4-byte lengths) sample; a truncated tail is dropped."""
    out: list[bytes] = []
    pos, end = 0, len(sample)
    while pos + 4 <= end:
        (size,) = _U32.unpack_from(sample, pos)
        pos += 4
        if size == 0 or pos + size > end:
            break
        out.append(bytes(sample[pos:pos + size]))
        pos += size
    return out


def _first_vcl(sample: bytes, hevc: bool) -> bytes | None:
    pos, end = 0, len(sample)
    while pos + 5 <= end:
        (size,) = _U32.unpack_from(sample, pos)
        head = sample[pos + 4]
        if hevc:
            if (head >> 1) & 0x3F < 32:
                return bytes(sample[pos + 4:pos + 4 + min(size, 2)])
        elif head & 0x1F in (1, 5):
            return bytes(sample[pos + 4:pos + 5])
        if size == 0:
            return None
        pos += 4 + size
    return None


def is_disposable(sample: bytes, codec: str, *, max_sub_layers: int = 1) -> bool:
    """Whether no other picture refers to this one, so a decoder that does not need to show it may skip it:
    H.264 nal_ref_idc 0; H.265 a sub-layer non-reference picture (TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N) of the
    highest temporal sub-layer (a lower sub-layer's _N picture may still be used by higher ones)."""
    hevc = codec == "hevc"
    head = _first_vcl(sample, hevc)
    if head is None:
        return False
    if not hevc:
        return (head[0] >> 5) & 3 == 0
    kind = (head[0] >> 1) & 0x3F
    if kind > 14 or kind % 2 or len(head) < 2:
        return False
    return (head[1] & 0x7) - 1 >= max_sub_layers - 1


def _sei_payload_types(rbsp: bytes) -> list[int]:
    types: list[int] = []
    pos = 0
    while pos < len(rbsp) and rbsp[pos:] != b"\x80":
        kind = 0
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            kind += 255
            pos += 1
        if pos >= len(rbsp):
            break
        kind += rbsp[pos]
        pos += 1
        size = 0
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            size += 255
            pos += 1
        if pos >= len(rbsp):
            break
        size += rbsp[pos]
        pos += 1
        types.append(kind)
        pos += size
    return types


def has_recovery_point(nals: Iterable[bytes], codec: str) -> bool:
    """Whether the access unit carries a recovery point SEI — where open-GOP (an I picture that is not an IDR)
    and intra-refresh (no I picture at all) streams let a decoder start."""
    hevc = codec == "hevc"
    for nal in nals:
        if not nal:
            continue
        if hevc:
            if h265_nal_type(nal) == H265_NAL_PREFIX_SEI and SEI_RECOVERY_POINT in _sei_payload_types(
                    unescape_rbsp(nal[2:])):
                return True
        elif nal[0] & 0x1F == H264_NAL_SEI and SEI_RECOVERY_POINT in _sei_payload_types(unescape_rbsp(nal[1:])):
            return True
    return False


def config_sps(codec: str, config: bytes | None) -> SpsInfo | None:
    """The first SPS of an avcC (``"h264"``) or hvcC (``"hevc"``) record, parsed; None when absent or unreadable."""
    if not config:
        return None
    try:
        if codec == "h264":
            if len(config) < 8 or not config[5] & 0x1F:
                return None
            (size,) = _U16.unpack_from(config, 6)
            return parse_h264_sps(bytes(config[8:8 + size]))
        if codec == "hevc":
            pos, count = 23, config[22]
            for _ in range(count):
                kind = config[pos] & 0x3F
                (n,) = _U16.unpack_from(config, pos + 1)
                pos += 3
                for _ in range(n):
                    (size,) = _U16.unpack_from(config, pos)
                    if kind == H265_NAL_SPS:
                        return parse_h265_sps(bytes(config[pos + 2:pos + 2 + size]))
                    pos += 2 + size
    except (ValueError, IndexError, struct.error):
        return None
    return None


REORDER_FALLBACK = 4
"""The reorder depth assumed when a non-baseline H.264 SPS does not state one (no VUI bitstream_restriction):
enough for the B-frame structures cameras use (x264/FFmpeg write the field)."""


def reorder_depth(codec: str, config: bytes | None) -> int:
    """How many frames a decoder must hold back to put this stream's pictures in presentation order: what the
    SPS states; 0 for H.264 baseline/constrained baseline (no B slices); else :data:`REORDER_FALLBACK`, at most the
    stream's reference frame count when it states one."""
    sps = config_sps(codec, config)
    if sps is None:
        return REORDER_FALLBACK
    if sps.reorder_frames is not None:
        return sps.reorder_frames
    if codec == "h264" and sps.profile_idc == 66:
        return 0
    return min(REORDER_FALLBACK, sps.max_num_ref_frames) if sps.max_num_ref_frames else REORDER_FALLBACK


def has_idr(sample: bytes) -> bool:
    """Whether a length-prefixed H.264 sample holds an IDR slice — the only random access point browsers' MSE
    accepts (a recovery point SEI on a non-IDR picture is not one for Chromium)."""
    pos, end = 0, len(sample)
    while pos + 5 <= end:
        (size,) = _U32.unpack_from(sample, pos)
        if sample[pos + 4] & 0x1F == H264_NAL_IDR:
            return True
        if size == 0:
            return False
        pos += 4 + size
    return False
