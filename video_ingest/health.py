"""Camera health as pure state: the connection state machine, fps over a sliding window, and reconnect backoff.

No clocks and no I/O here: every method takes ``now`` (Unix seconds), so the rules are tested without sleeping.
``CameraSource`` drives these from its thread.

States: ``connecting`` until the first packet ever; ``online`` while packets flow; after a disconnect
``reconnecting`` for the first few failed attempts, then ``offline`` until a packet arrives again. An online camera
whose newest packet is older than ``stale_after_s`` reads as ``offline`` (a hung server) even before the read
timeout ends its connection.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from video_ingest.status import CameraState, CameraStatus

OFFLINE_AFTER_FAILURES = 3
"""Consecutive failed attempts (disconnects or refused connects) after which a camera counts as offline."""
FPS_WINDOW_S = 3.0


@dataclass
class Backoff:
    """Exponential reconnect delay with jitter: ``initial_s`` doubling to ``max_s``; reset after a stable run."""

    initial_s: float = 0.5
    max_s: float = 10.0
    jitter: float = 0.2
    """Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter] so cameras do not retry in step."""
    stable_s: float = 60.0
    """A connection that stayed up this long resets the delay to ``initial_s``."""
    rng: random.Random = field(default_factory=random.Random)
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"Backoff: need 0 < initial_s <= max_s, got {self.initial_s} and {self.max_s}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"Backoff.jitter must be in [0, 1), got {self.jitter}")
        self._next = self.initial_s

    def delay(self, connected_for_s: float = 0.0) -> float:
        """The wait before the next attempt, given how long the connection that just ended had been up."""
        if connected_for_s >= self.stable_s:
            self._next = self.initial_s
        base = self._next
        self._next = min(self.max_s, self._next * 2)
        return base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """Start again from ``initial_s``."""
        self._next = self.initial_s


class HealthTracker:
    """The state machine and counters behind one camera's :class:`CameraStatus`."""

    def __init__(self, camera_id: str, *, worker: str = "", stale_after_s: float = 5.0,
                 offline_after_failures: int = OFFLINE_AFTER_FAILURES, fps_window_s: float = FPS_WINDOW_S) -> None:
        self.camera_id = camera_id
        self.worker = worker
        self.stale_after_s = stale_after_s
        self.offline_after_failures = offline_after_failures
        self.fps_window_s = fps_window_s
        self.state: CameraState = "connecting"
        self.since = 0.0
        self.error: str | None = None
        self.reconnects = 0
        self.failures = 0
        """Consecutive failed attempts since the last packet."""
        self.last_packet_at: float | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.codec: str | None = None
        self._arrivals: deque[float] = deque()
        self.extra: dict[str, object] = {}

    def attempt(self, now: float) -> bool:
        """A connection attempt starts. Returns whether the state changed."""
        if self.last_packet_at is not None or self.failures:
            self.reconnects += 1
        return False  # the attempt itself changes nothing visible: connecting/reconnecting/offline stay

    def connected(self, now: float, *, codec: str, width: int, height: int) -> bool:
        """The stream opened (packets not yet seen). Returns whether the state changed."""
        self.codec, self.width, self.height = codec, width, height
        return False

    def packet(self, now: float) -> bool:
        """A packet arrived. Returns whether the state changed (to online)."""
        self.last_packet_at = now
        self._arrivals.append(now)
        self._trim(now)
        self.failures = 0
        if self.state != "online":
            self.error = None
            return self._set("online", now)
        return False

    def failed(self, now: float, error: str) -> bool:
        """An attempt failed or a connection ended with ``error`` (credentials already redacted). Returns
        whether the state or the error text changed."""
        self.failures += 1
        error_changed = error != self.error
        self.error = error
        self._arrivals.clear()
        state: CameraState = "offline" if self.failures >= self.offline_after_failures else "reconnecting"
        if self.state == "offline":
            state = "offline"  # stay offline until video flows again, do not flap on every retry
        return self._set(state, now) or error_changed

    def fps(self, now: float) -> float:
        """Packets per second over the last ``fps_window_s`` seconds."""
        self._trim(now)
        arrivals = self._arrivals
        if len(arrivals) < 2:
            return 0.0
        span = max(now - arrivals[0], arrivals[-1] - arrivals[0])
        return (len(arrivals) - 1) / span if span > 0 else 0.0

    def effective_state(self, now: float) -> tuple[CameraState, str | None]:
        """The state as seen at ``now``: an online camera with no packet for ``stale_after_s`` reads offline."""
        if self.state == "online" and self.last_packet_at is not None:
            silent = now - self.last_packet_at
            if silent > self.stale_after_s:
                return "offline", f"no video for {silent:.1f} s"
        return self.state, self.error

    def snapshot(self, now: float) -> CameraStatus:
        """The :class:`CameraStatus` at ``now``."""
        state, error = self.effective_state(now)
        return CameraStatus(
            camera_id=self.camera_id, state=state, at=now, fps=round(self.fps(now), 2) if state == "online" else 0.0,
            last_frame_at=self.last_packet_at, reconnects=self.reconnects, error=error,
            width=self.width, height=self.height, codec=self.codec, worker=self.worker, extra=dict(self.extra),
        )

    def _set(self, state: CameraState, now: float) -> bool:
        if state == self.state:
            return False
        self.state = state
        self.since = now
        return True

    def _trim(self, now: float) -> None:
        cutoff = now - self.fps_window_s
        arrivals = self._arrivals
        while arrivals and arrivals[0] < cutoff:
            arrivals.popleft()
