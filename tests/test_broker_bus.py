"""The Bus on a real redis-server: ordering, tail from the end and resumed, consumer groups with crash replay,
trimming, state tables, redacted errors, and a tail that survives a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pytest

from broker.bus import Bus, BusUnavailable, Entry
from broker.embedded import EmbeddedRedis, free_port
from tests.fixtures.brokers import blocked_readers, wait_for_blocked_reader


@dataclass
class Ping:
    """A minimal boundary message: what the Bus needs and nothing of the domain."""

    STREAM: ClassVar[str] = "pings"
    n: int
    note: str = "路口"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _take(agen: AsyncIterator[Entry], n: int, timeout: float = 5.0) -> list[Entry]:
    out: list[Entry] = []

    async def run() -> None:
        async for entry in agen:
            out.append(entry)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def _started(bus: Bus, agen: AsyncIterator[Entry]) -> asyncio.Future[Entry]:
    """Begin iterating (the tail fixes its "$" on the first step) and wait until its XREAD blocks in Redis."""
    before = await blocked_readers(bus)
    task = asyncio.ensure_future(agen.__anext__())
    await wait_for_blocked_reader(bus, before)
    return task


async def test_publish_history_and_since_keep_order(bus: Bus) -> None:
    ids = [await bus.publish(Ping(n)) for n in range(5)]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    newest_first = await bus.history("pings", count=3)
    assert [e.data["n"] for e in newest_first] == [4, 3, 2]
    assert newest_first[0] == Entry("pings", ids[4], {"n": 4, "note": "路口"})
    after = await bus.since("pings", ids[1])
    assert [e.id for e in after] == ids[2:]
    assert [e.data["n"] for e in await bus.since("pings", "0")] == [0, 1, 2, 3, 4]
    assert await bus.since("pings", ids[4]) == []
    assert await bus.history("nothing-here") == []
    with pytest.raises(ValueError, match="last_id '\\$'"):
        await bus.since("pings", "$")


async def test_publish_raw_refuses_what_is_not_json(bus: Bus) -> None:
    with pytest.raises(TypeError, match="stream 'pings'.*not JSON"):
        await bus.publish_raw("pings", {"bad": object()})
    with pytest.raises(ValueError, match="stream 'a b'"):
        await bus.publish_raw("a b", {})


async def test_tail_from_end_sees_only_new_entries(bus: Bus) -> None:
    await bus.publish(Ping(0))
    agen = bus.tail(["pings", "other"], block_ms=100)
    first = await _started(bus, agen)
    await bus.publish(Ping(1))
    await bus.publish_raw("other", {"x": 1})
    await bus.publish(Ping(2))
    got = [await asyncio.wait_for(first, 5)] + await _take(agen, 2)
    # order is guaranteed per stream (XREAD answers stream by stream)
    assert [e.data["n"] for e in got if e.stream == "pings"] == [1, 2]
    assert [e.data for e in got if e.stream == "other"] == [{"x": 1}]
    await agen.aclose()


async def test_last_ids_are_a_concrete_end_of_stream(bus: Bus) -> None:
    assert await bus.last_ids(["pings"]) == {"pings": "0-0"}
    newest = [await bus.publish(Ping(n)) for n in range(2)][-1]
    ids = await bus.last_ids(["pings"])
    assert ids == {"pings": newest}
    agen = bus.tail(["pings"], ids, block_ms=100)
    later = await bus.publish(Ping(2))  # before the first iteration, after the start was fixed: delivered
    assert [e.id for e in await _take(agen, 1)] == [later]
    await agen.aclose()


async def test_tail_resumes_from_given_ids_with_exactly_the_missed_entries(bus: Bus) -> None:
    ids = [await bus.publish(Ping(n)) for n in range(6)]
    agen = bus.tail(["pings"], {"pings": ids[2]}, block_ms=100)
    missed = await _take(agen, 3)
    assert [e.id for e in missed] == ids[3:]
    live = await _started(bus, agen)
    assert not live.done()  # blocked: nothing beyond the missed ones was delivered again
    new_id = await bus.publish(Ping(6))
    assert (await asyncio.wait_for(live, 5)).id == new_id
    await agen.aclose()


async def test_tail_skips_malformed_entries_and_counts_them(bus: Bus) -> None:
    agen = bus.tail(["pings"], {"pings": "0"}, block_ms=100)
    await bus._redis.xadd(bus.key("pings"), {"data": "not json"})
    await bus._redis.xadd(bus.key("pings"), {"other": "field"})
    good = await bus.publish(Ping(1))
    assert [e.id for e in await _take(agen, 1)] == [good]
    assert bus.stats()["malformed"] == 2
    await agen.aclose()


async def test_consume_replays_own_pending_after_a_crash(redis_url: str, bus: Bus) -> None:
    await bus.ensure_group("pings", "workers")
    await bus.ensure_group("pings", "workers")  # idempotent
    ids = [await bus.publish(Ping(n)) for n in range(3)]
    crashed = await Bus.connect(redis_url, prefix=bus.prefix)
    got = await crashed.consume("pings", "workers", "w1", block_ms=100)
    assert [e.id for e in got] == ids
    await crashed.ack("pings", "workers", ids[0])
    await crashed.close()  # "crash": ids[1:] were delivered, never acked

    later = await bus.publish(Ping(3))
    again = await bus.consume("pings", "workers", "w1", block_ms=100)
    assert [e.id for e in again] == ids[1:]  # own pending first …
    await bus.ack("pings", "workers", *ids[1:])
    assert [e.id for e in await bus.consume("pings", "workers", "w1", block_ms=100)] == [later]  # … then new
    await bus.ack("pings", "workers", later)
    assert await bus.consume("pings", "workers", "w1", block_ms=50) == []
    assert await bus.pending_count("pings", "workers") == 0


async def test_two_consumers_split_entries_without_duplicates(bus: Bus) -> None:
    await bus.ensure_group("pings", "g")
    ids = {await bus.publish(Ping(n)) for n in range(40)}
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def worker(name: str) -> None:
        while True:
            batch = await bus.consume("pings", "g", name, block_ms=50, count=3)
            if not batch:
                return
            seen[name] += [e.id for e in batch]
            await bus.ack("pings", "g", *(e.id for e in batch))
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(worker("a"), worker("b")), 10)
    assert seen["a"] and seen["b"], seen
    assert not set(seen["a"]) & set(seen["b"])
    assert set(seen["a"]) | set(seen["b"]) == ids


async def test_consume_claims_entries_abandoned_by_a_consumer_that_never_returned(bus: Bus) -> None:
    await bus.ensure_group("pings", "g")
    entry_id = await bus.publish(Ping(1))
    assert [e.id for e in await bus.consume("pings", "g", "gone-1234", block_ms=50)] == [entry_id]
    assert await bus.consume("pings", "g", "new-5678", block_ms=50, claim_idle_ms=10_000) == []  # not idle enough
    await asyncio.sleep(0.15)
    claimed = await bus.consume("pings", "g", "new-5678", block_ms=50, claim_idle_ms=100)
    assert [e.id for e in claimed] == [entry_id] and bus.stats()["claimed"] == 1


async def test_group_created_late_still_gets_what_is_already_there(bus: Bus) -> None:
    early = await bus.publish(Ping(0))
    await bus.ensure_group("pings", "late")
    await bus.ensure_group("pings", "only-new", start_id="$")
    late = await bus.publish(Ping(1))
    assert [e.id for e in await bus.consume("pings", "late", "c", block_ms=50)] == [early, late]
    assert [e.id for e in await bus.consume("pings", "only-new", "c", block_ms=50)] == [late]


async def test_maxlen_bounds_the_stream(redis_url: str) -> None:
    small = await Bus.connect(redis_url, prefix=f"t{uuid.uuid4().hex[:12]}", maxlen=100)
    try:
        ids = [await small.publish(Ping(n)) for n in range(1000)]
        length = await small._redis.xlen(small.key("pings"))
        assert 100 <= length < 300, length  # "~": trimmed in whole radix-tree nodes, never below maxlen
        assert (await small.history("pings", count=1))[0].id == ids[-1]
    finally:
        await small.purge()
        await small.close()


async def test_move_keeps_ids_while_they_stay_in_order_and_deletes_only_what_it_moved(bus: Bus) -> None:
    target_first = await bus.redis.xadd(bus.key("b"), {"data": '{"n": 0}'}, id="1-0")   # older than all of "a"
    ids = [await bus.publish_raw("a", {"n": n, "pick": n != 2}) for n in (1, 2, 3)]
    assert await bus.move("a", "b", lambda d: d["pick"], page=1) == 2   # paging: one entry per read
    moved = await bus.since("b", "0")
    assert [(e.id, e.data["n"]) for e in moved] == [(target_first, 0), (ids[0], 1), (ids[2], 3)]
    assert [e.id for e in await bus.since("a", "0")] == [ids[1]]
    assert await bus.move("a", "b", lambda d: d["pick"]) == 0          # again: nothing twice


async def test_move_gives_a_new_id_to_an_entry_older_than_the_targets_newest(bus: Bus) -> None:
    old = await bus.redis.xadd(bus.key("a"), {"data": '{"n": 1}'}, id="5-0")
    newer = await bus.redis.xadd(bus.key("b"), {"data": '{"n": 0}'}, id="9-0")
    assert await bus.move("a", "b", lambda d: True) == 1
    [first, second] = await bus.since("b", "0")
    assert (first.id, first.data, second.data) == (newer, {"n": 0}, {"n": 1})
    assert second.id not in (old, newer) and await bus.since("a", "0") == []


async def test_state_tables_keep_the_latest_value_per_key(bus: Bus) -> None:
    assert await bus.get_state("cameras") == {}
    await bus.put_state("cameras", "cam-a", {"state": "connecting"})
    await bus.put_state("cameras", "cam-a", {"state": "online", "名": "东门"})
    await bus.put_state("cameras", "cam-b", {"state": "offline"})
    assert await bus.get_state("cameras") == {"cam-a": {"state": "online", "名": "东门"}, "cam-b": {"state": "offline"}}


async def test_unreachable_redis_is_bus_unavailable_with_the_password_redacted() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BusUnavailable) as info:
        await asyncio.wait_for(Bus.connect(url), 10)
    text = str(info.value)
    assert "secret" not in text and "redis://:***@127.0.0.1" in text, text
    assert text.startswith("cannot reach Redis at ")


async def test_password_protected_redis_wants_the_right_password(tmp_path) -> None:
    with EmbeddedRedis(tmp_path, password="s3cret-pw") as server:
        assert server.url.startswith("redis://:s3cret-pw@127.0.0.1:")
        good = await Bus.connect(server.url, prefix="auth")
        await good.ping()
        await good.close()
        wrong = server.url.replace("s3cret-pw", "hunter2")
        with pytest.raises(BusUnavailable) as info:
            await Bus.connect(wrong)
        assert "hunter2" not in str(info.value) and "***" in str(info.value), info.value


async def test_tail_survives_a_redis_outage_and_restart(tmp_path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True)
    url = server.start()
    bus = await Bus.connect(url, prefix="restart")
    agen = bus.tail(["pings"], block_ms=200)
    try:
        first = await _started(bus, agen)
        before = await bus.publish(Ping(1))
        assert (await asyncio.wait_for(first, 5)).id == before
        pending = await _started(bus, agen)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.5)  # longer than redis-py's own retries: the tail's reconnect loop has to work
        assert await asyncio.to_thread(server.start) == url  # same port
        assert [e.id for e in await bus.history("pings")] == [before]  # the AOF brought the entry back
        later = [await bus.publish(Ping(n)) for n in (2, 3)]
        got = [await asyncio.wait_for(pending, 10)] + await _take(agen, 1, timeout=10)
        assert [e.id for e in got] == later  # no duplicate of `before`, nothing missed
        assert bus.stats()["reconnects"] >= 1
        with contextlib.suppress(asyncio.TimeoutError):  # and nothing more
            extra = await asyncio.wait_for(agen.__anext__(), 0.5)
            pytest.fail(f"unexpected extra entry {extra}")
    finally:
        await agen.aclose()
        await bus.close()
        server.stop()


async def test_window_at_the_ends_of_the_id_space_is_empty_not_an_error(bus: Bus) -> None:
    """Redis refuses an exclusive bound below 0-0 or above the largest id; the bus answers an empty page."""
    await bus.publish(Ping(1))
    assert await bus.window("pings", before="0-0") == []
    assert await bus.window("pings", before="000-0000") == []
    assert await bus.window("pings", after=f"{(1 << 64) - 1}-{(1 << 64) - 1}") == []
    assert len(await bus.window("pings", after="0-0")) == 1
