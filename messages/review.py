"""AlarmRejected: a reviewer's verdict that a raised alarm was a false positive (bus stream ``alarm_rejections``);
the detectors of that camera learn from it (``detectors.feedback``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from messages import streams
from messages.alarm import Alarm
from messages.codec import known_fields


@dataclass(frozen=True)
class AlarmRejected:
    """A reviewer judged a raised alarm a false positive (stream ``alarm_rejections``); the detectors of that camera
    suppress the same object in the same place from then on (``detectors.feedback``)."""

    STREAM: ClassVar[str] = streams.ALARM_REJECTIONS

    alarm_id: str
    camera_id: str
    zone_id: str
    event: str
    boxes: list[list[float]]
    snapshot_clean: str | None
    """The alarm's clean snapshot (evidence path): the look of the rejected object comes from it."""
    reviewer: str
    reason: str
    at: float

    @classmethod
    def of(cls, alarm: Alarm, reviewer: str, reason: str, at: float) -> AlarmRejected:
        return cls(alarm.alarm_id, alarm.camera_id, alarm.zone_id, alarm.event,
                   [list(map(float, b)) for b in alarm.boxes], alarm.snapshot_clean, reviewer, reason, at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlarmRejected:
        return cls(**known_fields(cls, data))
