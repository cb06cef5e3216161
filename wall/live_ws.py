"""Live video over WebSocket (``/api/live/{camera_id}``): fMP4 from the LiveHub, one binary frame per fragment.

Protocol: a text frame ``{"type": "init", "mime": ..., "transcoded": <source codec or null>}``, one binary frame
with the init segment (ftyp+moov), then one binary frame per fragment (moof+mdat). Failures end with a text frame
``{"type": "error", ...}`` and a close: ``unknown camera <id>``, ``camera offline`` (the tile retries with backoff)
or ``live video not available on this server``.

Fragments are pushed, not pulled: a local viewer (``attach`` in ``video_ingest.live.LiveViewer``) hands each
fragment to :class:`FrameWriter` as the relay makes it, which writes one pre-built WebSocket frame — built once per
fragment and shared by every viewer, as ``websockets.broadcast`` does — straight to the socket's transport. A
browser that does not keep up is bounded by ``MAX_SEND_BUFFER``: beyond it the viewer skips to the next keyframe
(counted in its ``dropped``), so a stalled browser holds back nobody and costs no memory beyond that. Viewers
without ``attach`` (a peer wall server's proxied stream) are pumped from their queue instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import WSCloseCode, web

from wall import state
from wall.auth import Session, require_session
from wall.errors import require_websocket_handshake
from wall.live_protocol import LiveViewer
from wall.socket_quota import SOCKET_QUOTA

log = logging.getLogger("citywall.wall.live")

OPEN_TIMEOUT_S = 15.0
"""The LiveHub gives up after ~10 s without a keyframe; this only guards against a hub that never answers."""
FRAGMENT_TIMEOUT_S = 15.0
"""No fragment for this long means the camera stalled: tell the tile it is offline so it retries."""
CLOSE_TIMEOUT_S = 5.0
VIEWER_QUEUE = 256
MAX_SEND_BUFFER = 1024 * 1024
"""Bytes a live socket may have waiting in its send buffer (~5 s of a 720p tile) before fragments are dropped."""
SOCKET_SEND_BUFFER = 256 * 1024
"""SO_SNDBUF of a live socket (Linux doubles it): the kernel's own queue for a slow browser stays ~1 s of video
instead of the autotuned megabytes, so a browser that falls behind is noticed (and skipped to a keyframe) while it
can still catch up, rather than fed video that is already seconds old. Plenty for a tile's bitrate over a LAN."""
MAX_CLIENT_MESSAGE = 4096
"""The browser sends nothing on this socket; a bigger frame closes it with 1009 (message too big)."""
_CAMERA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class LiveStats:
    """Counters exported in ``/api/health`` under ``live``."""

    viewers: int = 0
    opened_total: int = 0
    fragments_sent: int = 0
    bytes_sent: int = 0
    offline: int = 0
    """Viewers refused or ended because the camera was offline or stalled."""
    unknown_camera: int = 0


class _Connection:
    def __init__(self, session: Session | None):
        self.session = session
        self.task: asyncio.Task[Any] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.done = asyncio.Event()

    def end(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if self.task is not None:
                self.task.cancel()


class LiveSockets:
    """Serves and tracks the live-video sockets (for stats, logout and shutdown)."""

    def __init__(self) -> None:
        self._connections: set[_Connection] = set()
        self._stats = LiveStats()
        self._frames = FrameCache()

    def stats(self) -> dict[str, Any]:
        """Counters for ``/api/health``."""
        self._stats.viewers = len(self._connections)
        return asdict(self._stats)

    def sessions(self) -> list[tuple[Session, Callable[[int, str], None]]]:
        """Every open socket's session and how to end it (the app's session sweep)."""
        return [(c.session, c.end) for c in self._connections if c.session is not None]

    @contextlib.contextmanager
    def tracked(self, session: Session, task: asyncio.Task[Any]) -> Iterator[_Connection]:
        """Count another video socket of ``session`` (a recording playback) with the live ones while it runs:
        logout, an expired session and shutdown cancel ``task`` and leave the close code on the connection."""
        conn = _Connection(session)
        conn.task = task
        self._connections.add(conn)
        try:
            yield conn
        finally:
            self._connections.discard(conn)
            conn.done.set()

    def disconnect_session(self, token: str) -> int:
        """Close every live socket of a session (logout)."""
        ended = [c for c in self._connections if c.session is not None and c.session.token == token]
        for conn in ended:
            conn.end(4401, "logged out")
        return len(ended)

    async def shutdown(self) -> None:
        """Close every live socket and wait briefly for the handlers."""
        conns = list(self._connections)
        for conn in conns:
            conn.end(WSCloseCode.GOING_AWAY, "server shutting down")
        if conns:
            await asyncio.wait([asyncio.create_task(c.done.wait()) for c in conns], timeout=CLOSE_TIMEOUT_S + 1)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/live/{camera_id}`` for a logged-in browser."""
        return await self.serve(request, request.app[state.LIVE], require_session(request))

    async def serve(self, request: web.Request, live: Any, session: Session | None) -> web.StreamResponse:
        """The live socket for ``request.match_info["camera_id"]`` from ``live``; ``session`` is None for a cluster
        peer (a wall server proxying for its browsers), which the caller has authenticated."""
        camera_id = request.match_info["camera_id"]
        # compress=False: browsers offer permessage-deflate and aiohttp accepts it by default, which would deflate
        # every video fragment for every viewer (CPU for nothing: H.264 does not compress).
        ws = web.WebSocketResponse(heartbeat=30.0, timeout=CLOSE_TIMEOUT_S, max_msg_size=MAX_CLIENT_MESSAGE,
                                   compress=False)
        require_websocket_handshake(ws, request)
        if session is None:  # a cluster peer: authenticated by the caller, counted by its own wall server
            return await self._serve_socket(request, ws, live, camera_id, session)
        quota = request.app[SOCKET_QUOTA]
        refused = quota.refusal(session.username)
        if refused is not None:
            return refused
        with quota.slot(session.username):
            return await self._serve_socket(request, ws, live, camera_id, session)

    async def _serve_socket(self, request: web.Request, ws: web.WebSocketResponse, live: Any, camera_id: str,
                            session: Session | None) -> web.StreamResponse:
        await ws.prepare(request)
        conn = _Connection(session)
        self._connections.add(conn)
        self._stats.opened_total += 1
        conn.task = asyncio.create_task(self._serve(ws, live, camera_id, request.transport))
        try:
            await conn.task
        except (ConnectionError, RuntimeError) as exc:  # the browser went away mid-send
            log.debug("live socket for %s ended: %r", request.match_info["camera_id"], exc)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if conn.close_code is None or (current is not None and current.cancelling()):
                raise  # the handler itself was cancelled (client gone, server stopping)
        finally:
            self._connections.discard(conn)
            try:
                if not conn.task.done():
                    conn.task.cancel()
                    await asyncio.gather(conn.task, return_exceptions=True)
                code = conn.close_code if conn.close_code is not None else WSCloseCode.OK
                await asyncio.wait_for(ws.close(code=code, message=conn.close_reason.encode()[:120]),
                                       CLOSE_TIMEOUT_S + 1)
            except (TimeoutError, ConnectionError, RuntimeError):
                pass
            finally:  # also when the handler is cancelled because the peer went away mid-close
                conn.done.set()
        return ws

    async def _serve(self, ws: web.WebSocketResponse, live: Any, camera_id: str,
                     transport: asyncio.BaseTransport | None) -> None:
        if live is None:
            await _send_error(ws, "live video not available on this server")
            return
        if not _CAMERA_ID.fullmatch(camera_id):
            self._stats.unknown_camera += 1
            await _send_error(ws, f"unknown camera {camera_id[:64]}")
            return
        try:
            viewer: LiveViewer = await asyncio.wait_for(live.open(camera_id, queue_size=VIEWER_QUEUE), OPEN_TIMEOUT_S)
        except KeyError:
            self._stats.unknown_camera += 1
            await _send_error(ws, f"unknown camera {camera_id}")
            return
        except Exception as exc:  # LiveUnavailable (no keyframe in time), a timeout, an ended source
            self._stats.offline += 1
            log.info("live %s unavailable: %r", camera_id, exc)
            await _send_error(ws, "camera offline")
            return
        try:
            await ws.send_json({"type": "init", "mime": viewer.mime,
                                "transcoded": viewer.transcoded_from})
            await ws.send_bytes(viewer.init_segment)
            if hasattr(viewer, "attach") and isinstance(transport, asyncio.WriteTransport):
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
                pump = asyncio.create_task(self._push(viewer, FrameWriter(transport, self._frames, self._stats)))
            else:
                pump = asyncio.create_task(self._pump(ws, viewer))
            reader = asyncio.create_task(_until_client_closes(ws))
            try:
                await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, reader):
                    task.cancel()
                await asyncio.gather(pump, reader, return_exceptions=True)
            if pump.done() and not pump.cancelled() and pump.exception() is None and pump.result():
                self._stats.offline += 1
                await _send_error(ws, "camera offline")
        finally:
            viewer.close()

    async def _pump(self, ws: web.WebSocketResponse, viewer: LiveViewer) -> bool:
        """Send fragments until the source ends (returns True) or the client goes away (raises)."""
        while True:
            try:
                async with asyncio.timeout(FRAGMENT_TIMEOUT_S):  # unlike wait_for, no task per fragment
                    fragment = await viewer.next_fragment()
            except Exception as exc:  # LiveEnded, or no fragment in time (TimeoutError)
                log.info("live stream ended for a viewer: %r", exc)
                return True
            await ws.send_bytes(fragment)
            self._stats.fragments_sent += 1
            self._stats.bytes_sent += len(fragment)


    async def _push(self, viewer: Any, writer: FrameWriter) -> bool:
        """Push mode: the relay writes fragments through ``writer``; this only watches for the end of the stream
        or a stall (no fragment for ``FRAGMENT_TIMEOUT_S``). Returns True when the source ended or stalled."""
        viewer.attach(writer)
        seen = -1
        while True:
            try:
                async with asyncio.timeout(FRAGMENT_TIMEOUT_S):
                    reason = await viewer.wait_ended()
                log.info("live stream ended for a viewer: %s", reason)
                return True
            except TimeoutError:
                progress = viewer.delivered + viewer.dropped
                if progress == seen:
                    log.info("live stream stalled for a viewer: no fragment in %g s", FRAGMENT_TIMEOUT_S)
                    return True
                seen = progress


class FrameCache:
    """The WebSocket frame of the newest fragment: every viewer of a camera is offered the same fragment one after
    another, so one entry builds each frame once for all of them."""

    def __init__(self) -> None:
        self._fragment: bytes | None = None
        self._frame = b""

    def frame(self, fragment: bytes) -> bytes:
        if fragment is not self._fragment:
            self._fragment = fragment
            self._frame = binary_frame(fragment)
        return self._frame


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented binary WebSocket frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, n))
    elif n < 1 << 16:
        head = bytes((0x82, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 127)) + n.to_bytes(8, "big")
    return head + payload


class FrameWriter:
    """Writes fragments to one live socket's transport; refuses (False) while its send buffer holds more than
    ``MAX_SEND_BUFFER`` or the socket is closing."""

    def __init__(self, transport: asyncio.WriteTransport, frames: FrameCache, stats: LiveStats,
                 max_buffer: int | None = None) -> None:
        self.transport = transport
        self.frames = frames
        self.stats = stats
        self.max_buffer = MAX_SEND_BUFFER if max_buffer is None else max_buffer

    def __call__(self, fragment: bytes) -> bool:
        transport = self.transport
        if transport.is_closing() or transport.get_write_buffer_size() > self.max_buffer:
            return False
        transport.write(self.frames.frame(fragment))
        self.stats.fragments_sent += 1
        self.stats.bytes_sent += len(fragment)
        return True


async def _until_client_closes(ws: web.WebSocketResponse) -> None:
    async for _ in ws:  # the client sends nothing we act on; this notices its close
        pass


async def _send_error(ws: web.WebSocketResponse, error: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json({"type": "error", "error": error})


async def live_socket(request: web.Request) -> web.StreamResponse:
    """``GET /api/live/{camera_id}`` (login required), served by the app's :class:`LiveSockets`."""
    return await request.app[state.LIVE_SOCKETS].handle(request)


def add_routes(app: web.Application) -> None:
    """Register ``/api/live/{camera_id}``."""
    app.router.add_get("/api/live/{camera_id}", live_socket)
