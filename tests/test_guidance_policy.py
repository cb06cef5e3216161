"""Broadcast policy tables: busy/pre-emption, quiet hours, hourly limit, repeat interval. Time is passed in."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from guidance.policy import Broadcast, BroadcastPolicy, BroadcastRequest, PolicyConfig, Priority, Refusal

TZ = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=TZ).timestamp()


def req(text: str = "请离开", priority: Priority = Priority.AUTOMATIC, site: str = "s1", dur: float = 5.0,
        repeat: int = 1) -> BroadcastRequest:
    return BroadcastRequest(site_id=site, text=text, duration_s=dur, priority=priority, repeat=repeat)


def at(hh: int, mm: int) -> float:
    return datetime(2026, 11, 23, hh, mm, tzinfo=TZ).timestamp()


@pytest.mark.parametrize(("hh", "mm", "priority", "allowed"), [
    (21, 59, Priority.AUTOMATIC, True),
    (22, 0, Priority.AUTOMATIC, False),
    (3, 0, Priority.SCHEDULED, False),
    (6, 59, Priority.AUTOMATIC, False),
    (7, 0, Priority.AUTOMATIC, True),
    (23, 30, Priority.MANUAL, True),
])
def test_quiet_hours_wrap_midnight(hh: int, mm: int, priority: Priority, allowed: bool) -> None:
    result = BroadcastPolicy().decide(req(priority=priority), at(hh, mm))
    assert isinstance(result, Broadcast) is allowed
    if not allowed:
        assert isinstance(result, Refusal) and result.reason == "quiet_hours"


def test_quiet_hours_same_day_window_and_none() -> None:
    lunch = BroadcastPolicy(PolicyConfig(quiet_start=time(12, 0), quiet_end=time(14, 0)))
    assert lunch.in_quiet_hours(at(13, 0)) and not lunch.in_quiet_hours(at(14, 0))
    never = BroadcastPolicy(PolicyConfig(quiet_start=time(0, 0), quiet_end=time(0, 0)))
    assert not never.in_quiet_hours(at(3, 0))


@pytest.mark.parametrize(("first", "second", "outcome"), [
    (Priority.AUTOMATIC, Priority.MANUAL, "preempt"),
    (Priority.SCHEDULED, Priority.AUTOMATIC, "preempt"),
    (Priority.AUTOMATIC, Priority.AUTOMATIC, "busy"),
    (Priority.MANUAL, Priority.AUTOMATIC, "busy"),
    (Priority.MANUAL, Priority.MANUAL, "busy"),
])
def test_priority_while_playing(first: Priority, second: Priority, outcome: str) -> None:
    policy = BroadcastPolicy()
    a = policy.decide(req("第一条", first, dur=10.0), NOON)
    assert isinstance(a, Broadcast) and a.end == NOON + 10.0
    b = policy.decide(req("第二条", second), NOON + 3.0)
    if outcome == "preempt":
        assert isinstance(b, Broadcast) and b.preempted == a.request
    else:
        assert isinstance(b, Refusal) and b.reason == "busy" and b.retry_after_s == pytest.approx(7.0)


def test_site_is_free_after_the_clip_and_repeats_or_when_finished_early() -> None:
    policy = BroadcastPolicy(PolicyConfig(min_repeat_interval_s=0))
    first = policy.decide(req(dur=4.0, repeat=3), NOON)
    assert isinstance(first, Broadcast) and first.end == NOON + 12.0
    assert isinstance(policy.decide(req("别的"), NOON + 11.9), Refusal)
    assert isinstance(policy.decide(req("别的"), NOON + 12.0), Broadcast)
    policy.finished("s1", NOON + 13.0)
    assert isinstance(policy.decide(req("第三"), NOON + 13.0), Broadcast)


def test_hourly_limit_is_sliding_and_per_site() -> None:
    policy = BroadcastPolicy(PolicyConfig(max_per_hour=3, min_repeat_interval_s=0))
    times = [NOON, NOON + 600, NOON + 1200]
    for t in times:
        assert isinstance(policy.decide(req(f"m{t}"), t), Broadcast)
    refused = policy.decide(req("m4"), NOON + 1800)
    assert isinstance(refused, Refusal) and refused.reason == "rate_limited"
    assert refused.retry_after_s == pytest.approx(1800.0)
    assert isinstance(policy.decide(req("m4", site="s2"), NOON + 1800), Broadcast)  # other site unaffected
    assert isinstance(policy.decide(req("m4"), NOON + 3600), Broadcast)  # first one left the window
    assert isinstance(policy.decide(req("manual", Priority.MANUAL), NOON + 3610), Broadcast)  # manual not limited


def test_same_message_not_repeated_too_soon() -> None:
    policy = BroadcastPolicy(PolicyConfig(min_repeat_interval_s=300))
    assert isinstance(policy.decide(req("请离开"), NOON), Broadcast)
    again = policy.decide(req("请离开"), NOON + 100)
    assert isinstance(again, Refusal) and again.reason == "repeat_too_soon"
    assert again.retry_after_s == pytest.approx(200.0)
    assert isinstance(policy.decide(req("垃圾桶已满"), NOON + 100), Broadcast)
    assert isinstance(policy.decide(req("请离开"), NOON + 300), Broadcast)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_per_hour": 0}, "max_per_hour"),
    ({"min_repeat_interval_s": -1}, "min_repeat_interval_s"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
])
def test_bad_config(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(Exception, match=message):
        PolicyConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_request() -> None:
    with pytest.raises(ValueError, match="duration_s"):
        req(dur=0)


def test_a_broadcast_that_never_played_does_not_count() -> None:
    policy = BroadcastPolicy(PolicyConfig(max_per_hour=1))
    assert isinstance(policy.decide(req("请离开", dur=8.0), NOON), Broadcast)
    policy.finished("s1", NOON + 0.5, played=False)
    assert isinstance(policy.decide(req("请离开", dur=8.0), NOON + 1), Broadcast)  # not busy, not limited
    policy.finished("s1", NOON + 2)  # played, ended early: free but counted
    refused = policy.decide(req("另一条"), NOON + 3)
    assert isinstance(refused, Refusal) and refused.reason == "rate_limited"
    policy.finished("unknown-site", NOON)  # harmless
