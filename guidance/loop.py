"""The closed loop (闭环): a raised vending/road alarm at a camera with speakers is answered by voice first; after
``recheck_after_s`` the scene decides — cleared: ``resolved_by_guidance`` (no case, counted); not cleared:
``not_resolved`` (the case worker files it with the broadcast attached). A broadcast that reached no speaker is
``not_broadcast`` at once (filed without waiting).

``ClosedLoopCore`` is pure (``now`` comes in). ``GuidanceLoop`` is the thin adapter: consumer group ``guidance``
on ``alarms``; per alarm it broadcasts, persists the pending check in the bus state hash ``guidance_alarms``
(alarm id → pending/decided) and only then acks. ``Bus.consume`` hands a consumer its own unacked entries first on
every call, so holding a raised alarm unacked for T seconds would stall the group; the durable state record gives
the same crash guarantee: a restart resumes every undecided check from it without broadcasting again, and a
decided alarm is never decided twice. The outcome goes to ``guidance_outcomes`` before the record is marked
decided, so a crash in between republishes it (the case filer is idempotent by alarm id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from guidance.broadcaster import Broadcaster
from messages import Alarm, GuidanceOutcome, streams

if TYPE_CHECKING:
    from broker.bus import Bus

log = logging.getLogger("citywall.guidance.loop")

ALARMS_STREAM = streams.ALARMS
GROUP = "guidance"
STATE_TABLE = "guidance_alarms"


@dataclass
class PendingCheck:
    """A raised alarm that was broadcast and waits for its re-check at ``due_at``."""

    alarm: dict[str, Any]
    broadcasts: list[dict[str, Any]]
    started_at: float
    due_at: float
    cleared_at: float | None = None
    outcome: str | None = None  # set once decided

    @property
    def alarm_id(self) -> str:
        return str(self.alarm["alarm_id"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingCheck:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ClosedLoopCore:
    """Pending re-checks by alarm id, and the decisions. Pure: no I/O, no clock."""

    recheck_after_s: float
    pending: dict[str, PendingCheck] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)

    def known(self, alarm_id: str) -> bool:
        """Already pending or decided (a replayed raised alarm must not broadcast again)."""
        return alarm_id in self.pending or alarm_id in self.decided

    def restore(self, check: PendingCheck) -> None:
        """Put back a check read from durable state."""
        if check.outcome is not None:
            self.decided.add(check.alarm_id)
        else:
            self.pending[check.alarm_id] = check

    def start(self, alarm: dict[str, Any], broadcasts: list[dict[str, Any]], now: float,
              played: bool) -> PendingCheck | GuidanceOutcome:
        """The broadcast was made: wait for the re-check, or (nothing played) decide ``not_broadcast`` now."""
        check = PendingCheck(alarm, broadcasts, now, now + self.recheck_after_s)
        if not played:
            return self._decide(check, "not_broadcast", now)
        self.pending[check.alarm_id] = check
        return check

    def cleared(self, alarm_id: str, now: float) -> PendingCheck | None:
        """The detector cleared the alarm; the changed check (None if it is not pending)."""
        check = self.pending.get(alarm_id)
        if check is None or check.cleared_at is not None:
            return None
        check.cleared_at = now
        return check

    def next_due(self) -> float | None:
        return min((c.due_at for c in self.pending.values()), default=None)

    def due(self, now: float) -> list[GuidanceOutcome]:
        """Decide every check whose time has come: cleared by then → resolved_by_guidance, else not_resolved."""
        out = []
        for alarm_id in [a for a, c in self.pending.items() if c.due_at <= now]:
            check = self.pending.pop(alarm_id)
            cleared = check.cleared_at is not None and check.cleared_at <= check.due_at
            out.append(self._decide(check, "resolved_by_guidance" if cleared else "not_resolved", now))
        return out

    def _decide(self, check: PendingCheck, outcome: str, now: float) -> GuidanceOutcome:
        check.outcome = outcome
        self.decided.add(check.alarm_id)
        a = check.alarm
        return GuidanceOutcome(alarm_id=check.alarm_id, camera_id=str(a.get("camera_id", "")),
                               event=str(a.get("event", "")), outcome=outcome,  # type: ignore[arg-type]
                               decided_at=now, recheck_after_s=self.recheck_after_s, alarm=a,
                               broadcasts=check.broadcasts, cleared_at=check.cleared_at)


class GuidanceLoop:
    """The closed loop on the bus (see the module docstring). ``eligible(camera_id, event, extra)`` is
    ``settings.guidance.defers_filing`` — the same rule the case worker uses to wait for the outcome."""

    def __init__(self, bus: Bus, broadcaster: Broadcaster, eligible: Callable[[str, str, dict], bool], *,
                 recheck_after_s: float, consumer: str = "guidance-1", group: str = GROUP,
                 clock: Callable[[], float] = time.time, max_block_ms: int = 500) -> None:
        self.bus = bus
        self.broadcaster = broadcaster
        self.eligible = eligible
        self.core = ClosedLoopCore(recheck_after_s)
        self.consumer = consumer
        self.group = group
        self.clock = clock
        self.max_block_ms = max_block_ms
        self.counts: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: consume alarms, broadcast, decide due checks."""
        await self.bus.ensure_group(ALARMS_STREAM, self.group)
        self.core = ClosedLoopCore(self.core.recheck_after_s)
        for data in (await self.bus.get_state(STATE_TABLE)).values():
            try:
                self.core.restore(PendingCheck.from_dict(data))
            except (TypeError, KeyError):
                log.warning("unreadable guidance state %.200r skipped", data)
        while not stop.is_set():
            await self.decide_due()
            nxt = self.core.next_due()
            block = self.max_block_ms if nxt is None else max(1, min(self.max_block_ms,
                                                                     int((nxt - self.clock()) * 1000)))
            entries = await self.bus.consume(ALARMS_STREAM, self.group, self.consumer, block_ms=block, count=20)
            for entry in entries:
                await self.handle(entry.id, entry.data)
        # Undecided checks stay in the state hash; the next run resumes them.

    async def handle(self, entry_id: str, data: dict[str, Any]) -> None:
        """One alarms entry: a raised eligible alarm is broadcast; a cleared one marks its pending check."""
        try:
            alarm = Alarm.from_dict(data)
        except (KeyError, TypeError, ValueError):
            log.warning("alarms entry %s is malformed; skipped by guidance", entry_id)
            await self.bus.ack(ALARMS_STREAM, self.group, entry_id)
            return
        now = self.clock()
        if alarm.phase == "raised" and self.eligible(alarm.camera_id, alarm.event, alarm.extra) \
                and not self.core.known(alarm.alarm_id):
            record = await self.broadcaster.for_alarm(alarm)
            records = [record.to_dict()] if record is not None else []
            result = self.core.start(dict(data), records, now, played=bool(record and record.played))
            if isinstance(result, GuidanceOutcome):
                await self._publish_outcome(result)
            else:
                await self.bus.put_state(STATE_TABLE, alarm.alarm_id, result.to_dict())
                log.info("alarm %s: broadcast at %s, re-check in %.0f s", alarm.alarm_id, alarm.camera_id,
                         self.core.recheck_after_s)
        elif alarm.phase == "cleared":
            check = self.core.cleared(alarm.alarm_id, now)
            if check is not None:
                await self.bus.put_state(STATE_TABLE, alarm.alarm_id, check.to_dict())
        await self.bus.ack(ALARMS_STREAM, self.group, entry_id)

    async def decide_due(self) -> list[GuidanceOutcome]:
        """Publish the outcome of every check whose re-check time has passed."""
        outcomes = self.core.due(self.clock())
        for outcome in outcomes:
            await self._publish_outcome(outcome)
        return outcomes

    async def _publish_outcome(self, outcome: GuidanceOutcome) -> None:
        await self.bus.publish(outcome)
        state = PendingCheck(outcome.alarm, outcome.broadcasts, outcome.decided_at, outcome.decided_at,
                             outcome.cleared_at, outcome.outcome).to_dict()
        await self.bus.put_state(STATE_TABLE, outcome.alarm_id, state)
        self.counts[outcome.outcome] = self.counts.get(outcome.outcome, 0) + 1
        log.info("alarm %s: %s", outcome.alarm_id, outcome.outcome)


async def outcome_counts(bus: Bus) -> dict[str, int]:
    """Statistics: how many alarms each outcome had (from the durable state, so restarts do not reset them)."""
    counts: dict[str, int] = {}
    for data in (await bus.get_state(STATE_TABLE)).values():
        key = data.get("outcome") or "pending"
        counts[key] = counts.get(key, 0) + 1
    return counts
