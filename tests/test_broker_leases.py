"""Leases on a real redis-server: workers share cameras fairly, a dead worker's cameras move, config must agree."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from broker.bus import Bus
from broker.leases import ClusterMismatch, LeaseChange, LeaseKeeper
from tests.waiting import eventually

CAMS = [f"cam-{i:02d}" for i in range(12)]
TTL = 1.5
STEP = 0.25


def keeper(bus: Bus, name: str, items=CAMS) -> LeaseKeeper:
    return LeaseKeeper(bus.redis, prefix=bus.prefix, worker=name, items=items, ttl_s=TTL, interval_s=STEP)


class Worker:
    """A keeper running in a task, with the set of cameras it believes it holds (as a camera manager would)."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.keeper = keeper(bus, name)
        self.cameras: set[str] = set()
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def _on_change(self, change: LeaseChange) -> None:
        assert not (change.acquired & self.cameras), "acquired a camera it already had"
        self.cameras |= change.acquired
        self.cameras -= change.released

    def start(self) -> Worker:
        self.task = asyncio.create_task(self.keeper.run(self.stop, self._on_change))
        return self

    async def stop_cleanly(self) -> None:
        self.stop.set()
        await self.task

    async def crash(self) -> None:
        """Die without releasing anything (the task is cancelled mid-sleep; no leave())."""
        self.keeper.leave = _no_leave  # type: ignore[method-assign]
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _no_leave() -> LeaseChange:
    return LeaseChange()


def until(predicate):
    """``eventually`` wants an awaitable check; these predicates read local state."""
    async def check():
        return predicate()
    return check


def owners(*workers: Worker) -> dict[str, str]:
    out: dict[str, str] = {}
    for w in workers:
        for cam in w.cameras:
            assert cam not in out, f"{cam} held by {out.get(cam)} and {w.keeper.worker}"
            out[cam] = w.keeper.worker
    return out


async def test_one_worker_holds_everything_and_a_second_takes_a_fair_share(bus: Bus) -> None:
    a = Worker(bus, "a").start()
    await eventually(until(lambda: len(a.cameras) == 12), timeout=5)
    b = Worker(bus, "b").start()
    try:
        await eventually(until(lambda: len(a.cameras) == 6 and len(b.cameras) == 6), timeout=8)
        assert sorted(owners(a, b)) == CAMS
        holders = await a.keeper.holders()
        assert {c: h for c, h in holders.items()} == owners(a, b)
    finally:
        await b.stop_cleanly()
        await a.stop_cleanly()
    assert not a.cameras and not b.cameras
    assert set((await keeper(bus, "probe").holders()).values()) == {None}


async def test_a_crashed_workers_cameras_move_within_ttl_plus_a_round(bus: Bus) -> None:
    a, b, c = (Worker(bus, n).start() for n in "abc")
    try:
        await eventually(until(lambda: [len(w.cameras) for w in (a, b, c)] == [4, 4, 4]), timeout=8)
        lost = set(c.cameras)
        await c.crash()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await eventually(until(lambda: len(a.cameras) + len(b.cameras) == 12), timeout=10)
        moved_after = loop.time() - t0
        assert lost <= a.cameras | b.cameras
        assert moved_after <= TTL + 4 * STEP + 1.0, moved_after
        assert sorted(owners(a, b)) == CAMS
    finally:
        await a.stop_cleanly()
        await b.stop_cleanly()


async def test_a_lease_left_by_a_dead_worker_is_taken_over_before_it_lapses(bus: Bus) -> None:
    # "ghost" died after renewing: its heartbeat is gone but its lease would last another minute.
    await bus.redis.set(f"{bus.prefix}:cameras:lease:cam-00", "ghost", px=60_000)
    k = keeper(bus, "a", items=["cam-00"])
    change = await k.tick()
    assert change.acquired == {"cam-00"} and k.stats.taken_over == 1
    assert await bus.redis.get(f"{bus.prefix}:cameras:lease:cam-00") == "a"
    await k.leave()
    assert await bus.redis.get(f"{bus.prefix}:cameras:lease:cam-00") is None


async def test_a_clean_leave_hands_cameras_over_at_the_next_round(bus: Bus) -> None:
    a, b = Worker(bus, "a").start(), Worker(bus, "b").start()
    try:
        await eventually(until(lambda: len(a.cameras) == 6 and len(b.cameras) == 6), timeout=8)
        await b.stop_cleanly()
        await eventually(until(lambda: len(a.cameras) == 12), timeout=4)
    finally:
        await a.stop_cleanly()


async def test_a_worker_that_loses_redis_fences_itself(bus: Bus) -> None:
    clock = [100.0]
    k = LeaseKeeper(bus.redis, prefix=bus.prefix, worker="a", items=CAMS, ttl_s=TTL, interval_s=STEP,
                    clock=lambda: clock[0])
    first = await k.tick()
    assert first.acquired == frozenset(CAMS)
    clock[0] += TTL - STEP - 0.01
    assert not k.fence_if_stale(), "still within the lease"
    clock[0] += 0.02
    change = k.fence_if_stale()
    assert change.released == frozenset(CAMS) and not k.held and k.stats.fenced == 1
    await k.leave()


async def test_the_cluster_refuses_a_worker_whose_configuration_differs(bus: Bus) -> None:
    a = keeper(bus, "a")
    await a.check_config({"cameras.cam-01": "aaa", "detection": "ddd"})
    await a.tick()
    b = keeper(bus, "b")
    await b.check_config({"cameras.cam-01": "aaa", "detection": "ddd"})  # same: joins
    with pytest.raises(ClusterMismatch) as err:
        await b.check_config({"cameras.cam-01": "bbb", "detection": "ddd", "cameras.cam-02": "x"})
    text = str(err.value)
    assert "cameras.cam-01: differs" in text and "cameras.cam-02: not in the cluster" in text
    assert "detection" not in text
    await a.leave()
    # With nobody left, the next worker starts a new cluster with its own configuration.
    await b.check_config({"cameras.cam-01": "bbb"})


def test_interval_must_leave_room_for_renewal() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        LeaseKeeper(None, prefix="p", worker="w", items=[], ttl_s=1.0, interval_s=0.6)  # type: ignore[arg-type]

