"""Live fan-out benchmark: ingest-process CPU for 1 vs 50 viewers of one demo camera, drops with a stalled viewer,
the cost of keyframe sampling, and how fast a new viewer gets its first fragment.

Run: ``.venv/bin/python bench/bench_live_fanout.py [--window 4] [--reps 3]``. Starts its own demo RTSP server
(a child process; its CPU is not counted) and one IngestService; every phase runs in the same process, phases
alternate, and each figure is the median over the repetitions. CPU is this process's user+system time per
wall-clock second, in % of one core. Viewers are asyncio tasks that read every fragment (what the wall's
WebSocket pump does, minus the socket).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.media import ensure_media  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from video_ingest.live import LiveEnded, LiveViewer  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402

MEDIA_DIR = ROOT / "var" / "demo-media"
SEED = 7


async def cpu_percent(window_s: float) -> float:
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window_s)
    return (time.process_time() - c0) / (time.monotonic() - t0) * 100


async def reader(viewer: LiveViewer, counts: list[int]) -> None:
    try:
        while True:
            await viewer.next_fragment()
            counts[0] += 1
    except LiveEnded:
        pass


async def open_viewers(service: IngestService, n: int, queue_size: int = 256,
                       ) -> tuple[list[LiveViewer], list[asyncio.Task[None]], list[int]]:
    counts = [0]
    viewers = [await service.live.open("cam", queue_size=queue_size) for _ in range(n)]
    tasks = [asyncio.create_task(reader(v, counts)) for v in viewers]
    return viewers, tasks, counts


async def close_viewers(viewers: list[LiveViewer], tasks: list[asyncio.Task[None]]) -> None:
    for v in viewers:
        v.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run(window_s: float, reps: int) -> None:
    media = ensure_media(MEDIA_DIR, SEED, ("vending",))
    server = DemoRtspServer({"vending": media["vending"]})
    server.start()
    results: dict[str, list[float]] = {k: [] for k in (
        "idle", "v1", "v50", "sampling", "stalled_drops", "healthy_drops", "fragments_per_s_50", "cold_first_ms",
        "warm_first_ms")}
    try:
        plain = IngestService({"cam": server.url("vending")}, sample_keyframes=False)
        await plain.start()
        # keyframes only, as this bench has always measured (the interval sampler: bench/bench_analysis_gop.py)
        sampled = IngestService({"cam": server.url("vending")}, sample_keyframes=True, sample_mode="keyframes")
        try:
            deadline = time.monotonic() + 20
            while plain.status("cam").state != "online" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            for _rep in range(reps):
                results["idle"].append(await cpu_percent(window_s))

                t0 = time.monotonic()  # cold: the relay starts (from the GOP the fan-out replays)
                viewers, tasks, counts = await open_viewers(plain, 1)
                while counts[0] == 0:
                    await asyncio.sleep(0.001)
                results["cold_first_ms"].append((time.monotonic() - t0) * 1000)
                t0 = time.monotonic()  # warm: served from the GOP cache
                warm = await plain.live.open("cam")
                await warm.next_fragment()
                results["warm_first_ms"].append((time.monotonic() - t0) * 1000)
                warm.close()
                results["v1"].append(await cpu_percent(window_s))

                more, more_tasks, more_counts = await open_viewers(plain, 49)
                c0, t0 = more_counts[0], time.monotonic()
                results["v50"].append(await cpu_percent(window_s))
                results["fragments_per_s_50"].append((more_counts[0] - c0) / (time.monotonic() - t0) / 49)

                stalled = await plain.live.open("cam", queue_size=64)  # never read
                await asyncio.sleep(window_s)
                results["stalled_drops"].append(stalled.dropped)
                results["healthy_drops"].append(sum(v.dropped for v in viewers + more))
                stalled.close()
                await close_viewers(viewers + more, tasks + more_tasks)

            await sampled.start()
            await asyncio.sleep(3.0)  # connected and sampling
            n0 = sampled.status("cam").extra["sampled"]
            for _ in range(reps):
                results["sampling"].append(await cpu_percent(window_s))
            sampled_per_s = (sampled.status("cam").extra["sampled"] - n0) / (reps * window_s)
        finally:
            await sampled.stop()
            await plain.stop()
    finally:
        server.stop()

    med = {k: statistics.median(v) for k, v in results.items()}
    remux = med["v1"] - med["idle"]
    print(f"one 720p25 demo camera, {reps} repetitions of {window_s:g} s windows, medians (% of one core):")
    print(f"  connection only (demux, no consumers)      {med['idle']:6.2f} %")
    print(f"  1 live viewer                              {med['v1']:6.2f} %   (remux ≈ {remux:.2f} %)")
    print(f"  50 live viewers                            {med['v50']:6.2f} %   ({med['fragments_per_s_50']:.1f} "
          f"fragments/s per viewer)")
    ratio = med["v50"] / med["v1"] if med["v1"] else float("inf")
    print(f"  ratio 50 / 1 viewers                       {ratio:6.2f} x   (target <= 2 x: "
          f"{'ok' if ratio <= 2 else 'MISSED'})")
    second = med["sampling"] - med["idle"]
    print(f"  + a 2nd connection with keyframe sampling  {second:6.2f} %   (keyframe decode + BGR ≈ "
          f"{second - med['idle']:.2f} % after its demux; {sampled_per_s:.2f} keyframes/s)")
    print(f"  stalled viewer (queue 64) drops in {window_s:g} s   {med['stalled_drops']:6.0f}     "
          f"drops of the 50 healthy viewers: {med['healthy_drops']:.0f}")
    print(f"  first fragment, new viewer: cold {med['cold_first_ms']:.1f} ms (relay start, GOP replay), "
          f"warm {med['warm_first_ms']:.1f} ms (GOP cache)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=4.0, help="seconds per measurement window")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (the median is reported)")
    args = parser.parse_args()
    asyncio.run(run(args.window, args.reps))


if __name__ == "__main__":
    main()
