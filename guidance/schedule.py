"""Scheduled policy messages (定时宣传): which daily schedules fall due between two instants, and the ticker.

``due_between(schedules, after, now, tz)`` is pure: a schedule fires once per day at its site-local ``HH:MM`` on its
weekdays, if that instant lies in ``(after, now]``. The ticker remembers ``after`` = the previous tick, so a slow
tick never skips a schedule and never repeats one; a process that starts after a schedule's time does not play it
late (the first tick starts from now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from config.guidance import DAYS, ScheduleSettings
from guidance.broadcaster import Broadcaster

log = logging.getLogger("citywall.guidance.schedule")


def due_between(schedules: Iterable[ScheduleSettings], after: float, now: float,
                tz: ZoneInfo) -> list[tuple[ScheduleSettings, float]]:
    """Schedules whose time falls in ``(after, now]``, with that instant (unix s), in time order."""
    out: list[tuple[ScheduleSettings, float]] = []
    if now <= after:
        return out
    start = datetime.fromtimestamp(after, tz).date()
    end = datetime.fromtimestamp(now, tz).date()
    for sched in schedules:
        h, m = (int(x) for x in sched.at.split(":"))
        day = start
        while day <= end:
            if DAYS[day.weekday()] in sched.days:
                at = datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp()
                if after < at <= now:
                    out.append((sched, at))
            day += timedelta(days=1)
    out.sort(key=lambda p: p[1])
    return out


class ScheduleTicker:
    """Plays due schedules through the broadcaster; checks every ``tick_s``."""

    def __init__(self, broadcaster: Broadcaster, schedules: list[ScheduleSettings], timezone: str, *,
                 tick_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.broadcaster = broadcaster
        self.schedules = schedules
        self.tz = ZoneInfo(timezone)
        self.tick_s = tick_s
        self.clock = clock
        self.played = 0

    async def run(self, stop: asyncio.Event) -> None:
        last = self.clock()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_s)
            now = self.clock()
            for sched, _ in due_between(self.schedules, last, now, self.tz):
                record = await self.broadcaster.scheduled(sched.id, sched.targets, sched.text)
                self.played += 1
                log.info("schedule %s: %s (%s)", sched.id, record.status, record.reason or "ok")
            last = now
