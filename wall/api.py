"""REST routes: health, login/logout/me, cameras, alarms (the case routes are in ``wall.case_api``).

Every input is validated here and every failure is a JSON ``{"error": ...}`` naming the bad field; the case
store is synchronous, so its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import Field

from config import redact_url
from messages import streams
from wall import models, state
from wall.access import note
from wall.auth import (
    COOKIE,
    PasswordCheckBusy,
    SessionsFull,
    clear_session_cookie,
    client_address,
    is_secure,
    require_session,
    set_session_cookie,
)
from wall.errors import BadRequest, json_error
from wall.limits import Window
from wall.models import MAX_PASSWORD, MAX_USERNAME, Body, no_control_chars, read_body, respond
from wall.views import alarm_view, status_view

log = logging.getLogger("citywall.wall.api")

MAX_ALARMS = 500
MAX_CASES_PAGE = 500
HEALTH_TIMEOUT_S = 2.0
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_STATE = re.compile(r"^[a-z_]{1,32}$")

T = TypeVar("T")


class BusUnavailable(RuntimeError):
    """The event bus did not answer; shown to clients as 503."""


def int_param(request: web.Request, name: str, *, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name`` as an int in ``lo..hi``; :class:`BadRequest` naming it otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise BadRequest(name, f"must be an integer between {lo} and {hi}, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(name, f"must be an integer between {lo} and {hi}, got {value}")
    return value


def check_text(field: str, value: str) -> str:
    """Free text from a client (a search, a query parameter): ``value``, or :class:`BadRequest` naming ``field`` when
    it holds control characters (the same rule as a body model's free-text fields, ``wall.models.Clean``)."""
    try:
        return no_control_chars(value)
    except ValueError as exc:
        raise BadRequest(field, str(exc)) from None


def str_param(request: web.Request, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    """Optional query parameter ``name`` matching ``pattern``; :class:`BadRequest` naming it otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not pattern.fullmatch(raw):
        raise BadRequest(name, f"{raw[:40]!r} is not {what}")
    return raw


async def _bus_call(awaitable: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(awaitable, HEALTH_TIMEOUT_S * 5)
    except Exception as exc:  # the bus's own errors (Redis down, timeout) are not the client's fault
        log.warning("event bus call failed: %r", exc)
        raise BusUnavailable(f"event bus unavailable: {type(exc).__name__}") from exc


# ---------------------------------------------------------------------------------------------------- health


async def _timed(check: Awaitable[Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, HEALTH_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "error": redact_url(f"{type(exc).__name__}: {exc}")[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def health(request: web.Request) -> web.Response:
    """Liveness of the bus and the case store, plus hub and live-video figures. 503 when degraded."""
    app = request.app
    bus, store = app[state.BUS], app[state.CASES]
    ping = getattr(bus, "ping", None)
    bus_check = ping() if callable(ping) else bus.history(streams.ALARMS, count=1)
    bus_result, cases_result = await asyncio.gather(
        _timed(bus_check), _timed(asyncio.to_thread(store.list_cases, limit=1))
    )
    ok = bus_result["ok"] and cases_result["ok"]
    live = app[state.LIVE]
    body = {
        "status": "ok" if ok else "degraded",
        "checks": {"bus": bus_result, "cases": cases_result},
        "hub": app[state.HUB].stats(),
        "bus": bus.stats() if callable(getattr(bus, "stats", None)) else {},
        "live": {"available": live is not None, **app[state.LIVE_SOCKETS].stats()},
        "uptime_s": round(time.time() - app[state.STARTED_AT], 1),
    }
    return web.json_response(body, status=200 if ok else 503)


# ---------------------------------------------------------------------------------------------------- session


class LoginBody(Body):
    """``POST /api/login``."""

    username: str = Field(min_length=1, max_length=MAX_USERNAME)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


async def login(request: web.Request) -> web.Response:
    """``{username, password}`` → session cookie and ``{user, csrf_token}``; 401 on a wrong password, 429 when rate
    limited."""
    body = await read_body(request, LoginBody)
    username, password = body.username, body.password

    app = request.app
    limits = app[state.SETTINGS].wall.login
    limiter = app[state.LOGIN_LIMITER]
    address = client_address(request)
    failures = [Window(f"fail:ua:{username}\x00{address}", limits.failures_per_user_address, limits.window_s),
                Window(f"fail:a:{address}", limits.failures_per_address, limits.window_s),
                Window(f"fail:u:{username}", limits.failures_per_user, limits.window_s),
                Window("fail:all", limits.failures_total, limits.window_s)]
    # Counted before the password is checked (one atomic step), so a parallel burst cannot pass the limit.
    wait, attempt = await _bus_call(limiter.acquire(failures, app[state.CLOCK]()))
    if wait > 0:
        retry = max(1, math.ceil(wait))
        note(request, unaudited=True)  # refused before any check: counted (metrics), not a row each (a flood)
        return json_error(
            429, f"too many failed logins for {username}; try again in {retry} s", headers={"Retry-After": str(retry)}
        )
    try:
        user = await app[state.AUTHENTICATOR].check(username, password)
    except PasswordCheckBusy:
        return json_error(503, "too many logins at once; try again in 1 s", headers={"Retry-After": "1"})
    if user is None:
        return json_error(401, "wrong username or password")
    await _bus_call(limiter.release(failures, attempt))  # a right password costs no failure
    successes = [Window(f"ok:u:{username}", limits.successes_per_user, limits.success_window_s)]
    wait, _ = await _bus_call(limiter.acquire(successes, app[state.CLOCK]()))
    if wait > 0:
        retry = max(1, math.ceil(wait))
        return json_error(429, f"too many logins for {username}; try again in {retry} s",
                          headers={"Retry-After": str(retry)})
    sessions = app[state.SESSIONS]
    await sessions.revoke(request.cookies.get(COOKIE))  # a fresh token on every login (no session fixation)
    try:
        session = await sessions.create(user, app[state.CLOCK]())
    except SessionsFull as exc:
        return json_error(503, f"{exc}; try again later", headers={"Retry-After": "60"})
    for token in sessions.take_evicted():  # this user's oldest session ended: its sockets close too
        app[state.HUB].disconnect_session(token)
        app[state.LIVE_SOCKETS].disconnect_session(token)
    response = respond(models.Session(user=models.User(**session.user_dict()), expires_at=session.expires_at,
                                      csrf_token=session.csrf_token))
    note(request, role=session.role.value)
    set_session_cookie(response, session, secure=is_secure(request))
    log.info("login %s (%s) from %s", session.username, session.role.value, address)
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session: forget the token, clear the cookie, close this session's WebSockets."""
    session = require_session(request)
    await request.app[state.SESSIONS].revoke(session.token)
    request.app[state.HUB].disconnect_session(session.token)
    request.app[state.LIVE_SOCKETS].disconnect_session(session.token)
    response = web.json_response({"ok": True})
    clear_session_cookie(response)
    return response


async def me(request: web.Request) -> web.Response:
    """The logged-in user, when the session ends, and the site the wall belongs to (name and timezone)."""
    session = require_session(request)
    settings = request.app[state.SETTINGS]
    return respond(models.Session(user=models.User(**session.user_dict()), expires_at=session.expires_at,
                                  csrf_token=session.csrf_token, site_name=settings.site_name,
                                  timezone=settings.timezone))


# ---------------------------------------------------------------------------------------------------- data


async def cameras(request: web.Request) -> web.Response:
    """Configured cameras with their latest status (from the bus state table ``cameras``)."""
    app = request.app
    live = app[state.LIVE]
    statuses = await _bus_call(app[state.BUS].get_state("cameras"))
    out = []
    for cam in app[state.RUNNING].settings.cameras:
        status = statuses.get(cam.id) or {"camera_id": cam.id, "state": "unknown"}
        out.append({
            "id": cam.id,
            "name": cam.name,
            "enabled": cam.enabled,
            "position": cam.position.model_dump(mode="json"),
            "zones": [z.model_dump(mode="json") for z in cam.zones],
            "status": status_view(status),
            "url": redact_url(cam.url),
            "substream_url": redact_url(cam.substream_url) if cam.substream_url else None,
            "live": bool(live is not None and live.has_camera(cam.id)),
        })
    return web.json_response({"cameras": out})


_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _stream_id_param(request: web.Request, name: str) -> str | None:
    raw = str_param(request, name, _STREAM_ID, "an alarm stream id like 1712345678901-0 (the alarms' id field)")
    if raw is not None and any(int(part) >= 1 << 64 for part in raw.split("-")):
        raise BadRequest(name, f"{raw[:40]!r} is beyond a stream id's 64-bit parts")
    return raw


def _time_param(request: web.Request, name: str) -> int | None:
    """A unix time in seconds (fractions allowed) → milliseconds; :class:`BadRequest` naming ``name``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(name, f"must be a unix time in seconds, got {raw[:40]!r}") from None
    if not 0 <= value <= 10_000_000_000:
        raise BadRequest(name, f"must be a unix time in seconds between 0 and 1e10, got {raw[:40]!r}")
    return int(value * 1000)


async def _stream_page(request: web.Request, stream: str, key: str,
                       view: Callable[[dict[str, Any]], dict[str, Any]]) -> web.Response:
    """A cursor page of ``stream``, newest first, each entry's ``view`` with its stream ``id``, under ``key``.

    ``before=<id>``: older than that entry (the "更早" page); ``after=<id>``: the ``limit`` entries just after it
    (newer; still returned newest first); ``since``/``until``: unix seconds, inclusive. ``older`` is the ``before``
    of the next older page (null when there is none), ``newer`` the ``after`` of the next newer one."""
    limit = int_param(request, "limit", default=100, lo=1, hi=MAX_ALARMS)
    before, after = _stream_id_param(request, "before"), _stream_id_param(request, "after")
    since_ms, until_ms = _time_param(request, "since"), _time_param(request, "until")
    if since_ms is not None and until_ms is not None and until_ms < since_ms:
        raise BadRequest("until", "is before since")
    forward = after is not None and before is None
    entries = await _bus_call(request.app[state.BUS].window(
        stream, after=after, before=before, since_ms=since_ms, until_ms=until_ms, count=limit + 1,
        oldest_first=forward))
    more = len(entries) > limit
    entries = entries[:limit]
    if forward:
        entries.reverse()
    page = [{**view(e.data), "id": e.id} for e in entries]
    older = page[-1]["id"] if page and (forward or more) else None
    newer = page[0]["id"] if page else after
    return web.json_response({key: page, "older": older, "newer": newer, "more_newer": bool(forward and more)})


async def alarms(request: web.Request) -> web.Response:
    """Detector alarms (raised and cleared) with snapshot URLs: a cursor page of stream ``alarms``."""
    return await _stream_page(request, streams.ALARMS, "alarms", alarm_view)


async def case_deadlines(request: web.Request) -> web.Response:
    """The case room's deadline alarms (即将超期 / 案件超期): a cursor page of stream ``case_deadlines``."""
    return await _stream_page(request, streams.CASE_DEADLINES, "deadlines", dict)


@web.middleware
async def bus_unavailable_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """A bus outage is a 503 with a JSON error, not a crash."""
    try:
        return await handler(request)
    except BusUnavailable as exc:
        return json_error(503, str(exc))


def add_routes(app: web.Application) -> None:
    """Register the REST routes on ``app``."""
    app.router.add_get("/api/health", health)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/cameras", cameras)
    app.router.add_get("/api/alarms", alarms)
    app.router.add_get("/api/case-deadlines", case_deadlines)

