"""ReviewDesk: video-monitoring staff confirm or reject the detectors' raised alarms, one item at a time.

An item is a raised alarm (its ``alarm_id``); the queue is given by the caller in working order (oldest first).
A reviewer claims an item with a lease in the store (``CaseStore.review_claim``, under the store's write lock), so
two reviewers never hold the same item; moving on (next/previous) releases the old claim, an abandoned claim
expires after ``lease_s``. Deciding needs a live claim: *confirm* files the alarm (idempotent: the case the filer
already made, or a new one) and notes the confirmation on the case; *reject* records a false positive with a
reason (noted on the case if one was filed automatically). Time comes in as ``now``.

A raised alarm the filing policy held (``cases.policy``) has no case until it is confirmed. The case worker keeps
it in the store (``CaseStore.hold_alarm``, table ``held_alarms``) until a decision here marks it decided, so it
stays in the queue however many alarms follow it on the bus. If its scene has cleared meanwhile, the confirm files
that ``cleared`` message right after (given by the caller, or else the one the worker recorded on the held alarm),
so the new case carries the camera's video check (视频核查) instead of looking like a live problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cases.filing import CaseFiler
from cases.store import CaseStore, StoreConflict
from cases.workflow import Action, State, is_open
from messages.alarm import Alarm
from messages.case_event import CaseEvent

Decision = Literal["confirm", "reject"]
Direction = Literal["next", "prev", "first", "this"]
REJECT_REASONS = ("误报：光影/遮挡", "误报：正常通行或停留", "误报：车辆临时停靠", "重复报警", "其他")
"""Reasons offered by the console (keys 1–5); any other short text is accepted too."""
MAX_REASON = 200


class ReviewConflict(RuntimeError):
    """The item is decided already, or claimed by someone else; ``holder``/``decision`` say by whom."""

    def __init__(self, message: str, *, holder: str | None = None, decision: dict[str, Any] | None = None):
        super().__init__(message)
        self.holder, self.decision = holder, decision


@dataclass(frozen=True)
class ReviewResult:
    item_id: str
    decision: Decision
    reviewer: str
    reason: str
    case: dict[str, Any] | None


class ReviewDesk:
    def __init__(self, store: CaseStore, filer: CaseFiler, *, lease_s: float = 120.0):
        self.store = store
        self.filer = filer
        self.lease_s = lease_s

    def claim(self, reviewer: str, queue: list[str], *, now: float, current: str | None = None,
              direction: Direction = "next") -> str | None:
        """Claim the next free item after ``current`` (``prev``: the nearest free one before it; ``first`` or no
        current: from the start of ``queue``; ``this``: ``current`` itself, picked from the list). None when there
        is none in that direction (``this``: when someone else holds it or it is not in the queue)."""
        if direction == "this":
            if current is None or current not in queue:
                return None
            return self.store.review_claim(reviewer, [current], now=now, lease_s=self.lease_s)
        if current is not None and current in queue and direction != "first":
            i = queue.index(current)
            candidates = queue[i + 1:] if direction == "next" else queue[:i][::-1]
        else:
            candidates = list(queue)
        item = self.store.review_claim(reviewer, candidates, now=now, lease_s=self.lease_s)
        if item is None and current is not None and current in queue:
            # Nothing further that way: keep (and renew) what the reviewer has, if it is still theirs.
            item = self.store.review_claim(reviewer, [current], now=now, lease_s=self.lease_s)
        return item

    def decide(self, alarm: Alarm, reviewer: str, decision: Decision, *, now: float, reason: str = "",
               actor: str | None = None, cleared: Alarm | None = None) -> ReviewResult:
        """Confirm or reject ``alarm`` as ``reviewer``, who must hold its claim. ``cleared``: the alarm's cleared
        message, when the scene has cleared already (filed after a confirm; idempotent like the raise); without
        it, a held alarm's recorded clear is used."""
        item = alarm.alarm_id
        if decision not in ("confirm", "reject"):
            raise ValueError(f"decision must be confirm or reject, not {decision!r}")
        reason = reason.strip()
        if decision == "reject" and not reason:
            raise ValueError("a rejection needs a reason")
        if len(reason) > MAX_REASON:
            raise ValueError(f"reason is longer than {MAX_REASON} characters")
        self._check_claim(item, reviewer, now)
        case_id: str | None = None
        if decision == "confirm":
            if cleared is None:
                cleared = self._recorded_clear(item)
            result = self.filer.file(alarm)
            case_id = result.case["id"] if result.case else None
            if cleared is not None and cleared.alarm_id == item and cleared.phase == "cleared":
                self.filer.file(cleared)
        else:
            with self.store.transaction() as tx:
                case_id = tx.case_for_alarm(item, "raised")
        who = actor or reviewer
        note = (f"人工复核确认（{who}）" if decision == "confirm" else f"人工复核判定误报（{who}）：{reason}")
        try:
            with self.store.transaction() as tx:
                holder = tx._c.execute("SELECT reviewer FROM review_claims WHERE item_id = ? AND until_at > ?",
                                       (item, now)).fetchone()
                if holder is None or holder[0] != reviewer:
                    raise ReviewConflict(f"your claim on {item} has expired; claim it again",
                                         holder=holder[0] if holder else None)
                tx._c.execute("INSERT INTO review_decisions (item_id, decision, reviewer, reason, case_id, at) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (item, decision, reviewer, reason, case_id, now))
                tx._c.execute("DELETE FROM review_claims WHERE item_id = ?", (item,))
                tx.decide_held_alarm(item, now)
                if case_id is not None:
                    current = tx.get_case(case_id, now=now)
                    assert current is not None
                    tx.append_timeline(case_id, at=now, state=current["state"], action=f"review_{decision}",
                                       actor=who, note=note)
                    if decision == "reject" and is_open(current["state"]):
                        self._void(tx, current, who, reason, now)
        except StoreConflict:
            raise ReviewConflict(f"{item} was decided already", decision=self._decision(item, now)) from None
        case = self.store.get_case(case_id, now=now) if case_id else None
        return ReviewResult(item, decision, reviewer, reason, case)

    @staticmethod
    def _void(tx: Any, case: dict[str, Any], who: str, reason: str, now: float) -> None:
        """误报驳回 of an auto-filed alarm: its case is voided (作废) whatever stage it reached — there is nothing
        to handle — with a timeline entry, and the event goes out (webhooks, the unit's side) like any transition.
        A finished case keeps its state; the rejection is noted on it."""
        tx.update_case(case["id"], now, state=State.VOIDED.value)
        note = f"误报驳回，案件作废：{reason}"
        tx.append_timeline(case["id"], at=now, state=State.VOIDED.value, action=Action.VOID.value, actor=who, note=note)
        stored = tx.get_case(case["id"], now=now)
        event = CaseEvent(case_id=case["id"], case_no=stored["case_no"], action="transition",
                          state=State.VOIDED.value, at=now, actor=who, case=stored, note=f"void: {note}")
        tx.enqueue_event(case["id"], event.to_dict(), now)

    def _recorded_clear(self, item: str) -> Alarm | None:
        """The ``cleared`` message the case worker recorded on held alarm ``item``, if any."""
        held = self.store.held_alarm(item)
        return Alarm.from_dict(held.cleared) if held is not None and held.cleared is not None else None

    def _decision(self, item: str, now: float) -> dict[str, Any] | None:
        return self.store.review_states([item], now=now).get(item, {}).get("decision")

    def _check_claim(self, item: str, reviewer: str, now: float) -> None:
        state = self.store.review_states([item], now=now).get(item, {})
        if "decision" in state:
            d = state["decision"]
            raise ReviewConflict(f"{item} was already {'confirmed' if d['decision'] == 'confirm' else 'rejected'} "
                                 f"by {d['reviewer']}", decision=d)
        holder = state.get("claim", {}).get("reviewer")
        if holder != reviewer:
            raise ReviewConflict(f"{item} is claimed by {holder}" if holder else f"claim {item} first",
                                 holder=holder)


__all__ = ["REJECT_REASONS", "ReviewConflict", "ReviewDesk", "ReviewResult"]
