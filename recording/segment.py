"""Segment files: a camera's access units as fragmented MP4 on disk, written and read back — pure, no I/O.

A segment is one fMP4 file: the init segment (``ftyp+moov``, the camera's avcC/hvcC, 90 kHz) then one
``moof+mdat`` per frame, appended as frames arrive and never rewritten — so a file cut short by ``kill -9`` or a
full disk is still valid up to its last whole fragment (:func:`parse_segment` stops there and says where).
It is the same box layout the live relay sends browsers, so playback can hand fragments on unchanged in shape.

:class:`SegmentMuxer` turns one segment's access units (H.264 or H.265, starting at a keyframe) into those bytes:
decode times derived from presentation times (``video_ingest.reorder``, B-frames), one frame held until its
duration is known, decode times rebased to 0 at the first frame. :func:`parse_segment` reads a file's bytes
back into :class:`SegmentFrame`s (offset, size, decode time, duration, composition offset, keyframe).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from video_ingest import fmp4, h26x
from video_ingest.mp4 import Mp4Error, find_box, iter_boxes
from video_ingest.reorder import DecodeTimes

TIMESCALE = 90000
DEFAULT_STEP = 3600
"""One frame at 25 fps in 90 kHz: the last frame's duration before a second one has arrived."""
CODECS = ("h264", "hevc")
_NON_SYNC = 0x00010000


class SegmentError(ValueError):
    """Bytes that are not a segment file this room wrote (or can read)."""


class SegmentMuxer:
    """One segment's access units → fMP4 bytes (see the module docstring). ``init`` is the file's first bytes;
    :meth:`feed` returns the fragment the unit completed (the previous frame), :meth:`flush` the last one."""

    def __init__(self, *, codec: str, width: int, height: int, config: bytes, time_base: Fraction) -> None:
        if codec not in CODECS:
            raise SegmentError(f"recordings are written for H.264 and H.265 cameras, not {codec!r}")
        if time_base.numerator != 1 or time_base.denominator <= 0:
            raise SegmentError(f"time base {time_base} is not 1/N")
        self.codec = codec
        self.timescale = time_base.denominator
        self.init = fmp4.init_segment(codec=codec, width=width, height=height, config=config,
                                      timescale=self.timescale)
        self._step = DEFAULT_STEP * self.timescale // TIMESCALE or 1
        self._reorder = h26x.reorder_depth(codec, config)
        self._times = DecodeTimes(self._reorder, self._step)
        self._offset: int | None = None
        self._start_pts = 0
        self._held: tuple[bytes, int, bool, int] | None = None
        self._seq = 0
        self.frames = 0
        """Fragments made so far."""
        self.media_ticks = 0
        """Decode time after the last fragment made (the segment's length so far, in ``timescale`` ticks)."""
        self.skipped = 0
        """Units skipped: leading pictures of an open GOP, or a presentation time before its decode time."""

    @property
    def started(self) -> bool:
        return self._offset is not None

    def is_sync(self, unit: Any) -> bool:
        """Whether ``unit`` can start a segment: a keyframe — an IDR/IRAP, or a recovery point for cameras that
        send no IDR (intra refresh, open GOP: FFmpeg and the export decode from there; a browser may not)."""
        return bool(unit.is_keyframe)

    def feed(self, unit: Any) -> bytes | None:
        """Take one access unit (``bytes()``, ``pts``, ``is_keyframe``) in arrival order; the first must be a
        sync unit (:meth:`is_sync`). Returns the previous frame's ``moof+mdat``, if one was completed."""
        pts = unit.pts
        if self._offset is None:
            if not self.is_sync(unit):
                raise SegmentError("a segment must start at a keyframe")
            self._start_pts = pts
            self._offset = pts - self._reorder * self._step
        elif pts < self._start_pts:
            self.skipped += 1  # a leading picture of the first (open) GOP: it refers to frames not in this file
            return None
        dts = self._times.next(pts)
        if pts < dts:
            self.skipped += 1
            return None
        out = None
        held = self._held
        if held is not None:
            duration = dts - self._offset - held[1]
            self._step = duration
            out = self._fragment(held, duration)
        data = bytes(unit)
        self._held = (data, dts - self._offset, self.is_sync(unit), pts - dts)
        return out

    def flush(self) -> bytes | None:
        """The frame still held (its duration guessed from the previous one): the segment's last fragment."""
        held, self._held = self._held, None
        return self._fragment(held, self._step) if held is not None else None

    def _fragment(self, held: tuple[bytes, int, bool, int], duration: int) -> bytes:
        self._seq += 1
        self.frames += 1
        data, decode_time, keyframe, offset = held
        self.media_ticks = decode_time + duration
        return fmp4.media_segment(self._seq, decode_time, [fmp4.Sample(data, duration, keyframe, offset)])


@dataclass(frozen=True, slots=True)
class SegmentFrame:
    """One sample of a segment file: where its bytes are and its timing (``timescale`` ticks from the file's
    first decode time)."""

    offset: int
    size: int
    dts: int
    duration: int
    composition_offset: int
    keyframe: bool


@dataclass(frozen=True, slots=True)
class ParsedSegment:
    """A segment file read back: ``init`` (ftyp+moov bytes), ``codec``, ``timescale``, the frames, and
    ``valid_bytes`` — where the last whole fragment ends (less than the file's size when it was cut short)."""

    init: bytes
    codec: str
    timescale: int
    frames: list[SegmentFrame]
    valid_bytes: int

    @property
    def duration_s(self) -> float:
        if not self.frames:
            return 0.0
        last = self.frames[-1]
        return (last.dts + last.duration - self.frames[0].dts) / self.timescale

    @property
    def keyframes(self) -> int:
        return sum(1 for f in self.frames if f.keyframe)

    def sample(self, data: bytes, frame: SegmentFrame) -> bytes:
        return data[frame.offset:frame.offset + frame.size]


def parse_segment(data: bytes) -> ParsedSegment:
    """Read a segment file's bytes; a truncated tail (a fragment cut short) is left out, not an error.
    :class:`SegmentError` when the file does not even hold a whole init segment."""
    pos = 0
    end = len(data)
    init_end = 0
    boxes: list[tuple[str, int, int, int]] = []  # (type, start, payload, end) of whole boxes
    while pos + 8 <= end:
        size, raw = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        if size < header or pos + size > end:
            break  # cut short here
        boxes.append((raw.decode("latin-1"), pos, pos + header, pos + size))
        pos += size
    kinds = [b[0] for b in boxes[:2]]
    if kinds != ["ftyp", "moov"]:
        raise SegmentError(f"not a segment file: starts with {kinds or 'nothing whole'} (expected ftyp, moov)")
    init_end = boxes[1][3]
    init = data[:init_end]
    codec, timescale = _init_facts(init)
    frames: list[SegmentFrame] = []
    valid = init_end
    i = 2
    while i + 1 < len(boxes):
        (kind, start, payload, box_end), (mkind, _, mpayload, mend) = boxes[i], boxes[i + 1]
        if kind != "moof" or mkind != "mdat":
            raise SegmentError(f"unexpected box {kind!r} at offset {start} (expected moof then mdat)")
        try:
            one = _one_sample(data, start, box_end, mpayload, mend)
            if one is not None:
                frames.append(one)
            else:
                frames += _fragment_frames(data, start, payload, box_end, mpayload, mend)
        except (Mp4Error, struct.error) as exc:
            raise SegmentError(f"bad fragment at offset {start}: {exc}") from None
        valid = mend
        i += 2
    return ParsedSegment(init, codec, timescale, frames, valid)


def _init_facts(init: bytes) -> tuple[str, int]:
    stsd = find_box(init, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    mdhd = find_box(init, ["moov", "trak", "mdia", "mdhd"])
    if stsd is None or mdhd is None:
        raise SegmentError("init segment has no stsd or mdhd box")
    entry = init[stsd[0] + 12:stsd[0] + 16]
    codec = {b"avc1": "h264", b"hvc1": "hevc", b"hev1": "hevc"}.get(entry)
    if codec is None:
        raise SegmentError(f"unknown sample entry {entry!r}")
    version = init[mdhd[0]]
    (timescale,) = struct.unpack_from(">I", init, mdhd[0] + (20 if version == 1 else 12))
    return codec, timescale


# The layout fmp4.media_segment writes for one sample (the recorder's every fragment): moof 8, mfhd 16, traf 8,
# tfhd 16 (default-base-is-moof only), tfdt 20 (version 1), trun 20 (version 1, one sample, data offset) + entry.
_FAST = struct.Struct(">I4s I4sI4x I4s4xQ I4sIIi")
"""traf size/type, tfhd size/type/flags, tfdt size/type/base time, trun size/type/flags/count/data offset — read
from moof + 24."""
_ENTRY3 = struct.Struct(">III")
_ENTRY4 = struct.Struct(">IIIi")


def _one_sample(data: bytes, moof: int, moof_end: int, mdat_payload: int, mdat_end: int) -> SegmentFrame | None:
    """The frame of a fragment in the recorder's own one-sample layout, read at fixed offsets; None otherwise."""
    if moof_end - moof not in (100, 104):
        return None
    (_, traf, _, tfhd, tfhd_flags, tfdt_size, tfdt, base, _, trun, trun_flags, count,
     offset) = _FAST.unpack_from(data, moof + 24)
    if (traf, tfhd, tfdt, trun) != (b"traf", b"tfhd", b"tfdt", b"trun") or tfhd_flags != 0x020000 \
            or tfdt_size != 20 or count != 1 or moof + offset != mdat_payload or trun_flags not in (0x01000701,
                                                                                                  0x01000F01):
        return None
    if trun_flags & 0x800:
        duration, size, flags, cto = _ENTRY4.unpack_from(data, moof + 88)
    else:
        (duration, size, flags), cto = _ENTRY3.unpack_from(data, moof + 88), 0
    if mdat_payload + size > mdat_end:
        raise Mp4Error("sample data past the end of its mdat")
    return SegmentFrame(mdat_payload, size, base, duration, cto, not flags & _NON_SYNC)


def _fragment_frames(data: bytes, moof_start: int, payload: int, moof_end: int, mdat_payload: int,
                     mdat_end: int) -> list[SegmentFrame]:
    traf = find_box(data, ["traf"], payload, moof_end)
    if traf is None:
        raise Mp4Error("moof without traf")
    base_time = 0
    default_flags = 0
    default_duration = 0
    default_size = 0
    out: list[SegmentFrame] = []
    for child, cpay, _cend in iter_boxes(data, traf[0], traf[1]):
        if child == "tfhd":
            (vflags,) = struct.unpack_from(">I", data, cpay)
            flags = vflags & 0xFFFFFF
            p = cpay + 8
            p += 8 if flags & 0x01 else 0
            p += 4 if flags & 0x02 else 0
            if flags & 0x08:
                (default_duration,) = struct.unpack_from(">I", data, p)
                p += 4
            if flags & 0x10:
                (default_size,) = struct.unpack_from(">I", data, p)
                p += 4
            if flags & 0x20:
                (default_flags,) = struct.unpack_from(">I", data, p)
        elif child == "tfdt":
            version = data[cpay]
            (base_time,) = struct.unpack_from(">Q" if version == 1 else ">I", data, cpay + 4)
        elif child == "trun":
            (vflags, count) = struct.unpack_from(">II", data, cpay)
            version, flags = vflags >> 24, vflags & 0xFFFFFF
            p = cpay + 8
            offset = mdat_payload
            if flags & 0x001:
                (rel,) = struct.unpack_from(">i", data, p)
                offset = moof_start + rel
                p += 4
            first_flags = None
            if flags & 0x004:
                (first_flags,) = struct.unpack_from(">I", data, p)
                p += 4
            t = base_time
            for n in range(count):
                duration, size, sflags, cto = default_duration, default_size, default_flags, 0
                if flags & 0x100:
                    (duration,) = struct.unpack_from(">I", data, p)
                    p += 4
                if flags & 0x200:
                    (size,) = struct.unpack_from(">I", data, p)
                    p += 4
                if flags & 0x400:
                    (sflags,) = struct.unpack_from(">I", data, p)
                    p += 4
                elif n == 0 and first_flags is not None:
                    sflags = first_flags
                if flags & 0x800:
                    (cto,) = struct.unpack_from(">i" if version else ">I", data, p)
                    p += 4
                if offset + size > mdat_end:
                    raise Mp4Error("sample data past the end of its mdat")
                out.append(SegmentFrame(offset, size, t, duration, cto, not sflags & _NON_SYNC))
                offset += size
                t += duration
    return out
