"""ReviewDesk on both case-store backends: claims with a lease (two reviewers never hold the same item, even racing
from threads), next/previous, expiry, confirm → case, reject → false positive with a reason."""

from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases.filing import build_filer
from cases.review import ReviewConflict, ReviewDesk
from cases.store import CaseStore
from config import CONFIG_DIR, load_settings
from messages.alarm import Alarm

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 11, 11, 0, tzinfo=SH).timestamp()


def alarm(i: int) -> Alarm:
    cam, zone, ev = [("cam-vending", "pavement", "vending"), ("cam-bin", "bin-1", "bin_overflow")][i % 2]
    return Alarm(alarm_id=f"a-{i}", phase="raised", camera_id=cam, zone_id=zone, event=ev, started_at=T0 + i - 20,
                 at=T0 + i, dwell_s=20, confidence=0.6, snapshot=f"s/{i}.jpg")


@pytest.fixture
def desk(cases_url):
    store = CaseStore.open(cases_url)
    yield ReviewDesk(store, build_filer(load_settings(CONFIG_DIR / "demo.yaml"), store), lease_s=60)
    store.close()


QUEUE = [f"a-{i}" for i in range(6)]


def test_two_reviewers_get_different_items_and_move_next_and_previous(desk):
    assert desk.claim("ann", QUEUE, now=T0) == "a-0"
    assert desk.claim("bob", QUEUE, now=T0) == "a-1"
    assert desk.claim("ann", QUEUE, now=T0, current="a-0") == "a-2"  # skips bob's a-1
    assert desk.claim("bob", QUEUE, now=T0, current="a-1", direction="prev") == "a-0"  # ann let go of a-0
    assert desk.claim("ann", QUEUE, now=T0, current="a-2", direction="prev") == "a-1"
    assert desk.claim("ann", QUEUE, now=T0, current="a-5") == "a-5"  # end of the queue: keeps the current one
    states = desk.store.review_states(QUEUE, now=T0)
    assert {k: v["claim"]["reviewer"] for k, v in states.items()} == {"a-0": "bob", "a-5": "ann"}


def test_a_lease_expires(desk):
    assert desk.claim("ann", QUEUE, now=T0) == "a-0"
    assert desk.claim("bob", ["a-0"], now=T0 + 59) is None
    assert desk.claim("bob", ["a-0"], now=T0 + 61) == "a-0"


def test_racing_reviewers_never_share_an_item(desk):
    got: dict[str, list[str]] = {}
    lock = threading.Lock()

    def reviewer(name: str) -> None:
        mine = []
        current = None
        for _ in range(3):
            item = desk.claim(name, QUEUE, now=T0, current=current)
            if item is None or item == current:
                break
            desk.decide(alarm(int(item[2:])), name, "reject", now=T0, reason="误报：光影/遮挡")
            mine.append(item)
            current = item
        with lock:
            got[name] = mine

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in ("ann", "bob", "cat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decided = [i for items in got.values() for i in items]
    assert sorted(decided) == sorted(set(decided)) and len(decided) == 6


def test_confirm_files_a_case_and_reject_needs_a_reason(desk):
    assert desk.claim("ann", QUEUE, now=T0) == "a-0"
    with pytest.raises(ValueError, match="needs a reason"):
        desk.decide(alarm(0), "ann", "reject", now=T0)
    with pytest.raises(ReviewConflict, match="claimed by ann"):
        desk.decide(alarm(0), "bob", "confirm", now=T0)
    result = desk.decide(alarm(0), "ann", "confirm", now=T0 + 5, actor="监控员")
    assert result.case["case_no"] == "CW20260311-0001" and result.case["alarm_ids"] == ["a-0"]
    assert result.case["timeline"][-1]["action"] == "review_confirm"
    with pytest.raises(ReviewConflict, match="already confirmed by ann"):
        desk.decide(alarm(0), "ann", "confirm", now=T0 + 6)
    assert desk.claim("bob", QUEUE, now=T0 + 7) == "a-1"  # decided items are not offered again
    rejected = desk.decide(alarm(1), "bob", "reject", now=T0 + 8, reason="重复报警")
    assert rejected.case is None and desk.store.list_cases()[1] == 1
    states = desk.store.review_states(["a-0", "a-1"], now=T0 + 9)
    assert states["a-1"]["decision"]["reason"] == "重复报警" and "claim" not in states["a-1"]


def test_held_alarms_leave_the_held_queue_when_decided_and_a_confirm_uses_the_recorded_clear(desk):
    store = desk.store
    for i in (0, 1):
        assert store.hold_alarm(alarm(i).to_dict(), held_at=T0 + i) is True
    assert store.hold_alarm(alarm(0).to_dict(), held_at=T0 + 9) is False  # idempotent by alarm id
    cleared = Alarm(**{**alarm(0).to_dict(), "phase": "cleared", "at": T0 + 60, "snapshot": "s/0-after.jpg"})
    assert store.clear_held_alarm(cleared.to_dict()) is True
    assert [h.alarm_id for h in store.held_alarms()] == ["a-0", "a-1"]

    assert desk.claim("ann", QUEUE, now=T0 + 70) == "a-0"
    case = desk.decide(alarm(0), "ann", "confirm", now=T0 + 71).case  # no clear given: the recorded one is used
    assert [t["action"] for t in case["timeline"]][-2:] == ["video_check", "review_confirm"]
    assert "s/0-after.jpg" in case["evidence"]
    assert desk.claim("bob", QUEUE, now=T0 + 72) == "a-1"
    assert desk.decide(alarm(1), "bob", "reject", now=T0 + 73, reason="重复报警").case is None
    assert store.held_alarms() == []
    assert store.held_alarm("a-0").decided_at == T0 + 71 and store.held_alarm("a-1").decided_at == T0 + 73
    assert desk.claim("cat", ["a-0", "a-1"], now=T0 + 74) is None  # decided items are never claimed again


def test_rejecting_an_auto_filed_alarm_voids_its_case_with_a_timeline_entry(desk):
    filed = desk.filer.file(alarm(0))                      # the case worker filed it at once (auto)
    case_id = filed.case["id"]
    assert desk.store.get_case(case_id, now=T0)["state"] == "dispatched"
    assert desk.claim("ann", QUEUE, now=T0 + 1) == "a-0"
    result = desk.decide(alarm(0), "ann", "reject", now=T0 + 2, reason="误报：正常通行或停留")
    case = desk.store.get_case(case_id, now=T0 + 3)
    assert result.case["state"] == "voided" and case["state"] == "voided"
    last = case["timeline"][-2:]
    assert [e["action"] for e in last] == ["review_reject", "void"]
    assert last[1]["state"] == "voided" and "误报驳回，案件作废" in last[1]["note"] and "正常通行" in last[1]["note"]
    # The unit's side hears of it like any transition (the outbox carries the event).
    events = [e for _, e in desk.store.pending_events(1000) if e["case_id"] == case_id]
    assert (events[-1]["action"], events[-1]["state"], events[-1]["actor"]) == ("transition", "voided", "ann")


def test_rejecting_a_finished_auto_filed_case_only_notes_it(desk):
    case_id = desk.filer.file(alarm(1)).case["id"]
    with desk.store.transaction() as tx:
        tx.update_case(case_id, T0, state="closed")
    assert desk.claim("ann", ["a-1"], now=T0 + 1) == "a-1"
    desk.decide(alarm(1), "ann", "reject", now=T0 + 2, reason="重复报警")
    case = desk.store.get_case(case_id, now=T0 + 3)
    assert case["state"] == "closed" and case["timeline"][-1]["action"] == "review_reject"
