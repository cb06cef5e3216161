"""CaseEvent: the one message the case room publishes (bus stream ``case_events``) after a case was written."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from messages import streams


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """Something happened to a case; ``case`` is the full case dict as stored after it happened."""

    STREAM: ClassVar[str] = streams.CASE_EVENTS

    case_id: str
    case_no: str
    action: str
    """filed | attached | verified | transition | supervise (a leader's 督办; the state does not change)"""
    state: str
    """The case state after the event (a ``cases.workflow.State`` value)."""
    at: float
    """Unix time of the event."""
    actor: str
    """``system`` or the username (role) that acted."""
    case: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseEvent:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        missing = [k for k in ("case_id", "case_no", "action", "state", "at", "actor") if k not in values]
        if missing:
            raise ValueError(f"CaseEvent is missing {', '.join(missing)}")
        values["at"] = float(values["at"])
        values["case"] = dict(values.get("case") or {})
        return cls(**values)
