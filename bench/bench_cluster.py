"""Alarm bus throughput and end-to-end alarm latency with N publishing workers and a separate case worker.

``python bench/bench_cluster.py [--workers 1,4] [--alarms 2000] [--rate 200]`` starts a private redis-server and
one ``citywall cases`` process (SQLite), then for each N runs N publisher processes (standing in for camera
workers' detection: ``Bus.publish(Alarm)``) that together publish ``--alarms`` raised alarms at ``--rate`` per second
over ``--cameras`` cameras. Reported per N: publish throughput, alarm publish → case event on the bus latency
(median, p99; matched through the case's ``alarm_ids``), and count in = count out. The baseline is N = 1 in the
same run. Target (issue 7): figures printed; nothing lost or duplicated at any N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.bus import Bus  # noqa: E402
from broker.embedded import EmbeddedRedis  # noqa: E402
from messages.alarm import Alarm  # noqa: E402


def _publisher_proc(redis_url: str, prefix: str, cameras: list[str], ids: list[str], rate: float, out: str,
                    go: Any) -> None:
    asyncio.run(_publisher(redis_url, prefix, cameras, ids, rate, out, go))


async def _publisher(redis_url: str, prefix: str, cameras: list[str], ids: list[str], rate: float, out: str,
                     go: Any) -> None:
    bus = await Bus.connect(redis_url, prefix=prefix)
    sent: dict[str, float] = {}
    await asyncio.to_thread(go.wait, 60)
    t0 = time.perf_counter()
    for k, alarm_id in enumerate(ids):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.time()
        cam = cameras[k % len(cameras)]
        await bus.publish(Alarm(alarm_id=alarm_id, phase="raised", camera_id=cam, zone_id="pavement",
                                event="vending", started_at=now - 10, at=now, dwell_s=10.0, confidence=0.9,
                                camera_name=cam, zone_name="人行道禁止摆摊区"))
        sent[alarm_id] = now
    elapsed = time.perf_counter() - t0
    await bus.close()
    Path(out).write_text(json.dumps({"sent": sent, "elapsed_s": elapsed}))


async def _round(redis_url: str, prefix: str, cameras: list[str], workers: int, alarms: int, rate: float,
                 tmp: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    ids = [f"{tag}-{i}" for i in range(alarms)]
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs, outs = [], []
    for w in range(workers):
        out = str(tmp / f"pub-{tag}-{w}.json")
        proc = ctx.Process(target=_publisher_proc,
                           args=(redis_url, prefix, cameras, ids[w::workers], rate / workers, out, go))
        proc.start()
        procs.append(proc)
        outs.append(out)
    bus = await Bus.connect(redis_url, prefix=prefix)
    arrived: dict[str, float] = {}

    async def read() -> None:
        async for entry in bus.tail(["case_events"], block_ms=500):
            now = time.time()
            for alarm_id in entry.data.get("case", {}).get("alarm_ids", []):
                if alarm_id.startswith(tag) and alarm_id not in arrived:
                    arrived[alarm_id] = now
            if len(arrived) >= alarms:
                return

    reader = asyncio.create_task(read())
    await asyncio.sleep(1.0)  # the tail has fixed its start
    go.set()
    for proc in procs:
        await asyncio.to_thread(proc.join, 300)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, timeout=120)
    await bus.close()
    sent: dict[str, float] = {}
    elapsed = 0.0
    for out in outs:
        data = json.loads(Path(out).read_text())
        sent.update(data["sent"])
        elapsed = max(elapsed, data["elapsed_s"])
    lat = sorted((arrived[a] - sent[a]) * 1000 for a in sent if a in arrived)
    return {
        "workers": workers, "alarms_in": len(sent), "cases_out": len(lat), "lost": len(sent) - len(lat),
        "publish_rate_per_s": round(len(sent) / elapsed, 1) if elapsed else None,
        "alarm_to_case_event_median_ms": round(statistics.median(lat), 2) if lat else None,
        "alarm_to_case_event_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2) if lat else None,
    }


async def main(worker_counts: list[int], alarms: int, rate: float, n_cameras: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmpdir:
        tmp = Path(tmpdir)
        redis = EmbeddedRedis(tmp / "redis")
        redis_url = redis.start()
        prefix = f"b{uuid.uuid4().hex[:8]}"
        demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text(encoding="utf-8"))
        template = next(c for c in demo["cameras"] if c["id"] == "cam-vending")
        cameras = [{**template, "id": f"cam-{i:04d}", "name": f"测试点{i}", "url": "rtsp://127.0.0.1:9/none"}
                   for i in range(n_cameras)]
        config = tmp / "bench.yaml"
        config.write_text(yaml.safe_dump({
            "brokers": {"redis_url": redis_url, "topic_prefix": prefix},
            "storage": {"data_dir": str(tmp / "var")},
            "guidance": {"enabled": False},
            "users": demo["users"], "cameras": cameras,
        }, allow_unicode=True), encoding="utf-8")
        cases = subprocess.Popen([sys.executable, "-m", "citywall.cli", "cases", "--config", str(config)],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert cases.stdout is not None
        try:
            assert "consuming alarms" in cases.stdout.readline()
            rounds = [await _round(redis_url, prefix, [c["id"] for c in cameras], n, alarms, rate, tmp)
                      for n in worker_counts]
        finally:
            cases.terminate()
            cases.wait(15)
            redis.stop()
    base = rounds[0]
    for r in rounds:
        if base["alarm_to_case_event_p99_ms"] and r["alarm_to_case_event_p99_ms"]:
            r["p99_ratio_vs_first"] = round(r["alarm_to_case_event_p99_ms"] / base["alarm_to_case_event_p99_ms"], 2)
    return {"rate_per_s": rate, "cameras": n_cameras, "rounds": rounds,
            "nothing_lost": all(r["lost"] == 0 for r in rounds)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4", help="comma-separated publisher counts; the first is the baseline")
    parser.add_argument("--alarms", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="alarms per second, all publishers together")
    parser.add_argument("--cameras", type=int, default=200)
    args = parser.parse_args()
    counts = [int(x) for x in re.split(r"[ ,]+", args.workers.strip()) if x]
    print(json.dumps(asyncio.run(main(counts, args.alarms, args.rate, args.cameras)), ensure_ascii=False, indent=2))
