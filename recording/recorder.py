"""Recorders: every camera's access units into segment files, with the file writes off the event loop.

:class:`CameraRecorder` is a ``video_ingest.fanout.PacketSink`` (subscribed through
``IngestService.subscribe_packets``: the camera's one connection, no re-encode). On the event loop it decides
where segments begin and end and muxes each frame (:class:`recording.segment.SegmentMuxer`, microseconds), then
hands the bytes to the one :class:`SegmentWriter` thread through a bounded queue. A segment starts at a keyframe
and rolls at the first keyframe after ``segment_s``; a new session, the end of a stream, a jump in the camera's
timestamps, a unit dropped because the queue was full, or a full disk ends it — each such end is a gap in the
index. Mode ``alarms`` keeps a ring of the last ``pre_s`` seconds (like the evidence clip buffer) and records
only from ``pre_s`` before an alarm to ``post_s`` after it; ``off`` records nothing.

The writer appends fragments to the open file of each camera (never rewriting one) and tells the index when a
segment opens and closes. A write that fails (ENOSPC: disk full) truncates the file back to its last whole
fragment, closes the segment, counts it, logs one clear error and sets :attr:`SegmentWriter.full`: recorders
then drop everything (counted) until the retention janitor has freed space and called :meth:`SegmentWriter.resume`.
Errors are logged once per fault episode (a camera's failing writes until one succeeds; for a full disk, until
space is freed): the first failure at ERROR, the end with the count of writes that failed during it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from recording.segment import SegmentError, SegmentMuxer
from video_ingest.fanout import AccessUnit, StreamInfo

log = logging.getLogger("citywall.recording")

Mode = Literal["continuous", "alarms", "off"]
CLOCK_JUMP_S = 5.0
"""A camera timestamp further than this from the previous frame's ends the segment (camera clock reset)."""
BATCH_FRAGMENTS = 32
"""Fragments handed to the writer together: at each keyframe (a whole GOP) or once this many are waiting."""
RESYNC_S = 2.0
"""A rolled segment starts where the previous one ended unless that has drifted this far from the arrival time."""


@dataclass(frozen=True, slots=True)
class CameraPolicy:
    """How one camera is recorded (from the ``recording`` settings and the camera's override)."""

    mode: Mode = "continuous"
    segment_s: float = 10.0
    pre_s: float = 10.0
    post_s: float = 30.0


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One segment as the index keeps it; ``path`` is relative to the recording root."""

    camera_id: str
    path: str
    start_at: float
    end_at: float
    bytes: int
    codec: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class _Open:
    camera_id: str
    path: str
    start_at: float
    codec: str
    init: bytes


@dataclass(frozen=True, slots=True)
class _Append:
    camera_id: str
    parts: tuple[bytes, ...]
    """Fragments (moof+mdat), in order: a GOP's worth at most (one hand-off and one write for all of them)."""
    end_at: float
    """Wall time of the end of the last fragment's frame."""


@dataclass(frozen=True, slots=True)
class _Close:
    camera_id: str
    end_at: float
    reason: str


_Item = _Open | _Append | _Close | None


def segment_path(camera_id: str, start_at: float) -> str:
    """``<camera>/<YYYY-MM-DD>/<start ms>.mp4`` (UTC date; the name is the start in Unix milliseconds)."""
    day = datetime.fromtimestamp(start_at, UTC).strftime("%Y-%m-%d")
    return f"{camera_id}/{day}/{round(start_at * 1000)}.mp4"


class SegmentIndexSink:
    """What the writer tells about segments (``recording.index.RecordingIndex`` implements it)."""

    def opened(self, row: SegmentRow) -> None: ...

    def closed(self, row: SegmentRow) -> None: ...


@dataclass
class _OpenFile:
    row: SegmentRow
    file: Any
    written: int
    end_at: float


class SegmentWriter:
    """The one thread that writes every camera's segment files under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path, index: SegmentIndexSink, *, queue_size: int = 2048,
                 on_full: Callable[[], None] | None = None) -> None:
        if queue_size < 16:
            raise ValueError(f"queue_size must be >= 16, got {queue_size}")
        self.root = Path(root)
        self.index = index
        self.on_full = on_full
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._files: dict[str, _OpenFile] = {}
        self.full = False
        """A write failed for lack of space: recorders drop everything until :meth:`resume`."""
        self.bytes_written = 0
        self.segments_written = 0
        self.disk_full = 0
        """Write failures for lack of space (ENOSPC/EDQUOT): each one stopped writing until space was freed."""
        self.write_errors = 0
        """Other write failures (the segment is closed where it was; the next keyframe starts a new one)."""
        self.index_errors = 0
        self.broken: set[str] = set()
        """Cameras whose open segment the writer had to close after a failed write; the recorder ends it too."""
        self._failing: dict[str, tuple[str, str]] = {}
        self._failed_since: dict[str, tuple[str, str]] = {}
        self._failing_lock = threading.Lock()
        self._episodes: dict[str, int] = {}
        """Camera → writes failed (not for lack of space) since its last successful write; writer thread only."""
        self._full_failures = 0
        """Writes failed for lack of space since the disk became full (logged when recording resumes)."""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
            self._thread.start()

    def offer(self, item: _Open | _Append | _Close) -> bool:
        """Queue ``item`` without blocking; False when the queue is full (the caller counts the drop)."""
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            return False

    def resume(self) -> None:
        """Space was freed: recorders may start new segments again."""
        if self.full:
            log.warning("recording resumes: space was freed (%d writes failed while the disk was full)",
                        self._full_failures)
        self.full = False

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, close every open segment and end the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def drain(self) -> None:
        """Wait until everything queued so far has been handled (the thread must be running)."""
        self._queue.join()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def failing(self) -> dict[str, tuple[str, str]]:
        """Cameras whose last write failed and has not succeeded since, and those that failed since the last call
        even if they write again now (a fault shorter than the caller's period is still seen once): camera →
        (``disk_full`` or ``write_error``, what failed). A full disk is over at the first successful write of any
        camera (the space is shared); a write error at that camera's next successful write."""
        with self._failing_lock:
            out = {**self._failed_since, **self._failing}
            self._failed_since.clear()
            return out

    # -- writer thread ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                for cid in list(self._files):
                    self._close(cid, None, "recording stopped")
                for cid, n in self._episodes.items():
                    log.error("recording: camera %s: still failing when recording stopped (%d failed writes)",
                              cid, n)
                self._episodes.clear()
                return
            try:
                if isinstance(item, _Append):
                    self._append(item)
                elif isinstance(item, _Open):
                    self._open(item)
                else:
                    self._close(item.camera_id, item.end_at, item.reason)
            except Exception:  # a bug here must not end the thread (every camera's recording)
                log.exception("recording writer: %r failed", type(item).__name__)
            finally:
                self._queue.task_done()

    def _open(self, item: _Open) -> None:
        if item.camera_id in self._files:
            self._close(item.camera_id, None, "replaced")
        if self.full:
            return
        path = self.root / item.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "xb")  # noqa: SIM115 (kept open across calls: appended per GOP)
        except OSError as exc:
            self._failed(item.camera_id, exc, f"cannot create {path}")
            return
        row = SegmentRow(item.camera_id, item.path, item.start_at, item.start_at, 0, item.codec, complete=False)
        entry = _OpenFile(row, f, 0, item.start_at)
        self._files[item.camera_id] = entry
        if not self._write(entry, (item.init,), item.start_at):
            return
        try:
            self.index.opened(row)
        except Exception:
            self.index_errors += 1
            log.exception("recording index: segment %s not recorded (the start-up repair will add it)", item.path)

    def _append(self, item: _Append) -> None:
        entry = self._files.get(item.camera_id)
        if entry is not None:
            self._write(entry, item.parts, item.end_at)

    def _write(self, entry: _OpenFile, parts: tuple[bytes, ...], end_at: float) -> bool:
        try:
            entry.file.writelines(parts)
        except OSError as exc:
            self._failed(entry.row.camera_id, exc, f"writing {entry.row.path}")
            return False
        if self._failing:
            with self._failing_lock:
                self._failing.pop(entry.row.camera_id, None)
                for cid in [c for c, (kind, _) in self._failing.items() if kind == "disk_full"]:
                    del self._failing[cid]
        if self._episodes:
            failed = self._episodes.pop(entry.row.camera_id, 0)
            if failed:
                log.warning("recording: camera %s: writing again after %d failed writes", entry.row.camera_id, failed)
        size = sum(len(p) for p in parts)
        entry.written += size
        entry.end_at = end_at
        self.bytes_written += size
        return True

    def _failed(self, camera_id: str, exc: OSError, what: str) -> None:
        entry = self._files.get(camera_id)
        if entry is not None:
            with contextlib.suppress(OSError):  # cut the file back to its last whole fragment: no half box left
                entry.file.flush()
            with contextlib.suppress(OSError):
                entry.file.truncate(entry.written)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        with self._failing_lock:
            self._failing[camera_id] = ("disk_full" if full else "write_error", f"{what}: {exc.strerror or exc}")
            self._failed_since[camera_id] = self._failing[camera_id]
        if full:
            self.disk_full += 1
            if not self.full:
                self._full_failures = 0
                log.error("recording: DISK FULL (%s: %s) — recording stopped on every camera until old "
                          "recordings are deleted by the retention policy", what, exc.strerror)
            self._full_failures += 1
            self.full = True
            if self.on_full is not None:
                self.on_full()
        else:
            self.write_errors += 1
            failed = self._episodes.get(camera_id, 0) + 1
            self._episodes[camera_id] = failed
            if failed == 1:  # once per episode: a lasting fault would otherwise log at every new segment
                log.error("recording: camera %s: %s failed: %s (logged again when it writes or stops)",
                          camera_id, what, exc)
        if entry is not None:
            self.broken.add(camera_id)
            self._close(camera_id, None, f"write failed: {exc.strerror or exc}")

    def _close(self, camera_id: str, end_at: float | None, reason: str) -> None:
        entry = self._files.pop(camera_id, None)
        if entry is None:
            return
        try:
            entry.file.close()
        except OSError as exc:  # the buffered tail could not be written: the repair at start reads what is there
            log.error("recording: closing %s failed: %s", entry.row.path, exc)
        if entry.end_at <= entry.row.start_at:
            # Nothing but (part of) an init segment: no recording, no index row.
            with contextlib.suppress(OSError):
                (self.root / entry.row.path).unlink(missing_ok=True)
            self._index_call(self.index.closed, SegmentRow(camera_id, entry.row.path, entry.row.start_at,
                                                            entry.row.start_at, 0, entry.row.codec))
            return
        # The end of the last fragment written (a close after a failure or a drop ends there, not later).
        end = entry.end_at if end_at is None else min(end_at, entry.end_at)
        row = SegmentRow(camera_id, entry.row.path, entry.row.start_at, end, entry.written, entry.row.codec)
        self.segments_written += 1
        log.debug("recording: %s closed (%s)", row.path, reason)
        self._index_call(self.index.closed, row)

    def _index_call(self, fn: Callable[[SegmentRow], None], row: SegmentRow) -> None:
        try:
            fn(row)
        except Exception:
            self.index_errors += 1
            log.exception("recording index: segment %s not updated (the start-up repair will)", row.path)


class CameraRecorder:
    """One camera's recording decisions on the event loop; a ``PacketSink`` (see the module docstring)."""

    def __init__(self, camera_id: str, writer: SegmentWriter, policy: CameraPolicy) -> None:
        self.camera_id = camera_id
        self.writer = writer
        self.policy = policy
        self._info: StreamInfo | None = None
        self._mux: SegmentMuxer | None = None
        self._seg_start = 0.0
        self._seg_first_pts = 0
        self._last_pts: int | None = None
        self._jump_ticks = int(CLOCK_JUMP_S * 90000)
        self._next_start: float | None = None
        self._ring: deque[tuple[AccessUnit, float]] = deque()
        self._ring_keys: deque[tuple[AccessUnit, float]] = deque()
        """The ring's keyframe entries after its first, oldest first (GOP boundaries: no scan per packet)."""
        self._until = 0.0
        self._pending_close: _Close | None = None
        self._batch: list[bytes] = []
        self._closed = False
        self.segments = 0
        self.gaps = 0
        """Segments ended early by a drop, a full disk or a clock jump (a gap in the timeline)."""
        self.dropped = 0
        """Units not recorded because the writer's queue was full or the disk was full."""

    # -- alarms (any thread) -----------------------------------------------------------------------------------
    def alarm(self, at: float) -> None:
        """Record from ``pre_s`` before ``at`` to ``post_s`` after it (mode ``alarms``; else nothing to do)."""
        if self.policy.mode == "alarms":
            self._until = max(self._until, at + self.policy.post_s)

    # -- PacketSink (event loop) -------------------------------------------------------------------------------
    def stream_started(self, info: StreamInfo) -> None:
        self._end("new session")
        self._info = None if self._closed else info
        self._jump_ticks = int(CLOCK_JUMP_S / info.time_base)
        self._ring.clear()
        self._ring_keys.clear()
        self._last_pts = None

    def stream_ended(self, reason: str) -> None:
        self._end(f"stream ended ({reason})")
        self._info = None
        self._ring.clear()
        self._ring_keys.clear()

    def close(self, reason: str = "recording stopped") -> None:
        """End the segment being written and record nothing more (the camera's connection may go on)."""
        self._end(reason)
        self._closed = True
        self._info = None

    def packet(self, unit: AccessUnit, arrived_at: float) -> None:
        policy = self.policy
        if policy.mode == "off" or self._info is None or self._closed:
            return
        if self._last_pts is not None and abs(unit.pts - self._last_pts) > self._jump_ticks:
            self._end("camera timestamps jumped", gap=True)
        self._last_pts = unit.pts
        if policy.mode == "alarms":
            self._keep(unit, arrived_at)
            if self._mux is None:
                if arrived_at <= self._until:
                    self._start_from_ring()
                return
        if self.camera_id in self.writer.broken:  # the writer closed this segment after a failed write
            self.writer.broken.discard(self.camera_id)
            if self._mux is not None:
                self._end("write failed", gap=True, flush=False)
        if self.writer.full:
            if self._mux is not None:
                self._end("disk full", gap=True)
            self.dropped += 1
            return
        mux = self._mux
        if mux is not None and mux.is_sync(unit):
            elapsed = arrived_at - self._seg_start
            if policy.mode == "alarms" and arrived_at > self._until:
                self._end("alarm recording done")
                return
            if elapsed >= policy.segment_s:
                self._end("rolled")
                mux = None
        if mux is None:
            if not self._start(unit, arrived_at):
                return
            mux = self._mux
            assert mux is not None
        self._feed(unit)

    # -- internals ---------------------------------------------------------------------------------------------
    def _keep(self, unit: AccessUnit, arrived_at: float) -> None:
        ring, keys = self._ring, self._ring_keys
        entry = (unit, arrived_at)
        if not ring:
            if not unit.is_keyframe:
                return
        elif unit.is_keyframe:
            keys.append(entry)
        ring.append(entry)
        horizon = arrived_at - self.policy.pre_s
        while keys and keys[0][1] <= horizon:  # drop whole GOPs while the next keyframe is still pre_s old
            nxt = keys.popleft()
            while ring[0] is not nxt:
                ring.popleft()

    def _start_from_ring(self) -> None:
        units = list(self._ring)
        if not units:
            return
        if self.writer.full:
            self.dropped += 1
            return
        first = units[0]
        if not self._start(first[0], first[1]):
            return
        for unit, _ in units:
            self._feed(unit)

    def _start(self, unit: AccessUnit, arrived_at: float) -> bool:
        info = self._info
        assert info is not None
        if not unit.is_keyframe or not info.extradata:
            return False
        try:
            mux = SegmentMuxer(codec="hevc" if info.codec in ("hevc", "h265") else info.codec, width=info.width,
                               height=info.height, config=info.extradata, time_base=unit.time_base)
        except (SegmentError, ValueError) as exc:
            if self.segments == 0 and self.dropped == 0:
                log.warning("camera %s: not recorded: %s", self.camera_id, exc)
            self.dropped += 1
            self._info = None
            return False
        if not mux.is_sync(unit):
            return False
        start = arrived_at
        if self._next_start is not None and abs(self._next_start - arrived_at) < RESYNC_S:
            start = self._next_start  # continuous with the segment just rolled: no false gap in the timeline
        self._next_start = None
        if self._pending_close is not None:
            if not self.writer.offer(self._pending_close):
                self.dropped += 1
                return False
            self._pending_close = None
        path = segment_path(self.camera_id, start)
        if not self.writer.offer(_Open(self.camera_id, path, start, mux.codec, mux.init)):
            self.dropped += 1
            return False
        self._mux = mux
        self._seg_start = start
        self._seg_first_pts = unit.pts
        self.segments += 1
        return True

    def _feed(self, unit: AccessUnit) -> None:
        mux = self._mux
        assert mux is not None
        fragment = mux.feed(unit)
        if fragment is None:
            return
        self._batch.append(fragment)
        if (unit.is_keyframe or len(self._batch) >= BATCH_FRAGMENTS) and not self._hand_over():
            self._end("writer queue full", gap=True, flush=False)

    def _hand_over(self) -> bool:
        """Give the waiting fragments to the writer; False (counted in ``dropped``) when its queue is full."""
        batch, self._batch = self._batch, []
        mux = self._mux
        if not batch or mux is None:
            return True
        if self.writer.offer(_Append(self.camera_id, tuple(batch), self._seg_start + mux.media_ticks / mux.timescale)):
            return True
        self.dropped += len(batch)
        return False

    def _end(self, reason: str, *, gap: bool = False, flush: bool = True) -> None:
        mux = self._mux
        if mux is None:
            return
        if flush:
            last = mux.flush()
            if last is not None:
                self._batch.append(last)
            if not self._hand_over():
                gap = True
        else:
            self.dropped += len(self._batch)
            self._batch = []
        self._mux = None
        end_at = self._seg_start + mux.media_ticks / mux.timescale
        close = _Close(self.camera_id, end_at, reason)
        if not self.writer.offer(close):
            self._pending_close = close  # sent before the next segment opens
        if gap:
            self.gaps += 1
            self._next_start = None
        else:
            self._next_start = end_at if reason == "rolled" else None

    def stats(self) -> dict[str, Any]:
        return {"segments": self.segments, "gaps": self.gaps, "dropped": self.dropped,
                "recording": self._mux is not None, "mode": self.policy.mode}

