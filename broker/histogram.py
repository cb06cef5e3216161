"""A plain latency histogram: fixed buckets, cumulative counts, sum and count — what a Prometheus histogram needs,
without Prometheus (rooms keep plain counters; ``wall.metrics`` exports them). Knows no domain.

Not thread-safe by itself: observe from one thread, or under the caller's lock (the detection worker observes in
its analysis thread and the metrics page reads a copy through ``snapshot``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds in seconds: from a Redis round trip on loopback to a slow analysis."""


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(init=False)
    """Observations per bucket (not cumulative); the last slot is above every bound (+Inf)."""
    sum: float = field(init=False, default=0.0)
    count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not self.buckets or list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"histogram buckets must be increasing and distinct, got {self.buckets}")
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        """``([(upper bound, cumulative count), …, (inf, count)], sum, count)``, as Prometheus exposes it."""
        out, running = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out, self.sum, running
