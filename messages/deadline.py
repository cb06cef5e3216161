"""CaseDeadlineAlarm: the wall alarm the case room raises when an open case nears or passes its deadline (bus
stream ``case_deadlines``, its own: nothing that reads the detectors' ``alarms`` has to tell the two apart).

Until this split the message went on ``alarms`` with a ``kind`` field (``case_near_deadline`` / ``case_overdue``);
:func:`is_legacy_deadline_alarm` recognises such old entries so the case room can move them over once
(``cases.deadlines.move_legacy_deadline_alarms``); nothing else looks at ``kind``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from messages import streams
from messages.codec import known_fields

CASE_NEAR_DEADLINE = "case_near_deadline"
CASE_OVERDUE = "case_overdue"
CASE_DEADLINE_EVENTS = frozenset({CASE_NEAR_DEADLINE, CASE_OVERDUE})


def is_legacy_deadline_alarm(data: dict[str, Any]) -> bool:
    """Whether an old ``alarms`` entry is a deadline alarm written before they had their own stream."""
    return data.get("kind") in CASE_DEADLINE_EVENTS


@dataclass(frozen=True)
class CaseDeadlineAlarm:
    """A wall alarm for one case's deadline (bus stream ``case_deadlines``)."""

    STREAM: ClassVar[str] = streams.CASE_DEADLINES

    alarm_id: str
    """``case-<case id>-<stage>-<deadline>``: stable, so a repeat delivery is the same card and pop-up."""
    stage: str
    """``near_deadline`` or ``overdue``."""
    event: str
    """``case_near_deadline`` or ``case_overdue``: the label, and the key of the wall's alarm priorities."""
    phase: str
    at: float
    started_at: float
    case_id: str
    case_no: str
    title: str
    unit_id: str
    unit_name: str
    deadline_at: float
    deadline_iso: str
    camera_id: str
    """The case's camera ("" for a case without one): the wall pops its live view only for a known camera."""
    camera_name: str
    zone_id: str
    address: str
    label: str
    """``案件超期 CW20260311-0001 上城区城管中队 截止 03-11 15:00`` — one line for any consumer (MQTT, logs)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseDeadlineAlarm:
        return cls(**known_fields(cls, data))
