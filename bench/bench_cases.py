"""Case figures: alarm → case filed latency with evidence stored, and sustained alarms/min with no loss or duplicate.

``python bench/bench_cases.py [--n 200] [--seconds 60] [--rate 1000] [--burst 3000] [--postgres]`` starts a private
redis-server in a temporary directory, a SQLite case store (and, with ``--postgres``, Debian's PostgreSQL 15 as
the tests do), runs the real CaseWorker on the real Bus, prints one JSON object and stops everything.

- ``latency``: one alarm at a time, the path the detector and the case room take: EvidenceWriter writes the two
  JPEGs of a 1280x720 frame → Alarm published on ``alarms`` → CaseWorker files it (case, timeline, evidence paths,
  outbox in one transaction) → CaseEvent seen on ``case_events``. Target: p99 ≤ 100 ms.
- ``filing``: ``CaseFiler.file`` alone, in process; ``baseline``: one bare ``INSERT`` + commit in the same kind of
  store (medians, and their ratio).
- ``sustained``: alarms published at ``--rate``/min for ``--seconds`` over places that repeat (filed and attached),
  then drained: count in must equal count out (alarm ids in the store) with no duplicate; the worker lag at the end.
- ``burst``: ``--burst`` alarms published at once, the drain rate in alarms/min (headroom over the target).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.bus import Bus  # noqa: E402
from broker.embedded import EmbeddedRedis  # noqa: E402
from cases.filing import build_filer  # noqa: E402
from cases.store import CaseStore  # noqa: E402
from cases.worker import CaseWorker  # noqa: E402
from config import CONFIG_DIR, load_settings  # noqa: E402
from detectors.evidence import EvidenceWriter  # noqa: E402
from messages.alarm import Alarm  # noqa: E402
from messages.case_event import CaseEvent  # noqa: E402

PLACES = [("cam-vending", "pavement", "vending"), ("cam-bin", "bin-1", "bin_overflow"),
          ("cam-road", "lane", "road_occupation"), ("cam-street", "corner", "vending")]
T0 = time.time()


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3), "max_ms": round(ms[-1], 3)}


def _alarm(i: int, prefix: str, zones: int = 40) -> Alarm:
    cam, zone, event = PLACES[i % len(PLACES)]
    return Alarm(alarm_id=f"{prefix}-{i}", phase="raised", camera_id=cam,
                 zone_id=f"{prefix}-{zone}-{(i // 4) % zones}", event=event, started_at=T0 + i - 30, at=T0 + i,
                 dwell_s=30.0, confidence=0.9,
                 boxes=[(0.1, 0.6, 0.3, 0.9)], detector="bench/1")


async def _latency(bus: Bus, writer: EvidenceWriter, n: int) -> dict[str, Any]:
    # A street-like frame (smooth gradients, a few objects, mild noise), not white noise: JPEG time is realistic.
    yy, xx = np.mgrid[0:720, 0:1280]
    frame = np.dstack([(xx // 10) % 256, (yy // 6) % 256, ((xx + yy) // 16) % 256]).astype(np.uint8)
    frame[400:600, 200:420] = (30, 120, 200)
    frame[300:500, 800:900] = (200, 200, 40)
    frame = np.clip(frame + np.random.default_rng(1).integers(0, 8, frame.shape), 0, 255).astype(np.uint8)
    seen: dict[str, float] = {}
    arrived = asyncio.Event()

    async def reader() -> None:
        async for entry in bus.tail([CaseEvent.STREAM], block_ms=1000):
            for alarm_id in entry.data.get("case", {}).get("alarm_ids", [])[-1:]:
                seen.setdefault(alarm_id, time.perf_counter())
            if entry.data.get("action") == "attached":
                seen.setdefault(entry.data.get("note", ""), time.perf_counter())
            arrived.set()

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.3)
    samples, evidence, bus_to_case = [], [], []
    for i in range(n):
        alarm = _alarm(i, "lat", zones=n)  # every alarm a new place: a full filing (the slower path)
        t0 = time.perf_counter()
        ann, clean = await asyncio.to_thread(writer.write, alarm, frame)
        t1 = time.perf_counter()
        await bus.publish(Alarm(**{**alarm.to_dict(), "snapshot": ann, "snapshot_clean": clean}))
        deadline = time.monotonic() + 10
        while alarm.alarm_id not in seen:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), max(0.01, deadline - time.monotonic()))
        samples.append(seen[alarm.alarm_id] - t0)
        evidence.append(t1 - t0)
        bus_to_case.append(seen[alarm.alarm_id] - t1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {**_summary(samples), "evidence_write": _summary(evidence), "publish_to_case_event": _summary(bus_to_case)}


def _filing(store: CaseStore, n: int) -> dict[str, float]:
    filer = build_filer(load_settings(CONFIG_DIR / "demo.yaml"), store)
    samples = []
    for i in range(n):
        alarm = Alarm(**{**_alarm(i, "fil", zones=n).to_dict(), "snapshot": f"x/{i}.jpg"})
        t0 = time.perf_counter()
        filer.file(alarm)
        samples.append(time.perf_counter() - t0)
    return _summary(samples)


def _baseline(path: Path, n: int) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT)")
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"b-{i}", "x" * 800))
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
    conn.close()
    return _summary(samples)


async def _sustained(bus: Bus, store: CaseStore, prefix: str, seconds: float, rate_per_min: float) -> dict:
    interval = 60.0 / rate_per_min
    n = int(seconds * rate_per_min / 60)
    start = time.perf_counter()
    for i in range(n):
        await bus.publish(Alarm(**{**_alarm(i, prefix).to_dict(), "snapshot": f"s/{prefix}-{i}.jpg"}))
        delay = start + (i + 1) * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    sent_s = time.perf_counter() - start
    lag_at_end = n - _count(store, prefix)
    while _count(store, prefix) < n and time.perf_counter() - start < seconds + 60:
        await asyncio.sleep(0.05)
    drained_s = time.perf_counter() - start
    return {"alarms_in": n, "alarms_out": _count(store, prefix), "duplicates": _duplicates(store, prefix),
            "rate_per_min_offered": round(n / sent_s * 60, 1), "backlog_when_sending_stopped": lag_at_end,
            "drained_after_s": round(drained_s - sent_s, 3)}


async def _burst(bus: Bus, store: CaseStore, prefix: str, n: int) -> dict:
    start = time.perf_counter()
    for i in range(n):
        await bus.publish(Alarm(**{**_alarm(i, prefix).to_dict(), "snapshot": f"s/{prefix}-{i}.jpg"}))
    while _count(store, prefix) < n and time.perf_counter() - start < 300:
        await asyncio.sleep(0.05)
    took = time.perf_counter() - start
    return {"alarms_in": n, "alarms_out": _count(store, prefix), "duplicates": _duplicates(store, prefix),
            "seconds": round(took, 3), "alarms_per_min": round(n / took * 60, 1)}


def _count(store: CaseStore, prefix: str) -> int:
    with store._guard() as db:
        return db.execute("SELECT COUNT(DISTINCT alarm_id) FROM case_alarms WHERE alarm_id LIKE ?",
                          (f"{prefix}-%",)).fetchone()[0]


def _duplicates(store: CaseStore, prefix: str) -> int:
    with store._guard() as db:
        rows = db.execute("SELECT COUNT(*) FROM case_alarms WHERE alarm_id LIKE ? AND phase = 'raised'",
                          (f"{prefix}-%",)).fetchone()[0]
    return rows - _count(store, prefix)


async def _run_backend(name: str, url: str, redis_url: str, args: argparse.Namespace, tmp: Path) -> dict:
    settings = load_settings(CONFIG_DIR / "demo.yaml")
    store = CaseStore.open(url)
    bus = await Bus.connect(redis_url, prefix=f"bench{name}")
    out: dict = {}
    try:
        out["filing"] = _filing(store, args.n)
        worker = CaseWorker(store, build_filer(settings, store), bus, block_ms=200)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.3)
        out["latency"] = await _latency(bus, EvidenceWriter(tmp / f"evidence-{name}", timezone="Asia/Shanghai"),
                                        args.n)
        if args.seconds > 0:
            out["sustained"] = await _sustained(bus, store, "sus", args.seconds, args.rate)
        if args.burst > 0:
            out["burst"] = await _burst(bus, store, "bur", args.burst)
        out["worker"] = {"received": worker.stats.received, "outcomes": worker.stats.outcomes,
                         "published": worker.stats.published}
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await bus.purge()
        await bus.close()
        store.close()
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="alarms for the latency and filing figures")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to offer --rate (0: skip)")
    p.add_argument("--rate", type=float, default=1000.0, help="alarms per minute offered")
    p.add_argument("--burst", type=int, default=3000, help="alarms published at once (0: skip)")
    p.add_argument("--postgres", action="store_true", help="also run on a private PostgreSQL 15")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="citywall-bench-cases-") as d:
        tmp = Path(d)
        redis = EmbeddedRedis(tmp / "redis")
        redis_url = redis.start()
        result: dict = {"target": {"latency_p99_ms": 100, "sustained_per_min": args.rate}}
        try:
            result["baseline_sqlite_insert"] = _baseline(tmp / "baseline.sqlite", args.n)
            result["sqlite"] = await _run_backend("s", f"sqlite:///{tmp}/cases.sqlite", redis_url, args, tmp)
            result["filing_vs_baseline_median_ratio"] = round(
                result["sqlite"]["filing"]["median_ms"] / result["baseline_sqlite_insert"]["median_ms"], 2)
            if args.postgres:
                from tests.fixtures.postgres import EmbeddedPostgres

                pg = EmbeddedPostgres()
                try:
                    pg.start()
                    result["postgresql"] = await _run_backend("p", pg.create_database(), redis_url, args, tmp)
                finally:
                    pg.stop()
        finally:
            redis.stop()
    s = result["sqlite"]
    result["verdict"] = {
        "latency_p99_within_target": s["latency"]["p99_ms"] <= 100,
        "sustained_count_in_equals_out": ("sustained" not in s or (
            s["sustained"]["alarms_in"] == s["sustained"]["alarms_out"] and s["sustained"]["duplicates"] == 0)),
    }
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
