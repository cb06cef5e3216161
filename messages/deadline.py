"""CaseDeadlineAlarm: the wall alarm the case room raises when an open case nears or passes its deadline (bus
stream ``alarms``, beside the detectors' ``Alarm``; ``kind`` tells the two apart, see ``messages.decode``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from messages import streams
from messages.codec import known_fields

CASE_NEAR_DEADLINE = "case_near_deadline"
CASE_OVERDUE = "case_overdue"
CASE_ALARM_KINDS = frozenset({CASE_NEAR_DEADLINE, CASE_OVERDUE})


def is_case_alarm(data: dict[str, Any]) -> bool:
    """Whether an ``alarms`` entry is a case deadline alarm (not a detector's): it has nothing to file or review."""
    return data.get("kind") in CASE_ALARM_KINDS


@dataclass(frozen=True)
class CaseDeadlineAlarm:
    """A wall alarm for one case's deadline (bus stream ``alarms``; ``kind`` tells it from a detector alarm)."""

    STREAM: ClassVar[str] = streams.ALARMS

    alarm_id: str
    """``case-<case id>-<stage>-<deadline>``: stable, so a repeat delivery is the same card and pop-up."""
    kind: str
    """``case_near_deadline`` or ``case_overdue``; also in ``event``, which the wall's alarm priorities key on."""
    stage: str
    """``near_deadline`` or ``overdue``."""
    event: str
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
