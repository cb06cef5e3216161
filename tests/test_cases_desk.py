"""CaseDesk: people's workflow actions on stored cases — state, timeline, deadline changes and announcements."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases.categories import LimitUnit, TimeLimit
from cases.desk import CaseDesk, CaseNotFound
from cases.filing import build_filer
from cases.store import CaseStore
from cases.workflow import TransitionError
from config import CONFIG_DIR, load_settings
from messages.alarm import Alarm

SH = ZoneInfo("Asia/Shanghai")
WED_11 = datetime(2026, 3, 11, 11, 0, tzinfo=SH).timestamp()


@pytest.fixture
def env(cases_url):
    store = CaseStore.open(cases_url)
    filer = build_filer(load_settings(CONFIG_DIR / "demo.yaml"), store)
    desk = CaseDesk(filer.config, store)
    raised = Alarm(alarm_id="a-1", phase="raised", camera_id="cam-vending", zone_id="pavement", event="vending",
                   started_at=WED_11 - 30, at=WED_11, dwell_s=30, confidence=0.9, snapshot="s/a-1.jpg")
    case = filer.file(raised).case
    yield store, filer, desk, case, raised
    store.close()


def test_unit_feedback_then_camera_check_then_close(env):
    store, filer, desk, case, raised = env
    desk.act(case["id"], "start", role="watch_officer", user="duty", now=WED_11 + 600)
    desk.act(case["id"], "feedback", role="watch_officer", user="duty", now=WED_11 + 1800, note="已劝离")
    cleared = Alarm(**{**raised.to_dict(), "phase": "cleared", "at": WED_11 + 1900, "snapshot": "s/a-1-after.jpg",
                       "boxes": []})
    filer.file(cleared)
    assert store.get_case(case["id"])["state"] == "verifying"
    event = desk.act(case["id"], "close", role="watch_officer", user="duty", now=WED_11 + 2000)
    assert (event.action, event.state, event.actor) == ("transition", "closed", "duty")
    got = store.get_case(case["id"], now=WED_11 + 99999)
    assert got["state_label"] == "结案" and got["overdue"] is False  # closed in time
    assert [e["action"] for e in got["timeline"]][4:] == ["start", "feedback", "video_check", "verify", "close"]
    assert got["timeline"][5]["actor"] == "duty(watch_officer)" and got["timeline"][5]["note"] == "已劝离"
    assert [e["action"] for _, e in store.pending_events()] == ["filed", "transition", "transition", "verified",
                                                                 "transition"]


def test_extension_pushes_the_deadline_on_the_calendar(env):
    store, _, desk, case, _ = env
    assert case["deadline_iso"] == "2026-03-11T14:30:00+08:00"
    desk.act(case["id"], "extend", role="leader", user="leader", now=WED_11 + 60,
             extension=TimeLimit(value=4, unit=LimitUnit.WORK_HOURS), note="摊主配合整改")
    got = store.get_case(case["id"])
    assert got["deadline_iso"] == "2026-03-12T09:30:00+08:00"  # 14:30 + 3 h today + 1 h tomorrow
    assert got["state"] == "dispatched" and "延期 4 工作时" in got["timeline"][-1]["note"]
    with pytest.raises(ValueError, match="needs an extension"):
        desk.act(case["id"], "extend", role="leader", user="leader", now=WED_11 + 60)


def test_return_and_redispatch_to_another_unit(env):
    store, _, desk, case, _ = env
    desk.act(case["id"], "return", role="watch_officer", user="duty", now=WED_11 + 60, note="非本中队辖区")
    assert store.get_case(case["id"])["state_label"] == "回退"
    later = datetime(2026, 3, 12, 9, 0, tzinfo=SH).timestamp()
    desk.act(case["id"], "dispatch", role="leader", user="leader", now=later, unit_id="qingbo-squad")
    got = store.get_case(case["id"])
    assert (got["state"], got["unit_name"]) == ("dispatched", "清波街道城管中队")
    assert got["deadline_iso"] == "2026-03-12T11:00:00+08:00"  # the limit restarts at re-dispatch
    desk.act(case["id"], "return", role="watch_officer", user="duty", now=later)
    with pytest.raises(ValueError, match="unknown unit 'nobody'"):
        desk.act(case["id"], "dispatch", role="leader", user="leader", now=later, unit_id="nobody")
    assert store.get_case(case["id"])["state"] == "returned"  # the refused re-dispatch rolled back


def test_suspend_and_resume_to_where_it_was(env):
    store, _, desk, case, _ = env
    desk.act(case["id"], "start", role="admin", user="admin", now=WED_11 + 60)
    desk.act(case["id"], "suspend", role="leader", user="leader", now=WED_11 + 120, note="待规划调整")
    assert store.get_case(case["id"])["state_label"] == "挂账"
    desk.act(case["id"], "resume", role="leader", user="leader", now=WED_11 + 180)
    assert store.get_case(case["id"])["state"] == "handling"


def test_refusals_change_nothing(env):
    store, _, desk, case, _ = env
    before = store.get_case(case["id"], now=WED_11)
    with pytest.raises(TransitionError, match="allowed from dispatched: start"):
        desk.act(case["id"], "close", role="admin", user="admin", now=WED_11 + 60)
    with pytest.raises(TransitionError, match="as monitor"):
        desk.act(case["id"], "extend", role="monitor", user="monitor", now=WED_11 + 60,
                 extension=TimeLimit(value=1, unit=LimitUnit.WORK_DAYS))
    with pytest.raises(CaseNotFound):
        desk.act("nope", "start", role="admin", user="admin", now=WED_11)
    assert store.get_case(case["id"], now=WED_11) == before
    assert len(store.pending_events()) == 1
