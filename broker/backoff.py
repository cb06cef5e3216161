"""Exponential backoff with jitter: the one helper every retry loop uses (bus tails, the role supervisor, camera
reconnects, the wall's hub and screen followers, broadcast records). Knows no domain; time is the caller's.

``delay()`` gives the wait before the next attempt and doubles the next one up to ``max_s``; ``reset()`` (after a
success) starts again from ``initial_s``. Given ``stable_s``, a run that lasted that long also starts again, so a
service that crashes once a day is not retried as slowly as one that crash-loops. ``jitter`` spreads the waits of
many clients (cameras, browsers) so they do not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.5
    max_s: float = 10.0
    jitter: float = 0.0
    """Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]."""
    stable_s: float | None = None
    """A run that lasted this long (``delay(up_for_s)``) resets the delay to ``initial_s``; None: never."""
    rng: random.Random = field(default_factory=random.Random)
    failures: int = field(init=False, default=0)
    """Delays handed out since the last reset."""
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"Backoff: need 0 < initial_s <= max_s, got {self.initial_s} and {self.max_s}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"Backoff.jitter must be in [0, 1), got {self.jitter}")
        self._next = self.initial_s

    def delay(self, up_for_s: float = 0.0) -> float:
        """The wait before the next attempt, given how long the run that just ended had been up."""
        if self.stable_s is not None and up_for_s >= self.stable_s:
            self.reset()
        base = self._next
        self._next = min(self.max_s, self._next * 2)
        self.failures += 1
        return base * self.rng.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else base

    def reset(self) -> None:
        """After a success: start again from ``initial_s``."""
        self._next = self.initial_s
        self.failures = 0
