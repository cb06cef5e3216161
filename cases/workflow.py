"""The case state machine (GB/T 30428 / CJJ/T 106): 上报 → 受理 → 立案 → 派遣 → 处置 → 反馈 → 核查 → 结案, with the
side paths 不予立案, 作废, 回退, 延期, 挂账/恢复 and 返工. Pure: a table of transitions checked against state and role.

Actors are ``config.Role`` values plus ``"system"`` (automatic filing, video verification). A responsible unit's
own people (role ``unit``, scoped to their units by the wall) take the unit's steps — 签收处置, 反馈, 回退 — from the
field page; the centre's watch officer may still record a unit's answer on its behalf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from config import Role

SYSTEM = "system"


class State(str, Enum):
    REPORTED = "reported"
    ACCEPTED = "accepted"
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    HANDLING = "handling"
    HANDLED = "handled"
    VERIFYING = "verifying"
    CLOSED = "closed"
    REJECTED = "rejected"
    VOIDED = "voided"
    RETURNED = "returned"
    SUSPENDED = "suspended"

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS: dict[State, str] = {
    State.REPORTED: "上报",
    State.ACCEPTED: "受理",
    State.REGISTERED: "立案",
    State.DISPATCHED: "派遣",
    State.HANDLING: "处置",
    State.HANDLED: "反馈",
    State.VERIFYING: "核查",
    State.CLOSED: "结案",
    State.REJECTED: "不予立案",
    State.VOIDED: "作废",
    State.RETURNED: "回退",
    State.SUSPENDED: "挂账",
}


class Action(str, Enum):
    REPORT = "report"  # the first timeline entry; not a transition
    ACCEPT = "accept"
    REGISTER = "register"
    REJECT = "reject"
    VOID = "void"
    DISPATCH = "dispatch"
    START = "start"
    FEEDBACK = "feedback"
    RETURN = "return"
    EXTEND = "extend"
    SUSPEND = "suspend"
    RESUME = "resume"
    VERIFY = "verify"
    CLOSE = "close"
    REWORK = "rework"

    @property
    def label(self) -> str:
        return ACTION_LABELS[self]


ACTION_LABELS: dict[Action, str] = {
    Action.REPORT: "上报",
    Action.ACCEPT: "受理",
    Action.REGISTER: "立案",
    Action.REJECT: "不予立案",
    Action.VOID: "作废",
    Action.DISPATCH: "派遣",
    Action.START: "签收处置",
    Action.FEEDBACK: "处置反馈",
    Action.RETURN: "回退",
    Action.EXTEND: "延期",
    Action.SUSPEND: "挂账",
    Action.RESUME: "恢复",
    Action.VERIFY: "核查",
    Action.CLOSE: "结案",
    Action.REWORK: "返工",
}

W, M, L, A, S = Role.WATCH_OFFICER.value, Role.MONITOR.value, Role.LEADER.value, Role.ADMIN.value, SYSTEM
U = Role.UNIT.value
ACTORS: frozenset[str] = frozenset({*(r.value for r in Role), SYSTEM})


@dataclass(frozen=True)
class Transition:
    """``action`` from ``source`` by one of ``roles`` leads to ``target`` (None: back to the state before 挂账)."""

    source: State
    action: Action
    target: State | None
    roles: frozenset[str]


def _t(source: State, action: Action, target: State | None, *roles: str) -> Transition:
    return Transition(source, action, target, frozenset(roles))


TRANSITIONS: tuple[Transition, ...] = (
    _t(State.REPORTED, Action.ACCEPT, State.ACCEPTED, W, M, A, S),
    _t(State.REPORTED, Action.VOID, State.VOIDED, W, L, A),
    _t(State.ACCEPTED, Action.REGISTER, State.REGISTERED, W, L, A, S),
    _t(State.ACCEPTED, Action.REJECT, State.REJECTED, W, L, A),
    _t(State.ACCEPTED, Action.VOID, State.VOIDED, W, L, A),
    _t(State.REGISTERED, Action.DISPATCH, State.DISPATCHED, W, L, A, S),
    _t(State.REGISTERED, Action.VOID, State.VOIDED, L, A),
    _t(State.DISPATCHED, Action.START, State.HANDLING, W, U, A),
    _t(State.DISPATCHED, Action.FEEDBACK, State.HANDLED, W, U, A),
    _t(State.DISPATCHED, Action.RETURN, State.RETURNED, W, U, A),
    _t(State.DISPATCHED, Action.EXTEND, State.DISPATCHED, L, A),
    _t(State.DISPATCHED, Action.SUSPEND, State.SUSPENDED, L, A),
    _t(State.HANDLING, Action.FEEDBACK, State.HANDLED, W, U, A),
    _t(State.HANDLING, Action.RETURN, State.RETURNED, W, U, A),
    _t(State.HANDLING, Action.EXTEND, State.HANDLING, L, A),
    _t(State.HANDLING, Action.SUSPEND, State.SUSPENDED, L, A),
    _t(State.RETURNED, Action.DISPATCH, State.DISPATCHED, W, L, A),
    _t(State.RETURNED, Action.VOID, State.VOIDED, L, A),
    _t(State.SUSPENDED, Action.RESUME, None, L, A),
    _t(State.HANDLED, Action.VERIFY, State.VERIFYING, W, M, A, S),
    _t(State.VERIFYING, Action.CLOSE, State.CLOSED, W, L, A),
    _t(State.VERIFYING, Action.REWORK, State.HANDLING, W, M, A, S),
)

TERMINAL_STATES: frozenset[State] = frozenset({State.CLOSED, State.REJECTED, State.VOIDED})
OPEN_STATES: frozenset[State] = frozenset(State) - TERMINAL_STATES


class TransitionError(ValueError):
    """A transition that the state or the role does not allow; the message lists what is allowed instead."""

    def __init__(self, state: State, action: str, actor: str, allowed: list[Transition]):
        self.state, self.action, self.actor, self.allowed = state, action, actor, allowed
        if allowed:
            options = ", ".join(f"{t.action.value} ({t.action.label}; {'/'.join(sorted(t.roles))})" for t in allowed)
        else:
            options = "none (the case is finished)"
        super().__init__(
            f"cannot {action} a case in state {state.value} ({state.label}) as {actor}; "
            f"allowed from {state.value}: {options}"
        )


def is_open(state: State | str) -> bool:
    return State(state) in OPEN_STATES


def transitions_from(state: State | str) -> list[Transition]:
    return [t for t in TRANSITIONS if t.source == State(state)]


def allowed_actions(state: State | str, actor: str | Role | None = None) -> list[Action]:
    """Actions possible from ``state`` (for ``actor`` when given), in table order."""
    who = actor.value if isinstance(actor, Role) else actor
    return [t.action for t in transitions_from(state) if who is None or who in t.roles]


def next_state(state: State | str, action: Action | str, actor: str | Role, *,
               suspended_from: State | str | None = None) -> State:
    """The state after ``action`` by ``actor``; :class:`TransitionError` when the state or role forbids it.

    ``resume`` returns to the state the case was suspended from (``suspended_from``, see :func:`state_before_suspend`).
    """
    state = State(state)
    who = actor.value if isinstance(actor, Role) else str(actor)
    if who not in ACTORS:
        raise ValueError(f"unknown actor role {who!r}; known: {', '.join(sorted(ACTORS))}")
    options = transitions_from(state)
    try:
        act = Action(action)
    except ValueError:
        raise TransitionError(state, str(action), who, options) from None
    match = next((t for t in options if t.action == act), None)
    if match is None or who not in match.roles:
        raise TransitionError(state, act.value, who, options)
    if match.target is not None:
        return match.target
    if suspended_from is None:
        raise ValueError("resume needs the state the case was suspended from")
    back = State(suspended_from)
    if back not in (State.DISPATCHED, State.HANDLING):
        raise ValueError(f"a case is only suspended from dispatched or handling, not {back.value}")
    return back


def state_before_suspend(timeline: Iterable[Mapping[str, object]]) -> State | None:
    """From a case timeline (oldest first), the state the latest 挂账 was applied to."""
    previous: str | None = None
    found: State | None = None
    for entry in timeline:
        if entry.get("action") == Action.SUSPEND.value and previous is not None:
            found = State(previous)
        previous = str(entry.get("state"))
    return found
