"""Typed application state of the wall server (``web.AppKey``), shared by its route modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from config import Settings

if TYPE_CHECKING:
    from broker.bus import Bus
    from cases.store import CaseStore
    from wall.auth import Authenticator, LoginLimiter, SessionStore
    from wall.hub import EventHub
    from wall.live_protocol import LiveHub
    from wall.live_ws import LiveSockets

SETTINGS = web.AppKey("settings", Settings)
BUS = web.AppKey("bus", "Bus")
CASES = web.AppKey("cases", "CaseStore")
LIVE = web.AppKey("live", "LiveHub | None")
EVIDENCE_DIR = web.AppKey("evidence_dir", Path)
SESSIONS = web.AppKey("sessions", "SessionStore")
LOGIN_LIMITER = web.AppKey("login_limiter", "LoginLimiter")
HUB = web.AppKey("hub", "EventHub")
LIVE_SOCKETS = web.AppKey("live_sockets", "LiveSockets")
STARTED_AT = web.AppKey("started_at", float)
AUTHENTICATOR = web.AppKey("authenticator", "Authenticator")
CLOCK = web.AppKey("clock", Callable[[], float])
"""Wall-clock time source (``time.time``); sessions and login limits read it."""
