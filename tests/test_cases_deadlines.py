"""Deadline alarms (cases.deadlines): the pure watcher (time is an argument), the store's memory of what was raised
(migration 5, both backends), and the loop on a real bus — each case raises once per stage on its own stream
``case_deadlines``, a restart repeats nothing, the case worker never sees them, and entries older versions left on
``alarms`` are moved over once."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases.deadlines import DeadlineAlarmLoop, DeadlineWatcher, move_legacy_deadline_alarms
from cases.desk import CaseDesk
from cases.filing import build_filer
from cases.worker import CaseWorker
from config import CONFIG_DIR, DeadlineWatch, load_settings
from messages.alarm import Alarm
from tests.waiting import eventually, run_until

pytestmark = pytest.mark.every_backend

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 11, 10, 0, tzinfo=SH).timestamp()
HOUR = 3600.0
RULE = DeadlineWatch(near_fraction=0.75)


def case(n: int, *, reported: float = T0, deadline: float = T0 + 4 * HOUR, camera: str = "cam-vending") -> dict:
    return {"id": f"c{n}", "case_no": f"CW20260311-{n:04d}", "state": "dispatched", "reported_at": reported,
            "deadline_at": deadline, "title": "解放路人行道 无照经营游商", "unit_id": "u1",
            "unit_name": "上城区城管中队",
            "camera_id": camera, "camera_name": "解放路人行道", "zone_id": "pavement", "address": "解放路88号",
            "deadline_iso": datetime.fromtimestamp(deadline, SH).isoformat()}


@pytest.mark.parametrize("rule, at_h, stage", [
    (RULE, 0.0, None),
    (RULE, 2.99, None),
    (RULE, 3.0, "near_deadline"),                      # 75 % of 4 h
    (RULE, 4.0, "near_deadline"),                      # at the deadline: not yet past it
    (RULE, 4.01, "overdue"),
    (DeadlineWatch(near_fraction=None, near_remaining_s=1800), 3.4, None),
    (DeadlineWatch(near_fraction=None, near_remaining_s=1800), 3.5, "near_deadline"),
    (DeadlineWatch(near_fraction=None, near_remaining_s=None), 3.99, None),
    (DeadlineWatch(near_fraction=0.9, near_remaining_s=3600), 3.0, "near_deadline"),  # either rule suffices
])
def test_stage(rule, at_h, stage):
    assert DeadlineWatcher(rule).stage(case(1), T0 + at_h * HOUR) == stage


def test_each_case_raises_once_per_stage():
    watch = DeadlineWatcher(RULE)
    cases = [case(1), case(2, deadline=T0 + 8 * HOUR, camera="")]
    assert watch.check(cases, T0 + HOUR) == []
    [near] = watch.check(cases, T0 + 3 * HOUR)
    assert (near.case_no, near.stage, near.event) == ("CW20260311-0001", "near_deadline", "case_near_deadline")
    assert near.label == "即将超期 CW20260311-0001 上城区城管中队 截止 03-11 14:00"
    assert near.camera_id == "cam-vending" and near.unit_name == "上城区城管中队" and near.at == T0 + 3 * HOUR
    assert watch.check(cases, T0 + 3.5 * HOUR) == []   # remembered
    [over] = watch.check(cases, T0 + 5 * HOUR)
    assert over.event == "case_overdue" and over.alarm_id == f"case-c1-overdue-{int(T0 + 4 * HOUR)}"
    assert over.label.startswith("案件超期 CW20260311-0001")
    [near2] = watch.check(cases, T0 + 6 * HOUR)      # the second case, without a camera
    assert near2.case_id == "c2" and near2.camera_id == ""
    assert watch.check(cases, T0 + 7 * HOUR) == []


def test_near_is_measured_from_a_re_dispatch_not_from_filing():
    redispatched = {**case(1, deadline=T0 + 52 * HOUR), "deadline_from": T0 + 48 * HOUR}  # 4 h limit from 48 h on
    watch = DeadlineWatcher(RULE)
    assert watch.stage(redispatched, T0 + 49 * HOUR) is None
    assert watch.stage(redispatched, T0 + 51 * HOUR) == "near_deadline"


def test_a_case_found_past_its_deadline_raises_overdue_only():
    watch = DeadlineWatcher(RULE)
    assert [a.stage for a in watch.check([case(1)], T0 + 10 * HOUR)] == ["overdue"]
    assert watch.check([case(1)], T0 + 11 * HOUR) == []


def test_an_extended_deadline_may_warn_again_and_a_closed_case_is_forgotten():
    watch = DeadlineWatcher(RULE)
    assert len(watch.check([case(1)], T0 + 3 * HOUR)) == 1
    extended = case(1, deadline=T0 + 12 * HOUR)
    assert watch.check([extended], T0 + 3.5 * HOUR) == []
    [again] = watch.check([extended], T0 + 10 * HOUR)
    assert again.stage == "near_deadline" and again.deadline_at == T0 + 12 * HOUR
    watch.check([], T0 + 11 * HOUR)   # closed: not among the open cases any more
    assert watch._raised == set()


def test_what_was_raised_before_is_not_raised_again():
    seen = {("c1", "near_deadline", T0 + 4 * HOUR)}
    watch = DeadlineWatcher(RULE, raised=seen)
    assert watch.check([case(1)], T0 + 3 * HOUR) == []
    assert [a.stage for a in watch.check([case(1)], T0 + 4.5 * HOUR)] == ["overdue"]


# -- store and loop: both backends, real bus --------------------------------------------------------------------

def _alarm(n: int, at: float, phase: str = "raised") -> Alarm:
    return Alarm(alarm_id=f"v-{n}", phase=phase, camera_id="cam-vending", zone_id="pavement", event="vending",
                 started_at=at - 20, at=at, dwell_s=20, confidence=0.9, snapshot=f"s/{n}.jpg")


@pytest.fixture
def settings():
    return load_settings(CONFIG_DIR / "demo.yaml")


def test_store_lists_open_cases_and_remembers_alarms(store, settings):
    filer = build_filer(settings, store)
    first = filer.file(_alarm(1, T0)).case
    bin_case = filer.file(Alarm(alarm_id="b-1", phase="raised", camera_id="cam-bin", zone_id="bin-1",
                                event="bin_overflow", started_at=T0, at=T0 + 1, dwell_s=20, confidence=0.9)).case
    desk = CaseDesk(filer.config, store)
    desk.act(bin_case["id"], "suspend", role="leader", user="leader", now=T0 + 2)
    assert store.schema_version() >= 5
    rows = store.open_case_deadlines()
    assert [r["case_no"] for r in rows] == [first["case_no"]]   # the suspended case is not watched
    row = rows[0]
    assert row["deadline_at"] == first["deadline_at"] and row["unit_name"] == first["unit_name"]
    assert row["camera_id"] == "cam-vending" and row["title"] == first["title"] and "timeline" not in row
    store.record_deadline_alarm(first["id"], "near_deadline", first["deadline_at"], T0 + 5)
    store.record_deadline_alarm(first["id"], "near_deadline", first["deadline_at"], T0 + 6)  # a repeat: no-op
    assert store.deadline_alarms_raised() == {(first["id"], "near_deadline", first["deadline_at"])}
    for step in ("start", "feedback", "verify", "close"):
        desk.act(first["id"], step, role="watch_officer", user="duty", now=T0 + 7)
    assert store.deadline_alarms_raised() == set()   # closed cases are not remembered any more


async def test_loop_publishes_once_per_stage_on_its_own_stream(bus, store, settings):
    filer = build_filer(settings, store)
    case_ = filer.file(_alarm(1, T0)).case
    deadline = case_["deadline_at"]
    clock = {"now": deadline - 60}
    loop = DeadlineAlarmLoop(store, bus, DeadlineWatch(near_fraction=None, near_remaining_s=600),
                             timezone=settings.timezone, clock=lambda: clock["now"])
    watcher = DeadlineWatcher(loop.rule, raised=store.deadline_alarms_raised())
    [near] = await loop.step(watcher)
    assert await loop.step(watcher) == []
    clock["now"] = deadline + 1
    [over] = await loop.step(watcher)
    [e_over, e_near] = await bus.history("case_deadlines", count=10)   # newest first
    assert e_near.data["event"] == "case_near_deadline" and e_over.data["event"] == "case_overdue"
    assert (e_near.message, e_over.message) == (near, over)
    assert e_over.data["case_no"] == case_["case_no"] and e_over.data["unit_name"] == case_["unit_name"]
    assert e_over.data["deadline_at"] == deadline and e_over.data["camera_id"] == "cam-vending"

    # A restart (or another cases process taking over): the store remembers, nothing is raised again.
    restarted = DeadlineAlarmLoop(store, bus, loop.rule, timezone=settings.timezone, clock=lambda: clock["now"])
    stop = asyncio.Event()
    task = asyncio.create_task(restarted.run(stop))
    await eventually(lambda: restarted.checks, what="the restarted loop's first check")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert restarted.raised == 0 and len(await bus.history("case_deadlines", count=10)) == 2
    assert await bus.history("alarms", count=10) == []   # nothing for the case worker, guidance or the review desk


async def test_deadline_alarms_older_versions_left_on_alarms_are_moved_once_keeping_their_ids(bus, store, settings):
    filer = build_filer(settings, store)
    detection = _alarm(1, T0)
    old_near = {**DeadlineWatcher(RULE).alarm(case(7), "near_deadline", T0).to_dict(), "kind": "case_near_deadline"}
    old_over = {**DeadlineWatcher(RULE).alarm(case(7), "overdue", T0).to_dict(), "kind": "case_overdue"}
    ids = [await bus.publish_raw("alarms", old_near), await bus.publish(detection),
           await bus.publish_raw("alarms", old_over)]
    await bus.publish_raw("alarms", {"not": "a message"})   # unreadable entries stay where they are
    assert await move_legacy_deadline_alarms(bus) == 2
    moved = list(reversed(await bus.history("case_deadlines", count=10)))
    assert [e.id for e in moved] == [ids[0], ids[2]]
    assert [e.message.stage for e in moved] == ["near_deadline", "overdue"]
    left = list(reversed(await bus.history("alarms", count=10)))
    assert [e.id for e in left][0] == ids[1] and len(left) == 2 and left[0].message == detection
    # Marked done: a later start does not scan again (even if an old process wrote another one meanwhile).
    await bus.publish_raw("alarms", old_near)
    assert await move_legacy_deadline_alarms(bus) == 0

    # The case worker files the detection; the moved alarms never reach it.
    worker = CaseWorker(store, filer, bus, consumer="cases-dl", block_ms=100)
    await run_until(worker.run, lambda: worker.stats.received >= 3, what="the alarms entries read")
    assert store.list_cases()[1] == 1


async def test_two_cases_processes_run_one_deadline_watch(bus, store, settings, caplog):
    """With several ``cases`` processes the watch is a lease-held singleton (citywall.roles): the overdue alarm is
    raised once between two processes, and nothing else fails on the side (the singleton only runs its own task)."""
    from citywall.roles import Singleton

    cluster = settings.model_copy(update={"cluster": settings.cluster.model_copy(
        update={"token": "t", "lease_ttl_s": 2.0, "lease_interval_s": 0.2})})
    filer = build_filer(settings, store)
    filer.file(_alarm(1, T0))                      # long past its deadline now
    loops = []

    def make(stop: asyncio.Event):
        loop = DeadlineAlarmLoop(store, bus, DeadlineWatch(interval_s=1), timezone=settings.timezone, clock=time.time)
        loops.append(loop)
        return loop.run(stop)

    stop = asyncio.Event()
    singles = [Singleton(bus, cluster, pool="deadlines", name=f"cases-{i}", make=make) for i in (1, 2)]
    tasks = [asyncio.create_task(s.run(stop)) for s in singles]
    try:
        await eventually(lambda: bus.history("case_deadlines", count=10), timeout=15, what="the deadline alarm")
        checked = sum(loop.checks for loop in loops)  # two more rounds of the watch: nothing new
        await eventually(lambda: sum(loop.checks for loop in loops) >= checked + 2, timeout=15, what="two more checks")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # The lease may change hands (a fair share at start, a slow machine); the store's memory keeps it one alarm.
    assert sum(loop.raised for loop in loops) == 1, (len(loops), caplog.text)
    assert [e.data["event"] for e in await bus.history("case_deadlines", count=10)] == ["case_overdue"]
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.text
