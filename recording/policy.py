"""What to delete: the retention planner — a pure function of the segments, the cases, the time and the rules.

Rules, in order:

1. A segment of a camera that overlaps a case's window there (``hold_pre_s`` before the case was reported to
   ``hold_post_s`` after) is **held** while the case is open and for ``keep_after_close_s`` after it closed —
   never deleted, whatever the retention, the quota or a full disk say (evidence under a live case).
2. **Retention**: a segment that ended more than its camera's ``retention_s`` ago is deleted.
3. **Quota**: while the store's total bytes exceed ``quota_bytes``, the oldest segments (by start, across every
   camera) are deleted.
4. **Disk full**: with ``free_bytes`` asked for, the oldest segments are deleted until that much is freed.

Segments still being written (``complete`` false) are never candidates. No clocks, no I/O: tested with tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SegmentFacts:
    """What the planner needs of one indexed segment."""

    path: str
    camera_id: str
    start_at: float
    end_at: float
    bytes: int
    complete: bool = True


@dataclass(frozen=True, slots=True)
class CaseHold:
    """A case at a camera: reported at ``reported_at``; ``closed_at`` None while it is open."""

    camera_id: str
    reported_at: float
    closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """Retention per camera (``retention_s`` by camera id, else ``default_retention_s``), the store's quota
    (None: none), and the case hold's window and afterlife."""

    default_retention_s: float
    retention_s: Mapping[str, float] = field(default_factory=dict)
    quota_bytes: int | None = None
    hold_pre_s: float = 300.0
    hold_post_s: float = 300.0
    keep_after_close_s: float = 30 * 86400.0


@dataclass
class Plan:
    """The planner's answer: ``delete`` (paths, oldest first) and why, what a case kept, what could not be met."""

    delete: list[str] = field(default_factory=list)
    retention: int = 0
    quota: int = 0
    disk_full: int = 0
    held: int = 0
    """Segments a case kept that retention, quota or a full disk would have deleted."""
    freed_bytes: int = 0
    over_quota_bytes: int = 0
    """Bytes still over the quota after every deletable segment went (the rest is held by cases)."""
    short_bytes: int = 0
    """Bytes of ``free_bytes`` that could not be freed (the rest is held or being written)."""


def _held(seg: SegmentFacts, holds: Iterable[CaseHold], now: float, rules: RetentionRules) -> bool:
    for h in holds:
        if h.closed_at is not None and now > h.closed_at + rules.keep_after_close_s:
            continue
        if seg.end_at >= h.reported_at - rules.hold_pre_s and seg.start_at <= h.reported_at + rules.hold_post_s:
            return True
    return False


def plan_deletions(segments: Iterable[SegmentFacts], holds: Iterable[CaseHold], now: float, rules: RetentionRules,
                   *, free_bytes: int = 0, total_bytes: int | None = None) -> Plan:
    """Which segments to delete now (see the module docstring). ``segments`` may be only the candidates (the
    oldest ones and those past retention) when ``total_bytes`` gives the whole store's size for the quota."""
    by_camera: dict[str, list[CaseHold]] = {}
    for h in holds:
        by_camera.setdefault(h.camera_id, []).append(h)
    ordered = sorted(segments, key=lambda s: (s.start_at, s.path))
    total = sum(s.bytes for s in ordered) if total_bytes is None else total_bytes
    plan = Plan()
    gone: set[str] = set()
    kept: set[str] = set()

    def held(seg: SegmentFacts) -> bool:
        return _held(seg, by_camera.get(seg.camera_id, ()), now, rules)

    def take(seg: SegmentFacts) -> None:
        nonlocal total
        gone.add(seg.path)
        plan.delete.append(seg.path)
        plan.freed_bytes += seg.bytes
        total -= seg.bytes

    for seg in ordered:
        if not seg.complete:
            continue
        keep_s = rules.retention_s.get(seg.camera_id, rules.default_retention_s)
        if seg.end_at < now - keep_s:
            if held(seg):
                kept.add(seg.path)
            else:
                take(seg)
                plan.retention += 1
    def take_oldest(enough: Callable[[], bool]) -> int:
        """Delete the oldest complete, unheld segments until ``enough()``; how many were taken."""
        taken = 0
        for seg in ordered:
            if enough():
                break
            if seg.path in gone or not seg.complete:
                continue
            if held(seg):
                kept.add(seg.path)
                continue
            take(seg)
            taken += 1
        return taken

    quota = rules.quota_bytes
    if quota is not None and total > quota:
        plan.quota += take_oldest(lambda: total <= quota)
        plan.over_quota_bytes = max(0, total - quota)
    if free_bytes > 0:
        plan.disk_full += take_oldest(lambda: plan.freed_bytes >= free_bytes)
        plan.short_bytes = max(0, free_bytes - plan.freed_bytes)
    plan.held = len(kept)
    return plan
