"""The wall server's aiohttp application: state, middlewares, routes, background tasks and shutdown.

``create_app`` only builds the application; the caller runs it (``web.AppRunner`` + ``web.TCPSite``). The event
hub's bus tail starts in ``cleanup_ctx`` (before the server accepts connections) and stops after it; open
WebSockets are closed in ``on_shutdown`` so a stopping server never waits on a browser.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from admin import api as admin_api
from admin.running import RunningConfig
from config import Settings
from maps import api as maps_api
from wall import (
    api,
    audit,
    broadcast_api,
    case_api,
    evidence,
    hub,
    labels_api,
    live_ws,
    metrics,
    models_api,
    openapi,
    pages,
    recordings_api,
    screens_api,
    state,
    system_alarms,
)
from wall.access import make_access_middleware
from wall.auth import TRUSTED_PROXIES, Authenticator, Session, SessionStore, make_auth_middleware
from wall.connections import GUARD, ConnectionGuard, make_body_middleware, make_connection_middleware
from wall.errors import MAX_REQUEST_BODY, error_middleware
from wall.exposure import make_host_middleware
from wall.hub import EventHub
from wall.limits import Limiter, LocalLimiter
from wall.live_ws import LiveSockets
from wall.sessions import LocalSessions, Sessions
from wall.socket_quota import SOCKET_QUOTA, SocketQuota

log = logging.getLogger("citywall.wall")

if TYPE_CHECKING:
    from broker.bus import Bus
    from cases.store import CaseStore
    from guidance.runtime import GuidanceRuntime
    from wall.live_protocol import LiveHub
    from wall.metrics import Provider

def create_app(
    settings: Settings,
    *,
    bus: Bus,
    cases: CaseStore,
    live: LiveHub | None,
    evidence_dir: Path,
    clock: Callable[[], float] = time.time,
    metric_providers: Iterable[Provider] = (),
    sessions: Sessions | None = None,
    limiter: Limiter | None = None,
    guidance: GuidanceRuntime | None = None,
    recordings: object | None = None,
    running: RunningConfig | None = None,
) -> web.Application:
    """Build the wall server for ``settings``; ``live=None`` serves everything except live video.

    ``metric_providers`` add other rooms' figures to ``/metrics`` (see ``wall.metrics``); ``sessions`` defaults to
    this server's memory (``wall.sessions.RedisSessions`` shares them between wall servers), ``limiter`` the login
    limits likewise (``wall.limits.RedisLimiter`` for several wall servers); ``recordings`` the recording library
    (``recording.playback.RecordingLibrary``) the playback routes serve (None: they answer 503).
    ``running`` the running configuration (``admin.running``; by default one of this server's own, following
    changes announced on the bus)."""
    login = settings.wall.login
    if sessions is None:
        sessions = LocalSessions(SessionStore(settings.wall.session_ttl_s, max_per_user=login.sessions_per_user))
    wall = settings.wall
    guard = ConnectionGuard(max_connections=wall.max_connections, max_per_address=wall.max_connections_per_address,
                            header_timeout_s=wall.header_timeout_s, idle_timeout_s=wall.idle_timeout_s)
    app = web.Application(
        middlewares=[make_connection_middleware(guard), error_middleware, make_host_middleware(wall.allowed_hosts),
                     make_body_middleware(wall.body_timeout_s),
                     make_auth_middleware(sessions, clock), make_access_middleware(audit.record_request),
                     api.bus_unavailable_middleware],
        client_max_size=MAX_REQUEST_BODY,
    )
    app[state.SETTINGS] = settings
    app[GUARD] = guard
    app[state.BUS] = bus
    app[state.CASES] = cases
    app[state.LIVE] = live
    app[state.EVIDENCE_DIR] = Path(evidence_dir)
    app[state.CLOCK] = clock
    app[state.SESSIONS] = sessions
    app[state.LOGIN_LIMITER] = limiter if limiter is not None else LocalLimiter()
    app[state.AUTHENTICATOR] = Authenticator(settings.users, workers=login.password_workers, queue=login.password_queue)
    app[TRUSTED_PROXIES] = tuple(ipaddress.ip_network(p, strict=False) for p in settings.wall.trusted_proxies)
    app[state.HUB] = EventHub(bus, queue_size=settings.wall.client_queue, clock=clock,
                              audit=lambda entry: audit.record(app, entry))
    app[state.LIVE_SOCKETS] = LiveSockets()
    app[SOCKET_QUOTA] = SocketQuota(per_user=wall.live_sockets_per_user, total=wall.live_sockets_total)
    app[state.STARTED_AT] = time.time()
    app[state.METRICS] = list(metric_providers)
    app[state.GUIDANCE] = guidance

    api.add_routes(app)
    audit.add_routes(app)
    case_api.add_routes(app)
    labels_api.add_routes(app)  # reviewers' labels for the learning loop (learning/)
    models_api.add_routes(app)  # site models: cards, shadow, promotion, 回退 (learning/)
    openapi.add_routes(app)
    hub.add_routes(app)
    live_ws.add_routes(app)
    evidence.add_routes(app)
    metrics.add_routes(app)
    broadcast_api.add_routes(app)
    pages.add_routes(app)
    recordings_api.add_routes(app, recordings)
    system_alarms.add_routes(app)  # faults of citywall itself (the recorder cannot write), raised and not cleared
    screens_api.add_routes(app)  # wall screens: REST, pages, and the screen service's background tasks
    admin_api.add_routes(app, running or RunningConfig(settings, bus=bus))  # cameras, users, live config changes
    maps_api.add_routes(app)  # the situation map's basemap and offline tiles

    async def session_alive(session: Session) -> bool:
        try:
            return await sessions.get(session.token, clock()) is not None
        except Exception:  # the session store (Redis) is down: keep the socket, the sweep tries again
            return True

    app[state.HUB].session_alive = session_alive
    app[SESSION_ALIVE] = session_alive
    app.cleanup_ctx.append(_event_hub)
    app.cleanup_ctx.append(_session_sweep)
    app.on_shutdown.append(_close_sockets)
    return app


async def _event_hub(app: web.Application) -> AsyncIterator[None]:
    event_hub = app[state.HUB]
    await event_hub.start()
    yield
    await event_hub.stop()


SESSION_SWEEP_S = 5.0
"""How often every open socket's session is checked (expired or revoked → the socket closes with 4401)."""
SESSION_ALIVE: web.AppKey[Callable[[Session], Awaitable[bool]]] = web.AppKey("session_alive")


async def sweep_sessions(app: web.Application) -> int:
    """Close every socket whose session has expired or was revoked (elsewhere, too: Redis sessions); how many."""
    alive = app[SESSION_ALIVE]
    ended = 0
    for session, end in app[state.HUB].sessions() + app[state.LIVE_SOCKETS].sessions():
        if not await alive(session):
            end(4401, "session ended")
            ended += 1
    return ended


async def _session_sweep(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await asyncio.sleep(SESSION_SWEEP_S)
            try:
                await sweep_sessions(app)
            except Exception:
                log.exception("session sweep failed")

    task = asyncio.create_task(loop(), name="session-sweep")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _close_sockets(app: web.Application) -> None:
    await app[state.HUB].shutdown()
    await app[state.LIVE_SOCKETS].shutdown()
    app[state.AUTHENTICATOR].close()
