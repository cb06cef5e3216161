"""Glass-to-glass latency: live clock camera → RTSP → citywall ingest + live relay + wall server → Chromium tile.

Run: ``.venv/bin/python bench/bench_glass_to_glass.py [--minutes 1] [--width 1280 --height 720]``.

A live source (``demo.clock.ClockRtspServer``: GStreamer, x264 zerolatency, 25 fps) draws the wall-clock time in
ms into every frame as a band of black/white blocks. citywall's real ``IngestService`` pulls it over RTSP, the
real wall server (``wall.app.create_app``) relays it as per-frame fMP4 over ``/api/live/<camera>``, and a real
``<cw-tile>`` plays it in headless Chromium. In the page, ``requestVideoFrameCallback`` draws each presented
frame's band into a canvas, decodes the time and records ``Date.now() − encoded`` (same machine clock).

Baseline, same run: a PyAV client decodes the same RTSP stream directly (no relay, no browser) and reads the same
blocks — the cost of encode + RTSP + decode alone. Printed: p50/p95/max of both, the ratio of the medians, the
tile's lag in the first vs the last window (minute 1 vs the last minute on runs of ≥ 2 minutes), jumps and
playback-rate changes. Targets (issue 3): p50 ≤ 300 ms, p95 ≤ 600 ms, last-minute lag ≤ first-minute + 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from bench.livewall import LiveWall, wait_until  # noqa: E402
from demo.clock import ClockRtspServer, decode_band, latency_ms  # noqa: E402
from tests.live_page import tile_stats  # noqa: E402

WARMUP_S = 3.0

# Reads the clock band of every frame the tile's <video> presents; layout as in demo/clock.py.
PAGE_PROBE = """
() => {
  const tile = document.querySelector('cw-tile');
  const v = tile.video;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const probe = window.__g2g = { samples: [], bad: 0, frames: 0 };
  const BITS = 40, TWO32 = 4294967296;
  function onFrame(_now, meta) {
    const t = Date.now();
    const w = v.videoWidth, h = v.videoHeight;
    if (w && h) {
      probe.frames += 1;
      const top = Math.floor(Math.floor(h * 0.40) / 2) * 2;
      const bh = Math.floor(Math.max(16, Math.floor(h * 0.12)) / 2) * 2;
      const y = top + Math.floor(bh / 2);
      if (canvas.width !== w) { canvas.width = w; canvas.height = 1; }
      ctx.drawImage(v, 0, y, w, 1, 0, 0, w, 1);
      const px = ctx.getImageData(0, 0, w, 1).data;
      const bw = Math.floor(w / BITS);
      const bits = [];
      for (let i = 0; i < BITS; i++) {
        let sum = 0, n = 0;
        for (let x = i * bw + Math.floor(bw / 4); x < i * bw + Math.floor(3 * bw / 4); x++) { sum += px[x * 4]; n++; }
        bits.push(sum / n > 128 ? 1 : 0);
      }
      let value = 0;
      for (let i = 0; i < 32; i++) value = value * 2 + bits[i];
      let check = 0;
      for (let i = 32; i < 40; i++) check = check * 2 + bits[i];
      const bytes = [Math.floor(value / 16777216) % 256, Math.floor(value / 65536) % 256,
                     Math.floor(value / 256) % 256, value % 256];
      if ((((bytes[0] + bytes[1] + bytes[2] + bytes[3]) & 0xFF) ^ 0xA5) === check) {
        let d = ((t % TWO32) - value + TWO32) % TWO32;
        if (d >= TWO32 / 2) d -= TWO32;
        const s = tile.stats;
        probe.samples.push([t, d, s.behindLive, v.playbackRate]);
      } else {
        probe.bad += 1;
      }
    }
    v.requestVideoFrameCallback(onFrame);
  }
  v.requestVideoFrameCallback(onFrame);
}
"""


def baseline_reader(url: str, stop: threading.Event, out: list[tuple[float, int]], errors: list[str]) -> None:
    """Decode the RTSP stream directly with PyAV and record (unix time, latency ms) per frame."""
    while not stop.is_set():
        try:
            with av.open(url, options={"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay"},
                         timeout=(5, 5)) as c:
                stream = c.streams.video[0]
                stream.thread_type = "SLICE"  # frame threading would add frames of delay
                for frame in c.decode(stream):
                    value = decode_band(frame.to_ndarray(format="gray"))
                    now = time.time()
                    if value is not None:
                        out.append((now, latency_ms(value, int(now * 1000))))
                    if stop.is_set():
                        return
        except Exception as exc:  # the bench reports it; a baseline that never ran is visible as n=0
            errors.append(repr(exc))
            stop.wait(0.5)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(name: str, values: Sequence[float]) -> str:
    if not values:
        return f"{name:<28} n=0"
    return (f"{name:<28} n={len(values):>6}  p50 {pct(values, .5):6.0f} ms  p95 {pct(values, .95):6.0f} ms  "
            f"max {max(values):6.0f} ms")


async def run(args: argparse.Namespace) -> int:
    duration = args.minutes * 60
    server = ClockRtspServer(("clock",), width=args.width, height=args.height, fps=args.fps)
    server.start()
    stop = threading.Event()
    base: list[tuple[float, int]] = []
    base_errors: list[str] = []
    samples: list[list[float]] = []
    bad = frames = 0
    try:
        async with LiveWall({"cam-clock": server.url("clock")}) as wall:
            page = await wall.new_page()
            await wall.show_tiles(page, ["cam-clock"], width=args.tile_width, height=args.tile_width * 9 // 16,
                                  columns=1)
            ok = await wait_until(lambda: tile_stats(page), 1)  # the element exists
            ok = await wait_until(
                lambda: page.evaluate("() => document.querySelector('cw-tile').stats.videoWidth > 0"), 30)
            if not ok:
                print("tile never showed a picture:", await tile_stats(page), file=sys.stderr)
                return 1
            await page.evaluate(PAGE_PROBE)
            reader = threading.Thread(target=baseline_reader, args=(server.url("clock"), stop, base, base_errors),
                                      daemon=True, name="baseline")
            reader.start()
            t_start = time.time()
            next_report = t_start + 60
            while time.time() < t_start + duration + WARMUP_S:
                await asyncio.sleep(2.0)
                got = await page.evaluate(
                    "() => { const p = window.__g2g; const s = p.samples; p.samples = [];"
                    " return {s, bad: p.bad, frames: p.frames}; }")
                samples.extend(got["s"])
                bad, frames = got["bad"], got["frames"]
                if time.time() >= next_report:
                    recent = [s[1] for s in samples if s[0] / 1000 >= next_report - 60]
                    print(f"  minute {int((next_report - t_start) // 60)}: tile p50 {pct(recent, .5):.0f} ms, "
                          f"p95 {pct(recent, .95):.0f} ms (n={len(recent)})", flush=True)
                    next_report += 60
            final = (await tile_stats(page))[0]
            stop.set()
            reader.join(timeout=10)
    finally:
        stop.set()
        server.stop()

    cut = t_start + WARMUP_S
    tile = [s for s in samples if s[0] / 1000 >= cut]
    tile_ms = [s[1] for s in tile]
    base_ms = [lat for t, lat in base if t >= cut]
    window = 60.0 if duration >= 120 else max(10.0, duration / 3)
    first = [s[1] for s in tile if s[0] / 1000 < cut + window]
    last_from = max(s[0] for s in tile) / 1000 - window if tile else 0
    last = [s[1] for s in tile if s[0] / 1000 >= last_from]
    behind = [s[2] * 1000 for s in tile]
    print(f"glass-to-glass, {args.width}x{args.height}@{args.fps} x264 zerolatency, {args.minutes:g} min "
          f"(first {WARMUP_S:g} s discarded)")
    print(summary("tile (ingest+relay+wall+MSE)", tile_ms))
    print(summary("baseline (PyAV direct)", base_ms))
    if tile_ms and base_ms:
        p50t, p50b = pct(tile_ms, .5), pct(base_ms, .5)
        print(f"ratio tile/baseline p50: {p50t / p50b:.2f}x  (+{p50t - p50b:.0f} ms for relay, WS, MSE, playout)")
    print(f"tile lag first {window:.0f} s: p50 {pct(first, .5):.0f} ms; "
          f"last {window:.0f} s: p50 {pct(last, .5):.0f} ms; "
          f"drift {pct(last, .5) - pct(first, .5):+.0f} ms")
    print(f"tile buffered ahead of playhead: p50 {pct(behind, .5):.0f} ms, p95 {pct(behind, .95):.0f} ms; "
          f"frames presented {frames}, unreadable {bad}; jumps {final['jumps']}, reconnects {final['reconnects']}, "
          f"resyncs {final['resyncs']}, rate changes {final.get('rateChanges')}")
    if base_errors:
        print(f"baseline reader errors: {base_errors[:3]}")
    verdict = (tile_ms and pct(tile_ms, .5) <= 300 and pct(tile_ms, .95) <= 600
               and pct(last, .5) <= pct(first, .5) + 100)
    print("targets (p50 <= 300 ms, p95 <= 600 ms, drift <= +100 ms):", "MET" if verdict else "NOT MET")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--tile-width", type=int, default=960)
    args = p.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
