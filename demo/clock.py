"""The live clock camera: an RTSP server whose frames carry their own creation time, and the decoder for it.

``ClockRtspServer`` runs ``clock_rtsp_server.py`` (GStreamer, live x264/x265 encode, zero latency) as a child
process, with the same start/stop/restart-on-the-same-port behaviour as :class:`demo.server.DemoRtspServer`.
Each frame has a horizontal band of 40 equal blocks at 40 % of its height: 32 bits of the Unix time in ms
(mod 2**32, most significant first), then 8 check bits (byte sum of the 32 bits, XOR 0xA5). White is 1, black 0.
``decode_band`` reads it back from a grey image (numpy); the browser side (bench/glass_page.js) does the same
from a canvas. ``latency_ms`` turns a decoded value into "now minus then", wrap-safe.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from demo.server import SYSTEM_PYTHON, DemoRtspServer

SCRIPT = Path(__file__).resolve().parent / "clock_rtsp_server.py"
BITS = 40
BAND_TOP_FRAC = 0.40
BAND_HEIGHT_FRAC = 0.12
CHECK_XOR = 0xA5


class ClockRtspServer(DemoRtspServer):
    """Serves live clock cameras at ``rtsp://host:port/<mount>``; ``start()`` after ``stop()`` keeps the port."""

    def __init__(self, mounts: tuple[str, ...] = ("clock",), *, host: str = "127.0.0.1", port: int = 0,
                 width: int = 1280, height: int = 720, fps: int = 25, codec: str = "h264",
                 bitrate_kbps: int = 2500) -> None:
        if not mounts or any(not m or "/" in m for m in mounts):
            raise ValueError(f"mounts: names without '/', got {mounts!r}")
        if codec not in ("h264", "h265"):
            raise ValueError(f"codec: h264 or h265, got {codec!r}")
        # DemoRtspServer's constructor checks media files; a clock camera has none, so set its fields here.
        self.media = {}
        self.mounts = tuple(mounts)
        self.host, self.port, self.fps = host, port, fps
        self.width, self.height, self.codec, self.bitrate_kbps = width, height, codec, bitrate_kbps
        self.auth, self.tls_pem, self.session_timeout_s = "", None, 60  # plain RTSP, no login
        self._proc = None
        self._spawner = None
        self._stderr = collections.deque(maxlen=50)
        self._stderr_thread = None

    def _command(self) -> list[str]:
        cmd = [SYSTEM_PYTHON, str(SCRIPT), "--host", self.host, "--port", str(self.port),
               "--width", str(self.width), "--height", str(self.height), "--fps", str(self.fps),
               "--codec", self.codec, "--bitrate", str(self.bitrate_kbps)]
        for m in self.mounts:
            cmd += ["--mount", m]
        return cmd

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"ClockRtspServer({self.host}:{self.port}, {', '.join(self.mounts)}, {self.codec}; {state})"


def decode_band(gray: np.ndarray) -> int | None:
    """The ms value drawn into a frame (``gray``: H×W uint8 luma), or None if the band does not check out."""
    h, w = gray.shape[:2]
    top = int(h * BAND_TOP_FRAC) // 2 * 2
    band_h = max(16, int(h * BAND_HEIGHT_FRAC)) // 2 * 2
    block_w = w // BITS
    row = gray[top + band_h // 4: top + 3 * band_h // 4]
    word = 0
    for i in range(BITS):
        x0 = i * block_w + block_w // 4
        cell = row[:, x0:x0 + block_w // 2]
        word = (word << 1) | int(cell.mean() > 128)
    value, check = word >> 8, word & 0xFF
    if ((sum(value.to_bytes(4, "big")) & 0xFF) ^ CHECK_XOR) != check:
        return None
    return value


def latency_ms(encoded: int, now_ms: int) -> int:
    """``now_ms - time`` where ``encoded`` is that time mod 2**32 (wrap-safe for latencies under ~24 days)."""
    d = (now_ms - encoded) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d
