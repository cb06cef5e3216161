"""CameraStatus: the one message ingest publishes about a camera's connection (bus stream ``camera_status``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from messages import streams

CameraState = Literal["connecting", "online", "reconnecting", "offline"]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    STREAM: ClassVar[str] = streams.CAMERA_STATUS

    camera_id: str
    state: CameraState
    at: float
    """Unix time this status was observed."""
    fps: float = 0.0
    """Frames per second received over the last few seconds."""
    last_frame_at: float | None = None
    """Unix time of the newest packet, None before the first one."""
    reconnects: int = 0
    """Reconnect attempts since the process started."""
    error: str | None = None
    """Why the camera is not online (credentials already redacted)."""
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    worker: str = ""
    """Which ingest worker holds the connection."""
    extra: dict[str, Any] = field(default_factory=dict)
    retry_at: float | None = None
    """Unix time of the next connection attempt while not online (a refused login: minutes away)."""
    auth_failed: bool = False
    """The camera refused the login (wrong user or password): ``error`` starts with "密码错误"."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraStatus:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
