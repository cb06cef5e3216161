"""Transcode CPU: one 720p25 H.265 camera transcoded to 640x360 H.264 for live view, vs remuxing an H.264 one.

Run: ``.venv/bin/python bench/bench_transcode_cpu.py [--window 6] [--reps 3]``.

Two live clock cameras (``demo.clock.ClockRtspServer``, child processes whose CPU is not counted), one H.265 and
one H.264, both 1280x720 at 25 fps, are pulled by one IngestService in this process. Phases alternate in the same
run: no viewer (connections only), one viewer of the H.264 camera (remux), one viewer of the H.265 camera
(decode + scale + libx264 ultrafast encode), three viewers of the H.265 camera (the transcoder is shared, so
this should cost the same). CPU is this process's user+system time per wall second, % of one core; the figures
are medians over the repetitions, and the added cost over the idle phase is what the relay/transcoder costs.
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

from bench_live_fanout import cpu_percent, reader  # noqa: E402  (bench/ is on sys.path as the script's folder)

from demo.clock import ClockRtspServer  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402


async def with_viewers(svc: IngestService, camera: str, n: int, window_s: float) -> tuple[float, float, str]:
    counts = [0]
    viewers = [await svc.live.open(camera) for _ in range(n)]
    tasks = [asyncio.create_task(reader(v, counts)) for v in viewers]
    await asyncio.sleep(1.0)  # the relay/transcoder is running before the window opens
    c0 = counts[0]
    cpu = await cpu_percent(window_s)
    rate = (counts[0] - c0) / window_s / n
    mime = viewers[0].mime
    for v in viewers:
        v.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.5)
    return cpu, rate, mime


async def run(args: argparse.Namespace) -> int:
    h265 = ClockRtspServer(("cam",), codec="h265", bitrate_kbps=1500)
    h264 = ClockRtspServer(("cam",), codec="h264", bitrate_kbps=2500)
    h265.start()
    h264.start()
    res: dict[str, list[float]] = {k: [] for k in ("idle", "remux", "transcode", "transcode3")}
    try:
        svc = IngestService({"hevc": h265.url("cam"), "avc": h264.url("cam")}, sample_keyframes=False)
        await svc.start()
        try:
            deadline = time.monotonic() + 20
            while any(svc.status(c).state != "online" for c in ("hevc", "avc")) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            for rep in range(args.reps):
                res["idle"].append(await cpu_percent(args.window))
                cpu, rate_r, mime_r = await with_viewers(svc, "avc", 1, args.window)
                res["remux"].append(cpu)
                cpu, rate_t, mime_t = await with_viewers(svc, "hevc", 1, args.window)
                res["transcode"].append(cpu)
                cpu3, rate_t3, _ = await with_viewers(svc, "hevc", 3, args.window)
                res["transcode3"].append(cpu3)
                print(f"  rep {rep + 1}: idle {res['idle'][-1]:.1f} %, remux {res['remux'][-1]:.1f} % "
                      f"({rate_r:.0f} fragments/s), transcode {cpu:.1f} % ({rate_t:.0f} fragments/s), "
                      f"transcode x3 viewers {cpu3:.1f} % ({rate_t3:.0f} fragments/s per viewer)", flush=True)
            print(f"  remux MIME {mime_r!r}; transcode MIME {mime_t!r}")
        finally:
            await svc.stop()
    finally:
        h265.stop()
        h264.stop()
    m = {k: statistics.median(v) for k, v in res.items()}
    remux = m["remux"] - m["idle"]
    xcode = m["transcode"] - m["idle"]
    print(f"connections only (1 H.265 + 1 H.264 camera): {m['idle']:.1f} % of one core")
    print(f"remux H.264 720p25, 1 viewer:                +{remux:.1f} %")
    print(f"transcode H.265 720p25 -> H.264 640x360:     +{xcode:.1f} % (1 viewer), "
          f"+{m['transcode3'] - m['idle']:.1f} % (3 viewers, shared)")
    print(f"ratio transcode/remux: {xcode / max(remux, 0.05):.0f}x")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--window", type=float, default=6.0)
    p.add_argument("--reps", type=int, default=3)
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
