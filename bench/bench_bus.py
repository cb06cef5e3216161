"""Broker figures on loopback: publish→tail latency, publish throughput, bus→MQTT latency.

``python bench/bench_bus.py [--n 1000]`` starts a private redis-server and mosquitto in a temporary directory, measures,
prints one JSON object and stops them. Latencies are one message at a time (send, wait for it, next), so they are
the path's own delay, not queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from broker.bus import Bus
from broker.embedded import EmbeddedMosquitto, EmbeddedRedis
from broker.mqtt_bridge import MqttBridge


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3), "max_ms": round(ms[-1], 3)}


async def _tail_latency(bus: Bus, n: int) -> dict[str, float]:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def reader() -> None:
        async for _ in bus.tail(["bench"], block_ms=1000):
            arrived.put_nowait(time.perf_counter())

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.2)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await bus.publish_raw("bench", {"i": i, "camera_id": "cam-1", "phase": "raised"})
        samples.append(await asyncio.wait_for(arrived.get(), 5) - t0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return _summary(samples)


async def _throughput(bus: Bus, n: int, in_flight: int) -> float:
    payload = {"camera_id": "cam-1", "phase": "raised", "event": "vending", "snapshot": "x/y.jpg", "at": 0.0}
    sem = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with sem:
            await bus.publish_raw("throughput", payload)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return round(n / (time.perf_counter() - t0), 1)


async def _mqtt_latency(bus: Bus, mqtt_url: str, n: int) -> dict[str, Any]:
    bridge = MqttBridge(bus, mqtt_url, prefix=bus.prefix, block_ms=1000)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    got: queue.Queue[float] = queue.Queue()
    ready: queue.Queue[bool] = queue.Queue()
    parts = urlsplit(mqtt_url)
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{bus.prefix}/alarms/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.put(True)
    sub.on_message = lambda c, u, m: got.put(time.perf_counter())
    sub.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    sub.loop_start()
    try:
        await asyncio.to_thread(ready.get, True, 5)
        while not bridge.connected:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            await bus.publish_raw("alarms", {"i": i, "camera_id": "cam-1", "phase": "raised"})
            samples.append(await asyncio.to_thread(got.get, True, 5) - t0)
        return {**_summary(samples), "bridge": bridge.stats()}
    finally:
        sub.disconnect()
        sub.loop_stop()
        stop.set()
        await task


async def main(n: int) -> dict[str, Any]:
    with (tempfile.TemporaryDirectory(prefix="citywall-bench-") as tmp,
          EmbeddedRedis(Path(tmp) / "redis") as redis, EmbeddedMosquitto(Path(tmp) / "mqtt") as mosq):
            bus = await Bus.connect(redis.url, prefix="bench")
            try:
                return {
                    "publish_to_tail": await _tail_latency(bus, n),
                    "publish_per_s_sequential": await _throughput(bus, 5 * n, 1),
                    "publish_per_s_64_in_flight": await _throughput(bus, 5 * n, 64),
                    "bus_to_mqtt": await _mqtt_latency(bus, mosq.url, n),
                }
            finally:
                await bus.purge()
                await bus.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="messages per latency run (throughput uses 5×)")
    print(json.dumps(asyncio.run(main(parser.parse_args().n)), indent=2))
