"""Bus messages of the wall screens: the state of one screen after a change, and the audit record of who did what.

``WallScreenState`` (stream ``wall``) is what every browser showing the screen follows (through the event hub);
``WallAction`` (stream ``wall_actions``) is the audit log: layout changes, tile assignments, tours, plans, acks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self

from messages import streams
from messages.codec import known_fields


@dataclass(frozen=True)
class WallScreenState:
    STREAM: ClassVar[str] = streams.WALL

    screen_id: str
    version: int
    at: float
    screen: dict[str, Any]
    """``wall.screens.Wall.view(screen_id)``: layout, tiles (alarm pop-up applied), tour, alarm."""
    origin: str = ""
    """Which wall server published it (several servers follow each other's changes)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**known_fields(cls, data))


@dataclass(frozen=True)
class WallAction:
    STREAM: ClassVar[str] = streams.WALL_ACTIONS

    at: float
    username: str
    role: str
    action: str
    """layout | tile | tour_start | tour_pause | tour_resume | tour_stop | plan | ack"""
    screens: list[str]
    """Screens the action changed."""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**known_fields(cls, data))
