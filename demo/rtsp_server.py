#!/usr/bin/python3
"""Standalone demo RTSP server: loops raw H.264 files at real time over RTSP (GStreamer's gst-rtsp-server).

Run by Debian's /usr/bin/python3, the only interpreter here that can import ``gi``; so this file imports nothing
from the project or its virtualenv (no numpy, no av). ``demo.server.DemoRtspServer`` starts it as a child
process.

    /usr/bin/python3 demo/rtsp_server.py --host 127.0.0.1 --port 0 \
        --media vending=/path/vending-7-v1.h264 --fps 25 --media ...

Each ``--media name=path`` is served at ``rtsp://host:port/<name>``. ``--auth digest:USER:PASSWORD`` (or
``basic:…``) makes every request need those credentials, as IP cameras do; ``--tls PEM`` (certificate and key in one
file) serves ``rtsps://`` instead. The file is read once into memory and split
into access units (one per frame); an ``appsrc ! h264parse ! rtph264pay`` pipeline pushes them with monotonic
timestamps, looping forever, and the RTSP server's sinks pace them to the clock, so the stream runs at the real
frame rate without decoding or re-encoding. Media are shared between clients; when the last client leaves the
media is torn down and the next client starts the loop at t=0. UDP and TCP-interleaved transports both work
(``--protocols udp`` offers UDP only, as some NVRs do); ``--once`` ends each stream after one pass (RTCP BYE);
``--alias NAME=/cam/realmonitor`` mounts a media under a longer path too.
A file with B-frames (frames stored in decode order) comes with ``PATH.pts``: a JSON list of each access unit's
presentation index (``demo.media.encode_numbered`` writes it); its frames then go out in file order with those
presentation times (RTP timestamps go back and forth, as a camera's with B-frames do), shifted by the reorder depth
so no presentation time precedes its decode time.
Prints ``READY <port>`` on stdout once listening; exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VCL = (1, 5)
AU_DELIMITING = (6, 7, 8, 9, 14, 15, 16, 17, 18)  # SEI, SPS, PPS, AUD, prefix/subset: start a new access unit


@dataclass(frozen=True)
class AccessUnit:
    """One coded frame: its Annex-B bytes (start codes included) and whether it holds an IDR slice."""

    data: bytes
    keyframe: bool


def _nal_starts(data: bytes) -> list[tuple[int, int]]:
    """(start-code position, payload position) of every NAL unit in an Annex-B byte stream."""
    out = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i - 1 if i > 0 and data[i - 1] == 0 else i  # a 4-byte start code owns its leading zero
        out.append((start, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    return out


def split_access_units(data: bytes) -> list[AccessUnit]:
    """Split an H.264 Annex-B stream into access units (H.264 §7.4.1.2.3): a new one starts at an AUD/SPS/PPS/SEI
    after a picture's slices, or at a slice whose first_mb_in_slice is 0 after another picture's slices."""
    nals = _nal_starts(data)
    bounds: list[int] = []
    keys: list[bool] = []
    have_vcl = False
    for start, payload in nals:
        if payload >= len(data):
            break
        nal_type = data[payload] & 0x1F
        if nal_type in AU_DELIMITING:
            if have_vcl or not bounds:
                bounds.append(start)
                keys.append(False)
                have_vcl = False
        elif nal_type in VCL:
            first_mb_zero = payload + 1 < len(data) and bool(data[payload + 1] & 0x80)  # ue(v) == 0 is bit '1'
            if not bounds or (have_vcl and first_mb_zero):
                bounds.append(start)
                keys.append(False)
            have_vcl = True
            if nal_type == 5:
                keys[-1] = True
    bounds.append(len(data))
    return [AccessUnit(data[a:b], k) for a, b, k in zip(bounds, bounds[1:], keys, strict=False)]


class LoopingMedia:
    """Feeds one media pipeline's appsrc from the access units, looping, with timestamps that never go back."""

    def __init__(self, name: str, units: list[AccessUnit], fps: int, once: bool = False,
                 order: list[int] | None = None) -> None:
        self.name = name
        self.units = units
        self.duration = Gst.SECOND // fps
        self.once = once
        self.n = 0  # frames pushed since this media started: each new media starts the loop at t=0
        self.order = order
        self.delay = max(0, max(i - p for i, p in enumerate(order))) if order else 0

    def need_data(self, src: Gst.Element, _length: int) -> None:
        # Push a few frames per call; the server's sinks wait on the clock, so the pipeline runs at real time.
        for _ in range(4):
            if self.once and self.n >= len(self.units):
                # End of a non-looping stream: the RTP session sends RTCP BYE to every client (as a camera
                # whose recording ends, or an NVR playback, does).
                src.emit("end-of-stream")
                print(f"media {self.name}: end of stream", file=sys.stderr, flush=True)
                return
            i = self.n % len(self.units)
            au = self.units[i]
            buf = Gst.Buffer.new_wrapped(au.data)
            buf.pts = buf.dts = self.n * self.duration
            if self.order is not None:
                buf.pts = (self.n - i + self.order[i] + self.delay) * self.duration
            buf.duration = self.duration
            if not au.keyframe:
                buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
            self.n += 1
            if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return


class LoopFactory(GstRtspServer.RTSPMediaFactory):
    """Media factory for one file: shared media, a fresh loop per media."""

    def __init__(self, name: str, units: list[AccessUnit], fps: int, once: bool = False,
                 protocols: str = "tcp,udp", order: list[int] | None = None) -> None:
        super().__init__()
        self.name = name
        self.units = units
        self.fps = fps
        self.once = once
        self.order = order
        self.set_shared(True)
        lower = GstRtsp.RTSPLowerTrans(0)
        for proto in protocols.split(","):
            lower |= {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}[proto]
        self.set_protocols(lower)  # a server restricted to UDP answers a TCP SETUP with 461
        self.set_launch(
            "( appsrc name=src is-live=false format=time block=false max-bytes=2000000 "
            f"caps=video/x-h264,stream-format=byte-stream,alignment=au,framerate={fps}/1 "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        self.connect("media-configure", self._configure)

    def _configure(self, _factory, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_child_by_name("src")
        feeder = LoopingMedia(self.name, self.units, self.fps, self.once, self.order)
        src.connect("need-data", feeder.need_data)
        media._feeder = feeder  # keep it alive as long as the media  # type: ignore[attr-defined]
        print(f"media {self.name}: new pipeline, loop starts at t=0", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--media", action="append", default=[], metavar="NAME=PATH", help="H.264 Annex-B file to loop")
    p.add_argument("--fps", action="append", type=int, default=[], help="frame rate, once or once per --media")
    p.add_argument("--auth", default="", metavar="METHOD:USER:PASSWORD",
                   help="require credentials (METHOD: basic or digest)")
    p.add_argument("--tls", default="", metavar="PEM", help="serve rtsps:// with this certificate + key file")
    p.add_argument("--protocols", default="tcp,udp", choices=["tcp,udp", "tcp", "udp"],
                   help="lower transports offered: udp makes the server answer TCP-interleaved SETUP with 461")
    p.add_argument("--once", action="store_true",
                   help="play each file once, then end the stream (RTCP BYE) instead of looping")
    p.add_argument("--alias", action="append", default=[], metavar="NAME=PATH",
                   help="also serve media NAME at PATH (may have several segments, e.g. /cam/realmonitor)")
    p.add_argument("--session-timeout", type=int, default=60, metavar="S",
                   help="RTSP session timeout announced to clients (they must send a keepalive within it)")
    args = p.parse_args(argv)
    if args.auth:
        method, _, rest = args.auth.partition(":")
        user, _, password = rest.partition(":")
        if method not in ("basic", "digest") or not user or not password:
            p.error(f"--auth {args.auth!r}: expected basic:USER:PASSWORD or digest:USER:PASSWORD")
    if not args.media:
        p.error("at least one --media NAME=PATH is required")
    fps = args.fps or [25]
    if len(fps) == 1:
        fps = fps * len(args.media)
    if len(fps) != len(args.media):
        p.error(f"give --fps once or once per --media ({len(args.media)}), not {len(args.fps)} times")
    args.streams = []
    for spec, rate in zip(args.media, fps, strict=False):
        name, sep, path = spec.partition("=")
        if not sep or not name or not path or "/" in name:
            p.error(f"--media {spec!r}: expected NAME=PATH with a NAME without '/'")
        if not 1 <= rate <= 240:
            p.error(f"--fps {rate}: must be 1..240")
        args.streams.append((name, path, rate))
    names = {name for name, _, _ in args.streams}
    args.aliases = []
    for spec in args.alias:
        name, sep, path = spec.partition("=")
        if not sep or name not in names or not path.startswith("/"):
            p.error(f"--alias {spec!r}: expected NAME=/PATH with NAME one of the --media names")
        args.aliases.append((name, path))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for name, path, fps in args.streams:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            print(f"--media {name}: cannot read {path}: {e}", file=sys.stderr)
            return 2
        units = split_access_units(data)
        if not units or not units[0].keyframe:
            print(f"--media {name}: {path} is not an H.264 Annex-B stream starting with an IDR frame", file=sys.stderr)
            return 2
        order = None
        if os.path.exists(path + ".pts"):
            with open(path + ".pts") as f:
                order = json.load(f)
            if sorted(order) != list(range(len(units))):
                print(f"--media {name}: {path}.pts is not a permutation of the {len(units)} frames", file=sys.stderr)
                return 2
        factory = LoopFactory(name, units, fps, args.once, args.protocols, order)
        if args.auth or args.tls:
            factory.add_role_from_structure(Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
        mounts.add_factory(f"/{name}", factory)
        for alias_name, path in args.aliases:
            if alias_name == name:
                mounts.add_factory(path, factory)
        print(f"media {name}: {len(units)} frames, {sum(u.keyframe for u in units)} keyframes, "
              f"{len(data) / 1e6:.1f} MB at {fps} fps", file=sys.stderr, flush=True)
    if args.session_timeout != 60:
        server.connect("client-connected", lambda _server, client: client.connect(
            "new-session", lambda _client, session: session.set_timeout(args.session_timeout)))
    if args.auth or args.tls:
        auth = GstRtspServer.RTSPAuth()
        if args.auth:
            require_auth(auth, args.auth)
        else:  # TLS only: everyone gets the role the media need
            auth.set_default_token(_user_token())
        if args.tls:
            try:
                auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(args.tls))
            except GLib.Error as e:
                print(f"--tls {args.tls}: {e.message}", file=sys.stderr)
                return 2
        server.set_auth(auth)
    return serve(server, args.host, args.port)


def _user_token() -> GstRtspServer.RTSPToken:
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    return token


def require_auth(auth: GstRtspServer.RTSPAuth, spec: str) -> None:
    """Every request must carry ``spec``'s credentials (``basic:user:password`` or ``digest:user:password``)."""
    method, _, rest = spec.partition(":")
    user, _, password = rest.partition(":")
    token = _user_token()
    if method == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)


def serve(server: GstRtspServer.RTSPServer, host: str, port: int) -> int:
    """Listen, print ``READY <port>``, run until SIGTERM/SIGINT (also used by ``clock_rtsp_server.py``)."""
    if server.attach(None) == 0:
        print(f"cannot listen on {host}:{port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    pool = server.get_session_pool()
    # Sessions of clients that vanished without TEARDOWN expire; reaping them frees their media.
    GLib.timeout_add_seconds(2, lambda: (pool.cleanup(), True)[1])
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: (loop.quit(), False)[1])
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    print("stopping", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
