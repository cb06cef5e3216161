"""Recovery: camera back → tile playing again. Target (issue 3): within 3 s.

Run: ``.venv/bin/python bench/bench_live_recovery.py [--drops 5] [--down 6]``.

A demo RTSP camera is pulled by the real IngestService and shown by a ``<cw-tile>`` on the real wall server in
headless Chromium. Each round stops the RTSP server (the tile must show its offline overlay), keeps it down for
``--down`` seconds, restarts it on the same port and times, from the restart:

- baseline: the ingest source seeing video again (its status back to online) — the reconnect alone;
- the tile playing again (live, overlay gone, currentTime advancing).

Printed: per round and median/max of both, and the ratio of the medians.
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

from bench.livewall import LiveWall, wait_until  # noqa: E402
from demo.media import ensure_media  # noqa: E402
from demo.server import DemoRtspServer  # noqa: E402
from tests.live_page import overlay_shown, tile_stats  # noqa: E402


async def run(args: argparse.Namespace) -> int:
    media = ensure_media(ROOT / "var" / "demo-media", 7, ("vending",))
    server = DemoRtspServer({"vending": media["vending"]})
    server.start()
    tile_s: list[float] = []
    ingest_s: list[float] = []
    try:
        async with LiveWall({"cam-r": server.url("vending")}, open_timeout_s=5.0, read_timeout_s=5.0) as wall:
            page = await wall.new_page(1280, 720)
            await wall.show_tiles(page, ["cam-r"], width=640, height=360, columns=1)
            if not await wait_until(lambda: _live(page), 60):
                print("tile never went live", file=sys.stderr)
                return 1
            for n in range(args.drops):
                server.stop()
                if not await wait_until(lambda: overlay_shown(page), 20):
                    print(f"round {n + 1}: no offline overlay", file=sys.stderr)
                    return 1
                await asyncio.sleep(args.down)
                server.start()
                t0 = time.monotonic()
                ingest_at = tile_at = None
                t_first = None
                ingest = wall.ingest
                assert ingest is not None  # started
                while time.monotonic() - t0 < 30 and tile_at is None:
                    now = time.monotonic() - t0
                    if ingest_at is None and ingest.status("cam-r").state == "online":
                        ingest_at = now
                    s = (await tile_stats(page))[0]
                    if s["state"] == "live" and not await overlay_shown(page):
                        if t_first is None:
                            t_first = s["currentTime"]
                        elif s["currentTime"] > t_first:
                            tile_at = time.monotonic() - t0
                    await asyncio.sleep(0.02)
                if ingest_at is None or tile_at is None:
                    print(f"round {n + 1}: no recovery within 30 s (ingest {ingest_at}, tile {tile_at})")
                    return 1
                ingest_s.append(ingest_at)
                tile_s.append(tile_at)
                print(f"  round {n + 1}: ingest online {ingest_at:.2f} s, tile playing {tile_at:.2f} s", flush=True)
                await asyncio.sleep(2.0)
    finally:
        server.stop()
    mt, mi = statistics.median(tile_s), statistics.median(ingest_s)
    print(f"camera back -> ingest online (baseline): median {mi:.2f} s, max {max(ingest_s):.2f} s")
    print(f"camera back -> tile playing:             median {mt:.2f} s, max {max(tile_s):.2f} s")
    print(f"ratio tile/ingest medians: {mt / mi:.2f}x; target tile <= 3 s: {'MET' if mt <= 3.0 else 'NOT MET'} "
          f"(median), {'MET' if max(tile_s) <= 3.0 else 'NOT MET'} (every round)")
    return 0


async def _live(page) -> bool:
    s = (await tile_stats(page))[0]
    return s["state"] == "live" and s["videoWidth"] > 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--drops", type=int, default=5)
    p.add_argument("--down", type=float, default=6.0, help="seconds each outage lasts")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
