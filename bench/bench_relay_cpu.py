"""Relay CPU: citywall's live relay vs ``ffmpeg -c copy`` remuxing the same 16 RTSP streams (720p25) to fMP4.

Run: ``.venv/bin/python bench/bench_relay_cpu.py [--streams 16] [--window 10] [--reps 3]``.

One demo RTSP server (its CPU is not counted) serves the four demo scenes; 16 camera ids spread over them, each
its own RTSP connection. Both sides run at the same time, over the same windows:

- citywall: a child process running one ``IngestService`` (16 sources, no keyframe sampling) with one live
  viewer per camera that reads every fragment (the wall's WebSocket pump minus the socket): our RTSP client and
  RTP depacketizer + per-frame fMP4 + the viewer's queue, all on one event loop.
- baseline: 16 ``ffmpeg -rtsp_transport tcp -i URL -c copy -f mp4 -movflags
  frag_keyframe+empty_moov+default_base_moof+frag_every_frame`` processes writing to /dev/null (per-frame
  fragments, like the relay).

CPU is user+system from /proc/<pid>/stat over each window; printed per window and as medians, with the ratio
citywall/ffmpeg (target ≤ 1.5×) and both sides' fragment/frame rates so one can see they did the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLK = os.sysconf("SC_CLK_TCK")
SEED = 7
SCENES = ("vending", "bin_overflow", "road_occupation", "quiet_street")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` (with its waited-for children), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + cutime) / CLK, (stime + cstime) / CLK


def cpu_seconds(pid: int) -> float:
    """user+system CPU of ``pid`` (and its waited-for children), from /proc."""
    return sum(cpu_split(pid))


# ---------------------------------------------------------------------------------------------- the worker


async def worker(urls: list[str]) -> None:
    """Child process: ingest + relay + one reading viewer per camera; prints fragment totals on request."""
    from video_ingest.live import LiveEnded
    from video_ingest.service import IngestService

    svc = IngestService({f"cam-{i:02d}": u for i, u in enumerate(urls)}, sample_keyframes=False)
    await svc.start()
    counts = {cid: 0 for cid in svc.camera_ids}

    async def read(cid: str) -> None:
        while True:
            try:
                viewer = await svc.live.open(cid)
                while True:
                    await viewer.next_fragment()
                    counts[cid] += 1
            except LiveEnded:
                continue
            except Exception:
                await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(read(cid)) for cid in svc.camera_ids]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", flush=True)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"quit":
            break
        print("COUNT", sum(counts.values()), min(counts.values()), flush=True)
    for t in tasks:
        t.cancel()
    await svc.stop()


# ---------------------------------------------------------------------------------------------- the bench


def ffmpeg_frames(path: Path) -> int:
    """The last ``frame=`` figure ffmpeg wrote to its progress file."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    frames = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("frame=")]
    return int(frames[-1]) if frames else 0


def run(args: argparse.Namespace) -> int:
    from demo.media import ensure_media
    from demo.server import DemoRtspServer

    media = ensure_media(ROOT / "var" / "demo-media", SEED, SCENES)
    server = DemoRtspServer(media)
    server.start()
    urls = [server.url(SCENES[i % len(SCENES)]) for i in range(args.streams)]
    tmp = Path(f"/tmp/citywall-relay-bench-{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    relay: subprocess.Popen[str] | None = None
    try:
        relay = subprocess.Popen([sys.executable, __file__, "--worker", *urls], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert relay.stdin is not None and relay.stdout is not None
        to_relay, from_relay = relay.stdin, relay.stdout
        if relay.stdout.readline().strip() != "READY":
            print("relay worker did not start", file=sys.stderr)
            return 1
        for i, url in enumerate(urls):
            progress = tmp / f"ff{i}.progress"
            procs.append(subprocess.Popen(
                ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
                 "-fflags", "nobuffer", "-i", url, "-map", "0:v:0", "-c", "copy", "-f", "mp4", "-movflags",
                 "frag_keyframe+empty_moov+default_base_moof+frag_every_frame", "-progress", str(progress),
                 "-y", "/dev/null"], stdin=subprocess.DEVNULL))
        time.sleep(args.warmup)

        def relay_fragments() -> tuple[int, int]:
            to_relay.write("count\n")
            to_relay.flush()
            _, total, least = from_relay.readline().split()
            return int(total), int(least)

        ours, theirs = [], []
        print(f"{args.streams} streams of 720p25 over {len(SCENES)} scenes; windows of {args.window:g} s")
        for rep in range(args.reps):
            frag0, _ = relay_fragments()
            frames0 = sum(ffmpeg_frames(tmp / f"ff{i}.progress") for i in range(len(procs)))
            c_ours0 = cpu_seconds(relay.pid)
            sys0 = cpu_split(relay.pid)[1]
            sys_ff0 = sum(cpu_split(p.pid)[1] for p in procs)
            c_ff0 = sum(cpu_seconds(p.pid) for p in procs)
            t0 = time.monotonic()
            time.sleep(args.window)
            dt = time.monotonic() - t0
            c_ours = (cpu_seconds(relay.pid) - c_ours0) / dt * 100
            c_ff = (sum(cpu_seconds(p.pid) for p in procs) - c_ff0) / dt * 100
            sys_ours = (cpu_split(relay.pid)[1] - sys0) / dt * 100
            sys_ff = (sum(cpu_split(p.pid)[1] for p in procs) - sys_ff0) / dt * 100
            frag1, least = relay_fragments()
            frames1 = sum(ffmpeg_frames(tmp / f"ff{i}.progress") for i in range(len(procs)))
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            ours.append(c_ours)
            theirs.append(c_ff)
            print(f"  window {rep + 1}: citywall {c_ours:5.1f} % (system {sys_ours:4.1f} %; "
                  f"{(frag1 - frag0) / dt:5.0f} fragments/s, "
                  f"slowest camera {least} total) | ffmpeg x{len(procs)} {c_ff:5.1f} % (system {sys_ff:4.1f} %; "
                  f"~{(frames1 - frames0) / dt:5.0f} frames/s){'; ffmpeg exited: ' + str(dead) if dead else ''}",
                  flush=True)
        m_ours, m_ff = statistics.median(ours), statistics.median(theirs)
        print(f"citywall relay   median {m_ours:5.1f} % of one core ({m_ours / args.streams:.2f} % per stream)")
        print(f"ffmpeg -c copy   median {m_ff:5.1f} % of one core ({m_ff / args.streams:.2f} % per stream)")
        met = "MET" if m_ours / m_ff <= 1.5 else "NOT MET"
        print(f"ratio citywall/ffmpeg: {m_ours / m_ff:.2f}x  (target <= 1.5x: {met})")
        return 0
    finally:
        if relay is not None and relay.poll() is None:
            try:
                if relay.stdin is not None:
                    relay.stdin.write("quit\n")
                    relay.stdin.flush()
                relay.wait(20)
            except Exception:
                relay.kill()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2:]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=float, default=5.0)
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
