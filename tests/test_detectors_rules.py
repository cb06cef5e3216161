"""Dwell rule state machine and schedules: parametrised timelines, no clocks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from detectors.rules import DwellRule, Presence
from detectors.schedule import Schedule

BOX = (0.1, 0.5, 0.3, 0.7)
SH = ZoneInfo("Asia/Shanghai")
# 2024-06-03 is a Monday; the rules only need "a known local time".
T0 = datetime(2024, 6, 3, 12, 0, 0, tzinfo=SH).timestamp()


def present(*spans: tuple[int, int], key: int = 1, area: float = 0.05) -> dict[int, list[Presence]]:
    """Timeline {second: [Presence]} with the object there for each inclusive [a, b] span."""
    out: dict[int, list[Presence]] = {}
    for a, b in spans:
        for t in range(a, b + 1):
            out.setdefault(t, []).append(Presence(key, BOX, area, 0.8))
    return out


def run(rule: DwellRule, timeline: dict[int, list[Presence]], until: int, t0: float = 0.0) -> list[tuple[int, str]]:
    events = []
    for t in range(until + 1):
        ev = rule.update(t0 + t, timeline.get(t, []))
        if ev is not None:
            events.append((t, ev.phase))
    return events


def make(**kw) -> DwellRule:
    args = dict(dwell_s=10, min_area=0.01, cooldown_s=0, grace_s=3, clear_s=5)
    args.update(kw)
    return DwellRule(**args)


@pytest.mark.parametrize(
    "name, kwargs, timeline, until, expected",
    [
        ("raise after dwell, clear after clear_s", {}, present((0, 20)), 40, [(10, "raised"), (25, "cleared")]),
        ("short visit never raises", {}, present((0, 8)), 40, []),
        ("gap within grace keeps the dwell", {}, present((0, 6), (9, 20)), 40, [(10, "raised"), (25, "cleared")]),
        ("gap beyond grace restarts the dwell", {}, present((0, 5), (10, 30)), 50, [(20, "raised"), (35, "cleared")]),
        ("too small never counts", {"min_area": 0.1}, present((0, 30)), 40, []),
        ("one alarm while raised, however long", {}, present((0, 200)), 210, [(10, "raised"), (205, "cleared")]),
        ("short absence while raised does not clear", {}, present((0, 20), (24, 40)), 50,
         [(10, "raised"), (45, "cleared")]),
        ("cooldown delays the next raise", {"cooldown_s": 30}, present((0, 15), (22, 70)), 80,
         [(10, "raised"), (20, "cleared"), (50, "raised"), (75, "cleared")]),
        ("no cooldown: next raise after its own dwell", {}, present((0, 15), (22, 70)), 80,
         [(10, "raised"), (20, "cleared"), (32, "raised"), (75, "cleared")]),
        ("zero dwell raises at once", {"dwell_s": 0}, present((3, 5)), 20, [(3, "raised"), (10, "cleared")]),
    ],
)
def test_dwell_timeline(name, kwargs, timeline, until, expected):
    assert run(make(**kwargs), timeline, until) == expected, name


def test_two_objects_one_alarm_and_clear_waits_for_the_last():
    timeline = present((0, 30), key=1)
    for t, ps in present((5, 50), key=2).items():
        timeline.setdefault(t, []).extend(ps)
    rule = make()
    assert run(rule, timeline, 70) == [(10, "raised"), (55, "cleared")]


def test_raised_and_cleared_share_the_alarm_id_and_report_dwell():
    ids = iter(["a1", "a2"])
    rule = make(new_id=lambda: next(ids))
    events = [ev for t in range(60) if (ev := rule.update(1000.0 + t, present((3, 30)).get(t, [])))]
    assert [(e.phase, e.alarm_id) for e in events] == [("raised", "a1"), ("cleared", "a1")]
    raised, cleared = events
    assert raised.started_at == 1003.0 and raised.at == 1013.0 and raised.dwell_s == 10.0
    assert raised.boxes == [BOX] and raised.keys == (1,) and raised.confidence == pytest.approx(0.8)
    assert cleared.at == 1035.0 and cleared.dwell_s == 27.0


def test_known_age_counts_towards_the_dwell():
    """A track that arrives with an age (the object was already standing there) does not wait again."""
    rule = make()
    ev = rule.update(100.0, [Presence(7, BOX, 0.05, 0.9, since=88.0)])
    assert ev is not None and ev.phase == "raised" and ev.started_at == 88.0


@pytest.mark.parametrize(
    "spans, hhmm, open_",
    [
        ([], "03:00", True),
        (["08:00-20:00"], "12:00", True),
        (["08:00-20:00"], "20:00", False),
        (["08:00-20:00"], "07:59", False),
        (["22:00-06:00"], "23:30", True),
        (["22:00-06:00"], "05:59", True),
        (["22:00-06:00"], "12:00", False),
        (["06:00-09:00", "17:00-24:00"], "23:59", True),
        (["06:00-09:00", "17:00-24:00"], "12:00", False),
        (["00:00-00:00"], "12:00", True),
    ],
)
def test_schedule_spans(spans, hhmm, open_):
    h, m = map(int, hhmm.split(":"))
    now = datetime(2024, 6, 3, h, m, tzinfo=SH).timestamp()
    assert Schedule(spans, "Asia/Shanghai").is_open(now) is open_


def test_schedule_uses_its_timezone():
    # 12:00 in Shanghai is 04:00 UTC: open for a UTC-based "03:00-05:00" schedule, closed for Shanghai's.
    assert Schedule(["03:00-05:00"], "UTC").is_open(T0)
    assert not Schedule(["03:00-05:00"], "Asia/Shanghai").is_open(T0)


@pytest.mark.parametrize("bad", ["8:00-20:00", "08:00-25:00", "08:00", "08:60-09:00"])
def test_schedule_rejects_bad_spans(bad):
    with pytest.raises(ValueError, match="HH:MM"):
        Schedule([bad])


def test_schedule_rejects_unknown_timezone():
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        Schedule([], "Mars/Base")


def test_schedule_gates_raising_not_clearing():
    """Closed hours hold the raise back; when the schedule opens an object already dwelling raises at once."""
    sched = Schedule(["12:00-13:00"], SH)
    rule = make(schedule=sched)
    start = T0 - 60  # 11:59:00
    events = run(rule, present((0, 120)), 130, t0=start)
    assert events == [(60, "raised"), (125, "cleared")]


def test_negative_parameters_are_named():
    with pytest.raises(ValueError, match="cooldown_s must be >= 0; got -1"):
        make(cooldown_s=-1)


def test_sparse_sampling_keeps_the_dwell_and_needs_two_empty_samples_to_clear():
    """Samples 10 s apart (interval_s up to 60 is allowed): consecutive sightings are continuous presence, and a
    single empty sample (someone in front of the object) does not clear."""
    rule = make(dwell_s=30, grace_s=3, clear_s=5)
    seen = {0, 10, 20, 30, 40, 60, 70}  # the sample at 50 missed it
    events = []
    for t in range(0, 120, 10):
        ev = rule.update(float(t), [Presence(1, BOX, 0.05)] if t in seen else [])
        if ev:
            events.append((t, ev.phase))
    assert events == [(30, "raised"), (90, "cleared")]
