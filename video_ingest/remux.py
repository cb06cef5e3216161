"""FragmentMuxer: remuxes a camera's H.264 packets into fragmented MP4 (no decode, no encode).

The output goes to an in-memory, non-seekable writer and is cut on top-level box boundaries into one init segment
(``ftyp+moov``) and fragments (``moof+mdat``, one per frame with ``frag_every_frame``, so a fragment leaves as soon
as the muxer knows the frame's duration — one frame interval). Muxing starts at the first keyframe and timestamps
are rebased so the output starts at 0. Used by :class:`video_ingest.live.LiveRelay` on the demux thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import av

from video_ingest.mp4 import BoxSplitter, Mp4Error, avc_codec_string, fragment_is_keyframe

MOVFLAGS = "empty_moov+default_base_moof+frag_keyframe+frag_every_frame"
SUPPORTED_CODECS = ("h264",)


class UnsupportedCodec(Exception):
    """The camera's codec cannot be remuxed for browsers (only H.264 can, for now)."""


@dataclass(frozen=True, slots=True)
class InitSegment:
    """``ftyp+moov``, the MediaSource MIME type derived from its avcC box, and the camera's own codec when the
    relay transcoded it (``"hevc"``; None for a plain remux)."""

    data: bytes
    mime: str
    transcoded_from: str | None = None


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof+mdat``; ``keyframe`` when its first sample is a sync sample (a decoder can start here)."""

    data: bytes
    keyframe: bool


class FragmentMuxer:
    """Feeds packets of one input stream into an fMP4 muxer and returns finished segments."""

    def __init__(self, template: av.video.stream.VideoStream) -> None:
        codec = template.codec_context.name
        if codec == "hevc":
            raise UnsupportedCodec("camera sends HEVC; a remux needs H.264 (the live relay transcodes HEVC)")
        if codec not in SUPPORTED_CODECS:
            raise UnsupportedCodec(f"camera sends {codec}; live view needs H.264")
        self._splitter = BoxSplitter()
        self._out = av.open(self._splitter, "w", format="mp4", options={"movflags": MOVFLAGS})
        self._stream = self._out.add_stream_from_template(template)
        self._offset: int | None = None
        self._last_dts: int | None = None
        self._head: list[bytes] = []
        self._moof: bytes | None = None
        self.init: InitSegment | None = None
        self.skipped = 0
        """Packets skipped: before the first keyframe, without timestamps, or with a non-increasing dts."""
        self.closed = False

    def feed(self, packet: av.Packet) -> list[InitSegment | Fragment]:
        """Mux ``packet`` (not modified; a copy is muxed) and return the segments it completed."""
        if self.closed:
            return []
        if self._offset is None:
            if not packet.is_keyframe or packet.dts is None:
                self.skipped += 1
                return []
            self._offset = packet.dts
        dts = packet.dts
        if dts is None or (self._last_dts is not None and dts <= self._last_dts):
            self.skipped += 1  # the mp4 muxer refuses non-increasing dts; dropping one frame is the lesser harm
            return []
        self._last_dts = dts
        copy = av.Packet(bytes(packet))
        copy.dts = dts - self._offset
        copy.pts = (packet.pts if packet.pts is not None else dts) - self._offset
        copy.time_base = packet.time_base
        copy.is_keyframe = packet.is_keyframe
        if packet.duration:
            copy.duration = packet.duration
        copy.stream = self._stream
        self._out.mux(copy)
        return self._collect()

    def _collect(self) -> list[InitSegment | Fragment]:
        out: list[InitSegment | Fragment] = []
        for box in self._splitter.take():
            if self.init is None:
                if box.type in ("ftyp", "moov"):
                    self._head.append(box.data)
                    if box.type == "moov":
                        data = b"".join(self._head)
                        self.init = InitSegment(
                            data, f'video/mp4; codecs="{avc_codec_string(data)}"', self._transcoded_from())
                        out.append(self.init)
                continue
            if box.type == "moof":
                self._moof = box.data
            elif box.type == "mdat":
                if self._moof is None:
                    raise Mp4Error("muxer wrote mdat without moof")
                out.append(Fragment(self._moof + box.data, fragment_is_keyframe(self._moof)))
                self._moof = None
            # styp/sidx/mfra and the like carry nothing a live viewer needs
        return out

    def _transcoded_from(self) -> str | None:
        """The source codec when this muxer re-encodes (the transcoder); None for a remux."""
        return None

    def close(self) -> None:
        """Close the muxer (its trailer is discarded). Idempotent."""
        if not self.closed:
            self.closed = True
            try:
                self._out.close()
            except Exception:  # closing after a mux error may fail again; nothing is left to save
                pass


def make_muxer(template: av.video.stream.VideoStream) -> FragmentMuxer:
    """A remuxer for H.264, a transcoder to H.264 for HEVC (browsers cannot be assumed to decode it);
    :class:`UnsupportedCodec` for anything else."""
    if template.codec_context.name == "hevc":
        from video_ingest.transcode import TranscodingMuxer  # only cameras that need it pay for the import
        return TranscodingMuxer(template)
    return FragmentMuxer(template)
