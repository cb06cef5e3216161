"""``citywall up``: every role in one process, plus the private services the embedded default needs.

Start order follows the data flow: brokers → demo cameras → bus and case store → the roles, built as the
separate processes build them (``citywall.builders``): worker (ingest, clips, recording, detection), cases, MQTT
bridge → the wall server. Everything started is registered on one exit stack, so Ctrl-C,
SIGTERM or a start-up failure stops it all in reverse order and leaves no child process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from pathlib import Path

from admin.running import RunningConfig, load_running
from broker.bus import Bus
from broker.embedded import EmbeddedMosquitto, EmbeddedRedis, generate_secret
from cases.store import CaseStore
from citywall.builders import Loops
from citywall.builders.bridge import bridge_loop
from citywall.builders.cases import CasesRole
from citywall.builders.wall import build_wall, serve_wall
from citywall.builders.worker import WorkerRole
from citywall.keepalive import WatchedChild, keep_alive
from citywall.metrics import bus_metrics, child_metrics
from config import Settings, redact_url
from guidance.runtime import GuidanceRuntime, build_guidance
from guidance.simulator import SpeakerSimulator
from messages import CODECS
from wall.exposure import check_exposure, is_loopback

log = logging.getLogger("citywall.up")

DEMO_LOGIN = "admin / citywall"


def private_data_dir(data_dir: Path, *more: Path) -> None:
    """Data is for this account only: umask 077 (new files 0600, folders 0700) and the folders made 0700, so
    ``cases.sqlite``, evidence, clips and the brokers' configs are unreadable to other local users."""
    os.umask(0o077)
    for path in (data_dir, *more):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def _demo_scenes(settings: Settings) -> list[str]:
    scenes = []
    for cam in settings.cameras:
        for url in (cam.url, cam.substream_url, cam.analysis_url):
            if url and url.startswith("demo://"):
                name = url.removeprefix("demo://")
                if name not in scenes:
                    scenes.append(name)
    return scenes


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

            def restart_demo() -> None:
                server.stop()  # reaps the dead one
                server.start()

            children.append(WatchedChild("demo-rtsp", lambda: server.running, restart_demo))

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

        bus = await Bus.connect(redis_url, prefix=settings.brokers.topic_prefix,
                                maxlen=settings.brokers.stream_maxlen, codecs=CODECS)
        stack.push_async_callback(bus.close)

        store = await asyncio.to_thread(CaseStore.open, settings.storage.resolved_cases_url())
        stack.callback(store.close)

        # The roles, built as `citywall worker`/`cases`/`bridge`/`wall` build them (citywall.builders): every enabled
        # camera here, with one detection loop batching them all.
        worker = WorkerRole(settings, bus, name=worker_name, store=store, demo_url=demo_url, node="up", shadow=True)
        stack.push_async_callback(worker.stop)
        await worker.start()
        # A stable consumer name per host: after a crash the restarted process replays its own unacked alarms at
        # once instead of waiting for them to be claimed as idle (filing is idempotent by alarm id).
        cases = CasesRole(settings, bus, store, consumer=f"cases-{socket.gethostname()}",
                          defer=settings.guidance.defers_filing)
        guidance, clip_base = await _start_guidance(settings, bus, mqtt_url, stack)

        # Relays (statuses, rejections) are cancelled at shutdown; the other loops are asked to stop and finish
        # their current step (the bridge says goodbye to MQTT).
        loops = Loops(stop)
        loops.start_all(worker.relays(), cancel=True)
        loops.start_all(worker.loops())
        loops.start_all(cases.loops())
        loops.start("mqtt-bridge", bridge_loop(settings, bus, mqtt_url))
        stack.push_async_callback(loops.close)

        running = RunningConfig(settings, bus=bus)  # admin changes reach ingest, detection and the wall live
        running.add_applier(cases.adopt)
        worker.attach(running)
        app = build_wall(settings, bus, store, live=worker.ingest.live,
                         recordings=worker.recording.library if worker.recording is not None else None,
                         metrics=worker.metrics() + cases.metrics() + [bus_metrics(bus), child_metrics(children)],
                         guidance=guidance, running=running)
        runner, bound_port = await serve_wall(app, host, port)
        stack.push_async_callback(runner.cleanup)
        if guidance is not None:
            # Speakers fetch clips from the wall server (GET /clips/<name>); its port is known only now, so the
            # loop and the schedule start here.
            clip_base[0] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound_port}/clips"
            loops.start("guidance", guidance.loop.run)
            loops.start("guidance-schedule", guidance.ticker.run)

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
            f"  cameras:  {len(worker.ingest.camera_ids)}"
            + (f" (demo scenes from {demo_server.url('')})" if demo_server else ""),
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
