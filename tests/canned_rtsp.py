"""A scripted RTSP camera on 127.0.0.1 for canned exchanges: real sockets, answers chosen by the test.

Real cameras' quirks (a Dahua URL with a query string, a server that only offers UDP, a TEARDOWN sent by the server,
454 on the keepalive, Digest variants) are reproduced byte for byte here, where the GStreamer demo server cannot be
made to show them. Each request is recorded; ``handler(request, camera)`` may answer it (return a :class:`Reply`)
or leave it to the defaults (return None), which behave like a plain camera: RTP interleaved on channels 0-1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes = b""


@dataclass
class Reply:
    status: int = 200
    reason: str = "OK"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def rtp(seq: int, ts: int, payload: bytes, marker: bool, pt: int = 96, ssrc: int = 0x12345678) -> bytes:
    return bytes([0x80, (0x80 if marker else 0) | pt]) + (seq & 0xFFFF).to_bytes(2, "big") + \
        (ts & 0xFFFFFFFF).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload


def interleaved(channel: int, payload: bytes) -> bytes:
    return bytes([0x24, channel]) + len(payload).to_bytes(2, "big") + payload


RTCP_BYE = bytes([0x81, 203, 0, 1]) + (0x12345678).to_bytes(4, "big")
RTCP_SR = bytes([0x80, 200, 0, 6]) + bytes(24)

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=canned\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
       "a=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n")


class CannedCamera:
    """``async with CannedCamera(sdp) as cam: cam.url("/path")``; after PLAY (TCP) it sends one tiny frame every
    ``frame_interval_s`` on channel 0 while ``streaming`` is true."""

    def __init__(self, sdp: str = SDP, *, handler: Callable[[Request, CannedCamera], Reply | None] | None = None,
                 content_base: str | None = None, frame_interval_s: float = 0.04) -> None:
        self.sdp = sdp
        self.handler = handler
        self.content_base = content_base
        """Content-Base to send with DESCRIBE (``{url}`` is replaced by the request URL); None: none sent."""
        self.frame_interval_s = frame_interval_s
        self.requests: list[Request] = []
        self.answers: list[tuple[str, str]] = []
        """(status line, CSeq) of the client's answers to the server's requests."""
        self.connections = 0
        self.streaming = True
        self.writer: asyncio.StreamWriter | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/live", user: str = "", password: str = "") -> str:
        login = f"{user}:{password}@" if user else ""
        return f"rtsp://{login}127.0.0.1:{self.port}{path}"

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    async def __aenter__(self) -> CannedCamera:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        current = asyncio.current_task()
        for task in [t for t in self._tasks if t is not current]:
            task.cancel()
        await asyncio.gather(*[t for t in self._tasks if t is not current], return_exceptions=True)
        if self.writer is not None:
            self.writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def send(self, data: bytes) -> None:
        """Write raw bytes to the newest client connection."""
        assert self.writer is not None
        self.writer.write(data)

    def request_to_client(self, method: str, url: str, cseq: int = 1, headers: dict[str, str] | None = None) -> None:
        """Send a request of the server's own to the client (TEARDOWN, ANNOUNCE, GET_PARAMETER …)."""
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
            task.add_done_callback(self._tasks.discard)  # type: ignore[arg-type]
        self.connections += 1
        self.writer = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                first = lines[0]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if first.startswith("RTSP/"):
                    self.answers.append((first, headers.get("cseq", "")))  # the client's answer to our request
                    continue
                method, url, _ = first.split(" ", 2)
                request = Request(method, url, headers, body)
                self.requests.append(request)
                if method == "SETUP":
                    self._transport = headers.get("transport", "")
                reply = self.handler(request, self) if self.handler else None
                if reply is None:
                    reply = self._default(request)
                out = [f"RTSP/1.0 {reply.status} {reply.reason}", f"CSeq: {headers.get('cseq', '0')}"]
                out += [f"{k}: {v}" for k, v in reply.headers.items()]
                if reply.body:
                    out.append(f"Content-Length: {len(reply.body)}")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + reply.body)
                if method == "PLAY" and reply.status == 200 and "interleaved" in self._transport:
                    task = asyncio.create_task(self._stream(writer))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    _transport = ""

    def _default(self, r: Request) -> Reply:
        if r.method == "OPTIONS":
            return Reply(headers={"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"})
        if r.method == "DESCRIBE":
            headers = {"Content-Type": "application/sdp"}
            if self.content_base is not None:
                headers["Content-Base"] = self.content_base.replace("{url}", r.url)
            return Reply(headers=headers, body=self.sdp.encode())
        if r.method == "SETUP":
            return Reply(headers={"Transport": self._transport, "Session": "12345678;timeout=60"})
        return Reply()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        seq = 0
        while True:
            if self.streaming:
                writer.write(interleaved(0, rtp(seq, seq * 3600, bytes([0x65, 0x88, 0x80, 0x40]), True)))
                seq += 1
            await asyncio.sleep(self.frame_interval_s)
