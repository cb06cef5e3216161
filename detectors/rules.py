"""Rules: the dwell state machine that turns "something is in the zone" into raised/cleared alarm events.

Pure: time comes in as an argument, nothing is read or written. One ``DwellRule`` per camera + zone + event:

- an object (a tracked key) counts when its area is at least ``min_area``; it keeps its first-seen time through
  gaps up to ``grace_s`` (occlusions) and always from one sample to the next, however far apart samples are;
- when one has been there ``dwell_s`` and the schedule is open and no cooldown runs → RAISED, once: while
  raised, more objects do not raise more alarms;
- when nothing qualifying has been seen for ``clear_s`` and ``clear_samples`` samples → CLEARED; then ``cooldown_s``
  must pass before the rule may raise again (an object still there after the cooldown raises at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from detectors.schedule import Schedule

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Presence:
    """One qualifying candidate in the zone at this sample."""

    key: int
    """Identity across samples (a tracker id)."""
    box: Box
    area: float
    """Fraction of the frame."""
    confidence: float = 1.0
    since: float | None = None
    """When the object appeared, if the analysis knows (e.g. stationary age); never later than now."""


@dataclass(frozen=True)
class RuleEvent:
    """What the rule decided at ``at``."""

    phase: Literal["raised", "cleared"]
    alarm_id: str
    started_at: float
    at: float
    dwell_s: float
    """Seconds from ``started_at`` to the raise, or to the last sighting for a clear."""
    boxes: list[Box] = field(default_factory=list)
    confidence: float = 0.0
    keys: tuple[int, ...] = ()


@dataclass
class _Seen:
    first: float
    last: float
    box: Box
    confidence: float


class DwellRule:
    """Dwell/clear/cooldown state machine for one camera + zone + event; see the module docstring."""

    def __init__(self, *, dwell_s: float, min_area: float, cooldown_s: float, schedule: Schedule | None = None,
                 grace_s: float = 3.0, clear_s: float = 5.0, clear_samples: int = 2,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        for name, value in (("dwell_s", dwell_s), ("cooldown_s", cooldown_s), ("grace_s", grace_s),
                            ("clear_s", clear_s), ("min_area", min_area)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0; got {value}")
        self.dwell_s = dwell_s
        self.min_area = min_area
        self.cooldown_s = cooldown_s
        self.schedule = schedule or Schedule()
        self.grace_s = grace_s
        self.clear_s = clear_s
        self.clear_samples = clear_samples
        self._new_id = new_id
        self.state: Literal["idle", "raised"] = "idle"
        self.alarm_id: str | None = None
        self.started_at: float | None = None
        self.cooldown_until = float("-inf")
        self._seen: dict[int, _Seen] = {}
        self._last_present = float("-inf")
        self._absent_samples = 0
        self._prev_now: float | None = None
        self._last_boxes: list[Box] = []
        self._confidence = 0.0

    def update(self, now: float, present: Sequence[Presence]) -> RuleEvent | None:
        """Feed one sample's candidates; returns a raised/cleared event or None."""
        qualifying = [p for p in present if p.area >= self.min_area]
        # Seen at the previous sample, or within grace_s: still the same continuous presence.
        recent = now - self.grace_s if self._prev_now is None else min(now - self.grace_s, self._prev_now)
        self._prev_now = now
        for p in qualifying:
            seen = self._seen.get(p.key)
            since = min(now, p.since) if p.since is not None else now
            if seen is None or seen.last < recent:
                self._seen[p.key] = _Seen(since, now, p.box, p.confidence)
            else:
                seen.first = min(seen.first, since)
                seen.last, seen.box, seen.confidence = now, p.box, p.confidence
        for key in [k for k, s in self._seen.items() if s.last < recent]:
            del self._seen[key]
        current = [s for s in self._seen.values() if s.last == now]
        if current:
            self._last_present = now
            self._absent_samples = 0
            self._last_boxes = [s.box for s in current]
            self._confidence = max(s.confidence for s in current)
        else:
            self._absent_samples += 1

        if self.state == "idle":
            if now < self.cooldown_until or not self.schedule.is_open(now):
                return None
            ripe = [s for s in current if now - s.first >= self.dwell_s]
            if not ripe:
                return None
            self.state = "raised"
            self.alarm_id = self._new_id()
            self.started_at = min(s.first for s in ripe)
            keys = tuple(sorted(k for k, s in self._seen.items() if s.last == now))
            return RuleEvent("raised", self.alarm_id, self.started_at, now, now - self.started_at,
                             list(self._last_boxes), self._confidence, keys)

        if now - self._last_present >= self.clear_s and self._absent_samples >= self.clear_samples:
            assert self.alarm_id is not None and self.started_at is not None
            event = RuleEvent("cleared", self.alarm_id, self.started_at, now,
                              max(0.0, self._last_present - self.started_at), list(self._last_boxes),
                              self._confidence)
            self.state = "idle"
            self.alarm_id = None
            self.started_at = None
            self.cooldown_until = now + self.cooldown_s
            self._seen.clear()
            return event
        return None
