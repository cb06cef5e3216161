"""``citywall up``: every role in one process, plus the private services the embedded default needs.

Start order follows the data flow: brokers → demo cameras → bus and case store → ingest → detection, case
filing, MQTT bridge → the wall server. Everything started is registered on one exit stack, so Ctrl-C,
SIGTERM or a start-up failure stops it all in reverse order and leaves no child process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path

from aiohttp import web

from admin.running import RunningConfig, load_running, process_applier
from broker.bus import Bus
from broker.embedded import EmbeddedMosquitto, EmbeddedRedis, generate_secret
from broker.mqtt_bridge import MqttBridge
from cases.deadlines import DeadlineAlarmLoop
from cases.store import CaseStore
from cases.webhooks import WebhookSender
from cases.worker import CaseWorker, build_filer
from citywall.keepalive import WatchedChild, keep_alive
from citywall.metrics import (
    bus_metrics,
    case_store_metrics,
    case_worker_metrics,
    child_metrics,
    clip_metrics,
    detection_metrics,
    ingest_metrics,
    recording_metrics,
)
from citywall.supervise import supervise
from config import Camera, Settings, redact_url
from detectors.feedback import RejectionFollower, SuppressionList
from detectors.models import load_backends
from detectors.worker import DetectionWorker
from guidance.runtime import GuidanceRuntime, build_guidance
from guidance.simulator import SpeakerSimulator
from learning import learning_root
from learning.registry import ModelRegistry
from learning.shadow import ShadowRunner, ShadowStore
from learning.switch import ModelSwitch
from messages import CODECS
from messages.review import AlarmRejected
from recording.service import build_recording
from video_ingest.clip_buffer import ClipRecorder
from video_ingest.health import LoginPolicy
from video_ingest.service import IngestService
from video_ingest.source import SourceOptions
from wall.app import create_app
from wall.exposure import check_exposure, is_loopback, start_site

log = logging.getLogger("citywall.up")

DEMO_LOGIN = "admin / citywall"


def private_data_dir(data_dir: Path, *more: Path) -> None:
    """Data is for this account only: umask 077 (new files 0600, folders 0700) and the folders made 0700, so
    ``cases.sqlite``, evidence, clips and the brokers' configs are unreadable to other local users."""
    os.umask(0o077)
    for path in (data_dir, *more):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def resolve_sources(settings: Settings, demo_url, *, analysis: bool = False) -> dict[str, str]:
    """camera id → the URL ingest opens (with ``analysis``: the ``analysis_url`` of the cameras that have one);
    ``demo://<scene>`` becomes the private RTSP server's URL."""
    sources: dict[str, str] = {}
    for cam in settings.cameras:
        if not cam.enabled or (analysis and not cam.analysis_url):
            continue
        url = (cam.analysis_url if analysis else None) or cam.substream_url or cam.url
        if url.startswith("demo://"):
            url = demo_url(url.removeprefix("demo://"))
        sources[cam.id] = url
    return sources


def camera_options(settings: Settings, cam: Camera) -> SourceOptions:
    """A camera's connection options: its own ``transport``/``login``, else ``ingest``'s defaults."""
    login = cam.login or settings.ingest.login
    return SourceOptions(transport=cam.transport or settings.ingest.transport,
                         login=LoginPolicy(tuple(login.backoff_s), login.max_attempts, login.window_s))


def _demo_scenes(settings: Settings) -> list[str]:
    scenes = []
    for cam in settings.cameras:
        for url in (cam.url, cam.substream_url, cam.analysis_url):
            if url and url.startswith("demo://"):
                name = url.removeprefix("demo://")
                if name not in scenes:
                    scenes.append(name)
    return scenes


def _latest_or_none(ingest: IngestService):
    """The latest frame of a camera, None for one this process does not run (the shadow run's sampler)."""
    def latest(camera_id: str):
        try:
            return ingest.latest_frame(camera_id)
        except KeyError:
            return None
    return latest


async def follow_rejections(bus: Bus, follower: RejectionFollower) -> None:
    """Reviewers' rejections → the detectors' suppression list (the whole stream, then each new one)."""
    async for entry in bus.tail([AlarmRejected.STREAM], {AlarmRejected.STREAM: "0"}):
        follower.apply(entry.data)


async def _publish_statuses(ingest: IngestService, bus: Bus) -> None:
    async for status in ingest.status_updates():
        await bus.put_state("cameras", status.camera_id, status.to_dict())
        await bus.publish(status)


async def _start_guidance(settings: Settings, bus: Bus, mqtt_url: str,
                          stack: contextlib.AsyncExitStack) -> tuple[GuidanceRuntime | None, list[str]]:
    """Build voice guidance (pre-rendering its messages) and, in demo mode, one simulated speaker per MQTT
    speaker. Returns the runtime and the holder of the clip base URL, filled in once the wall server is bound."""
    clip_base = ["http://127.0.0.1/clips"]
    if not settings.guidance.enabled:
        return None, clip_base
    runtime = build_guidance(settings, bus, mqtt_url=mqtt_url, clip_url=lambda name: f"{clip_base[0]}/{name}",
                             consumer=f"guidance-{socket.gethostname()}")
    await runtime.start()
    stack.push_async_callback(runtime.close)
    if settings.demo.enabled:
        for speaker in runtime.registry:
            if speaker.adapter == "mqtt":
                sim = SpeakerSimulator(mqtt_url, speaker.id, settings.brokers.topic_prefix)
                await asyncio.to_thread(sim.start)
                stack.callback(sim.stop)
        log.info("started %d simulated speakers", sum(1 for s in runtime.registry if s.adapter == "mqtt"))
    return runtime, clip_base


async def run_up(settings: Settings, *, host: str, port: int, config_path: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    settings = load_running(settings)  # cameras and users changed from the browser (admin pages) persist
    demo = check_exposure(settings, host)  # before anything starts: demo passwords stay on loopback
    data_dir = settings.storage.data_dir
    private_data_dir(data_dir, settings.storage.evidence_dir)
    worker_name = f"{socket.gethostname()}-{os.getpid()}"

    async with contextlib.AsyncExitStack() as stack:
        children: list[WatchedChild] = []  # private servers restarted when their process dies
        redis_url = settings.brokers.redis_url
        if redis_url is None:
            # Persistent (AOF in the data dir): alarms and case events survive a restart like the SQLite cases do.
            # A password generated for this run (requirepass in a 0600 config): no other local user can publish.
            redis = EmbeddedRedis(data_dir / "run" / "redis", persistent=True, password=generate_secret())
            redis_url = await asyncio.to_thread(redis.start)
            stack.callback(redis.stop)
            children.append(WatchedChild("redis-server", redis.running, redis.restart))
            log.info("started private redis-server at %s", redis_url)
        mqtt_url = settings.brokers.mqtt_url
        if mqtt_url is None:
            # A login generated for this run (0600 password file, allow_anonymous false), run as an unprivileged user.
            mosquitto = EmbeddedMosquitto(data_dir / "run" / "mosquitto", username="citywall",
                                          password=generate_secret())
            mqtt_url = await asyncio.to_thread(mosquitto.start)
            stack.callback(mosquitto.stop)
            children.append(WatchedChild("mosquitto", mosquitto.running, mosquitto.restart))
            log.info("started private mosquitto at %s", mqtt_url)

        demo_server = None
        if settings.demo.enabled and _demo_scenes(settings):
            from demo.media import ensure_media
            from demo.server import DemoRtspServer

            log.info("preparing demo scenes in %s (generated once, then cached)", settings.demo.media_dir)
            media = await asyncio.to_thread(
                ensure_media, settings.demo.media_dir, settings.demo.seed, tuple(_demo_scenes(settings))
            )
            demo_server = DemoRtspServer(media, port=settings.demo.rtsp_port)
            await asyncio.to_thread(demo_server.start)
            stack.callback(demo_server.stop)
            server = demo_server
            children.append(WatchedChild("demo-rtsp", lambda: server.running,
                                         lambda: (server.stop(), server.start())))  # stop() reaps the dead one

        if children:
            # Registered after the servers, so it is cancelled before they are stopped on purpose.
            keepalive_task = asyncio.create_task(keep_alive(children, stop), name="keepalive")

            async def _stop_keepalive() -> None:
                keepalive_task.cancel()
                await asyncio.gather(keepalive_task, return_exceptions=True)

            stack.push_async_callback(_stop_keepalive)

        def demo_url(name: str) -> str:
            if demo_server is None:
                raise RuntimeError("demo:// camera without demo.enabled")
            return demo_server.url(name)

        sources = resolve_sources(settings, demo_url)

        bus = await Bus.connect(redis_url, prefix=settings.brokers.topic_prefix,
                                maxlen=settings.brokers.stream_maxlen, codecs=CODECS)
        stack.push_async_callback(bus.close)

        store = await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
        stack.callback(store.close)
        filer = build_filer(settings, store)

        # One picture per analysis interval (the detection loop looks twice per interval, so the two clocks do
        # not beat); cameras whose GOP fits in the interval are decoded at keyframes only.
        ingest = IngestService(sources, worker=worker_name, sample_interval_s=settings.detection.interval_s,
                               sample_mode=settings.detection.decode,
                               analysis_sources=resolve_sources(settings, demo_url, analysis=True),
                               options={c.id: camera_options(settings, c) for c in settings.cameras if c.id in sources})
        await ingest.start()
        stack.push_async_callback(ingest.stop)

        # Evidence clips: a packet ring buffer per camera on its one connection, cut around each alarm (remuxed).
        clips = ClipRecorder(settings.storage.evidence_dir, list(sources))
        for cid in sources:
            ingest.subscribe_packets(cid, clips.buffer(cid))
        stack.callback(clips.close)
        # Recording (录像回放): segment files from the same connections, indexed in the case store (None when off);
        # a disk that fills up or a write that fails is a system alarm on the wall.
        recording = build_recording(settings, store, list(sources), publish=bus.publish)
        if recording is not None:
            await recording.start(ingest.subscribe_packets)
            stack.push_async_callback(recording.stop)
        # Reviewers' rejections (stream alarm_rejections, replayed from its start) suppress the same object there.
        suppressions = SuppressionList()
        rejections = RejectionFollower(suppressions, settings.storage.evidence_dir)
        detection = DetectionWorker(
            [c for c in settings.cameras if c.enabled and c.id in sources],
            settings.detection,
            settings.storage.evidence_dir,
            ingest.latest_frame,
            timezone=settings.timezone,
            backend=load_backends(settings.detection.models),
            clips=recording.clip_hook(clips.record) if recording is not None else clips.record,
            suppressions=suppressions,
        )
        # The site model (learning/): the live version is swapped in without a restart when an admin promotes one.
        site_model = ModelSwitch(ModelRegistry(learning_root(settings) / "models"), detection.backend,
                                 lambda backend: setattr(detection, "backend", backend))
        site_model.poll()
        # A candidate model in shadow (when an admin starts one): a frame per camera every interval, stored only.
        shadow = ShadowRunner(site_model.registry, ShadowStore(store), _latest_or_none(ingest),
                              lambda: [c.id for c in settings.cameras if c.enabled],
                              queue=settings.learning.shadow.queue, clock=time.time)
        # A stable consumer name per host: after a crash the restarted process replays its own unacked alarms at
        # once instead of waiting for them to be claimed as idle (filing is idempotent by alarm id).
        case_worker = CaseWorker(store, filer, bus, consumer=f"cases-{socket.gethostname()}",
                                 defer=settings.guidance.defers_filing, policy=settings.cases.auto_file)
        deadlines = DeadlineAlarmLoop(store, bus, settings.cases.deadline_watch, timezone=settings.timezone,
                                      clock=time.time)
        guidance, clip_base = await _start_guidance(settings, bus, mqtt_url, stack)
        bridge = MqttBridge(bus, mqtt_url, prefix=settings.brokers.topic_prefix)
        webhooks = WebhookSender(store, settings.webhooks)  # idles when no targets are configured

        # Status publishing only relays ingest's updates, so it is simply cancelled at shutdown; the roles below
        # are asked to stop and finish their current step.
        status_task = asyncio.create_task(
            supervise("camera-status", lambda: _publish_statuses(ingest, bus), stop), name="camera-status")
        rejections_task = asyncio.create_task(
            supervise("rejections", lambda: follow_rejections(bus, rejections), stop), name="rejections")
        tasks = [
            asyncio.create_task(supervise("detection", lambda: detection.run(bus.publish, stop), stop),
                                name="detection"),
            asyncio.create_task(supervise("cases", lambda: case_worker.run(stop), stop), name="cases"),
            asyncio.create_task(supervise("mqtt-bridge", lambda: bridge.run(stop), stop), name="mqtt-bridge"),
            asyncio.create_task(supervise("webhooks", lambda: webhooks.run(stop), stop), name="webhooks"),
            asyncio.create_task(supervise("deadlines", lambda: deadlines.run(stop), stop), name="deadlines"),
            asyncio.create_task(supervise("site-model", lambda: site_model.run(stop), stop), name="site-model"),
            asyncio.create_task(supervise("shadow-model", lambda: shadow.run(stop), stop), name="shadow-model"),
        ]

        async def _cancel_tasks() -> None:
            # Ask first (each role finishes its step, the bridge says goodbye to MQTT), then cancel stragglers.
            stop.set()
            status_task.cancel()
            rejections_task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                log.warning("%s did not stop within 5 s; cancelling it", task.get_name())
                task.cancel()
            await asyncio.gather(status_task, rejections_task, *tasks, return_exceptions=True)

        stack.push_async_callback(_cancel_tasks)

        providers = [ingest_metrics(ingest), detection_metrics(detection), case_worker_metrics(case_worker),
                     case_store_metrics(store), bus_metrics(bus), child_metrics(children),
                     clip_metrics(clips)] + ([recording_metrics(recording)] if recording is not None else [])
        running = RunningConfig(settings, bus=bus)  # admin changes reach ingest, detection and the wall live
        running.add_applier(process_applier(
            ingest=ingest, detection=detection, clips=clips, sources=lambda s: resolve_sources(s, demo_url),
            analysis_sources=lambda s: resolve_sources(s, demo_url, analysis=True),
            options=camera_options, filer=filer, recording=recording))
        running.candidates = detection.candidates  # the zone editor's preview of what a zone would catch
        running.stream_url = lambda url: demo_url(url.removeprefix("demo://")) if url.startswith("demo://") else url
        app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=settings.storage.evidence_dir,
                         metric_providers=providers, guidance=guidance, running=running,
                         recordings=recording.library if recording is not None else None)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await start_site(runner, app, host, port)
        bound_port = runner.addresses[0][1] if runner.addresses else port
        if guidance is not None:
            # Speakers fetch clips from the wall server (GET /clips/<name>); its port is known only now, so the
            # loop and the schedule start here.
            clip_base[0] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound_port}/clips"
            tasks += [
                asyncio.create_task(supervise("guidance", lambda: guidance.loop.run(stop), stop), name="guidance"),
                asyncio.create_task(supervise("guidance-schedule", lambda: guidance.ticker.run(stop), stop),
                                    name="guidance-schedule"),
            ]

        shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        scheme = "https" if settings.wall.tls_cert else "http"
        lines = [
            "",
            f"citywall is running — {settings.site_name}",
            f"  wall:     {scheme}://{shown_host}:{bound_port}/wall",
            f"  metrics:  {scheme}://{shown_host}:{bound_port}/metrics",
        ]
        if settings.demo.enabled and is_loopback(host):
            lines.append(f"  login:    {DEMO_LOGIN}   (demo users duty, monitor, leader, squad — a unit on /field: "
                         "same password)")
        elif demo:
            lines.append(f"  WARNING:  demo users {', '.join(demo)} keep the published demo password on {host}")
        lines += [
            f"  cameras:  {len(sources)}" + (f" (demo scenes from {demo_server.url('')})" if demo_server else ""),
            f"  redis:    {redact_url(redis_url)}" + ("  (private)" if settings.brokers.redis_url is None else ""),
            f"  mqtt:     {redact_url(mqtt_url)}" + ("  (private)" if settings.brokers.mqtt_url is None else ""),
            f"  cases:    {redact_url(settings.storage.resolved_cases_url())}",
            f"  guidance: {len(guidance.registry)} speakers" + (" (simulated)" if settings.demo.enabled else "")
            if guidance is not None else "  guidance: off",
            "Press Ctrl-C to stop.",
            "",
        ]
        print("\n".join(lines), flush=True)

        await stop.wait()
        log.info("stopping")
    log.info("stopped")
