"""Playback and export of recordings: the timeline, a cursor that replays a camera from any time, an MP4 export.

- :meth:`RecordingLibrary.timeline` — a camera's recorded spans, gaps and alarm markers in a time range.
- :class:`PlaybackCursor` — from time T at speed 1/2/4/8: the segment's own init segment, then one
  ``moof+mdat`` per frame, *retimed* so the browser plays at rate 1 whatever the speed (durations divided by
  the speed; at 4× and above only keyframes, each lasting until the next one divided by the speed). The live
  tile's MediaSource code therefore plays it unchanged. Gaps between segments are skipped; a new camera session
  with other parameters sends a new init. It follows a segment still being written, so playback runs into the
  present. Reads files synchronously: callers run it in a worker thread.
- :class:`TranscodedCursor` — the same for a browser without H.265: an H.265 recording re-encoded as H.264 at tile
  size on the fly (at most ``MAX_TRANSCODES`` at once).
- :meth:`RecordingLibrary.export` — one plain MP4 (``video_ingest.fmp4.mp4_head`` + the samples, ``moov`` first)
  of a range, remuxed from the segments, starting at the keyframe at or before ``since``; gaps are closed up (the
  file's timeline is the recorded time only); it ends where the camera's parameters change (a new init). Planned
  from the sample tables, then written to a file by copying the samples' bytes: memory stays bounded.
"""

from __future__ import annotations

import json
import struct
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, BinaryIO

from recording.index import RecordingIndex, spans_and_gaps
from recording.recorder import SegmentRow
from recording.segment import ParsedSegment, SegmentError, SegmentFrame, parse_segment
from video_ingest import fmp4, h26x
from video_ingest.mp4 import find_box

SPEEDS = (1, 2, 4, 8)
MAX_TRANSCODES = 2
"""H.265 playbacks transcoded at once per server (the rest are told to try later)."""
KEYFRAMES_ONLY_FROM = 4
"""At this speed and above playback sends keyframes only."""
MAX_TIMELINE_S = 7 * 86400.0


class NoRecording(LookupError):
    """Nothing recorded for the camera at or after the asked time (or in the asked range)."""


class RangeError(ValueError):
    """A bad range; ``field`` names the query parameter."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InitFacts:
    """What an init segment says: codec, picture size, decoder configuration record, MediaSource MIME type."""

    codec: str
    width: int
    height: int
    config: bytes
    mime: str


def init_facts(init: bytes) -> InitFacts:
    """Read ``ftyp+moov`` of a segment file this room wrote (one avc1/hvc1 track)."""
    stsd = find_box(init, ["moov", "trak", "mdia", "minf", "stbl", "stsd"])
    if stsd is None:
        raise SegmentError("init segment has no stsd")
    entry = stsd[0] + 8  # version/flags, entry_count
    kind = init[entry + 4:entry + 8]
    codec = {b"avc1": "h264", b"hvc1": "hevc"}.get(kind)
    if codec is None:
        raise SegmentError(f"unknown sample entry {kind!r}")
    width, height = struct.unpack_from(">HH", init, entry + 8 + 24)
    entry_end = entry + struct.unpack_from(">I", init, entry)[0]
    box = find_box(init, ["avcC" if codec == "h264" else "hvcC"], entry + 8 + 78, entry_end)
    if box is None:
        raise SegmentError("init segment has no decoder configuration record")
    config = init[box[0]:box[1]]
    return InitFacts(codec, width, height, config, f'video/mp4; codecs="{h26x.codec_string(codec, config)}"')


@dataclass(frozen=True, slots=True)
class PlayItem:
    """One thing to send: ``init`` (``data`` the init segment, ``mime``), ``fragment`` (``data`` a moof+mdat
    due ``due_s`` after playback began at speed 1 of the output timeline), or ``time`` (the recorded wall time
    ``at`` shown at output time ``due_s``; before each keyframe)."""

    kind: str
    data: bytes = b""
    mime: str = ""
    at: float = 0.0
    due_s: float = 0.0
    keyframe: bool = False
    sample: bytes = b""
    """A fragment's sample alone (length-prefixed NAL units), for a transcode."""
    pts: int = 0
    """A fragment's presentation time on the output timeline, in ``timescale`` ticks."""
    timescale: int = 90000
    transcoded: str = ""
    """An init of a transcoded stream: the recording's own codec (``hevc``)."""


@dataclass
class _Loaded:
    row: SegmentRow
    data: bytes
    seg: ParsedSegment
    base: int


def _load(root: Path, row: SegmentRow) -> _Loaded:
    data = (root / row.path).read_bytes()
    seg = parse_segment(data)
    base = seg.frames[0].dts if seg.frames else 0
    return _Loaded(row, data, seg, base)


def _wall(loaded: _Loaded, frame: SegmentFrame) -> float:
    return loaded.row.start_at + (frame.dts - loaded.base) / loaded.seg.timescale


class PlaybackCursor:
    """Replays one camera from ``at`` (see the module docstring). :meth:`next` returns the next item, or None
    when nothing more is recorded *yet* (call again later: a segment being written grows)."""

    def __init__(self, index: RecordingIndex, camera_id: str, at: float, speed: int = 1) -> None:
        self.index = index
        self.camera_id = camera_id
        self.speed = speed
        rows = [r for r in index.segments(camera_id, at, at) if r.start_at <= at]
        if not rows:
            rows = index.following(camera_id, at, limit=1)
        if not rows:
            raise NoRecording(f"camera {camera_id}: nothing recorded at or after {at:.3f}")
        self._cur = _load(index.root, rows[-1])
        frames = self._cur.seg.frames
        start = 0
        for i, f in enumerate(frames):
            if f.keyframe and _wall(self._cur, f) <= at:
                start = i
        self._i = start
        self._init: bytes | None = None
        self._out = 0
        self._seq = 0
        self.sent_frames = 0
        self.sent_keyframes = 0
        self.position = _wall(self._cur, frames[start]) if frames else self._cur.row.start_at
        """Recorded wall time of the last frame handed out."""

    @property
    def speed(self) -> int:
        return self._speed

    @speed.setter
    def speed(self, value: int) -> None:
        if value not in SPEEDS:
            raise RangeError("speed", f"must be one of {', '.join(map(str, SPEEDS))}, got {value!r}")
        self._speed = value

    def next(self) -> list[PlayItem] | None:
        """The items for the next frame sent (a new init first when needed, a time mark before a keyframe)."""
        while True:
            item = self._next_frame()
            if item is not None:
                return item
            if not self._advance():
                return None

    def _advance(self) -> bool:
        cur = self._cur
        if not cur.row.complete:  # being written when read: read it again (it grew, or was closed meanwhile)
            fresh = [r for r in self.index.segments(self.camera_id, cur.row.start_at, cur.row.start_at)
                     if r.path == cur.row.path]
            if fresh:
                try:
                    self._cur = _load(self.index.root, fresh[0])
                except (OSError, SegmentError):
                    pass
                else:
                    if self._i < len(self._cur.seg.frames):
                        return True
                    if not fresh[0].complete:
                        return False  # nothing new yet
        nxt = self.index.following(self.camera_id, cur.row.start_at, limit=1)
        if not nxt:
            return False
        try:
            self._cur = _load(self.index.root, nxt[0])
        except (OSError, SegmentError):
            return False  # deleted meanwhile: the caller retries later and finds the next one
        self._i = 0
        return True

    def _next_frame(self) -> list[PlayItem] | None:
        cur = self._cur
        frames = cur.seg.frames
        keyframes_only = self._speed >= KEYFRAMES_ONLY_FROM
        while self._i < len(frames) and keyframes_only and not frames[self._i].keyframe:
            self._i += 1
        if self._i >= len(frames):
            return None
        i = self._i
        f = frames[i]
        if keyframes_only:
            j = next((k for k in range(i + 1, len(frames)) if frames[k].keyframe), None)
            if j is None and not cur.row.complete and i + 1 >= len(frames):
                return None  # the next keyframe's time is not known yet
            span = (frames[j].dts if j is not None else frames[-1].dts + frames[-1].duration) - f.dts
            duration, cto = max(1, round(span / self._speed)), 0
            self._i = j if j is not None else len(frames)
        else:
            duration, cto = max(1, round(f.duration / self._speed)), round(f.composition_offset / self._speed)
            self._i = i + 1
        items: list[PlayItem] = []
        if self._init != cur.seg.init:
            self._init = cur.seg.init
            self._out = 0
            self._seq = 0
            items.append(PlayItem("init", cur.seg.init, mime=init_facts(cur.seg.init).mime))
        timescale = cur.seg.timescale
        self.position = _wall(cur, f)
        if f.keyframe:
            items.append(PlayItem("time", at=self.position, due_s=self._out / timescale))
            self.sent_keyframes += 1
        self._seq += 1
        data = cur.seg.sample(cur.data, f)
        items.append(PlayItem("fragment", fmp4.media_segment(self._seq, self._out,
                                                             [fmp4.Sample(data, duration, f.keyframe, cto)]),
                              due_s=self._out / timescale, keyframe=f.keyframe, sample=data,
                              pts=self._out + cto, timescale=timescale))
        self._out += duration
        self.sent_frames += 1
        return items


class TranscodeBusy(RuntimeError):
    """Every transcode slot is taken: an H.265 recording cannot be played to this browser now."""

    def __init__(self) -> None:
        super().__init__("H.265 recording: every transcode slot is in use, try again later (录像转码繁忙)")


class TranscodedCursor:
    """A :class:`PlaybackCursor` for a browser that cannot decode H.265: an H.265 recording's frames are decoded
    and re-encoded as H.264 at tile size (``video_ingest.transcode.TranscodingMuxer``, as the live relay does for
    H.265 cameras) on the cursor's output timeline, so pacing, speeds and time marks are unchanged; H.264 passes
    through untouched. Bounded: a transcode holds one of ``slots`` (a semaphore shared by the server's sockets;
    none free → :class:`TranscodeBusy`) until :meth:`close`, and it runs only as fast as playback reads (real time
    × speed; from 4× only keyframes are decoded)."""

    def __init__(self, cursor: PlaybackCursor, slots: Any) -> None:
        self.cursor = cursor
        self._slots = slots
        self._held = False
        self._muxer: Any = None
        self._marks: list[PlayItem] = []
        self.transcoded_frames = 0

    @property
    def speed(self) -> int:
        return self.cursor.speed

    @speed.setter
    def speed(self, value: int) -> None:
        self.cursor.speed = value

    @property
    def position(self) -> float:
        return self.cursor.position

    def next(self) -> list[PlayItem] | None:
        items = self.cursor.next()
        if items is None:
            return None
        out: list[PlayItem] = []
        for item in items:
            if item.kind == "init":
                self._stop_muxer()
                facts = init_facts(item.data)
                if facts.codec != "hevc":
                    out.append(item)
                    continue
                if not self._held:
                    if not self._slots.acquire(blocking=False):
                        raise TranscodeBusy
                    self._held = True
                from video_ingest.fanout import StreamInfo
                from video_ingest.transcode import TranscodingMuxer  # only H.265 playback pays for the import
                self._muxer = TranscodingMuxer(StreamInfo(self.cursor.camera_id, 0, "hevc", facts.width,
                                                          facts.height, Fraction(1, 90000), facts.config, 0.0))
                continue
            if self._muxer is not None and item.kind == "time" and self._muxer.init is None:
                self._marks.append(item)  # after the transcode's init segment, which its first frame makes
                continue
            if item.kind != "fragment" or self._muxer is None:
                out.append(item)
                continue
            from video_ingest.fanout import AccessUnit
            from video_ingest.remux import InitSegment
            unit = AccessUnit(item.sample, item.pts, item.keyframe, Fraction(1, item.timescale))
            for seg in self._muxer.feed(unit):
                if isinstance(seg, InitSegment):
                    out.append(PlayItem("init", seg.data, mime=seg.mime, transcoded="hevc"))
                    out += self._marks
                    self._marks = []
                else:
                    out.append(PlayItem("fragment", seg.data, due_s=item.due_s, keyframe=seg.keyframe))
                    self.transcoded_frames += 1
        return out

    def _stop_muxer(self) -> None:
        self._marks = []
        if self._muxer is not None:
            self._muxer.close()
            self._muxer = None

    def close(self) -> None:
        """End the transcode and give its slot back. Idempotent."""
        self._stop_muxer()
        if self._held:
            self._held = False
            self._slots.release()


EXPORT_CHUNK = 1 << 20
"""Bytes copied per read when an export is written out."""


@dataclass
class _Part:
    """One segment's share of an export: the file (open since planning, so a deletion meanwhile cuts nothing) and
    where the taken samples' bytes are in it."""

    file: BinaryIO
    spans: list[tuple[int, int]]
    """(offset, size) of each sample, in order."""


class Export:
    """An export planned (:meth:`RecordingLibrary.export`): what it holds, and :meth:`write` to put the MP4 on a file.
    Only the sample tables and the open segment files are held, never the video: memory stays bounded whatever its
    length. ``start_at``/``end_at`` recorded time, ``seconds`` of media, ``frames``, ``segments`` used,
    ``cut_at_new_session`` when it stopped early because the camera's parameters changed, ``size`` in bytes."""

    def __init__(self, head: bytes, parts: list[_Part], *, start_at: float, end_at: float, seconds: float,
                 frames: int, segments: int, cut_at_new_session: bool) -> None:
        self.head = head
        self.parts = parts
        self.start_at = start_at
        self.end_at = end_at
        self.seconds = seconds
        self.frames = frames
        self.segments = segments
        self.cut_at_new_session = cut_at_new_session
        self.size = len(head) + sum(size for p in parts for _, size in p.spans)

    def write(self, out: IO[bytes]) -> int:
        """Write the whole MP4 to ``out`` (synchronous: run it in a worker thread); returns the bytes written."""
        out.write(self.head)
        written = len(self.head)
        for part in self.parts:
            for offset, size in _runs(part.spans):
                part.file.seek(offset)
                left = size
                while left:
                    chunk = part.file.read(min(left, EXPORT_CHUNK))
                    if not chunk:
                        raise SegmentError(f"segment ended {left} bytes early")
                    out.write(chunk)
                    left -= len(chunk)
                written += size
        return written

    def close(self) -> None:
        for part in self.parts:
            part.file.close()
        self.parts = []

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _runs(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent (offset, size) spans merged — a GOP's samples are read in a few large reads, not one per frame."""
    out: list[tuple[int, int]] = []
    for offset, size in spans:
        if out and out[-1][0] + out[-1][1] == offset:
            out[-1] = (out[-1][0], out[-1][1] + size)
        else:
            out.append((offset, size))
    return out


class RecordingLibrary:
    """What the wall server asks of the recordings (timeline, playback, export); file reads are synchronous."""

    def __init__(self, index: RecordingIndex, *, max_export_s: float = 600.0,
                 clock: Callable[[], float] = time.time, export_dir: Path | None = None,
                 max_transcodes: int = MAX_TRANSCODES) -> None:
        self.index = index
        self.transcode_slots = threading.BoundedSemaphore(max_transcodes)
        """H.265 playbacks transcoded at once (each ~10 % of a core at tile size, 1×)."""
        self.max_export_s = max_export_s
        self.clock = clock
        self.export_dir = export_dir if export_dir is not None else index.root.parent / "exports"
        """Where exports are written on their way to the browser (nameless files, gone when closed)."""

    def _temp(self) -> BinaryIO:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=self.export_dir)

    def export_file(self, camera_id: str, since: float, until: float) -> tuple[Export, BinaryIO]:
        """:meth:`export` written to a nameless file on disk (rewound; the caller closes it)."""
        with self.export(camera_id, since, until) as plan:
            out = self._temp()
            try:
                plan.write(out)
                out.seek(0)
            except BaseException:
                out.close()
                raise
        return plan, out

    def export_zip(self, files: list[tuple[str, str]], since: float, until: float,
                   manifest: dict[str, Any]) -> tuple[list[dict[str, Any]], BinaryIO]:
        """Several cameras' exports of ``[since, until]`` in one ZIP on disk (stored, not compressed: the video is
        already), one ``<name>`` per ``(camera id, name)`` in ``files`` with something recorded, and
        ``manifest.json`` (``manifest`` plus what each camera gave). :class:`NoRecording` when no camera has
        anything there. Returns (per camera: id, file, start/end, seconds, frames, bytes — or ``missing``), the
        file rewound."""
        self.check_export(since, until)
        out = self._temp()
        listed: list[dict[str, Any]] = []
        try:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for camera_id, name in files:
                    try:
                        plan = self.export(camera_id, since, until)
                    except NoRecording:
                        listed.append({"camera_id": camera_id, "missing": "nothing recorded in the range"})
                        continue
                    with plan, zf.open(name, "w", force_zip64=True) as entry:
                        plan.write(entry)
                    listed.append({"camera_id": camera_id, "file": name, "start_at": plan.start_at,
                                   "end_at": plan.end_at, "seconds": round(plan.seconds, 3), "frames": plan.frames,
                                   "bytes": plan.size, "cut_at_new_session": plan.cut_at_new_session})
                if not any("file" in c for c in listed):
                    raise NoRecording(f"nothing recorded at {', '.join(c for c, _ in files)} between "
                                      f"{since:.3f} and {until:.3f}")
                zf.writestr("manifest.json", json.dumps({**manifest, "since": since, "until": until,
                                                         "cameras": listed}, ensure_ascii=False, indent=2))
            out.seek(0)
        except BaseException:
            out.close()
            raise
        return listed, out

    def timeline(self, camera_id: str, since: float, until: float) -> dict[str, Any]:
        """Spans, gaps and alarm markers of ``camera_id`` between ``since`` and ``until`` (at most now)."""
        now = self.clock()
        until = min(until, now)
        if until <= since:
            raise RangeError("until", "must be after since (and since before now)")
        if until - since > MAX_TIMELINE_S:
            raise RangeError("since", f"the range may span at most {MAX_TIMELINE_S / 86400:g} days")
        rows = self.index.segments(camera_id, since, until)
        spans, gaps = spans_and_gaps(rows, since, until, now=now)
        return {"camera_id": camera_id, "since": since, "until": until, "spans": spans, "gaps": gaps,
                "markers": self.index.markers(camera_id, since, until), "segments": len(rows),
                "bytes": sum(r.bytes for r in rows), "recorded_s": round(sum(b - a for a, b in spans), 3)}

    def cursor(self, camera_id: str, at: float, speed: int = 1, *,
               transcode: bool = False) -> PlaybackCursor | TranscodedCursor:
        """A cursor from ``at``; ``transcode``: H.265 reaches the browser as H.264 (:class:`TranscodedCursor`)."""
        cursor = PlaybackCursor(self.index, camera_id, at, speed)
        return TranscodedCursor(cursor, self.transcode_slots) if transcode else cursor

    def check_export(self, since: float, until: float) -> None:
        """:class:`RangeError` naming the field when ``[since, until]`` cannot be exported."""
        if until <= since:
            raise RangeError("until", "must be after since")
        if until - since > self.max_export_s:
            raise RangeError("until", f"an export may span at most {self.max_export_s:g} s "
                                      f"(asked {until - since:.0f} s)")
        if since > self.clock():
            raise RangeError("since", "is in the future")

    def export(self, camera_id: str, since: float, until: float) -> Export:
        """Plan one MP4 of ``[since, until]`` (see the module docstring; :meth:`Export.write` writes it, ``close``
        it after); :class:`NoRecording` if nothing is there. Reads each segment once, one at a time."""
        self.check_export(since, until)
        rows = self.index.segments(camera_id, since, until)
        infos: list[fmp4.SampleInfo] = []
        parts: list[_Part] = []
        facts: InitFacts | None = None
        timescale = 90000
        first_at = last_at = 0.0
        cut = False
        try:
            for row in rows:
                try:
                    f = open(self.index.root / row.path, "rb")  # noqa: SIM115 (held until the export is written)
                except OSError:
                    continue  # deleted meanwhile: a gap in the export
                try:
                    seg = parse_segment(f.read())
                except (OSError, SegmentError):
                    f.close()
                    continue
                loaded = _Loaded(row, b"", seg, seg.frames[0].dts if seg.frames else 0)
                if not seg.frames:
                    f.close()
                    continue
                this = init_facts(seg.init)
                if facts is None:
                    facts, timescale = this, seg.timescale
                elif (this.codec, this.width, this.height, this.config) != (facts.codec, facts.width, facts.height,
                                                                            facts.config) or seg.timescale != timescale:
                    f.close()
                    cut = True
                    break
                frames = seg.frames
                start = 0
                if not infos:
                    for i, fr in enumerate(frames):
                        if fr.keyframe and _wall(loaded, fr) <= since:
                            start = i
                spans: list[tuple[int, int]] = []
                for fr in frames[start:]:
                    at = _wall(loaded, fr)
                    if at >= until:
                        break
                    if not infos and not fr.keyframe:
                        continue
                    if not infos:
                        first_at = at
                    infos.append(fmp4.SampleInfo(fr.size, fr.duration, fr.keyframe, fr.composition_offset))
                    spans.append((fr.offset, fr.size))
                    last_at = at + fr.duration / seg.timescale
                if spans:
                    parts.append(_Part(f, spans))
                else:
                    f.close()
            if not infos or facts is None:
                raise NoRecording(f"camera {camera_id}: nothing recorded between {since:.3f} and {until:.3f}")
            head = fmp4.mp4_head(codec=facts.codec, width=facts.width, height=facts.height, config=facts.config,
                                 samples=infos, timescale=timescale)
        except BaseException:
            for part in parts:
                part.file.close()
            raise
        seconds = sum(s.duration for s in infos) / timescale
        return Export(head, parts, start_at=first_at, end_at=last_at, seconds=seconds, frames=len(infos),
                      segments=len(parts), cut_at_new_session=cut)
