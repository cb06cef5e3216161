"""Bus messages of voice guidance: ``BroadcastRecord`` (stream ``broadcasts``) and ``GuidanceOutcome`` (stream
``guidance_outcomes``).

A ``BroadcastRecord`` is the audit log entry of one broadcast attempt — who asked, what was said, where, when and
what every speaker answered — including refused attempts (wrong role, rate limit, policy). The wall shows it live
and plays ``hall_url`` in the hall. A ``GuidanceOutcome`` is the closed loop's verdict on one raised alarm; the case
worker files the alarm (with the broadcasts attached) unless the outcome is ``resolved_by_guidance``.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from messages import streams
from messages.codec import known_fields

Source = Literal["alarm", "manual", "schedule"]
Status = Literal["played", "partial", "failed", "refused"]
OutcomeKind = Literal["resolved_by_guidance", "not_resolved", "not_broadcast"]


@dataclass(frozen=True)
class BroadcastRecord:
    STREAM: ClassVar[str] = streams.BROADCASTS

    at: float
    source: Source
    requested_by: str
    """``system`` for alarms, ``schedule:<id>`` for timetabled messages, else the username."""
    text: str
    target: str
    """What was asked for: a speaker id, ``group:<name>``, ``all`` or ``camera:<id>``."""
    status: Status
    reason: str = ""
    """Why refused/failed (the request as a whole); per-speaker reasons are in ``results``."""
    place: str = ""
    """Speaker names, for people."""
    results: list[dict[str, Any]] = field(default_factory=list)
    """Per speaker: ``{speaker_id, speaker_name, outcome, reason, acked, latency_ms, clip_url}``."""
    hall_url: str | None = None
    """The clip for the hall (Opus), when something played."""
    clip_id: str | None = None
    alarm_id: str | None = None
    camera_id: str | None = None
    broadcast_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BroadcastRecord:
        return cls(**known_fields(cls, data))

    @property
    def played(self) -> bool:
        return self.status in ("played", "partial")


@dataclass(frozen=True)
class GuidanceOutcome:
    STREAM: ClassVar[str] = streams.GUIDANCE_OUTCOMES

    alarm_id: str
    camera_id: str
    event: str
    outcome: OutcomeKind
    decided_at: float
    recheck_after_s: float
    alarm: dict[str, Any]
    """The raised alarm as published by the detector (the case worker files it)."""
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    """The ``BroadcastRecord`` dicts of this alarm."""
    cleared_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuidanceOutcome:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def record_status(results: list[dict[str, Any]]) -> Status:
    """played: every speaker acked; partial: some; refused: all refused by policy; failed otherwise."""
    played = sum(1 for r in results if r["outcome"] == "played")
    if results and played == len(results):
        return "played"
    if played:
        return "partial"
    if results and all(r["outcome"] == "refused" for r in results):
        return "refused"
    return "failed"


__all__ = ["BroadcastRecord", "GuidanceOutcome", "OutcomeKind", "record_status"]
