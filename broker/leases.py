"""Leases with heartbeats on Redis: several workers share a set of items (cameras) with no coordinator.

Workers share items within a *pool* (``cameras`` for camera workers, ``bridge`` for MQTT bridges), so roles never
count each other. Keys (``{prefix}`` is the bus prefix, ``{pool}`` the pool):
- ``{prefix}:{pool}:hb:{worker}`` — the worker's heartbeat, ``SET … PX ttl``; a worker is live while it exists.
- ``{prefix}:{pool}:workers`` — hash worker → JSON info (host, pid, since, …), pruned of workers whose heartbeat
  died.
- ``{prefix}:{pool}:lease:{item}`` — the item's holder, ``PX ttl``, renewed every round by its holder only (a Lua
  compare-and-expire), released by compare-and-delete, taken over from a dead holder by compare-and-set.
- ``{prefix}:{pool}:config`` — hash key → digest of the configuration every worker must agree on.

Each round (``interval_s``) a :class:`LeaseKeeper` beats, reads the live workers and the holders, computes
:func:`broker.shares.plan` and applies it. A worker that dies stops beating: after ``ttl_s`` the others see it dead
and take its items over at once (so a camera moves within ``ttl_s + interval_s``). A worker that cannot reach Redis
for ``ttl_s - interval_s`` fences itself: it reports every item released, because its leases may have lapsed and
another worker may hold them — two connections to one camera are worse than a short gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.shares import plan

log = logging.getLogger("citywall.broker.leases")

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TAKE_OVER = """
local v = redis.call('get', KEYS[1])
if v == false or v == ARGV[2] then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[3]) return 1 end
return 0
"""
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

# The client decodes replies (``decode_responses=True``), so every reply below is str; redis-py annotates each
# command's reply as ``bytes | str`` whatever the client, hence the casts (no runtime cost, no conversion).


class ClusterMismatch(RuntimeError):
    """This worker's configuration disagrees with the cluster's; ``differences`` names each section."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("configuration differs from the running cluster's: " + "; ".join(differences))


@dataclass(frozen=True)
class LeaseChange:
    """What one round changed for this worker (both empty when nothing did)."""

    acquired: frozenset[str] = frozenset()
    released: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.acquired or self.released)


@dataclass
class LeaseStats:
    """Counters for health/metrics."""

    rounds: int = 0
    failed_rounds: int = 0
    acquired: int = 0
    released: int = 0
    taken_over: int = 0
    fenced: int = 0
    live_workers: int = 0


@dataclass
class _Keys:
    prefix: str
    pool: str
    worker: str
    hb: str = field(init=False)
    workers: str = field(init=False)
    config: str = field(init=False)

    def __post_init__(self) -> None:
        self.hb = self.heartbeat(self.worker)
        self.workers = f"{self.prefix}:{self.pool}:workers"
        self.config = f"{self.prefix}:{self.pool}:config"

    def heartbeat(self, worker: str) -> str:
        return f"{self.prefix}:{self.pool}:hb:{worker}"

    def lease(self, item: str) -> str:
        return f"{self.prefix}:{self.pool}:lease:{item}"


class LeaseKeeper:
    """Keeps this worker's fair share of ``items`` leased; see the module docstring for the protocol.

    ``client`` is a ``redis.asyncio.Redis`` with ``decode_responses=True`` (``Bus.redis``). ``info`` is published
    with the heartbeat (e.g. the worker's live-video address, read by wall servers with :func:`holder_info`).
    ``clock`` is monotonic seconds (injectable for tests).
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str, worker: str, items: Iterable[str],
                 pool: str = "cameras", ttl_s: float = 6.0, interval_s: float = 1.0,
                 info: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < interval_s < ttl_s / 2:
            raise ValueError(f"interval_s {interval_s} must be positive and under half of ttl_s {ttl_s}")
        self._redis = client
        self._keys = _Keys(prefix, pool, worker)
        self.worker = worker
        self.items = sorted(set(items))
        self.ttl_ms = int(ttl_s * 1000)
        self.interval_s = interval_s
        self.clock = clock
        self.held: frozenset[str] = frozenset()
        self.stats = LeaseStats()
        self._last_ok: float | None = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._take_over = client.register_script(_TAKE_OVER)
        self._info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                                 **(info or {})})

    # ------------------------------------------------------------------------------------------------ reading
    async def live_workers(self) -> list[str]:
        """Workers with a live heartbeat (and prunes the registry of dead ones)."""
        names = sorted(cast(list[str], await self._redis.hkeys(self._keys.workers)))
        if not names:
            return []
        beats = cast(list[str | None], await self._redis.mget([self._keys.heartbeat(n) for n in names]))
        dead = [n for n, b in zip(names, beats, strict=False) if b is None]
        if dead:
            await self._redis.hdel(self._keys.workers, *dead)
        return [n for n, b in zip(names, beats, strict=False) if b is not None]

    async def holders(self) -> dict[str, str | None]:
        """item → current holder (None when free)."""
        if not self.items:
            return {}
        values = cast(list[str | None], await self._redis.mget([self._keys.lease(i) for i in self.items]))
        return dict(zip(self.items, values, strict=False))

    # ------------------------------------------------------------------------------------------------ joining
    async def check_config(self, fingerprint: Mapping[str, str]) -> None:
        """Refuse to join a cluster whose configuration differs (ClusterMismatch naming each section).

        The first worker of a cluster (no live workers) records its fingerprint; later ones must match it.
        """
        if not await self.live_workers():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._keys.config)
                if fingerprint:
                    # built in place: redis-py's ``mapping`` is a Mapping invariant in its key type (FieldT)
                    pipe.hset(self._keys.config, mapping={k: v for k, v in fingerprint.items()})
                await pipe.execute()
            return
        cluster = cast(dict[str, str], await self._redis.hgetall(self._keys.config))
        differences = []
        for key in sorted(set(cluster) | set(fingerprint)):
            mine, theirs = fingerprint.get(key), cluster.get(key)
            if mine == theirs:
                continue
            if mine is None:
                differences.append(f"{key}: missing here (the cluster has it)")
            elif theirs is None:
                differences.append(f"{key}: not in the cluster's configuration")
            else:
                differences.append(f"{key}: differs (here {mine[:12]}, cluster {theirs[:12]})")
        if differences:
            raise ClusterMismatch(differences)

    async def record_config(self, fingerprint: Mapping[str, str]) -> None:
        """The cluster's configuration changed while running (every member adopted it): record the new one, so
        :meth:`check_config` compares later joiners with it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.config)
            if fingerprint:
                pipe.hset(self._keys.config, mapping={k: v for k, v in fingerprint.items()})
            await pipe.execute()

    # ------------------------------------------------------------------------------------------------ rounds
    async def tick(self) -> LeaseChange:
        """One round: beat, read, plan, apply. Redis errors propagate (``run`` handles them and fences)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.hb, "1", px=self.ttl_ms)
            pipe.hset(self._keys.workers, self.worker, self._info)
            await pipe.execute()
        live = await self.live_workers()
        holders = await self.holders()
        todo = plan(self.worker, self.items, live, holders)
        ours = set()
        for item in todo.keep:
            if await self._renew(keys=[self._keys.lease(item)], args=[self.worker, self.ttl_ms]):
                ours.add(item)
        for item in todo.acquire:
            if await self._redis.set(self._keys.lease(item), self.worker, nx=True, px=self.ttl_ms):
                ours.add(item)
        for item, dead in todo.take_over:
            if await self._take_over(keys=[self._keys.lease(item)], args=[self.worker, dead, self.ttl_ms]):
                ours.add(item)
                self.stats.taken_over += 1
                log.info("took %s over from %s (heartbeat gone)", item, dead)
        for item in todo.release:
            await self._release(keys=[self._keys.lease(item)], args=[self.worker])
        self._last_ok = self.clock()
        self.stats.rounds += 1
        self.stats.live_workers = len(set(live) | {self.worker})
        return self._settle(frozenset(ours))

    def fence_if_stale(self) -> LeaseChange:
        """After a failed round: drop everything once our leases may have lapsed (``ttl - interval`` since success)."""
        lapsed = self._last_ok is None or self.clock() - self._last_ok >= self.ttl_ms / 1000 - self.interval_s
        if self.held and lapsed:
            self.stats.fenced += 1
            log.warning("no Redis round for %.1f s: releasing %d items locally (leases may have lapsed)",
                        self.clock() - (self._last_ok or 0), len(self.held))
            return self._settle(frozenset())
        return LeaseChange()

    async def leave(self) -> LeaseChange:
        """Release every lease and the heartbeat (a clean stop: the others take over on their next round)."""
        try:
            for item in sorted(self.held):
                await self._release(keys=[self._keys.lease(item)], args=[self.worker])
            await self._redis.delete(self._keys.hb)
            await self._redis.hdel(self._keys.workers, self.worker)
        except _DOWN as exc:
            log.warning("could not release leases cleanly (%s); they lapse in %d ms", exc, self.ttl_ms)
        return self._settle(frozenset())

    async def run(self, stop: asyncio.Event, on_change: Callable[[LeaseChange], Awaitable[Any]]) -> None:
        """Rounds every ``interval_s`` until ``stop``; ``on_change`` hears every acquisition and release."""
        try:
            while not stop.is_set():
                try:
                    change = await self.tick()
                except _DOWN as exc:
                    self.stats.failed_rounds += 1
                    log.warning("lease round failed: %s", exc)
                    change = self.fence_if_stale()
                if change:
                    await on_change(change)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            change = await self.leave()
            if change:
                await on_change(change)

    def _settle(self, now_held: frozenset[str]) -> LeaseChange:
        change = LeaseChange(now_held - self.held, self.held - now_held)
        self.stats.acquired += len(change.acquired)
        self.stats.released += len(change.released)
        self.held = now_held
        return change


async def holder_info(client: aioredis.Redis, prefix: str, item: str,
                      pool: str = "cameras") -> tuple[str, dict[str, Any]] | None:
    """Who holds ``item`` and what that worker published about itself; None when nobody (live) holds it."""
    keys = _Keys(prefix, pool, "")
    holder = cast(str | None, await client.get(keys.lease(item)))
    if holder is None:
        return None
    raw = await client.hget(keys.workers, holder)
    if raw is None:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return holder, info if isinstance(info, dict) else {}
