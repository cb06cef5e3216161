"""The wall role: the wall server's application (``wall.app``) and its listening site.

``citywall up`` serves the live video of its own cameras and keeps sessions and rate limits in the process;
``citywall wall`` (``shared=True``) proxies live video to whichever worker holds a camera and keeps sessions and
rate limits in Redis, so any number of wall servers behave as one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from admin.running import RunningConfig
from broker.bus import Bus
from cases.store import CaseStore
from config import Settings
from guidance.runtime import GuidanceRuntime
from wall.app import create_app
from wall.exposure import start_site
from wall.limits import RedisLimiter
from wall.sessions import RedisSessions


def build_wall(settings: Settings, bus: Bus, store: CaseStore, *, live: Any, recordings: Any,
               metrics: Iterable[Callable[[], Any]], guidance: GuidanceRuntime | None = None,
               running: RunningConfig | None = None, shared: bool = False) -> web.Application:
    """The wall server over ``bus`` and ``store``: ``live`` (a ``LiveHub`` or ``RemoteLiveHub``), ``recordings``
    (a ``RecordingLibrary`` or None: the recording routes answer 503), ``metrics`` (the providers of ``/metrics``),
    ``running`` (admin changes applied to this process; None: the app keeps its own)."""
    shared_state: dict[str, Any] = {}
    if shared:
        shared_state = {"sessions": RedisSessions(bus.redis, bus.prefix, settings.wall.session_ttl_s,
                                                  max_per_user=settings.wall.login.sessions_per_user),
                        "limiter": RedisLimiter(bus.redis, bus.prefix)}
    return create_app(settings, bus=bus, cases=store, live=live, evidence_dir=settings.storage.evidence_dir,
                      metric_providers=list(metrics), guidance=guidance, running=running, recordings=recordings,
                      **shared_state)


async def serve_wall(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen on ``host``:``port`` (0: a free port; TLS when configured); returns the runner (clean it up to stop)
    and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await start_site(runner, app, host, port)
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1] if runner.addresses else port
