"""SystemAlarm: a fault of citywall itself that the wall must show (bus stream ``system_alarms``): today the
recorder that cannot write (disk full, quota exhausted, a write error). Raised once when the fault starts, cleared
once when it ends; ``alarm_id`` is stable per fault and node, so repeats are the same banner."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from messages import streams
from messages.codec import known_fields

RECORDING_DISK_FULL = "recording_disk_full"
RECORDING_WRITE_ERROR = "recording_write_error"
SYSTEM_ALARM_KINDS = frozenset({RECORDING_DISK_FULL, RECORDING_WRITE_ERROR})

SystemPhase = Literal["raised", "cleared"]


@dataclass(frozen=True)
class SystemAlarm:
    """One fault of the system (stream ``system_alarms``); see the module docstring."""

    STREAM: ClassVar[str] = streams.SYSTEM_ALARMS

    alarm_id: str
    """``<kind>@<node>``: one per fault and process, so a repeat is the same banner."""
    kind: str
    """``recording_disk_full`` or ``recording_write_error``."""
    phase: SystemPhase
    at: float
    """Unix time the fault was seen (raised) or seen to end (cleared)."""
    node: str
    """Which process (``citywall up`` or a worker's id)."""
    label: str
    """One line in Chinese first: ``录像磁盘已满，录像已停止 (Recording disk full)``."""
    detail: str = ""
    """What failed (the OS error, the path), for the operator."""
    cameras: list[str] = field(default_factory=list)
    """The cameras whose recording failed."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SystemAlarm:
        message = cls(**known_fields(cls, data))
        if message.kind not in SYSTEM_ALARM_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(sorted(SYSTEM_ALARM_KINDS))}, got {message.kind!r}")
        if message.phase not in ("raised", "cleared"):
            raise ValueError(f"phase: must be raised or cleared, got {message.phase!r}")
        return message
