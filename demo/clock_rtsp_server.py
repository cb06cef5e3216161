#!/usr/bin/python3
"""Standalone live "clock camera" RTSP server: every frame carries the wall-clock time it was made, as blocks.

Run by Debian's /usr/bin/python3 (the interpreter with ``gi``); imports nothing from the project. Started as a
child process by ``demo.clock.ClockRtspServer`` for the glass-to-glass latency benchmark and the live tests.

    /usr/bin/python3 demo/clock_rtsp_server.py --host 127.0.0.1 --port 0 --mount clock \
        --width 1280 --height 720 --fps 25 --codec h264

Unlike ``rtsp_server.py`` (pre-encoded files), this one encodes live: a feeder thread makes one raw I420 frame
per frame interval, draws the current Unix time in milliseconds into it as a band of black/white blocks
(``demo.clock`` documents the layout and decodes it), and pushes it into ``appsrc ! x264enc`` (or ``x265enc``)
tuned for zero latency, so the time in a frame is the time it entered the encoder. The media is shared between
clients; the feeder stops when the media is torn down (the last client left). Prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: E402
from rtsp_server import serve  # noqa: E402  (this file's folder is on sys.path when run as a script)

# Layout — keep in step with demo/clock.py (the decoder side).
BITS = 40            # 32 bits of (ms mod 2**32), then 8 bits of check
BAND_TOP_FRAC = 0.40  # the band sits at 40 % of the height (clear of the tile's name bar)
BAND_HEIGHT_FRAC = 0.12
CHECK_XOR = 0xA5     # an all-black or all-white band never passes the check
BLACK, WHITE, GREY = 16, 235, 96


def encode_bits(ms: int) -> list[int]:
    """The 40 block values (0/1), most significant bit first: ms mod 2**32, then the check byte."""
    value = ms & 0xFFFFFFFF
    check = (sum(value.to_bytes(4, "big")) & 0xFF) ^ CHECK_XOR
    word = (value << 8) | check
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


class ClockFeeder:
    """Pushes one frame per interval into an appsrc until the media goes away."""

    def __init__(self, src: Gst.Element, width: int, height: int, fps: int) -> None:
        self.src = src
        self.width, self.height, self.fps = width, height, fps
        self.block_w = width // BITS
        self.band_top = int(height * BAND_TOP_FRAC) // 2 * 2
        self.band_h = max(16, int(height * BAND_HEIGHT_FRAC)) // 2 * 2
        y = bytearray([GREY]) * (width * height)
        # A moving stripe below the band so the picture is not static apart from the blocks.
        self.base_y = y
        self.chroma = bytes([128]) * (width * height // 2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="clock-feeder", daemon=True)

    def frame(self, n: int, ms: int) -> bytes:
        w = self.width
        y = bytearray(self.base_y)
        row = b"".join(bytes([WHITE if bit else BLACK]) * self.block_w for bit in encode_bits(ms))
        row += bytes([GREY]) * (w - len(row))
        for r in range(self.band_top, self.band_top + self.band_h):
            y[r * w:(r + 1) * w] = row
        stripe_x = (n * 8) % max(1, w - 64)
        for r in range(self.height - 120, self.height - 40):
            y[r * w + stripe_x:r * w + stripe_x + 64] = bytes([WHITE]) * 64
        return bytes(y) + self.chroma

    def run(self) -> None:
        interval = 1.0 / self.fps
        start = time.monotonic()
        n = 0
        while not self.stop.is_set():
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                if self.stop.wait(delay):
                    return
            elif delay < -1.0:  # fell far behind (a stalled machine): skip ahead rather than burst
                n = int((time.monotonic() - start) / interval)
            ms = int(time.time() * 1000)
            buf = Gst.Buffer.new_wrapped(self.frame(n, ms))
            buf.duration = Gst.SECOND // self.fps
            n += 1
            if self.src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return  # flushing or torn down


class ClockFactory(GstRtspServer.RTSPMediaFactory):
    """One shared live media: raw frames → zero-latency encoder → RTP payloader."""

    def __init__(self, width: int, height: int, fps: int, codec: str, bitrate_kbps: int) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.set_shared(True)
        caps = f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"
        if codec == "h264":
            enc = (f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate={bitrate_kbps} "
                   "! video/x-h264,profile=constrained-baseline ! h264parse ! rtph264pay name=pay0 pt=96 "
                   "config-interval=1")
        else:
            enc = (f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate={bitrate_kbps} "
                   "! h265parse ! rtph265pay name=pay0 pt=96 config-interval=1")
        self.set_launch(f"( appsrc name=src is-live=true do-timestamp=true format=time block=false "
                        f"max-bytes=20000000 caps={caps} ! queue max-size-buffers=3 leaky=downstream ! {enc} )")
        self.connect("media-configure", self._configure)

    def _configure(self, _factory, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_child_by_name("src")
        feeder = ClockFeeder(src, self.width, self.height, self.fps)
        media._feeder = feeder
        media.connect("unprepared", lambda _m: feeder.stop.set())
        feeder.thread.start()
        print("clock media: new pipeline", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mount", action="append", default=[], help="mount name (repeatable; default: clock)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--codec", choices=("h264", "h265"), default="h264")
    p.add_argument("--bitrate", type=int, default=2500, help="kbit/s")
    args = p.parse_args(argv)
    if args.width < BITS * 8 or args.height < 64 or args.width % 2 or args.height % 2:
        p.error(f"--width/--height: need even sizes, width >= {BITS * 8}, height >= 64")
    if not 1 <= args.fps <= 60:
        p.error("--fps must be 1..60")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name in args.mount or ["clock"]:
        if not name or "/" in name:
            p.error(f"--mount {name!r}: a name without '/'")
        mounts.add_factory(f"/{name}", ClockFactory(args.width, args.height, args.fps, args.codec, args.bitrate))
    return serve(server, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
