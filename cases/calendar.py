"""Deadline arithmetic on the work calendar (工作时 / 工作日 / 自然时), pure: every function takes the time.

The calendar knows the working periods of a day (e.g. 08:30–12:00 and 13:30–17:30), the working weekdays, the
public holidays and the adjusted working days (调休, weekend days that are worked). ``1 工作日`` is one standard
working day's worth of working time, so a case dispatched at 10:00 is due at 10:00 on the next working day and one
dispatched after hours is due at the close of the next working day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cases.categories import LimitUnit, TimeLimit

MAX_SCAN_DAYS = 3660  # a limit can never need more than ten years of calendar; guards against a broken calendar
Instant = float | datetime


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalendarYear(_Strict):
    """One year's public holidays (放假) and adjusted working days (调休上班)."""

    status: Literal["official", "statutory_only"] = Field(
        description="official: copied from the State Council notice; statutory_only: the fixed statutory days only, "
        "to be replaced when the notice (published each November) is out"
    )
    source: str = ""
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list, description="weekend days that are worked (调休)")


class CalendarConfig(_Strict):
    """The calendar file."""

    name: str = Field(min_length=1)
    timezone: str
    work_hours: list[str] = Field(min_length=1, description='"HH:MM-HH:MM" periods, in order, e.g. lunch excluded')
    weekdays: list[int] = Field(default=[1, 2, 3, 4, 5], min_length=1, description="ISO weekdays worked (1 = Monday)")
    years: dict[int, CalendarYear] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("work_hours")
    @classmethod
    def _periods(cls, spans: list[str]) -> list[str]:
        previous_end: time | None = None
        for i, span in enumerate(spans):
            start, end = parse_span(span, f"work_hours[{i}]")
            if previous_end is not None and start < previous_end:
                raise ValueError(f"work_hours[{i}] {span!r} starts before the previous period ends; list them in order")
            previous_end = end
        return spans

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        bad = [d for d in days if not 1 <= d <= 7]
        if bad:
            raise ValueError(f"ISO weekdays are 1 (Monday) .. 7 (Sunday); got {bad}")
        return days

    @model_validator(mode="after")
    def _years(self) -> CalendarConfig:
        for year, cal in self.years.items():
            for field in ("holidays", "workdays"):
                for i, day in enumerate(getattr(cal, field)):
                    if day.year != year:
                        raise ValueError(f"years[{year}].{field}[{i}]: {day} is not in {year}")
            both = sorted(set(cal.holidays) & set(cal.workdays))
            if both:
                raise ValueError(f"years[{year}]: {', '.join(map(str, both))} listed as both holiday and workday")
            for i, day in enumerate(cal.workdays):
                if day.isoweekday() in self.weekdays:
                    raise ValueError(
                        f"years[{year}].workdays[{i}]: {day} is already a working weekday; "
                        "workdays lists only the weekend days worked for 调休"
                    )
        return self


def parse_span(span: str, where: str = "span") -> tuple[time, time]:
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", span)
    if not m:
        raise ValueError(f'{where}: {span!r} is not "HH:MM-HH:MM"')
    start = time(int(m.group(1)), int(m.group(2)))
    end = time(int(m.group(3)), int(m.group(4)))
    if end <= start:
        raise ValueError(f"{where}: {span!r} ends before it starts")
    return start, end


@dataclass(frozen=True)
class Deadline:
    """A computed deadline: when it falls due, and how it is counted."""

    start: datetime
    due: datetime
    limit: TimeLimit
    calendar: WorkCalendar

    @property
    def due_ts(self) -> float:
        return self.due.timestamp()

    def is_overdue(self, now: Instant) -> bool:
        return self.calendar.is_overdue(now, self.due)

    def remaining(self, now: Instant) -> float:
        """Seconds left in the limit's own measure (working seconds for 工作时/工作日); negative once overdue."""
        return self.calendar.remaining(now, self.due, self.limit.unit)


class WorkCalendar:
    """The pure deadline arithmetic over one :class:`CalendarConfig`."""

    def __init__(self, cfg: CalendarConfig):
        self.name = cfg.name
        self.tz = ZoneInfo(cfg.timezone)
        self.periods: list[tuple[time, time]] = [parse_span(s) for s in cfg.work_hours]
        self.weekdays = frozenset(cfg.weekdays)
        self.holidays = frozenset(d for y in cfg.years.values() for d in y.holidays)
        self.workdays = frozenset(d for y in cfg.years.values() for d in y.workdays)
        self.years = {year: y.status for year, y in cfg.years.items()}
        self.day_seconds = sum(
            (datetime.combine(date.min, e) - datetime.combine(date.min, s)).total_seconds() for s, e in self.periods
        )

    # -- days -------------------------------------------------------------------------------------------------
    def is_workday(self, day: date) -> bool:
        """调休 workdays first, then holidays, then the working weekdays."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.isoweekday() in self.weekdays

    def periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of ``day`` as aware datetimes (empty on a day off)."""
        if not self.is_workday(day):
            return []
        return [(datetime.combine(day, s, self.tz), datetime.combine(day, e, self.tz)) for s, e in self.periods]

    def local(self, when: Instant) -> datetime:
        """Unix time or a datetime (naive means calendar-local) → an aware datetime in the calendar's zone."""
        if isinstance(when, datetime):
            return when.replace(tzinfo=self.tz) if when.tzinfo is None else when.astimezone(self.tz)
        return datetime.fromtimestamp(float(when), self.tz)

    # -- adding -----------------------------------------------------------------------------------------------
    def add_work_seconds(self, start: Instant, seconds: float) -> datetime:
        """The instant when ``seconds`` of working time have passed since ``start``."""
        if seconds < 0:
            raise ValueError(f"cannot add a negative amount of working time ({seconds} s)")
        t = self.local(start)
        remaining = float(seconds)
        day = t.date()
        for _ in range(MAX_SCAN_DAYS):
            for p_start, p_end in self.periods_on(day):
                if t >= p_end:
                    continue
                begin = max(t, p_start)
                available = (p_end - begin).total_seconds()
                if remaining <= available:
                    return begin + timedelta(seconds=remaining)
                remaining -= available
            day += timedelta(days=1)
            t = datetime.combine(day, time(0), self.tz)
        raise ValueError(f"calendar {self.name!r} has no working time within {MAX_SCAN_DAYS} days of "
                         f"{self.local(start)}")

    def add_work_hours(self, start: Instant, hours: float) -> datetime:
        return self.add_work_seconds(start, hours * 3600)

    def add_work_days(self, start: Instant, days: float) -> datetime:
        return self.add_work_seconds(start, days * self.day_seconds)

    def add_hours(self, start: Instant, hours: float) -> datetime:
        """Natural hours (自然时): the calendar plays no part except for the zone of the result."""
        return self.local(self.local(start).timestamp() + hours * 3600)

    def add(self, start: Instant, limit: TimeLimit) -> datetime:
        if limit.unit is LimitUnit.WORK_HOURS:
            return self.add_work_hours(start, limit.value)
        if limit.unit is LimitUnit.WORK_DAYS:
            return self.add_work_days(start, limit.value)
        return self.add_hours(start, limit.value)

    def deadline(self, start: Instant, limit: TimeLimit) -> Deadline:
        return Deadline(start=self.local(start), due=self.add(start, limit), limit=limit, calendar=self)

    # -- measuring --------------------------------------------------------------------------------------------
    def work_seconds_between(self, a: Instant, b: Instant) -> float:
        """Working seconds from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
        ta, tb = self.local(a), self.local(b)
        if tb < ta:
            return -self.work_seconds_between(tb, ta)
        if (tb.date() - ta.date()).days > MAX_SCAN_DAYS:
            raise ValueError(f"span {ta} .. {tb} is longer than {MAX_SCAN_DAYS} days")
        total = 0.0
        day = ta.date()
        while day <= tb.date():
            for p_start, p_end in self.periods_on(day):
                lo, hi = max(p_start, ta), min(p_end, tb)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def work_periods(self, a: Instant, b: Instant) -> list[tuple[float, float]]:
        """The working periods that overlap ``a`` .. ``b``, whole, as Unix times in order (the pages count working
        time with them: a countdown that pauses off hours)."""
        ta, tb = self.local(a), self.local(b)
        if (tb.date() - ta.date()).days > MAX_SCAN_DAYS:
            raise ValueError(f"span {ta} .. {tb} is longer than {MAX_SCAN_DAYS} days")
        out: list[tuple[float, float]] = []
        day = ta.date()
        while day <= tb.date():
            out.extend((s.timestamp(), e.timestamp()) for s, e in self.periods_on(day) if e > ta and s < tb)
            day += timedelta(days=1)
        return out

    def is_overdue(self, now: Instant, due: Instant) -> bool:
        return self.local(now) > self.local(due)

    def remaining(self, now: Instant, due: Instant, unit: LimitUnit = LimitUnit.WORK_HOURS) -> float:
        """Time left until ``due``: working seconds for 工作时/工作日, natural seconds for hours."""
        if unit is LimitUnit.HOURS:
            return self.local(due).timestamp() - self.local(now).timestamp()
        return self.work_seconds_between(now, due)

    def covers(self, day: date) -> bool:
        """Whether ``day``'s year has holidays configured (outside, only weekends count as days off)."""
        return day.year in self.years
