"""Rate limits (logins, manual broadcasts, clip uploads) that hold under a parallel burst and across wall servers.

An attempt is *counted before* the password is checked: :meth:`acquire` checks every window of the attempt and
records it in all of them in one step (one event-loop step here, one Lua script in Redis), so 600 simultaneous wrong
passwords see at most the limit checked and the rest get 429. A right password gives the attempt back
(:meth:`release`), so people who type their password correctly are never locked out by their own logins; successful
logins have a window of their own (per user), so nobody can churn sessions without end.

``SlidingWindows`` is the pure core (takes ``now``); :class:`LocalLimiter` is its asynchronous adapter for one
process, :class:`RedisLimiter` the same contract on Redis sorted sets for several wall servers.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` attempts under ``key`` within ``window_s`` seconds."""

    key: str
    limit: int
    window_s: float


class SlidingWindows:
    """Sliding-window counters, each attempt a (time, id) entry so a single attempt can be given back."""

    def __init__(self, *, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self._entries: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def _recent(self, key: str, window_s: float, now: float) -> deque[tuple[float, str]]:
        entries = self._entries.get(key)
        if entries is None:
            return deque()
        while entries and entries[0][0] <= now - window_s:
            entries.popleft()
        if not entries:
            del self._entries[key]
        return entries

    def acquire(self, windows: Sequence[Window], now: float, attempt_id: str) -> float:
        """Record the attempt in every window and return 0, or record nothing and return the seconds to wait."""
        wait = 0.0
        for w in windows:
            entries = self._recent(w.key, w.window_s, now)
            if len(entries) >= w.limit:
                wait = max(wait, entries[len(entries) - w.limit][0] + w.window_s - now, 0.001)
        if wait > 0:
            return wait
        for w in windows:
            kept = self._entries.get(w.key)
            if kept is None:
                kept = self._entries[w.key] = deque()
                while len(self._entries) > self.max_keys:  # bounded memory: the oldest keys go first
                    self._entries.popitem(last=False)
            kept.append((now, attempt_id))
        return 0.0

    def release(self, windows: Sequence[Window], attempt_id: str) -> None:
        """Give back one recorded attempt (a right password)."""
        for w in windows:
            entries = self._entries.get(w.key)
            if entries is None:
                continue
            for item in entries:
                if item[1] == attempt_id:
                    entries.remove(item)
                    break
            if not entries:
                del self._entries[w.key]


class Limiter(Protocol):
    async def acquire(self, windows: Sequence[Window], now: float) -> tuple[float, str]:
        """(0, attempt id) when recorded in every window; (seconds to wait, "") when refused."""
        ...

    async def release(self, windows: Sequence[Window], attempt_id: str) -> None: ...


class LocalLimiter:
    """:class:`SlidingWindows` for one process (``citywall up``): atomic because it never awaits in between."""

    def __init__(self) -> None:
        self.windows = SlidingWindows()
        self.refused = 0

    async def acquire(self, windows: Sequence[Window], now: float) -> tuple[float, str]:
        attempt_id = secrets.token_hex(8)
        wait = self.windows.acquire(windows, now, attempt_id)
        if wait > 0:
            self.refused += 1
            return wait, ""
        return 0.0, attempt_id

    async def release(self, windows: Sequence[Window], attempt_id: str) -> None:
        self.windows.release(windows, attempt_id)


# KEYS: the windows' keys; ARGV: now, attempt id, then (limit, window_s) per key. One script = one atomic step
# for every wall server of the cluster.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w < 0.001 then w = 0.001 end
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return '0'
"""


class RedisLimiter:
    """The same windows as sorted sets ``{prefix}:limit:{key}`` in Redis, shared by every wall server."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_ACQUIRE)
        self._lock = asyncio.Lock()  # one Redis connection per wall server, however large the burst
        self.refused = 0

    def _key(self, key: str) -> str:
        return f"{self._prefix}:limit:{key}"

    async def acquire(self, windows: Sequence[Window], now: float) -> tuple[float, str]:
        attempt_id = secrets.token_hex(8)
        args: list[Any] = [repr(now), attempt_id]
        for w in windows:
            args += [w.limit, repr(w.window_s)]
        async with self._lock:
            raw = await self._script(keys=[self._key(w.key) for w in windows], args=args)
        wait = float(raw.decode() if isinstance(raw, bytes) else raw)
        if wait > 0:
            self.refused += 1
            return wait, ""
        return 0.0, attempt_id

    async def release(self, windows: Sequence[Window], attempt_id: str) -> None:
        async with self._lock, self._redis.pipeline(transaction=True) as pipe:
            for w in windows:
                pipe.zrem(self._key(w.key), attempt_id)
            await pipe.execute()
