"""Live fan-out through the real WebSocket: server CPU for 1 vs N browser-like viewers of one camera.

Run: ``.venv/bin/python bench/bench_live_sockets.py [--viewers 50] [--window 5] [--reps 3]``.

bench_live_fanout.py measures the relay's fan-out without the socket; this one adds it. Three processes:

- the server (measured): one ``IngestService`` pulling one demo RTSP camera (720p25) and the wall's own
  ``wall.live_ws.LiveSockets`` serving ``/api/live/{camera}`` on an aiohttp server on 127.0.0.1;
- the viewers (not measured): aiohttp WebSocket clients that offer ``permessage-deflate`` as every browser does,
  read every fragment and count them; the count of open viewers is switched between phases;
- the demo RTSP server (not measured).

Phases alternate (1 viewer, N viewers, repeated ``--reps`` times); each prints the server's CPU in % of one core
and the fragments per second the viewers received. Printed at the end: medians and the ratio N/1 (target from
issue 3: 50 viewers ≤ 2× one viewer), and whether the socket negotiated compression.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_relay_cpu import cpu_seconds, cpu_split  # noqa: E402

SEED = 7
CAMERA = "cam-v"


async def serve(url: str) -> None:
    """Server child: ingest + the wall's live sockets; prints ``PORT <n>`` and runs until stdin closes."""
    from aiohttp import web

    from video_ingest.service import IngestService
    from wall.live_ws import LiveSockets

    ingest = IngestService({CAMERA: url}, sample_keyframes=False)
    await ingest.start()
    sockets = LiveSockets()

    async def live(request: web.Request) -> web.StreamResponse:
        return await sockets.serve(request, ingest.live, None)

    app = web.Application()
    app.router.add_get("/api/live/{camera_id}", live)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # (aiohttp keeps the listening server private)
    assert isinstance(server, asyncio.Server)  # started
    port = server.sockets[0].getsockname()[1]
    print("PORT", port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await sockets.shutdown()
    await runner.cleanup()
    await ingest.stop()


async def view(port: int) -> None:
    """Viewer child: ``n <count>`` on stdin sets how many viewers are open; ``count`` prints fragments received
    and whether any socket negotiated compression; EOF ends."""
    import aiohttp

    received = 0
    compressed = False
    tasks: list[asyncio.Task[None]] = []
    session = aiohttp.ClientSession()

    async def one() -> None:
        nonlocal received, compressed
        while True:
            try:
                async with session.ws_connect(f"http://127.0.0.1:{port}/api/live/{CAMERA}", compress=15,
                                              max_msg_size=1 << 24) as ws:
                    compressed = compressed or ws.compress != 0
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.BINARY:
                            received += 1
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", flush=True)
    while line := (await reader.readline()).decode().split():
        if line[0] == "n":
            want = int(line[1])
            while len(tasks) < want:
                tasks.append(asyncio.create_task(one()))
            while len(tasks) > want:
                tasks.pop().cancel()
            await asyncio.sleep(0.5)
            print("OK", flush=True)
        elif line[0] == "count":
            print("COUNT", received, int(compressed), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


def run(args: argparse.Namespace) -> int:
    from demo.media import ensure_media
    from demo.server import DemoRtspServer

    media = ensure_media(ROOT / "var" / "demo-media", SEED, ("vending",))
    rtsp = DemoRtspServer({"vending": media["vending"]})
    rtsp.start()
    server = viewers = None
    try:
        server = subprocess.Popen([sys.executable, __file__, "--serve", rtsp.url("vending")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert server.stdout is not None
        word, port = server.stdout.readline().split()
        assert word == "PORT", word
        viewers = subprocess.Popen([sys.executable, __file__, "--view", port], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert viewers.stdin is not None and viewers.stdout is not None
        to_viewers, from_viewers = viewers.stdin, viewers.stdout
        assert from_viewers.readline().strip() == "READY"

        def say(line: str) -> list[str]:
            to_viewers.write(line + "\n")
            to_viewers.flush()
            return from_viewers.readline().split()

        cpu: dict[int, list[float]] = {1: [], args.viewers: []}
        rate: dict[int, list[float]] = {1: [], args.viewers: []}
        compressed = False
        print(f"one 720p25 camera; viewers offer permessage-deflate; windows of {args.window:g} s")
        for rep in range(args.reps):
            for n in (1, args.viewers):
                say(f"n {n}")
                time.sleep(args.settle)
                _, got0, _ = say("count")
                c0, s0, t0 = cpu_seconds(server.pid), cpu_split(server.pid)[1], time.monotonic()
                time.sleep(args.window)
                dt = time.monotonic() - t0
                c = (cpu_seconds(server.pid) - c0) / dt * 100
                kernel = (cpu_split(server.pid)[1] - s0) / dt * 100
                _, got1, comp = say("count")
                compressed = compressed or comp == "1"
                per_viewer = (int(got1) - int(got0)) / dt / n
                cpu[n].append(c)
                rate[n].append(per_viewer)
                print(f"  rep {rep + 1}: {n:3d} viewer(s): server {c:5.1f} % of one core (system {kernel:4.1f} %), "
                      f"{per_viewer:5.1f} fragments/s per viewer", flush=True)
        one, many = statistics.median(cpu[1]), statistics.median(cpu[args.viewers])
        print(f"1 viewer:    median {one:5.1f} % ({statistics.median(rate[1]):.1f} fragments/s)")
        print(f"{args.viewers} viewers:  median {many:5.1f} % ({statistics.median(rate[args.viewers]):.1f} "
              f"fragments/s each)")
        print(f"ratio {args.viewers}/1: {many / one:.2f}x  (target <= 2x: {'MET' if many / one <= 2 else 'NOT MET'})")
        print(f"compression negotiated: {'yes' if compressed else 'no'}")
        return 0
    finally:
        for proc in (viewers, server):
            if proc is not None:
                try:
                    if proc.stdin is not None:
                        proc.stdin.close()
                    proc.wait(20)
                except Exception:
                    proc.kill()
        rtsp.stop()


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2]))
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == "--view":
        asyncio.run(view(int(sys.argv[2])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=50)
    p.add_argument("--window", type=float, default=5.0)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--reps", type=int, default=3)
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
