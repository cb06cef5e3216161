"""Live video from another process: a wall server that holds no camera connections proxies to the worker that does.

A camera's RTSP connection lives in exactly one worker (the holder of its lease, ``broker.leases``); that worker
publishes its internal live-video address with its heartbeat. :class:`RemoteLiveHub` has the shape of
``wall.live_protocol.LiveHub``: ``open`` looks the holder up in Redis, opens the worker's internal live socket
(``/internal/live/{camera}``, authenticated by the cluster token) and hands the browser's socket a
:class:`RemoteViewer` that relays init segment and fragments — bytes are passed through, never parsed. A second
browser on the same wall server opens a second peer socket, but the camera still has one connection.

Bounded: each viewer buffers at most ``queue_size`` fragments; if the browser side falls that far behind, the
viewer ends (the tile reconnects at the live edge) rather than skipping fragments inside a GOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Iterable

import aiohttp

from broker.leases import holder_info

log = logging.getLogger("citywall.wall.remote_live")

TOKEN_HEADER = "Authorization"
OPEN_TIMEOUT_S = 10.0
MAX_FRAGMENT = 16 * 1024 * 1024


class RemoteUnavailable(RuntimeError):
    """No worker holds the camera, or its worker cannot be reached (the browser sees "camera offline")."""


def bearer(token: str) -> dict[str, str]:
    return {TOKEN_HEADER: f"Bearer {token}"}


def token_ok(header: str | None, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer`` header against the cluster token (never empty)."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())


class RemoteViewer:
    """One browser's view of a camera held by another process."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, mime: str, init_segment: bytes, queue_size: int,
                 transcoded_from: str | None = None) -> None:
        self.mime = mime
        self.init_segment = init_segment
        self.transcoded_from = transcoded_from
        self.dropped = 0
        self._ws = ws
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=queue_size)
        self._reader = asyncio.create_task(self._read(), name="remote-live-reader")

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    try:
                        self._queue.put_nowait(msg.data)
                    except asyncio.QueueFull:
                        self.dropped += 1
                        self._end(RemoteUnavailable("viewer fell behind; reconnect at the live edge"))
                        return
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._end(RemoteUnavailable(f"worker says: {msg.data[:200]}"))
                    return
            self._end(RemoteUnavailable("worker closed the live stream"))
        except (aiohttp.ClientError, ConnectionError) as exc:
            self._end(RemoteUnavailable(f"worker connection lost: {exc}"))

    def _end(self, exc: BaseException) -> None:
        while True:  # make room so the end marker always fits
            try:
                self._queue.put_nowait(exc)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()

    async def next_fragment(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # every later call raises too
            raise item
        return item

    def close(self) -> None:
        self._reader.cancel()
        if not self._ws.closed:
            asyncio.get_running_loop().create_task(self._ws.close())


class RemoteLiveHub:
    """``LiveHub`` over the cluster: ``camera_ids`` are the configured cameras; ``redis`` and ``prefix`` find
    holders."""

    def __init__(self, redis, prefix: str, camera_ids: Iterable[str], token: str) -> None:
        if not token:
            raise ValueError("cluster.token is required to reach the workers' live video")
        self._redis = redis
        self._prefix = prefix
        self._cameras = frozenset(camera_ids)
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    def has_camera(self, camera_id: str) -> bool:
        return camera_id in self._cameras

    def set_cameras(self, camera_ids: Iterable[str]) -> None:
        """The running configuration changed the cameras (``admin.running``)."""
        self._cameras = frozenset(camera_ids)

    async def open(self, camera_id: str, *, queue_size: int = 256) -> RemoteViewer:
        if camera_id not in self._cameras:
            raise KeyError(camera_id)
        found = await holder_info(self._redis, self._prefix, camera_id)
        if found is None or not found[1].get("live_url"):
            raise RemoteUnavailable(f"no live worker holds {camera_id}")
        holder, info = found
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=OPEN_TIMEOUT_S))
        url = f"{info['live_url']}/internal/live/{camera_id}"
        try:
            ws = await self._session.ws_connect(url, headers=bearer(self._token), heartbeat=30.0,
                                                max_msg_size=MAX_FRAGMENT)
        except (aiohttp.ClientError, OSError) as exc:
            raise RemoteUnavailable(f"worker {holder} unreachable: {exc}") from None
        try:
            first = await ws.receive(timeout=OPEN_TIMEOUT_S)
            if first.type != aiohttp.WSMsgType.TEXT:
                raise RemoteUnavailable(f"worker {holder} sent {first.type.name} instead of the init message")
            head = first.json()
            if head.get("type") != "init":
                raise RemoteUnavailable(f"worker {holder}: {head.get('error', head)}")
            init = await ws.receive(timeout=OPEN_TIMEOUT_S)
            if init.type != aiohttp.WSMsgType.BINARY:
                raise RemoteUnavailable(f"worker {holder} sent no init segment")
        except (TimeoutError, aiohttp.ClientError, ValueError, RemoteUnavailable) as exc:
            await ws.close()
            if isinstance(exc, RemoteUnavailable):
                raise
            raise RemoteUnavailable(f"worker {holder}: {exc!r}") from None
        transcoded = head.get("transcoded")
        return RemoteViewer(ws, head["mime"], init.data, queue_size,
                            transcoded if isinstance(transcoded, str) else None)

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
