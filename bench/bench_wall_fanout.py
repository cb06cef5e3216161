"""Wall fan-out: alarms published on the bus → every browser's event WebSocket, at N clients vs one client.

``python bench/bench_wall_fanout.py [--clients 200] [--rate 100] [--seconds 20]`` starts a private redis-server and
a real wall server (``citywall wall``, a separate process), connects the clients in two client processes (so the
measuring side is not the bottleneck), publishes ``rate`` alarms per second for ``seconds`` and reports the delay
from publish to receipt over every (alarm, client) pair: median, p99, max, frames lost and clients dropped. The
baseline is the same run with one client. Target (issue 7): 200 clients at 100 alarms/s with p99 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.bus import Bus  # noqa: E402
from broker.embedded import EmbeddedRedis  # noqa: E402
from messages.alarm import Alarm  # noqa: E402


def _clients_proc(url: str, cookie: str, n: int, expected: int, out: str, ready: Any) -> None:
    asyncio.run(_clients(url, cookie, n, expected, out, ready))


async def _clients(url: str, cookie: str, n: int, expected: int, out: str, ready: Any) -> None:
    arrivals: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    closed = [False] * n
    jar = aiohttp.CookieJar(unsafe=True)
    jar.update_cookies({"cw_session": cookie})
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        sockets = []
        for _ in range(n):
            # offer permessage-deflate as a browser does (the server declines it)
            ws = await session.ws_connect(f"{url}/api/ws", heartbeat=30, max_msg_size=1 << 20, compress=15)
            await ws.receive(timeout=10)  # hello
            sockets.append(ws)
        ready.set()

        async def read(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            got = arrivals[i]
            while len(got) < expected:
                try:
                    msg = await ws.receive(timeout=15)
                except TimeoutError:
                    return
                if msg.type != aiohttp.WSMsgType.TEXT:
                    closed[i] = True
                    return
                now = time.time()
                frame = json.loads(msg.data)
                if frame.get("type") == "alarm":
                    got.append((frame["alarm"]["alarm_id"], now))

        await asyncio.gather(*(read(i, ws) for i, ws in enumerate(sockets)))
        for ws in sockets:
            await ws.close()
    Path(out).write_text(json.dumps({"arrivals": arrivals, "closed": sum(closed)}))


def _alarm(seq: int, tag: str) -> Alarm:
    now = time.time()
    return Alarm(alarm_id=f"{tag}-{seq}", phase="raised", camera_id="cam-vending", zone_id="pavement",
                 event="vending", started_at=now - 10, at=now, dwell_s=10.0, confidence=0.9,
                 boxes=[(0.1, 0.5, 0.2, 0.7)], camera_name="解放路人行道", zone_name="人行道禁止摆摊区")


async def _round(url: str, cookie: str, bus: Bus, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    expected = int(rate * seconds)
    procs, outs, readies = [], [], []
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="fanout-"))
    for k, share in enumerate((clients - clients // 2, clients // 2)):
        if share == 0:
            continue
        ready = ctx.Event()
        out = str(tmp / f"clients-{k}.json")
        proc = ctx.Process(target=_clients_proc, args=(url, cookie, share, expected, out, ready))
        proc.start()
        procs.append(proc)
        outs.append(out)
        readies.append(ready)
    for ready in readies:
        await asyncio.to_thread(ready.wait, 120)
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for seq in range(expected):
        target = t0 + seq / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        alarm = _alarm(seq, tag)
        sent[alarm.alarm_id] = time.time()
        await bus.publish(alarm)
    for proc in procs:
        await asyncio.to_thread(proc.join, 120)
    delays: list[float] = []
    lost = closed = 0
    for out in outs:
        data = json.loads(Path(out).read_text())
        closed += data["closed"]
        for got in data["arrivals"]:
            seen = {aid: t for aid, t in got if aid in sent}
            lost += expected - len(seen)
            delays += [(t - sent[aid]) * 1000 for aid, t in seen.items()]
    delays.sort()
    return {
        "clients": clients, "alarms": expected, "rate_per_s": rate, "deliveries": len(delays),
        "median_ms": round(statistics.median(delays), 2) if delays else None,
        "p99_ms": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 2) if delays else None,
        "max_ms": round(delays[-1], 2) if delays else None, "lost": lost, "clients_dropped": closed,
    }


async def main(clients: int, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmpdir:
        tmp = Path(tmpdir)
        redis = EmbeddedRedis(tmp / "redis")
        redis_url = redis.start()
        prefix = f"b{uuid.uuid4().hex[:8]}"
        demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text(encoding="utf-8"))
        config = tmp / "wall.yaml"
        config.write_text(yaml.safe_dump({
            "brokers": {"redis_url": redis_url, "topic_prefix": prefix},
            "storage": {"data_dir": str(tmp / "var")},
            "cluster": {"token": "bench"},
            "wall": {"client_queue": 1024},
            "users": demo["users"],
        }, allow_unicode=True), encoding="utf-8")
        wall = subprocess.Popen([sys.executable, "-m", "citywall.cli", "wall", "--config", str(config), "--port", "0"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert wall.stdout is not None
        try:
            line = wall.stdout.readline()
            found = re.search(r"(http://\S+)/wall", line)
            if found is None:
                raise RuntimeError(f"citywall wall did not announce its address: {line!r}")
            url = found.group(1)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                resp = await session.post(f"{url}/api/login", json={"username": "duty", "password": "citywall"})
                assert resp.status == 200, await resp.text()
                cookie = resp.cookies["cw_session"].value
            bus = await Bus.connect(redis_url, prefix=prefix)
            try:
                baseline = await _round(url, cookie, bus, 1, rate, seconds)
                loaded = await _round(url, cookie, bus, clients, rate, seconds)
            finally:
                await bus.close()
        finally:
            wall.terminate()
            wall.wait(15)
            redis.stop()
    ratio = round(loaded["p99_ms"] / baseline["p99_ms"], 2) if baseline["p99_ms"] and loaded["p99_ms"] else None
    return {"baseline_1_client": baseline, "loaded": loaded, "p99_ratio_vs_1_client": ratio,
            "target": "p99 <= 100 ms at 200 clients x 100 alarms/s",
            "met": bool(loaded["p99_ms"] is not None and loaded["p99_ms"] <= 100 and loaded["lost"] == 0)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.clients, args.rate, args.seconds)), ensure_ascii=False, indent=2))
