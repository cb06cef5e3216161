"""The recording index: every segment file's camera, time span, size and codec in the case store's database.

Table ``recording_segments`` (a case-store migration; SQLite and PostgreSQL), written through the store's own
transactions (``CaseStore.transaction``: the same write lock as cases). The writer thread adds a row when a
segment opens (``complete`` 0, end = start) and completes it when it closes. A timeline query for one camera and a
time range is one indexed range scan (``camera_id, start_at``); :func:`spans_and_gaps` merges touching segments
into spans and returns the holes between them as gaps.

:meth:`RecordingIndex.repair` runs at start: a segment file on disk that the index does not know, or whose row
was never completed (``kill -9``), is read (:func:`recording.segment.parse_segment`), a truncated last fragment
cut off, and its row written with the time it really covers; a file with no whole frame is removed; a row whose
file is gone is deleted. Case holds and alarm markers are read from the cases' own tables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recording.policy import CaseHold, SegmentFacts
from recording.recorder import SegmentIndexSink, SegmentRow
from recording.segment import SegmentError, parse_segment

log = logging.getLogger("citywall.recording.index")

MERGE_TOLERANCE_S = 1.0
"""Segments closer than this are one span on the timeline (a roll leaves no visible hole)."""


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What the start-up repair did."""

    reindexed: int = 0
    """Segment files (re)indexed from their bytes (unknown to the index, or left incomplete by a crash)."""
    truncated: int = 0
    """Files whose cut-short last fragment was removed."""
    removed_files: int = 0
    """Files without one whole frame, deleted."""
    removed_rows: int = 0
    """Index rows whose file was gone, deleted."""


def _row(r: Any) -> SegmentRow:
    return SegmentRow(str(r[0]), str(r[1]), float(r[2]), float(r[3]), int(r[4]), str(r[5]), bool(r[6]))


_COLS = "camera_id, path, start_at, end_at, bytes, codec, complete"


class RecordingIndex(SegmentIndexSink):
    """Segment rows in ``store`` (a ``cases.store.CaseStore``); files under ``root``. Thread-safe (the store is)."""

    def __init__(self, store: Any, root: str | Path) -> None:
        self.store = store
        self.root = Path(root)

    # -- the writer's calls ------------------------------------------------------------------------------------
    def opened(self, row: SegmentRow) -> None:
        with self.store.transaction() as tx:
            tx.execute("INSERT INTO recording_segments (path, camera_id, start_at, end_at, bytes, codec, complete) "
                       "VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT(path) DO NOTHING",
                       (row.path, row.camera_id, row.start_at, row.start_at, 0, row.codec))

    def closed(self, row: SegmentRow) -> None:
        with self.store.transaction() as tx:
            if row.bytes == 0:
                tx.execute("DELETE FROM recording_segments WHERE path = ?", (row.path,))
                return
            tx.execute("INSERT INTO recording_segments (path, camera_id, start_at, end_at, bytes, codec, complete) "
                       "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT(path) DO UPDATE SET end_at = excluded.end_at, "
                       "bytes = excluded.bytes, complete = 1",
                       (row.path, row.camera_id, row.start_at, row.end_at, row.bytes, row.codec))

    # -- queries -----------------------------------------------------------------------------------------------
    def segments(self, camera_id: str, since: float, until: float) -> list[SegmentRow]:
        """The camera's segments overlapping ``[since, until]``, oldest first (incomplete ones included)."""
        with self.store.transaction() as tx:
            # start_at >= since - 1 day bounds the scan (no segment is that long) and keeps it on the index.
            rows = tx.execute(f"SELECT {_COLS} FROM recording_segments WHERE camera_id = ? AND start_at <= ? "
                              "AND start_at >= ? AND (end_at >= ? OR complete = 0) ORDER BY start_at",
                              (camera_id, until, since - 86400.0, since)).fetchall()
        return [_row(r) for r in rows]

    def following(self, camera_id: str, after: float, limit: int = 8) -> list[SegmentRow]:
        """The camera's next segments starting after ``after``, oldest first (playback's read-ahead)."""
        with self.store.transaction() as tx:
            rows = tx.execute(f"SELECT {_COLS} FROM recording_segments WHERE camera_id = ? AND start_at > ? "
                              "ORDER BY start_at LIMIT ?", (camera_id, after, limit)).fetchall()
        return [_row(r) for r in rows]

    def all_facts(self) -> list[SegmentFacts]:
        """Every segment (tests and small stores; the janitor reads :meth:`candidates`)."""
        with self.store.transaction() as tx:
            rows = tx.execute("SELECT path, camera_id, start_at, end_at, bytes, complete FROM recording_segments"
                              ).fetchall()
        return [SegmentFacts(str(r[0]), str(r[1]), float(r[2]), float(r[3]), int(r[4]), bool(r[5])) for r in rows]

    def candidates(self, ended_before: float, oldest: int) -> tuple[list[SegmentFacts], int, int]:
        """What the planner needs without reading the whole index: the segments that ended before
        ``ended_before`` (past the shortest retention), the ``oldest`` segments by start, the store's total bytes
        and its largest segment."""
        cols = "path, camera_id, start_at, end_at, bytes, complete"
        with self.store.transaction() as tx:
            old = tx.execute(f"SELECT {cols} FROM recording_segments WHERE end_at < ? AND complete = 1",
                             (ended_before,)).fetchall()
            first = tx.execute(f"SELECT {cols} FROM recording_segments ORDER BY start_at LIMIT ?",
                               (oldest,)).fetchall()
            total, largest = tx.execute("SELECT COALESCE(SUM(bytes), 0), COALESCE(MAX(bytes), 0) "
                                        "FROM recording_segments").fetchone()
        rows = {str(r[0]): r for r in (*old, *first)}
        facts = [SegmentFacts(str(r[0]), str(r[1]), float(r[2]), float(r[3]), int(r[4]), bool(r[5]))
                 for r in rows.values()]
        return facts, int(total), int(largest)

    def total_bytes(self) -> int:
        with self.store.transaction() as tx:
            return int(tx.execute("SELECT COALESCE(SUM(bytes), 0) FROM recording_segments").fetchone()[0])

    def delete(self, paths: list[str]) -> int:
        """Remove the files and their rows; how many files were removed."""
        removed = 0
        for rel in paths:
            try:
                (self.root / rel).unlink()
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("recording: cannot delete %s: %s", rel, exc)
                continue
        with self.store.transaction() as tx:
            for rel in paths:
                tx.execute("DELETE FROM recording_segments WHERE path = ?", (rel,))
        return removed

    def case_holds(self) -> list[CaseHold]:
        """Every case at a camera (open ones, and closed ones: the planner decides whether they still hold)."""
        with self.store.transaction() as tx:
            rows = tx.execute("SELECT camera_id, reported_at, closed_at, is_open FROM cases").fetchall()
        return [CaseHold(str(r[0]), float(r[1]), None if r[3] or r[2] is None else float(r[2])) for r in rows]

    def markers(self, camera_id: str, since: float, until: float) -> list[dict[str, Any]]:
        """Alarm markers for the timeline: cases filed at the camera and alarms held for review, in the range."""
        with self.store.transaction() as tx:
            cases = tx.execute("SELECT reported_at, case_no, kind, state FROM cases WHERE camera_id = ? AND "
                               "reported_at >= ? AND reported_at <= ? ORDER BY reported_at LIMIT 500",
                               (camera_id, since, until)).fetchall()
            held = tx.execute("SELECT at, alarm_id, event FROM held_alarms WHERE camera_id = ? AND at >= ? AND "
                              "at <= ? ORDER BY at LIMIT 500", (camera_id, since, until)).fetchall()
        out = [{"at": float(r[0]), "kind": "case", "case_no": r[1], "category": r[2], "state": r[3]} for r in cases]
        out += [{"at": float(r[0]), "kind": "alarm", "alarm_id": r[1], "event": r[2]} for r in held]
        return sorted(out, key=lambda m: m["at"])

    # -- start-up repair ---------------------------------------------------------------------------------------
    def repair(self, cameras: Collection[str] | None = None) -> RepairReport:
        """Make the index and the files agree (see the module docstring). Run before recording starts; with
        ``cameras``, only theirs — what a cluster worker does as it takes cameras over (no other process writes
        them then, while the other workers' segments being written are left alone)."""
        with self.store.transaction() as tx:
            known = {str(r[0]): bool(r[1]) for r in
                     tx.execute("SELECT path, complete, camera_id FROM recording_segments").fetchall()
                     if cameras is None or r[2] in cameras}
        on_disk: set[str] = set()
        for top in [self.root] if cameras is None else [self.root / c for c in cameras]:
            if not top.is_dir():
                continue
            for dirpath, _, files in os.walk(top):
                for name in files:
                    if name.endswith(".mp4"):
                        on_disk.add(Path(dirpath, name).relative_to(self.root).as_posix())
        reindexed = truncated = removed_files = 0
        rows: list[SegmentRow] = []
        drop: list[str] = [p for p in known if p not in on_disk]
        for rel in sorted(on_disk):
            if known.get(rel):
                continue
            row, cut = self._read_back(rel)
            if row is None:
                removed_files += 1
                drop.append(rel)
                continue
            truncated += cut
            reindexed += 1
            rows.append(row)
        with self.store.transaction() as tx:
            for rel in drop:
                tx.execute("DELETE FROM recording_segments WHERE path = ?", (rel,))
            for row in rows:
                tx.execute("INSERT INTO recording_segments (path, camera_id, start_at, end_at, bytes, codec, "
                           "complete) VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT(path) DO UPDATE SET "
                           "end_at = excluded.end_at, bytes = excluded.bytes, codec = excluded.codec, complete = 1",
                           (row.path, row.camera_id, row.start_at, row.end_at, row.bytes, row.codec))
        report = RepairReport(reindexed, truncated, removed_files, len(drop) - removed_files)
        if reindexed or removed_files or report.removed_rows:
            log.warning("recording index repaired: %d segment(s) re-indexed (%d cut short), %d empty file(s) "
                        "removed, %d row(s) without a file deleted", reindexed, truncated, removed_files,
                        report.removed_rows)
        return report

    def _read_back(self, rel: str) -> tuple[SegmentRow | None, int]:
        """(the row for the file at ``rel``, 1 if it was truncated); (None, 0) after removing a useless file."""
        path = self.root / rel
        parts = Path(rel).parts
        try:
            start_at = int(Path(rel).stem) / 1000.0
            camera_id = parts[0]
            if len(parts) != 3:
                raise ValueError(rel)
        except ValueError:
            log.warning("recording: %s is not named <camera>/<day>/<start ms>.mp4; left alone", rel)
            return None, 0
        try:
            data = path.read_bytes()
            seg = parse_segment(data)
        except (OSError, SegmentError) as exc:
            log.warning("recording: %s unreadable (%s); removed", rel, exc)
            path.unlink(missing_ok=True)
            return None, 0
        if not seg.frames:
            path.unlink(missing_ok=True)
            return None, 0
        cut = 0
        if seg.valid_bytes < len(data):
            with open(path, "r+b") as f:
                f.truncate(seg.valid_bytes)
            cut = 1
        return SegmentRow(camera_id, rel, start_at, start_at + seg.duration_s, seg.valid_bytes, seg.codec), cut


def spans_and_gaps(rows: list[SegmentRow], since: float, until: float, *, now: float | None = None,
                   tolerance: float = MERGE_TOLERANCE_S) -> tuple[list[list[float]], list[list[float]]]:
    """Recorded spans (touching segments merged) and the gaps between ``since`` and ``until``, each ``[a, b]``
    clipped to the range. A segment still being written reaches ``now`` (when given)."""
    spans: list[list[float]] = []
    for r in sorted(rows, key=lambda r: r.start_at):
        end = r.end_at if r.complete or now is None else max(r.end_at, min(now, r.start_at + 120.0))
        a, b = max(r.start_at, since), min(end, until)
        if b <= a:
            continue
        if spans and a - spans[-1][1] <= tolerance:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    gaps: list[list[float]] = []
    cursor = since
    for a, b in spans:
        if a - cursor > tolerance:
            gaps.append([cursor, a])
        cursor = max(cursor, b)
    if until - cursor > tolerance:
        gaps.append([cursor, until])
    return spans, gaps
