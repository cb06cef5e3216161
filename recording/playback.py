"""Playback and export of recordings: the timeline, a cursor that replays a camera from any time, an MP4 export.

- :meth:`RecordingLibrary.timeline` — a camera's recorded spans, gaps and alarm markers in a time range.
- :class:`PlaybackCursor` — from time T at speed 1/2/4/8: the segment's own init segment, then one
  ``moof+mdat`` per frame, *retimed* so the browser plays at rate 1 whatever the speed (durations divided by
  the speed; at 4× and above only keyframes, each lasting until the next one divided by the speed). The live
  tile's MediaSource code therefore plays it unchanged. Gaps between segments are skipped; a new camera session
  with other parameters sends a new init. It follows a segment still being written, so playback runs into the
  present. Reads files synchronously: callers run it in a worker thread.
- :meth:`RecordingLibrary.export` — one plain MP4 (``video_ingest.fmp4.mp4_file``, ``moov`` first) of a range,
  remuxed from the segments, starting at the keyframe at or before ``since``; gaps are closed up (the file's
  timeline is the recorded time only); it ends where the camera's parameters change (a new init).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recording.index import RecordingIndex, spans_and_gaps
from recording.recorder import SegmentRow
from recording.segment import ParsedSegment, SegmentError, SegmentFrame, parse_segment
from video_ingest import fmp4, h26x
from video_ingest.mp4 import find_box

SPEEDS = (1, 2, 4, 8)
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
                              due_s=self._out / timescale, keyframe=f.keyframe))
        self._out += duration
        self.sent_frames += 1
        return items


@dataclass(frozen=True, slots=True)
class Export:
    """An exported MP4: its bytes, the recorded time it starts and ends at, its media seconds, frames, and
    whether it stopped early because the camera's parameters changed."""

    data: bytes
    start_at: float
    end_at: float
    seconds: float
    frames: int
    segments: int
    cut_at_new_session: bool


class RecordingLibrary:
    """What the wall server asks of the recordings (timeline, playback, export); file reads are synchronous."""

    def __init__(self, index: RecordingIndex, *, max_export_s: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.max_export_s = max_export_s
        self.clock = clock

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

    def cursor(self, camera_id: str, at: float, speed: int = 1) -> PlaybackCursor:
        return PlaybackCursor(self.index, camera_id, at, speed)

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
        """One MP4 of ``[since, until]`` (see the module docstring); :class:`NoRecording` if nothing is there."""
        self.check_export(since, until)
        rows = self.index.segments(camera_id, since, until)
        samples: list[fmp4.Sample] = []
        facts: InitFacts | None = None
        timescale = 90000
        first_at = last_at = 0.0
        cut = False
        used = 0
        for row in rows:
            try:
                loaded = _load(self.index.root, row)
            except (OSError, SegmentError):
                continue  # deleted or unreadable meanwhile: a gap in the export
            seg = loaded.seg
            if not seg.frames:
                continue
            this = init_facts(seg.init)
            if facts is None:
                facts, timescale = this, seg.timescale
            elif (this.codec, this.width, this.height, this.config) != (facts.codec, facts.width, facts.height,
                                                                        facts.config) or seg.timescale != timescale:
                cut = True
                break
            frames = seg.frames
            start = 0
            if not samples:
                for i, f in enumerate(frames):
                    if f.keyframe and _wall(loaded, f) <= since:
                        start = i
            taken = 0
            for f in frames[start:]:
                at = _wall(loaded, f)
                if at >= until:
                    break
                if not samples and not f.keyframe:
                    continue
                if not samples:
                    first_at = at
                samples.append(fmp4.Sample(loaded.seg.sample(loaded.data, f), f.duration, f.keyframe,
                                           f.composition_offset))
                last_at = at + f.duration / seg.timescale
                taken += 1
            used += bool(taken)
        if not samples or facts is None:
            raise NoRecording(f"camera {camera_id}: nothing recorded between {since:.3f} and {until:.3f}")
        data = fmp4.mp4_file(codec=facts.codec, width=facts.width, height=facts.height, config=facts.config,
                             samples=samples, timescale=timescale)
        seconds = sum(s.duration for s in samples) / timescale
        return Export(data, first_at, last_at, seconds, len(samples), used, cut)
