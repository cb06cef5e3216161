"""Per-packet CPU of ingest and recording: the bytes of real RTSP connections replayed through the hot path.

Run: ``.venv/bin/python bench/bench_ingest_packets.py [--seconds 20] [--reps 7] [--base DIR]``.

The hot path of every camera, 25 times a second and for every RTP packet of a frame, all on the event loop:
the RTSP client's interleaved-frame parsing (``RtspCore.receive``), the RTP depacketizer, the camera source's
per-frame work, the packet fan-out with its GOP replay ring, and the sinks every camera has — the evidence clip
ring (``ClipBuffer``) and the recorder (``CameraRecorder``: fMP4 fragments, batches handed to the writer thread).

1. Capture (once, cached under ``var/bench-ingest``): ``--seconds`` of each demo scene (720p25, GStreamer's
   RTSP server, RTP interleaved over TCP), kept as the chunks the socket delivered, in their sizes.
2. Replay: each capture through a fresh ``_Protocol`` → ``RtspSession`` → ``CameraSource`` → fan-out → sinks, in
   a child process per tree (this checkout, and ``--base``: another checkout such as ``main``, for a same-run
   A/B), alternating trees rep by rep. Measured: the replaying thread's CPU time (``time.thread_time``; the
   recording writer's thread is not in it) per frame and per RTP packet; medians over the reps; the ratio
   this/base. Stages can be measured alone (``--sinks none|clip|record|all``).

A machine loaded by other work slows both trees alike within a rep; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
SCENES = ("vending", "bin_overflow", "road_occupation", "quiet_street")
CACHE = ROOT / "var" / "bench-ingest"


# ---------------------------------------------------------------------------------------------------- capture

def capture(seconds: float) -> list[Path]:
    """``seconds`` of each scene's RTSP connection as received: (track, rtp channel, [chunk bytes])."""
    sys.path.insert(0, str(ROOT))
    from demo.media import ensure_media
    from demo.server import DemoRtspServer

    CACHE.mkdir(parents=True, exist_ok=True)
    paths = [CACHE / f"{scene}-{seconds:g}s.pkl" for scene in SCENES]
    if all(p.exists() for p in paths):
        return paths
    media = ensure_media(ROOT / "var" / "demo-media", SEED, SCENES)
    with DemoRtspServer(media) as server:
        for scene, path in zip(SCENES, paths, strict=True):
            if not path.exists():
                asyncio.run(_capture_one(server.url(scene), seconds, path))
    return paths


async def _capture_one(url: str, seconds: float, path: Path) -> None:
    from video_ingest import rtsp

    chunks: list[bytes] = []
    frames = 0

    def on_unit(_unit: object) -> None:
        nonlocal frames
        frames += 1

    session = rtsp.RtspSession(url, on_unit, transport="tcp")
    original = rtsp._Protocol.data_received
    recording = False

    def tee(self: rtsp._Protocol, data: bytes) -> None:
        if recording:
            chunks.append(bytes(data))
        original(self, data)

    rtsp._Protocol.data_received = tee  # type: ignore[method-assign]
    try:
        track = await session.open()
        # Start at a keyframe's first bytes is not needed: the source waits for one, as with a real camera.
        recording = True
        await asyncio.sleep(seconds)
        recording = False
    finally:
        rtsp._Protocol.data_received = original  # type: ignore[method-assign]
        session.close()
    path.write_bytes(pickle.dumps({"track": track, "channel": session.core.rtp_channel, "chunks": chunks}))
    print(f"captured {path.name}: {len(chunks)} chunks, {sum(map(len, chunks)) / 1e6:.1f} MB, {frames} frames",
          file=sys.stderr)


# ----------------------------------------------------------------------------------------------------- replay

def replay(tree: str, paths: list[str], sinks: str, reps: int) -> dict[str, float]:
    """In this (child) process, with ``tree`` first on the path: CPU µs per frame and per packet over ``reps``."""
    sys.path.insert(0, tree)
    import logging

    logging.disable(logging.CRITICAL)
    from recording.recorder import CameraPolicy, CameraRecorder, SegmentIndexSink, SegmentWriter
    from video_ingest import rtsp
    from video_ingest.clip_buffer import ClipBuffer
    from video_ingest.rtp import Depacketizer
    from video_ingest.source import CameraSource

    captures = [pickle.loads(Path(p).read_bytes()) for p in paths]
    tmp = tempfile.mkdtemp(prefix="bench-ingest-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    writer = SegmentWriter(tmp, SegmentIndexSink(), queue_size=1 << 16)
    writer.start()
    best: list[float] = []
    frames = 0
    for _ in range(reps):
        total = 0.0
        frames = 0
        for n, cap in enumerate(captures):
            source = CameraSource(f"cam-{n}", "rtsp://127.0.0.1/x")
            source._track = cap["track"]
            session = rtsp.RtspSession("rtsp://127.0.0.1/x", source._unit, transport="tcp")
            session.core.rtp_channel = cap["channel"]
            session.depacketizer = Depacketizer(cap["track"].codec)
            proto = rtsp._Protocol(session)
            if sinks in ("clip", "all"):
                source.fanout.subscribe(ClipBuffer(f"cam-{n}", pre_s=8.0, post_s=8.0))
            if sinks in ("record", "all"):
                source.fanout.subscribe(CameraRecorder(f"cam-{n}", writer, CameraPolicy(segment_s=10.0)))
            receive = proto.data_received
            chunks = cap["chunks"]
            t0 = time.thread_time()
            for chunk in chunks:
                receive(chunk)
            total += time.thread_time() - t0
            source._end_session("bench over")
            frames += source.units
            if hasattr(writer, "drain"):  # the base tree may not have it
                writer.drain()
            else:
                time.sleep(0.5)
        best.append(total)
    writer.stop()
    packets = sum(_count_rtp(cap) for cap in captures)
    med = statistics.median(best)
    return {"frames": frames, "packets": packets, "s": med, "us_per_frame": med / frames * 1e6,
            "us_per_packet": med / packets * 1e6}


def _count_rtp(cap: dict) -> int:
    """RTP packets on the video channel of a capture (the chunks joined and walked frame by frame)."""
    data = b"".join(cap["chunks"])
    pos, n, count = 0, len(data), 0
    while pos + 4 <= n:
        if data[pos] != 0x24:
            end = data.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            pos = end + 4  # RTSP answers (keepalive) carry no body here
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        count += data[pos + 1] == cap["channel"]
        pos += 4 + length
    return count


# ------------------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds captured per scene (cached)")
    ap.add_argument("--reps", type=int, default=7, help="alternating runs per tree")
    ap.add_argument("--inner", type=int, default=1, help="replays per run (the median of them is the run's)")
    ap.add_argument("--sinks", choices=("none", "clip", "record", "all"), default="all")
    ap.add_argument("--base", help="another checkout to compare with (e.g. a `git worktree` of main)")
    ap.add_argument("--replay", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay:
        print(json.dumps(replay(args.tree, args.replay, args.sinks, args.inner)))
        return 0
    paths = [str(p) for p in capture(args.seconds)]
    trees = {"this": str(ROOT)} | ({"base": str(Path(args.base).resolve())} if args.base else {})
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for rep in range(args.reps):
        for name, tree in (trees.items() if rep % 2 == 0 else reversed(trees.items())):
            out = subprocess.run([sys.executable, __file__, "--tree", tree, "--sinks", args.sinks, "--inner",
                                  str(args.inner), "--replay", *paths], capture_output=True, text=True, cwd=tree)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            runs[name].append(json.loads(out.stdout))
    first = runs["this"][0]
    print(f"{len(paths)} cameras × {args.seconds:g} s of 720p25: {first['frames']} frames, {first['packets']} RTP "
          f"packets; sinks: {args.sinks}; {args.reps} runs per tree")
    med = {}
    for name, rows in runs.items():
        per_frame = [r["us_per_frame"] for r in rows]
        med[name] = statistics.median(per_frame)
        print(f"  {name:4s} {med[name]:7.1f} µs/frame  {statistics.median(r['us_per_packet'] for r in rows):6.2f} "
              f"µs/packet   (runs: {' '.join(f'{x:.1f}' for x in per_frame)})")
    if "base" in med:
        print(f"  this/base: {med['this'] / med['base']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
