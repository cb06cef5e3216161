"""The closed loop on real Redis + Mosquitto with simulated speakers: alarm raised → broadcast → speaker acks with
non-silent audio of the clip's length → cleared before the re-check → resolved_by_guidance and no case; not
cleared → the case is filed with the broadcast on its timeline; a restart resumes a pending check without a second
broadcast or a second outcome. The pure core is tested with an injected ``now``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cases.filing import build_filer
from cases.store import CaseStore
from cases.worker import CaseWorker
from citywall.supervise import supervise
from config import Settings
from guidance.clip_server import ClipServer
from guidance.clips import ClipFormat
from guidance.loop import STATE_TABLE, ClosedLoopCore, outcome_counts
from guidance.runtime import GuidanceRuntime, build_guidance
from guidance.simulator import SpeakerSimulator
from messages.alarm import Alarm
from tests.fixtures.factories import RECHECK_S, demo_settings, raised
from tests.waiting import eventually

SLOW_FIXTURES = {"world"}  # speaker simulators on MQTT and a guidance runtime: tests using it are slow


def cleared(a: Alarm) -> Alarm:
    return Alarm(**{**a.to_dict(), "phase": "cleared", "at": time.time(), "boxes": []})


@dataclass
class World:
    settings: Settings
    bus: object
    runtime: GuidanceRuntime
    store: CaseStore
    worker: CaseWorker
    sims: dict[str, SpeakerSimulator]
    server: ClipServer
    stop: asyncio.Event
    tasks: list[asyncio.Task]

    def start_loop(self, runtime: GuidanceRuntime | None = None) -> asyncio.Task:
        rt = runtime or self.runtime
        task = asyncio.create_task(rt.loop.run(self.stop))
        self.tasks.append(task)
        return task


@pytest.fixture
async def world(bus, mqtt_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with guidance_world(bus, mqtt_url, tmp_path) as w:
        yield w


@contextlib.asynccontextmanager
async def guidance_world(bus, mqtt_url: str, tmp_path: Path, *, supervised: bool = False) -> AsyncIterator[World]:
    """Guidance (two simulated speakers, a clip server) and a case worker on ``bus``; the loop is not started.
    ``supervised``: the case worker runs under ``citywall.supervise`` (restarted after a bus outage)."""
    settings = demo_settings(tmp_path)
    server = ClipServer(tmp_path / "guidance-clips")
    await server.start()
    runtime = build_guidance(settings, bus, mqtt_url=mqtt_url, clip_url=server.url, consumer="guidance-t")
    sims = {sid: SpeakerSimulator(mqtt_url, sid, settings.brokers.topic_prefix) for sid in ("spk-vending", "spk-road")}
    for sim in sims.values():
        await asyncio.to_thread(sim.start)
    await runtime.start()
    store = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    worker = CaseWorker(store, build_filer(settings, store), bus, consumer="cases-t", block_ms=200,
                        defer=settings.guidance.defers_filing)
    stop = asyncio.Event()
    w = World(settings, bus, runtime, store, worker, sims, server, stop, [])
    run = worker.run(stop) if not supervised else supervise("cases", lambda: worker.run(stop), stop,
                                                             first_delay_s=0.2, max_delay_s=1.0)
    w.tasks.append(asyncio.create_task(run))
    try:
        yield w
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*w.tasks, return_exceptions=True), 10)
        await runtime.close()
        for sim in sims.values():
            await asyncio.to_thread(sim.stop)
        await server.stop()
        store.close()


async def stream(bus, name: str) -> list[dict]:
    return [e.data for e in reversed(await bus.history(name, count=100))]


async def test_cleared_before_recheck_is_resolved_by_guidance_and_files_no_case(world: World) -> None:
    bus = world.bus
    world.start_loop()
    a = raised()
    await bus.publish(a)
    records = await eventually(lambda: stream(bus, "broadcasts"), what="a broadcast record")
    rec = records[0]
    assert rec["alarm_id"] == a.alarm_id and rec["status"] == "played" and rec["source"] == "alarm"
    assert rec["results"][0]["speaker_id"] == "spk-vending" and rec["results"][0]["acked"]
    assert "人行道禁止摆摊区" in rec["text"] and rec["hall_url"].endswith(".opus")
    # the simulated speaker fetched, decoded and acked real speech of the clip's length
    played = world.sims["spk-vending"].played[-1]
    expected = world.runtime.cache.get(rec["text"], ClipFormat.MP3).info.duration_s
    assert played.info is not None and played.error == ""
    assert abs(played.info.duration_s - expected) < 0.15 and expected > 2.0
    assert played.info.rms_dbfs > -35
    assert not world.sims["spk-road"].played  # only the alarm's site speaks

    await bus.publish(cleared(a))
    outcomes = await eventually(lambda: stream(bus, "guidance_outcomes"), timeout=RECHECK_S + 10,
                                what="an outcome")
    assert [(o["alarm_id"], o["outcome"]) for o in outcomes] == [(a.alarm_id, "resolved_by_guidance")]
    await eventually(lambda: asyncio.sleep(0, world.worker.stats.outcomes.get("resolved_by_guidance")),
                     what="the case worker taking the outcome")
    assert world.store.list_cases(camera_id="cam-vending")[0] == []
    assert world.worker.stats.outcomes.get("deferred") == 1
    assert (await outcome_counts(bus)) == {"resolved_by_guidance": 1}


async def test_not_cleared_files_the_case_with_the_broadcast_attached(world: World) -> None:
    bus = world.bus
    world.start_loop()
    a = raised("cam-road", "lane-1", "road_occupation")
    t0 = time.monotonic()
    await bus.publish(a)

    async def filed():
        return world.store.list_cases(camera_id="cam-road")[0]

    cases = await eventually(filed, timeout=RECHECK_S + 10, what="the case filed after the re-check")
    assert time.monotonic() - t0 >= RECHECK_S * 0.9  # not before the re-check
    case = world.store.get_case(cases[0]["id"])
    actions = [t["action"] for t in case["timeline"]]
    assert "guidance_broadcast" in actions and "guidance_recheck" in actions
    note = next(t["note"] for t in case["timeline"] if t["action"] == "guidance_broadcast")
    assert "中山路机动车道喇叭已应答" in note and "机动车道" in note
    assert a.alarm_id in case["alarm_ids"]
    outcomes = await stream(bus, "guidance_outcomes")
    assert [o["outcome"] for o in outcomes] == ["not_resolved"]
    assert outcomes[0]["broadcasts"][0]["results"][0]["acked"] is True


async def test_alarm_without_speakers_is_filed_at_once(world: World) -> None:
    bus = world.bus
    world.start_loop()
    a = raised("cam-bin", "bin-1", "bin_overflow")
    await bus.publish(a)

    async def filed():
        return world.store.list_cases(camera_id="cam-bin")[0]

    await eventually(filed, timeout=5, what="the bin case")
    assert await stream(bus, "broadcasts") == []


async def test_offline_speaker_means_not_broadcast_and_the_case_is_filed_at_once(world: World) -> None:
    bus = world.bus
    await asyncio.to_thread(world.sims["spk-road"].stop)
    await eventually(lambda: asyncio.sleep(0, world.runtime.mqtt.online("spk-road") is False),
                     what="the adapter seeing spk-road go offline")
    world.start_loop()
    a = raised("cam-road", "lane-1", "road_occupation")
    await bus.publish(a)

    async def filed():
        return world.store.list_cases(camera_id="cam-road")[0]

    await eventually(filed, timeout=RECHECK_S, what="the case filed without waiting for a re-check")
    rec = (await stream(bus, "broadcasts"))[0]
    assert rec["status"] == "failed" and rec["results"][0]["reason"] == "offline"
    assert [o["outcome"] for o in await stream(bus, "guidance_outcomes")] == ["not_broadcast"]
    await asyncio.to_thread(world.sims["spk-road"].start)  # the fixture stops it again


@pytest.mark.slow
async def test_restart_resumes_the_check_without_a_second_broadcast_or_outcome(world: World, mqtt_url) -> None:
    bus = world.bus
    first_stop = asyncio.Event()
    first = asyncio.create_task(world.runtime.loop.run(first_stop))
    a = raised()
    await bus.publish(a)
    await eventually(lambda: bus.get_state(STATE_TABLE), what="the pending check persisted")
    first_stop.set()  # "crash" before the re-check
    await asyncio.wait_for(first, 5)
    assert await stream(bus, "guidance_outcomes") == []

    second = build_guidance(world.settings, bus, mqtt_url=mqtt_url, clip_url=world.server.url, consumer="guidance-t")
    await second.start()
    try:
        world.start_loop(second)
        outcomes = await eventually(lambda: stream(bus, "guidance_outcomes"), timeout=RECHECK_S + 10,
                                    what="the resumed outcome")
        assert [(o["alarm_id"], o["outcome"]) for o in outcomes] == [(a.alarm_id, "not_resolved")]
        await bus.publish(a)  # the same raised alarm replayed: no second broadcast, no second outcome
        await eventually(lambda: asyncio.sleep(0, world.store.list_cases(camera_id="cam-vending")[0]),
                         what="the case")
        await asyncio.sleep(1.0)
        assert len(await stream(bus, "broadcasts")) == 1
        assert len(await stream(bus, "guidance_outcomes")) == 1
        assert len(world.store.list_cases(camera_id="cam-vending")[0]) == 1
    finally:
        world.stop.set()
        await asyncio.gather(*world.tasks, return_exceptions=True)
        await second.close()


# -- the pure core, with an injected clock ----------------------------------------------------------------------

def _a(alarm_id: str = "a1") -> dict:
    return {"alarm_id": alarm_id, "camera_id": "cam-1", "event": "vending", "phase": "raised"}


def test_core_cleared_in_time_resolves() -> None:
    core = ClosedLoopCore(30)
    core.start(_a(), [{"broadcast_id": "b"}], 100.0, played=True)
    assert core.due(129.9) == [] and core.next_due() == 130.0
    core.cleared("a1", 120.0)
    [out] = core.due(130.0)
    assert (out.outcome, out.cleared_at, out.decided_at) == ("resolved_by_guidance", 120.0, 130.0)
    assert core.known("a1") and core.due(1000.0) == []


def test_core_not_cleared_and_not_played() -> None:
    core = ClosedLoopCore(30)
    core.start(_a("a1"), [], 100.0, played=True)
    assert core.cleared("zz", 110.0) is None
    [out] = core.due(131.0)
    assert out.outcome == "not_resolved" and out.cleared_at is None
    now = core.start(_a("a2"), [], 200.0, played=False)
    assert now.outcome == "not_broadcast" and core.pending == {}
    assert core.cleared("a2", 201.0) is None  # decided already


def test_core_restore_skips_decided() -> None:
    from guidance.loop import PendingCheck
    core = ClosedLoopCore(30)
    core.restore(PendingCheck(_a("x"), [], 1.0, 31.0, None, "not_resolved"))
    core.restore(PendingCheck(_a("y"), [], 1.0, 31.0))
    assert core.known("x") and list(core.pending) == ["y"]
    assert [o.alarm_id for o in core.due(31.0)] == ["y"]
