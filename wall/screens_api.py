"""REST routes and pages of the wall screens (the adapter between HTTP and :class:`wall.screen_service.ScreenService`).

``/api/screens`` (list, one, layout, tiles, tours), ``/api/plans/{id}/invoke`` (the plan's roles, checked by
``wall.access``),
``/api/alarms/{alarm_id}/ack``, ``/api/map`` (grid cells and camera positions for the offline map); pages
``/wall/{screen}`` (a screen nobody defined → a readable 404 page), ``/console`` and ``/situation``.

Core errors map to HTTP: :class:`ScreenError` → 400 naming the field, :class:`NotFound` → 404,
:class:`Conflict` → 409 saying the current state.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from config import Role
from wall import state
from wall.access import note
from wall.api import BusUnavailable
from wall.auth import require_session
from wall.errors import BadRequest, json_error
from wall.hub import MessageError
from wall.models import Body, read_body
from wall.pages import PAGE_HEADERS, login_first, static_page
from wall.screen_service import ScreenService
from wall.screens import MAX_DWELL_S, MAX_GRID, MIN_DWELL_S, PRESETS, Conflict, NotFound, ScreenError

log = logging.getLogger("citywall.wall.screens")

SCREENS: web.AppKey[ScreenService] = web.AppKey("screens")
"""The app's screen service (kept here, not in ``state.py``: only these routes and ``app.py`` use it)."""

_UNKNOWN_SCREEN = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>未定义的屏幕 — Unknown screen</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
  background: #0b1220; color: #f1f5f9; font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; }}
main {{ max-width: 1400px; padding: 48px; border: 4px solid #f5b400; border-radius: 12px; background: #111b2e; }}
h1 {{ font-size: 72px; margin: 0 0 16px; color: #ffd24d; }} .en {{ font-size: 40px; color: #cbd5e1; }}
p {{ font-size: 40px; line-height: 1.4; margin: 16px 0; }} a {{ color: #7dd3fc; }} code {{ color: #fde68a; }}
</style></head>
<body><main>
<h1>屏幕“<code>{screen}</code>”未定义</h1>
<p class="en">Screen “<code>{screen}</code>” is not defined on this server.</p>
<p>已配置的屏幕 / Configured screens: {links}</p>
<p class="en">Screens are defined in the <code>video_wall.screens</code> section of the configuration.</p>
</main></body></html>
"""


def _service(request: web.Request) -> ScreenService:
    return request.app[SCREENS]


class CustomLayout(Body):
    """A custom grid: ``rows`` x ``cols`` cells, each span ``[row, col, rowspan, colspan]`` merging cells."""

    rows: int = Field(ge=1, le=MAX_GRID)
    cols: int = Field(ge=1, le=MAX_GRID)
    spans: list[Annotated[list[int], Field(min_length=4, max_length=4)]] = []
    name: str | None = None


class LayoutBody(Body):
    """``PUT /api/screens/{id}/layout``."""

    layout: str | CustomLayout = Field(description="a preset (" + ", ".join(PRESETS) + ") or a custom grid")


class TileBody(Body):
    """``PUT /api/screens/{id}/tiles/{tile}``."""

    camera: str | None = Field(description="a camera id, or null to empty the tile")


class TourStartBody(Body):
    """``POST /api/screens/{id}/tour/start``."""

    tour: str = Field(description="a tour id")
    tiles: list[int] | None = Field(None, min_length=1, description="tile indexes (default: all but the alarm tile)")
    dwell_s: float | None = Field(None, ge=MIN_DWELL_S, le=MAX_DWELL_S, description="default: the tour's")


async def _run(request: web.Request, op: Callable[[float], list[str]], action: str,
               detail: dict[str, Any]) -> list[str]:
    session = require_session(request)
    try:
        return await _service(request).apply(op, user=session.user_dict(), action=action, detail=detail)
    except ScreenError as exc:
        raise BadRequest(exc.field, exc.reason) from None
    except (NotFound, Conflict, web.HTTPException):
        raise
    except Exception as exc:  # the bus did not take the change (undone in memory): 503, as every bus read
        raise BusUnavailable(f"event bus unavailable: {type(exc).__name__}; the change was not made") from exc


def _errors(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NotFound as exc:
            return json_error(404, str(exc))
        except Conflict as exc:
            return json_error(409, str(exc))
        except ScreenError as exc:
            raise BadRequest(exc.field, exc.reason) from None
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _screen_id(request: web.Request) -> str:
    screen_id = request.match_info["id"]
    _service(request).wall.screen(screen_id)  # NotFound → 404 before any body is read
    return screen_id


def _screen_response(request: web.Request, screen_id: str) -> web.Response:
    return web.json_response({"screen": _service(request).wall.view(screen_id)})


# ------------------------------------------------------------------------------------------------------ reads


@_errors
async def list_screens(request: web.Request) -> web.Response:
    """Every screen's view, the layout presets, tours and plans (with whether this user may invoke each)."""
    session = require_session(request)
    svc = _service(request)
    wall = svc.wall
    plans = []
    for plan in wall.plans.values():
        roles = svc.plan_roles.get(plan.id, [Role.LEADER.value])
        plans.append({"id": plan.id, "name": plan.name, "roles": roles, "screens": list(plan.screens),
                      "allowed": session.role is Role.ADMIN or session.role.value in roles})
    return web.json_response({
        "screens": [wall.view(sid) for sid in wall.screens],
        "layouts": list(PRESETS),
        "tours": [{"id": t.id, "name": t.name, "cameras": list(t.cameras), "dwell_s": t.dwell_s}
                  for t in wall.tours.values()],
        "plans": plans,
    })


@_errors
async def get_screen(request: web.Request) -> web.Response:
    """One screen's view; 404 for a screen nobody defined."""
    return _screen_response(request, _screen_id(request))


# ------------------------------------------------------------------------------------------------------ changes


@_errors
async def put_layout(request: web.Request) -> web.Response:
    """``{"layout": "3x3"}`` or ``{"layout": {"rows", "cols", "spans"}}``."""
    screen_id = _screen_id(request)
    body = await read_body(request, LayoutBody)
    layout = body.layout if isinstance(body.layout, str) else body.layout.model_dump(exclude_none=True)
    wall = _service(request).wall
    await _run(request, lambda now: wall.set_layout(screen_id, layout, now), "layout", {"layout": layout})
    return _screen_response(request, screen_id)


@_errors
async def put_tile(request: web.Request) -> web.Response:
    """``{"camera": "cam-id"}`` (or null to empty the tile) on tile ``{tile}``."""
    screen_id = _screen_id(request)
    raw = request.match_info["tile"]
    if not raw.isdigit() or len(raw) > 4:
        raise BadRequest("tile", f"{raw[:20]!r} is not a tile index (0, 1, 2, ...)")
    tile = int(raw)
    camera = (await read_body(request, TileBody)).camera
    wall = _service(request).wall
    await _run(request, lambda now: wall.assign(screen_id, tile, camera, now), "tile",
               {"tile": tile, "camera": camera})
    return _screen_response(request, screen_id)


def _tour_handler(action: str):
    @_errors
    async def handler(request: web.Request) -> web.Response:
        screen_id = _screen_id(request)
        wall = _service(request).wall
        if action == "start":
            body = await read_body(request, TourStartBody)
            tour, tiles, dwell = body.tour, body.tiles, body.dwell_s
            op = lambda now: wall.start_tour(screen_id, tour, now, tiles=tiles, dwell_s=dwell)  # noqa: E731
            detail = {"tour": tour, "tiles": tiles, "dwell_s": dwell}
        else:
            op = getattr(wall, f"{action}_tour")
            op = (lambda fn: lambda now: fn(screen_id, now))(op)
            detail = {}
        await _run(request, op, f"tour_{action}", detail)
        return _screen_response(request, screen_id)

    handler.__doc__ = f"{action.capitalize()} the tour (轮巡) on the screen."
    return handler


@_errors
async def invoke_plan(request: web.Request) -> web.Response:
    """Apply an emergency plan (预案) to all its screens (who may: ``wall.access.PerPlan``)."""
    plan_id = request.match_info["id"]
    svc = _service(request)
    if plan_id not in svc.wall.plans:
        raise NotFound("plan", plan_id)
    changed = await _run(request, lambda now: svc.wall.invoke_plan(plan_id, now), "plan",
                         {"plan": plan_id, "name": svc.wall.plans[plan_id].name})
    session = require_session(request)
    log.info("plan %s invoked by %s", plan_id, session.username)
    broadcasts = await _plan_broadcasts(request, plan_id, session.username)
    note(request, name=svc.wall.plans[plan_id].name, screens=changed,
         broadcasts=[{k: b.get(k) for k in ("target", "status")} for b in broadcasts])
    return web.json_response({"plan": plan_id, "screens": [svc.wall.view(sid) for sid in changed],
                              "broadcasts": broadcasts})


@_errors
async def end_plan(request: web.Request) -> web.Response:
    """End an active plan (结束预案): its screens get back what they showed before it (same roles as invoking)."""
    plan_id = request.match_info["id"]
    svc = _service(request)
    if plan_id not in svc.wall.plans:
        raise NotFound("plan", plan_id)
    changed = await _run(request, lambda now: svc.wall.end_plan(plan_id, now), "plan_end",
                         {"plan": plan_id, "name": svc.wall.plans[plan_id].name})
    log.info("plan %s ended by %s", plan_id, require_session(request).username)
    note(request, name=svc.wall.plans[plan_id].name, screens=changed)
    return web.json_response({"plan": plan_id, "screens": [svc.wall.view(sid) for sid in changed]})


async def _plan_broadcasts(request: web.Request, plan_id: str, username: str) -> list[dict[str, Any]]:
    """The plan's broadcast, if it has one: a manual broadcast per target, each logged on ``broadcasts`` like any
    other. The screens have switched already; a broadcast that fails is reported here, not as a failed plan."""
    plan = next((p for p in request.app[state.SETTINGS].video_wall.plans if p.id == plan_id), None)
    if plan is None or plan.broadcast is None:
        return []
    runtime = request.app[state.GUIDANCE]
    if runtime is None:
        return [{"target": t, "status": "skipped", "reason": "voice guidance is not running"}
                for t in plan.broadcast.targets]
    out = []
    for target in plan.broadcast.targets:
        try:
            record = await runtime.broadcaster.manual(target, text=plan.broadcast.text,
                                                      requested_by=f"{username} (预案 {plan.name or plan_id})")
            out.append({"target": target, "status": record.status, "reason": record.reason,
                        "broadcast_id": record.broadcast_id})
        except Exception as exc:  # an unknown target slipped past the config check, a dead speaker adapter …
            log.warning("plan %s: broadcast to %s failed: %r", plan_id, target, exc)
            out.append({"target": target, "status": "failed", "reason": str(exc)[:200]})
    return out


@_errors
async def ack_alarm(request: web.Request) -> web.Response:
    """Acknowledge an alarm: its pop-up reverts on every screen (404 when no screen shows or queues it)."""
    alarm_id = request.match_info["alarm_id"]
    wall = _service(request).wall
    changed = await _run(request, lambda now: wall.ack(alarm_id, now), "ack", {"alarm_id": alarm_id})
    return web.json_response({"alarm_id": alarm_id, "screens": [wall.view(sid) for sid in changed]})


async def _ws_ack(app: web.Application, session: Any, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"type": "ack", "alarm_id": ...}`` on ``/api/ws``: the same as ``POST /api/alarms/{alarm_id}/ack``."""
    alarm_id = message.get("alarm_id")
    if not isinstance(alarm_id, str) or not alarm_id or len(alarm_id) > 128:
        raise MessageError("alarm_id: required, an alarm id string")
    wall = app[SCREENS].wall
    try:
        changed = await app[SCREENS].apply(lambda now: wall.ack(alarm_id, now), user=session.user_dict(),
                                           action="ack", detail={"alarm_id": alarm_id})
    except NotFound as exc:
        raise MessageError(str(exc), target=alarm_id, status=404) from None
    return alarm_id, {"type": "ack_result", "alarm_id": alarm_id, "screens": [wall.view(s) for s in changed]}


# ------------------------------------------------------------------------------------------------------ map


def _read_grid(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("map: cannot read grid %s (%s); the map shows cameras only", path, exc)
        return []
    cells = []
    for feature in doc.get("features", []):
        geom = feature.get("geometry") or {}
        if geom.get("type") == "Polygon" and geom.get("coordinates"):
            props = feature.get("properties") or {}
            cells.append({"grid_code": props.get("grid_code"), "name": props.get("name", ""),
                          "street": props.get("street", ""), "community": props.get("community", ""),
                          "ring": geom["coordinates"][0]})
    return cells


async def map_data(request: web.Request) -> web.Response:
    """Grid cells (outer rings, lon/lat) and camera positions for the offline situation map."""
    require_session(request)
    settings = request.app[state.SETTINGS]
    cache = request.app[_GRID]
    if "cells" not in cache:  # read once, on first use
        cache["cells"] = await asyncio.to_thread(_read_grid, settings.cases.grid_file)
    cells = cache["cells"]
    cams = [{"id": c.id, "name": c.name, "lon": c.position.lon, "lat": c.position.lat,
             "address": c.position.address, "enabled": c.enabled} for c in request.app[state.RUNNING].settings.cameras]
    return web.json_response({"cells": cells, "cameras": cams})


_GRID: web.AppKey[dict[str, list[dict[str, Any]]]] = web.AppKey("map_grid")


# ------------------------------------------------------------------------------------------------------ pages


async def screen_page(request: web.Request) -> web.StreamResponse:
    """``/wall/{screen}``: the wall page for one physical screen; a readable 404 page for an unknown one."""
    screen_id = request.match_info["screen"]
    wall = _service(request).wall
    if screen_id not in wall.screens:
        links = " · ".join(
            f'<a href="/wall/{html.escape(s)}">{html.escape(wall.screens[s].name)} ({html.escape(s)})</a>'
            for s in wall.screens)
        return web.Response(status=404, content_type="text/html", headers=PAGE_HEADERS,
                            text=_UNKNOWN_SCREEN.format(screen=html.escape(screen_id[:64]), links=links))
    return static_page("wall.html")


async def console_page(request: web.Request) -> web.StreamResponse:
    """``/console``: the staff console (layouts, drag-and-drop, tours, plans, acks)."""
    login_first(request)
    return static_page("console.html")


async def situation_page(request: web.Request) -> web.StreamResponse:
    """``/situation``: the situation panel (counters and the offline map) for an aux screen."""
    login_first(request)
    return static_page("situation.html")


def add_routes(app: web.Application) -> None:
    """Create the screen service (started and stopped with the app) and register the routes and pages."""
    app[SCREENS] = ScreenService(app[state.SETTINGS], app[state.BUS], clock=app[state.CLOCK])
    app[_GRID] = {}
    app.cleanup_ctx.append(_screens_ctx)
    app[state.HUB].actions["ack"] = lambda session, message: _ws_ack(app, session, message)
    r = app.router
    r.add_get("/api/screens", list_screens)
    r.add_get("/api/screens/{id}", get_screen)
    r.add_put("/api/screens/{id}/layout", put_layout)
    r.add_put("/api/screens/{id}/tiles/{tile}", put_tile)
    for action in ("start", "pause", "resume", "stop"):
        r.add_post(f"/api/screens/{{id}}/tour/{action}", _tour_handler(action))
    r.add_post("/api/plans/{id}/invoke", invoke_plan)
    r.add_post("/api/plans/{id}/end", end_plan)
    r.add_post("/api/alarms/{alarm_id}/ack", ack_alarm)
    r.add_get("/api/map", map_data)
    r.add_get("/wall/{screen}", screen_page)
    r.add_get("/console", console_page)
    r.add_get("/situation", situation_page)


async def _screens_ctx(app: web.Application):
    service = app[SCREENS]
    await service.start()
    yield
    await service.stop()
