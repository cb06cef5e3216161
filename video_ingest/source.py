"""CameraSource: one RTSP connection per camera stream, in its own thread, with reconnect and health.

The thread opens the URL with PyAV (RTSP over TCP, no input buffering, FFmpeg socket timeouts), demuxes video packets
into the camera's :class:`PacketFanout`, and treats both the end of the demux loop (a killed server ends it
silently) and any error as a disconnect. It then waits an exponential backoff with jitter and tries again.

Stopping is checked between packets (≤ one frame interval while video flows); a connection that is hung in
``av.open`` or a read ends within the open/read timeout, which bounds the worst case of :meth:`CameraSource.stop`.
PyAV offers no safe way to abort a blocking read from another thread (closing the container under a running
``av_read_frame`` is a use-after-free), so the timeouts are the mechanism.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import av

from config import redact_url
from video_ingest.fanout import PacketFanout, StreamInfo
from video_ingest.health import Backoff, HealthTracker
from video_ingest.status import CameraStatus

log = logging.getLogger("citywall.ingest.source")

StatusCallback = Callable[[CameraStatus], None]

RECONNECT_INITIAL_S = 0.25
RECONNECT_MAX_S = 1.0
"""A camera's reconnect delay doubles from 0.25 s to at most 1 s: a camera that comes back is pulled again within
about a second (the wall's "back → playing within 3 s"); a dead one costs one refused connection a second."""


class CameraSource:
    """Pulls one camera's video into ``self.fanout``; ``status()`` tells how it is going."""

    def __init__(self, camera_id: str, url: str, *, worker: str = "local", open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0, on_status: StatusCallback | None = None,
                 backoff: Backoff | None = None, fanout: PacketFanout | None = None) -> None:
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError(f"camera {camera_id}: open_timeout_s and read_timeout_s must be > 0, "
                             f"got {open_timeout_s} and {read_timeout_s}")
        self.camera_id = camera_id
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.fanout = fanout or PacketFanout(camera_id)
        self.backoff = backoff or Backoff(initial_s=RECONNECT_INITIAL_S, max_s=RECONNECT_MAX_S)
        self._on_status = on_status
        self._health = HealthTracker(camera_id, worker=worker, stale_after_s=read_timeout_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = 0
        self._connected_at: float | None = None
        self._last_io = 0.0

    # -- public ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the connection thread (once)."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: source already started")
        self._thread = threading.Thread(target=self._run, name=f"ingest-{self.camera_id}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end; returns at once (see :meth:`join`)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop and join. The default timeout covers a connection hung in open or read."""
        self.request_stop()
        return self.join(self.open_timeout_s + self.read_timeout_s + 2 if timeout is None else timeout)

    @property
    def alive(self) -> bool:
        """Whether the connection thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def status(self, now: float | None = None) -> CameraStatus:
        """The camera's status at ``now`` (default: the current time)."""
        with self._lock:
            return self._health.snapshot(time.time() if now is None else now)

    # -- thread ------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        self._emit(lambda now: True)  # the initial "connecting"
        while not self._stop.is_set():
            self._connected_at = None
            error = "stream ended"
            container: av.container.InputContainer | None = None
            self._last_io = time.monotonic()
            try:
                with self._lock:
                    self._health.attempt(time.time())
                container = self._open()
                self._last_io = time.monotonic()
                self._pump(container)
            except Exception as exc:  # every failure is a disconnect; the loop retries
                error = self._describe(exc)
            finally:
                # Sinks hear of the end before the container (and the stream they were given) goes away.
                self.fanout.end_session("stopped" if self._stop.is_set() else error)
                if container is not None:
                    container.close()
            if self._stop.is_set():
                break
            self._emit(lambda now: self._health.failed(now, error))
            up_for = time.monotonic() - self._connected_at if self._connected_at is not None else 0.0
            delay = self.backoff.delay(up_for)
            log.info("camera %s: %s; retrying in %.1f s", self.camera_id, error, delay)
            self._stop.wait(delay)

    def _open(self) -> av.container.InputContainer:
        options = {
            "rtsp_transport": "tcp",
            "fflags": "nobuffer",
            # Probe the stream for at most 1 s (FFmpeg's default is 5 s): H.264 parameters come from the SDP or the
            # first keyframe, and a 1 fps camera otherwise took ~7 s to open.
            "analyzeduration": "1000000",
            # socket I/O timeout in microseconds (FFmpeg >= 5 calls it "timeout"; "stimeout" is gone): bounds the
            # connect and every read of the RTSP exchange and of the stream
            "timeout": str(int(min(self.open_timeout_s, self.read_timeout_s) * 1_000_000)),
        }
        # No PyAV-level timeout: PyAV's interrupt callback takes the GIL on every FFmpeg I/O check (a few dozen
        # times per frame over RTSP/TCP), and with 16 camera threads that contention cost as much system CPU
        # as the whole relay (bench/bench_relay_cpu.py). FFmpeg's own socket timeout bounds every step instead.
        return av.open(self.url, options=options)

    def _pump(self, container: av.container.InputContainer) -> None:
        """One connection: announce the session, then demux until the loop ends, an error or stop."""
        if not container.streams.video:
            raise RuntimeError("no video stream in the source")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        self._connected_at = time.monotonic()
        self._session += 1
        info = StreamInfo(
            camera_id=self.camera_id, session=self._session, stream=stream, codec=ctx.name,
            width=ctx.width, height=ctx.height, time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            extradata=bytes(ctx.extradata) if ctx.extradata else None, started_at=time.time(),
        )
        with self._lock:
            self._health.connected(time.time(), codec=ctx.name, width=ctx.width, height=ctx.height)
        self.fanout.start_session(info)
        for packet in container.demux(stream):
            if self._stop.is_set():
                return
            if packet.size == 0 or packet.dts is None:
                continue  # the demuxer's end-of-stream flush packet
            now = time.time()
            with self._lock:
                changed = self._health.packet(now)
            if changed:
                self._emit(lambda _now: True)
            self._last_io = time.monotonic()
            self.fanout.publish(packet, now)

    def _emit(self, change: Callable[[float], bool]) -> None:
        with self._lock:
            now = time.time()
            changed = change(now)
            snapshot = self._health.snapshot(now) if changed else None
        if snapshot is not None and self._on_status is not None:
            try:
                self._on_status(snapshot)
            except Exception:
                log.exception("camera %s: status callback failed", self.camera_id)

    def _describe(self, exc: BaseException) -> str:
        # PyAV's timeout interrupts FFmpeg, which then reports whatever the interrupted step failed with (often
        # "Invalid data"), so a timeout is recognised by how long the step waited.
        waited = time.monotonic() - self._last_io
        limit = self.read_timeout_s if self._connected_at is not None else min(self.open_timeout_s,
                                                                                 self.read_timeout_s)
        if isinstance(exc, (av.error.ExitError, TimeoutError)) or waited >= limit * 0.95:
            step = "read" if self._connected_at is not None else "open"
            text = f"timed out: no answer to {step} within {limit:g} s"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return redact_url(text.replace(self.url, redact_url(self.url)))

    def __repr__(self) -> str:
        return f"CameraSource({self.camera_id!r}, {redact_url(self.url)!r})"
