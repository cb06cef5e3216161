"""Process roles for more than one machine: ``citywall worker``, ``citywall wall`` and ``citywall cases``.

``citywall up`` runs every role in one process; these run them apart, sharing one Redis (and one case database):

- **worker** — cameras. It joins the cluster (refused if its configuration differs, ``config.fingerprint``),
  leases its fair share of the enabled cameras (``broker.leases``) and, for each camera it holds, runs the
  connection, keyframe sampling, detection and status publishing (:class:`CameraStack`). It serves the live video
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
from broker.mqtt_bridge import MqttBridge
from cases.deadlines import DeadlineAlarmLoop
from cases.store import CaseStore
from cases.webhooks import WebhookSender
from cases.worker import CaseWorker, build_filer
from citywall.metrics import (
    bus_metrics,
    case_store_metrics,
    case_worker_metrics,
    detection_metrics,
    lease_metrics,
    recording_metrics,
)
from citywall.supervise import supervise
from citywall.up import camera_options, follow_rejections, private_data_dir
from config import ConfigError, Settings, redact_url
from config.fingerprint import fingerprint
from detectors.feedback import RejectionFollower, SuppressionList
from detectors.models import load_backends
from detectors.worker import DetectionWorker
from learning import learning_root
from learning.registry import ModelRegistry
from learning.switch import ModelSwitch
from messages import CODECS
from recording.service import build_library, build_recording, recording_wanted
from video_ingest.clip_buffer import ClipRecorder
from video_ingest.service import IngestService
from wall.app import create_app
from wall.exposure import check_exposure, start_site
from wall.limits import RedisLimiter
from wall.live_ws import LiveSockets
from wall.metrics import ScrapeStats, scrape
from wall.remote_live import RemoteLiveHub, token_ok
from wall.screens_api import SCREENS
from wall.sessions import RedisSessions

log = logging.getLogger("citywall.roles")


def require_cluster(settings: Settings, role: str, source: str = "<config>") -> None:
    """The separate roles need shared brokers and a cluster token; ConfigError naming each missing key."""
    problems = []
    if not settings.brokers.redis_url:
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
    if problems:
        raise ConfigError(source, problems)


class CameraStack:
    """One camera held by this worker: its connection, frame sampling, clip buffer and status publishing (its
    analysis is in the worker's one DetectionWorker, batched with the other cameras like ``citywall up``)."""

    def __init__(self, settings: Settings, camera_id: str, bus: Bus, worker: str) -> None:
        camera = settings.camera(camera_id)
        self.camera_id = camera_id
        self.ingest = IngestService({camera_id: camera.substream_url or camera.url}, worker=worker,
                                    options={camera_id: camera_options(settings, camera)},
                                    sample_interval_s=settings.detection.interval_s,  # see up.py
                                    sample_mode=settings.detection.decode,
                                    analysis_sources={camera_id: camera.analysis_url} if camera.analysis_url else None)
        self.clips = ClipRecorder(settings.storage.evidence_dir, [camera_id])
        self.ingest.subscribe_packets(camera_id, self.clips.buffer(camera_id))
        self._bus = bus
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        await self.ingest.start()
        self._tasks = [asyncio.create_task(supervise(f"status-{self.camera_id}", self._publish_statuses, self._stop))]

    async def _publish_statuses(self) -> None:
        async for status in self.ingest.status_updates():
            await self._bus.put_state("cameras", status.camera_id, status.to_dict())
            await self._bus.publish(status)

    async def stop(self) -> None:
        self._stop.set()
        self._tasks[0].cancel()  # the status relay only waits for updates
        _, pending = await asyncio.wait(self._tasks, timeout=5.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ingest.stop()
        self.clips.close()


class WorkerLive:
    """``LiveHub`` over the cameras this worker currently holds."""

    def __init__(self, stacks: dict[str, CameraStack]) -> None:
        self._stacks = stacks

    def has_camera(self, camera_id: str) -> bool:
        return camera_id in self._stacks

    async def open(self, camera_id: str, *, queue_size: int = 256) -> Any:
        stack = self._stacks.get(camera_id)
        if stack is None:
            raise KeyError(camera_id)
        return await stack.ingest.live.open(camera_id, queue_size=queue_size)


class CameraWorker:
    """The worker role: leases, camera stacks, the internal live-video server."""

    def __init__(self, settings: Settings, bus: Bus, *, name: str, store: CaseStore | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.name = name
        # Recording (录像回放) of the cameras held, indexed in the shared case store (None: no store, or all off).
        self.recording = (build_recording(settings, store, [], publish=bus.publish, node=name)
                          if store is not None else None)
        self.stacks: dict[str, CameraStack] = {}
        self.live = WorkerLive(self.stacks)
        self.keeper: LeaseKeeper | None = None
        self._sockets = LiveSockets()
        self.backend = load_backends(settings.detection.models)  # one model shared by this worker's cameras
        self.suppressions = SuppressionList()
        self._rejections = RejectionFollower(self.suppressions, settings.storage.evidence_dir)
        # One detection loop over every camera held, as in `citywall up`: one batched model call per tick.
        self.detection = DetectionWorker([], settings.detection, settings.storage.evidence_dir, self._frame,
                                         timezone=settings.timezone, backend=self.backend, clips=self._clip,
                                         suppressions=self.suppressions)
        # The site model (learning/): promotions reach this worker through the learning folder (shared with the
        # wall servers, e.g. on one host or a network mount), swapped in without a restart.
        self.site_model = ModelSwitch(ModelRegistry(learning_root(settings) / "models"), self.backend,
                                      lambda backend: setattr(self.detection, "backend", backend))
        self.site_model.poll()

    def _frame(self, camera_id: str) -> Any:
        stack = self.stacks.get(camera_id)
        return stack.ingest.latest_frame(camera_id) if stack is not None else None

    def _clip(self, camera_id: str, clip_id: str, at: float) -> str | None:
        if self.recording is not None:
            self.recording.alarm(camera_id, at)  # alarm-mode recording keeps the time around it
        stack = self.stacks.get(camera_id)
        return stack.clips.record(camera_id, clip_id, at) if stack is not None else None

    def internal_app(self) -> web.Application:
        """``/internal/live/{camera_id}`` for wall servers (cluster token), ``/metrics`` and ``/health`` (200 once
        the worker has joined and done a lease round, 503 before)."""
        token = self.settings.cluster.token

        async def live(request: web.Request) -> web.StreamResponse:
            if not token_ok(request.headers.get("Authorization"), token):
                return web.json_response({"error": "cluster token required"}, status=401)
            return await self._sockets.serve(request, self.live, None)

        scrapes = ScrapeStats()

        async def metrics(_request: web.Request) -> web.Response:
            providers = [bus_metrics(self.bus), detection_metrics(self.detection)] + (
                [lease_metrics(self.keeper)] if self.keeper else []) + (
                [recording_metrics(self.recording)] if self.recording is not None else [])
            return scrape([], providers, scrapes)

        async def health(_request: web.Request) -> web.Response:
            keeper = self.keeper
            ready = keeper is not None and keeper.stats.rounds > 0 and keeper.stats.fenced == 0 or bool(self.stacks)
            body = {"worker": self.name, "ready": ready, "cameras": sorted(self.stacks),
                    "statuses": {cid: s.ingest.status(cid).state for cid, s in self.stacks.items()},
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
        if self.recording is not None:  # each camera's index is repaired as it is taken over (take_camera)
            await self.recording.start(lambda _cid, _sink: None, repair=False)
        try:
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
            follow = asyncio.create_task(supervise("rejections", lambda: follow_rejections(self.bus, self._rejections),
                                                   stop))
            running = RunningConfig(self.settings, bus=self.bus)  # admin changes from any wall server reach here
            running.add_applier(self._adopt)
            adopt = asyncio.create_task(supervise("config-follow", lambda: running.follow(stop), stop))
            detect = asyncio.create_task(supervise("detection", lambda: self.detection.run(self.bus.publish, stop),
                                                   stop))
            models = asyncio.create_task(supervise("site-model", lambda: self.site_model.run(stop), stop))
            try:
                await self.keeper.run(stop, self._on_change)
            finally:
                follow.cancel()
                adopt.cancel()
                models.cancel()
                await asyncio.gather(follow, adopt, models, return_exceptions=True)
                if not stop.is_set():  # the keeper failed: the detection loop has no stop of its own
                    detect.cancel()
                await asyncio.gather(detect, return_exceptions=True)
        finally:
            await asyncio.gather(*(s.stop() for s in self.stacks.values()), return_exceptions=True)
            self.stacks.clear()
            if self.recording is not None:
                await self.recording.stop()
            await runner.cleanup()

    async def _adopt(self, old: Settings, new: Settings, change: ConfigChange) -> None:
        """A running-configuration change (admin pages, announced on the bus): the leases follow the enabled
        cameras, the stacks of changed cameras restart with the new settings, removed ones stop at once, and the
        cluster's recorded configuration becomes the new one (so a worker started later with it may join)."""
        self.settings = new
        if self.keeper is not None:
            self.keeper.items = sorted(c.id for c in new.cameras if c.enabled)
            await self.keeper.record_config(fingerprint(new))
        enabled = {c.id for c in new.cameras if c.enabled}
        touched = (set(change.cameras_removed) | set(change.cameras_reconnected)
                   | set(change.cameras_reanalysed)) & set(self.stacks)
        for cid in sorted(touched):
            self.detection.remove_camera(cid)
            if self.recording is not None:
                self.recording.remove_camera(cid)
            await self.stacks.pop(cid).stop()
            if cid in enabled:
                await self._hold(new, cid)
        if touched or change.cameras_added:
            log.info("configuration changed: restarted %s; new cameras are leased in the next rounds",
                     ", ".join(sorted(touched)) or "none")

    async def _hold(self, settings: Settings, cid: str) -> None:
        """Start holding ``cid``: its stack, its analysis and (when on) its recording."""
        stack = CameraStack(settings, cid, self.bus, self.name)
        await stack.start()
        self.stacks[cid] = stack
        self.detection.add_camera(settings.camera(cid))
        if self.recording is not None:
            await self.recording.take_camera(settings, cid, stack.ingest.subscribe_packets)

    async def _on_change(self, change: LeaseChange) -> None:
        for cid in sorted(change.released):
            self.detection.remove_camera(cid)
            if self.recording is not None:
                self.recording.remove_camera(cid)
        gone = [self.stacks.pop(cid) for cid in sorted(change.released) if cid in self.stacks]
        if gone:
            log.info("releasing %s", ", ".join(s.camera_id for s in gone))
            await asyncio.gather(*(s.stop() for s in gone), return_exceptions=True)
        for cid in sorted(change.acquired):
            await self._hold(self.settings, cid)
        if change.acquired:
            log.info("now holding %d cameras (+%s)", len(self.stacks), ", ".join(sorted(change.acquired)))


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
    require_cluster(settings, "worker")
    private_data_dir(settings.storage.data_dir, settings.storage.evidence_dir)
    bus = await Bus.connect(settings.brokers.redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)
    # The case store holds the recording index: opened only when this worker records.
    store = (await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
             if recording_wanted(settings) else None)
    try:
        worker = CameraWorker(settings, bus, name=name, store=store)

        def announce(live_url: str) -> None:
            print(f"citywall worker {name}: joined {redact_url(settings.brokers.redis_url)}; live video at "
                  f"{live_url}", flush=True)

        await _with_signals(lambda stop: worker.run(stop, ready=announce))
    finally:
        if store is not None:
            store.close()
        await bus.close()


async def run_wall(settings: Settings, *, host: str, port: int) -> None:
    settings = load_running(settings)
    require_cluster(settings, "wall")
    check_exposure(settings, host)
    bus = await Bus.connect(settings.brokers.redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)
    store = await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
    live = RemoteLiveHub(bus.redis, bus.prefix, [c.id for c in settings.cameras if c.enabled],
                         settings.cluster.token)
    app = create_app(settings, bus=bus, cases=store, live=live, evidence_dir=settings.storage.evidence_dir,
                     recordings=build_library(settings, store),  # the workers' recordings, on a shared disk
                     metric_providers=[bus_metrics(bus), case_store_metrics(store)],
                     sessions=RedisSessions(bus.redis, bus.prefix, settings.wall.session_ttl_s,
                                            max_per_user=settings.wall.login.sessions_per_user),
                     limiter=RedisLimiter(bus.redis, bus.prefix))
    # Every wall server follows the screens; the one holding the "wall" lease also drives tours and pop-ups.
    screens = app[SCREENS]
    screens.leading = False
    cluster = settings.cluster
    leader = LeaseKeeper(bus.redis, prefix=bus.prefix, worker=default_name("wall"), items=["screens"], pool="wall",
                         ttl_s=cluster.lease_ttl_s, interval_s=cluster.lease_interval_s, info={"role": "wall"})

    async def lead(change: LeaseChange) -> None:
        screens.leading = "screens" in leader.held
        log.info("wall server %s the screens", "now drives" if screens.leading else "follows")

    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        await start_site(runner, app, host, port)
        bound = runner.addresses[0][1]
        print(f"citywall wall: http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{bound}/wall", flush=True)
        await _with_signals(lambda stop: leader.run(stop, lead))
    finally:
        await runner.cleanup()
        await live.close()
        store.close()
        await bus.close()


class Singleton:
    """Runs one task in exactly one process of a pool: whoever holds the pool's single lease runs it; the others
    stand by and take over within the lease TTL when it dies (the MQTT bridge, the webhook sender, the deadline
    watch)."""

    def __init__(self, bus: Bus, settings: Settings, *, pool: str, name: str,
                 make: Callable[[asyncio.Event], Awaitable[None]]) -> None:
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
    require_cluster(settings, "bridge")
    if not settings.brokers.mqtt_url:
        raise ConfigError("<config>", [("brokers.mqtt_url", "required by `citywall bridge`")])
    bus = await Bus.connect(settings.brokers.redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)

    def bridge(stop: asyncio.Event) -> Awaitable[None]:
        return MqttBridge(bus, settings.brokers.mqtt_url, prefix=settings.brokers.topic_prefix).run(stop)

    single = Singleton(bus, settings, pool="bridge", name=name, make=bridge)

    async def health() -> tuple[bool, dict[str, Any]]:
        ok, body = await _bus_health(bus)
        return ok, {**body, "active": "bridge" in single.keeper.held}

    try:
        async with ops_server(settings.cluster.live_host, [bus_metrics(bus), lease_metrics(single.keeper)],
                              health) as ops:
            print(f"citywall bridge {name}: {redact_url(settings.brokers.redis_url)} → "
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
    require_cluster(settings, "cases")
    bus = await Bus.connect(settings.brokers.redis_url, prefix=settings.brokers.topic_prefix, codecs=CODECS,
                            maxlen=settings.brokers.stream_maxlen)
    store = await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
    try:
        worker = CaseWorker(store, build_filer(settings, store), bus, consumer=name, policy=settings.cases.auto_file)
        webhooks = Singleton(bus, settings, pool="webhooks", name=name,
                             make=lambda stop: WebhookSender(store, settings.webhooks).run(stop))
        deadlines = Singleton(bus, settings, pool="deadlines", name=name,
                              make=lambda stop: DeadlineAlarmLoop(
                                  store, bus, settings.cases.deadline_watch, timezone=settings.timezone,
                                  clock=time.time).run(stop))

        async def health() -> tuple[bool, dict[str, Any]]:
            ok, body = await _bus_health(bus)
            try:
                await asyncio.to_thread(store.counts, time.time())
                body["cases"] = "ok"
            except Exception as exc:  # StoreError: credentials already redacted
                ok, body["cases"] = False, str(exc)[:200]
            return ok, body

        running = RunningConfig(settings, bus=bus)

        async def adopt(old: Settings, new: Settings, change: ConfigChange) -> None:
            worker.filer.cameras = {c.id: c for c in new.cameras}  # a new camera's cases get its address and grid

        running.add_applier(adopt)

        async def main(stop: asyncio.Event) -> None:
            await asyncio.gather(supervise("cases", lambda: worker.run(stop), stop), webhooks.run(stop),
                                 deadlines.run(stop), supervise("config-follow", lambda: running.follow(stop), stop))

        async with ops_server(settings.cluster.live_host, [case_worker_metrics(worker), case_store_metrics(store),
                                                           bus_metrics(bus)], health) as ops:
            print(f"citywall cases {name}: consuming alarms from {redact_url(settings.brokers.redis_url)}; "
                  f"health at {ops}/health", flush=True)
            await _with_signals(main)
    finally:
        store.close()
        await bus.close()

