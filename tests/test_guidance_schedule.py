"""Scheduled policy messages: the pure ``due_between`` with injected instants (no sleeps, no clock)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from config.guidance import ScheduleSettings
from guidance.schedule import due_between

SH = ZoneInfo("Asia/Shanghai")
MON = datetime(2026, 11, 30, 8, 29, 59, tzinfo=SH).timestamp()  # Monday 08:29:59 site time


def sched(at: str = "08:30", days: list[str] | None = None, sid: str = "s") -> ScheduleSettings:
    return ScheduleSettings(id=sid, at=at, text="请文明出行。", targets=["all"],
                            **({"days": days} if days is not None else {}))


def test_fires_once_in_the_window_it_falls_in() -> None:
    s = sched()
    assert due_between([s], MON - 10, MON, SH) == []
    [(got, at)] = due_between([s], MON, MON + 1, SH)
    assert got is s and at == MON + 1
    assert due_between([s], MON + 1, MON + 2, SH) == []  # not again the same day
    assert due_between([s], MON + 1, MON + 1, SH) == []


def test_days_filter_and_a_long_gap_catches_each_day_once() -> None:
    weekdays = sched(days=["mon", "tue", "wed", "thu", "fri"])
    sunday_only = sched(days=["sun"], sid="sun")
    week = 7 * 86400
    fired = due_between([weekdays, sunday_only], MON, MON + week, SH)  # Mon 08:29:59 → next Mon 08:29:59
    assert [s.id for s, _ in fired] == ["s"] * 5 + ["sun"]
    assert [datetime.fromtimestamp(t, SH).strftime("%a %H:%M") for _, t in fired] == [
        "Mon 08:30", "Tue 08:30", "Wed 08:30", "Thu 08:30", "Fri 08:30", "Sun 08:30"]


def test_order_and_midnight() -> None:
    late, early = sched("23:59", sid="late"), sched("00:00", sid="early")
    start = datetime(2026, 11, 30, 23, 0, tzinfo=SH).timestamp()
    fired = due_between([early, late], start, start + 3600, SH)
    assert [s.id for s, _ in fired] == ["late", "early"]
    assert due_between([early, late], start + 10, start, SH) == []  # a clock that went back fires nothing
