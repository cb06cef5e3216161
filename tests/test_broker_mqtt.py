"""MqttBridge on a real redis-server and a real mosquitto: topics and payloads, retained camera status for late
subscribers, the bounded outbox while the broker is down, and resuming after a bridge restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.bus import Bus, Entry
from broker.embedded import EmbeddedMosquitto
from broker.mqtt_bridge import MqttBridge, route, topic_segment
from tests.fixtures.brokers import Subscriber, blocked_readers, wait_for_blocked_reader
from tests.waiting import eventually


@pytest.fixture
def subscribers() -> Iterator[list[Subscriber]]:
    made: list[Subscriber] = []
    yield made
    for sub in made:
        sub.close()


async def _subscribe(made: list[Subscriber], url: str, topic_filter: str) -> Subscriber:
    sub = await asyncio.to_thread(Subscriber, url, topic_filter)
    made.append(sub)
    return sub


@pytest.fixture
async def bridge(bus: Bus, mqtt_url: str) -> AsyncIterator[MqttBridge]:
    """A running bridge on the test's own prefix (the bus prefix), so retained topics never leak between tests."""
    b = MqttBridge(bus, mqtt_url, prefix=bus.prefix, block_ms=100)
    stop = asyncio.Event()
    before = await blocked_readers(bus)
    task = asyncio.create_task(b.run(stop))
    await eventually(lambda: b.connected)
    await wait_for_blocked_reader(bus, before)  # the tail has fixed its starting point
    yield b
    stop.set()
    await asyncio.wait_for(task, 5)


def _alarm(n: int, camera: str = "cam-1") -> dict[str, Any]:
    return {"alarm_id": f"a-{n}", "phase": "raised", "camera_id": camera, "event": "vending", "at": 1000.0 + n}


def test_routes_and_topic_levels() -> None:
    assert route("cw", Entry("alarms", "1-0", {"camera_id": "cam/1#"})) == ("cw/alarms/cam_1_", 1, False)
    assert route("cw", Entry("camera_status", "1-0", {"camera_id": "c"})) == ("cw/cameras/c/status", 1, True)
    assert route("cw", Entry("case_events", "1-0", {"case_id": "k1"})) == ("cw/cases/k1", 1, False)
    assert route("cw", Entry("case_deadlines", "1-0", {"case_id": "k1"})) == ("cw/cases/k1/deadline", 1, False)
    assert route("cw", Entry("alarms", "1-0", {"phase": "raised"})) is None
    assert route("cw", Entry("other", "1-0", {"camera_id": "c"})) is None
    assert topic_segment("东门 1") == "东门_1"


async def test_bus_entries_arrive_on_their_topics(bus: Bus, bridge: MqttBridge, mqtt_url: str, subscribers) -> None:
    sub = await _subscribe(subscribers, mqtt_url, f"{bus.prefix}/#")
    alarm_id = await bus.publish_raw("alarms", _alarm(1))
    case_id = await bus.publish_raw("case_events", {"case_id": "case-9", "action": "filed", "state": "reported",
                                                    "case": {"title": "无照经营游商"}})
    await bus.publish_raw("alarms", {"phase": "raised"})  # no camera: not routable
    got = await asyncio.to_thread(sub.take, 2)
    assert (f"{bus.prefix}/alarms/cam-1", {**_alarm(1), "id": alarm_id}, False) in got
    assert (f"{bus.prefix}/cases/case-9", {"case_id": "case-9", "action": "filed", "state": "reported",
                                           "case": {"title": "无照经营游商"}, "id": case_id}, False) in got
    await eventually(lambda: bridge.stats()["skipped"] == 1)
    await bus.publish_raw("alarms", _alarm(2, camera="fence"))
    assert await asyncio.to_thread(sub.next_is, f"{bus.prefix}/alarms/fence")
    stats = bridge.stats()
    assert stats["sent"] == 3 and stats["dropped"] == 0 and stats["queued"] == 0
    await eventually(lambda: bridge.stats()["published"] == 3)  # all PUBACKed


async def test_camera_status_is_retained_for_late_subscribers(bus: Bus, bridge: MqttBridge, mqtt_url: str,
                                                              subscribers) -> None:
    await bus.publish_raw("camera_status", {"camera_id": "cam-a", "state": "connecting"})
    last = await bus.publish_raw("camera_status", {"camera_id": "cam-a", "state": "online"})
    await eventually(lambda: bridge.stats()["published"] == 2)
    late = await _subscribe(subscribers, mqtt_url, f"{bus.prefix}/cameras/+/status")
    [(topic, payload, retained)] = await asyncio.to_thread(late.take, 1)
    assert topic == f"{bus.prefix}/cameras/cam-a/status" and retained
    assert payload == {"camera_id": "cam-a", "state": "online", "id": last}
    await bus.publish_raw("camera_status", {"camera_id": "fence", "state": "online"})
    assert await asyncio.to_thread(late.next_is, f"{bus.prefix}/cameras/fence/status")  # no older status retained


async def test_outbox_is_bounded_while_the_broker_is_down(tmp_path: Path, bus: Bus, subscribers) -> None:
    broker = EmbeddedMosquitto(tmp_path / "mosquitto")
    url = broker.start()
    b = MqttBridge(bus, url, prefix=bus.prefix, outbox_size=5)
    try:
        b.start()
        await eventually(lambda: b.connected)
        await asyncio.to_thread(broker.stop)
        await eventually(lambda: not b.connected)
        for n in range(8):  # retained, so a subscriber after the restart can see which ones survived
            b.publish_json(f"{bus.prefix}/speakers/s{n}", {"n": n}, qos=1, retain=True)
        assert b.stats() | {"connected": None} == {"sent": 0, "published": 0, "dropped": 3, "skipped": 0,
                                                   "queued": 5, "connected": None}
        assert await asyncio.to_thread(broker.start) == url
        await eventually(lambda: b.stats()["published"] == 5, timeout=15)  # paho reconnects (1 s backoff) and flushes
        sub = await _subscribe(subscribers, url, f"{bus.prefix}/speakers/#")
        got = await asyncio.to_thread(sub.take, 5)
        assert sorted(p["n"] for _, p, retained in got if retained) == [3, 4, 5, 6, 7]  # oldest three dropped
        b.publish_json(f"{bus.prefix}/speakers/fence", {"n": -1}, qos=1)
        assert await asyncio.to_thread(sub.next_is, f"{bus.prefix}/speakers/fence")
        with pytest.raises(ValueError, match="qos 3"):
            b.publish_json("x", {}, qos=3)
        with pytest.raises(ValueError, match="topic 'a/#'"):
            b.publish_json("a/#", {})
    finally:
        await asyncio.to_thread(b.close)
        broker.stop()


async def test_bridge_restart_resumes_where_it_stopped(bus: Bus, mqtt_url: str, subscribers) -> None:
    sub = await _subscribe(subscribers, mqtt_url, f"{bus.prefix}/alarms/#")
    first = MqttBridge(bus, mqtt_url, prefix=bus.prefix, block_ms=100)
    stop = asyncio.Event()
    before = await blocked_readers(bus)
    task = asyncio.create_task(first.run(stop))
    await eventually(lambda: first.connected)
    await wait_for_blocked_reader(bus, before)
    a1 = await bus.publish_raw("alarms", _alarm(1))
    assert [p["id"] for _, p, _ in await asyncio.to_thread(sub.take, 1)] == [a1]
    stop.set()
    await asyncio.wait_for(task, 5)

    missed = [await bus.publish_raw("alarms", _alarm(n)) for n in (2, 3)]  # while no bridge runs
    # the same instance run again, as the supervisor does after a failure; a new process resumes the same way
    # (the position lives in the bus's state table, not in the object)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    try:
        got = await asyncio.to_thread(sub.take, 2)
        assert [p["id"] for _, p, _ in got] == missed  # a1 is not sent again
        await bus.publish_raw("alarms", _alarm(4, camera="fence"))
        assert await asyncio.to_thread(sub.next_is, f"{bus.prefix}/alarms/fence")
        assert await bus.get_state("mqtt_bridge") != {}
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_bad_urls_and_prefixes_are_refused(bus: Bus) -> None:
    with pytest.raises(ValueError, match=r"mqtt_url 'http://u:\*\*\*@h:1'"):
        MqttBridge(bus, "http://u:pw@h:1")
    with pytest.raises(ValueError, match="prefix 'a/b'"):
        MqttBridge(bus, "mqtt://127.0.0.1:1", prefix="a/b")
