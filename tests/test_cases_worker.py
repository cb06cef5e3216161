"""CaseWorker on a real Redis (the ``bus`` fixture): alarms in → cases written, then announced on ``case_events``;
replays file nothing twice; malformed entries are counted and acked; unpublished announcements survive a crash."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases.filing import build_filer
from cases.worker import CaseWorker
from config import CONFIG_DIR, load_settings
from messages.alarm import Alarm
from messages.case_event import CaseEvent
from tests.waiting import run_until

pytestmark = pytest.mark.every_backend

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 11, 11, 0, tzinfo=SH).timestamp()


def _alarm(alarm_id: str, camera: str, zone: str, event: str, at: float, phase: str = "raised") -> Alarm:
    return Alarm(alarm_id=alarm_id, phase=phase, camera_id=camera, zone_id=zone, event=event, started_at=at - 20,
                 at=at, dwell_s=20, confidence=0.8, snapshot=f"snap/{alarm_id}-{phase}.jpg")


ALARMS = [
    _alarm("v-1", "cam-vending", "pavement", "vending", T0),
    _alarm("b-1", "cam-bin", "bin-1", "bin_overflow", T0 + 1),
    _alarm("v-2", "cam-vending", "pavement", "vending", T0 + 2),  # same place: attaches to the v-1 case
    _alarm("v-1", "cam-vending", "pavement", "vending", T0 + 30, phase="cleared"),
]


@pytest.fixture
def filer(store):
    return build_filer(load_settings(CONFIG_DIR / "demo.yaml"), store)


async def test_alarms_become_cases_and_replays_add_nothing(bus, store, filer):
    for a in ALARMS:
        await bus.publish(a)
    await bus.publish_raw("alarms", {"alarm_id": "junk", "phase": "raised"})  # malformed: fields missing
    await bus.publish_raw("alarms", {**_alarm("x-1", "cam-road", "lane-1", "juggling", T0).to_dict()})  # no category

    worker = CaseWorker(store, filer, bus, consumer="cases-t1", block_ms=100)
    await run_until(worker.run, lambda: worker.stats.received == 6)
    assert worker.stats.malformed == 1 and worker.stats.rejected == 1
    assert worker.stats.outcomes == {"filed": 2, "attached": 1, "verified": 1}

    cases, total = store.list_cases()
    assert total == 2
    by_cam = {c["camera_id"]: c for c in cases}
    assert by_cam["cam-vending"]["alarm_ids"] == ["v-1", "v-2"]
    assert by_cam["cam-bin"]["code"] == "0305" and by_cam["cam-bin"]["unit_name"] == "上城区环卫所"

    events = [CaseEvent.from_dict(e.data) for e in reversed(await bus.history("case_events", count=50))]
    assert [e.action for e in events] == ["filed", "filed", "attached", "verified"]
    for e in events:  # written before announced: every announced case is in the store
        assert store.get_case(e.case_id) is not None
    assert store.pending_events() == []

    # Replay everything (e.g. a detector restarted and re-sent): no new case, no new announcement.
    for a in ALARMS:
        await bus.publish(a)
    await run_until(worker.run, lambda: worker.stats.received == 10)
    assert worker.stats.outcomes["duplicate"] == 4
    assert store.list_cases()[1] == 2
    assert len(await bus.history("case_events", count=50)) == 4


async def test_unpublished_announcements_survive_a_crash(bus, store, filer):
    # A previous run committed the case but died before publishing its event.
    filer.file(ALARMS[0])
    assert len(store.pending_events()) == 1
    worker = CaseWorker(store, filer, bus, consumer="cases-t2", block_ms=100)
    await run_until(worker.run, lambda: not store.pending_events())
    [entry] = await bus.history("case_events", count=10)
    assert entry.data["action"] == "filed" and entry.data["case"]["alarm_ids"] == ["v-1"]
    # The alarm itself, delivered now, is a no-op.
    await bus.publish(ALARMS[0])
    await run_until(worker.run, lambda: worker.stats.received == 1)
    assert worker.stats.outcomes == {"duplicate": 1}
    assert len(await bus.history("case_events", count=10)) == 1


async def test_entries_left_pending_by_a_crash_are_filed_on_restart(bus, store, filer):
    await bus.ensure_group("alarms", "cases")
    await bus.publish(ALARMS[1])
    delivered = await bus.consume("alarms", "cases", "cases-t3", block_ms=100)  # then the process "dies", no ack
    assert len(delivered) == 1
    worker = CaseWorker(store, filer, bus, consumer="cases-t3", block_ms=100)
    await run_until(worker.run, lambda: worker.stats.received == 1)
    assert store.list_cases()[1] == 1
    assert [e.data["action"] for e in await bus.history("case_events", count=10)] == ["filed"]


async def test_a_low_confidence_alarm_is_held_for_review_and_filed_by_a_confirm(bus, store, filer):
    from cases.review import ReviewDesk
    from config import AutoFile

    policy = AutoFile.model_validate({"min_confidence": 0.7, "min_dwell_s": 10})
    unsure = Alarm(**{**_alarm("u-1", "cam-vending", "pavement", "vending", T0).to_dict(), "confidence": 0.42})
    sure = _alarm("b-1", "cam-bin", "bin-1", "bin_overflow", T0 + 1)
    unsure_cleared = Alarm(**{**unsure.to_dict(), "phase": "cleared", "at": T0 + 90,
                              "snapshot": "snap/u-1-cleared.jpg"})
    for a in (unsure, sure, unsure_cleared):
        await bus.publish(a)
    worker = CaseWorker(store, filer, bus, consumer="cases-p1", block_ms=100, policy=policy)
    await run_until(worker.run, lambda: worker.stats.received == 3)
    # Held: nothing filed, nothing announced; its clear finds no case and changes nothing.
    assert worker.stats.outcomes == {"held": 1, "filed": 1, "ignored": 1}
    [only] = store.list_cases()[0]
    assert only["alarm_ids"] == ["b-1"]
    assert [e.data["action"] for e in await bus.history("case_events", count=10)] == ["filed"]
    states = store.review_states(["u-1", "b-1"], now=T0 + 100)
    assert "u-1" not in states and states["b-1"]["case"]["case_no"] == only["case_no"]

    # The reviewer confirms it: the case is filed then, with the camera's video check since the scene cleared.
    desk = ReviewDesk(store, filer)
    assert desk.claim("monitor", ["u-1"], now=T0 + 100) == "u-1"
    result = desk.decide(unsure, "monitor", "confirm", now=T0 + 101, cleared=unsure_cleared)
    case = result.case
    assert case["alarm_ids"] == ["u-1"] and case["state"] == "dispatched"
    actions = [t["action"] for t in case["timeline"]]
    assert actions[-2:] == ["video_check", "review_confirm"] and "置信度 0.42" in case["timeline"][0]["note"]
    assert store.held_alarms() == [] and store.held_alarm("u-1").decided_at == T0 + 101  # decided: out of the queue
    # Announced by the worker's next outbox flush; a replay of the held alarm is held again and adds nothing.
    await bus.publish(unsure)
    await run_until(worker.run, lambda: worker.stats.received == 4 and not store.pending_events())
    assert worker.stats.outcomes == {"held": 2, "filed": 1, "ignored": 1}
    assert store.list_cases()[1] == 2
    assert sorted(e.data["action"] for e in await bus.history("case_events", count=10)) == ["filed", "filed",
                                                                                            "verified"]


async def test_a_held_alarm_is_recorded_once_with_its_first_clear(bus, store, filer):
    from config import AutoFile

    policy = AutoFile.model_validate({"min_confidence": 0.7})
    unsure = Alarm(**{**_alarm("u-2", "cam-vending", "pavement", "vending", T0).to_dict(), "confidence": 0.42})
    cleared = Alarm(**{**unsure.to_dict(), "phase": "cleared", "at": T0 + 90, "snapshot": "snap/u-2-cleared.jpg"})
    now = [T0 + 1]
    worker = CaseWorker(store, filer, bus, consumer="cases-p2", block_ms=100, policy=policy, clock=lambda: now[0])
    await bus.publish(unsure)
    await run_until(worker.run, lambda: worker.stats.received == 1)
    [held] = store.held_alarms()
    assert held.alarm == unsure.to_dict() and held.held_at == T0 + 1 and held.cleared is None
    assert held.decided_at is None and store.held_alarm("u-2") == held

    # Seen again (a detector re-sent it, or a redelivery after a crash): still one record, the first one.
    now[0] = T0 + 50
    for a in (unsure, cleared, Alarm(**{**cleared.to_dict(), "at": T0 + 95})):
        await bus.publish(a)
    await run_until(worker.run, lambda: worker.stats.received == 4)
    assert worker.stats.outcomes == {"held": 2, "ignored": 2}
    [held] = store.held_alarms()
    assert held.held_at == T0 + 1 and held.cleared == cleared.to_dict()  # the first clear stays
    assert store.list_cases()[1] == 0 and await bus.history("case_events", count=10) == []
    # A clear of an alarm that was never held records nothing.
    assert store.clear_held_alarm({**cleared.to_dict(), "alarm_id": "never-held"}) is False
    assert store.held_alarm("never-held") is None
