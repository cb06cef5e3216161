"""The AI filing policy: a raised alarm becomes a dispatched case; a repeat at the same place attaches to the open
case; a cleared alarm is the camera's video verification (视频核查).

Deterministic and clock-free: every timestamp comes from the alarm, so replaying an alarm stream gives the same
cases. Idempotent by ``(alarm_id, phase)`` through the store's unique index.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from cases.bundle import CaseConfig, load_case_config
from cases.categories import Category
from cases.store import CaseStore, CaseTx
from cases.workflow import SYSTEM, Action, State, next_state
from config import Camera, Settings
from messages.alarm import Alarm
from messages.case_event import CaseEvent

log = logging.getLogger("citywall.cases.filing")

Outcome = Literal["filed", "attached", "verified", "duplicate", "ignored", "held"]
"""``held``: below the filing policy (``cases.policy``), left to the review queue by the case worker."""


class FilingError(ValueError):
    """An alarm that cannot become a case (unknown phase or event); the worker logs, counts and acks it."""


@dataclass(frozen=True)
class FilingResult:
    """What filing one alarm did; ``events`` were written to the store's outbox in the same transaction."""

    outcome: Outcome
    case: dict[str, Any] | None
    events: list[CaseEvent] = field(default_factory=list)
    reason: str = ""


class CaseFiler:
    """Files alarms into cases using the loaded case config and the cameras' positions."""

    def __init__(self, config: CaseConfig, store: CaseStore, cameras: list[Camera], *, case_prefix: str = "CW"):
        self.config = config
        self.store = store
        self.cameras = {c.id: c for c in cameras}
        self.case_prefix = case_prefix
        self._warned_years: set[int] = set()

    # -- entry point ------------------------------------------------------------------------------------------
    def file(self, alarm: Alarm) -> FilingResult:
        """File one alarm (raised or cleared); safe to call again with the same alarm."""
        check_alarm(alarm)
        if alarm.phase == "raised":
            return self._raised(alarm)
        if alarm.phase == "cleared":
            return self._cleared(alarm)
        raise FilingError(f"alarm {alarm.alarm_id}: unknown phase {alarm.phase!r} (raised or cleared)")

    # -- raised -----------------------------------------------------------------------------------------------
    def _raised(self, alarm: Alarm) -> FilingResult:
        try:
            category = self.config.catalog.for_event(alarm.event)
        except KeyError as exc:
            raise FilingError(f"alarm {alarm.alarm_id}: {exc.args[0]}") from None
        with self.store.transaction() as tx:
            known = tx.case_for_alarm(alarm.alarm_id, "raised")
            if known is not None:
                return FilingResult("duplicate", tx.get_case(known, now=alarm.at), reason="alarm already filed")
            open_id = tx.find_open_case(alarm.camera_id, alarm.zone_id, category.kind, category.code)
            if open_id is not None:
                return self._attach(tx, open_id, alarm)
            return self._new_case(tx, category, alarm)

    def _new_case(self, tx: CaseTx, category: Category, alarm: Alarm) -> FilingResult:
        cal = self.config.calendar
        cam = self.cameras.get(alarm.camera_id)
        pos = cam.position if cam else None
        where = self.config.dispatcher.assign(
            category.ref, pos.lon if pos else None, pos.lat if pos else None,
            street=pos.street if pos else "", community=pos.community if pos else "")
        urgency = category.default_urgency
        limit = category.limit(urgency)
        deadline = cal.deadline(alarm.at, limit)
        reported = cal.local(alarm.at)
        if not cal.covers(reported.date()) and reported.year not in self._warned_years:
            self._warned_years.add(reported.year)
            log.warning("calendar %r has no holidays for %d: deadlines count weekends only; add the year to the "
                        "calendar file", cal.name, reported.year)
        camera_name = cam.name if cam else (alarm.camera_name or alarm.camera_id)
        zone_name = alarm.zone_name or next((z.name for z in (cam.zones if cam else []) if z.id == alarm.zone_id), "")
        case_id = uuid.uuid4().hex
        case = {
            "id": case_id,
            "case_no": tx.next_case_no(reported.strftime("%Y%m%d"), self.case_prefix),
            "source": "camera",
            "kind": category.kind,
            "code": category.code,
            "category_name": category.name,
            "title": f"{camera_name}{'·' + zone_name if zone_name else ''} {category.name}",
            "state": State.DISPATCHED.value,
            "urgency": urgency,
            "camera_id": alarm.camera_id,
            "camera_name": camera_name,
            "zone_id": alarm.zone_id,
            "event": alarm.event,
            "address": (pos.address if pos and pos.address else camera_name),
            "street": where.street,
            "community": where.community,
            "grid_code": where.grid_code,
            "unit_id": where.unit.id,
            "unit_name": where.unit.name,
            "reported_at": alarm.at,
            "deadline_at": deadline.due_ts,
            "deadline_iso": deadline.due.isoformat(),
            "time_limit": {"value": limit.value, "unit": limit.unit.value, "calendar": cal.name,
                           "label": limit.describe()},
            "dispatch_reason": where.reason,
            "updated_at": alarm.at,
        }
        tx.insert_case(case)
        # The auto-filed case walks the standard stages as "system"; each step is checked against the workflow
        # table and recorded, so the timeline reads like a hand-filed case.
        state = State.REPORTED
        tx.append_timeline(case_id, at=alarm.at, state=state, action=Action.REPORT.value, actor=SYSTEM,
                           note=f"视频智能识别上报：{camera_name} {zone_name or alarm.zone_id} {category.name}"
                                f"（置信度 {alarm.confidence:.2f}，持续 {alarm.dwell_s:.0f} 秒）")
        self._guidance(tx, case_id, state.value, alarm)
        notes = {
            Action.ACCEPT: "自动受理",
            Action.REGISTER: f"自动立案：{category.kind} {category.code} {category.name}，{urgency}",
            Action.DISPATCH: f"派遣至 {where.unit.name}，处置时限 {limit.describe()}，"
                             f"截止 {deadline.due.strftime('%Y-%m-%d %H:%M')}",
        }
        steps = []
        for action, note in notes.items():
            state = next_state(state, action, SYSTEM)
            steps.append((alarm.at, state.value, action.value, SYSTEM, note))
        tx.append_timeline_entries(case_id, steps)  # one statement: PostgreSQL pays a round trip per statement
        tx.link_alarm(alarm.alarm_id, "raised", case_id, alarm.at)
        self._evidence(tx, case_id, alarm)
        return self._announce(tx, case_id, "filed", alarm.at, f"{category.ref} → {where.unit.name}")

    def _attach(self, tx: CaseTx, case_id: str, alarm: Alarm) -> FilingResult:
        current = tx.case_state(case_id)
        assert current is not None
        tx.link_alarm(alarm.alarm_id, "raised", case_id, alarm.at)
        self._evidence(tx, case_id, alarm)
        tx.append_timeline(case_id, at=alarm.at, state=current, action="attach", actor=SYSTEM,
                           note=f"同一点位再次报警（{alarm.alarm_id}），并入本案")
        self._guidance(tx, case_id, current, alarm)
        tx.update_case(case_id, alarm.at)
        return self._announce(tx, case_id, "attached", alarm.at, alarm.alarm_id)

    # -- cleared ----------------------------------------------------------------------------------------------
    def _cleared(self, alarm: Alarm) -> FilingResult:
        with self.store.transaction() as tx:
            done = tx.case_for_alarm(alarm.alarm_id, "cleared")
            if done is not None:
                return FilingResult("duplicate", tx.get_case(done, now=alarm.at), reason="clear already recorded")
            case_id = tx.case_for_alarm(alarm.alarm_id, "raised")
            if case_id is None:
                return FilingResult("ignored", None, reason=f"no case holds alarm {alarm.alarm_id}")
            current = tx.case_state(case_id)
            assert current is not None
            tx.link_alarm(alarm.alarm_id, "cleared", case_id, alarm.at)
            for path, kind in ((alarm.snapshot, "after"), (alarm.snapshot_clean, "after_clean")):
                if path:
                    tx.add_evidence(case_id, path, kind=kind, alarm_id=alarm.alarm_id, at=alarm.at)
            state = State(current)
            minutes = max(0.0, alarm.at - alarm.started_at) / 60
            tx.append_timeline(case_id, at=alarm.at, state=state, action="video_check", actor=SYSTEM,
                               note=f"视频核查：现场已恢复（报警 {alarm.alarm_id} 解除，历时 {minutes:.0f} 分钟）")
            if state is State.HANDLED:
                state = next_state(state, Action.VERIFY, SYSTEM)
                tx.append_timeline(case_id, at=alarm.at, state=state, action=Action.VERIFY.value, actor=SYSTEM,
                                   note="处置反馈后视频核查现场已恢复，转核查")
            tx.update_case(case_id, alarm.at, state=state.value)
            return self._announce(tx, case_id, "verified", alarm.at, alarm.alarm_id)

    # -- helpers ----------------------------------------------------------------------------------------------
    @staticmethod
    def _evidence(tx: CaseTx, case_id: str, alarm: Alarm) -> None:
        clip = alarm.extra.get("clip") if isinstance(alarm.extra, dict) else None
        for path, kind in ((alarm.snapshot, "snapshot"), (alarm.snapshot_clean, "snapshot_clean"),
                           (clip if isinstance(clip, str) else None, "clip")):
            if path:
                tx.add_evidence(case_id, path, kind=kind, alarm_id=alarm.alarm_id, at=alarm.at)

    @staticmethod
    def _guidance(tx: CaseTx, case_id: str, state: str, alarm: Alarm) -> None:
        """Voice guidance answered this alarm first and the scene did not clear: each broadcast (what, where, acked
        or not) and the re-check go on the timeline (``alarm.extra["guidance"]``, set by the case worker)."""
        g = alarm.extra.get("guidance") if isinstance(alarm.extra, dict) else None
        if not isinstance(g, dict):
            return
        for b in g.get("broadcasts") or []:
            if not isinstance(b, dict):
                continue
            rows = [r for r in b.get("results") or [] if isinstance(r, dict)]
            acks = "，".join(f"{r.get('speaker_name') or r.get('speaker_id')}"
                            + ("已应答" if r.get("acked") else f"未应答（{r.get('reason') or r.get('outcome')}）")
                            for r in rows) or str(b.get("reason") or "无喇叭")
            tx.append_timeline(case_id, at=float(b.get("at") or alarm.at), state=state, action="guidance_broadcast",
                               actor=SYSTEM, note=f"语音引导广播「{b.get('text', '')}」：{acks}"
                                                  f"（广播 {b.get('broadcast_id', '')}）")
        decided = g.get("decided_at")
        why = ("广播未送达任何喇叭，直接立案" if g.get("outcome") == "not_broadcast"
               else f"广播后 {float(g.get('recheck_after_s') or 0):.0f} 秒复查：现场未恢复，立案")
        tx.append_timeline(case_id, at=float(decided) if isinstance(decided, (int, float)) else alarm.at, state=state,
                           action="guidance_recheck", actor=SYSTEM, note=f"语音引导{why}")

    @staticmethod
    def _announce(tx: CaseTx, case_id: str, action: str, at: float, note: str) -> FilingResult:
        case = tx.get_case(case_id, now=at)
        assert case is not None
        event = CaseEvent(case_id=case_id, case_no=case["case_no"], action=action, state=case["state"], at=at,
                          actor=SYSTEM, case=case, note=note)
        tx.enqueue_event(case_id, event.to_dict(), at)
        return FilingResult(action, case, [event])  # type: ignore[arg-type]


def check_alarm(alarm: Alarm) -> None:
    """Refuse an alarm whose fields have the wrong types before anything is written (a bad producer must not
    crash the worker or leave half a case)."""
    for name in ("alarm_id", "camera_id", "zone_id", "event"):
        value = getattr(alarm, name)
        if not isinstance(value, str) or not value:
            raise FilingError(f"alarm field {name} must be a non-empty string, got {value!r}")
    for name in ("at", "started_at", "dwell_s", "confidence"):
        value = getattr(alarm, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
                float("inf"), float("-inf")):
            raise FilingError(f"alarm {alarm.alarm_id}: field {name} must be a finite number, got {value!r}")
    clip = alarm.extra.get("clip") if isinstance(alarm.extra, dict) else None
    for name, value in (("snapshot", alarm.snapshot), ("snapshot_clean", alarm.snapshot_clean), ("extra.clip", clip)):
        if value is not None and not isinstance(value, str):
            raise FilingError(f"alarm {alarm.alarm_id}: field {name} must be a path string, got {value!r}")
        problem = evidence_path_problem(value) if value else None
        if problem:  # a forged message must not make the store refuse (and the worker crash-loop on) the entry
            raise FilingError(f"alarm {alarm.alarm_id}: field {name} {str(value)[:80]!r} {problem}")


def evidence_path_problem(path: str) -> str | None:
    """Why ``path`` is not a plain path inside the evidence directory, or None when it is."""
    if len(path) > 512:
        return "is longer than 512 characters"
    if "\x00" in path or "\\" in path or any(ord(c) < 32 for c in path):
        return "holds NUL, backslashes or control characters"
    parts = PurePosixPath(path).parts
    if path.startswith("/") or ".." in parts or not parts:
        return "must be relative to the evidence directory, without '..'"
    return None


def build_filer(settings: Settings, store: CaseStore) -> CaseFiler:
    """Load the case config files named in ``settings.cases`` and return a filer for ``settings.cameras``."""
    files = settings.cases
    config = load_case_config(files.categories_file, files.dispatch_file, files.calendar_file, files.grid_file)
    return CaseFiler(config, store, list(settings.cameras))


__all__ = ["CaseFiler", "FilingError", "FilingResult", "build_filer", "check_alarm"]
