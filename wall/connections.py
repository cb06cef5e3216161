"""Connection limits of the wall server: how many sockets, from whom, and for how long (issue 22).

aiohttp alone keeps a half-sent request or an idle socket open for minutes and accepts until the process runs out
of file descriptors (then cameras cannot reconnect and every accept logs "Too many open files"). The guard sits
between the listening socket and aiohttp's protocol:

- at most ``max_connections`` open connections, ``max_connections_per_address`` from one address, and never more
  than the descriptors left after a reserve for cameras, brokers and files (``RLIMIT_NOFILE``); a connection past a
  cap gets a one-line ``503`` JSON answer and is closed at once, without reaching aiohttp;
- a request's head must arrive within ``header_timeout_s`` of its first byte, an idle keep-alive connection is
  closed after ``idle_timeout_s`` (the access middleware marks when a request is being handled, so a long WebSocket
  or download is never cut); a body must arrive within ``body_timeout_s`` (:func:`read_body`).

:class:`ConnectionGuard` keeps the counts and one sweep task; :class:`GuardedSite` is the ``web.TCPSite``
replacement the composition root uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("citywall.wall.connections")

FD_RESERVE = 256
"""Descriptors kept free for cameras, broker connections, the case store and files."""
SWEEP_S = 0.5


def fd_budget(reserve: int = FD_RESERVE) -> int:
    """Connections this process can take without starving its other sockets and files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - reserve)


@dataclass
class _Conn:
    address: str
    opened_at: float
    idle_since: float
    first_byte_at: float | None = None
    """When the first byte of a request not yet handed to the app arrived."""
    busy: int = 0
    """Requests (or WebSockets) of this connection in the app's hands."""


class ConnectionGuard:
    """Counts and times the server's connections; one per server (``create_app`` puts it in the app)."""

    def __init__(self, *, max_connections: int, max_per_address: int, header_timeout_s: float,
                 idle_timeout_s: float, clock: Callable[[], float] | None = None) -> None:
        self.max_connections = min(max_connections, fd_budget())
        self.max_per_address = max_per_address
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._conns: dict[asyncio.Transport, _Conn] = {}
        self._per_address: Counter[str] = Counter()
        self._sweeper: asyncio.Task[None] | None = None
        self.refused = 0
        self.timed_out = 0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def stats(self) -> dict[str, int]:
        return {"open": len(self._conns), "max": self.max_connections, "refused": self.refused,
                "timed_out": self.timed_out}

    # ----------------------------------------------------------------------------------------- protocol side
    def admit(self, transport: asyncio.Transport) -> str | None:
        """Register a new connection; the reason when it must be refused instead."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if len(self._conns) >= self.max_connections:
            return f"too many connections ({self.max_connections}); try again later"
        if self._per_address[address] >= self.max_per_address:
            return f"too many connections from {address} ({self.max_per_address}); try again later"
        now = self._now()
        self._conns[transport] = _Conn(address, now, now)
        self._per_address[address] += 1
        self._ensure_sweeper()
        return None

    def data(self, transport: asyncio.Transport) -> None:
        conn = self._conns.get(transport)
        if conn is not None and conn.busy == 0 and conn.first_byte_at is None:
            conn.first_byte_at = self._now()

    def closed(self, transport: asyncio.Transport) -> None:
        conn = self._conns.pop(transport, None)
        if conn is not None:
            self._per_address[conn.address] -= 1
            if self._per_address[conn.address] <= 0:
                del self._per_address[conn.address]

    # ----------------------------------------------------------------------------------------- app side
    @contextlib.contextmanager
    def handling(self, transport: asyncio.Transport | None) -> Any:
        """Around one request in the app: its head has arrived; the connection is busy until the handler ends."""
        conn = self._conns.get(transport) if transport is not None else None
        if conn is None:
            yield
            return
        conn.busy += 1
        conn.first_byte_at = None
        try:
            yield
        finally:
            conn.busy -= 1
            if conn.busy == 0:
                conn.idle_since = self._now()

    # ----------------------------------------------------------------------------------------- sweep
    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="connection-sweep")

    async def _sweep_forever(self) -> None:
        while self._conns:
            await asyncio.sleep(SWEEP_S)
            self.sweep(self._now())

    def sweep(self, now: float) -> int:
        """Close connections whose head is late or that sat idle too long; returns how many."""
        late = []
        for transport, conn in self._conns.items():
            if conn.busy:
                continue
            if conn.first_byte_at is not None:
                expired = now - conn.first_byte_at > self.header_timeout_s
            else:
                expired = now - conn.idle_since > self.idle_timeout_s
            if expired:
                late.append(transport)
        for transport in late:
            self.timed_out += 1
            transport.abort()
        return len(late)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)


_REFUSAL = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n" \
           "Connection: close\r\nContent-Length: {length}\r\n\r\n"


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol behind the guard: refused connections never reach it; the rest are forwarded."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream server's (TCP or TLS)
        reason = self._guard.admit(transport)
        if reason is not None:
            self._guard.refused += 1
            body = json.dumps({"error": reason}).encode()
            transport.write(_REFUSAL.format(length=len(body)).encode() + body)
            transport.close()
            return
        self._transport = transport
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            assert self._transport is not None
            self._guard.data(self._transport)
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            assert self._transport is not None
            self._guard.closed(self._transport)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with the app's :class:`ConnectionGuard` in front of aiohttp (and TLS when given)."""

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._guard = guard
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _GuardedProtocol(self._guard, server), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=True)

    async def stop(self) -> None:
        await super().stop()
        await self._guard.close()


def tls_context(cert: Any, key: Any) -> ssl.SSLContext:
    """Server TLS context from ``wall.tls_cert`` / ``wall.tls_key`` (TLS 1.2 or newer)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def read_body(request: web.Request, timeout_s: float) -> None:
    """Read (and cache) the request body within ``timeout_s``; 408 JSON when it does not arrive in time."""
    try:
        await asyncio.wait_for(request.read(), timeout_s)
    except TimeoutError:
        raise web.HTTPRequestTimeout(text=json.dumps({"error": f"request body not received within {timeout_s:g} s"}),
                                     content_type="application/json") from None


GUARD: web.AppKey[ConnectionGuard] = web.AppKey("connection_guard", ConnectionGuard)
STREAMED_BODIES = frozenset({("POST", "/api/clips"), ("POST", "/api/cases/{id}/photos")})
"""Routes (method, pattern) that stream their own (larger) body, with their own limits and timeout."""


def make_connection_middleware(guard: ConnectionGuard) -> Any:
    """Outermost middleware: the connection is busy (not idle, not late) while the app handles its request."""

    @web.middleware
    async def connection_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        with guard.handling(request.transport):
            return await handler(request)

    return connection_middleware


def make_body_middleware(body_timeout_s: float) -> Any:
    """Reads every request body once, within ``body_timeout_s`` (a body sent byte by byte cannot hold a handler)."""

    @web.middleware
    async def body_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        pattern = resource.canonical if resource is not None else request.path
        if request.body_exists and (request.method, pattern) not in STREAMED_BODIES:
            await read_body(request, body_timeout_s)
        return await handler(request)

    return body_middleware
