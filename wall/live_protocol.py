"""The live-video interface the wall server needs, declared here so ``wall`` never imports ``video_ingest``.

The real implementation is ``video_ingest.live.LiveHub``; anything with the same shape works (duck typing).
Exceptions are matched by behaviour, not class: ``KeyError`` from :meth:`LiveHub.open` means "unknown camera";
any other exception from ``open`` or ``next_fragment`` (``LiveUnavailable``, ``LiveEnded``, a timeout) means
the camera is offline for this viewer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class LiveViewer(Protocol):
    """One viewer's subscription to a camera's fMP4 stream."""

    mime: str
    """MIME type for MediaSource, e.g. ``video/mp4; codecs="avc1.42C01F"``."""
    init_segment: bytes
    """ftyp+moov: sent once before any fragment."""
    transcoded_from: str | None
    """The camera's own codec when the relay re-encoded it for the browser (``"hevc"``), else None."""
    dropped: int
    """Fragments this viewer missed because its own queue was full."""

    async def next_fragment(self) -> bytes:
        """The next moof+mdat; the first one starts at a keyframe. Raises when the stream has ended."""
        ...

    def close(self) -> None:
        """Stop receiving fragments (idempotent)."""
        ...


@runtime_checkable
class LiveHub(Protocol):
    """Hands out live viewers per camera."""

    def has_camera(self, camera_id: str) -> bool:
        """Whether ``camera_id`` is known to the hub."""
        ...

    async def open(self, camera_id: str, *, queue_size: int = 256) -> LiveViewer:
        """Subscribe to a camera; ``KeyError`` if unknown, another exception if it is offline."""
        ...
