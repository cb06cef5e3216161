"""CaseDesk: the people's side of the workflow — accept, dispatch, feed back, verify, close, return, extend,
suspend/resume, rework — applied to stored cases with the role checks of ``cases.workflow`` — and the leader's
督办 (supervise), which is no transition: it marks an open case (count, timeline entry who/when/note).

Each action is one store transaction: the state change, its timeline entry and the ``transition`` CaseEvent in the
outbox (published by the CaseWorker). Time comes in as ``now``; nothing here reads a clock.
"""

from __future__ import annotations

from typing import Any

from cases.bundle import CaseConfig
from cases.categories import TimeLimit
from cases.store import SUPERVISE_ACTION, CaseStore, VersionConflict
from cases.workflow import Action, State, TransitionError, is_open, next_state, state_before_suspend
from config import Role
from messages.case_event import CaseEvent

SUPERVISE_ROLES = frozenset({Role.LEADER.value})
"""Who may 督办: the duty leader (指挥长) only."""


PHOTO_ACTION = "photo"
"""The timeline action of a picture added to a case (not a workflow transition)."""
PHOTO_KINDS = {"field_photo": "现场处置照片", "site_snapshot": "现场抓拍（摄像头当前画面）"}
"""Evidence kinds of pictures added by people, and their timeline labels."""


class PhotoRefused(Exception):
    """A picture for a finished case; ``case`` is the case as it is now."""

    def __init__(self, message: str, *, case: dict[str, Any]):
        super().__init__(message)
        self.case = case


class CaseNotFound(KeyError):
    """No case with that id."""


class SuperviseRefused(Exception):
    """督办 refused: ``forbidden`` (403: not a leader) or the case is finished (409); ``case`` is as it is now."""

    def __init__(self, message: str, *, forbidden: bool, case: dict[str, Any] | None = None):
        super().__init__(message)
        self.forbidden, self.case = forbidden, case


def can_supervise(case: dict[str, Any], role: str) -> bool:
    """Whether ``role`` may 督办 ``case`` now (a leader, an open case)."""
    return role in SUPERVISE_ROLES and is_open(case["state"])


class CaseDesk:
    """Applies workflow actions to stored cases."""

    def __init__(self, config: CaseConfig, store: CaseStore):
        self.config = config
        self.store = store

    def act(self, case_id: str, action: Action | str, *, role: Role | str, user: str, now: float, note: str = "",
            extension: TimeLimit | None = None, unit_id: str | None = None, urgency: str | None = None,
            expected_version: int | None = None) -> CaseEvent:
        """Apply ``action`` by ``user`` (acting as ``role``) at ``now``.

        ``extend`` needs ``extension`` (added to the current deadline on the calendar); ``dispatch`` of a returned
        case may name another ``unit_id`` and restarts the time limit from ``now``. Raises
        :class:`~cases.workflow.TransitionError` (naming the allowed actions) or :class:`CaseNotFound`.

        ``expected_version`` is the case version the person saw: when someone else changed the case since,
        :class:`~cases.store.VersionConflict` (carrying the case as it is now) and nothing is written. Without it,
        two people taking the same step at once still cannot both succeed: the transaction holds the store's write
        lock, so the second sees the new state and gets a TransitionError.
        """
        act = Action(action) if action in {a.value for a in Action} else action
        role_value = role.value if isinstance(role, Role) else str(role)
        with self.store.transaction() as tx:
            case = tx.get_case(case_id, now=now)
            if case is None:
                raise CaseNotFound(case_id)
            if expected_version is not None and case["version"] != expected_version:
                raise VersionConflict(case_id, expected_version, case)
            state = State(case["state"])
            target = next_state(state, act, role_value, suspended_from=(
                state_before_suspend(case["timeline"]) if act == Action.RESUME else None))
            changes: dict[str, Any] = {"state": target.value}
            detail = ""
            if act == Action.EXTEND:
                if extension is None:
                    raise ValueError("extend needs an extension time limit (value and unit)")
                due = self.config.calendar.add(case["deadline_at"], extension)
                changes.update(deadline_at=due.timestamp(), deadline_iso=due.isoformat())
                detail = f"延期 {extension.describe()}，新截止 {due.strftime('%Y-%m-%d %H:%M')}"
            elif act == Action.DISPATCH:
                changes.update(self._redispatch(case, unit_id, now, urgency))
                detail = (f"派遣至 {changes['unit_name']}（{changes['urgency']}），"
                          f"截止 {changes['deadline_iso'][:16].replace('T', ' ')}")
            elif unit_id is not None or urgency is not None:
                raise ValueError(f"{'unit_id' if unit_id is not None else 'urgency'} is only used when dispatching")
            tx.update_case(case_id, now, expected_version=expected_version, **changes)
            text = "；".join(x for x in (detail, note) if x)
            tx.append_timeline(case_id, at=now, state=target.value, action=Action(act).value,
                               actor=f"{user}({role_value})", note=text)
            stored = tx.get_case(case_id, now=now)
            assert stored is not None
            event = CaseEvent(case_id=case_id, case_no=stored["case_no"], action="transition", state=target.value,
                              at=now, actor=user, case=stored,
                              note=f"{Action(act).value}: {text}" if text else Action(act).value)
            tx.enqueue_event(case_id, event.to_dict(), now)
            return event

    def supervise(self, case_id: str, *, role: Role | str, user: str, now: float, note: str = "",
                  expected_version: int | None = None) -> CaseEvent:
        """督办: a leader presses the responsible unit on an open case. The state stays; the case's
        ``supervise_count`` goes up, the timeline records who, when and the note, and a ``supervise`` CaseEvent is
        queued. Raises :class:`SuperviseRefused`, :class:`CaseNotFound` or ``VersionConflict``."""
        role_value = role.value if isinstance(role, Role) else str(role)
        if role_value not in SUPERVISE_ROLES:
            raise SuperviseRefused(f"督办 is for {', '.join(sorted(SUPERVISE_ROLES))}, not {role_value}",
                                   forbidden=True)
        with self.store.transaction() as tx:
            case = tx.get_case(case_id, now=now)
            if case is None:
                raise CaseNotFound(case_id)
            if expected_version is not None and case["version"] != expected_version:
                raise VersionConflict(case_id, expected_version, case)
            if not is_open(case["state"]):
                raise SuperviseRefused(f"case {case['case_no']} is {case['state_label']} ({case['state']}); only open "
                                       "cases can be supervised", forbidden=False, case=case)
            tx.update_case(case_id, now)
            actor = f"{user}({role_value})"
            tx.supervise(case_id, at=now, state=case["state"], actor=actor, note=note or "督办")
            stored = tx.get_case(case_id, now=now)
            assert stored is not None
            event = CaseEvent(case_id=case_id, case_no=stored["case_no"], action=SUPERVISE_ACTION,
                              state=stored["state"], at=now, actor=user, case=stored,
                              note=f"督办（第 {stored['supervise_count']} 次）{'：' + note if note else ''}")
            tx.enqueue_event(case_id, event.to_dict(), now)
            return event

    def add_photo(self, case_id: str, path: str, *, kind: str, role: Role | str, user: str, now: float,
                  taken_at: str | None = None, note: str = "") -> CaseEvent:
        """A picture for an open case: a unit's field photo (``kind`` ``field_photo``, 处置反馈 evidence, with the time
        the phone took it) or the desk's 现场抓拍 from the camera (``site_snapshot``). The file (``path``, relative to
        the evidence directory) is written already; this records it as evidence, in the case's ``photos`` (who,
        when, taken when) and on the timeline, and queues a ``photo`` CaseEvent. :class:`PhotoRefused` (409) for a
        finished case."""
        if kind not in PHOTO_KINDS:
            raise ValueError(f"kind must be one of {', '.join(PHOTO_KINDS)}, got {kind!r}")
        role_value = role.value if isinstance(role, Role) else str(role)
        with self.store.transaction() as tx:
            case = tx.get_case(case_id, now=now)
            if case is None:
                raise CaseNotFound(case_id)
            if not is_open(case["state"]):
                raise PhotoRefused(f"case {case['case_no']} is {case['state_label']} ({case['state']}); pictures are "
                                   "added to open cases only", case=case)
            tx.add_evidence(case_id, path, kind=kind, at=now)
            record = {"path": path, "kind": kind, "at": now, "by": f"{user}({role_value})", "taken_at": taken_at,
                      "note": note}
            tx.update_case(case_id, now, photos=[*(case.get("photos") or []), record])
            label = PHOTO_KINDS[kind]
            taken = f"，拍摄于 {taken_at.replace('T', ' ')}" if taken_at else ""
            text = f"{label}{taken}{'；' + note if note else ''}"
            tx.append_timeline(case_id, at=now, state=case["state"], action=PHOTO_ACTION, actor=f"{user}({role_value})",
                               note=text)
            stored = tx.get_case(case_id, now=now)
            assert stored is not None
            event = CaseEvent(case_id=case_id, case_no=stored["case_no"], action=PHOTO_ACTION, state=stored["state"],
                              at=now, actor=user, case=stored, note=text)
            tx.enqueue_event(case_id, event.to_dict(), now)
            return event

    def _redispatch(self, case: dict[str, Any], unit_id: str | None, now: float,
                    urgency: str | None = None) -> dict[str, Any]:
        units = self.config.dispatcher.units
        if unit_id is not None and unit_id not in units:
            raise ValueError(f"unknown unit {unit_id!r}; known: {', '.join(sorted(units))}")
        unit = units.get(unit_id or case["unit_id"])
        category = self.config.catalog.get(f"{case['kind']}/{case['code']}")
        if urgency is not None and urgency not in category.time_limits:
            raise ValueError(f"urgency must be one of {', '.join(category.time_limits)}, got {urgency!r}")
        level = urgency or case.get("urgency") or category.default_urgency
        limit = category.limit(level)
        due = self.config.calendar.add(now, limit)
        # deadline_from: the time limit runs from now (the deadline watch measures "near" from here, not from filing)
        out: dict[str, Any] = {"deadline_at": due.timestamp(), "deadline_iso": due.isoformat(), "deadline_from": now,
                               "urgency": level, "time_limit": {**(case.get("time_limit") or {}),
                                                                "value": limit.value, "unit": limit.unit.value,
                                                                "label": limit.describe()}}
        if unit is not None:
            out.update(unit_id=unit.id, unit_name=unit.name)
        else:
            out.update(unit_id=case["unit_id"], unit_name=case["unit_name"])
        return out


__all__ = ["CaseDesk", "CaseNotFound", "PhotoRefused", "SuperviseRefused", "TransitionError", "VersionConflict",
           "can_supervise"]
