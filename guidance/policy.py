"""Broadcast policy: when a speaker may speak. Pure — time comes in as ``now`` (unix seconds), no I/O, no clock.

Rules, in order:
1. A site (speaker) plays one thing at a time. A request of higher priority pre-empts what is playing (a leader's
   manual broadcast cuts an automatic warning); equal or lower priority is refused as "busy".
2. Quiet hours (site-local time, e.g. 22:00-07:00) refuse automatic and scheduled broadcasts; manual ones pass.
3. Automatic broadcasts are limited per site: at most ``max_per_hour`` in any sliding hour, and the same text
   not again within ``min_repeat_interval_s``. Manual broadcasts are not limited (a person decided) but count.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from zoneinfo import ZoneInfo

HOUR_S = 3600.0


class Priority(enum.IntEnum):
    """Who asked; a higher value pre-empts a lower one that is still playing."""

    SCHEDULED = 10  # policy announcements on a timetable
    AUTOMATIC = 20  # alarm-triggered warning at the camera site
    MANUAL = 30  # a leader/operator speaking or choosing a clip in the hall


@dataclass(frozen=True)
class BroadcastRequest:
    """Something wants ``site_id`` to play ``text`` (a clip of ``duration_s``, ``repeat`` times)."""

    site_id: str
    text: str
    duration_s: float
    priority: Priority = Priority.AUTOMATIC
    repeat: int = 1
    alarm_id: str | None = None
    requested_by: str = "system"

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")


@dataclass(frozen=True)
class Broadcast:
    """Permission to play: from ``start`` until ``end``; ``preempted`` is the request it cut off, if any."""

    request: BroadcastRequest
    start: float
    end: float
    preempted: BroadcastRequest | None = None


@dataclass(frozen=True)
class Refusal:
    """Why not: ``reason`` is a stable code ("busy", "quiet_hours", "rate_limited", "repeat_too_soon")."""

    request: BroadcastRequest
    reason: str
    detail: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """Policy knobs (from config ``guidance.policy``). Quiet hours may wrap midnight; equal times = none."""

    quiet_start: dtime = dtime(22, 0)
    quiet_end: dtime = dtime(7, 0)
    timezone: str = "Asia/Shanghai"
    max_per_hour: int = 6
    min_repeat_interval_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_per_hour < 1:
            raise ValueError(f"max_per_hour must be >= 1, got {self.max_per_hour}")
        if self.min_repeat_interval_s < 0:
            raise ValueError(f"min_repeat_interval_s must be >= 0, got {self.min_repeat_interval_s}")
        ZoneInfo(self.timezone)  # raises for an unknown zone name


@dataclass
class _Site:
    playing: Broadcast | None = None
    history: deque[tuple[float, str, Priority]] = field(default_factory=deque)  # (start, text, priority)


class BroadcastPolicy:
    """Decides broadcasts per site and remembers what it allowed (state is in memory, per process)."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self._tz = ZoneInfo(self.config.timezone)
        self._sites: dict[str, _Site] = {}

    def in_quiet_hours(self, now: float) -> bool:
        """Whether ``now`` falls in the quiet hours, in the configured site-local time."""
        start, end = self.config.quiet_start, self.config.quiet_end
        if start == end:
            return False
        local = datetime.fromtimestamp(now, self._tz).time()
        if start < end:
            return start <= local < end
        return local >= start or local < end

    def decide(self, request: BroadcastRequest, now: float) -> Broadcast | Refusal:
        """Allow (and record) the broadcast, or say why not."""
        site = self._sites.setdefault(request.site_id, _Site())
        while site.history and site.history[0][0] <= now - HOUR_S:
            site.history.popleft()
        playing = site.playing if site.playing is not None and site.playing.end > now else None

        if playing is not None and request.priority <= playing.request.priority:
            return Refusal(request, "busy",
                           f"site {request.site_id!r} is playing a priority {playing.request.priority.name} "
                           f"broadcast until {playing.end:.0f}", playing.end - now)
        if request.priority < Priority.MANUAL:
            if self.in_quiet_hours(now):
                return Refusal(request, "quiet_hours",
                               f"quiet hours {self.config.quiet_start:%H:%M}-{self.config.quiet_end:%H:%M} "
                               f"{self.config.timezone}")
            automatic = [t for t in site.history if t[2] < Priority.MANUAL]
            if len(automatic) >= self.config.max_per_hour:
                return Refusal(request, "rate_limited",
                               f"site {request.site_id!r} already had {len(automatic)} automatic broadcasts in the "
                               f"last hour (max_per_hour={self.config.max_per_hour})",
                               automatic[0][0] + HOUR_S - now)
            same = [t for t in automatic if t[1] == request.text]
            if same and now - same[-1][0] < self.config.min_repeat_interval_s:
                return Refusal(request, "repeat_too_soon",
                               f"same message played at site {request.site_id!r} {now - same[-1][0]:.0f} s ago "
                               f"(min_repeat_interval_s={self.config.min_repeat_interval_s:.0f})",
                               same[-1][0] + self.config.min_repeat_interval_s - now)

        broadcast = Broadcast(request, now, now + request.duration_s * request.repeat,
                              playing.request if playing is not None else None)
        site.playing = broadcast
        site.history.append((now, request.text, request.priority))
        return broadcast

    def finished(self, site_id: str, now: float, *, played: bool = True) -> None:
        """The speaker ended early, or (``played=False``) never played: the site is free from ``now``.

        A broadcast that never played is also taken out of the repeat/hourly counts, so a speaker that was offline
        is not then kept quiet by limits it never used.
        """
        site = self._sites.get(site_id)
        if site is None or site.playing is None:
            return
        p = site.playing
        if p.end > now:
            site.playing = Broadcast(p.request, p.start, now, p.preempted)
        if not played:
            entry = (p.start, p.request.text, p.request.priority)
            if entry in site.history:
                site.history.remove(entry)
