"""Recording benchmark: CPU of recording N 720p25 demo cameras against the live relay's cost for the same cameras
in the same run, seek → first fragment, and the export of 10 minutes.

Run: ``.venv/bin/python bench/bench_recording.py [--cameras 8] [--window 5] [--reps 3]``. Starts its own demo RTSP
server (a child process; its CPU is not counted), one IngestService (no sampler) and a RecordingService on a
temporary SQLite case store and directory. Phases alternate within each repetition — connections only, the relay
(one viewer per camera reading every fragment), recording (every camera, writer thread and index included) — and
each figure is the median. CPU is this process's user+system time per wall-clock second, in % of one core; the
per-camera costs are (phase − connections only) / N.

Seek: ``--seeks`` random times in what was recorded, each a new :class:`PlaybackCursor` (index query, file read,
parse) until its first fragment, in a worker thread as the wall server runs it (the socket and the browser's
decode come on top). Export: the recorded segments copied (renamed, re-indexed) until one camera has 10 minutes,
then one ``export_file`` of those 10 minutes (written to a file on disk), timed, and its size.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cases.store import CaseStore  # noqa: E402
from config import parse_settings  # noqa: E402
from demo.media import ensure_media  # noqa: E402
from demo.scenes import SCENE_NAMES  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from recording.recorder import SegmentRow, segment_path  # noqa: E402
from recording.service import RecordingService  # noqa: E402
from video_ingest.live import LiveEnded, LiveViewer  # noqa: E402
from video_ingest.service import IngestService  # noqa: E402

MEDIA_DIR = ROOT / "var" / "demo-media"
SEED = 7
HASH = "scrypt$16384$8$1$00$00"


async def cpu_percent(window_s: float) -> float:
    c0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window_s)
    return (time.process_time() - c0) / (time.monotonic() - t0) * 100


class Switch:
    """A packet sink that forwards to ``sink`` only while on (so one recorder can be paused between phases)."""

    def __init__(self, sink: Any, fanout: Any) -> None:
        self.sink, self.fanout, self.on = sink, fanout, False

    def set(self, on: bool) -> None:
        if on and not self.on and self.fanout.info is not None:
            self.sink.stream_started(self.fanout.info)
        if not on and self.on:
            self.sink.stream_ended("bench phase over")
        self.on = on

    def stream_started(self, info: Any) -> None:
        if self.on:
            self.sink.stream_started(info)

    def packet(self, unit: Any, arrived_at: float) -> None:
        if self.on:
            self.sink.packet(unit, arrived_at)

    def stream_ended(self, reason: str) -> None:
        if self.on:
            self.sink.stream_ended(reason)


async def reader(viewer: LiveViewer) -> None:
    try:
        while True:
            await viewer.next_fragment()
    except LiveEnded:
        pass


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def run(cameras: int, window_s: float, reps: int, seeks: int) -> None:
    media = ensure_media(MEDIA_DIR, SEED, SCENE_NAMES)
    server = DemoRtspServer(media)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    ids = [f"cam-{i:02d}" for i in range(cameras)]
    settings = parse_settings({
        "storage": {"data_dir": str(tmp)},
        "users": [{"username": "a", "display_name": "a", "role": "admin", "password_hash": HASH}],
        "cameras": [{"id": c, "name": c, "url": "rtsp://127.0.0.1:1/x", "position": {"lon": 120.1, "lat": 30.2}}
                    for c in ids],
        "recording": {"mode": "continuous", "segment_s": 10}})
    store = CaseStore.open(f"sqlite:///{tmp}/cases.sqlite")
    ingest = IngestService({c: server.url(SCENE_NAMES[i % len(SCENE_NAMES)]) for i, c in enumerate(ids)},
                           sample_keyframes=False)
    service = RecordingService(settings, store, ids)
    results: dict[str, list[float]] = {"idle": [], "relay": [], "recording": []}
    try:
        await ingest.start()
        deadline = time.monotonic() + 30
        while any(ingest.status(c).state != "online" for c in ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        switches = {c: Switch(service.recorders[c], ingest._sources[c].fanout) for c in ids}
        await service.start(lambda cid, sink: ingest.subscribe_packets(cid, switches[cid]))
        await asyncio.sleep(1.0)
        for _ in range(reps):
            results["idle"].append(await cpu_percent(window_s))
            viewers = [await ingest.live.open(c) for c in ids]
            tasks = [asyncio.create_task(reader(v)) for v in viewers]
            await asyncio.sleep(0.5)
            results["relay"].append(await cpu_percent(window_s))
            for v in viewers:
                v.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in switches.values():
                s.set(True)
            await asyncio.sleep(0.5)
            results["recording"].append(await cpu_percent(window_s))
            for s in switches.values():
                s.set(False)
        med = {k: statistics.median(v) for k, v in results.items()}
        relay = (med["relay"] - med["idle"]) / cameras
        record = (med["recording"] - med["idle"]) / cameras
        print(f"{cameras} cameras, {reps} reps of {window_s:g} s; CPU % of one core (median): connections only "
              f"{med['idle']:.2f}, + relay {med['relay']:.2f}, + recording {med['recording']:.2f}")
        print(f"per camera: relay {relay:.3f} %, recording {record:.3f} % (target <= 0.3 %) -> recording/relay "
              f"{record / relay:.2f}x" if relay > 0 else f"per camera: recording {record:.3f} %")
        print(f"written: {service.writer.bytes_written / 1e6:.1f} MB in {service.writer.segments_written} "
              f"segments; dropped {sum(r.dropped for r in service.recorders.values())}, "
              f"gaps {sum(r.gaps for r in service.recorders.values())}")

        # seek -> first fragment, at random recorded times
        for s in switches.values():
            s.set(True)
        await asyncio.sleep(12.0)  # at least one complete segment per camera
        rows = service.index.segments(ids[0], 0, time.time())
        lo, hi = rows[0].start_at, rows[-1].end_at
        rng = random.Random(7)
        timings = []
        for _ in range(seeks):
            cid = rng.choice(ids)
            at = rng.uniform(lo, hi - 1.0)
            t0 = time.perf_counter()

            def first(cid: str = cid, at: float = at) -> None:
                cursor = service.library.cursor(cid, at, 1)
                while True:
                    items = cursor.next()
                    if items is None or any(i.kind == "fragment" for i in items):
                        return

            await asyncio.to_thread(first)
            timings.append((time.perf_counter() - t0) * 1000)
        print(f"seek -> first fragment ({seeks} seeks, library in a worker thread): p50 "
              f"{statistics.median(timings):.1f} ms, p95 {p95(timings):.1f} ms, max {max(timings):.1f} ms")
        for s in switches.values():
            s.set(False)
        await asyncio.sleep(0.5)

        # export of 10 minutes: complete segments of one camera copied forward until they hold 600 s of video
        # (the originals have holes between the bench's phases; an export closes holes up, so the range is
        # widened by them)
        done = [r for r in service.index.segments(ids[0], 0, time.time()) if r.complete]
        start = done[0].start_at
        holes = (done[-1].end_at - start) - sum(r.end_at - r.start_at for r in done)
        until = start + 600 + holes
        t = done[-1].end_at
        while t < until:
            for r in done:
                if t >= until:
                    break
                path = segment_path(ids[0], t)
                (service.root / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(service.root / r.path, service.root / path)
                service.index.closed(SegmentRow(ids[0], path, t, t + (r.end_at - r.start_at), r.bytes, r.codec))
                t += r.end_at - r.start_at
        service.library.max_export_s = until - start
        t0 = time.perf_counter()
        export, file = await asyncio.to_thread(service.library.export_file, ids[0], start, until)
        took = time.perf_counter() - t0
        file.close()
        print(f"export of 10 min (to a file on disk): {took:.2f} s (target <= 2 s), {export.size / 1e6:.1f} MB, "
              f"{export.seconds:.1f} s of video, {export.frames} frames from {export.segments} segments")
    finally:
        await ingest.stop()
        await service.stop()
        store.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seeks", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.cameras, args.window, args.reps, args.seeks))


if __name__ == "__main__":
    main()
