"""RtspSession: an asyncio RTSP client for one camera — DESCRIBE, SETUP (RTP interleaved over TCP), PLAY, keepalive.

Why our own client: a relay that only remuxes spends most of its CPU getting packets out of the demuxer. PyAV's
RTSP demux needs a thread per camera, a Python packet object per frame and GIL hand-offs between 16 threads; this
client runs every camera on the event loop, reads the TCP stream in large chunks and rebuilds frames with
:mod:`video_ingest.rtp`, so a frame costs a few dozen microseconds of Python and no thread switch
(bench/bench_relay_cpu.py has the figures).

What it speaks: RTSP/1.0 over TCP (``rtsps://``: over TLS, see :func:`_camera_tls`). The media come interleaved on
the same connection (``RTP/AVP/TCP``, channels 0-1: what every IP camera offers and what survives NAT and
firewalls) or, for servers that answer that SETUP with ``461 Unsupported Transport``, over a pair of UDP ports of
ours (``transport="auto"`` falls back by itself; ``udp`` asks for it). Basic and Digest (MD5 and MD5-sess, with or
without ``qop=auth``, a stale nonce answered again) from the URL's user info — credentials the camera refused are
never sent twice on a connection (:class:`RtspAuthError`; the caller backs off for minutes). SETUP/PLAY URLs are built
as FFmpeg does (:func:`video_ingest.rtp.control_url`, :func:`content_base`). A keepalive (``GET_PARAMETER`` when
the server lists it, else ``OPTIONS``) runs at half the session timeout, with RTCP receiver reports every 5 s on UDP.

The end of a stream is seen at once, not after a read timeout: RTCP BYE, a TEARDOWN/ANNOUNCE/REDIRECT (or an
end-of-stream PLAY_NOTIFY) sent by the server, 454 on the keepalive and a closed connection each end the session
with :class:`RtspStreamEnded` or :class:`RtspError`. Other server requests are answered (200, or 501 for methods we
do not know) and the stream goes on. RTCP is read only on the RTCP channel (a few packets every few seconds); data
on channels nobody set up is skipped.

The framing, the encoding of requests and answers and the logins are an I/O-free core
(:mod:`video_ingest.rtsp_core`); this module is its asyncio adapter: sockets, futures, timers. Every failure is an
:class:`RtspError` whose message names the step and what the server said, with credentials never included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from video_ingest.rtp import (
    Depacketizer,
    Reorder,
    RtpAccessUnit,
    VideoTrack,
    parse_sdp,
    rtcp_has_bye,
    rtcp_receiver_report,
)
from video_ingest.rtsp_core import (
    DEFAULT_PORTS,
    USER_AGENT,
    DigestAuth,
    Response,
    RtspAuthError,
    RtspCore,
    RtspError,
    RtspStreamEnded,
    ServerRequest,
    content_base,
    split_credentials,
    transport_params,
)

__all__ = ["DEFAULT_PORTS", "TRANSPORTS", "USER_AGENT", "DigestAuth", "Response", "RtspAuthError", "RtspError",
           "RtspSession", "RtspStreamEnded", "content_base", "split_credentials"]

log = logging.getLogger("citywall.ingest.rtsp")

DEFAULT_SESSION_TIMEOUT_S = 60.0


def _camera_tls() -> ssl.SSLContext:
    """TLS for ``rtsps://``: encrypted, but the camera's certificate is not verified — cameras ship self-signed
    certificates, and FFmpeg (what citywall used before) does not verify them either by default."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Protocol(asyncio.Protocol):
    """Hands the TCP stream to the session's :class:`RtspCore`."""

    def __init__(self, session: RtspSession) -> None:
        self.s = session
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream connection's (TCP or TLS)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.s._closed(exc)

    def data_received(self, data: bytes) -> None:
        s = self.s
        s.last_rx = time.monotonic()
        s.bytes_in += len(data)
        try:
            s.core.receive(data)
        except RtspError as exc:
            s._fail(exc)


TRANSPORTS = ("auto", "tcp", "udp")
END_REQUESTS = ("TEARDOWN", "ANNOUNCE", "REDIRECT")
"""Requests a server sends mid-stream that mean this stream is over (answered, then treated as its end)."""
ANSWERED_REQUESTS = ("GET_PARAMETER", "SET_PARAMETER", "OPTIONS", "PLAY_NOTIFY")
RTCP_REPORT_S = 5.0
UDP_RECEIVE_BUFFER = 2 * 1024 * 1024
"""Asked-for receive buffer of the RTP socket: a 4K keyframe is a burst of a few hundred datagrams."""


class _UdpRtp(asyncio.DatagramProtocol):
    """The RTP socket of a UDP session: datagrams from the camera only, through the reorder window."""

    def __init__(self, session: RtspSession, rtcp: bool) -> None:
        self.s = session
        self.rtcp = rtcp
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)  # a datagram endpoint's
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        s = self.s
        if addr[0] not in s._udp_sources:
            s.udp_foreign += 1  # anyone can send to an open UDP port: only the camera's packets count
            return
        s.last_rx = time.monotonic()
        s.bytes_in += len(data)
        if self.rtcp:
            s._rtcp(data)
            return
        for packet in s._reorder.push(data):
            s._rtp(packet)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable for an RTCP report: the keepalive and read timeout decide


class RtspSession:
    """One RTSP connection playing one camera's video; frames go to ``on_unit`` on the event loop thread.

    ``await open()`` runs DESCRIBE/SETUP/PLAY (bounded by the caller's timeout); then every completed frame calls
    ``on_unit(unit)`` from inside the socket callback (it must not block). ``await wait_closed()`` returns when the
    connection ends (raising what ended it); ``close()`` sends TEARDOWN and closes.

    ``transport``: ``tcp`` (RTP interleaved on the RTSP connection), ``udp`` (RTP/RTCP on a pair of UDP ports of
    ours: the camera must be able to reach them — no NAT or firewall in between that drops them), or ``auto``
    (TCP, and UDP when the server answers the TCP SETUP with 461 Unsupported Transport). ``self.transport`` says
    which one the session uses once open."""

    def __init__(self, url: str, on_unit: Callable[[RtpAccessUnit], None], *, transport: str = "auto") -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        self.url, user, password = split_credentials(url)
        self._auth = DigestAuth(user, password)
        self.on_unit = on_unit
        self.want_transport = transport
        self.transport: str | None = None
        """``tcp`` or ``udp`` once SETUP succeeded."""
        self.track: VideoTrack | None = None
        self.depacketizer: Depacketizer | None = None
        self.core = RtspCore(self._rtp, self._rtcp, self._message)
        """The I/O-free protocol core this session drives."""
        self.last_rx = time.monotonic()
        self.bytes_in = 0
        self.keepalives = 0
        """Keepalive requests the server answered."""
        self.server_requests = 0
        """Requests the server sent us (answered)."""
        self.ended_by: str | None = None
        """What ended the stream from the server's side, when it did (``RTCP BYE``, ``TEARDOWN`` …)."""
        self.udp_foreign = 0
        """UDP datagrams from addresses other than the camera's, dropped."""
        self._protocol: _Protocol | None = None
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._session_id: str | None = None
        self._session_timeout_s = DEFAULT_SESSION_TIMEOUT_S
        self._keepalive_method = "OPTIONS"
        self._keepalive: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._closing = False
        self._authorized = False
        self._aggregate = self.url
        # UDP
        self._reorder = Reorder()
        self._udp: list[asyncio.DatagramTransport] = []
        self._udp_sources: set[str] = set()
        self._server_rtcp: tuple[str, int] | None = None
        self._ssrc = int.from_bytes(os.urandom(4), "big")

    # -- control ---------------------------------------------------------------------------------------------
    async def open(self) -> VideoTrack:
        """Connect, DESCRIBE, SETUP the video track, PLAY. :class:`RtspError` on any failure
        (:class:`RtspAuthError` when the login was refused)."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        parts = urlsplit(self.url)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
        assert host is not None  # split_credentials refused a URL without one
        tls = _camera_tls() if parts.scheme == "rtsps" else None
        try:
            await loop.create_connection(lambda: self._make_protocol(), host, port, ssl=tls,
                                         server_hostname=host if tls else None)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise RtspError(f"cannot connect to {host}:{port}: {why}") from None
        options = await self._request("OPTIONS", self.url)
        public = options.headers.get("public", "").upper()
        if "GET_PARAMETER" in public:
            self._keepalive_method = "GET_PARAMETER"
        desc = await self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = content_base(self.url, desc.headers)
        track = parse_sdp(desc.body.decode("utf-8", "replace"), base)
        self.track = track
        self._aggregate = track.aggregate or base
        self.depacketizer = Depacketizer(track.codec)
        if self.want_transport == "udp":
            setup = await self._setup_udp(track)
        else:
            try:
                setup = await self._setup_tcp(track)
            except RtspError as exc:
                if self.want_transport != "auto" or exc.status != 461:
                    raise
                log.info("%s: the server refuses RTP over TCP (461); trying RTP over UDP", self.url)
                setup = await self._setup_udp(track)
        self._take_session(setup)
        await self._request("PLAY", self._aggregate, {"Range": "npt=0.000-"})
        self._keepalive = asyncio.create_task(self._keep_alive(), name="rtsp-keepalive")
        return track

    async def _setup_tcp(self, track: VideoTrack) -> Response:
        setup = await self._request("SETUP", track.control, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        transport = setup.headers.get("transport", "")
        if "interleaved=" in transport:
            try:
                self.core.rtp_channel = int(transport.split("interleaved=", 1)[1].split("-")[0].split(";")[0])
            except ValueError:
                raise RtspError(f"SETUP: bad Transport {transport!r}") from None
        elif transport and "TCP" not in transport.upper():
            raise RtspError(f"SETUP: the server refused RTP over TCP (Transport {transport!r})", 461)
        self.transport = "tcp"
        return setup

    async def _setup_udp(self, track: VideoTrack) -> Response:
        proto = self._protocol
        assert proto is not None and proto.transport is not None
        sock = proto.transport.get_extra_info("socket")
        local = proto.transport.get_extra_info("sockname")
        peer = proto.transport.get_extra_info("peername")
        rtp_sock, rtcp_sock = _udp_pair(sock.family, local[0])
        loop = asyncio.get_running_loop()
        try:
            for udp_sock, is_rtcp in ((rtp_sock, False), (rtcp_sock, True)):
                transport, _ = await loop.create_datagram_endpoint(functools.partial(_UdpRtp, self, is_rtcp),
                                                                   sock=udp_sock)
                self._udp.append(transport)
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            raise
        rtp_port = rtp_sock.getsockname()[1]
        self._udp_sources = {peer[0]}
        setup = await self._request("SETUP", track.control,
                                    {"Transport": f"RTP/AVP;unicast;client_port={rtp_port}-{rtp_port + 1}"})
        answer = setup.headers.get("transport", "")
        params = transport_params(answer)
        if "interleaved" in params or "TCP" in answer.upper().split(";", 1)[0]:
            raise RtspError(f"SETUP: asked for RTP over UDP, the server answered {answer!r}")
        source = params.get("source")
        if source:
            self._udp_sources.add(source)
        server_port = params.get("server_port", "")
        try:
            rtcp_port = int(server_port.split("-")[1]) if "-" in server_port else int(server_port) + 1
            self._server_rtcp = (source or peer[0], rtcp_port)
        except ValueError:
            self._server_rtcp = None  # no RTCP reports then; the RTSP keepalive still runs
        self.transport = "udp"
        return setup

    def _take_session(self, setup: Response) -> None:
        session = setup.headers.get("session")
        if not session:
            raise RtspError("SETUP: the server sent no Session header")
        sid, *params = [p.strip() for p in session.split(";")]
        self._session_id = sid
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "timeout":
                with contextlib.suppress(ValueError):
                    self._session_timeout_s = max(2.0, float(value))

    async def wait_closed(self) -> None:
        """Return when the connection ends; raises :class:`RtspError` when it ended in error."""
        assert self._done is not None
        await asyncio.shield(self._done)

    @property
    def rtp_channel(self) -> int:
        """The interleaved channel of RTP (from the SETUP answer)."""
        return self.core.rtp_channel

    @property
    def done(self) -> bool:
        return self._done is not None and self._done.done()

    def close(self) -> None:
        """TEARDOWN (best effort) and close the socket. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        proto = self._protocol
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            if self._session_id is not None:
                with contextlib.suppress(Exception):
                    proto.transport.write(self._encode("TEARDOWN", self._aggregate, {}))
            proto.transport.close()
        self._close_udp()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RtspError("connection closed"))
                fut.exception()
        self._pending.clear()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _close_udp(self) -> None:
        for t in self._udp:
            t.close()
        self._udp = []

    # -- requests --------------------------------------------------------------------------------------------
    def _make_protocol(self) -> _Protocol:
        self._protocol = _Protocol(self)
        return self._protocol

    def _encode(self, method: str, url: str, headers: dict[str, str]) -> bytes:
        auth = self._auth.header(method, url)
        self._authorized = auth is not None
        return self.core.request(method, url, headers, authorization=auth, session=self._session_id)

    async def _request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Response:
        """Send, answering a 401 challenge once. Credentials that were sent and refused are never sent again on
        this connection (unless the server says only the nonce was stale): every refused login counts towards
        the camera's lockout."""
        for _ in range(3):
            response = await self._send(method, url, headers or {})
            authorized = self._authorized
            if response.status == 401:
                stale = authorized and DigestAuth.is_stale(response.challenges)
                if (not authorized or stale) and self._auth.challenge(list(response.challenges)):
                    continue
                if self._auth.user is None:
                    raise RtspAuthError(f"{method}: 401 Unauthorized (the camera needs credentials; put "
                                        f"user:password in the camera URL)", 401)
                if not authorized:
                    offered = ", ".join(c.split(" ", 1)[0] for c in response.challenges) or "none"
                    raise RtspAuthError(f"{method}: 401 Unauthorized (no login method we speak; offered: {offered})",
                                        401)
                raise RtspAuthError(f"{method}: 401 Unauthorized (credentials were refused)", 401)
            if response.status == 403:
                raise RtspAuthError(f"{method}: 403 {response.reason or 'Forbidden'} (the camera refused this user)",
                                    403)
            if not 200 <= response.status < 300:
                raise RtspError(f"{method}: {response.status} {response.reason}".strip(), response.status)
            return response
        raise RtspAuthError(f"{method}: 401 Unauthorized (credentials were refused)", 401)

    async def _send(self, method: str, url: str, headers: dict[str, str]) -> Response:
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing() or self.done:
            raise RtspError(f"{method}: connection closed")
        data = self._encode(method, url, headers)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[self.core.cseq] = fut
        proto.transport.write(data)
        return await fut

    # -- protocol callbacks ----------------------------------------------------------------------------------
    def _message(self, message: Response | ServerRequest) -> None:
        if isinstance(message, ServerRequest):
            self._server_request(message.method, message.cseq, message.headers)
            return
        if message.cseq is None:
            return
        fut = self._pending.pop(message.cseq, None)
        if fut is not None and not fut.done():
            fut.set_result(message)
        elif message.status == 454:
            self._end("keepalive: 454 Session Not Found (the server dropped the session)", "454")

    def _server_request(self, method: str, cseq: int | None, headers: dict[str, str]) -> None:
        """A request from the server: answered; TEARDOWN/ANNOUNCE/REDIRECT (and an end-of-stream PLAY_NOTIFY) end
        the stream, which the caller then reconnects."""
        self.server_requests += 1
        known = method in END_REQUESTS or method in ANSWERED_REQUESTS
        self._answer(cseq, 200 if known else 501, "OK" if known else "Not Implemented")
        if method in END_REQUESTS:
            self._end(f"the server sent {method} mid-stream: the stream ended", method)
        elif method == "PLAY_NOTIFY" and "end-of-stream" in headers.get("notify-reason", "").lower():
            self._end("the server notified the end of the stream (PLAY_NOTIFY end-of-stream)", "PLAY_NOTIFY")

    def _answer(self, cseq: int | None, status: int, reason: str) -> None:
        proto = self._protocol
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.write(self.core.answer(cseq, status, reason, self._session_id))

    def _rtp(self, packet: bytes | memoryview) -> None:
        depacketizer = self.depacketizer
        if depacketizer is None:
            return
        unit = depacketizer.push(packet)
        if unit is not None:
            self.on_unit(unit)

    def _rtcp(self, packet: bytes) -> None:
        if rtcp_has_bye(packet) and self.depacketizer is not None:
            self._end("the server ended the stream (RTCP BYE)", "RTCP BYE")

    def _end(self, message: str, by: str) -> None:
        if self.done or self._closing:
            return
        self.ended_by = by
        self._fail(RtspStreamEnded(message))

    def _fail(self, exc: Exception) -> None:
        self.core.stopped = True  # nothing more from this connection reaches the frame callback
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)
            self._done.exception()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()
        self._pending.clear()
        proto = self._protocol
        if proto is not None and proto.transport is not None:
            proto.transport.close()
        self._close_udp()

    def _closed(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self._fail(RtspError(f"connection lost: {exc}" if exc else "the server closed the connection"))

    async def _keep_alive(self) -> None:
        interval = max(1.0, self._session_timeout_s / 2)
        next_keepalive = time.monotonic() + interval
        report = RTCP_REPORT_S if self.transport == "udp" and self._server_rtcp is not None else interval
        self._report()  # at once: opens NAT/firewall state towards the server's ports
        while True:
            await asyncio.sleep(min(report, max(0.0, next_keepalive - time.monotonic())))
            self._report()
            if time.monotonic() < next_keepalive:
                continue
            next_keepalive = time.monotonic() + interval
            method = self._keepalive_method
            try:
                response = await asyncio.wait_for(self._send(method, self._aggregate, {}), interval)
            except TimeoutError:
                continue  # the stream's own read timeout decides whether the camera is gone
            except RtspError:
                return
            self.keepalives += 1
            if response.status == 401 and DigestAuth.is_stale(response.challenges):
                self._auth.challenge(list(response.challenges))  # nonce expired: the next keepalive uses the new one
            if response.status == 454:
                self._end("keepalive: 454 Session Not Found (the server dropped the session)", "454")
                return
            if response.status in (405, 501) and method != "OPTIONS":
                self._keepalive_method = "OPTIONS"  # listed in Public but not implemented after all

    def _report(self) -> None:
        """An RTCP receiver report to the server's RTCP port (UDP sessions only)."""
        if self.transport != "udp" or self._server_rtcp is None or len(self._udp) < 2:
            return
        with contextlib.suppress(OSError):
            self._udp[1].sendto(rtcp_receiver_report(self._ssrc), self._server_rtcp)


def _udp_pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on ``host`` with consecutive ports, the first even (RTP even, RTCP odd, RFC 3550 11)."""
    for _ in range(64):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, 0))
            port = rtp.getsockname()[1]
            if port % 2 == 0 and port < 65535:
                rtcp = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    rtcp.bind((host, port + 1))
                except OSError:
                    rtcp.close()
                else:
                    with contextlib.suppress(OSError):
                        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
                    rtp.setblocking(False)
                    rtcp.setblocking(False)
                    return rtp, rtcp
        except OSError:
            pass
        rtp.close()
    raise RtspError(f"no free pair of UDP ports on {host} for RTP/RTCP")
