"""FragmentMuxer: a camera's H.264 access units → fragmented MP4 for MediaSource (no decode, no encode).

Written with :mod:`video_ingest.fmp4` (our own box writer, a few microseconds a frame), not FFmpeg's mp4 muxer:
one init segment (``ftyp+moov`` with the camera's avcC) and one ``moof+mdat`` per frame. A frame leaves as soon as
its duration is known — when the next one arrives, one frame interval, as FFmpeg's ``frag_every_frame`` does.
Muxing starts at the first keyframe and decode times are rebased so the output starts at 0. HEVC is handed to
:class:`video_ingest.transcode.TranscodingMuxer` by :func:`make_muxer` (browsers cannot be assumed to decode it).

B-frames: RTP carries presentation times only, and frames arrive in decode order. Decode times are derived with
:class:`video_ingest.reorder.DecodeTimes` from the reorder depth the SPS states (0 without B-frames, so then decode
time = presentation time), and each sample carries its composition offset (pts - dts, ``trun`` version 1). No frame
is held back for it: the first frame's decode time is simply ``depth`` frames before its presentation time. Frames
before the first keyframe's presentation time (an open GOP's leading pictures, which refer to the GOP before) are
skipped. Only IDR frames are sync samples: Chromium starts decoding at nothing else, so a camera whose keyframes
are recovery points (open GOP, intra refresh) is transcoded by the live relay instead (see ``needs_transcode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from video_ingest import fmp4, h26x
from video_ingest.fanout import StreamInfo
from video_ingest.reorder import DecodeTimes

if TYPE_CHECKING:
    from video_ingest.transcode import TranscodingMuxer

SUPPORTED_CODECS = ("h264",)
DEFAULT_FRAME_TICKS = 3600
"""The last frame's duration before a second one has arrived (one frame at 25 fps in 90 kHz)."""


class UnsupportedCodec(Exception):
    """The camera's codec cannot be remuxed for browsers (only H.264 can, for now)."""


@dataclass(frozen=True, slots=True)
class InitSegment:
    """``ftyp+moov``, the MediaSource MIME type, and the camera's own codec when the relay transcoded it
    (``"hevc"``; None for a plain remux)."""

    data: bytes
    mime: str
    transcoded_from: str | None = None


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof+mdat``; ``keyframe`` when its sample is a sync sample (a decoder can start here)."""

    data: bytes
    keyframe: bool


def timescale_of(time_base: Fraction) -> int:
    """The MP4 timescale for ``time_base`` (1/90000 → 90000); :class:`UnsupportedCodec` for a time base that is
    not 1/N."""
    if time_base.numerator != 1 or time_base.denominator <= 0:
        raise UnsupportedCodec(f"time base {time_base} is not 1/N")
    return time_base.denominator


class FragmentMuxer:
    """Feeds one session's access units and returns finished segments (see the module docstring)."""

    def __init__(self, info: StreamInfo) -> None:
        if info.codec == "hevc":
            raise UnsupportedCodec("camera sends HEVC; a remux needs H.264 (the live relay transcodes HEVC)")
        if info.codec not in SUPPORTED_CODECS:
            raise UnsupportedCodec(f"camera sends {info.codec}; live view needs H.264")
        if not info.extradata:
            raise UnsupportedCodec("no codec configuration (SPS/PPS) for this stream")
        timescale = timescale_of(info.time_base)
        data = fmp4.init_segment(codec="h264", width=info.width, height=info.height, config=info.extradata,
                                 timescale=timescale)
        self._init = InitSegment(data, f'video/mp4; codecs="{h26x.codec_string("h264", info.extradata)}"')
        self.init: InitSegment | None = None
        self._offset: int | None = None
        self._start_pts = 0
        self._held: tuple[bytes, int, bool, int] | None = None
        self._step = DEFAULT_FRAME_TICKS * timescale // 90000 or 1
        self.reorder = h26x.reorder_depth("h264", info.extradata)
        """Frames of reorder (B-frames) the stream's SPS states; decode times trail presentation times by this."""
        self._times = DecodeTimes(self.reorder, self._step)
        self._seq = 0
        self.skipped = 0
        """Units skipped: before the first keyframe (or its presentation time), without timestamps, or whose
        presentation time would come before its decode time (a stream reordering deeper than its SPS says)."""
        self.closed = False

    def feed(self, unit: Any) -> list[InitSegment | Fragment]:
        """Take one access unit (``data``/``bytes()``, ``pts``, ``is_keyframe``; not kept beyond its bytes) in
        arrival order and return the segments it completed: the init segment with the first keyframe, then the
        previous frame."""
        if self.closed:
            return []
        pts = unit.pts
        if pts is None:
            self.skipped += 1
            return []
        out: list[InitSegment | Fragment] = []
        if self._offset is None:
            if not unit.is_keyframe:
                self.skipped += 1
                return []
            self._start_pts = pts
            self._offset = pts - self.reorder * self._step  # the first decode time is 0
            self.init = self._init
            out.append(self._init)
        elif pts < self._start_pts:
            self.skipped += 1  # a leading picture of the first (open) GOP: it refers to frames never sent
            return []
        dts = self._times.next(pts)
        if pts < dts:
            self.skipped += 1  # MSE refuses DTS > PTS; dropping one frame is the lesser harm
            return []
        held = self._held
        if held is not None:
            duration = dts - self._offset - held[1]
            self._step = duration
            out.append(self._fragment(held, duration))
        data = bytes(unit)
        # A sync sample only at an IDR: a recovery point is no random access point for browsers' MSE.
        self._held = (data, dts - self._offset, bool(unit.is_keyframe) and h26x.has_idr(data), pts - dts)
        return out

    def flush(self) -> list[Fragment]:
        """The frame still held (its duration guessed from the previous one), e.g. at the end of a stream."""
        held, self._held = self._held, None
        return [self._fragment(held, self._step)] if held is not None else []

    def _fragment(self, held: tuple[bytes, int, bool, int], duration: int) -> Fragment:
        self._seq += 1
        data, decode_time, keyframe, offset = held
        return Fragment(fmp4.media_segment(self._seq, decode_time, [fmp4.Sample(data, duration, keyframe, offset)]),
                        keyframe)

    def close(self) -> None:
        """Forget the stream. Idempotent."""
        self.closed = True
        self._held = None


def needs_transcode(info: StreamInfo, first_keyframe: Any) -> bool:
    """Whether a browser can start this H.264 stream at ``first_keyframe`` only through a transcode: a recovery
    point that is not an IDR (open GOP, intra refresh — cameras that send one IDR and then none)."""
    return info.codec == "h264" and not h26x.has_idr(bytes(first_keyframe))


def make_muxer(info: StreamInfo) -> FragmentMuxer | TranscodingMuxer:
    """A remuxer for H.264, a transcoder to H.264 for HEVC (browsers cannot be assumed to decode it);
    :class:`UnsupportedCodec` for anything else."""
    if info.codec == "hevc":
        from video_ingest.transcode import TranscodingMuxer  # only cameras that need it pay for the import
        return TranscodingMuxer(info)
    return FragmentMuxer(info)
