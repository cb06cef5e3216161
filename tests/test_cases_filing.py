"""The AI filing policy on the shipped config and demo cameras, on both case-store backends (SQLite, PostgreSQL):
filed and dispatched, deadline from the calendar, idempotent by alarm id, repeats attach to the open case, cleared
alarms are video verification."""

from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases.filing import CaseFiler, FilingError, build_filer
from cases.store import CASE_KEYS, CaseStore
from config import CONFIG_DIR, load_settings
from messages.alarm import Alarm
from messages.case_event import CaseEvent

pytestmark = pytest.mark.every_backend

SH = ZoneInfo("Asia/Shanghai")
WED_11 = datetime(2026, 3, 11, 11, 0, tzinfo=SH).timestamp()


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG_DIR / "demo.yaml")


@pytest.fixture
def filer(settings, store) -> CaseFiler:
    return build_filer(settings, store)


def alarm(alarm_id: str = "a-1", *, phase: str = "raised", camera: str = "cam-vending", zone: str = "pavement",
          event: str = "vending", at: float = WED_11, snapshot: str | None = None) -> Alarm:
    return Alarm(alarm_id=alarm_id, phase=phase, camera_id=camera, zone_id=zone, event=event, started_at=at - 30,
                 at=at, dwell_s=30, confidence=0.87, boxes=[(0.1, 0.7, 0.2, 0.9)],
                 snapshot=snapshot or f"2026/03/11/{camera}/{alarm_id}-{phase}.jpg",
                 snapshot_clean=f"2026/03/11/{camera}/{alarm_id}-{phase}-clean.jpg", detector="stationary-bg/1")


def test_raised_alarm_files_a_dispatched_case(filer, store):
    result = filer.file(alarm())
    assert result.outcome == "filed"
    case = result.case
    assert set(CASE_KEYS) <= set(case)
    assert case["case_no"] == "CW20260311-0001"
    assert (case["source"], case["kind"], case["code"], case["category_name"]) == (
        "camera", "事件", "0501", "无照经营游商")
    assert (case["state"], case["state_label"], case["urgency"]) == ("dispatched", "派遣", "一般")
    assert (case["street"], case["community"], case["grid_code"]) == ("湖滨街道", "东坡社区", "33010200100101")
    assert (case["unit_id"], case["unit_name"]) == ("hubin-squad", "湖滨街道城管中队")
    assert case["address"] == "解放路88号东侧人行道" and case["camera_name"] == "解放路人行道"
    assert case["title"] == "解放路人行道·人行道禁止摆摊区 无照经营游商"
    # 2 工作时 from Wednesday 11:00 crosses lunch: due 14:30.
    assert case["deadline_iso"] == "2026-03-11T14:30:00+08:00"
    assert case["deadline_at"] == datetime(2026, 3, 11, 14, 30, tzinfo=SH).timestamp()
    assert case["time_limit"] == {"value": 2, "unit": "work_hours", "calendar": "上城区数字城管工作日历",
                                  "label": "2 工作时"}
    assert [(e["action"], e["state"], e["actor"]) for e in case["timeline"]] == [
        ("report", "reported", "system"), ("accept", "accepted", "system"),
        ("register", "registered", "system"), ("dispatch", "dispatched", "system")]
    assert "湖滨街道城管中队" in case["timeline"][-1]["note"] and "2026-03-11 14:30" in case["timeline"][-1]["note"]
    assert case["alarm_ids"] == ["a-1"]
    assert case["evidence"] == ["2026/03/11/cam-vending/a-1-raised.jpg", "2026/03/11/cam-vending/a-1-raised-clean.jpg"]
    assert store.get_case(case["id"], now=WED_11) == case
    # The announcement sits in the outbox, written with the case.
    [(_, event)] = store.pending_events()
    ev = CaseEvent.from_dict(event)
    assert (ev.action, ev.case_id, ev.state, ev.actor) == ("filed", case["id"], "dispatched", "system")
    assert ev == result.events[0]


@pytest.mark.parametrize(
    "camera, zone, event, code, unit, deadline",
    [
        ("cam-vending", "pavement", "vending", "0501", "湖滨街道城管中队", "2026-03-11T14:30:00+08:00"),
        ("cam-bin", "bin-1", "bin_overflow", "0305", "上城区环卫所", "2026-03-12T11:00:00+08:00"),  # 1 工作日
        ("cam-road", "lane-1", "road_occupation", "0507", "市政设施养护中心", "2026-03-12T11:00:00+08:00"),
        ("cam-street", "pavement", "road_occupation", "0507", "清波街道城管中队", "2026-03-12T11:00:00+08:00"),
        ("cam-unknown", "z", "vending", "0501", "上城区城市运行管理中心派遣科", "2026-03-11T14:30:00+08:00"),
    ],
)
def test_each_camera_dispatches_to_its_unit(filer, camera, zone, event, code, unit, deadline):
    case = filer.file(alarm(camera=camera, zone=zone, event=event)).case
    assert (case["code"], case["unit_name"], case["deadline_iso"]) == (code, unit, deadline)
    assert case["deadline_at"] > case["reported_at"]
    assert case["address"]


def test_refiling_the_same_alarm_is_a_no_op(filer, store):
    first = filer.file(alarm())
    again = filer.file(alarm())
    assert again.outcome == "duplicate" and again.events == []
    assert again.case["id"] == first.case["id"]
    assert store.list_cases()[1] == 1
    assert len(store.pending_events()) == 1
    assert len(store.get_case(first.case["id"])["timeline"]) == 4


def test_a_repeat_at_the_same_place_attaches(filer, store):
    first = filer.file(alarm("a-1"))
    second = filer.file(alarm("a-2", at=WED_11 + 600))
    assert second.outcome == "attached" and second.case["id"] == first.case["id"]
    case = store.get_case(first.case["id"])
    assert case["alarm_ids"] == ["a-1", "a-2"]
    assert "2026/03/11/cam-vending/a-2-raised.jpg" in case["evidence"]
    assert case["timeline"][-1]["action"] == "attach" and "a-2" in case["timeline"][-1]["note"]
    assert case["deadline_at"] == first.case["deadline_at"]  # a repeat does not restart the clock
    assert store.list_cases()[1] == 1
    assert [e["action"] for _, e in store.pending_events()] == ["filed", "attached"]
    assert filer.file(alarm("a-2", at=WED_11 + 600)).outcome == "duplicate"


@pytest.mark.parametrize(
    "other",
    [
        dict(zone="other-zone"),
        dict(event="road_occupation"),  # another category at the same place
        dict(camera="cam-bin"),
    ],
)
def test_a_different_place_or_category_files_a_new_case(filer, store, other):
    filer.file(alarm("a-1"))
    result = filer.file(alarm("a-2", **other))
    assert result.outcome == "filed"
    assert store.list_cases()[1] == 2
    assert result.case["case_no"] == "CW20260311-0002"


def test_a_closed_case_is_not_reopened(filer, store):
    first = filer.file(alarm("a-1")).case
    with store.transaction() as tx:
        tx.update_case(first["id"], WED_11 + 100, state="closed")
    second = filer.file(alarm("a-2", at=WED_11 + 3600))
    assert second.outcome == "filed" and second.case["id"] != first["id"]


def test_case_numbers_follow_the_local_day(filer):
    late = datetime(2026, 3, 11, 23, 59, tzinfo=SH).timestamp()
    assert filer.file(alarm("a-1", at=late)).case["case_no"] == "CW20260311-0001"
    assert filer.file(alarm("a-2", camera="cam-bin", zone="bin-1", event="bin_overflow", at=late + 120)
                      ).case["case_no"] == "CW20260312-0001"  # 00:01 local, still 16:01 UTC the day before


def test_cleared_alarm_is_video_verification(filer, store):
    case = filer.file(alarm("a-1")).case
    result = filer.file(alarm("a-1", phase="cleared", at=WED_11 + 1200))
    assert result.outcome == "verified"
    got = store.get_case(case["id"])
    assert got["state"] == "dispatched"  # not yet fed back by the unit: evidence only
    assert "2026/03/11/cam-vending/a-1-cleared.jpg" in got["evidence"]
    assert got["timeline"][-1]["action"] == "video_check" and "现场已恢复" in got["timeline"][-1]["note"]
    assert filer.file(alarm("a-1", phase="cleared", at=WED_11 + 1200)).outcome == "duplicate"


def test_cleared_after_feedback_moves_to_verifying(filer, store):
    case = filer.file(alarm("a-1")).case
    with store.transaction() as tx:
        tx.update_case(case["id"], WED_11 + 60, state="handled")
        tx.append_timeline(case["id"], at=WED_11 + 60, state="handled", action="feedback", actor="duty")
    filer.file(alarm("a-1", phase="cleared", at=WED_11 + 1200))
    got = store.get_case(case["id"])
    assert (got["state"], got["state_label"]) == ("verifying", "核查")
    assert [e["action"] for e in got["timeline"][-2:]] == ["video_check", "verify"]
    assert [e["action"] for _, e in store.pending_events()][-1] == "verified"


def test_cleared_without_a_case_is_ignored(filer, store):
    result = filer.file(alarm("never-raised", phase="cleared"))
    assert result.outcome == "ignored" and result.case is None
    assert store.list_cases()[1] == 0 and store.pending_events() == []


def test_unfilable_alarms_are_refused(filer):
    with pytest.raises(FilingError, match="no category for detector event 'juggling'"):
        filer.file(alarm(event="juggling"))
    with pytest.raises(FilingError, match="unknown phase 'paused'"):
        filer.file(alarm(phase="paused"))


def test_two_filers_on_one_database_never_duplicate(settings, cases_url):
    # Two stores (two connections, as two processes would have) racing on the same alarms.
    url = cases_url
    stores = [CaseStore.open(url), CaseStore.open(url)]
    filers = [build_filer(settings, s) for s in stores]
    alarms = [alarm(f"a-{i}", camera=cam, zone=zone, event=ev, at=WED_11 + i)
              for i, (cam, zone, ev) in enumerate([("cam-vending", "pavement", "vending"),
                                                   ("cam-bin", "bin-1", "bin_overflow"),
                                                   ("cam-vending", "pavement", "vending")] * 5)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(f: CaseFiler) -> None:
        for a in alarms:
            r = f.file(a)
            with lock:
                outcomes.append(r.outcome)

    threads = [threading.Thread(target=run, args=(f,)) for f in filers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    cases, total = stores[0].list_cases()
    assert total == 2  # one per place; every repeat attached
    assert sorted(len(c["alarm_ids"]) for c in cases) == [5, 10]
    assert outcomes.count("filed") == 2 and outcomes.count("duplicate") == len(alarms)
    for s in stores:
        s.close()


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("at", "yesterday", "field at must be a finite number"),
        ("at", float("nan"), "field at must be a finite number"),
        ("camera_id", "", "camera_id must be a non-empty string"),
        ("alarm_id", 42, "alarm_id must be a non-empty string"),
        ("snapshot", ["x.jpg"], "snapshot must be a path string"),
    ],
)
def test_badly_typed_alarms_are_refused_before_writing(filer, store, field, value, says):
    bad = Alarm(**{**alarm().to_dict(), field: value, "boxes": []})
    with pytest.raises(FilingError, match=says):
        filer.file(bad)
    assert store.list_cases()[1] == 0
