"""The one backoff helper: doubling to a cap, reset after success or a stable run, jitter within its bounds, bad
settings refused with the values named."""

from __future__ import annotations

import random

import pytest

from broker.backoff import Backoff


def test_delays_double_to_the_cap_and_reset() -> None:
    b = Backoff(initial_s=0.5, max_s=3.0)
    assert [b.delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0] and b.failures == 5
    b.reset()
    assert (b.delay(), b.failures) == (0.5, 1)


def test_a_stable_run_starts_again_and_a_short_one_does_not() -> None:
    b = Backoff(initial_s=1.0, max_s=8.0, stable_s=60.0)
    assert [b.delay(up_for_s=5.0) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert b.delay(up_for_s=60.0) == 1.0
    assert Backoff(initial_s=1.0, max_s=8.0).delay(up_for_s=1e9) == 1.0  # no stable_s: never resets by itself


def test_jitter_stays_within_its_bounds() -> None:
    b = Backoff(initial_s=1.0, max_s=1.0, jitter=0.2, rng=random.Random(7))
    delays = [b.delay() for _ in range(200)]
    assert 0.8 <= min(delays) < 0.85 and 1.15 < max(delays) <= 1.2


@pytest.mark.parametrize("kwargs, message", [
    ({"initial_s": 0.0}, "0 < initial_s <= max_s, got 0.0 and 10.0"),
    ({"initial_s": 5.0, "max_s": 1.0}, "got 5.0 and 1.0"),
    ({"jitter": 1.0}, r"jitter must be in \[0, 1\), got 1.0"),
])
def test_bad_settings_are_refused_naming_them(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
