"""Alarm: the one message detectors publish (bus stream ``alarms``).

An event occurrence (one stall in one zone) has one ``alarm_id``; it is published once with
``phase="raised"`` and once with ``phase="cleared"`` when the scene is clear again. Case filing is idempotent
by ``alarm_id``, so replays never duplicate cases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from messages import streams

AlarmPhase = Literal["raised", "cleared"]


@dataclass(frozen=True, slots=True)
class Alarm:
    STREAM: ClassVar[str] = streams.ALARMS

    alarm_id: str
    """Identity of the event occurrence, shared by its raised and cleared messages."""
    phase: AlarmPhase
    camera_id: str
    zone_id: str
    event: str
    """An ``config.EventType`` value: vending, road_occupation, bin_overflow."""
    started_at: float
    """Unix time the object was first seen in the zone."""
    at: float
    """Unix time of this message (raise time or clear time)."""
    dwell_s: float
    confidence: float
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    """Object boxes as normalised (x1, y1, x2, y2)."""
    snapshot: str | None = None
    """Annotated snapshot (boxes + zone), a path relative to the evidence directory."""
    snapshot_clean: str | None = None
    """The same frame without drawings, relative to the evidence directory."""
    detector: str = ""
    """Which analysis produced it, with version, e.g. ``stationary-bg/1``."""
    camera_name: str = ""
    zone_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["boxes"] = [list(b) for b in self.boxes]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alarm:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["boxes"] = [tuple(b) for b in values.get("boxes", [])]
        return cls(**values)
