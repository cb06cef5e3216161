"""MP4 box handling for the live relay: splitting arbitrary chunks, the avcC codec string, keyframe flags."""

from __future__ import annotations

import struct

import pytest

from video_ingest.mp4 import BoxSplitter, Mp4Error, avc_codec_string, find_box, fragment_is_keyframe, iter_boxes


def box(kind: str, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def full_box(kind: str, flags: int, payload: bytes, version: int = 0) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def init_segment(profile: int = 0x42, compat: int = 0xC0, level: int = 0x1F) -> bytes:
    avcc = box("avcC", bytes([1, profile, compat, level, 0xFF, 0xE1]) + b"\x00\x04sps!" + b"\x01\x00\x03pps")
    avc1 = box("avc1", b"\x00" * 78 + avcc)
    stsd = full_box("stsd", 0, struct.pack(">I", 1) + avc1)
    moov = box("moov", box("trak", box("mdia", box("minf", box("stbl", stsd)))))
    return box("ftyp", b"isom\x00\x00\x02\x00") + moov


def moof(*, first_flags: int | None = None, sample_flags: int | None = None, default_flags: int | None = None) -> bytes:
    tfhd_flags, tfhd_payload = 0, struct.pack(">I", 1)
    if default_flags is not None:
        tfhd_flags |= 0x20
        tfhd_payload += struct.pack(">I", default_flags)
    tfhd = full_box("tfhd", tfhd_flags, tfhd_payload)
    trun_flags, trun_payload = 0x001, struct.pack(">I", 1) + struct.pack(">i", 100)  # count, data_offset
    if first_flags is not None:
        trun_flags |= 0x004
        trun_payload += struct.pack(">I", first_flags)
    if sample_flags is not None:
        trun_flags |= 0x100 | 0x200 | 0x400
        trun_payload += struct.pack(">III", 3600, 999, sample_flags)
    trun = full_box("trun", trun_flags, trun_payload)
    return box("moof", box("mfhd", b"\x00" * 8) + box("traf", tfhd + box("tfdt", b"\x00" * 8) + trun))


SYNC, NON_SYNC = 0x02000000, 0x01010000


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 10_000])
def test_splitter_returns_whole_boxes_whatever_the_chunking(chunk: int) -> None:
    stream = init_segment() + moof(first_flags=SYNC) + box("mdat", b"x" * 999) + moof(first_flags=NON_SYNC) + box(
        "mdat", b"y" * 50)
    splitter = BoxSplitter()
    got = []
    for i in range(0, len(stream), chunk):
        splitter.write(stream[i:i + chunk])
        got += splitter.take()
    assert [b.type for b in got] == ["ftyp", "moov", "moof", "mdat", "moof", "mdat"]
    assert b"".join(b.data for b in got) == stream
    assert splitter.pending_bytes == 0


def test_splitter_keeps_an_incomplete_box_and_handles_64_bit_sizes() -> None:
    big = struct.pack(">I4sQ", 1, b"mdat", 16 + 5) + b"hello"
    splitter = BoxSplitter()
    splitter.write(big[:10])
    assert splitter.take() == [] and splitter.pending_bytes == 10
    splitter.write(big[10:])
    (only,) = splitter.take()
    assert (only.type, only.data) == ("mdat", big)


def test_splitter_refuses_a_nonsense_size() -> None:
    with pytest.raises(Mp4Error, match="size 4"):
        BoxSplitter().write(struct.pack(">I4s", 4, b"moof"))
    with pytest.raises(Mp4Error, match="limit"):
        BoxSplitter(max_box_bytes=100).write(struct.pack(">I4s", 101, b"mdat"))


@pytest.mark.parametrize("profile,compat,level,expected", [
    (0x42, 0xC0, 0x1F, "avc1.42C01F"), (0x64, 0x00, 0x28, "avc1.640028"), (0x4D, 0x40, 0x1E, "avc1.4D401E")])
def test_codec_string_from_avcc(profile: int, compat: int, level: int, expected: str) -> None:
    assert avc_codec_string(init_segment(profile, compat, level)) == expected


def test_codec_string_errors_name_what_is_missing() -> None:
    with pytest.raises(Mp4Error, match="stsd"):
        avc_codec_string(box("ftyp", b"isom") + box("moov"))
    no_avcc = init_segment().replace(b"avcC", b"hvcC")
    with pytest.raises(Mp4Error, match="avcC"):
        avc_codec_string(no_avcc)


@pytest.mark.parametrize("kwargs,expected", [
    ({"first_flags": SYNC}, True),
    ({"first_flags": NON_SYNC}, False),
    ({"sample_flags": SYNC}, True),
    ({"sample_flags": NON_SYNC}, False),
    ({"default_flags": SYNC}, True),
    ({"default_flags": NON_SYNC}, False),
    ({"first_flags": SYNC, "default_flags": NON_SYNC}, True),  # first_sample_flags overrides the default
])
def test_fragment_keyframe_flag(kwargs: dict, expected: bool) -> None:
    assert fragment_is_keyframe(moof(**kwargs)) is expected


def test_fragment_without_any_flags_is_an_error() -> None:
    with pytest.raises(Mp4Error, match="no sample flags"):
        fragment_is_keyframe(moof())
    with pytest.raises(Mp4Error, match="expected a moof"):
        fragment_is_keyframe(box("mdat", b"x"))


def test_iter_and_find_boxes() -> None:
    data = init_segment()
    assert [t for t, _, _ in iter_boxes(data)] == ["ftyp", "moov"]
    assert find_box(data, ["moov", "trak", "mdia"]) is not None
    assert find_box(data, ["moov", "mvex"]) is None
    with pytest.raises(Mp4Error, match="truncated"):
        list(iter_boxes(data + b"\x00\x00"))
