"""Analysis at any GOP (issue 21): analysed frames per second, alarm latency and decode CPU for cameras with 1 s,
2 s and 10 s GOPs — keyframes only (the old path) vs the interval sampler vs decoding every frame — and the
capacity of this machine on realistic media.

Run: ``.venv/bin/python bench/bench_analysis_gop.py [--seconds 40] [--capacity 16 32] [--window 15]``.

Media: the demo ``vending`` scene (a vendor arrives 10 s into the loop and stays; the zone's dwell is 10 s), its
first ``--seconds`` re-encoded as a camera would send it (720p25, constrained baseline, ~2 Mbit/s) with a keyframe
every 25, 50 and 250 frames, plus a 640x360 sub-stream with a 2 s GOP; cached under ``var/demo-media/gop/``.

Part 1 (same run, each mode on each GOP; deterministic, off the clock): the access units are fed, as the camera
source delivers them (arrival = presentation time), into a ``video_ingest.sampler.FrameSampler`` at
``detection.interval_s`` = 1 s; every picture it puts out that the detection worker would take (at most one per
second) goes through the demo camera's ``CameraAnalyzer`` (the real dwell rule). Reported per stream-second:
analysed pictures, the sampler thread's decode + BGR CPU (% of one core, from ``time.thread_time``), units decoded;
and the first alarm's latency beyond its dwell (raise time − vendor arrival − dwell_s).

Part 2 (real time, RTSP): ``N`` cameras in one ``IngestService``, each with a live viewer draining its main stream
(720p25, GOP 2 s: the tile) and the interval sampler on its 640x360 sub-stream (``analysis_sources``) at 0.5 s, as
``citywall up`` runs it (twice the analysis rate: the detection loop wakes on its own 1 s clock, and two 1 Hz clocks
beat — with the sampler at 1 s it found a new picture 0.8 times a second), and one detection thread analysing each
camera's newest picture every second. Over ``--window`` seconds: analysed pictures
per second per camera (how many cameras reach ≥ 1/s), this process's CPU and the RTSP server's (it serves every
stream from memory; a real camera does that work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FPS = 25
T0 = 1_717_387_200.0  # 2024-06-03 12:00 in Asia/Shanghai: inside every demo zone's schedule
GOPS = (25, 50, 250)
MODES: tuple[Literal["keyframes", "interval", "all"], ...] = ("keyframes", "interval", "all")
ARRIVES_S = 10.0  # the vending scene's vendor (demo.scenes ground truth)
CLK = os.sysconf("SC_CLK_TCK")


def media_paths(seconds: int) -> dict[str, Path]:
    folder = ROOT / "var" / "demo-media" / "gop"
    out = {f"g{g}": folder / f"vending-720p-g{g}-{seconds}s.h264" for g in GOPS}
    out["sub"] = folder / f"vending-360p-g50-{seconds}s.h264"
    return out


def ensure_gop_media(seconds: int) -> dict[str, Path]:
    """Re-encode the first ``seconds`` of the cached vending scene with each GOP (once; cached)."""
    import av

    from demo.media import ensure_media

    paths = media_paths(seconds)
    if all(p.exists() and p.stat().st_size for p in paths.values()):
        return paths
    source = ensure_media(ROOT / "var" / "demo-media", 7, ["vending"])["vending"]
    paths["g25"].parent.mkdir(parents=True, exist_ok=True)
    encoders = {}
    for name, path in paths.items():
        sub = name == "sub"
        gop = 50 if sub else int(name[1:])
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = (640, 360) if sub else (1280, 720)
        ctx.pix_fmt, ctx.time_base, ctx.framerate = "yuv420p", Fraction(1, FPS), Fraction(FPS, 1)
        rate = 500 if sub else 2000
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                       "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"
                                      f":bitrate={rate}:vbv-maxrate={rate * 5 // 4}:vbv-bufsize={rate}:threads=1"}
        encoders[name] = (ctx, open(f"{path}.part", "wb"))  # noqa: SIM115 (closed after the encode loop)
    with av.open(str(source), format="h264") as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= seconds * FPS:
                break
            for name, (ctx, f) in encoders.items():
                picture = frame.reformat(640, 360) if name == "sub" else frame
                picture = av.VideoFrame.from_ndarray(picture.to_ndarray(format="yuv420p"), format="yuv420p")
                picture.pts = i
                for p in ctx.encode(picture):
                    f.write(bytes(p))
    for name, (ctx, f) in encoders.items():
        for p in ctx.encode(None):
            f.write(bytes(p))
        f.close()
        os.replace(f"{paths[name]}.part", paths[name])
    return paths


def read_units(path: Path):
    """(StreamInfo, AccessUnits) of a baseline Annex-B file, as the camera source delivers them."""
    import av

    from video_ingest import h26x
    from video_ingest.fanout import AccessUnit, StreamInfo

    tb = Fraction(1, 90000)
    units: list[Any] = []
    params: dict[int, bytes] = {}
    with av.open(str(path), format="h264") as container:
        for i, p in enumerate(q for q in container.demux(video=0) if q.size):
            nals = h26x.split_annexb(bytes(p))
            for nal in nals:
                if nal[0] & 0x1F in (7, 8):
                    params.setdefault(nal[0] & 0x1F, nal)
            units.append(AccessUnit(h26x.length_prefixed(nals), i * 90000 // FPS, bool(p.is_keyframe), tb))
    sps = h26x.parse_h264_sps(params[7])
    info = StreamInfo(camera_id="cam-vending", session=1, codec="h264", width=sps.width, height=sps.height,
                      time_base=tb, extradata=h26x.avc_decoder_config([params[7]], [params[8]]), started_at=T0)
    return info, units


def part1(paths: dict[str, Path], settings, camera) -> list[dict]:
    from detectors.pipeline import CameraAnalyzer
    from video_ingest.frames import Frame
    from video_ingest.sampler import FrameSampler
    from video_ingest.slot import LatestFrameSlot

    class TakingSlot(LatestFrameSlot):
        """Counts every picture out of the sampler and keeps the newest once per interval, as the detection worker
        takes them: at most one per second here. Only those are kept (holding every decoded 720p picture would cost
        gigabytes and page faults)."""

        def __init__(self, interval_s: float) -> None:
            super().__init__()
            self.interval_s = interval_s
            self.pictures = 0
            self.taken: list[Frame] = []
            self._next_at = T0

        def put(self, frame: Frame) -> None:
            self.pictures += 1
            if frame.captured_at >= self._next_at - 1e-6:
                self._next_at = frame.captured_at + self.interval_s - 0.5 / FPS
                self.taken.append(frame)

    dwell = max(z.dwell_s for z in camera.zones)
    rows = []
    for gop in GOPS:
        info, units = read_units(paths[f"g{gop}"])
        video_s = len(units) / FPS
        for mode in MODES:
            slot = TakingSlot(settings.detection.interval_s)
            sampler = FrameSampler("cam-vending", slot, interval_s=settings.detection.interval_s, mode=mode,
                                   queue_size=256 if mode != "keyframes" else 2)
            sampler.start()
            sampler.stream_started(info)
            for i, unit in enumerate(units):
                sampler.packet(unit, T0 + i / FPS)
                while len(sampler._jobs) >= min(128, sampler._queue_size):  # the clock is simulated, not the work
                    time.sleep(0.002)
            while sampler._jobs:
                time.sleep(0.005)
            time.sleep(0.05)
            sampler.stop()
            analyzer = CameraAnalyzer(camera, settings.detection, timezone=settings.timezone)
            alarm_at, t_analysis = None, 0.0
            for f in slot.taken:
                t = time.thread_time()
                step = analyzer.step(f.image, f.captured_at)
                t_analysis += time.thread_time() - t
                for finding in step.findings:
                    if alarm_at is None and finding.alarm.phase == "raised":
                        alarm_at = finding.alarm.at
            analysed = len(slot.taken)
            frames = range(slot.pictures)
            latency = None if alarm_at is None else alarm_at - (T0 + ARRIVES_S) - dwell
            rows.append({"gop_s": gop / FPS, "mode": mode, "video_s": video_s,
                         "pictures_per_s": round(len(frames) / video_s, 2),
                         "analysed_per_s": round(analysed / video_s, 2),
                         "decoded_units": sampler.queued, "skipped_units": sampler.skipped,
                         "decode_cpu_pct": round(100 * sampler.decode_cpu_s / video_s, 2),
                         "convert_cpu_pct": round(100 * sampler.convert_cpu_s / video_s, 2),
                         "sampler_cpu_pct": round(100 * (sampler.decode_cpu_s + sampler.convert_cpu_s) / video_s, 2),
                         "analysis_cpu_pct": round(100 * t_analysis / video_s, 2),
                         "alarm_latency_beyond_dwell_s": None if latency is None else round(latency, 2)})
            r = rows[-1]
            print(f"GOP {gop / FPS:>4.0f} s  {mode:<9}: {r['analysed_per_s']:.2f} analysed/s "
                  f"({r['pictures_per_s']:.2f} pictures/s out of the sampler), "
                  f"decode+BGR {r['sampler_cpu_pct']:5.2f} % "
                  f"of a core ({r['decoded_units']} units decoded), alarm "
                  + (f"{latency:+.2f} s beyond the {dwell:.0f} s dwell" if latency is not None else "never raised"),
                  flush=True)
    return rows


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK


async def part2(paths: dict[str, Path], n: int, window: float, settings, camera) -> dict:
    from demo.server import DemoRtspServer
    from detectors.pipeline import CameraAnalyzer
    from video_ingest.live import LiveEnded
    from video_ingest.service import IngestService

    server = DemoRtspServer({"main": paths["g50"], "sub": paths["sub"]})
    server.start()
    ids = [f"cam-{i:02d}" for i in range(n)]
    svc = IngestService({c: server.url("main") for c in ids}, analysis_sources={c: server.url("sub") for c in ids},
                        sample_interval_s=0.5, open_timeout_s=20, read_timeout_s=10)
    stop = threading.Event()
    analysed = dict.fromkeys(ids, 0)
    ticks: list[float] = []

    def detect() -> None:  # the detection worker's loop: every camera's newest unseen picture once a second
        analyzers = {c: CameraAnalyzer(camera, settings.detection, timezone=settings.timezone) for c in ids}
        seen: dict[str, int] = {}
        while not stop.is_set():
            started = time.monotonic()
            ticks.append(started)
            for c in ids:
                frame = svc.latest_frame(c)
                if frame is None or seen.get(c) == frame.seq:
                    continue
                seen[c] = frame.seq
                analyzers[c].step(frame.image, frame.captured_at)
                analysed[c] += 1
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    async def watch(c: str) -> None:
        while True:
            try:
                viewer = await svc.live.open(c)
                while True:
                    await viewer.next_fragment()
            except LiveEnded:
                continue
            except Exception:
                await asyncio.sleep(0.5)

    await svc.start()
    viewers = [asyncio.create_task(watch(c)) for c in ids]
    thread = threading.Thread(target=detect, name="bench-detect", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(svc.latest_frame(c) for c in ids):
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        s0 = {c: svc.status(c).extra["sampled"] for c in ids}
        a0, f0 = dict(analysed), {c: svc.live.stats()[c]["fragments"] for c in ids}
        c0, r0, t0 = proc_cpu(os.getpid()), proc_cpu(server.pid or 0), time.monotonic()
        await asyncio.sleep(window)
        c1, r1, t1 = proc_cpu(os.getpid()), proc_cpu(server.pid or 0), time.monotonic()
        periods = [b - a for a, b in zip(ticks, ticks[1:], strict=False) if a >= t0 and b <= t1]
        span = t1 - t0
        sampled = {c: (svc.status(c).extra["sampled"] - s0[c]) / span for c in ids}
        done = {c: (analysed[c] - a0[c]) / span for c in ids}
        tiles = {c: (svc.live.stats()[c]["fragments"] - f0[c]) / span for c in ids}
    finally:
        stop.set()
        for v in viewers:
            v.cancel()
        await asyncio.gather(*viewers, return_exceptions=True)
        await svc.stop()
        server.stop()
    # 0.9: a window of W seconds holds W or W-1 pictures taken once a second
    ok = sum(1 for c in ids if done[c] >= 0.9 and sampled[c] >= 0.9)
    out = {"cameras": n, "window_s": round(span, 1), "cameras_at_1fps": ok,
           "analysed_per_s_median": round(statistics.median(done.values()), 2),
           "analysed_per_s_min": round(min(done.values()), 2),
           "sampled_per_s_median": round(statistics.median(sampled.values()), 2),
           "tile_fps_median": round(statistics.median(tiles.values()), 1),
           "tile_fps_min": round(min(tiles.values()), 1),
           "detection_tick_s_median": round(statistics.median(periods), 2) if periods else None,
           "process_cpu_pct": round(100 * (c1 - c0) / span, 1), "rtsp_server_cpu_pct": round(100 * (r1 - r0) / span, 1),
           "load_avg": round(os.getloadavg()[0], 1)}
    print(f"{n} cameras (tile 720p25 GOP 2 s watched + 640x360 sub-stream analysed): {ok}/{n} at >= 1 analysed "
          f"frame/s (median {out['analysed_per_s_median']}, min {out['analysed_per_s_min']}/s; sampler put out "
          f"{out['sampled_per_s_median']}/s; detection round every {out['detection_tick_s_median']} s); tiles median "
          f"{out['tile_fps_median']} fps (min {out['tile_fps_min']}); "
          f"this process {out['process_cpu_pct']} % of a core, "
          f"RTSP server {out['rtsp_server_cpu_pct']} %; load average {out['load_avg']}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=40, help="video seconds per GOP/mode in part 1 (>= 30)")
    ap.add_argument("--capacity", type=int, nargs="*", default=[16, 32], help="camera counts for part 2")
    ap.add_argument("--window", type=float, default=15.0, help="measured seconds per capacity run")
    args = ap.parse_args()
    if args.seconds < 30:
        ap.error("--seconds must be >= 30: the vendor arrives at 10 s and the dwell is 10 s")

    from config import load_settings

    settings = load_settings(ROOT / "config" / "demo.yaml")
    (camera,) = [c for c in settings.cameras if c.url == "demo://vending"]
    t = time.monotonic()
    paths = ensure_gop_media(args.seconds)
    print(f"media ready in {time.monotonic() - t:.1f} s; cpus {os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: noisy)", flush=True)
    rows = part1(paths, settings, camera)
    capacity = [asyncio.run(part2(paths, n, args.window, settings, camera)) for n in args.capacity]
    print(json.dumps({"bench": "analysis_gop", "part1": rows, "capacity": capacity}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
