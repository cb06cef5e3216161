"""Camera health rules (states, fps, staleness) and reconnect backoff, driven by explicit times — no sleeping."""

from __future__ import annotations

import random

import pytest

from video_ingest.health import Backoff, HealthTracker, LoginGuard, LoginPolicy


def online_tracker(now: float = 100.0) -> HealthTracker:
    t = HealthTracker("cam", worker="w1", stale_after_s=5.0)
    t.attempt(now)
    t.connected(now, codec="h264", width=1280, height=720)
    t.packet(now + 0.04)
    return t


def test_first_packet_turns_connecting_into_online() -> None:
    t = HealthTracker("cam", worker="w1")
    assert t.snapshot(0).state == "connecting"
    t.attempt(10)
    assert t.connected(10, codec="h264", width=1280, height=720) is False
    assert t.packet(11) is True
    s = t.snapshot(11)
    assert (s.state, s.codec, s.width, s.height, s.worker, s.last_frame_at, s.reconnects) == (
        "online", "h264", 1280, 720, "w1", 11, 0)
    assert t.packet(11.04) is False  # no change, no update


def test_fps_over_a_sliding_window() -> None:
    t = online_tracker(0)
    for i in range(1, 101):
        t.packet(i / 25)  # 25 fps for 4 s
    assert t.fps(4.0) == pytest.approx(25, rel=0.02)
    for i in range(101, 151):
        t.packet(i / 12.5 - 4)  # then 12.5 fps
    assert t.fps(8.0) == pytest.approx(12.5, rel=0.05)
    assert t.snapshot(8.0).fps == pytest.approx(12.5, rel=0.05)


@pytest.mark.parametrize("failures,expected",
                         [(1, "reconnecting"), (2, "reconnecting"), (3, "offline"), (5, "offline")])
def test_failures_go_reconnecting_then_offline(failures: int, expected: str) -> None:
    t = online_tracker()
    for i in range(failures):
        t.attempt(200 + i)
        t.failed(200 + i, "ConnectionRefusedError: rtsp://u:***@h/x")
    s = t.snapshot(210)
    assert s.state == expected
    assert s.error == "ConnectionRefusedError: rtsp://u:***@h/x"
    assert s.fps == 0.0
    assert s.reconnects == failures


def test_offline_stays_offline_until_video_flows_and_packet_clears_error() -> None:
    t = online_tracker()
    for i in range(3):
        t.failed(200 + i, "refused")
    assert t.state == "offline"
    assert t.failed(210, "refused") is False  # same state, same error: nothing to announce
    assert t.failed(211, "timed out") is True  # the reason changed
    assert t.state == "offline"
    assert t.packet(220) is True
    assert (t.state, t.error, t.failures) == ("online", None, 0)


def test_online_camera_without_packets_reads_offline() -> None:
    t = online_tracker(100)
    assert t.snapshot(104).state == "online"
    stale = t.snapshot(106)
    assert stale.state == "offline"
    assert "no video for 6.0 s" in (stale.error or "")


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    b = Backoff(rng=random.Random(1))
    delays = [b.delay() for _ in range(8)]
    bases = [0.5, 1, 2, 4, 8, 10, 10, 10]
    for d, base in zip(delays, bases, strict=False):
        assert base * 0.8 <= d <= base * 1.2
    assert len(set(delays)) == len(delays)  # jittered, not in lock-step


def test_backoff_resets_after_a_stable_minute() -> None:
    b = Backoff(jitter=0.0)
    assert [b.delay(5) for _ in range(4)] == [0.5, 1, 2, 4]
    assert b.delay(59.9) == 8
    assert b.delay(60.0) == 0.5  # that connection had been good for a minute
    assert b.delay(1) == 1


@pytest.mark.parametrize("kwargs,match", [({"initial_s": 0}, "initial_s"), ({"initial_s": 20, "max_s": 10}, "max_s"),
                                          ({"jitter": 1.0}, "jitter")])
def test_backoff_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backoff(**kwargs)


# -- logins the camera refuses: never lock the account -------------------------------------------------------------

def login_attempts(policy: LoginPolicy, horizon_s: float, reconnect_s: float = 0.25) -> list[float]:
    """When a camera with a wrong password is tried, driven as CameraSource does: try, fail, wait for the later of
    the reconnect delay and the guard."""
    guard, now, times = LoginGuard(policy), 0.0, []
    while now < horizon_s:
        guard.attempt(now)
        times.append(now)
        now = max(now + reconnect_s, guard.failed(now))
    return times


def max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_a_wrong_password_costs_at_most_three_logins_in_ten_minutes() -> None:
    times = login_attempts(LoginPolicy(), 3 * 3600)
    assert times[:4] == [0, 60, 360, 1260]  # 1 min, 5 min, then 15 min apart
    assert max_in_window(times, 600) == 3
    assert all(b - a == 900 for a, b in zip(times[3:], times[4:], strict=False))  # the last delay repeats


@pytest.mark.parametrize("policy", [LoginPolicy((1, 2), 2, 10), LoginPolicy((5,), 1, 60), LoginPolicy((1,), 3, 30),
                                    LoginPolicy((0.5, 1.0), 2, 3.0)])
def test_never_more_than_max_attempts_in_any_window(policy: LoginPolicy) -> None:
    times = login_attempts(policy, 20 * policy.window_s)
    assert max_in_window(times, policy.window_s) <= policy.max_attempts
    assert len(times) > policy.max_attempts  # it keeps trying, slowly


def test_a_login_that_succeeds_ends_the_run_of_failures() -> None:
    g = LoginGuard(LoginPolicy((60, 300), 3, 600))
    assert g.next_attempt_at(5.0) == 5.0 and not g.failing  # nothing holds a first login back
    g.attempt(0)
    assert g.failed(0) == 60
    g.attempt(60)
    assert g.failed(60) == 360
    assert g.next_attempt_at(100) == 360
    g.succeeded()
    assert (g.failing, g.next_attempt_at(100)) == (False, 100)
    g.attempt(1000)
    assert g.failed(1000) == 1060  # a new run starts from the first delay again
    assert g.attempts_refused == 3


@pytest.mark.parametrize("kwargs,match", [({"backoff_s": ()}, "at least one"), ({"backoff_s": (60, 0)}, "> 0"),
                                          ({"backoff_s": (300, 60)}, "must not shrink"),
                                          ({"max_attempts": 0}, "max_attempts"), ({"window_s": 0}, "window_s")])
def test_login_policy_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LoginPolicy(**kwargs)


def test_a_refused_login_reads_offline_at_once_with_the_next_try() -> None:
    t = online_tracker(100)
    assert t.failed(200, "密码错误 / authentication failed: DESCRIBE: 401 Unauthorized", retry_at=260, auth=True)
    s = t.snapshot(201)
    assert (s.state, s.auth_failed, s.retry_at) == ("offline", True, 260)
    assert s.error and s.error.startswith("密码错误")
    t.packet(300)
    s = t.snapshot(300)
    assert (s.state, s.auth_failed, s.retry_at, s.error) == ("online", False, None, None)


def test_retry_times_alone_are_news_only_for_refused_logins() -> None:
    t = online_tracker(100)
    assert t.failed(200, "refused", retry_at=201)
    assert not t.failed(201, "refused", retry_at=202)  # same error, the next second: nothing to announce
    assert t.snapshot(201.5).retry_at == 202  # ...but the status read at any time has it
    assert t.failed(300, "密码错误", retry_at=360, auth=True)
    assert t.failed(360, "密码错误", retry_at=660, auth=True)  # the next login is minutes away: say when
