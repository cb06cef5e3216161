"""Process roles for more than one machine: ``citywall worker``, ``citywall wall``, ``citywall cases`` and
``citywall bridge``.

``citywall up`` runs every role in one process; these run them apart, sharing one Redis (and one case database).
Both build each role with :mod:`citywall.builders`; what is here is only what running apart adds (leases, the
``Singleton`` pools, the internal live-video and ops servers):

- **worker** — cameras. It joins the cluster (refused if its configuration differs, ``config.fingerprint``),
  leases its fair share of the enabled cameras (``broker.leases``) and runs the cameras it holds as ``citywall up``
  runs all of them (:class:`citywall.builders.worker.WorkerRole`: connections, keyframe sampling, clips, recording,
  one detection loop batching every camera held, status publishing). It serves the live video
  of its cameras to wall servers on an internal address (``/internal/live/{camera}``, cluster token required),
  advertised with its heartbeat. A worker that dies loses its cameras to the others within ``cluster.lease_ttl_s``
  plus a round; a new worker takes a fair share.
- **wall** — the wall server. Live video comes from whichever worker holds the camera (``wall.remote_live``), so a
  camera keeps exactly one connection however many wall servers and browsers watch it.
- **cases** — the case worker (consumer group ``cases`` on ``alarms``; filing is idempotent by alarm id), and the
  webhook sender in exactly one of the ``cases`` processes at a time (:class:`Singleton`).
- **bridge** — the MQTT bridge (bus → MQTT topics). Run two for availability: one forwards at a time
  (:class:`Singleton`) and the other takes over when it dies.

The roles need configured brokers: the private redis-server/mosquitto of ``citywall up`` belong to one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from admin.changes import ConfigChange
from admin.running import RunningConfig, load_running
from broker.bus import Bus
from broker.leases import LeaseChange, LeaseKeeper
from cases.store import CaseStore
from citywall.builders import Loop, Loops
from citywall.builders.bridge import bridge_loop
from citywall.builders.cases import CasesRole
from citywall.builders.wall import build_wall, serve_wall
from citywall.builders.worker import WorkerRole
from citywall.metrics import bus_metrics, case_store_metrics, lease_metrics
from citywall.supervise import supervise
from citywall.up import private_data_dir
from config import ConfigError, Settings, redact_url
from config.fingerprint import fingerprint
from messages import CODECS
from recording.service import RecordingService, build_library, recording_wanted
from wall.exposure import check_exposure
from wall.live_ws import LiveSockets
from wall.metrics import ScrapeStats, scrape
from wall.remote_live import RemoteLiveHub, token_ok
from wall.screens_api import SCREENS

log = logging.getLogger("citywall.roles")


def require_cluster(settings: Settings, role: str, source: str = "<config>") -> str:
    """The separate roles need shared brokers and a cluster token; ConfigError naming each missing key. Returns the
    shared Redis URL (``brokers.redis_url``)."""
    problems = []
    redis_url = settings.brokers.redis_url
    if not redis_url:
        problems.append(("brokers.redis_url", f"required by `citywall {role}` (only `citywall up` starts a private "
                                              "redis-server)"))
    if role in ("worker", "wall") and not settings.cluster.token:
        problems.append(("cluster.token", f"required by `citywall {role}`: the shared secret between wall servers "
                                          "and workers"))
    demo = [c.id for c in settings.cameras if c.enabled and c.url.startswith("demo://")]
    if demo and role == "worker":
        problems.append(("cameras", f"{', '.join(demo)} use demo:// URLs, which only `citywall up` serves; give "
                                    "workers rtsp:// URLs (for example from `python -m demo serve`)"))
    if settings.guidance.enabled:
        # The closed loop (broadcast, re-check, then file) needs the guidance loop, TTS and the clip routes in one
        # place; as separate roles only `citywall up` has them so far, and a case worker would wait forever.
        problems.append(("guidance.enabled", f"voice guidance runs only under `citywall up` for now; set it false "
                                             f"to run `citywall {role}`"))
    if problems or not redis_url:  # (a missing URL is among the problems)
        raise ConfigError(source, problems)
    return redis_url


class CameraWorker:
    """The worker role under leases (:class:`citywall.builders.worker.WorkerRole`, ``leased``), the internal
    live-video server and the cluster's recorded configuration."""

    def __init__(self, settings: Settings, bus: Bus, *, name: str, store: CaseStore | None = None) -> None:
        self.bus = bus
        self.name = name
        # Recording (录像回放) of the cameras held is indexed in the shared case store (None: no store, or all off).
        self.role = WorkerRole(settings, bus, name=name, store=store, leased=True)
        self.keeper: LeaseKeeper | None = None
        self._sockets = LiveSockets()

    @property
    def settings(self) -> Settings:
        return self.role.settings

    @property
    def cameras(self) -> list[str]:
        """The cameras this worker runs now."""
        return self.role.ingest.camera_ids

    @property
    def recording(self) -> RecordingService | None:
        return self.role.recording

    def internal_app(self) -> web.Application:
        """``/internal/live/{camera_id}`` for wall servers (cluster token), ``/metrics`` and ``/health`` (200 once
        the worker has joined and done a lease round, 503 before)."""
        ingest = self.role.ingest

        async def live(request: web.Request) -> web.StreamResponse:
            if not token_ok(request.headers.get("Authorization"), self.settings.cluster.token):
                return web.json_response({"error": "cluster token required"}, status=401)
            return await self._sockets.serve(request, ingest.live, None)

        scrapes = ScrapeStats()

        async def metrics(_request: web.Request) -> web.Response:
            providers = [bus_metrics(self.bus), *self.role.metrics()] + (
                [lease_metrics(self.keeper)] if self.keeper else [])
            return scrape([], providers, scrapes)

        async def health(_request: web.Request) -> web.Response:
            keeper = self.keeper
            cameras = self.cameras
            ready = keeper is not None and keeper.stats.rounds > 0 and keeper.stats.fenced == 0 or bool(cameras)
            body = {"worker": self.name, "ready": ready, "cameras": sorted(cameras),
                    "statuses": {cid: ingest.status(cid).state for cid in cameras},
                    "leases": vars(keeper.stats) if keeper else None}
            return web.json_response(body, status=200 if ready else 503)

        app = web.Application()
        app.router.add_get("/internal/live/{camera_id}", live)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        app.on_shutdown.append(lambda _app: self._sockets.shutdown())
        return app

    async def run(self, stop: asyncio.Event, *, ready: Callable[[str], Awaitable[None] | None] | None = None) -> None:
        cluster = self.settings.cluster
        runner = web.AppRunner(self.internal_app(), access_log=None)
        await runner.setup()
        loops = Loops(stop)
        try:
            await self.role.start()
            site = web.TCPSite(runner, cluster.live_host, 0)
            await site.start()
            port = runner.addresses[0][1]
            live_url = f"http://{cluster.live_host}:{port}"
            cameras = [c.id for c in self.settings.cameras if c.enabled]
            self.keeper = LeaseKeeper(self.bus.redis, prefix=self.bus.prefix, worker=self.name, items=cameras,
                                      ttl_s=cluster.lease_ttl_s, interval_s=cluster.lease_interval_s,
                                      info={"live_url": live_url, "role": "worker"})
            await self.keeper.check_config(fingerprint(self.settings))
            log.info("worker %s joined; live video at %s", self.name, live_url)
            if ready is not None:
                maybe = ready(live_url)
                if maybe is not None:
                    await maybe
            running = RunningConfig(self.settings, bus=self.bus)  # admin changes from any wall server reach here
            self.role.attach(running)
            running.add_applier(self._adopt)
            loops.start_all(self.role.relays(), cancel=True)
            loops.start("config-follow", running.follow, cancel=True)
            loops.start_all(self.role.loops())
            try:
                await self.keeper.run(stop, self._on_change)
            finally:
                await loops.close()
        finally:
            await self.role.stop()
            await runner.cleanup()

    async def _adopt(self, old: Settings, new: Settings, change: ConfigChange) -> None:
        """A running-configuration change (admin pages, announced on the bus): the leases follow the enabled
        cameras and the cluster's recorded configuration becomes the new one (so a worker started later with it
        may join); the held cameras follow through the role (new cameras are leased in the next rounds)."""
        if self.keeper is not None:
            self.keeper.items = sorted(c.id for c in new.cameras if c.enabled)
            await self.keeper.record_config(fingerprint(new))

    async def _on_change(self, change: LeaseChange) -> None:
        if change.released:
            log.info("releasing %s", ", ".join(sorted(change.released)))
            await self.role.release(sorted(change.released))
        for cid in sorted(change.acquired):
            await self.role.hold(cid)
        if change.acquired:
            log.info("now holding %d cameras (+%s)", len(self.cameras), ", ".join(sorted(change.acquired)))


def default_name(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


async def _with_signals(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


async def run_worker(settings: Settings, *, name: str) -> None:
    settings = load_running(settings)  # admin changes adopted earlier (persisted in data_dir) survive a restart
    redis_url = require_cluster(settings, "worker")
    private_data_dir(settings.storage.data_dir, settings.storage.evidence_dir)
    bus = await Bus.connect(redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)
    # The case store holds the recording index: opened only when this worker records.
    store = (await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
             if recording_wanted(settings) else None)
    try:
        worker = CameraWorker(settings, bus, name=name, store=store)

        def announce(live_url: str) -> None:
            print(f"citywall worker {name}: joined {redact_url(redis_url)}; live video at "
                  f"{live_url}", flush=True)

        await _with_signals(lambda stop: worker.run(stop, ready=announce))
    finally:
        if store is not None:
            store.close()
        await bus.close()


async def run_wall(settings: Settings, *, host: str, port: int) -> None:
    settings = load_running(settings)
    redis_url = require_cluster(settings, "wall")
    check_exposure(settings, host)
    bus = await Bus.connect(redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)
    store = await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
    live = RemoteLiveHub(bus.redis, bus.prefix, [c.id for c in settings.cameras if c.enabled],
                         settings.cluster.token)
    app = build_wall(settings, bus, store, live=live,
                     recordings=build_library(settings, store),  # the workers' recordings, on a shared disk
                     metrics=[bus_metrics(bus), case_store_metrics(store)], shared=True)
    # Every wall server follows the screens; the one holding the "wall" lease also drives tours and pop-ups.
    screens = app[SCREENS]
    screens.leading = False
    cluster = settings.cluster
    leader = LeaseKeeper(bus.redis, prefix=bus.prefix, worker=default_name("wall"), items=["screens"], pool="wall",
                         ttl_s=cluster.lease_ttl_s, interval_s=cluster.lease_interval_s, info={"role": "wall"})

    async def lead(change: LeaseChange) -> None:
        screens.leading = "screens" in leader.held
        log.info("wall server %s the screens", "now drives" if screens.leading else "follows")

    runner: web.AppRunner | None = None
    try:
        runner, bound = await serve_wall(app, host, port)
        print(f"citywall wall: http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{bound}/wall", flush=True)
        await _with_signals(lambda stop: leader.run(stop, lead))
    finally:
        if runner is not None:
            await runner.cleanup()
        await live.close()
        store.close()
        await bus.close()


class Singleton:
    """Runs one task in exactly one process of a pool: whoever holds the pool's single lease runs it; the others
    stand by and take over within the lease TTL when it dies (the MQTT bridge, the webhook sender, the deadline
    watch)."""

    def __init__(self, bus: Bus, settings: Settings, *, pool: str, name: str,
                 make: Loop) -> None:
        cluster = settings.cluster
        self.pool = pool
        self.name = name
        self.keeper = LeaseKeeper(bus.redis, prefix=bus.prefix, worker=name, items=[pool], pool=pool,
                                  ttl_s=cluster.lease_ttl_s, interval_s=cluster.lease_interval_s, info={"role": pool})
        self._make = make
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def _on_change(self, change: LeaseChange) -> None:
        if self.pool in change.released:
            await self._halt()
            log.info("%s %s: standing by", self.pool, self.name)
        if self.pool in change.acquired:
            stop = self._stop = asyncio.Event()
            self._task = asyncio.create_task(supervise(self.pool, lambda: self._make(stop), stop))
            log.info("%s %s: active", self.pool, self.name)

    async def _halt(self) -> None:
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = self._stop = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.keeper.run(stop, self._on_change)
        finally:
            await self._halt()


@contextlib.asynccontextmanager
async def ops_server(host: str, providers: list[Callable[[], Any]],
                     health: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]) -> AsyncIterator[str]:
    """``/health`` (200 ready / 503 not, with details) and ``/metrics`` of a role with no other HTTP server, on
    ``host`` and a free port; yields its base URL."""

    async def health_route(_request: web.Request) -> web.Response:
        ready, body = await health()
        return web.json_response({"ready": ready, **body}, status=200 if ready else 503)

    scrapes = ScrapeStats()

    async def metrics_route(_request: web.Request) -> web.Response:
        return scrape([], providers, scrapes)

    app = web.Application()
    app.router.add_get("/health", health_route)
    app.router.add_get("/metrics", metrics_route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _bus_health(bus: Bus) -> tuple[bool, dict[str, Any]]:
    try:
        await bus.ping()
        return True, {"bus": "ok"}
    except Exception as exc:  # BusUnavailable: the message is already redacted
        return False, {"bus": str(exc)[:200]}


async def run_bridge(settings: Settings, *, name: str) -> None:
    redis_url = require_cluster(settings, "bridge")
    if not settings.brokers.mqtt_url:
        raise ConfigError("<config>", [("brokers.mqtt_url", "required by `citywall bridge`")])
    bus = await Bus.connect(redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)

    single = Singleton(bus, settings, pool="bridge", name=name,
                       make=bridge_loop(settings, bus, settings.brokers.mqtt_url))

    async def health() -> tuple[bool, dict[str, Any]]:
        ok, body = await _bus_health(bus)
        return ok, {**body, "active": "bridge" in single.keeper.held}

    try:
        async with ops_server(settings.cluster.live_host, [bus_metrics(bus), lease_metrics(single.keeper)],
                              health) as ops:
            print(f"citywall bridge {name}: {redact_url(redis_url)} → "
                  f"{redact_url(settings.brokers.mqtt_url)}; health at {ops}/health", flush=True)
            await _with_signals(single.run)
    finally:
        await bus.close()


async def run_cases(settings: Settings, *, name: str) -> None:
    """The case worker; every ``cases`` process consumes alarms (consumer group), and one of them at a time also
    delivers the webhooks and runs the deadline watch (``Singleton``s), so a target never gets the same event from
    two senders and a case raises each deadline alarm once. Cameras changed from the admin pages (announced on the
    bus) reach its filer, so a new camera's cases carry its address and grid."""
    settings = load_running(settings)
    redis_url = require_cluster(settings, "cases")
    bus = await Bus.connect(redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)
    store = await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
    try:
        cases = CasesRole(settings, bus, store, consumer=name)
        webhooks = Singleton(bus, settings, pool="webhooks", name=name, make=cases.send_webhooks)
        deadlines = Singleton(bus, settings, pool="deadlines", name=name, make=cases.watch_deadlines)

        async def health() -> tuple[bool, dict[str, Any]]:
            ok, body = await _bus_health(bus)
            try:
                await asyncio.to_thread(store.counts, time.time())
                body["cases"] = "ok"
            except Exception as exc:  # StoreError: credentials already redacted
                ok, body["cases"] = False, str(exc)[:200]
            return ok, body

        running = RunningConfig(settings, bus=bus)
        running.add_applier(cases.adopt)  # a new camera's cases get its address and grid

        async def main(stop: asyncio.Event) -> None:
            await asyncio.gather(supervise("cases", lambda: cases.consume(stop), stop), webhooks.run(stop),
                                 deadlines.run(stop), supervise("config-follow", lambda: running.follow(stop), stop))

        async with ops_server(settings.cluster.live_host, [*cases.metrics(), bus_metrics(bus)], health) as ops:
            print(f"citywall cases {name}: consuming alarms from {redact_url(redis_url)}; "
                  f"health at {ops}/health", flush=True)
            await _with_signals(main)
    finally:
        store.close()
        await bus.close()

