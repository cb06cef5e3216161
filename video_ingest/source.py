"""CameraSource: one camera's RTSP connection, on the event loop, with reconnect, health and its packet fan-out.

Each camera is a task on the worker's event loop (no thread): :class:`video_ingest.rtsp.RtspSession` speaks RTSP
and rebuilds frames from RTP, and this class turns each frame into an :class:`~video_ingest.fanout.AccessUnit`
(length-prefixed NAL units, 90 kHz timestamps from 0) for the camera's :class:`PacketFanout`. A *session* starts
once the codec configuration is known (parameter sets from the SDP or in-band, and a keyframe) and ends with the
connection, or when the camera changes resolution or codec profile (a new session with the new configuration).

Any failure — refused connection, an RTSP error, a server that closes the connection or ends the stream (RTCP BYE,
its own TEARDOWN, 454 on the keepalive), no data for ``read_timeout_s`` — is a disconnect, logged with its reason:
the source waits an exponential backoff with jitter and tries again. A refused login is different: retrying soon
would lock the camera's account, so :class:`~video_ingest.health.LoginGuard` holds the next try back for minutes
(``SourceOptions.login``) and the status says "密码错误 / authentication failed" with the time of the next try.
Opening (connect + DESCRIBE/SETUP/PLAY) is bounded by ``open_timeout_s``. Stopping cancels the task at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from config import redact_url
from messages.camera import CameraStatus
from video_ingest import h26x
from video_ingest.fanout import AccessUnit, PacketFanout, StreamInfo
from video_ingest.health import Backoff, HealthTracker, LoginGuard, LoginPolicy
from video_ingest.rtp import RtpAccessUnit, SdpError, VideoTrack
from video_ingest.rtsp import TRANSPORTS, RtspAuthError, RtspError, RtspSession

log = logging.getLogger("citywall.ingest.source")

StatusCallback = Callable[[CameraStatus], None]

RECONNECT_INITIAL_S = 0.25
RECONNECT_MAX_S = 1.0
"""A camera's reconnect delay doubles from 0.25 s to at most 1 s: a camera that comes back is pulled again within
about a second (the wall's "back → playing within 3 s"); a dead one costs one refused connection a second."""


AUTH_ERROR = "密码错误 / authentication failed"
"""How a refused login starts the camera's status error (the password is never in it)."""


class _Timeout(Exception):
    pass


@dataclass(frozen=True)
class SourceOptions:
    """Per-camera connection options (from the camera's config)."""

    transport: str = "auto"
    """``auto`` (RTP over TCP, UDP when the server answers 461), ``tcp`` or ``udp``."""
    login: LoginPolicy = field(default_factory=LoginPolicy)
    """How a refused login is retried."""

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")


class CameraSource:
    """Pulls one camera's video into ``self.fanout``; ``status()`` tells how it is going."""

    def __init__(self, camera_id: str, url: str, *, worker: str = "local", open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0, on_status: StatusCallback | None = None,
                 backoff: Backoff | None = None, fanout: PacketFanout | None = None,
                 options: SourceOptions | None = None) -> None:
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError(f"camera {camera_id}: open_timeout_s and read_timeout_s must be > 0, "
                             f"got {open_timeout_s} and {read_timeout_s}")
        self.camera_id = camera_id
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.fanout = fanout or PacketFanout(camera_id)
        self.backoff = backoff or Backoff(initial_s=RECONNECT_INITIAL_S, max_s=RECONNECT_MAX_S)
        self.options = options or SourceOptions()
        self.login = LoginGuard(self.options.login)
        """Holds back logins after the camera refused one (account lockout)."""
        self._on_status = on_status
        self._health = HealthTracker(camera_id, worker=worker, stale_after_s=read_timeout_s)
        self._task: asyncio.Task[None] | None = None
        self._session = 0
        self._connected_at: float | None = None
        # per connection
        self._track: VideoTrack | None = None
        self._params: dict[int, bytes] = {}
        self._info: StreamInfo | None = None
        self._sps: h26x.SpsInfo | None = None
        self._last_ts: int | None = None
        self._pts = 0
        self._time_base = Fraction(1, 90000)
        self._changed: str | None = None
        self.units = 0
        """Frames handed to the fan-out since creation."""

    # -- public ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start pulling (call on the event loop; once)."""
        if self._task is not None:
            raise RuntimeError(f"camera {self.camera_id}: source already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ingest-{self.camera_id}")

    async def stop(self) -> None:
        """Stop pulling and wait until the connection is closed (at once: nothing here blocks)."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    @property
    def alive(self) -> bool:
        """Whether the source is running."""
        return self._task is not None and not self._task.done()

    def status(self, now: float | None = None) -> CameraStatus:
        """The camera's status at ``now`` (default: the current time)."""
        return self._health.snapshot(time.time() if now is None else now)

    # -- the connection loop -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        self._emit(lambda now: True)  # the initial "connecting"
        stopping = False
        while True:
            self._connected_at = None
            error = "stream ended"
            auth = False
            rtsp: RtspSession | None = None
            try:
                self._health.attempt(time.time())
                self.login.attempt(time.time())
                rtsp = RtspSession(self.url, self._unit, transport=self.options.transport)
                self._reset()
                try:
                    async with asyncio.timeout(self.open_timeout_s):
                        self._track = await rtsp.open()
                except TimeoutError:
                    raise _Timeout(f"timed out: no answer to open within {self.open_timeout_s:g} s") from None
                self.login.succeeded()
                self._connected_at = time.monotonic()
                self._health.extra["transport"] = rtsp.transport
                self._maybe_start_session()
                await self._watch(rtsp)
            except asyncio.CancelledError:
                stopping = True
            except RtspAuthError as exc:
                auth = True
                error = f"{AUTH_ERROR}: {exc}"
            except (_Timeout, RtspError, SdpError) as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc.strerror or exc}"
            except Exception as exc:  # a bug must not end the camera for good: log it and retry
                log.exception("camera %s: connection failed", self.camera_id)
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self._end_session("stopped" if stopping else redact_url(error))
                if rtsp is not None:
                    rtsp.close()
            if stopping:
                return
            error = redact_url(error.replace(self.url, redact_url(self.url)))
            up_for = time.monotonic() - self._connected_at if self._connected_at is not None else 0.0
            delay = self.backoff.delay(up_for)
            now = time.time()
            if auth:
                delay = max(delay, self.login.failed(now) - now)
            elif self.login.failing:  # refused before, unreachable now: the lockout window still holds
                delay = max(delay, self.login.next_attempt_at(now) - now)
            retry_at = now + delay
            self._emit(functools.partial(self._health.failed, error=error, retry_at=retry_at, auth=auth))
            if auth:
                log.warning("camera %s: %s; login attempt %d refused, next in %.0f s (at %s)", self.camera_id,
                            error, self.login.failures, delay, time.strftime("%H:%M:%S", time.localtime(retry_at)))
            else:
                log.info("camera %s: %s; retrying in %.1f s", self.camera_id, error, delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                return

    async def _watch(self, rtsp: RtspSession) -> None:
        """Until the connection ends: check every second that data keeps coming, and that it becomes video (a
        session) within ``open_timeout_s`` — a camera that never sends its parameter sets is not silently
        "connecting" for ever."""
        check = min(1.0, self.read_timeout_s / 2)
        since = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(rtsp.wait_closed(), check)
                return  # closed cleanly (TEARDOWN from our side never gets here)
            except TimeoutError:
                pass
            now = time.monotonic()
            if now - rtsp.last_rx > self.read_timeout_s:
                hint = (" (RTP over UDP: can the camera reach this host's UDP ports? no NAT/firewall in between?)"
                        if rtsp.transport == "udp" and rtsp.bytes_in < 64 * 1024 else "")
                raise _Timeout(f"timed out: no answer to read within {self.read_timeout_s:g} s{hint}")
            if self._info is None and now - since > self.open_timeout_s:
                codec = self._track.codec if self._track else "video"
                raise _Timeout(f"no usable {codec} stream within {self.open_timeout_s:g} s: the camera sent no "
                               f"parameter sets (SPS/PPS) or keyframe")

    # -- frames (called from the socket callback) --------------------------------------------------------------
    def _reset(self) -> None:
        self._track = None
        self._params = {}
        self._info = None
        self._sps = None
        self._last_ts = None
        self._pts = 0
        self._changed = None

    def _unit(self, unit: RtpAccessUnit) -> None:
        track = self._track
        if track is None:
            return
        # A recovery point (open GOP, intra refresh: cameras that send one IDR and then none) is a decode start too.
        keyframe = unit.keyframe or h26x.has_recovery_point(unit.nals, track.codec)
        if keyframe or self._info is None:
            self._take_parameter_sets(unit.nals)
            if self._info is None:
                if not keyframe or not self._maybe_start_session():
                    return
            elif self._changed is not None:
                self._end_session(self._changed)
                self._changed = None
                if not self._maybe_start_session():
                    return
        ts = unit.timestamp
        if self._last_ts is not None:
            delta = (ts - self._last_ts) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000
            self._pts += delta
        self._last_ts = ts
        now = time.time()
        if self._health.packet(now):
            self._emit(lambda _now: True)
        self.units += 1
        self.fanout.publish(AccessUnit(h26x.length_prefixed(unit.nals), self._pts, keyframe,
                                       self._time_base), now)

    def _take_parameter_sets(self, nals: list[bytes] | tuple[bytes, ...]) -> None:
        hevc = self._track is not None and self._track.codec == "hevc"
        for nal in nals:
            if not nal:
                continue
            kind = h26x.h265_nal_type(nal) if hevc else h26x.h264_nal_type(nal)
            if kind in (_PARAMETER_SETS_HEVC if hevc else _PARAMETER_SETS_H264):
                old = self._params.get(kind)
                self._params[kind] = nal
                if old is not None and old != nal and self._info is not None and kind in (h26x.H264_NAL_SPS,
                                                                                         h26x.H265_NAL_SPS):
                    try:
                        sps = h26x.parse_h265_sps(nal) if hevc else h26x.parse_h264_sps(nal)
                    except ValueError:
                        continue
                    if sps != self._sps:
                        self._changed = (f"the camera changed its stream ({self._sps.width}x{self._sps.height} → "
                                         f"{sps.width}x{sps.height})" if self._sps else "the camera changed its stream")

    def _maybe_start_session(self) -> bool:
        """Start a session when the configuration is known; True when one is running."""
        track = self._track
        if track is None:
            return False
        if self._info is not None:
            return True
        hevc = track.codec == "hevc"
        needed = _PARAMETER_SETS_HEVC if hevc else _PARAMETER_SETS_H264
        for nal in track.parameter_sets:  # the SDP's fill what has not come in-band (in-band ones are newer)
            kind = (h26x.h265_nal_type(nal) if hevc else h26x.h264_nal_type(nal)) if nal else -1
            if kind in needed:
                self._params.setdefault(kind, nal)
        if any(kind not in self._params for kind in needed):
            return False
        try:
            if hevc:
                sps = h26x.parse_h265_sps(self._params[h26x.H265_NAL_SPS])
                config = h26x.hevc_decoder_config([self._params[h26x.H265_NAL_VPS]], [self._params[h26x.H265_NAL_SPS]],
                                                  [self._params[h26x.H265_NAL_PPS]])
            else:
                sps = h26x.parse_h264_sps(self._params[h26x.H264_NAL_SPS])
                config = h26x.avc_decoder_config([self._params[h26x.H264_NAL_SPS]], [self._params[h26x.H264_NAL_PPS]])
        except ValueError as exc:
            log.warning("camera %s: unusable parameter sets: %s", self.camera_id, exc)
            self._params.clear()
            return False
        self._session += 1
        self._sps = sps
        self._time_base = Fraction(1, track.clock_rate)
        self._info = StreamInfo(
            camera_id=self.camera_id, session=self._session, codec=track.codec, width=sps.width,
            height=sps.height, time_base=self._time_base, extradata=config, started_at=time.time(),
        )
        self._health.connected(time.time(), codec=track.codec, width=sps.width, height=sps.height)
        self.fanout.start_session(self._info)
        self._emit(lambda now: True)
        return True

    def _end_session(self, reason: str) -> None:
        if self._info is not None:
            self._info = None
            self._last_ts = None
        self.fanout.end_session(reason)

    def _emit(self, change: Callable[[float], bool]) -> None:
        now = time.time()
        if not change(now) or self._on_status is None:
            return
        try:
            self._on_status(self._health.snapshot(now))
        except Exception:
            log.exception("camera %s: status callback failed", self.camera_id)

    def __repr__(self) -> str:
        return f"CameraSource({self.camera_id!r}, {redact_url(self.url)!r})"


_PARAMETER_SETS_H264 = (h26x.H264_NAL_SPS, h26x.H264_NAL_PPS)
_PARAMETER_SETS_HEVC = (h26x.H265_NAL_VPS, h26x.H265_NAL_SPS, h26x.H265_NAL_PPS)
