"""CaseWorker: the thin asyncio adapter that consumes ``alarms`` (consumer group ``cases``), files each alarm in a
thread, publishes the resulting CaseEvents from the store's outbox, then acks.

Order per entry: file (case committed together with its outbox events) → publish outbox → ack. A crash anywhere
leaves the entry pending (redelivered to this consumer on restart, filed as a no-op) or the events in the outbox
(published on restart), so nothing is lost and nothing is filed twice. A malformed entry is logged, counted and
acked; a store or bus failure propagates so the supervisor restarts the worker with backoff.

Voice guidance (``defer``): a raised alarm that guidance answers first is acked without filing; its
``guidance_outcomes`` entry (same group) files it with the broadcasts attached (``not_resolved``/``not_broadcast``)
or files nothing (``resolved_by_guidance``). The outcome carries the whole alarm, so nothing is lost in between.

Filing policy (``policy``, ``cases.auto_file``): a raised alarm below the configured confidence/dwell is *held* —
recorded in the case store (``CaseStore.hold_alarm``; a repeat keeps the first record), counted and acked, not
filed; it stays in the review queue until a reviewer decides it, and a confirm files it. Its later ``cleared``
finds no case and is recorded on the held alarm (the confirm files it as the video check). Held before acked, so
a held alarm survives the bus history moving on and a crash between the two. (The case room's own deadline alarms
are on their own stream, ``case_deadlines``, which this worker does not read.)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cases.filing import CaseFiler, FilingError, FilingResult, build_filer, check_alarm
from cases.policy import filing_decision
from cases.store import CaseStore, StoreError
from config import AutoFile
from messages import Alarm, CaseEvent, streams

if TYPE_CHECKING:  # the Bus is duck-typed here; broker knows no domain and cases needs only its methods
    from broker.bus import Bus

log = logging.getLogger("citywall.cases.worker")

ALARMS_STREAM = streams.ALARMS
GROUP = "cases"
OUTCOMES_STREAM = streams.GUIDANCE_OUTCOMES
"""Voice guidance's verdicts on raised alarms it answered first (``messages.GuidanceOutcome``)."""
FILE_OUTCOMES = ("not_resolved", "not_broadcast")
OUTBOX_PAGE = 100
EARLY_CLEARS = 1000
"""Cleared alarms remembered because they overtook their guidance outcome (bounded; oldest dropped)."""


@dataclass
class WorkerStats:
    """Counters exported for health/metrics."""

    received: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    rejected: int = 0
    failed: int = 0
    published: int = 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class CaseWorker:
    """Consumes alarms into cases; see the module docstring for the delivery guarantees."""

    def __init__(self, store: CaseStore, filer: CaseFiler, bus: Bus, *, consumer: str = "cases-1",
                 group: str = GROUP, block_ms: int = 1000, batch: int = 50,
                 defer: Callable[[str, str, dict], bool] | None = None, policy: AutoFile | None = None,
                 clock: Callable[[], float] = time.time):
        """``defer(camera_id, event, extra)``: a raised alarm that voice guidance answers first is not filed from
        ``alarms`` but from its outcome on ``guidance_outcomes`` (``settings.guidance.defers_filing``).
        ``policy``: the filing thresholds (``settings.cases.auto_file``); None files every raised alarm.
        ``clock``: when an alarm is held (``held_at``)."""
        self.store = store
        self.filer = filer
        self.bus = bus
        self.consumer = consumer
        self.group = group
        self.block_ms = block_ms
        self.batch = batch
        self.defer = defer
        self.policy = policy
        self.clock = clock
        self.stats = WorkerStats()
        # A deferred alarm's "cleared" can be read before its not_resolved outcome (two streams): it finds no case
        # yet, so it is kept here and filed right after the outcome files the case.
        self._early_clears: OrderedDict[str, Alarm] = OrderedDict()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: consume, file, publish, ack."""
        await self.bus.ensure_group(ALARMS_STREAM, self.group)
        if self.defer is not None:
            await self.bus.ensure_group(OUTCOMES_STREAM, self.group)
        await self.flush_outbox()  # announcements a previous run wrote but did not publish
        while not stop.is_set():
            outcomes = []
            if self.defer is not None:
                outcomes = await self.bus.consume(OUTCOMES_STREAM, self.group, self.consumer, block_ms=1,
                                                  count=self.batch)
                for entry in outcomes:
                    await self.handle_outcome(entry.id, entry.data)
            entries = await self.bus.consume(ALARMS_STREAM, self.group, self.consumer,
                                             block_ms=self.block_ms if not outcomes else 1, count=self.batch)
            for entry in entries:
                await self.handle(entry.id, entry.data)
            if not entries:
                await self.flush_outbox()  # actions taken at the desk (other processes) are announced too

    async def handle(self, entry_id: str, data: dict[str, Any]) -> None:
        """File one stream entry, publish what it produced, ack it."""
        self.stats.received += 1
        try:
            alarm = Alarm.from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self.stats.malformed += 1
            log.warning("alarms entry %s is malformed and is skipped: %s (data: %.300r)", entry_id, exc, data)
        else:
            deferred = (alarm.phase == "raised" and self.defer is not None
                        and self.defer(alarm.camera_id, alarm.event, alarm.extra))
            if deferred:
                self.stats.count("deferred")  # filed when guidance's outcome arrives (or never: resolved)
            else:
                result = await self._file(entry_id, alarm)
                if (result is not None and result.outcome == "ignored" and alarm.phase == "cleared"
                        and self.defer is not None and self.defer(alarm.camera_id, alarm.event, alarm.extra)):
                    self._early_clears[alarm.alarm_id] = alarm
                    while len(self._early_clears) > EARLY_CLEARS:
                        self._early_clears.popitem(last=False)
        await self.bus.ack(ALARMS_STREAM, self.group, entry_id)

    async def handle_outcome(self, entry_id: str, data: dict[str, Any]) -> None:
        """A guidance outcome: file the alarm with its broadcasts attached unless guidance resolved it; ack."""
        self.stats.received += 1
        outcome = data.get("outcome")
        try:
            alarm = Alarm.from_dict(data["alarm"])
            broadcasts = list(data.get("broadcasts") or [])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self.stats.malformed += 1
            log.warning("guidance_outcomes entry %s is malformed and is skipped: %s", entry_id, exc)
        else:
            if outcome in FILE_OUTCOMES:
                extra = {**alarm.extra, "guidance": {"outcome": outcome, "decided_at": data.get("decided_at"),
                                                     "recheck_after_s": data.get("recheck_after_s"),
                                                     "broadcasts": broadcasts}}
                await self._file(entry_id, Alarm.from_dict({**alarm.to_dict(), "extra": extra}))
                early = self._early_clears.pop(alarm.alarm_id, None)
                if early is not None:
                    await self._file(entry_id, early)  # the scene cleared after the re-check: video check
            else:
                self._early_clears.pop(alarm.alarm_id, None)
                self.stats.count(str(outcome))  # resolved by guidance: no case
        await self.bus.ack(OUTCOMES_STREAM, self.group, entry_id)

    async def _file(self, entry_id: str, alarm: Alarm) -> FilingResult | None:
        """File one alarm in a thread and publish what it produced (a store failure propagates); None if refused.
        A raised alarm below the filing policy is held: outcome ``held``, recorded in the store, no case."""
        try:
            if alarm.phase == "raised" and self.policy is not None:
                check_alarm(alarm)  # the thresholds compare numbers: a bad producer is refused first
                decision = filing_decision(self.policy, alarm.event, alarm.confidence, alarm.dwell_s)
                if not decision.auto:
                    await asyncio.to_thread(self.store.hold_alarm, alarm.to_dict(), held_at=self.clock())
                    self.stats.count("held")
                    log.info("alarm %s held for review: %s", alarm.alarm_id, decision.reason)
                    return FilingResult("held", None, reason=decision.reason)
            result = await asyncio.to_thread(self.filer.file, alarm)
        except FilingError as exc:
            self.stats.rejected += 1
            log.warning("alarms entry %s not filed: %s", entry_id, exc)
            return None
        except (sqlite3.Error, OSError, StoreError):
            raise  # the store is at fault, not the entry: leave it pending and let the supervisor restart us
        except Exception:
            # A bug triggered by this one entry must not become a poison message that crash-loops the worker;
            # it stays in the stream for a re-run after the fix.
            self.stats.failed += 1
            log.exception("alarms entry %s failed to file and is skipped", entry_id)
            return None
        else:
            self.stats.count(result.outcome)
            if result.outcome == "ignored" and alarm.phase == "cleared":
                # No case holds it: if the policy held its raise, the confirm will want this clear.
                await asyncio.to_thread(self.store.clear_held_alarm, alarm.to_dict())
            if result.case is not None:
                log.info("alarm %s (%s) → %s %s", alarm.alarm_id, alarm.phase, result.outcome,
                         result.case["case_no"])
            await self.flush_outbox()
            return result

    async def flush_outbox(self) -> int:
        """Publish every pending CaseEvent in commit order; returns how many were published."""
        sent = 0
        while True:
            pending = await asyncio.to_thread(self.store.pending_events, OUTBOX_PAGE)
            if not pending:
                return sent
            done: list[int] = []
            try:
                for seq, event in pending:
                    await self.bus.publish(CaseEvent.from_dict(event))
                    done.append(seq)
            finally:
                await asyncio.to_thread(self.store.mark_published, done)
                sent += len(done)
                self.stats.published += len(done)
            if len(pending) < OUTBOX_PAGE:
                return sent  # that was all of it: no second query just to learn the outbox is empty


__all__ = ["CaseWorker", "WorkerStats", "build_filer"]
