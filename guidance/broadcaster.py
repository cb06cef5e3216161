"""``Broadcaster``: one broadcast request (an alarm, a schedule, a leader) → the guidance service → one
``BroadcastRecord`` on the bus.

It resolves targets (a speaker id, ``group:<name>``, ``all``), plays through ``GuidanceService`` (policy, clip,
adapters, acks), adds the hall clip (Opus URL the wall plays), and publishes the record — refused attempts too,
so the ``broadcasts`` stream is the complete audit log.

A broadcast that was played must be logged even when the bus is briefly away (a Redis restart): publishing the
record is retried with backoff for up to ``record_retry_s`` instead of failing at once — a failure would make the
closed loop's supervisor re-handle the alarm and shout a second time with the first broadcast unlogged. If the bus
stays away longer, the record is written to the log (level ERROR, as JSON) before the error propagates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from broker.backoff import Backoff
from guidance.clips import ClipFormat
from guidance.library import ClipLibrary
from guidance.service import AlarmLike, BroadcastResult, GuidanceService
from guidance.speakers import Speaker
from messages.guidance import BroadcastRecord, Source, record_status

Publish = Callable[[BroadcastRecord], Awaitable[Any]]

log = logging.getLogger("citywall.guidance.broadcaster")


class UnknownTarget(KeyError):
    """A target naming no speaker or group; ``str(exc.args[0])`` says which."""


class Broadcaster:
    """Runs broadcasts and logs each one as a ``BroadcastRecord`` through ``publish`` (``bus.publish``)."""

    def __init__(self, service: GuidanceService, publish: Publish, *, library: ClipLibrary | None = None,
                 hall_format: ClipFormat = ClipFormat.OPUS, clock: Callable[[], float] = time.time,
                 record_retry_s: float = 30.0) -> None:
        self.service = service
        self.publish = publish
        self.record_retry_s = record_retry_s
        self.record_retries = 0
        """Record publishes that failed and were tried again (the bus was away)."""
        self.library = library
        self.hall_format = hall_format
        self.clock = clock

    def resolve(self, target: str) -> list[Speaker]:
        """Speakers of ``target``: a speaker id, ``group:<name>`` or ``all``; UnknownTarget otherwise."""
        registry = self.service.registry
        if target == "all":
            return list(registry)
        if target.startswith("group:"):
            found = registry.in_group(target[6:])
            if not found:
                raise UnknownTarget(f"unknown group {target[6:]!r}")
            return found
        try:
            return [registry.get(target)]
        except KeyError:
            raise UnknownTarget(f"unknown speaker {target!r}") from None

    async def for_alarm(self, alarm: AlarmLike) -> BroadcastRecord | None:
        """Warn at the alarm's camera (None when it has no speakers or is not a raised alarm)."""
        results = await self.service.on_alarm(alarm)
        if not results:
            return None
        return await self._record(results, source="alarm", requested_by="system", target=f"camera:{alarm.camera_id}",
                                  text=results[0].text, alarm_id=alarm.alarm_id, camera_id=alarm.camera_id)

    async def manual(self, target: str, *, text: str, requested_by: str, clip_id: str | None = None,
                     repeat: int = 1) -> BroadcastRecord:
        """A leader's broadcast to ``target`` (UnknownTarget / KeyError for an unknown clip), pre-empting."""
        speakers = self.resolve(target)
        source = None
        if clip_id is not None:
            if self.library is None or not self.library.exists(clip_id):
                raise KeyError(f"unknown clip {clip_id!r}")
            library = self.library
            source = lambda fmt: library.get(clip_id, fmt)  # noqa: E731
        results = await asyncio.gather(*(self.service.manual(s.id, text, requested_by=requested_by, repeat=repeat,
                                                             clip=source) for s in speakers))
        return await self._record(list(results), source="manual", requested_by=requested_by, target=target,
                                  text=text, clip_id=clip_id)

    async def scheduled(self, schedule_id: str, targets: list[str], text: str) -> BroadcastRecord:
        """A timetabled message to the union of ``targets``."""
        speakers: dict[str, Speaker] = {}
        for t in targets:
            for s in self.resolve(t):
                speakers.setdefault(s.id, s)
        who = f"schedule:{schedule_id}"
        results = await asyncio.gather(*(self.service.scheduled(s, text, requested_by=who) for s in speakers))
        return await self._record(list(results), source="schedule", requested_by=who, target=",".join(targets),
                                  text=text)

    async def refused(self, *, requested_by: str, target: str, text: str, reason: str,
                      source: Source = "manual") -> BroadcastRecord:
        """Log an attempt refused before any speaker was asked (role, rate limit, bad input)."""
        record = BroadcastRecord(at=self.clock(), source=source, requested_by=requested_by, text=text[:500],
                                 target=target[:200], status="refused", reason=reason)
        await self._log(record)
        return record

    async def _record(self, results: list[BroadcastResult], *, source: Source, requested_by: str, target: str,
                      text: str, alarm_id: str | None = None, camera_id: str | None = None,
                      clip_id: str | None = None) -> BroadcastRecord:
        names = {s.id: s.name for s in self.service.registry}
        rows = [{"speaker_id": r.speaker_id, "speaker_name": names.get(r.speaker_id, r.speaker_id),
                 "outcome": r.outcome, "reason": r.reason, "acked": bool(r.ack and r.ack.ok),
                 "latency_ms": round(r.ack.latency_s * 1000, 1) if r.ack else None, "clip_url": r.clip_url}
                for r in results]
        status = record_status(rows)
        hall_url = await self._hall_url(text, clip_id) if status in ("played", "partial") else None
        reasons = sorted({f"{r['speaker_id']}: {r['reason']}" for r in rows if r["outcome"] != "played"})
        record = BroadcastRecord(at=self.clock(), source=source, requested_by=requested_by, text=text, target=target,
                                 status=status, reason="; ".join(reasons),
                                 place="、".join(r["speaker_name"] for r in rows), results=rows, hall_url=hall_url,
                                 clip_id=clip_id, alarm_id=alarm_id, camera_id=camera_id)
        await self._log(record)
        return record

    async def _log(self, record: BroadcastRecord) -> None:
        """Publish ``record``, retrying while the bus is unreachable (see the module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.record_retry_s
        backoff = Backoff(initial_s=0.2, max_s=5.0)
        while True:
            try:
                await self.publish(record)
                return
            except ConnectionError as exc:  # BusUnavailable is one
                delay = backoff.delay()
                if loop.time() + delay > deadline:
                    log.error("broadcast record not logged on the bus (%s): %s", exc,
                              json.dumps(record.to_dict(), ensure_ascii=False))
                    raise
                self.record_retries += 1
                log.warning("broadcast record not logged yet (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _hall_url(self, text: str, clip_id: str | None) -> str | None:
        try:
            if clip_id is not None and self.library is not None:
                clip = await asyncio.to_thread(self.library.get, clip_id, self.hall_format)
            else:
                clip = await asyncio.to_thread(self.service.cache.get, text, self.hall_format)
        except Exception:  # the hall copy is a courtesy; the street broadcast already happened
            return None
        return self.service.clip_url(clip.name)
