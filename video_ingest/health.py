"""Camera health as pure state: the connection state machine, fps over a sliding window, and reconnect backoff.

No clocks and no I/O here: every method takes ``now`` (Unix seconds), so the rules are tested without sleeping.
``CameraSource`` drives these from its thread.

States: ``connecting`` until the first packet ever; ``online`` while packets flow; after a disconnect
``reconnecting`` for the first few failed attempts, then ``offline`` until a packet arrives again. An online camera
whose newest packet is older than ``stale_after_s`` reads as ``offline`` (a hung server) even before the read
timeout ends its connection.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from broker.backoff import Backoff as BaseBackoff
from messages.camera import CameraState, CameraStatus

OFFLINE_AFTER_FAILURES = 3
"""Consecutive failed attempts (disconnects or refused connects) after which a camera counts as offline."""
FPS_WINDOW_S = 3.0


@dataclass
class Backoff(BaseBackoff):
    """Camera reconnects (``broker.backoff.Backoff`` with camera defaults): ``initial_s`` doubling to ``max_s``, each
    delay jittered by ±20 % so cameras do not retry in step, back to ``initial_s`` after a connection stayed up for a
    minute."""

    jitter: float = 0.2
    stable_s: float | None = 60.0


@dataclass(frozen=True)
class LoginPolicy:
    """How a camera that refuses our login is retried. Hikvision and Dahua lock an account for a while after a few
    failed logins (typically 5–7 within minutes), so after an authentication failure the next attempt waits
    ``backoff_s[k]`` (the k-th consecutive failure; the last value repeats), and at most ``max_attempts`` logins
    are made within any ``window_s`` while the failures go on. The defaults give at most 3 attempts in 10 minutes."""

    backoff_s: tuple[float, ...] = (60.0, 300.0, 900.0)
    max_attempts: int = 3
    window_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.backoff_s:
            raise ValueError("LoginPolicy.backoff_s: give at least one delay")
        if any(not b > 0 for b in self.backoff_s):
            raise ValueError(f"LoginPolicy.backoff_s: every delay must be > 0 s, got {list(self.backoff_s)}")
        if any(b < a for a, b in zip(self.backoff_s, self.backoff_s[1:], strict=False)):
            raise ValueError(f"LoginPolicy.backoff_s: delays must not shrink, got {list(self.backoff_s)}")
        if self.max_attempts < 1:
            raise ValueError(f"LoginPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if not self.window_s > 0:
            raise ValueError(f"LoginPolicy.window_s must be > 0, got {self.window_s}")


class LoginGuard:
    """Pure state: when the next login may be tried, given the authentication failures so far (times in, no
    clock). Attempts are counted from the first failure of a run of failures; a login that succeeds ends the run."""

    def __init__(self, policy: LoginPolicy | None = None) -> None:
        self.policy = policy or LoginPolicy()
        self.failures = 0
        """Consecutive authentication failures."""
        self.attempts_refused = 0
        """Logins refused by the camera since creation (all runs)."""
        self._last_failure: float | None = None
        self._attempts: deque[float] = deque(maxlen=self.policy.max_attempts)

    @property
    def failing(self) -> bool:
        """Whether the camera refused the last login."""
        return self.failures > 0

    def attempt(self, now: float) -> None:
        """A login is about to be tried (counted only while failing)."""
        if self.failures:
            self._attempts.append(now)

    def failed(self, now: float) -> float:
        """The camera refused the login at ``now``; returns the earliest time of the next attempt."""
        if not self.failures:
            self._attempts.clear()
            self._attempts.append(now)  # the attempt that just failed opens the window
        self.failures += 1
        self.attempts_refused += 1
        self._last_failure = now
        return self.next_attempt_at(now)

    def succeeded(self) -> None:
        """The camera accepted the login: the run of failures ends."""
        self.failures = 0
        self._last_failure = None
        self._attempts.clear()

    def next_attempt_at(self, now: float) -> float:
        """The earliest time a login may be tried (``now`` when nothing holds it back)."""
        if not self.failures or self._last_failure is None:
            return now
        p = self.policy
        at = self._last_failure + p.backoff_s[min(self.failures, len(p.backoff_s)) - 1]
        if len(self._attempts) >= p.max_attempts:
            at = max(at, self._attempts[0] + p.window_s)
        return max(now, at)


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
        self.retry_at: float | None = None
        """When the next connection attempt is due, while the camera is not online."""
        self.auth_failed = False
        """Whether the camera refused our login (the error says so; retries are held back)."""

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
            self.retry_at = None
            self.auth_failed = False
            return self._set("online", now)
        return False

    def failed(self, now: float, error: str, *, retry_at: float | None = None, auth: bool = False) -> bool:
        """An attempt failed or a connection ended with ``error`` (credentials already redacted); the next
        attempt is due at ``retry_at``; ``auth``: the camera refused the login (offline at once: retries are
        minutes apart). Returns whether the state or the error text changed."""
        self.failures += 1
        # A new retry time alone is news only for a refused login (minutes away); a dead camera's second-by-second
        # retries would otherwise publish a status every second (the heartbeat carries retry_at anyway).
        error_changed = error != self.error or auth != self.auth_failed or (auth and retry_at != self.retry_at)
        self.error = error
        self.retry_at = retry_at
        self.auth_failed = auth
        self._arrivals.clear()
        state: CameraState = "offline" if self.failures >= self.offline_after_failures or auth else "reconnecting"
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
            retry_at=self.retry_at if state != "online" else None, auth_failed=self.auth_failed,
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
