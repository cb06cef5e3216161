"""The case state machine: every allowed transition per role, refusals naming what is allowed, and whole paths."""

from __future__ import annotations

import pytest

from cases.workflow import (
    ACTION_LABELS,
    STATE_LABELS,
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    State,
    TransitionError,
    allowed_actions,
    next_state,
    state_before_suspend,
)
from config import Role

W, M, L, A, S = "watch_officer", "monitor", "leader", "admin", "system"


@pytest.mark.parametrize(
    "state, action, actor, after",
    [
        ("reported", "accept", S, "accepted"),
        ("reported", "accept", M, "accepted"),
        ("reported", "void", W, "voided"),
        ("accepted", "register", S, "registered"),
        ("accepted", "register", L, "registered"),
        ("accepted", "reject", W, "rejected"),
        ("registered", "dispatch", S, "dispatched"),
        ("registered", "void", L, "voided"),
        ("dispatched", "start", W, "handling"),
        ("dispatched", "feedback", W, "handled"),
        ("dispatched", "return", W, "returned"),
        ("dispatched", "extend", L, "dispatched"),
        ("dispatched", "suspend", A, "suspended"),
        ("handling", "feedback", A, "handled"),
        ("handling", "return", W, "returned"),
        ("handling", "extend", A, "handling"),
        ("handling", "suspend", L, "suspended"),
        ("returned", "dispatch", W, "dispatched"),
        ("returned", "void", L, "voided"),
        ("handled", "verify", S, "verifying"),
        ("handled", "verify", M, "verifying"),
        ("verifying", "close", W, "closed"),
        ("verifying", "close", L, "closed"),
        ("verifying", "rework", S, "handling"),
        ("verifying", "rework", M, "handling"),
    ],
)
def test_allowed(state, action, actor, after):
    assert next_state(state, action, actor) == State(after)


@pytest.mark.parametrize(
    "state, action, actor, says",
    [
        ("reported", "dispatch", A, "allowed from reported: accept (受理; admin/monitor/system/watch_officer), void"),
        ("reported", "void", S, "cannot void a case in state reported (上报) as system"),
        ("accepted", "reject", S, "allowed from accepted: register"),  # the system never refuses a case
        ("accepted", "reject", M, "reject (不予立案; admin/leader/watch_officer)"),
        ("registered", "void", W, "void (作废; admin/leader)"),
        ("dispatched", "extend", W, "extend (延期; admin/leader)"),  # 延期 needs a leader's approval
        ("dispatched", "close", A, "cannot close a case in state dispatched (派遣)"),
        ("dispatched", "start", S, "start (签收处置; admin/unit/watch_officer)"),
        ("handling", "verify", M, "allowed from handling: feedback"),
        ("handled", "close", L, "allowed from handled: verify (核查"),
        ("verifying", "close", S, "close (结案; admin/leader/watch_officer)"),  # closing is a person's decision
        ("verifying", "close", M, "as monitor"),
        ("suspended", "start", A, "allowed from suspended: resume (恢复; admin/leader)"),
        ("closed", "rework", A, "allowed from closed: none (the case is finished)"),
        ("rejected", "accept", A, "none (the case is finished)"),
        ("voided", "dispatch", L, "none (the case is finished)"),
        ("reported", "teleport", A, "cannot teleport a case in state reported"),
    ],
)
def test_refused_names_allowed_actions(state, action, actor, says):
    with pytest.raises(TransitionError) as info:
        next_state(state, action, actor)
    assert says in str(info.value), str(info.value)
    assert info.value.state == State(state)


def test_unknown_actor_and_state():
    with pytest.raises(ValueError, match="unknown actor role 'janitor'"):
        next_state("reported", "accept", "janitor")
    with pytest.raises(ValueError):
        next_state("lost", "accept", A)


def test_role_enum_accepted():
    assert next_state(State.REPORTED, Action.ACCEPT, Role.WATCH_OFFICER) is State.ACCEPTED


def test_auto_filing_path_is_open_to_system():
    state = State.REPORTED
    for action in (Action.ACCEPT, Action.REGISTER, Action.DISPATCH):
        state = next_state(state, action, S)
    assert state is State.DISPATCHED


def test_full_path_with_return_rework_suspend_and_resume():
    timeline = [{"state": "reported", "action": "report"}]
    state = State.REPORTED

    def step(action: str, actor: str, **kw) -> None:
        nonlocal state
        state = next_state(state, action, actor, **kw)
        timeline.append({"state": state.value, "action": action})

    step("accept", S)
    step("register", S)
    step("dispatch", S)
    step("return", W)  # 回退: not this unit's place
    step("dispatch", W)  # re-dispatched
    step("start", W)
    step("suspend", L)
    assert state_before_suspend(timeline) is State.HANDLING
    step("resume", L, suspended_from=state_before_suspend(timeline))
    assert state is State.HANDLING
    step("feedback", W)
    step("verify", S)
    step("rework", S)  # 返工: the camera still sees the stall
    step("feedback", W)
    step("verify", M)
    step("close", W)
    assert state is State.CLOSED
    assert allowed_actions(state) == []


def test_resume_needs_origin():
    with pytest.raises(ValueError, match="suspended from"):
        next_state("suspended", "resume", L)
    with pytest.raises(ValueError, match="only suspended from dispatched or handling"):
        next_state("suspended", "resume", L, suspended_from="verifying")
    assert next_state("suspended", "resume", A, suspended_from="dispatched") is State.DISPATCHED


def test_allowed_actions_per_role():
    assert allowed_actions("dispatched", L) == [Action.EXTEND, Action.SUSPEND]
    assert allowed_actions("dispatched", S) == []
    assert allowed_actions("verifying") == [Action.CLOSE, Action.REWORK]


def test_table_is_complete():
    # Every open state has a way forward, every state is reachable from 上报, and labels are Chinese.
    reachable, frontier = {State.REPORTED}, [State.REPORTED]
    while frontier:
        s = frontier.pop()
        for t in TRANSITIONS:
            targets = [t.target] if t.target else [State.DISPATCHED, State.HANDLING]
            if t.source == s:
                for target in targets:
                    if target not in reachable:
                        reachable.add(target)
                        frontier.append(target)
    assert reachable == set(State)
    for s in State:
        assert bool(allowed_actions(s)) == (s not in TERMINAL_STATES), s
        assert all("\u4e00" <= ch <= "\u9fff" for ch in STATE_LABELS[s])
    assert set(ACTION_LABELS) == set(Action)
    assert len({(t.source, t.action) for t in TRANSITIONS}) == len(TRANSITIONS)
