"""System alarms on the wall: ``GET /api/system-alarms`` — the faults of citywall itself (bus stream
``system_alarms``: a recorder that cannot write) raised and not yet cleared, newest first, so a page that opens
while one is raised shows it; the live ``system_alarm`` frames come through the event hub (``wall.hub``), resumed from
the reply's ``last_id`` (the stream's newest entry) so a change between this read and the socket is not lost."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messages import streams
from wall import state
from wall.api import _bus_call

HISTORY = 500
"""Entries read back: far more than the raise/clear pairs a few processes make between two page loads."""


def raised(entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The alarms whose newest entry is ``raised``, from (id, data) pairs newest first."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for entry_id, data in entries:
        key = str(data.get("alarm_id", ""))
        if key in seen:
            continue
        seen.add(key)
        if data.get("phase") == "raised":
            out.append({**data, "id": entry_id})
    return out


async def system_alarms(request: web.Request) -> web.Response:
    """``GET /api/system-alarms``: ``{"alarms": [...], "last_id": id}``, the raised ones (see the module docstring)."""
    entries = await _bus_call(request.app[state.BUS].history(streams.SYSTEM_ALARMS, count=HISTORY))
    return web.json_response({"alarms": raised([(e.id, e.data) for e in entries]),
                              "last_id": entries[0].id if entries else "0-0"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/system-alarms", system_alarms)
