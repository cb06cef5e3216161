"""LatestFrameSlot: the hand-off from ingest to detection that holds only the newest frame.

A slow detector never stalls ingest: ``put`` replaces whatever is there without waiting and counts a frame that
was replaced before anyone read it; ``get`` returns the newest frame without removing it (readers skip a ``seq``
they have already seen).
"""

from __future__ import annotations

import threading

from video_ingest.frames import Frame


class LatestFrameSlot:
    """Holds the newest :class:`Frame` of one camera; thread-safe, never blocks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._read = True
        self.puts = 0
        """Frames put since creation."""
        self.overwritten = 0
        """Frames replaced before any reader got them."""

    def put(self, frame: Frame) -> None:
        """Make ``frame`` the newest; never blocks."""
        with self._lock:
            if self._frame is not None and not self._read:
                self.overwritten += 1
            self._frame = frame
            self._read = False
            self.puts += 1

    def get(self) -> Frame | None:
        """The newest frame (still held for later readers), or None before the first."""
        with self._lock:
            self._read = True
            return self._frame

    def clear(self) -> None:
        """Forget the held frame (e.g. the camera went away)."""
        with self._lock:
            self._frame = None
            self._read = True
