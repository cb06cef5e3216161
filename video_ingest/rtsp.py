"""RtspSession: an asyncio RTSP client for one camera — DESCRIBE, SETUP (RTP interleaved over TCP), PLAY, keepalive.

Why our own client: a relay that only remuxes spends most of its CPU getting packets out of the demuxer. PyAV's
RTSP demux needs a thread per camera, a Python packet object per frame and GIL hand-offs between 16 threads; this
client runs every camera on the event loop, reads the TCP stream in large chunks and rebuilds frames with
:mod:`video_ingest.rtp`, so a frame costs a few dozen microseconds of Python and no thread switch
(bench/bench_relay_cpu.py has the figures).

What it speaks: RTSP/1.0 over TCP (``rtsps://``: over TLS, see :func:`_camera_tls`) with the media interleaved on the same connection (``RTP/AVP/TCP``, channels 0-1,
the transport every IP camera offers and the one that survives NAT and firewalls), Basic and Digest (MD5, with or
without ``qop=auth``) authentication from the URL's user info, ``Content-Base`` for relative control URLs, and a
keepalive (``GET_PARAMETER`` when the server lists it, else ``OPTIONS``) at half the session timeout. Requests the
server sends us are answered ``200 OK``. Only the video track is set up; RTCP from the server is read and ignored.

Every failure is an :class:`RtspError` whose message names the step and what the server said, with credentials
never included.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from video_ingest.rtp import Depacketizer, RtpAccessUnit, VideoTrack, parse_sdp

log = logging.getLogger("citywall.ingest.rtsp")

USER_AGENT = "citywall"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_SESSION_TIMEOUT_S = 60.0


class RtspError(Exception):
    """The RTSP exchange failed; the message names the step (never the credentials)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    challenges: tuple[str, ...] = ()
    """The WWW-Authenticate values of a 401."""


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without user info, and the (percent-decoded) user name and password it carried."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RtspError(f"only rtsp:// and rtsps:// URLs are supported (got {parts.scheme or 'no'} scheme)")
    if not parts.hostname:
        raise RtspError("the camera URL has no host")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return clean, user, password


class _Auth:
    """Answers a 401's challenge: Basic, or Digest with MD5 (RFC 2617; ``qop=auth`` when offered)."""

    def __init__(self, user: str | None, password: str | None) -> None:
        self.user = user
        self.password = password or ""
        self._challenge: dict[str, str] | None = None
        self._basic = False
        self._nc = 0

    @property
    def ready(self) -> bool:
        return self._basic or self._challenge is not None

    def challenge(self, headers: list[str]) -> bool:
        """Take the server's WWW-Authenticate values; False when none is one we can answer."""
        if self.user is None:
            return False
        digest = [h for h in headers if h.lower().startswith("digest")]
        if digest:
            fields = _auth_fields(digest[0][6:])
            if fields.get("algorithm", "MD5").upper() not in ("MD5", ""):
                return False
            self._challenge, self._basic, self._nc = fields, False, 0
            return "nonce" in fields and "realm" in fields
        if any(h.lower().startswith("basic") for h in headers):
            self._basic, self._challenge = True, None
            return True
        return False

    def header(self, method: str, uri: str) -> str | None:
        if self.user is None:
            return None
        if self._basic:
            return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        c = self._challenge
        if c is None:
            return None
        realm, nonce = c["realm"], c["nonce"]
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        parts = [f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        qop = c.get("qop", "")
        if "auth" in [q.strip() for q in qop.split(",")]:
            self._nc += 1
            nc = f"{self._nc:08x}"
            cnonce = os.urandom(8).hex()
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        parts.append(f'response="{response}"')
        if "opaque" in c:
            parts.append(f'opaque="{c["opaque"]}"')
        return "Digest " + ", ".join(parts)


def _camera_tls() -> ssl.SSLContext:
    """TLS for ``rtsps://``: encrypted, but the camera's certificate is not verified — cameras ship self-signed
    certificates, and FFmpeg (what citywall used before) does not verify them either by default."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _auth_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lower()
        i = eq + 1
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            out[key] = text[i + 1:end]
            i = end + 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            out[key] = text[i:end].strip()
            i = end
    return out


class _Protocol(asyncio.Protocol):
    """Splits the TCP stream into RTSP messages and interleaved ``$`` frames."""

    def __init__(self, session: "RtspSession") -> None:
        self.s = session
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.s._closed(exc)

    def data_received(self, data: bytes) -> None:
        s = self.s
        s.last_rx = time.monotonic()
        s.bytes_in += len(data)
        buf = self.buf
        buf += data
        pos, n = 0, len(buf)
        rtp_channel = s.rtp_channel
        view = memoryview(buf)
        try:
            while pos < n:
                if buf[pos] == 0x24:  # '$' channel(1) length(2) payload
                    if n - pos < 4:
                        break
                    size = (buf[pos + 2] << 8) | buf[pos + 3]
                    end = pos + 4 + size
                    if end > n:
                        break
                    if buf[pos + 1] == rtp_channel:
                        s._rtp(bytes(view[pos + 4:end]))  # one copy (a bytearray slice would be two)
                    pos = end
                    continue
                head_end = buf.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES)
                if head_end < 0:
                    if n - pos >= MAX_HEADER_BYTES or (n - pos >= 4 and not _looks_like_rtsp(buf, pos)):
                        raise RtspError("the server sent something that is neither RTSP nor interleaved RTP")
                    break
                head = bytes(buf[pos:head_end]).decode("utf-8", "replace")
                length = _content_length(head)
                end = head_end + 4 + length
                if end > n:
                    break
                s._message(head, bytes(buf[head_end + 4:end]))
                pos = end
        except RtspError as exc:
            s._fail(exc)
        finally:
            view.release()  # the buffer cannot shrink while a view of it exists
            del buf[:pos]


def _looks_like_rtsp(buf: bytearray, pos: int) -> bool:
    head = bytes(buf[pos:pos + 8])
    return head.startswith(b"RTSP/") or head[:1].isalpha()


def _content_length(head: str) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise RtspError(f"bad Content-Length {value.strip()!r}") from None
            if not 0 <= length <= MAX_BODY_BYTES:
                raise RtspError(f"Content-Length {length} out of range")
            return length
    return 0


class RtspSession:
    """One RTSP connection playing one camera's video; frames go to ``on_unit`` on the event loop thread.

    ``await open()`` runs DESCRIBE/SETUP/PLAY (bounded by the caller's timeout); then every completed frame calls
    ``on_unit(unit)`` from inside the socket callback (it must not block). ``await wait_closed()`` returns when the
    connection ends (raising what ended it); ``close()`` sends TEARDOWN and closes."""

    def __init__(self, url: str, on_unit: Callable[[RtpAccessUnit], None]) -> None:
        self.url, user, password = split_credentials(url)
        self._auth = _Auth(user, password)
        self.on_unit = on_unit
        self.track: VideoTrack | None = None
        self.depacketizer: Depacketizer | None = None
        self.rtp_channel = 0
        self.last_rx = time.monotonic()
        self.bytes_in = 0
        self.keepalives = 0
        """Keepalive requests the server answered."""
        self._protocol: _Protocol | None = None
        self._cseq = 0
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._session_id: str | None = None
        self._session_timeout_s = DEFAULT_SESSION_TIMEOUT_S
        self._keepalive_method = "OPTIONS"
        self._keepalive: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._closing = False

    # -- control ---------------------------------------------------------------------------------------------
    async def open(self) -> VideoTrack:
        """Connect, DESCRIBE, SETUP the video track over TCP, PLAY. :class:`RtspError` on any failure."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        parts = urlsplit(self.url)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
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
        base = desc.headers.get("content-base") or desc.headers.get("content-location") or self.url
        base, _, _ = split_credentials(base) if base.lower().startswith(("rtsp://", "rtsps://")) \
            else (self.url, None, None)
        track = parse_sdp(desc.body.decode("utf-8", "replace"), base)
        self.track = track
        self.depacketizer = Depacketizer(track.codec)
        setup = await self._request("SETUP", track.control,
                                    {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        session = setup.headers.get("session")
        if not session:
            raise RtspError("SETUP: the server sent no Session header")
        sid, *params = [p.strip() for p in session.split(";")]
        self._session_id = sid
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "timeout":
                try:
                    self._session_timeout_s = max(2.0, float(value))
                except ValueError:
                    pass
        transport = setup.headers.get("transport", "")
        if "interleaved=" in transport:
            try:
                self.rtp_channel = int(transport.split("interleaved=", 1)[1].split("-")[0].split(";")[0])
            except ValueError:
                raise RtspError(f"SETUP: bad Transport {transport!r}") from None
        elif transport and "TCP" not in transport.upper():
            raise RtspError(f"SETUP: the server refused RTP over TCP (Transport {transport!r})")
        await self._request("PLAY", base, {"Range": "npt=0.000-"})
        self._keepalive = asyncio.create_task(self._keep_alive(), name="rtsp-keepalive")
        return track

    async def wait_closed(self) -> None:
        """Return when the connection ends; raises :class:`RtspError` when it ended in error."""
        assert self._done is not None
        await asyncio.shield(self._done)

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
                try:
                    proto.transport.write(self._encode("TEARDOWN", self.url, {}))
                except Exception:
                    pass
            proto.transport.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RtspError("connection closed"))
                fut.exception()
        self._pending.clear()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # -- requests --------------------------------------------------------------------------------------------
    def _make_protocol(self) -> _Protocol:
        self._protocol = _Protocol(self)
        return self._protocol

    def _encode(self, method: str, url: str, headers: dict[str, str]) -> bytes:
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        auth = self._auth.header(method, url)
        if auth:
            lines.append(f"Authorization: {auth}")
        if self._session_id is not None:
            lines.append(f"Session: {self._session_id}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Response:
        for attempt in range(2):
            response = await self._send(method, url, headers or {})
            if response.status == 401 and attempt == 0:
                if self._auth.challenge(list(response.challenges)):
                    continue
                who = "credentials were refused" if self._auth.user is not None else "the camera needs credentials"
                raise RtspError(f"{method}: 401 Unauthorized ({who}; put user:password in the camera URL)")
            if response.status == 401:
                raise RtspError(f"{method}: 401 Unauthorized (credentials were refused)")
            if not 200 <= response.status < 300:
                raise RtspError(f"{method}: {response.status} {response.reason}".strip())
            return response
        raise AssertionError("unreachable")

    async def _send(self, method: str, url: str, headers: dict[str, str]) -> Response:
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing() or self.done:
            raise RtspError(f"{method}: connection closed")
        data = self._encode(method, url, headers)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[self._cseq] = fut
        proto.transport.write(data)
        return await fut

    # -- protocol callbacks ----------------------------------------------------------------------------------
    def _message(self, head: str, body: bytes) -> None:
        lines = head.split("\r\n")
        first = lines[0]
        headers: dict[str, str] = {}
        challenges: list[str] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            headers[key] = value.strip()
            if key == "www-authenticate":
                challenges.append(value.strip())
        cseq = _int(headers.get("cseq"))
        if not first.startswith("RTSP/"):
            if not first.endswith(" RTSP/1.0"):
                raise RtspError(f"the server does not speak RTSP (it answered {first[:60]!r})")
            self._answer_request(cseq)  # a request from the server (GET_PARAMETER, ANNOUNCE…)
            return
        try:
            _, status_text, *reason = first.split(" ", 2)
            status = int(status_text)
        except ValueError:
            raise RtspError(f"bad status line {first[:80]!r}") from None
        if cseq is None:
            return
        fut = self._pending.pop(cseq, None)
        if fut is not None and not fut.done():
            fut.set_result(Response(status, reason[0] if reason else "", headers, body, tuple(challenges)))
        elif status == 454:
            raise RtspError("keepalive: 454 Session Not Found (the server dropped the session)")

    def _answer_request(self, cseq: int | None) -> None:
        proto = self._protocol
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.write(f"RTSP/1.0 200 OK\r\nCSeq: {cseq or 0}\r\n\r\n".encode())

    def _rtp(self, packet: bytes) -> None:
        depacketizer = self.depacketizer
        if depacketizer is None:
            return
        unit = depacketizer.push(packet)
        if unit is not None:
            self.on_unit(unit)

    def _fail(self, exc: Exception) -> None:
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

    def _closed(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self._fail(RtspError(f"connection lost: {exc}" if exc else "the server closed the connection"))

    async def _keep_alive(self) -> None:
        interval = max(1.0, self._session_timeout_s / 2)
        while True:
            await asyncio.sleep(interval)
            method = self._keepalive_method
            try:
                response = await asyncio.wait_for(self._send(method, self.url, {}), interval)
            except asyncio.TimeoutError:
                continue  # the stream's own read timeout decides whether the camera is gone
            except RtspError:
                return
            self.keepalives += 1
            if response.status == 454:
                self._fail(RtspError("keepalive: 454 Session Not Found (the server dropped the session)"))
                return
            if response.status in (405, 501) and method != "OPTIONS":
                self._keepalive_method = "OPTIONS"  # listed in Public but not implemented after all


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
