"""The RTSP client's I/O-free core: message framing, requests and answers as bytes, and logins.

No sockets, no clocks, no event loop: :class:`RtspCore` takes the bytes a connection received and hands out what
they hold — RTP and RTCP payloads of the interleaved channels (through callbacks, so a packet costs no event object
on the hot path), responses and the server's own requests (:class:`Response`, :class:`ServerRequest`) — and encodes
our requests and answers. :class:`DigestAuth` answers Basic and Digest challenges. :mod:`video_ingest.rtsp` is the
thin asyncio adapter around them; tests feed them canned bytes of real cameras' quirks.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

USER_AGENT = "citywall"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}


class RtspError(Exception):
    """The RTSP exchange failed; the message names the step (never the credentials)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The RTSP status code that caused it, when a response did."""


class RtspAuthError(RtspError):
    """The camera refused the login (401 after credentials were sent, 403) or needs credentials it was not given.
    Retrying soon would only count towards the camera's account lockout: callers back off hard."""


class RtspStreamEnded(RtspError):
    """The server ended the stream: RTCP BYE, a TEARDOWN/ANNOUNCE/REDIRECT request of its own, or 454 on the
    keepalive."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    challenges: tuple[str, ...] = ()
    """The WWW-Authenticate values of a 401."""
    cseq: int | None = None


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


class DigestAuth:
    """Answers a 401's challenge — Basic, or Digest (RFC 2617/7616 with MD5 or MD5-sess, ``qop=auth`` when the
    server's list offers it, quoted or unquoted fields). Pure: no I/O, the cnonce source can be given."""

    def __init__(self, user: str | None, password: str | None, *,
                 cnonce: Callable[[], str] = lambda: os.urandom(8).hex()) -> None:
        self.user = user
        self.password = password or ""
        self._challenge: dict[str, str] | None = None
        self._basic = False
        self._nc = 0
        self._cnonce = cnonce

    @property
    def ready(self) -> bool:
        return self._basic or self._challenge is not None

    @staticmethod
    def is_stale(headers: list[str] | tuple[str, ...]) -> bool:
        """Whether a Digest challenge says ``stale=true``: only the nonce expired, the credentials were right."""
        for h in headers:
            if h.lower().startswith("digest") and _auth_fields(h[6:]).get("stale", "").lower() == "true":
                return True
        return False

    def challenge(self, headers: list[str] | tuple[str, ...]) -> bool:
        """Take the server's WWW-Authenticate values; False when none is one we can answer."""
        if self.user is None:
            return False
        for h in headers:
            if not h.lower().startswith("digest"):
                continue
            fields = _auth_fields(h[6:])
            if fields.get("algorithm", "MD5").upper() not in ("MD5", "MD5-SESS", ""):
                continue  # e.g. SHA-256 offered first: a later MD5 challenge may follow
            if "nonce" not in fields or "realm" not in fields:
                continue
            self._challenge, self._basic, self._nc = fields, False, 0
            return True
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
        qops = [q.strip().lower() for q in c.get("qop", "").split(",")]
        sess = c.get("algorithm", "").upper() == "MD5-SESS"
        cnonce = self._cnonce() if sess or "auth" in qops else ""
        if sess:
            ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
            parts.append("algorithm=MD5-sess")
        elif "algorithm" in c:
            parts.append("algorithm=MD5")  # echo it only when the server named it (some cameras choke otherwise)
        if "auth" in qops:
            self._nc += 1
            nc = f"{self._nc:08x}"
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
            if sess:
                parts.append(f'cnonce="{cnonce}"')
        parts.append(f'response="{response}"')
        if "opaque" in c:
            parts.append(f'opaque="{c["opaque"]}"')
        return "Digest " + ", ".join(parts)




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


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """A request the server sent us (GET_PARAMETER as its own keepalive, TEARDOWN, ANNOUNCE …)."""

    method: str
    """Upper-cased."""
    url: str
    cseq: int | None
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes = b""


class RtspCore:
    """RTSP/1.0 over one byte stream, without I/O.

    ``receive(data)`` splits what arrived into interleaved frames (``$``, channel, 16-bit length) and RTSP messages:
    the RTP channel's payloads go to ``on_rtp``, the RTCP channel's (RTP channel + 1) to ``on_rtcp``, other channels
    are skipped (counted in ``skipped``), and each whole message goes to ``on_message`` as a :class:`Response` or a
    :class:`ServerRequest`. The RTCP and message callbacks may set ``stopped``: the rest of that chunk is then left
    unread (a stream that ended delivers nothing more); the RTP path checks nothing extra per packet. Anything that
    is neither raises :class:`RtspError`. ``request()`` and
    ``answer()`` encode what we send."""

    def __init__(self, on_rtp: Callable[[memoryview], None], on_rtcp: Callable[[bytes], None],
                 on_message: Callable[[Response | ServerRequest], None], *, user_agent: str = USER_AGENT) -> None:
        self.on_rtp = on_rtp
        self.on_rtcp = on_rtcp
        self.on_message = on_message
        self.user_agent = user_agent
        self.rtp_channel = 0
        """Interleaved channel of RTP (RTCP is the next one), from the SETUP answer."""
        self.skipped = 0
        """Interleaved frames on channels nobody set up (audio, metadata a camera sends unasked)."""
        self.stopped = False
        self.cseq = 0
        """CSeq of the newest request encoded."""
        self._buf = b""
        """What is left of the previous chunk: the start of a frame or message not yet whole."""

    def receive(self, data: bytes) -> None:
        """Take bytes from the connection; calls back for every whole frame and message in them.

        The RTP payloads handed to ``on_rtp`` are read-only memoryviews of one immutable copy of the chunk (no
        copy and no bytes object per packet: a 720p keyframe is ~40 packets); a consumer may keep them (they
        keep that chunk alive) or copy them with ``bytes()``."""
        if self.stopped:
            return
        if self._buf:  # the unfinished tail of the previous chunk: one copy joins it to this one
            data = self._buf + data
        elif not isinstance(data, bytes):
            data = bytes(data)
        self._buf = b""
        pos, n = 0, len(data)
        rtp_channel = self.rtp_channel
        on_rtp = self.on_rtp
        view = memoryview(data)
        try:
            while pos < n:
                if data[pos] == 0x24:  # '$' channel(1) length(2) payload
                    if n - pos < 4:
                        break
                    end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
                    if end > n:
                        break
                    channel = data[pos + 1]
                    if channel == rtp_channel:
                        on_rtp(view[pos + 4:end])
                        pos = end
                        continue
                    if channel == rtp_channel + 1:  # RTCP: a few packets every few seconds
                        self.on_rtcp(data[pos + 4:end])
                    else:
                        self.skipped += 1
                    pos = end
                    if self.stopped:
                        break
                    continue
                head_end = data.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES)
                if head_end < 0:
                    if n - pos >= MAX_HEADER_BYTES or (n - pos >= 4 and not _looks_like_rtsp(data, pos)):
                        raise RtspError("the server sent something that is neither RTSP nor interleaved RTP")
                    break
                head = data[pos:head_end].decode("utf-8", "replace")
                end = head_end + 4 + _content_length(head)
                if end > n:
                    break
                message = parse_message(head, data[head_end + 4:end])
                pos = end
                self.on_message(message)
                if self.stopped:
                    break
        finally:
            if pos < n:
                self._buf = data[pos:]

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, *,
                authorization: str | None = None, session: str | None = None) -> bytes:
        """Encode a request with the next CSeq (``self.cseq`` after the call)."""
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", f"User-Agent: {self.user_agent}"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        if session is not None:
            lines.append(f"Session: {session}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @staticmethod
    def answer(cseq: int | None, status: int, reason: str, session: str | None = None) -> bytes:
        """Our answer to a server's request."""
        extra = f"Session: {session}\r\n" if session else ""
        return f"RTSP/1.0 {status} {reason}\r\nCSeq: {cseq or 0}\r\n{extra}\r\n".encode()


def parse_message(head: str, body: bytes) -> Response | ServerRequest:
    """One RTSP message (head without the blank line, and its body): a response or a request of the server's.
    Header names are matched in any case; :class:`RtspError` for what is not RTSP."""
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
        if not (first.endswith(" RTSP/1.0") or first.endswith(" RTSP/2.0")):
            raise RtspError(f"the server does not speak RTSP (it answered {first[:60]!r})")
        method, _, rest = first.partition(" ")
        return ServerRequest(method.upper(), rest.rsplit(" ", 1)[0], cseq, headers, body)
    try:
        _, status_text, *reason = first.split(" ", 2)
        status = int(status_text)
    except ValueError:
        raise RtspError(f"bad status line {first[:80]!r}") from None
    return Response(status, reason[0] if reason else "", headers, body, tuple(challenges), cseq)


def _looks_like_rtsp(buf: bytes, pos: int) -> bool:
    head = buf[pos:pos + 8]
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


def content_base(request_url: str, headers: dict[str, str]) -> str:
    """The base URL of a DESCRIBE answer (RFC 2326 C.1.1): Content-Base, else Content-Location, else the request
    URL; relative values are resolved against the request URL, user info is dropped."""
    for name in ("content-base", "content-location"):
        value = headers.get(name, "").strip()
        if not value:
            continue
        if not value.lower().startswith(("rtsp://", "rtsps://")):
            value = urljoin(request_url, value)
            if not value.lower().startswith(("rtsp://", "rtsps://")):
                continue
        try:
            return split_credentials(value)[0]
        except RtspError:
            continue
    return request_url


def transport_params(transport: str) -> dict[str, str]:
    """The parameters of a Transport header's first spec (``client_port``, ``server_port``, ``source`` …); names
    lower-cased."""
    out: dict[str, str] = {}
    for item in transport.split(",", 1)[0].split(";")[1:]:
        key, _, value = item.partition("=")
        out[key.strip().lower()] = value.strip()
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
