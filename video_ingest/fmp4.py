"""MP4 writer: fragmented for the live relay (an init segment, then ``moof+mdat`` per frame), plain for evidence clips.

Owns the bytes a browser's MediaSource reads: ``init_segment`` (``ftyp+moov`` with one video track whose sample
entry is ``avc1``+``avcC`` or ``hvc1``+``hvcC``, empty sample tables and ``mvex/trex``) and ``media_segment``
(``moof`` with ``mfhd``/``tfhd`` default-base-is-moof/``tfdt`` v1/``trun`` v1, then ``mdat``). Samples are
AVCC/HVCC (4-byte lengths, see :mod:`video_ingest.h26x`). ``mp4_file`` writes a whole clip as a plain MP4
(``moov`` with full sample tables before ``mdat``). Pure functions on bytes — no I/O, no threads.

``media_segment`` is the relay's hot path (one call per frame per camera, ~400/s for 16 cameras at 25 fps): the
one-sample case is a single precompiled ``struct`` pack of every header field plus one concatenation.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

TRACK_ID = 1
MOVIE_TIMESCALE = 1000

KEYFRAME_FLAGS = 0x02000000
"""sample_depends_on = 2 (does not depend on others), sample_is_non_sync_sample = 0."""
NON_KEYFRAME_FLAGS = 0x01010000
"""sample_depends_on = 1 (depends on others), sample_is_non_sync_sample = 1."""

_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
_TRUN_DATA_OFFSET = 0x000001
_TRUN_DURATION = 0x000100
_TRUN_SIZE = 0x000200
_TRUN_FLAGS = 0x000400
_TRUN_CTO = 0x000800
_TRUN_BASE_FLAGS = _TRUN_DATA_OFFSET | _TRUN_DURATION | _TRUN_SIZE | _TRUN_FLAGS

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_BOX = struct.Struct(">I4s")
_MATRIX = struct.pack(">9i", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)

_SAMPLE_ENTRIES = {"h264": (b"avc1", b"avcC"), "hevc": (b"hvc1", b"hvcC")}
_BRANDS = {"h264": (b"isom", b"iso6", b"mp41", b"avc1"), "hevc": (b"isom", b"iso6", b"mp41")}


@dataclass(frozen=True, slots=True)
class Sample:
    """One access unit: ``data`` is the length-prefixed sample, ``duration`` and ``composition_offset``
    (pts - dts) are in the track timescale."""

    data: bytes
    duration: int
    keyframe: bool
    composition_offset: int = 0


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return _BOX.pack(8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, _U32.pack(version << 24 | flags), *payload)


def init_segment(*, codec: str, width: int, height: int, config: bytes, timescale: int = 90000) -> bytes:
    """``ftyp+moov`` for one video track (ID 1) of ``codec`` (``"h264"`` or ``"hevc"``) whose decoder
    configuration record (``avcC``/``hvcC`` payload, see :mod:`video_ingest.h26x`) is ``config``."""
    _check(codec, width, height, config, timescale, "fMP4 init segment")
    empty = (_full_box(b"stts", 0, 0, _U32.pack(0)), _full_box(b"stsc", 0, 0, _U32.pack(0)),
             _full_box(b"stsz", 0, 0, _U32.pack(0), _U32.pack(0)), _full_box(b"stco", 0, 0, _U32.pack(0)))
    trex = _full_box(b"trex", 0, 0, struct.pack(">IIIII", TRACK_ID, 1, 0, 0, 0))
    return _ftyp(codec) + _moov(codec, width, height, config, timescale, 0, empty, _box(b"mvex", trex))


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """What the sample tables say of one sample (its bytes elsewhere): size, duration, keyframe, pts - dts."""

    size: int
    duration: int
    keyframe: bool
    composition_offset: int = 0


def mp4_file(*, codec: str, width: int, height: int, config: bytes, samples: Sequence[Sample],
             timescale: int = 90000) -> bytes:
    """A complete, plain (not fragmented) MP4 of ``samples`` (decode order, starting at decode time 0):
    ``ftyp``, ``moov`` with full sample tables (stts, stss, ctts when needed, stsc, stsz, stco — one chunk) and
    its duration, then ``mdat``. ``moov`` comes first, so a player can start before reading it all. What evidence
    clips are written as: every player and editing tool reads it, and seeking works."""
    head = mp4_head(codec=codec, width=width, height=height, config=config, timescale=timescale,
                    samples=[SampleInfo(len(s.data), s.duration, s.keyframe, s.composition_offset) for s in samples])
    return b"".join([head, *(s.data for s in samples)])


def mp4_head(*, codec: str, width: int, height: int, config: bytes, samples: Sequence[SampleInfo],
             timescale: int = 90000) -> bytes:
    """Everything of :func:`mp4_file` before the samples' bytes (``ftyp``, ``moov``, the ``mdat`` header): write
    it, then every sample's bytes in order, and the file is whole — so a long file is written without holding its
    samples in memory."""
    _check(codec, width, height, config, timescale, "MP4 file")
    if not samples:
        raise ValueError("MP4 file: no samples")
    n = len(samples)
    deltas: list[tuple[int, int]] = []  # run-length (count, duration)
    for s in samples:
        if s.duration < 0:
            raise ValueError(f"MP4 file: negative sample duration {s.duration}")
        if deltas and deltas[-1][1] == s.duration:
            deltas[-1] = (deltas[-1][0] + 1, s.duration)
        else:
            deltas.append((1, s.duration))
    duration = sum(s.duration for s in samples)
    tables = [_full_box(b"stts", 0, 0, _U32.pack(len(deltas)), *(struct.pack(">II", c, d) for c, d in deltas))]
    sync = [i + 1 for i, s in enumerate(samples) if s.keyframe]
    if len(sync) < n:
        tables.append(_full_box(b"stss", 0, 0, _U32.pack(len(sync)), *(_U32.pack(i) for i in sync)))
    if any(s.composition_offset for s in samples):
        tables.append(_full_box(b"ctts", 1, 0, _U32.pack(n),
                                *(struct.pack(">Ii", 1, s.composition_offset) for s in samples)))
    tables.append(_full_box(b"stsc", 0, 0, _U32.pack(1), struct.pack(">III", 1, n, 1)))  # one chunk of n
    tables.append(_full_box(b"stsz", 0, 0, _U32.pack(0), _U32.pack(n), *(_U32.pack(s.size) for s in samples)))
    payload = sum(s.size for s in samples)
    ftyp = _ftyp(codec)
    # The chunk offset depends on the moov's size, which depends on the offset box's width: try 32-bit first.
    for wide in (False, True):
        offset_box = (_full_box(b"co64", 0, 0, _U32.pack(1), struct.pack(">Q", 0)) if wide
                      else _full_box(b"stco", 0, 0, _U32.pack(1), _U32.pack(0)))
        moov_size = len(_moov(codec, width, height, config, timescale, duration, (*tables, offset_box)))
        offset = len(ftyp) + moov_size + (16 if payload + 8 > 0xFFFFFFFF else 8)
        if wide or offset + payload <= 0xFFFFFFFF:
            break
    offset_box = (_full_box(b"co64", 0, 0, _U32.pack(1), struct.pack(">Q", offset)) if wide
                  else _full_box(b"stco", 0, 0, _U32.pack(1), _U32.pack(offset)))
    moov = _moov(codec, width, height, config, timescale, duration, (*tables, offset_box))
    mdat = (_BOX.pack(1, b"mdat") + struct.pack(">Q", payload + 16) if payload + 8 > 0xFFFFFFFF
            else _BOX.pack(payload + 8, b"mdat"))
    return b"".join([ftyp, moov, mdat])


def _check(codec: str, width: int, height: int, config: bytes, timescale: int, what: str) -> None:
    if codec not in _SAMPLE_ENTRIES:
        raise ValueError(f"{what}: unknown codec {codec!r} (expected 'h264' or 'hevc')")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 1 <= value <= 0xFFFF:
            raise ValueError(f"{what}: {name} {value!r} is not in 1..65535")
    if not isinstance(timescale, int) or not 1 <= timescale <= 0xFFFFFFFF:
        raise ValueError(f"{what}: timescale {timescale!r} is not in 1..4294967295")
    if not config:
        raise ValueError(f"{what}: empty {codec} decoder configuration record")


def _ftyp(codec: str) -> bytes:
    return _box(b"ftyp", b"isom", _U32.pack(0x200), *_BRANDS[codec])


def _moov(codec: str, width: int, height: int, config: bytes, timescale: int, duration: int,
          tables: Sequence[bytes], *extra: bytes) -> bytes:
    """``moov`` with one video track; ``tables`` are the stbl boxes after stsd; ``duration`` in ``timescale``."""
    entry_type, config_type = _SAMPLE_ENTRIES[codec]
    movie_duration = duration * MOVIE_TIMESCALE // timescale
    if max(duration, movie_duration) > 0xFFFFFFFF:
        raise ValueError(f"MP4: duration {duration} / {timescale} s is too long for a version-0 header")
    mvhd = _full_box(b"mvhd", 0, 0,
                     struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, movie_duration),  # creation, modification, ...
                     struct.pack(">iHH8x", 0x00010000, 0x0100, 0),    # rate 1.0, volume 1.0, reserved
                     _MATRIX, bytes(24),                              # matrix, pre_defined[6]
                     _U32.pack(TRACK_ID + 1))                         # next_track_ID
    tkhd = _full_box(b"tkhd", 0, 0x000003,                            # track_enabled | track_in_movie
                     struct.pack(">IIIII", 0, 0, TRACK_ID, 0, movie_duration),  # ..., ID, reserved, duration
                     struct.pack(">8xhhhH", 0, 0, 0, 0),              # reserved, layer, alternate_group, volume
                     _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))  # "und"
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\x00")
    vmhd = _full_box(b"vmhd", 0, 1, bytes(8))                         # graphicsmode 0, opcolor 0,0,0
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, _U32.pack(1), _full_box(b"url ", 0, 1)))  # self-contained
    sample_entry = _box(entry_type,
                        bytes(6), _U16.pack(1),                       # reserved, data_reference_index
                        bytes(16),                                    # pre_defined, reserved, pre_defined[3]
                        struct.pack(">HHIIIH", width, height, 0x00480000, 0x00480000, 0, 1),  # 72 dpi, 1 frame
                        bytes(32),                                    # compressorname (empty Pascal string)
                        struct.pack(">Hh", 0x0018, -1),               # depth, pre_defined
                        _box(config_type, bytes(config)))
    stbl = _box(b"stbl", _full_box(b"stsd", 0, 0, _U32.pack(1), sample_entry), *tables)
    minf = _box(b"minf", vmhd, dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak, *extra)


# Media segment layout (sizes in bytes): moof 8 [mfhd 16] [traf 8 [tfhd 16] [tfdt 20] [trun 20 + entries]], mdat 8.
# Everything but the sequence number, base decode time, sample fields and mdat size is constant for one sample,
# so the one-sample segment is one pack of three constant byte strings and seven integers.
_MFHD_SIZE, _TFHD_SIZE, _TFDT_SIZE, _TRUN_HEAD_SIZE = 16, 16, 20, 20
_ENTRY = struct.Struct(">III")         # sample_duration, sample_size, sample_flags
_ENTRY_CTO = struct.Struct(">IIIi")    # ... + sample_composition_time_offset (signed, trun version 1)
_TRUN_V1 = 1 << 24 | _TRUN_BASE_FLAGS
_TRUN_V1_CTO = _TRUN_V1 | _TRUN_CTO


def _sizes(trun_size: int) -> tuple[int, int]:
    """(traf size, moof size) around a trun of ``trun_size`` bytes."""
    traf = 8 + _TFHD_SIZE + _TFDT_SIZE + trun_size
    return traf, 8 + _MFHD_SIZE + traf


def _head(moof_size: int) -> bytes:
    """moof header + mfhd up to (without) its sequence_number."""
    return _BOX.pack(moof_size, b"moof") + _BOX.pack(_MFHD_SIZE, b"mfhd") + _U32.pack(0)


def _middle(traf_size: int) -> bytes:
    """traf header + tfhd + tfdt up to (without) its baseMediaDecodeTime."""
    return (_BOX.pack(traf_size, b"traf")
            + _BOX.pack(_TFHD_SIZE, b"tfhd") + _U32.pack(_TFHD_DEFAULT_BASE_IS_MOOF) + _U32.pack(TRACK_ID)
            + _BOX.pack(_TFDT_SIZE, b"tfdt") + _U32.pack(1 << 24))


def _trun_head(trun_size: int, flags: int, count: int, moof_size: int) -> bytes:
    """trun header up to (without) its sample entries; data_offset points just past the mdat header."""
    return _BOX.pack(trun_size, b"trun") + struct.pack(">IIi", flags, count, moof_size + 8)


_ONE_TRAF, _ONE_MOOF = _sizes(_TRUN_HEAD_SIZE + _ENTRY.size)
_ONE_CTO_TRAF, _ONE_CTO_MOOF = _sizes(_TRUN_HEAD_SIZE + _ENTRY_CTO.size)
_ONE_A, _ONE_B, _ONE_C = (_head(_ONE_MOOF), _middle(_ONE_TRAF),
                          _trun_head(_TRUN_HEAD_SIZE + _ENTRY.size, _TRUN_V1, 1, _ONE_MOOF))
_ONE_CTO_A, _ONE_CTO_B, _ONE_CTO_C = (_head(_ONE_CTO_MOOF), _middle(_ONE_CTO_TRAF),
                                      _trun_head(_TRUN_HEAD_SIZE + _ENTRY_CTO.size, _TRUN_V1_CTO, 1, _ONE_CTO_MOOF))
_ONE = struct.Struct(f">{len(_ONE_A)}sI{len(_ONE_B)}sQ{len(_ONE_C)}sIII I4s")
_ONE_CTO = struct.Struct(f">{len(_ONE_CTO_A)}sI{len(_ONE_CTO_B)}sQ{len(_ONE_CTO_C)}sIIIi I4s")


def media_segment(sequence: int, base_decode_time: int, samples: Sequence[Sample]) -> bytes:
    """``moof+mdat`` for ``samples`` (decode order) starting at ``base_decode_time`` (track timescale);
    ``sequence`` is the mfhd sequence number (1, 2, ... per fragment). The trun carries each sample's duration,
    size and flags (sync or not), and composition offsets only when one of them is non-zero."""
    try:
        if len(samples) == 1:
            s = samples[0]
            data = s.data
            if not s.composition_offset:
                return _ONE.pack(_ONE_A, sequence, _ONE_B, base_decode_time, _ONE_C, s.duration, len(data),
                                 KEYFRAME_FLAGS if s.keyframe else NON_KEYFRAME_FLAGS,
                                 8 + len(data), b"mdat") + data
            return _ONE_CTO.pack(_ONE_CTO_A, sequence, _ONE_CTO_B, base_decode_time, _ONE_CTO_C, s.duration,
                                 len(data), KEYFRAME_FLAGS if s.keyframe else NON_KEYFRAME_FLAGS,
                                 s.composition_offset, 8 + len(data), b"mdat") + data
        if not samples:
            raise ValueError("fMP4 media segment: no samples")
        return _many(sequence, base_decode_time, samples)
    except struct.error as exc:
        raise ValueError(f"fMP4 media segment: a field is out of range (sequence {sequence}, base decode time "
                         f"{base_decode_time}, durations/offsets of {len(samples)} sample(s)): {exc}") from None


def _many(sequence: int, base_decode_time: int, samples: Sequence[Sample]) -> bytes:
    n = len(samples)
    if any(s.composition_offset for s in samples):
        pack = _ENTRY_CTO.pack
        entries = [pack(s.duration, len(s.data), KEYFRAME_FLAGS if s.keyframe else NON_KEYFRAME_FLAGS,
                        s.composition_offset) for s in samples]
        trun_size, trun_flags = _TRUN_HEAD_SIZE + n * _ENTRY_CTO.size, _TRUN_V1_CTO
    else:
        pack = _ENTRY.pack
        entries = [pack(s.duration, len(s.data), KEYFRAME_FLAGS if s.keyframe else NON_KEYFRAME_FLAGS)
                   for s in samples]
        trun_size, trun_flags = _TRUN_HEAD_SIZE + n * _ENTRY.size, _TRUN_V1
    traf_size, moof_size = _sizes(trun_size)
    mdat_size = 8 + sum(len(s.data) for s in samples)
    return b"".join([_head(moof_size), _U32.pack(sequence), _middle(traf_size), struct.pack(">Q", base_decode_time),
                     _trun_head(trun_size, trun_flags, n, moof_size), *entries, _BOX.pack(mdat_size, b"mdat"),
                     *(s.data for s in samples)])
