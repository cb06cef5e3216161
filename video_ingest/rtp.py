"""RTP video in: the session description (SDP) and H.264/H.265 depacketizers that rebuild whole access units.

Pure code, no I/O: :class:`video_ingest.rtsp.RtspSession` feeds it the payloads of interleaved RTP packets.

- :func:`parse_sdp` finds the first H.264 or H.265 video track of a camera's SDP: its payload type, clock rate,
  control URL (resolved against the content base) and the parameter sets it announces (``sprop-*``).
- :class:`Depacketizer` follows RFC 6184 (H.264: single NAL, STAP-A, FU-A) and RFC 7798 (H.265: single NAL, AP,
  FU) and returns one :class:`RtpAccessUnit` per frame — its NAL units, RTP timestamp and whether it starts a GOP
  (H.264 IDR, H.265 IRAP). A frame ends at the RTP marker bit, or when the timestamp changes (a camera that never
  sets the marker costs one frame of latency, nothing more). A gap in sequence numbers drops the frame it hit and
  every frame up to the next keyframe (a decoder cannot use them), counted in ``lost_packets`` /
  ``dropped_units``.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

SUPPORTED = {"H264": "h264", "H265": "hevc"}
H264_IDR = 5
H264_SPS, H264_PPS = 7, 8
H265_VPS, H265_SPS, H265_PPS = 32, 33, 34
_RTP_HEADER = struct.Struct(">BBHI")
"""V/P/X/CC, M/PT, sequence number, timestamp: the fixed part of an RTP header read in one call."""
MAX_UNIT_BYTES = 16 * 1024 * 1024
"""An access unit larger than this (16 MiB) is garbage, not a frame; it is dropped."""


class SdpError(ValueError):
    """The camera's session description has no usable video track (the message says what it offered)."""


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """The video track chosen from an SDP."""

    codec: str
    """``h264`` or ``hevc`` (FFmpeg's names)."""
    payload_type: int
    clock_rate: int
    control: str
    """Absolute URL to SETUP."""
    parameter_sets: tuple[bytes, ...] = ()
    """NAL units from ``sprop-parameter-sets`` (H.264) or ``sprop-vps/sps/pps`` (H.265), in that order."""
    aggregate: str = ""
    """The URL for session-wide requests (PLAY, TEARDOWN): the session-level control resolved against the base."""


@dataclass
class _Media:
    """One ``m=`` section of an SDP: its type, payload formats and the attributes read from it."""

    media: str
    formats: list[str]
    control: str = ""
    rtpmap: dict[str, str] = field(default_factory=dict)
    fmtp: dict[str, str] = field(default_factory=dict)


def parse_sdp(text: str, base_url: str) -> VideoTrack:
    """The first H.264/H.265 video track of ``text``; :class:`SdpError` naming what was offered otherwise."""
    session_control = ""
    media: list[_Media] = []
    current: _Media | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            current = _Media(parts[0] if parts else "", parts[3:])
            media.append(current)
        elif kind == "a":
            name, _, arg = value.partition(":")
            if current is None:
                if name == "control":
                    session_control = arg.strip()
                continue
            if name == "control":
                current.control = arg.strip()
            elif name in ("rtpmap", "fmtp"):
                pt, _, rest = arg.strip().partition(" ")
                (current.rtpmap if name == "rtpmap" else current.fmtp)[pt] = rest.strip()
    base = control_url(base_url, session_control)
    offered = []
    for m in media:
        if m.media != "video":
            continue
        for pt in m.formats:
            rtpmap = m.rtpmap.get(pt, "")
            encoding, _, rate = rtpmap.partition("/")
            offered.append(encoding or f"payload {pt}")
            codec = SUPPORTED.get(encoding.upper())
            if codec is None:
                continue
            try:
                payload_type = int(pt)
                clock_rate = int(rate.split("/")[0]) if rate else 90000
            except ValueError:
                raise SdpError(f"SDP: bad payload type or clock rate in {rtpmap!r}") from None
            if clock_rate <= 0:
                raise SdpError(f"SDP: clock rate must be > 0 in {rtpmap!r}")
            fmtp = _fmtp_params(m.fmtp.get(pt, ""))
            return VideoTrack(codec, payload_type, clock_rate, control_url(base, m.control),
                              _parameter_sets(codec, fmtp), aggregate=base)
    if not offered:
        raise SdpError("SDP: the camera offers no video track")
    raise SdpError(f"SDP: no H.264/H.265 video (the camera offers {', '.join(offered)})")


def control_url(base: str, control: str) -> str:
    """The URL a ``a=control:`` attribute names, resolved as FFmpeg and live555 do (RFC 2326 C.1.1 in practice).

    - an absolute URL (``rtsp://…``) is kept as it is;
    - ``*`` or nothing means the base itself (the aggregate);
    - a path starting with ``/`` replaces the base's path (and query);
    - anything else is appended to the base with one ``/`` between — *not* RFC 3986 resolution, which would drop
      the base's last segment and its query: a Dahua request URL ``/cam/realmonitor?channel=1&subtype=0`` with
      ``trackID=0`` gives ``/cam/realmonitor?channel=1&subtype=0/trackID=0``, the URL Dahua cameras (and live555)
      expect and the one FFmpeg builds.
    """
    control = control.strip()
    if not control or control == "*":
        return base
    if _ABSOLUTE.match(control):
        return control
    if control.startswith("/"):
        parts = urlsplit(base)
        return urlunsplit((parts.scheme, parts.netloc, control, "", ""))
    return base + control if base.endswith("/") else base + "/" + control


_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _fmtp_params(fmtp: str) -> dict[str, str]:
    out = {}
    for item in fmtp.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _parameter_sets(codec: str, fmtp: dict[str, str]) -> tuple[bytes, ...]:
    keys = ("sprop-parameter-sets",) if codec == "h264" else ("sprop-vps", "sprop-sps", "sprop-pps")
    out = []
    for key in keys:
        for item in fmtp.get(key, "").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                nal = base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue  # a broken sprop is ignored: the parameter sets also come in-band
            if nal:
                out.append(nal)
    return tuple(out)


@dataclass(slots=True)
class RtpAccessUnit:
    """One frame's NAL units (no start codes), its RTP timestamp and whether a decoder can start at it."""

    nals: list[bytes]
    timestamp: int
    keyframe: bool
    size: int


@dataclass
class Depacketizer:
    """RTP payloads of one H.264/H.265 track → access units (see the module docstring)."""

    codec: str
    lost_packets: int = 0
    """Packets missing from the sequence (the frames they hit were dropped)."""
    dropped_units: int = 0
    """Frames dropped: hit by a loss, waiting for the keyframe after one, malformed or oversized."""
    bad_payloads: int = 0
    """Payloads that could not be parsed (kept going)."""
    _nals: list[bytes] = field(default_factory=list)
    _size: int = 0
    _fu: list[bytes | memoryview] = field(default_factory=list)
    _ts: int | None = None
    _seq: int | None = None
    _broken: bool = False
    _need_key: bool = False

    def __post_init__(self) -> None:
        if self.codec not in ("h264", "hevc"):
            raise ValueError(f"depacketizer: codec must be h264 or hevc, got {self.codec!r}")
        self._hevc = self.codec == "hevc"

    def push(self, packet: bytes | memoryview) -> RtpAccessUnit | None:
        """One whole RTP packet (12-byte header onwards); returns the access unit it completed, if any.

        ``packet`` may be a memoryview (what ``RtspCore`` hands out): fragments are then kept as views and copied
        once, when their NAL unit is whole — the per-packet path of a camera makes no copy of its own."""
        n = len(packet)
        if n < 12 or packet[0] >> 6 != 2:
            self.bad_payloads += 1
            return None
        b0, b1, seq, ts = _RTP_HEADER.unpack_from(packet)
        offset = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension
            if n < offset + 4:
                self.bad_payloads += 1
                return None
            offset += 4 + 4 * ((packet[offset + 2] << 8) | packet[offset + 3])
        end = n
        if b0 & 0x20:  # padding
            end -= packet[-1]
        if offset >= end:
            self.bad_payloads += 1
            return None
        done: RtpAccessUnit | None = None
        lost = 0
        previous = self._seq
        self._seq = seq
        if previous is not None and seq != (previous + 1) & 0xFFFF:
            lost = (seq - previous - 1) & 0xFFFF
            if lost >= 0x8000:
                lost = 0  # a late or repeated packet, not a loss
            if lost:
                self.lost_packets += lost
                self._fu = []
        if ts != self._ts and self._ts is not None and (self._nals or self._broken):
            # The previous frame had no marker bit (or lost it): it ends here, broken if packets are missing.
            self._broken = self._broken or bool(lost)
            done = self._finish()
        if lost:
            self._broken = True  # whose packets were lost is unknowable: this frame goes too
        self._ts = ts
        try:
            if self._hevc:
                self._h265(packet[offset:end])
            else:
                self._h264(packet[offset:end])
        except IndexError:
            self.bad_payloads += 1
            self._broken = True
            self._fu = []
        if b1 & 0x80:
            marked = self._finish()
            return marked if done is None else done  # two at once only if the camera mixes both styles
        return done

    def _add(self, nal: bytes | memoryview) -> None:
        if nal:
            self._nals.append(nal if type(nal) is bytes else bytes(nal))
            self._size += len(nal)

    def _h264(self, p: bytes | memoryview) -> None:
        t = p[0] & 0x1F
        if t == 28:  # FU-A (most packets of a stream): 1-byte indicator + 1-byte FU header; NAL header rebuilt
            fu = p[1]
            self._fragment(fu, bytes(((p[0] & 0xE0) | (fu & 0x1F),)) if fu & 0x80 else b"", p[2:])
        elif 1 <= t <= 23:
            self._add(p)
        elif t == 24:  # STAP-A
            self._aggregate(p, 1)
        else:  # STAP-B, MTAP, FU-B: not used by cameras in non-interleaved mode
            self.bad_payloads += 1

    def _h265(self, p: bytes | memoryview) -> None:
        t = (p[0] >> 1) & 0x3F
        if t < 48:
            self._add(p)
        elif t == 49:  # FU: 2-byte payload header + 1-byte FU header
            fu = p[2]
            self._fragment(fu, bytes(((p[0] & 0x81) | ((fu & 0x3F) << 1), p[1])) if fu & 0x80 else b"", p[3:])
        elif t == 48:  # AP
            self._aggregate(p, 2)
        # 50 (PACI) and reserved types carry nothing we can use

    def _fragment(self, fu: int, header: bytes, body: bytes | memoryview) -> None:
        """One fragment of a NAL unit (S bit 0x80 starts it with the rebuilt NAL ``header``, E bit 0x40 ends it)."""
        if fu & 0x80:
            self._fu = [header, body]
        elif self._fu:
            self._fu.append(body)
        else:
            self._broken = True  # a middle/end fragment without its start
            return
        if fu & 0x40:
            self._add(b"".join(self._fu))
            self._fu = []

    def _aggregate(self, p: bytes | memoryview, offset: int) -> None:
        """The NAL units of an aggregation packet: (16-bit size, unit)* after an ``offset``-byte header."""
        i, n = offset, len(p)
        while i + 2 <= n:
            size = (p[i] << 8) | p[i + 1]
            if i + 2 + size > n:
                raise IndexError("aggregated unit overruns the packet")
            self._add(p[i + 2:i + 2 + size])
            i += 2 + size

    def _finish(self) -> RtpAccessUnit | None:
        nals, size, broken = self._nals, self._size, self._broken
        self._nals, self._size, self._broken = [], 0, False
        self._fu = []
        if not nals and not broken:
            return None
        keyframe = any(self._is_key(n) for n in nals)
        if broken or size > MAX_UNIT_BYTES:
            self.dropped_units += 1
            self._need_key = True
            return None
        if self._need_key:
            if not keyframe:
                self.dropped_units += 1
                return None
            self._need_key = False
        return RtpAccessUnit(nals, self._ts or 0, keyframe, size)

    def _is_key(self, nal: bytes) -> bool:
        if self._hevc:
            return 16 <= (nal[0] >> 1) & 0x3F <= 23
        return nal[0] & 0x1F == H264_IDR


RTCP_SR, RTCP_RR, RTCP_BYE = 200, 201, 203


def rtcp_has_bye(packet: bytes) -> bool:
    """Whether a (compound) RTCP packet holds a BYE — the server saying this stream has ended (RFC 3550 6.6).
    Malformed packets are ``False``: they end nothing."""
    i, n = 0, len(packet)
    while i + 4 <= n:
        if packet[i] >> 6 != 2:
            return False
        if packet[i + 1] == RTCP_BYE:
            return True
        i += 4 + 4 * ((packet[i + 2] << 8) | packet[i + 3])
    return False


def rtcp_receiver_report(ssrc: int) -> bytes:
    """An empty RTCP receiver report (no report blocks) from ``ssrc``: what a receiver sends over UDP to tell the
    server it is still there (some servers time a UDP session out on RTCP silence) and to open NAT mappings."""
    return bytes((0x80, RTCP_RR, 0, 1)) + (ssrc & 0xFFFFFFFF).to_bytes(4, "big")


class Reorder:
    """RTP over UDP arrives out of order now and then: hold up to ``window`` packets to put them back in sequence
    order before the depacketizer (which treats a gap as a loss). Pure; packets are whole RTP packets.

    A packet that arrives after its turn has passed (older than the newest released) is dropped and counted in
    ``late``; when more than ``window`` packets wait behind a gap, the gap is given up as lost and what waits is
    released. A jump of more than ``RESYNC`` sequence numbers (a server that restarted its stream) starts over."""

    RESYNC = 3000

    def __init__(self, window: int = 32) -> None:
        if not 1 <= window <= 1024:
            raise ValueError(f"Reorder.window must be 1..1024, got {window}")
        self.window = window
        self.late = 0
        """Packets dropped because they came after their place in the sequence had been given up."""
        self.reordered = 0
        """Packets that arrived ahead of a missing one and were held back."""
        self._next: int | None = None
        self._held: dict[int, bytes] = {}

    def push(self, packet: bytes) -> list[bytes]:
        """The packets that can go to the depacketizer now, in sequence order (often just ``[packet]``)."""
        if len(packet) < 12:
            return [packet]  # the depacketizer counts it as bad
        seq = (packet[2] << 8) | packet[3]
        expected = self._next
        if expected is None or (seq == expected and not self._held):
            self._next = (seq + 1) & 0xFFFF
            return [packet]
        ahead = (seq - expected) & 0xFFFF
        if ahead >= 0x8000:  # behind the expected one: its turn has passed (or a duplicate)
            if 0x10000 - ahead > self.RESYNC:
                return self._restart(packet, seq)
            self.late += 1
            return []
        if ahead > self.RESYNC:
            return self._restart(packet, seq)
        if seq in self._held:
            self.late += 1  # a duplicate
            return []
        self._held[seq] = packet
        if ahead:
            self.reordered += 1
        out = self._drain()
        if len(self._held) > self.window:  # give the gap up: it was lost
            first = min(self._held, key=lambda s: (s - expected) & 0xFFFF)
            self._next = first
            out += self._drain()
        return out

    def _drain(self) -> list[bytes]:
        out = []
        held = self._held
        nxt = self._next
        while nxt in held:
            out.append(held.pop(nxt))
            nxt = (nxt + 1) & 0xFFFF
        self._next = nxt
        return out

    def _restart(self, packet: bytes, seq: int) -> list[bytes]:
        out = [self._held[s] for s in sorted(self._held, key=lambda s: (s - (self._next or 0)) & 0xFFFF)]
        self._held.clear()
        self._next = (seq + 1) & 0xFFFF
        return out + [packet]
