"""Deadline arithmetic on the shipped work calendar: lunch, evenings, weekends, holidays and 调休 days."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from cases.calendar import CalendarConfig, WorkCalendar
from cases.categories import LimitUnit, TimeLimit
from cases.loader import load
from config import CONFIG_DIR, ConfigError

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar(load(CalendarConfig, CONFIG_DIR / "calendar.yaml"))


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@pytest.mark.parametrize(
    "start, hours, due",
    [
        ("2026-03-11 09:00", 2, "2026-03-11 11:00"),  # Wednesday morning
        ("2026-03-11 11:00", 2, "2026-03-11 14:30"),  # across lunch 12:00-13:30
        ("2026-03-11 12:30", 1, "2026-03-11 14:30"),  # reported during lunch
        ("2026-03-11 07:00", 1, "2026-03-11 09:30"),  # before work
        ("2026-03-11 16:30", 1, "2026-03-11 17:30"),  # ends exactly at close, not next morning
        ("2026-03-11 17:00", 1, "2026-03-12 09:00"),  # across the evening
        ("2026-03-11 21:00", 4, "2026-03-12 14:00"),  # reported at night
        ("2026-03-13 16:30", 2, "2026-03-16 09:30"),  # Friday → Monday
        ("2026-03-14 10:00", 1, "2026-03-16 09:30"),  # Saturday
        ("2026-09-30 17:00", 1, "2026-10-08 09:00"),  # 国庆 Oct 1-7
        ("2026-10-09 17:00", 1, "2026-10-10 09:00"),  # Saturday Oct 10 is a 调休 working day
        ("2026-02-13 17:00", 1, "2026-02-14 09:00"),  # Saturday Feb 14 is worked before 春节
        ("2026-02-14 17:00", 1, "2026-02-24 09:00"),  # 春节 Feb 15-23
        ("2026-01-01 10:00", 1, "2026-01-04 09:30"),  # 元旦; Sunday Jan 4 is worked
        ("2026-04-03 17:00", 1, "2026-04-07 09:00"),  # 清明 Apr 4-6
        ("2027-02-04 17:00", 1, "2027-02-09 09:00"),  # 2027 statutory 春节 Feb 5-8
        ("2026-03-11 08:30", 7.5, "2026-03-11 17:30"),  # a whole working day
        ("2026-03-11 09:00", 7.5, "2026-03-12 09:00"),
        ("2026-03-11 09:00", 0.25, "2026-03-11 09:15"),
    ],
)
def test_add_work_hours(cal, start, hours, due):
    assert cal.add_work_hours(t(start), hours) == t(due)


@pytest.mark.parametrize(
    "start, days, due",
    [
        ("2026-03-11 10:00", 1, "2026-03-12 10:00"),
        ("2026-03-11 12:45", 1, "2026-03-12 12:00"),  # counted from 13:30; due as the morning closes
        ("2026-03-13 10:00", 1, "2026-03-16 10:00"),  # Friday → Monday
        ("2026-03-13 18:00", 1, "2026-03-16 17:30"),  # after hours → close of next working day
        ("2026-03-11 10:00", 3, "2026-03-16 10:00"),
        ("2026-04-30 10:00", 1, "2026-05-06 10:00"),  # 劳动节 May 1-5
        ("2026-05-08 10:00", 1, "2026-05-09 10:00"),  # Saturday May 9 is worked
        ("2026-03-11 10:00", 0.5, "2026-03-11 15:15"),  # half a day = 3.75 h
    ],
)
def test_add_work_days(cal, start, days, due):
    assert cal.add_work_days(t(start), days) == t(due)


@pytest.mark.parametrize(
    "limit, start, due",
    [
        (TimeLimit(value=2, unit=LimitUnit.WORK_HOURS), "2026-03-13 16:30", "2026-03-16 09:30"),
        (TimeLimit(value=1, unit=LimitUnit.WORK_DAYS), "2026-03-13 16:30", "2026-03-16 16:30"),
        (TimeLimit(value=24, unit=LimitUnit.HOURS), "2026-03-13 16:30", "2026-03-14 16:30"),  # natural hours
        (TimeLimit(value=2, unit=LimitUnit.HOURS), "2026-10-01 23:00", "2026-10-02 01:00"),  # holidays irrelevant
    ],
)
def test_add_by_limit(cal, limit, start, due):
    assert cal.add(t(start), limit) == t(due)


def test_unix_time_naive_and_utc_inputs_agree(cal):
    local = t("2026-03-11 11:00")
    expected = t("2026-03-11 14:30")
    assert cal.add_work_hours(local.timestamp(), 2) == expected
    assert cal.add_work_hours(local.astimezone(UTC), 2) == expected
    assert cal.add_work_hours(datetime(2026, 3, 11, 11, 0), 2) == expected  # naive = calendar-local


@pytest.mark.parametrize(
    "a, b, seconds",
    [
        ("2026-03-11 11:00", "2026-03-11 14:30", 2 * 3600),
        ("2026-03-13 17:00", "2026-03-16 09:00", 3600),
        ("2026-03-16 09:00", "2026-03-13 17:00", -3600),
        ("2026-09-30 17:00", "2026-10-08 09:00", 3600),
        ("2026-03-11 12:00", "2026-03-11 13:30", 0),
        ("2026-03-09 00:00", "2026-03-16 00:00", 5 * 7.5 * 3600),
    ],
)
def test_work_seconds_between(cal, a, b, seconds):
    assert cal.work_seconds_between(t(a), t(b)) == seconds


def test_deadline_overdue_and_remaining(cal):
    d = cal.deadline(t("2026-03-13 16:30"), TimeLimit(value=2, unit=LimitUnit.WORK_HOURS))
    assert d.due == t("2026-03-16 09:30")
    assert not d.is_overdue(t("2026-03-16 09:30"))
    assert d.is_overdue(t("2026-03-16 09:31"))
    assert d.remaining(t("2026-03-14 12:00")) == 3600  # the weekend does not eat working time
    assert d.remaining(t("2026-03-16 10:30")) == -3600
    natural = cal.deadline(t("2026-03-13 16:30"), TimeLimit(value=24, unit=LimitUnit.HOURS))
    assert natural.remaining(t("2026-03-14 12:00")) == 4.5 * 3600


def test_days(cal):
    assert cal.day_seconds == 7.5 * 3600
    assert cal.is_workday(t("2026-10-10").date()) and not cal.is_workday(t("2026-10-05").date())
    assert cal.years == {2026: "official", 2027: "statutory_only"}
    assert not cal.covers(t("2028-01-03").date())


def test_negative_time_refused(cal):
    with pytest.raises(ValueError, match="negative"):
        cal.add_work_seconds(t("2026-03-11 09:00"), -1)


def _calendar_file(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((CONFIG_DIR / "calendar.yaml").read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "mutate, where, reason",
    [
        (lambda d: d["years"][2026]["workdays"].append("2026-03-11"), "years[2026].workdays[6]",
         "already a working weekday"),
        (lambda d: d["years"][2026]["holidays"].append("2025-12-31"), "years[2026].holidays[33]", "not in 2026"),
        (lambda d: d["years"][2026]["workdays"].append("2026-10-03"), "years[2026]", "both holiday and workday"),
        (lambda d: d.update(work_hours=["08:30-12:00", "11:00-17:30"]), "work_hours", "starts before the previous"),
        (lambda d: d.update(work_hours=["8:30-12:00"]), "work_hours", "HH:MM-HH:MM"),
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone", "unknown timezone"),
        (lambda d: d.update(weekdays=[0, 1]), "weekdays", "ISO weekdays"),
        (lambda d: d.update(lunch="12:00"), "lunch", "Extra inputs are not permitted"),
        (lambda d: d["years"][2027].update(status="guessed"), "years[2027].status", "official"),
    ],
)
def test_bad_calendar_names_file_and_key(tmp_path, mutate, where, reason):
    path = _calendar_file(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load(CalendarConfig, path)
    text = str(info.value)
    assert str(path) in text and where in text and reason in text, text


def test_work_periods_are_the_working_spans_that_overlap_a_window(cal):
    # Friday 2026-03-13 16:00 .. Monday 09:00: Friday's afternoon whole, nothing at the weekend, Monday's morning
    spans = cal.work_periods(t("2026-03-13 16:00"), t("2026-03-16 09:00"))
    assert spans == [(t("2026-03-13 13:30").timestamp(), t("2026-03-13 17:30").timestamp()),
                     (t("2026-03-16 08:30").timestamp(), t("2026-03-16 12:00").timestamp())]
    # what a page sums over them is the calendar's own working time
    a, b = t("2026-03-11 10:00"), t("2026-03-20 15:00")
    total = sum(min(e, b.timestamp()) - max(s, a.timestamp()) for s, e in cal.work_periods(a, b))
    assert total == cal.work_seconds_between(a, b)
    assert cal.work_periods(t("2026-10-02 09:00"), t("2026-10-03 18:00")) == []  # 国庆
    with pytest.raises(ValueError, match="longer than"):
        cal.work_periods(t("2026-01-01 00:00"), t("2036-12-31 00:00"))
