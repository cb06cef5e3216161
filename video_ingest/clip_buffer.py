"""Evidence clips: a camera's last seconds of packets in a ring, cut into an MP4 around an alarm — remuxed, never
transcoded.

``ClipBuffer`` is a ``video_ingest.fanout.PacketSink``: on the event loop it keeps each access unit's bytes in a
ring that always starts at a keyframe and spans at least ``pre_s`` seconds (bounded by ``max_bytes``). An alarm
calls ``request(clip_id, at, path)``: the clip takes the ring from the last keyframe at or before ``at - pre_s``
and keeps collecting until ``at + post_s``; then a writer thread (one per buffer, bounded queue) muxes the
packets into ``path`` (MP4, written to a temporary name and renamed). A session that ends cuts pending clips
short with what they have. Requests beyond ``max_pending`` are refused and counted — never a blocked event
loop.

Timestamps: the source's when every packet has them, otherwise the arrival times (raw H.264 has none); both
rebased to start at 0, in a 90 kHz time base.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from video_ingest import fmp4, h26x
from video_ingest.fanout import AccessUnit, StreamInfo
from video_ingest.reorder import DecodeTimes

if TYPE_CHECKING:
    import av

log = logging.getLogger("citywall.ingest.clips")

OUT_TB = Fraction(1, 90000)


@dataclass(frozen=True, slots=True)
class ClipPacket:
    """One packet's copy: bytes and timing."""

    data: bytes
    pts: int | None
    dts: int | None
    keyframe: bool
    arrived_at: float
    time_base: Fraction | None


@dataclass(frozen=True, slots=True)
class ClipResult:
    """What was written (``path`` None and ``error`` set when nothing could be)."""

    clip_id: str
    path: Path | None
    packets: int
    bytes: int
    seconds: float
    """Span of the clip's timestamps (first to last packet, plus one frame)."""
    starts_before_s: float
    """How long before the requested moment the clip begins (≤ pre_s; less when the ring was shorter)."""
    error: str | None = None


@dataclass
class ClipRequest:
    """A clip being collected; ``wait(timeout)`` blocks until it is written (or failed)."""

    clip_id: str
    path: Path
    at: float
    until: float
    packets: list[ClipPacket]
    codec: str
    width: int
    height: int
    extradata: bytes | None
    result: ClipResult | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> ClipResult | None:
        self._done.wait(timeout)
        return self.result


def write_mp4(path: Path, packets: list[ClipPacket], *, codec: str, width: int, height: int,
              extradata: bytes | None) -> tuple[int, float]:
    """Write ``packets`` (starting at a keyframe) as a plain MP4 at ``path`` (atomically, with
    :func:`video_ingest.fmp4.mp4_file`); returns (bytes, seconds). Packets are length-prefixed samples described
    by an avcC/hvcC ``extradata`` (what the camera sources deliver), or Annex-B (raw streams; the parameter sets
    are then taken from ``extradata`` or the packets themselves)."""
    if not packets:
        raise ValueError("no packets to write")
    if not packets[0].keyframe:
        raise ValueError("a clip must start at a keyframe")
    codec = "hevc" if codec in ("hevc", "h265") else codec
    if codec not in ("h264", "hevc"):
        raise ValueError(f"evidence clips are written for H.264 and H.265 cameras, not {codec}")
    config, payloads = _samples(packets, codec, extradata)
    use_pts = all(p.pts is not None and p.dts is not None and p.time_base for p in packets)

    def ticks(p: ClipPacket, which: str) -> int:
        if use_pts:
            v = p.pts if which == "pts" else p.dts
            assert v is not None and p.time_base is not None
            return int(round(v * p.time_base / OUT_TB))
        return int(round(p.arrived_at / float(OUT_TB)))

    step = 3600  # one frame at 25 fps, for the last packet's duration and for repaired timestamps
    if use_pts and all(p.dts == p.pts for p in packets):
        # RTP gives presentation times only: with B-frames they go back and forth in arrival (decode) order, so
        # decode times are derived from the reorder depth the SPS states (see video_ingest.reorder).
        start = ticks(packets[0], "pts")
        # open GOP: no leading
        kept = [(p, d) for p, d in zip(packets, payloads, strict=False) if ticks(p, "pts") >= start]
        packets, payloads = [p for p, _ in kept], [d for _, d in kept]
        times = DecodeTimes(h26x.reorder_depth(codec, config), step)
        raw = [times.next(ticks(p, "pts")) for p in packets]
    else:
        raw = [ticks(p, "dts") for p in packets]
    base = min(raw)
    decode: list[int] = []
    for value in raw:
        dts = value - base
        if decode and dts <= decode[-1]:  # arrival jitter: keep dts strictly increasing
            dts = decode[-1] + 1
        decode.append(dts)
    samples = []
    for i, (p, data) in enumerate(zip(packets, payloads, strict=False)):
        end = decode[i + 1] if i + 1 < len(decode) else decode[i] + step
        pts = max(ticks(p, "pts") - base, decode[i])
        samples.append(fmp4.Sample(data, end - decode[i], p.keyframe, pts - decode[i]))
    blob = fmp4.mp4_file(codec=codec, width=width, height=height, config=config, samples=samples,
                         timescale=OUT_TB.denominator)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:  # a failure (disk full) leaves no .part behind: it would only fill the disk further
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(blob), float((decode[-1] + step) * OUT_TB)


def _samples(packets: list[ClipPacket], codec: str, extradata: bytes | None) -> tuple[bytes, list[bytes]]:
    """(decoder configuration record, length-prefixed sample per packet)."""
    if extradata and extradata[0] == 1:  # avcC / hvcC: the packets are length-prefixed already
        return extradata, [p.data for p in packets]
    nal_type = h26x.h265_nal_type if codec == "hevc" else h26x.h264_nal_type
    wanted = ((h26x.H265_NAL_VPS, h26x.H265_NAL_SPS, h26x.H265_NAL_PPS) if codec == "hevc"
              else (h26x.H264_NAL_SPS, h26x.H264_NAL_PPS))
    params: dict[int, bytes] = {}
    for nal in h26x.split_annexb(extradata or b""):
        if nal and nal_type(nal) in wanted:
            params.setdefault(nal_type(nal), nal)
    payloads = []
    for p in packets:
        nals = h26x.split_annexb(p.data)
        for nal in nals:
            if nal and nal_type(nal) in wanted:
                params.setdefault(nal_type(nal), nal)
        payloads.append(h26x.length_prefixed(nals))
    missing = [k for k in wanted if k not in params]
    if missing:
        raise ValueError(f"no {codec} parameter sets (NAL types {missing}) in the clip or the stream's extradata")
    if codec == "hevc":
        config = h26x.hevc_decoder_config([params[h26x.H265_NAL_VPS]], [params[h26x.H265_NAL_SPS]],
                                          [params[h26x.H265_NAL_PPS]])
    else:
        config = h26x.avc_decoder_config([params[h26x.H264_NAL_SPS]], [params[h26x.H264_NAL_PPS]])
    return config, payloads


class ClipBuffer:
    """One camera's packet ring and its clip writer; see the module docstring."""

    def __init__(self, camera_id: str, *, pre_s: float = 8.0, post_s: float = 8.0,
                 max_bytes: int = 48 * 1024 * 1024, max_pending: int = 8) -> None:
        if pre_s < 0 or post_s < 0:
            raise ValueError(f"pre_s and post_s must be >= 0; got {pre_s}, {post_s}")
        self.camera_id = camera_id
        self.pre_s = pre_s
        self.post_s = post_s
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._ring: deque[ClipPacket] = deque()
        self._keys: deque[ClipPacket] = deque()
        """The ring's keyframes after its first packet, oldest first: where whole GOPs can be cut off (so trimming
        never scans the ring per packet)."""
        self._bytes = 0
        self._info: tuple[str, int, int, bytes | None] | None = None
        self._pending: list[ClipRequest] = []
        self._queue: queue.Queue[ClipRequest | None] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self.written = 0
        self.refused = 0
        """Requests refused: too many pending, no session, or the writer queue full."""
        self.failed = 0

    # --- PacketSink (event loop) --------------------------------------------------------------------------

    def stream_started(self, info: StreamInfo) -> None:
        with self._lock:
            self._finish_all("session restarted")
            self._ring.clear()
            self._keys.clear()
            self._bytes = 0
            self._info = (info.codec, info.width, info.height, info.extradata)

    def packet(self, packet: AccessUnit | av.Packet, arrived_at: float) -> None:
        if packet.size == 0:
            return
        p = ClipPacket(bytes(packet), packet.pts, packet.dts, bool(packet.is_keyframe), arrived_at,
                       packet.time_base)
        with self._lock:
            if not self._ring:
                if not p.keyframe:
                    return  # a clip can only start at a keyframe
            elif p.keyframe:
                self._keys.append(p)
            self._ring.append(p)
            self._bytes += len(p.data)
            self._trim(arrived_at)
            done = []
            for req in self._pending:
                req.packets.append(p)
                if arrived_at >= req.until:
                    done.append(req)
            for req in done:
                self._pending.remove(req)
                self._submit(req)

    def stream_ended(self, reason: str) -> None:
        with self._lock:
            self._finish_all(f"stream ended ({reason})")
            self._info = None

    # --- requests (any thread) ----------------------------------------------------------------------------

    def request(self, clip_id: str, at: float, path: str | Path) -> ClipRequest | None:
        """Start a clip around ``at`` (unix s) written to ``path``; None (counted in ``refused``) when no session
        is running or ``max_pending`` clips are already being collected."""
        with self._lock:
            if self._info is None or len(self._pending) + self._queue.qsize() >= self.max_pending:
                self.refused += 1
                return None
            codec, width, height, extradata = self._info
            start = at - self.pre_s
            packets = list(self._ring)
            keys = [i for i, p in enumerate(packets) if p.keyframe and p.arrived_at <= start]
            first = keys[-1] if keys else 0
            req = ClipRequest(clip_id, Path(path), at, at + self.post_s, packets[first:], codec, width, height,
                              extradata)
            if req.packets and req.packets[-1].arrived_at >= req.until:
                self._submit(req)
            else:
                self._pending.append(req)
            return req

    def close(self, timeout: float = 5.0) -> None:
        """Finish pending clips with what they have and stop the writer thread."""
        with self._lock:
            self._finish_all("buffer closed")
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    # --- internals -----------------------------------------------------------------------------------------

    def _trim(self, now: float) -> None:
        # Drop whole GOPs from the front while the next keyframe is still at least pre_s old, or bytes overflow.
        keys, ring = self._keys, self._ring
        while keys:
            nxt = keys[0]
            if nxt.arrived_at > now - self.pre_s and self._bytes <= self.max_bytes:
                return
            keys.popleft()
            while ring[0] is not nxt:
                self._bytes -= len(ring.popleft().data)

    def _finish_all(self, why: str) -> None:
        for req in self._pending:
            log.info("camera %s: clip %s cut short: %s", self.camera_id, req.clip_id, why)
            self._submit(req)
        self._pending = []

    def _submit(self, req: ClipRequest) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name=f"clips-{self.camera_id}", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            self.refused += 1
            self._fail(req, "clip writer queue full")

    def _fail(self, req: ClipRequest, error: str) -> None:
        self.failed += 1
        req.result = ClipResult(req.clip_id, None, len(req.packets), 0, 0.0, 0.0, error)
        req._done.set()

    def _writer(self) -> None:
        while True:
            req = self._queue.get()
            if req is None:
                return
            try:
                size, seconds = write_mp4(req.path, req.packets, codec=req.codec, width=req.width,
                                          height=req.height, extradata=req.extradata)
                before = req.at - req.packets[0].arrived_at
                req.result = ClipResult(req.clip_id, req.path, len(req.packets), size, seconds, before)
                self.written += 1
                req._done.set()
            except Exception as exc:  # a bad clip must not stop the writer (or the camera)
                log.warning("camera %s: clip %s failed: %s", self.camera_id, req.clip_id, exc)
                self._fail(req, str(exc) or type(exc).__name__)


class ClipRecorder:
    """One ``ClipBuffer`` per camera and the alarm-side call: ``record(camera_id, clip_id, at)`` starts a clip
    under ``root`` and returns its path relative to ``root`` (None when refused or the camera is unknown).

    Subscribe ``buffer(camera_id)`` to that camera's ``PacketFanout`` (``fanout.subscribe(buf, replay_gop=True)``).
    """

    def __init__(self, root: str | Path, camera_ids: list[str], *, pre_s: float = 8.0, post_s: float = 8.0,
                 max_bytes: int = 48 * 1024 * 1024) -> None:
        self.root = Path(root)
        self._pre_s, self._post_s, self._max_bytes = pre_s, post_s, max_bytes
        self.buffers = {cid: ClipBuffer(cid, pre_s=pre_s, post_s=post_s, max_bytes=max_bytes) for cid in camera_ids}

    def buffer(self, camera_id: str) -> ClipBuffer:
        """``camera_id``'s ring buffer, made on first use (a camera added while running)."""
        buf = self.buffers.get(camera_id)
        if buf is None:
            buf = self.buffers[camera_id] = ClipBuffer(camera_id, pre_s=self._pre_s, post_s=self._post_s,
                                                       max_bytes=self._max_bytes)
        return buf

    def remove(self, camera_id: str) -> None:
        """Forget a camera that was removed (clips being written finish first)."""
        buf = self.buffers.pop(camera_id, None)
        if buf is not None:
            buf.close(timeout=0)  # never block the event loop; the writer thread ends on its own

    def record(self, camera_id: str, clip_id: str, at: float) -> str | None:
        buf = self.buffers.get(camera_id)
        if buf is None:
            return None
        rel = f"clips/{camera_id}/{clip_id}.mp4"
        return rel if buf.request(clip_id, at, self.root / rel) is not None else None

    def stats(self) -> dict[str, dict[str, int]]:
        """Per camera: clips written, failed (e.g. disk full; the alarm keeps its snapshot) and refused."""
        return {cid: {"written": b.written, "failed": b.failed, "refused": b.refused}
                for cid, b in self.buffers.items()}

    def close(self) -> None:
        for buf in self.buffers.values():
            buf.close()
