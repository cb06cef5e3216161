"""Decode times for streams whose transport carries presentation times only.

RTP gives each frame its presentation time (the RTP timestamp) and nothing else; with B-frames, frames arrive in
decode order while their presentation times go back and forth, and an MP4 sample needs a decode time that only
increases and is never after its presentation time (MSE refuses DTS > PTS). :class:`DecodeTimes` derives them
the way a decoder's reorder buffer sees the stream: with a reorder depth of ``D`` frames (what the SPS states,
see :func:`video_ingest.h26x.reorder_depth`), every frame whose presentation rank is ``r`` arrives by decode
position ``r + D``, so the ``i``-th frame's decode time is the ``(i - D)``-th smallest presentation time seen so
far — known at once, without holding a frame back. The first ``D`` frames are placed one nominal frame apart
before the first one's presentation time. Pure: no clocks, no I/O.
"""

from __future__ import annotations

import heapq


class DecodeTimes:
    """Feed each frame's presentation time in arrival (decode) order; get its decode time back.

    ``depth`` is the stream's reorder depth in frames (0 without B-frames: decode time = presentation time);
    ``step`` the nominal frame duration in the same units, used only for the first ``depth`` frames. A stream
    that reorders deeper than it said (or repeats a timestamp) still gets increasing decode times, but then a
    frame may come out with ``pts < dts``; :meth:`next` does not hide it — callers drop such a frame."""

    __slots__ = ("depth", "step", "_heap", "_count", "_first", "_last")

    def __init__(self, depth: int, step: int) -> None:
        if depth < 0 or step <= 0:
            raise ValueError(f"DecodeTimes: depth must be >= 0 and step > 0, got {depth} and {step}")
        self.depth = depth
        self.step = step
        self._heap: list[int] = []
        self._count = 0
        self._first: int | None = None
        self._last: int | None = None

    @property
    def start(self) -> int | None:
        """The decode time of the first frame (its presentation time minus ``depth`` steps), None before it."""
        return None if self._first is None else self._first - self.depth * self.step

    def next(self, pts: int) -> int:
        """The decode time of the next frame in decode order, whose presentation time is ``pts``."""
        if self._first is None:
            self._first = pts
        index = self._count
        self._count += 1
        if index < self.depth:
            heapq.heappush(self._heap, pts)
            dts = self._first - (self.depth - index) * self.step
        else:
            dts = heapq.heappushpop(self._heap, pts)
        if self._last is not None and dts <= self._last:
            dts = self._last + 1
        self._last = dts
        return dts
