"""Typed application state of the wall server (``web.AppKey``), shared by its route modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from config import Settings

if TYPE_CHECKING:
    from admin.running import RunningConfig
    from broker.bus import Bus
    from cases.store import CaseStore
    from guidance.runtime import GuidanceRuntime
    from wall.auth import Authenticator
    from wall.hub import EventHub
    from wall.limits import Limiter
    from wall.live_protocol import LiveHub
    from wall.live_ws import LiveSockets
    from wall.metrics import Provider
    from wall.sessions import Sessions

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
BUS: web.AppKey[Bus] = web.AppKey("bus")
CASES: web.AppKey[CaseStore] = web.AppKey("cases")
LIVE: web.AppKey[LiveHub | None] = web.AppKey("live")
EVIDENCE_DIR: web.AppKey[Path] = web.AppKey("evidence_dir")
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
LOGIN_LIMITER: web.AppKey[Limiter] = web.AppKey("login_limiter")
HUB: web.AppKey[EventHub] = web.AppKey("hub")
LIVE_SOCKETS: web.AppKey[LiveSockets] = web.AppKey("live_sockets")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at")
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
METRICS: web.AppKey[list[Provider]] = web.AppKey("metrics")
"""Metric providers beyond the wall's own (``wall.metrics``); ``citywall up`` registers the other rooms'."""
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
"""Wall-clock time source (``time.time``); sessions and login limits read it."""
GUIDANCE: web.AppKey[GuidanceRuntime | None] = web.AppKey("guidance")
"""Voice guidance (speakers, broadcaster, clips); None when ``guidance.enabled`` is false."""
RUNNING: web.AppKey[RunningConfig] = web.AppKey("running")
"""The running configuration (``admin.running``): its ``settings.cameras``/``users`` change without a restart;
read the camera list there, not in ``SETTINGS``."""
