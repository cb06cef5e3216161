"""CaseWorker with voice guidance on a real Redis: eligible raised alarms wait for their guidance outcome; the
outcome files the case with the broadcasts on the timeline (or files nothing when guidance resolved it); a
"cleared" that overtakes its not_resolved outcome still becomes the case's video check; other alarms are filed at
once as before; an alarm the filing policy holds after guidance answered it is kept with its broadcasts."""

from __future__ import annotations

import asyncio
import time

import pytest

from cases.filing import build_filer
from cases.store import CaseStore
from cases.worker import CaseWorker
from config import CONFIG_DIR, load_settings
from messages.alarm import Alarm
from messages.guidance import GuidanceOutcome
from tests.waiting import eventually

T0 = time.time() - 600


def _alarm(alarm_id: str, camera: str, zone: str, event: str, at: float, phase: str = "raised") -> Alarm:
    return Alarm(alarm_id=alarm_id, phase=phase, camera_id=camera, zone_id=zone, event=event, started_at=at - 20,
                 at=at, dwell_s=20, confidence=0.8)


def _outcome(a: Alarm, outcome: str) -> GuidanceOutcome:
    record = {"broadcast_id": "b-" + a.alarm_id, "at": a.at + 0.1, "text": "请立即离开。", "status": "played",
              "results": [{"speaker_id": "spk-vending", "speaker_name": "解放路人行道喇叭", "outcome": "played",
                           "acked": True, "reason": ""}]}
    return GuidanceOutcome(alarm_id=a.alarm_id, camera_id=a.camera_id, event=a.event, outcome=outcome,
                           decided_at=a.at + 5, recheck_after_s=5, alarm=a.to_dict(), broadcasts=[record])


@pytest.fixture
async def running(bus, tmp_path):
    settings = load_settings(CONFIG_DIR / "demo.yaml")
    store = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    worker = CaseWorker(store, build_filer(settings, store), bus, consumer="c1", block_ms=100,
                        defer=settings.guidance.defers_filing)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker, store
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        store.close()


async def _cases(store, camera):
    return store.list_cases(camera_id=camera)[0]


async def test_deferred_until_the_outcome_then_filed_with_the_broadcast(bus, running):
    worker, store = running
    v = _alarm("v-1", "cam-vending", "pavement", "vending", T0)
    b = _alarm("b-1", "cam-bin", "bin-1", "bin_overflow", T0 + 1)
    await bus.publish(v)
    await bus.publish(b)
    await eventually(lambda: _cases(store, "cam-bin"), what="the bin case filed at once")
    await eventually(lambda: asyncio.sleep(0, worker.stats.outcomes.get("deferred")), what="vending deferred")
    assert await _cases(store, "cam-vending") == []
    await bus.publish(_outcome(v, "not_resolved"))
    [case] = await eventually(lambda: _cases(store, "cam-vending"), what="the vending case")
    timeline = store.get_case(case["id"])["timeline"]
    actions = [t["action"] for t in timeline]
    assert actions[:3] == ["report", "guidance_broadcast", "guidance_recheck"]
    assert "解放路人行道喇叭已应答" in timeline[1]["note"] and "b-v-1" in timeline[1]["note"]
    assert "5 秒复查：现场未恢复" in timeline[2]["note"]


async def test_resolved_by_guidance_files_nothing(bus, running):
    worker, store = running
    v = _alarm("v-2", "cam-vending", "pavement", "vending", T0)
    await bus.publish(v)
    await bus.publish(_alarm("v-2", "cam-vending", "pavement", "vending", T0 + 3, phase="cleared"))
    await bus.publish(_outcome(v, "resolved_by_guidance"))
    await eventually(lambda: asyncio.sleep(0, worker.stats.outcomes.get("resolved_by_guidance")),
                     what="the outcome taken")
    assert await _cases(store, "cam-vending") == []


async def test_a_clear_that_overtakes_its_outcome_still_verifies_the_case(bus, running):
    worker, store = running
    r = _alarm("r-1", "cam-road", "lane-1", "road_occupation", T0)
    await bus.publish(r)
    await bus.publish(_alarm("r-1", "cam-road", "lane-1", "road_occupation", T0 + 30, phase="cleared"))
    await eventually(lambda: asyncio.sleep(0, worker.stats.outcomes.get("ignored")), what="the early clear")
    await bus.publish(_outcome(r, "not_resolved"))

    async def verified():
        cases = await _cases(store, "cam-road")
        return cases and any(t["action"] == "video_check" for t in store.get_case(cases[0]["id"])["timeline"])

    await eventually(verified, what="the video check on the late-filed case")


async def test_a_held_alarm_that_guidance_answered_is_kept_with_its_broadcasts(bus, tmp_path):
    from cases.review import ReviewDesk
    from config import AutoFile

    settings = load_settings(CONFIG_DIR / "demo.yaml")
    store = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    filer = build_filer(settings, store)
    worker = CaseWorker(store, filer, bus, consumer="c2", block_ms=100, defer=settings.guidance.defers_filing,
                        policy=AutoFile.model_validate({"min_confidence": 0.9}))  # 0.8 < 0.9: held
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        v = _alarm("v-3", "cam-vending", "pavement", "vending", T0)
        await bus.publish(v)
        await bus.publish(_outcome(v, "not_resolved"))
        await eventually(lambda: asyncio.sleep(0, store.held_alarms()), what="the alarm held")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    try:
        [held] = store.held_alarms()
        assert held.alarm["extra"]["guidance"]["outcome"] == "not_resolved"
        desk = ReviewDesk(store, filer)
        assert desk.claim("monitor", ["v-3"], now=T0 + 60) == "v-3"
        case = desk.decide(Alarm.from_dict(held.alarm), "monitor", "confirm", now=T0 + 61).case
        assert [t["action"] for t in case["timeline"]][:3] == ["report", "guidance_broadcast", "guidance_recheck"]
    finally:
        store.close()
