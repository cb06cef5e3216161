"""Deadline alarms: open cases near or past their deadline raise an alarm on the wall, once per case and stage.

:class:`DeadlineWatcher` is the pure core: given ``now`` and the open cases (``CaseStore.open_case_deadlines``) it
returns a :class:`CaseDeadlineAlarm` for every case that newly became *near deadline* (``cases.deadline_watch``:
``near_fraction`` of the time between filing — or the last re-dispatch, ``deadline_from`` — and the deadline
passed, or at most ``near_remaining_s`` left) or
*overdue* (past ``deadline_at``), and remembers it. The memory is keyed by ``(case, stage, deadline)``: an extended
or re-dispatched case has a new deadline and may warn again; a case that jumps straight past its deadline raises
only ``overdue``. Suspended (挂账) and closed cases are not watched.

:class:`DeadlineAlarmLoop` is the thin adapter: every ``interval_s`` it reads the open cases, publishes each new
alarm on its own bus stream ``case_deadlines`` (which the wall tails beside ``alarms``: hub → alarm list, alarm
pop-up) and records it in the store (table ``case_deadline_alarms``), so a restart or another ``cases`` process does
not repeat it. Publish first, then record: at-least-once, and the stable ``alarm_id`` makes a repeat one card.

Nothing that reads the detectors' ``alarms`` (the case worker, voice guidance, the review queue) sees these. Older
versions put them on ``alarms`` with a ``kind`` field; :func:`move_legacy_deadline_alarms` (run once when the loop
starts, then marked done in the bus state table ``migrations``) moves such entries over, keeping their ids. A case
with a camera names it, so the wall's alarm tile shows that camera's live view (is the problem still there?); a case
without one is a card in the alarm list only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from config import DeadlineWatch
from messages import CASE_NEAR_DEADLINE, CASE_OVERDUE, CaseDeadlineAlarm, is_legacy_deadline_alarm, streams

if TYPE_CHECKING:
    from broker.bus import Bus
    from cases.store import CaseStore

log = logging.getLogger("citywall.cases.deadlines")

Stage = Literal["near_deadline", "overdue"]
EVENT_OF_STAGE: dict[str, str] = {"near_deadline": CASE_NEAR_DEADLINE, "overdue": CASE_OVERDUE}
MIGRATIONS_TABLE = "migrations"
SPLIT_MIGRATION = "alarms-to-case_deadlines"
LABELS = {CASE_NEAR_DEADLINE: ("即将超期", "Near deadline"), CASE_OVERDUE: ("案件超期", "Case overdue")}


class DeadlineWatcher:
    """Pure: which open cases newly became near deadline or overdue at ``now`` (see the module docstring)."""

    def __init__(self, rule: DeadlineWatch, *, timezone: str = "Asia/Shanghai",
                 raised: Iterable[tuple[str, str, float]] = ()):
        self.rule = rule
        self.tz = ZoneInfo(timezone)
        self._raised: set[tuple[str, str, float]] = set(raised)

    def stage(self, case: dict[str, Any], now: float) -> Stage | None:
        """The stage ``case`` is in at ``now`` (None: in time)."""
        deadline = float(case["deadline_at"])
        start = float(case.get("deadline_from") or case["reported_at"])  # a re-dispatch restarts the time limit
        if now > deadline:
            return "overdue"
        rule = self.rule
        limit = deadline - start
        if rule.near_fraction is not None and limit > 0 and now - start >= rule.near_fraction * limit:
            return "near_deadline"
        if rule.near_remaining_s is not None and deadline - now <= rule.near_remaining_s:
            return "near_deadline"
        return None

    def check(self, cases: Iterable[dict[str, Any]], now: float) -> list[CaseDeadlineAlarm]:
        """New alarms for ``cases`` (the open ones) at ``now``, remembered so each is returned once. Cases no
        longer given (closed) are forgotten, so the memory stays as large as the open cases."""
        out: list[CaseDeadlineAlarm] = []
        open_ids: set[str] = set()
        for case in cases:
            open_ids.add(case["id"])
            stage = self.stage(case, now)
            if stage is None:
                continue
            key = (case["id"], stage, float(case["deadline_at"]))
            if key in self._raised:
                continue
            self._raised.add(key)
            out.append(self.alarm(case, stage, now))
        self._raised = {k for k in self._raised if k[0] in open_ids}
        return out

    def alarm(self, case: dict[str, Any], stage: Stage, now: float) -> CaseDeadlineAlarm:
        event = EVENT_OF_STAGE[stage]
        deadline = float(case["deadline_at"])
        due = datetime.fromtimestamp(deadline, self.tz).strftime("%m-%d %H:%M")
        unit = str(case.get("unit_name") or "")
        return CaseDeadlineAlarm(
            alarm_id=f"case-{case['id']}-{stage}-{int(deadline)}", stage=stage, event=event, phase="raised", at=now,
            started_at=deadline if stage == "overdue" else now, case_id=case["id"], case_no=case["case_no"],
            title=str(case.get("title") or ""), unit_id=str(case.get("unit_id") or ""), unit_name=unit,
            deadline_at=deadline, deadline_iso=str(case.get("deadline_iso") or ""),
            camera_id=str(case.get("camera_id") or ""), camera_name=str(case.get("camera_name") or ""),
            zone_id=str(case.get("zone_id") or ""), address=str(case.get("address") or ""),
            label=f"{LABELS[event][0]} {case['case_no']} {unit} 截止 {due}".strip())


class DeadlineAlarmLoop:
    """Every ``interval_s``: read the open cases, publish the watcher's new alarms, record them (the adapter)."""

    def __init__(self, store: CaseStore, bus: Bus, rule: DeadlineWatch, *, timezone: str = "Asia/Shanghai",
                 clock: Callable[[], float]):
        self.store = store
        self.bus = bus
        self.rule = rule
        self.timezone = timezone
        self.clock = clock
        self.raised = 0
        self.checks = 0
        """Checks done (each ``step``): lets a caller wait for a check instead of sleeping."""

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``; a store or bus failure propagates (the supervisor restarts it, the store remembers)."""
        await move_legacy_deadline_alarms(self.bus)
        if not self.rule.enabled:
            await stop.wait()
            return
        watcher = DeadlineWatcher(self.rule, timezone=self.timezone,
                                  raised=await asyncio.to_thread(self.store.deadline_alarms_raised))
        while not stop.is_set():
            await self.step(watcher)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.rule.interval_s)

    async def step(self, watcher: DeadlineWatcher) -> list[CaseDeadlineAlarm]:
        """One check: publish and record every new alarm; returns them."""
        cases = await asyncio.to_thread(self.store.open_case_deadlines)
        alarms = watcher.check(cases, self.clock())
        for alarm in alarms:
            await self.bus.publish(alarm)
            await asyncio.to_thread(self.store.record_deadline_alarm, alarm.case_id, alarm.stage, alarm.deadline_at,
                                    alarm.at)
            self.raised += 1
            log.info("%s", alarm.label)
        self.checks += 1
        return alarms


async def move_legacy_deadline_alarms(bus: Bus) -> int:
    """Move the deadline alarms older versions wrote to ``alarms`` onto ``case_deadlines`` (same ids where the order
    allows), once: a later call only reads the marker. Returns how many moved."""
    done = (await bus.get_state(MIGRATIONS_TABLE)).get(SPLIT_MIGRATION)
    if done is not None:
        return 0
    moved = await bus.move(streams.ALARMS, streams.CASE_DEADLINES, is_legacy_deadline_alarm)
    await bus.put_state(MIGRATIONS_TABLE, SPLIT_MIGRATION, {"moved": moved})
    if moved:
        log.info("moved %d case deadline alarms from %s to %s", moved, streams.ALARMS, streams.CASE_DEADLINES)
    return moved


__all__ = ["CASE_NEAR_DEADLINE", "CASE_OVERDUE", "CaseDeadlineAlarm", "DeadlineAlarmLoop", "DeadlineWatcher",
           "move_legacy_deadline_alarms"]
