"""TranscodingMuxer: HEVC (H.265) camera → H.264 fMP4 at tile size, for browsers that cannot decode HEVC.

Same interface as :class:`video_ingest.remux.FragmentMuxer` (``feed(packet)`` → init segment / fragments), so the
:class:`video_ingest.live.LiveRelay` uses it unchanged: it exists only while the relay has viewers (the first
viewer starts it, the last one stops it) and one instance serves every viewer of the camera. Each packet is
decoded (PyAV, slice threads only — frame threads would hold frames back), scaled to fit ``TILE_SIZE`` (never
up), and encoded with libx264 ``ultrafast``/``zerolatency`` (no B-frames, one keyframe a second), one fragment per
frame. Decoding a GOP starts at a keyframe; frames that fail to decode are counted and skipped.

Cost: one 720p25 HEVC camera to 640x360 H.264 took ~10 % of one core here on the mostly static clock scene
(bench/bench_transcode_cpu.py; busier pictures cost more), ~14 times a remux, which is why it runs only while
someone watches. Decoding and encoding (~4 ms a frame) must not hold up the event loop that carries every other
camera, so :class:`TranscodeThread` runs the muxer on a thread of its own behind a bounded queue: when the thread
falls behind, queued frames are dropped up to the next keyframe (counted in ``dropped``), and its segments go
back to the loop through the relay's callback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from av.video.stream import VideoStream

from video_ingest.fanout import StreamInfo
from video_ingest.mp4 import BoxSplitter, Mp4Error, avc_codec_string, fragment_is_keyframe
from video_ingest.remux import Fragment, InitSegment
from video_ingest.sampler import video_decoder

MOVFLAGS = "empty_moov+default_base_moof+frag_keyframe+frag_every_frame"

log = logging.getLogger("citywall.ingest.transcode")

TILE_SIZE = (640, 360)
QUEUE_FRAMES = 50
"""Frames the transcode thread may have waiting (2 s at 25 fps) before it drops up to the next keyframe."""
TRANSCODE_FROM = ("hevc",)
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0", "g": "25", "profile": "baseline"}


def fit_within(width: int, height: int, box: tuple[int, int] = TILE_SIZE) -> tuple[int, int]:
    """The size (even numbers) that fits ``width``×``height`` inside ``box`` keeping the aspect; never larger."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad source size {width}x{height}")
    scale = min(1.0, box[0] / width, box[1] / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class TranscodingMuxer:
    """Decodes a camera's access units and re-encodes them as H.264 fMP4 fragments (see the module docstring).
    Same interface as :class:`video_ingest.remux.FragmentMuxer`."""

    def __init__(self, info: StreamInfo, fps: int = 25) -> None:  # noqa: D107
        self.source_codec = info.codec
        self._decoder = video_decoder(info.codec)
        if info.extradata:
            self._decoder.extradata = info.extradata
        self._decoder.thread_type = "SLICE"
        self._time_base = Fraction(info.time_base or Fraction(1, 90000))
        self._fps = fps
        self._size: tuple[int, int] | None = None
        self._splitter = BoxSplitter()
        self._out = av.open(self._splitter, "w", format="mp4", options={"movflags": MOVFLAGS})
        self._stream: VideoStream | None = None
        self._offset: int | None = None
        self._last_pts: int | None = None
        self._head: list[bytes] = []
        self._moof: bytes | None = None
        self.init: InitSegment | None = None
        self.skipped = 0
        """Packets skipped before the first keyframe or without timestamps, and frames with non-increasing pts."""
        self.decode_errors = 0
        self.frames = 0
        self.closed = False

    def _open_encoder(self, width: int, height: int) -> None:
        self._size = fit_within(width, height)
        stream = self._out.add_stream("libx264", rate=self._fps, options=dict(X264_OPTIONS))
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self._time_base
        stream.time_base = self._time_base
        self._stream = stream

    def feed(self, packet: Any) -> list[InitSegment | Fragment]:
        """Decode ``packet`` (not modified), encode what it yields, return the segments completed."""
        if self.closed:
            return []
        if self._offset is None:
            if not packet.is_keyframe or packet.dts is None:
                self.skipped += 1
                return []
            self._offset = packet.pts if packet.pts is not None else packet.dts
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        try:
            frames = self._decoder.decode(copy)
        except av.error.FFmpegError:
            self.decode_errors += 1
            return []
        for frame in frames:
            pts = frame.pts if frame.pts is not None else packet.dts
            if pts is None:
                self.skipped += 1
                continue
            pts -= self._offset
            if pts < 0 or (self._last_pts is not None and pts <= self._last_pts):
                self.skipped += 1
                continue
            self._last_pts = pts
            if self._stream is None:
                self._open_encoder(frame.width, frame.height)
            assert self._size is not None and self._stream is not None
            out = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p")
            out.pts, out.time_base = pts, self._time_base
            out.pict_type = av.video.frame.PictureType.NONE
            for encoded in self._stream.encode(out):
                self._out.mux(encoded)
            self.frames += 1
        return self._collect()

    def _collect(self) -> list[InitSegment | Fragment]:
        out: list[InitSegment | Fragment] = []
        for box in self._splitter.take():
            if self.init is None:
                if box.type in ("ftyp", "moov"):
                    self._head.append(box.data)
                    if box.type == "moov":
                        data = b"".join(self._head)
                        self.init = InitSegment(data, f'video/mp4; codecs="{avc_codec_string(data)}"',
                                                self.source_codec)
                        out.append(self.init)
                continue
            if box.type == "moof":
                self._moof = box.data
            elif box.type == "mdat":
                if self._moof is None:
                    raise Mp4Error("muxer wrote mdat without moof")
                out.append(Fragment(self._moof + box.data, fragment_is_keyframe(self._moof)))
                self._moof = None
        return out

    def flush(self) -> list[Fragment]:
        """Nothing is held back beyond the encoder's own delay (none with zerolatency)."""
        return []

    def close(self) -> None:
        """Close the encoder and muxer (their tails are discarded). Idempotent."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):  # closing mid-stream may fail; nothing is left to save
                self._out.close()


class TranscodeThread:
    """Runs a :class:`TranscodingMuxer` on its own thread. ``feed`` only queues (never blocks) and returns nothing:
    segments go to ``deliver(segments)`` from the thread, and a failure to ``fail(reason)``; both must be
    thread-safe (the live relay hands them to its event loop)."""

    def __init__(self, muxer: TranscodingMuxer, deliver: Callable[[list[InitSegment | Fragment]], None],
                 fail: Callable[[str], None], *, queue_frames: int = QUEUE_FRAMES) -> None:
        self.muxer = muxer
        self._deliver = deliver
        self._fail = fail
        self._queue: deque[Any] = deque()
        self._queue_frames = queue_frames
        self._cond = threading.Condition()
        self._need_key = False
        self._busy = False
        self.dropped = 0
        """Frames dropped because the thread fell behind (it resumes at a keyframe)."""
        self.closed = False
        self._thread = threading.Thread(target=self._run, name=f"transcode-{id(self):x}", daemon=True)
        self._thread.start()

    @property
    def skipped(self) -> int:
        return self.muxer.skipped + self.dropped

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being transcoded."""
        with self._cond:
            return not self._queue and not self._busy

    def feed(self, unit: Any) -> list[InitSegment | Fragment]:
        """Queue ``unit`` (immutable; kept by reference) for the thread."""
        with self._cond:
            if self.closed:
                return []
            if self._need_key and not unit.is_keyframe:
                self.dropped += 1
                return []
            if len(self._queue) >= self._queue_frames:
                self.dropped += len(self._queue) + (0 if unit.is_keyframe else 1)
                self._queue.clear()
                self._need_key = not unit.is_keyframe
                if self._need_key:
                    return []
            self._need_key = False
            self._queue.append(unit)
            self._cond.notify()
        return []

    def flush(self) -> list[Fragment]:
        return []

    def close(self) -> None:
        """Stop the thread after the frame in hand (not waited for). Idempotent."""
        with self._cond:
            self.closed = True
            self._queue.clear()
            self._cond.notify()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self.closed:
                        self._cond.wait()
                    if self.closed:
                        return
                    unit = self._queue.popleft()
                    self._busy = True
                try:
                    segments = self.muxer.feed(unit)
                except Exception as exc:
                    log.warning("transcode failed: %r", exc)
                    self._fail(f"transcode failed: {exc!r}")
                    return
                finally:
                    with self._cond:
                        self._busy = False
                if segments:
                    self._deliver(segments)
        finally:
            self.muxer.close()
