"""Fragmented-MP4 byte handling for the live relay: top-level box splitting, the codec string, keyframe flags.

PyAV's muxer writes its output in arbitrary chunks; a browser's MediaSource wants whole boxes (an init segment
``ftyp+moov``, then ``moof+mdat`` fragments). These are pure functions and a small incremental splitter — no
I/O, no PyAV — so they are tested on bytes alone.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_HEADER = struct.Struct(">I4s")
_SAMPLE_IS_NON_SYNC = 0x00010000
"""ISO/IEC 14496-12 sample_flags bit ``sample_is_non_sync_sample``."""


class Mp4Error(ValueError):
    """Bytes that are not the MP4 box structure the relay expects."""


@dataclass(frozen=True, slots=True)
class Box:
    """One top-level box: its four-character type and its complete bytes (header included)."""

    type: str
    data: bytes


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """Yield ``(type, payload_start, box_end)`` for each complete box in ``data[start:end]``.

    Raises :class:`Mp4Error` on a truncated or malformed header (a child list must be complete)."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise Mp4Error(f"truncated box header at offset {pos}")
        size, raw_type = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise Mp4Error(f"truncated 64-bit box header at offset {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Mp4Error(f"box {raw_type!r} at offset {pos} has size {size}, only {end - pos} bytes left")
        yield raw_type.decode("latin-1"), pos + header, pos + size
        pos += size


class BoxSplitter:
    """Collects written chunks and hands out complete top-level boxes; a file-like ``write()`` target for PyAV.

    Deliberately not seekable (no ``seek``/``tell``), so the muxer streams instead of patching earlier bytes."""

    def __init__(self, max_box_bytes: int = 64 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._boxes: list[Box] = []
        self._max = max_box_bytes

    def write(self, chunk: bytes | bytearray | memoryview) -> int:
        """Append ``chunk``; complete boxes become available from :meth:`take`."""
        self._buf += chunk
        self._split()
        return len(chunk)

    def _split(self) -> None:
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 8:
            size, raw_type = _HEADER.unpack_from(buf, pos)
            if size == 1:
                if len(buf) - pos < 16:
                    break
                (size,) = struct.unpack_from(">Q", buf, pos + 8)
            if size < 8 or size > self._max:
                raise Mp4Error(f"muxer wrote box {raw_type!r} of size {size}; refusing (limit {self._max})")
            if len(buf) - pos < size:
                break
            self._boxes.append(Box(raw_type.decode("latin-1"), bytes(buf[pos:pos + size])))
            pos += size
        if pos:
            del buf[:pos]

    def take(self) -> list[Box]:
        """The complete boxes written since the last call, oldest first."""
        boxes, self._boxes = self._boxes, []
        return boxes

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete box still waiting for the rest."""
        return len(self._buf)


def find_box(data: bytes, path: list[str], start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """``(payload_start, box_end)`` of the first box along ``path`` (e.g. ``["moov", "trak"]``), else None."""
    for box_type, payload, box_end in iter_boxes(data, start, end):
        if box_type == path[0]:
            if len(path) == 1:
                return payload, box_end
            found = find_box(data, path[1:], payload, box_end)
            if found is not None:
                return found
    return None


def avc_codec_string(init_segment: bytes) -> str:
    """RFC 6381 codec string (``avc1.PPCCLL``) from the avcC box inside the init segment's sample entry."""
    # avcC sits in moov/trak/mdia/minf/stbl/stsd/avc1; stsd and avc1 have fixed preambles, so search for the
    # type tag inside stsd rather than walking those.
    stsd = find_box(init_segment, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    if stsd is None:
        raise Mp4Error("init segment has no moov/trak/mdia/minf/stbl/stsd box")
    at = init_segment.find(b"avcC", stsd[0], stsd[1])
    if at < 4 or at + 8 > stsd[1]:
        raise Mp4Error("init segment has no avcC box (not H.264?)")
    version, profile, compat, level = init_segment[at + 4:at + 8]
    if version != 1:
        raise Mp4Error(f"avcC configurationVersion is {version}, expected 1")
    return f"avc1.{profile:02X}{compat:02X}{level:02X}"


def fragment_is_keyframe(moof: bytes) -> bool:
    """Whether the first sample of a ``moof`` box's first track run is a sync sample (a keyframe).

    Reads ``trun`` first_sample_flags or per-sample flags, falling back to ``tfhd`` default_sample_flags."""
    box_type, payload, end = next(iter_boxes(moof, 0))
    if box_type != "moof":
        raise Mp4Error(f"expected a moof box, got {box_type!r}")
    traf = find_box(moof, ["traf"], payload, end)
    if traf is None:
        raise Mp4Error("moof has no traf")
    default_flags: int | None = None
    for child, cpay, _cend in iter_boxes(moof, traf[0], traf[1]):
        if child == "tfhd":
            (vflags,) = struct.unpack_from(">I", moof, cpay)
            flags = vflags & 0xFFFFFF
            pos = cpay + 8  # version/flags + track_ID
            pos += 8 if flags & 0x01 else 0   # base_data_offset
            pos += 4 if flags & 0x02 else 0   # sample_description_index
            pos += 4 if flags & 0x08 else 0   # default_sample_duration
            pos += 4 if flags & 0x10 else 0   # default_sample_size
            if flags & 0x20:
                (default_flags,) = struct.unpack_from(">I", moof, pos)
        elif child == "trun":
            (vflags, count) = struct.unpack_from(">II", moof, cpay)
            flags = vflags & 0xFFFFFF
            pos = cpay + 8
            pos += 4 if flags & 0x001 else 0  # data_offset
            if flags & 0x004:
                (first,) = struct.unpack_from(">I", moof, pos)
                return not first & _SAMPLE_IS_NON_SYNC
            if flags & 0x400 and count:
                pos += 4 if flags & 0x100 else 0  # sample_duration
                pos += 4 if flags & 0x200 else 0  # sample_size
                (sample_flags,) = struct.unpack_from(">I", moof, pos)
                return not sample_flags & _SAMPLE_IS_NON_SYNC
            if default_flags is not None:
                return not default_flags & _SAMPLE_IS_NON_SYNC
            raise Mp4Error("trun carries no sample flags and tfhd no default flags")
    raise Mp4Error("traf has no trun")
