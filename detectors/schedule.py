"""Schedules: a zone's active hours as ``"HH:MM-HH:MM"`` spans in local time (a timezone from the settings).

A span whose end is before its start runs over midnight (``"22:00-06:00"``); ``"24:00"`` is the end of the day;
a span whose start equals its end covers the whole day. No spans means always active.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

_SPAN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")


def resolve_timezone(tz: str | tzinfo | None) -> tzinfo | None:
    """``"Asia/Shanghai"`` → ``ZoneInfo``; a ``tzinfo`` passes through; None means the machine's local time."""
    if tz is None or isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError for malformed keys
        raise ValueError(f"unknown timezone {tz!r}: {exc}") from None


class Schedule:
    """When raising is allowed; ``is_open(now)`` takes unix time."""

    def __init__(self, spans: Sequence[str] = (), tz: str | tzinfo | None = None) -> None:
        self.tz = resolve_timezone(tz)
        self.spans: list[tuple[int, int]] = []
        for span in spans:
            m = _SPAN.fullmatch(span)
            if not m:
                raise ValueError(f'schedule span "{span}" is not "HH:MM-HH:MM"')
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if end > 1440:
                raise ValueError(f'schedule span "{span}" ends after 24:00')
            self.spans.append((start, end))

    @property
    def always(self) -> bool:
        """True when there are no spans (always active)."""
        return not self.spans

    def is_open(self, now: float) -> bool:
        """Whether unix time ``now`` falls inside a span (local time of the schedule's timezone)."""
        if not self.spans:
            return True
        local = datetime.fromtimestamp(now, self.tz)
        minute = local.hour * 60 + local.minute + local.second / 60.0
        for start, end in self.spans:
            if start == end:
                return True
            if start < end and start <= minute < end:
                return True
            if start > end and (minute >= start or minute < end):
                return True
        return False
