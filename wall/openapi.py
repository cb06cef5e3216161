"""``GET /api/openapi.json``: the OpenAPI 3.1 description of the wall server's API.

The request bodies' component schemas are generated from the body models (``wall.models``), the alarm answers from
the bus message dataclasses (``messages``); the rest of the answers are still written here by hand.

A test checks that every registered ``/api`` route (and ``/evidence``) appears here with its method, so the
document cannot silently fall behind the router. Who may call each operation (``x-roles``), the 403 it answers
otherwise and the CSRF header of state-changing operations are added from the access policy (``wall.access``),
so they cannot fall behind it either. WebSocket routes are described as ``GET`` upgrades; their
frames are documented in the operation descriptions and in ``x-websocket-frames``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from admin.api import ImportBody, NewUserBody, OwnPasswordBody, ProbeBody, UserChangeBody
from cases.audit import MAX_PAGE as MAX_AUDIT_PAGE
from config.settings import EventType
from learning.classes import CLASS_IDS
from messages import Alarm, CaseDeadlineAlarm
from wall import models, state
from wall.access import CSRF_EXEMPT, CSRF_HEADER, ROUTES, SAFE_METHODS, WS_MESSAGES
from wall.api import MAX_ALARMS, MAX_CASES_PAGE, LoginBody
from wall.broadcast_api import BroadcastBody
from wall.case_api import CaseActionBody, SuperviseBody
from wall.errors import MAX_REQUEST_BODY
from wall.models import MAX_NOTE, Body, component_schemas, json_body, message_schema
from wall.review_api import ClaimBody, DecisionBody
from wall.screens_api import LayoutBody, TileBody, TourStartBody


def _generated(*models: type[BaseModel]) -> None:
    """Add the component schemas generated from ``models`` (``wall.models``); a name taken by another schema is a
    mistake at import time, not a silently wrong document."""
    for name, schema in component_schemas(*models).items():
        if SCHEMAS.setdefault(name, schema) != schema:
            raise ValueError(f"OpenAPI component {name!r} is defined twice, differently")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_UNAUTHORIZED = _error("no session (log in first)")
_SESSION: list[dict[str, list[str]]] = [{"session": []}]

_STREAM_ID_TEXT = "bus stream id (use it to resume the WebSocket)"

SCHEMAS: dict[str, Any] = {
    "Check": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}, "latency_ms": {"type": "number"}, "error": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "checks", "hub", "live"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "checks": {
                "type": "object",
                "properties": {"bus": _ref("Check"), "cases": _ref("Check")},
            },
            "hub": {
                "type": "object",
                "description": "WebSocket event hub counters",
                "properties": {
                    k: {"type": "integer"}
                    for k in (
                        "clients", "connected_total", "entries", "sent", "dropped_clients",
                        "tail_errors", "resumes", "resumed_frames",
                    )
                } | {"tailing": {"type": "boolean"}},
            },
            "live": {
                "type": "object",
                "description": "live-video socket counters",
                "properties": {"available": {"type": "boolean"}} | {
                    k: {"type": "integer"}
                    for k in ("viewers", "opened_total", "fragments_sent", "bytes_sent", "offline", "unknown_camera")
                },
            },
            "bus": {"type": "object", "description": "event bus client counters (published, read, reconnects...)"},
            "uptime_s": {"type": "number"},
        },
    },
    "Position": {
        "type": "object",
        "properties": {
            "lon": {"type": "number"}, "lat": {"type": "number"}, "address": {"type": "string"},
            "street": {"type": "string"}, "community": {"type": "string"},
        },
    },
    "Zone": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": [e.value for e in EventType]}},
            "polygon": {
                "type": "array",
                "description": "normalised (x, y) image coordinates, 0..1",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            },
            "dwell_s": {"type": "number"},
            "min_area": {"type": "number"},
            "cooldown_s": {"type": "number"},
            "schedule": {"type": "array", "items": {"type": "string"}},
        },
    },
    "CameraStatus": {
        "type": "object",
        "required": ["state"],
        "properties": {
            "camera_id": {"type": "string"},
            "state": {"type": "string", "enum": ["unknown", "connecting", "online", "reconnecting", "offline"]},
            "at": {"type": "number"},
            "fps": {"type": "number"},
            "last_frame_at": {"type": ["number", "null"]},
            "reconnects": {"type": "integer"},
            "error": {"type": ["string", "null"]},
            "width": {"type": ["integer", "null"]},
            "height": {"type": ["integer", "null"]},
            "codec": {"type": ["string", "null"]},
            "worker": {"type": "string"},
            "retry_at": {"type": ["number", "null"], "description": "next connection attempt (Unix time)"},
            "auth_failed": {"type": "boolean", "description": "the camera refused the login (密码错误)"},
        },
    },
    "Camera": {
        "type": "object",
        "required": ["id", "name", "position", "zones", "status", "url"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "enabled": {"type": "boolean"},
            "position": _ref("Position"),
            "zones": {"type": "array", "items": _ref("Zone")},
            "status": _ref("CameraStatus"),
            "url": {"type": "string", "description": "credentials redacted (user:***@)"},
            "substream_url": {"type": ["string", "null"], "description": "credentials redacted (user:***@)"},
            "live": {"type": "boolean", "description": "live video can be opened for this camera"},
        },
    },
    "Alarm": message_schema(
        Alarm, "a detector alarm (stream alarms)", id_text=_STREAM_ID_TEXT,
        snapshot_url={"type": ["string", "null"], "description": "/evidence/... URL of the annotated snapshot"},
        snapshot_clean_url={"type": ["string", "null"]},
        clip_url={"type": ["string", "null"], "description": "/evidence/... URL of the evidence clip"}),
    "CaseDeadlineAlarm": message_schema(CaseDeadlineAlarm, "the case room's deadline alarm (stream case_deadlines)",
                                        id_text=_STREAM_ID_TEXT),
    "Case": {
        "type": "object",
        "required": ["id", "case_no", "state"],
        "properties": {
            "id": {"type": "string"},
            "case_no": {"type": "string"},
            "source": {"type": "string"},
            "kind": {"type": "string", "description": "部件 or 事件"},
            "code": {"type": "string", "description": "standard category code, e.g. 0501"},
            "category_name": {"type": "string"},
            "title": {"type": "string"},
            "state": {"type": "string"},
            "state_label": {"type": "string"},
            "urgency": {"type": "string"},
            "camera_id": {"type": "string"},
            "camera_name": {"type": "string"},
            "zone_id": {"type": "string"},
            "event": {"type": "string"},
            "address": {"type": "string"},
            "street": {"type": "string"},
            "community": {"type": "string"},
            "grid_code": {"type": "string"},
            "unit_id": {"type": "string"},
            "unit_name": {"type": "string"},
            "reported_at": {"type": "number"},
            "deadline_at": {"type": "number"},
            "deadline_iso": {"type": "string"},
            "time_limit": {"type": "object"},
            "alarm_ids": {"type": "array", "items": {"type": "string"}},
            "evidence": {"type": "array", "items": {"type": "string"}},
            "evidence_urls": {"type": "array", "items": {"type": "string"}},
            "timeline": {"type": "array", "items": {"type": "object"}},
            "overdue": {"type": "boolean"},
            "supervised": {"type": "boolean", "description": "a leader has supervised (督办) it"},
            "supervise_count": {"type": "integer"},
            "last_supervision": {"type": ["object", "null"],
                                 "description": "the latest 督办 timeline entry {at, state, action, actor, note}"},
            "can_supervise": {"type": "boolean", "description": "in case detail and action answers: you may 督办"},
            "can_export_recordings": {"type": "boolean", "description": "in case detail: you may download the case's "
                                      "evidence package (GET /api/cases/{id}/recordings) and this server records"},
        },
    },
    "CaseEvent": {
        "type": "object",
        "properties": {
            "case_id": {"type": "string"}, "case_no": {"type": "string"}, "action": {"type": "string"},
            "state": {"type": "string"}, "at": {"type": "number"}, "actor": {"type": "string"},
            "case": _ref("Case"), "note": {"type": "string"},
        },
    },
}

SCHEMAS["Screen"] = {
    "type": "object",
    "description": "A wall screen as browsers show it (wall.screens.Wall.view)",
    "required": ["id", "name", "version", "layout", "tiles"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "version": {"type": "integer", "description": "grows with every change; browsers ignore older pushes"},
        "changed_at": {"type": "number"},
        "layout": {"type": "object", "properties": {
            "name": {"type": "string"}, "rows": {"type": "integer"}, "cols": {"type": "integer"},
            "tiles": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                      "description": "[row, col, rowspan, colspan] per tile, row-major"}}},
        "tiles": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "camera": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["assigned", "tour", "alarm"]},
            "base_camera": {"type": ["string", "null"], "description": "under an alarm pop-up"}}}},
        "alarm_tile": {"type": ["integer", "null"], "description": "the screen's designated alarm tile"},
        "pop_tile": {"type": ["integer", "null"], "description": "where the current pop-up shows: the alarm tile, or "
                     "the tile already showing the alarm's camera when that tile is at least as large"},
        "alarm": {"type": ["object", "null"], "description": "the pop-up: alarm_id, camera_id, priority, at, "
                  "expires_at, payload (event, zone_name, boxes, ...); count and repeats: later alarms of the same "
                  "place (camera, zone, event) folded into it — an ack of any of them acknowledges the group"},
        "pending_alarms": {"type": "array", "items": {"type": "object"}},
        "tour": {"type": ["object", "null"], "description": "tour, name, tiles, dwell_s, step, paused, next_at"},
        "plan": {"type": ["object", "null"], "description": "the active emergency plan on this screen: id, name, at "
                 "(POST /api/plans/{id}/end restores what the screen showed before it)"},
    },
}
_SCREEN_OK = _json({"type": "object", "properties": {"screen": _ref("Screen")}}, "the screen after the change")
_SCREEN_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "screen id"}
_NO_SCREEN = _error("unknown screen (or camera / tour)")


def _screen_op(summary: str, body: type[Body] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": _SESSION, "parameters": [_SCREEN_ID],
                          "responses": {"200": _SCREEN_OK, "400": _error("bad input, naming the field"),
                                        "401": _UNAUTHORIZED, "404": _NO_SCREEN, **(extra or {})}}
    if body is not None:
        op["requestBody"] = json_body(body)
    return op


_PAGING = ("Without a cursor: the newest. before=<id>: the page older than that entry (pass the answer's older for "
           "the next one); after=<id>: the limit entries just after it, still newest first (pass newer to keep "
           "paging forward; more_newer says there are more). since/until (unix seconds, inclusive) bound any page.")


def _page_params(what: str) -> list[dict[str, Any]]:
    """The query of a cursor page over a bus stream (``wall.api._stream_page``)."""
    return [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ALARMS, "default": 100}, "how many"),
        _query("before", {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
               f"only {what} older than this stream id (exclusive)"),
        _query("after", {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
               f"only {what} newer than this stream id (exclusive)"),
        _query("since", {"type": "number", "minimum": 0, "maximum": 10000000000}, "unix seconds, inclusive"),
        _query("until", {"type": "number", "minimum": 0, "maximum": 10000000000}, "unix seconds, inclusive"),
    ]


def _page_responses(key: str, item: str) -> dict[str, Any]:
    return {
        "200": _json({"type": "object", "required": [key],
                      "properties": {key: {"type": "array", "items": _ref(item)},
                                     "older": {"type": ["string", "null"],
                                               "description": "before= for the next older page; null: none"},
                                     "newer": {"type": ["string", "null"], "description": "after= for newer ones"},
                                     "more_newer": {"type": "boolean"}}}, key),
        "400": _error("limit, before, after, since or until invalid (the field is named)"),
        "401": _UNAUTHORIZED,
        "503": _error("event bus unavailable"),
    }


_NOT_A_WEBSOCKET = _error("a plain HTTP request, not a WebSocket handshake (the error names the Upgrade header)")
_CONFLICT = {"409": _error("no tour on the screen, or it is already in that state")}

WS_FRAMES = {
    "/api/ws": {
        "server": {
            "hello": {"type": "hello", "user": "User"},
            "alarm": {"type": "alarm", "id": "stream id", "alarm": "Alarm (with snapshot_url)"},
            "case_deadline": {"type": "case_deadline", "id": "stream id", "alarm": "CaseDeadlineAlarm"},
            "camera_status": {"type": "camera_status", "status": "CameraStatus"},
            "case": {"type": "case", "id": "stream id", "event": "CaseEvent"},
            "wall_screen": {"type": "wall_screen", "id": "stream id", "screen": "Screen (not resumed: GET "
                            "/api/screens/{id} after a reconnect)"},
            "system_alarm": {"type": "system_alarm", "id": "stream id", "alarm": "SystemAlarm (resumed from "
                             "last_id of GET /api/system-alarms)"},
            "pong": {"type": "pong"},
            "ack_result": {"type": "ack_result", "alarm_id": "id", "screens": "[Screen] the screens that changed"},
            "error": {"type": "error", "error": "what was wrong (a refused message names the role and what it needs)"},
        },
        "client": {
            "ping": {"type": "ping"},
            "resume": {"type": "resume", "last_ids": {"alarms": "stream id", "case_deadlines": "stream id",
                                                      "case_events": "stream id", "system_alarms": "stream id"}},
            "ack": {"type": "ack", "alarm_id": "id",
                    "x-roles": WS_MESSAGES["ack"].needs()},
        },
    },
    "/api/live/{camera_id}": {
        "server": {
            "init": {"type": "init", "mime": 'video/mp4; codecs="..."', "transcoded": None},
            "binary": "first the init segment (ftyp+moov), then one fragment (moof+mdat) per frame",
            "error": {"type": "error", "error": "unknown camera <id> | camera offline | live video not available"},
        },
    },
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    # Every handler treats an empty value (?limit=) as not given (the pages' filter forms send empty fields).
    return {"name": name, "in": "query", "required": False, "allowEmptyValue": True, "schema": schema,
            "description": f"{description} (empty: not given)"}


PATHS: dict[str, Any] = {
    "/api/health": {
        "get": {
            "summary": "Liveness of the event bus and the case store, hub and live-video counters",
            "security": [],
            "responses": {"200": _json(_ref("Health"), "healthy"), "503": _json(_ref("Health"), "degraded")},
        },
    },
    "/api/login": {
        "post": {
            "summary": "Log in; sets the HttpOnly SameSite=Strict cookie cw_session",
            "security": [],
            "requestBody": json_body(LoginBody),
            "responses": {
                "200": _json(_ref("Session"), "logged in"),
                "400": _error("body, username or password missing or malformed"),
                "401": _error("wrong username or password"),
                "429": _error("too many failed logins (per user and address, address, user or in all) or successful "
                              "logins of this user (Retry-After header)"),
                "503": _error("too many password checks waiting, or every session slot taken (Retry-After)"),
            },
        },
    },
    "/api/logout": {
        "post": {
            "summary": "End the session and close its WebSockets",
            "security": _SESSION,
            "responses": {
                "200": _json({"type": "object", "properties": {"ok": {"type": "boolean"}}}, "logged out"),
                "401": _UNAUTHORIZED,
            },
        },
    },
    "/api/me": {
        "get": {
            "summary": "The logged-in user",
            "security": _SESSION,
            "responses": {"200": _json(_ref("Session"), "the session"), "401": _UNAUTHORIZED},
        },
    },
    "/api/cameras": {
        "get": {
            "summary": "Configured cameras with zones and their latest status",
            "security": _SESSION,
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["cameras"],
                     "properties": {"cameras": {"type": "array", "items": _ref("Camera")}}},
                    "cameras in configuration order",
                ),
                "401": _UNAUTHORIZED,
                "503": _error("event bus unavailable"),
            },
        },
    },
    "/api/alarms": {
        "get": {
            "summary": "Detector alarms (raised and cleared), newest first: a cursor page over the alarms stream",
            "description": _PAGING,
            "security": _SESSION,
            "parameters": _page_params("alarms"),
            "responses": _page_responses("alarms", "Alarm"),
        },
    },
    "/api/case-deadlines": {
        "get": {
            "summary": "The case room's deadline alarms (即将超期 / 案件超期), newest first: a cursor page over the "
                       "case_deadlines stream",
            "description": _PAGING,
            "security": _SESSION,
            "parameters": _page_params("deadline alarms"),
            "responses": _page_responses("deadlines", "CaseDeadlineAlarm"),
        },
    },
    "/api/cases": {
        "get": {
            "summary": "Cases, newest first, with the total matching the filters",
            "security": _SESSION,
            "parameters": [
                _query("state", {"type": "string", "pattern": "^[a-z_]{1,32}$"}, "only cases in this state"),
                _query("camera_id", {"type": "string"}, "only cases from this camera"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_CASES_PAGE, "default": 100},
                       "page size"),
                _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "cases to skip"),
            ],
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["cases", "total"], "properties": {
                        "cases": {"type": "array", "items": _ref("Case")},
                        "total": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                    }},
                    "a page of cases",
                ),
                "400": _error("a parameter is malformed or out of range (the error names it)"),
                "503": _error("the case store is unavailable (the page says so and retries)"),
                "401": _UNAUTHORIZED,
            },
        },
    },
    "/api/cases/{id}": {
        "get": {
            "summary": "One case with evidence URLs",
            "security": _SESSION,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json(_ref("Case"), "the case"),
                "400": _error("malformed id"),
                "401": _UNAUTHORIZED,
                "404": _error("unknown case"),
            },
        },
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
        },
    },
    "/api/ws": {
        "get": {
            "summary": "WebSocket: pushed alarms, camera status and case events",
            "description": (
                "Upgrade to WebSocket. Server frames: hello, alarm, case_deadline, camera_status, case, pong, error. "
                'Client frames: {"type":"ping"}; {"type":"resume","last_ids":{"alarms":id,"case_deadlines":id,'
                '"case_events":id}} sends '
                'every entry after those ids exactly once, then continues live; {"type":"ack","alarm_id":id} '
                "acknowledges an alarm like POST /api/alarms/{id}/ack (watch officer, leader, admin). A client whose "
                "bounded send "
                "queue overflows is closed with code 1013. Invalid or role-refused frames get an error frame; the "
                "socket stays open. Cross-origin upgrades are refused (403)."
            ),
            "security": _SESSION,
            "x-websocket-frames": WS_FRAMES["/api/ws"],
            "responses": {"101": {"description": "switching protocols"}, "400": _NOT_A_WEBSOCKET,
                          "401": _UNAUTHORIZED,
                          "429": _error("over wall.live_sockets_per_user or wall.live_sockets_total (Retry-After)")},
        },
    },
    "/api/live/{camera_id}": {
        "get": {
            "summary": "WebSocket: live fMP4 video of one camera",
            "description": (
                'Upgrade to WebSocket. First a text frame {"type":"init","mime":...,"transcoded":<the camera\'s '
                'codec when the server re-encoded it, else null>}, then a binary frame with '
                "the init segment, then one binary frame per fragment. Errors: a text frame "
                '{"type":"error","error":"unknown camera <id>" | "camera offline" | "live video not available on '
                'this server"} and a close.'
            ),
            "security": _SESSION,
            "parameters": [{"name": "camera_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "x-websocket-frames": WS_FRAMES["/api/live/{camera_id}"],
            "responses": {"101": {"description": "switching protocols"}, "400": _NOT_A_WEBSOCKET,
                          "401": _UNAUTHORIZED,
                          "429": _error("over wall.live_sockets_per_user or wall.live_sockets_total (Retry-After)")},
        },
    },
    "/api/screens": {
        "get": {
            "summary": "Every wall screen, the layout presets, tours and plans (allowed: may this user invoke it)",
            "security": _SESSION,
            "responses": {"200": _json({"type": "object", "properties": {
                "screens": {"type": "array", "items": _ref("Screen")},
                "layouts": {"type": "array", "items": {"type": "string"}},
                "tours": {"type": "array", "items": {"type": "object"}},
                "plans": {"type": "array", "items": {"type": "object"}}}}, "screens"), "401": _UNAUTHORIZED},
        },
    },
    "/api/screens/{id}": {"get": _screen_op("One wall screen")},
    "/api/screens/{id}/layout": {"put": _screen_op(
        "Switch the layout: a preset (1, 2x2, 3x3, 4x4, 1+5, 1+7) or a custom grid {rows, cols, spans}",
        LayoutBody)},
    "/api/screens/{id}/tiles/{tile}": {"put": {**_screen_op(
        "Put a camera on a tile (null empties it); a tile outside the layout → 400 naming tile",
        TileBody),
        "parameters": [_SCREEN_ID, {"name": "tile", "in": "path", "required": True,
                                    "schema": {"type": "integer", "minimum": 0}}]}},
    "/api/screens/{id}/tour/start": {"post": _screen_op(
        "Start a tour (轮巡) on tiles (default: all but the alarm tile), dwell ≥ 3 s (default: the tour's)",
        TourStartBody)},
    "/api/screens/{id}/tour/pause": {
        "post": _screen_op("Pause the tour (the remaining dwell is kept)", None, _CONFLICT)},
    "/api/screens/{id}/tour/resume": {"post": _screen_op("Resume a paused tour", None, _CONFLICT)},
    "/api/screens/{id}/tour/stop": {"post": _screen_op("Stop the tour (tiles keep their cameras)", None, _CONFLICT)},
    "/api/plans/{id}/invoke": {
        "post": {
            "summary": "Invoke an emergency plan (预案): switch all its screens at once; logged on stream wall_actions",
            "security": _SESSION,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json({"type": "object", "properties": {"plan": {"type": "string"},
                              "screens": {"type": "array", "items": _ref("Screen")}}}, "the screens it changed"),
                "401": _UNAUTHORIZED,
                "403": _error("the user's role may not invoke this plan (leader by default; admin always)"),
                "404": _error("unknown plan"),
            },
        },
    },
    "/api/plans/{id}/end": {
        "post": {
            "summary": "End an active emergency plan (结束预案): its screens get back the layout, cameras and tour "
                       "they had before it; logged on stream wall_actions",
            "security": _SESSION,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json({"type": "object", "properties": {"plan": {"type": "string"},
                              "screens": {"type": "array", "items": _ref("Screen")}}}, "the screens it restored"),
                "401": _UNAUTHORIZED,
                "403": _error("the user's role may not end this plan (the plan's roles; admin always)"),
                "404": _error("unknown plan"),
                "409": _error("the plan is not active on any screen"),
            },
        },
    },
    "/api/alarms/{alarm_id}/ack": {
        "post": {
            "summary": "Acknowledge an alarm: its pop-up reverts on every screen; logged on stream wall_actions",
            "security": _SESSION,
            "parameters": [{"name": "alarm_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json({"type": "object", "properties": {"alarm_id": {"type": "string"},
                              "screens": {"type": "array", "items": _ref("Screen")}}}, "the screens it changed"),
                "401": _UNAUTHORIZED,
                "404": _error("no screen shows or queues this alarm"),
            },
        },
    },
    "/api/map": {
        "get": {
            "summary": "The offline situation map: grid cells (outer ring, lon/lat) and camera positions",
            "security": _SESSION,
            "responses": {"200": _json({"type": "object", "properties": {
                "cells": {"type": "array", "items": {"type": "object"}},
                "cameras": {"type": "array", "items": {"type": "object"}}}}, "map data"), "401": _UNAUTHORIZED},
        },
    },
    "/evidence/{path}": {
        "get": {
            "summary": "An evidence file (snapshot JPEG/PNG or MP4 clip) from the evidence directory",
            "security": _SESSION,
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "path relative to the evidence directory, as in alarm/case records"}],
            "responses": {
                "200": {"description": "the file", "content": {
                    "image/jpeg": {}, "image/png": {}, "video/mp4": {},
                }},
                "401": _UNAUTHORIZED,
                "404": _error("no such evidence file (or a path outside the evidence directory)"),
            },
        },
    },
}


# -- voice guidance (wall/broadcast_api.py) ---------------------------------------------------------------------
SCHEMAS["Speaker"] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "adapter": {"enum": ["mqtt", "http", "hall"]},
        "camera_ids": {"type": "array", "items": {"type": "string"}}, "zone": {"type": "string"},
        "area": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
        "volume": {"type": "integer"},
        "online": {"type": ["boolean", "null"], "description": "retained MQTT status / last ack; null: unknown"},
        "status_at": {"type": ["number", "null"]}, "last_ack_at": {"type": ["number", "null"]},
    },
}
SCHEMAS["Broadcast"] = {
    "type": "object",
    "description": "One broadcast attempt (stream broadcasts), refused ones included",
    "properties": {
        "id": {"type": "string", "description": "bus entry id (GET /api/broadcasts only)"},
        "broadcast_id": {"type": "string"}, "at": {"type": "number"},
        "source": {"enum": ["alarm", "manual", "schedule"]},
        "requested_by": {"type": "string", "description": "system, schedule:<id> or the username"},
        "text": {"type": "string"}, "target": {"type": "string"},
        "status": {"enum": ["played", "partial", "failed", "refused"]}, "reason": {"type": "string"},
        "place": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "speaker_id": {"type": "string"}, "speaker_name": {"type": "string"},
            "outcome": {"enum": ["played", "refused", "failed", "skipped"]}, "reason": {"type": "string"},
            "acked": {"type": "boolean"}, "latency_ms": {"type": ["number", "null"]},
            "clip_url": {"type": ["string", "null"]}}}},
        "hall_url": {"type": ["string", "null"],
                     "description": "/clips/<name>.opus for the hall. GET /clips/{name} (no session: speakers fetch "
                                    "it too) serves clip files read-only: hex names .wav/.mp3/.opus of the clip "
                                    "dir only"},
        "clip_id": {"type": ["string", "null"]}, "alarm_id": {"type": ["string", "null"]},
        "camera_id": {"type": ["string", "null"]},
    },
}
_GUIDANCE_OFF = _error("voice guidance is not enabled (guidance.enabled)")
PATHS.update({
    "/api/speakers": {"get": {
        "summary": "Loudspeakers with online status, and the speaker groups",
        "responses": {"200": _json({"type": "object", "properties": {
            "speakers": {"type": "array", "items": _ref("Speaker")},
            "groups": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
            "speakers"), "401": _UNAUTHORIZED, "503": _GUIDANCE_OFF}}},
    "/api/broadcasts": {
        "get": {"summary": "The broadcast log, newest first (who, what, where, when, acked or not)",
                "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                                      "how many")],
                "responses": {"200": _json({"type": "object", "properties": {
                    "broadcasts": {"type": "array", "items": _ref("Broadcast")}}}, "the log"),
                    "400": _error("bad limit"), "401": _UNAUTHORIZED}},
        "post": {
            "summary": "Manual broadcast (roles leader, admin): text spoken now, or an uploaded clip; pre-empts "
                       "automatic and scheduled audio",
            "requestBody": json_body(BroadcastBody),
            "responses": {
                "200": _json({"type": "object", "properties": {
                    "broadcast": _ref("Broadcast"),
                    "not_played": {"type": "array", "items": {"type": "string"},
                                   "description": "speakers that did not play (offline, no ack, refused)"}}},
                    "the broadcast as logged"),
                "400": _error("bad target/text/clip_id/repeat; text over max_text_chars (the limit is named)"),
                "401": _UNAUTHORIZED, "403": _error("role may not broadcast (needs leader or admin)"),
                "404": _error("unknown speaker, group or clip"),
                "429": _error("too many manual broadcasts by this user (Retry-After)"), "503": _GUIDANCE_OFF}}},
    "/api/guidance/stats": {"get": {
        "summary": "Closed-loop outcomes: resolved_by_guidance, not_resolved, not_broadcast, pending",
        "responses": {"200": _json({"type": "object", "properties": {"outcomes": {
            "type": "object", "additionalProperties": {"type": "integer"}}}}, "counts"),
            "401": _UNAUTHORIZED, "503": _GUIDANCE_OFF}}},
    "/api/clips": {"post": {
        "summary": "Upload a recorded message (roles leader, admin): the raw audio file as the body",
        "requestBody": {"required": True, "content": {"application/octet-stream": {}, "audio/*": {}}},
        "responses": {
            "201": _json({"type": "object", "properties": {
                "clip_id": {"type": "string"}, "duration_s": {"type": "number"}, "codec": {"type": "string"},
                "size_bytes": {"type": "integer"}, "url": {"type": "string"}}}, "stored in every clip format"),
            "400": _error("not an audio file, or longer than guidance.manual.max_upload_s"),
            "401": _UNAUTHORIZED, "403": _error("role may not upload"),
            "408": _error("upload not received within wall.body_timeout_s"),
            "413": _error("over guidance.manual.max_upload_bytes"),
            "429": _error("over guidance.manual.uploads_per_user_per_minute (Retry-After)"), "503": _GUIDANCE_OFF}}},
})
_CASE_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_CONFLICT = _json(_ref("CaseConflict"), "someone else changed the case first (stale version) or its state does not "
                  "allow the action: the case as it is now and the actions allowed from its state")
_generated(models.Error, models.User, models.Session, LoginBody, CaseActionBody, SuperviseBody, BroadcastBody,
           LayoutBody, TileBody, TourStartBody)
SCHEMAS["CaseConflict"] = {
    "type": "object",
    "required": ["error", "state", "allowed"],
    "properties": {
        "error": {"type": "string"},
        "state": {"type": "string"}, "state_label": {"type": "string"},
        "version": {"type": ["integer", "null"]},
        "case": {"oneOf": [_ref("Case"), {"type": "null"}]},
        "allowed": {"type": "array", "items": {"type": "object", "properties": {
            "action": {"type": "string"}, "label": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}}}}},
    },
}
PATHS["/api/cases"]["get"]["parameters"] += [
    _query("category", {"type": "string", "examples": ["事件/0501"]}, "only this category (kind/code); unknown: 400"),
    _query("unit_id", {"type": "string"}, "only cases of this responsible unit"),
    _query("q", {"type": "string", "maxLength": 64}, "search: case number, title, address, unit, category text"),
]
PATHS["/api/cases/{id}"]["get"]["summary"] = "One case with evidence URLs and the actions allowed to your role"
PATHS["/api/cases/{id}/actions"] = {
    "post": {
        "summary": "Apply a workflow action (accept, dispatch, start, feedback, verify, close, rework, ...) as you",
        "description": (
            "Send the case `version` you saw: if someone else acted first the answer is 409 with the case as it is "
            "now. Without a version the second of two identical actions still gets 409 (the state moved on). "
            "`extend` needs `extension` {value, unit}; `dispatch` may name `unit_id`."
        ),
        "security": _SESSION,
        "parameters": [_CASE_ID],
        "requestBody": json_body(CaseActionBody),
        "responses": {
            "200": _json({"type": "object", "properties": {"case": _ref("Case"), "event": {"type": "object"}}},
                         "the case after the action"),
            "400": _error("a field is malformed (the error names it)"),
            "401": _UNAUTHORIZED,
            "403": _json({"anyOf": [_ref("CaseConflict"), _ref("Error")]},
                         "the state allows this action, but not to your role (with the case and who may), or the "
                         "access policy refused the request (role, or X-CSRF-Token missing or wrong)"),
            "404": _error("unknown case"),
            "409": _CONFLICT,
        },
    },
}

PATHS["/api/cases/{id}/supervise"] = {
    "post": {
        "summary": "督办 (supervise): a leader marks an open case; not a state change",
        "description": "Counts on the case (`supervised`, `supervise_count`), records who/when/`note` on the "
                       "timeline (action `supervise`) and announces a `supervise` case event. Leaders only.",
        "security": _SESSION,
        "parameters": [_CASE_ID],
        "requestBody": json_body(SuperviseBody, required=False),
        "responses": {
            "200": _json({"type": "object", "properties": {"case": _ref("Case"), "event": {"type": "object"}}},
                         "the case, supervised"),
            "400": _error("a field is malformed (the error names it)"),
            "401": _UNAUTHORIZED,
            "403": _error("not a leader"),
            "404": _error("unknown case"),
            "409": _error("the case is finished, or someone changed it since the version you sent (with the case)"),
        },
    },
}

# The case office (wall.case_office): the desk list's filters, keyset paging and counts; pictures for a case.
PATHS["/api/cases"]["get"]["parameters"] += [
    _query(name, schema, text) for name, schema, text in (
        ("street", {"type": "string", "maxLength": 64}, "only cases in this street (街道)"),
        ("community", {"type": "string", "maxLength": 64}, "only cases in this community (社区)"),
        ("grid", {"type": "string", "pattern": "^[0-9]{1,20}$"}, "grid code or its leading digits (万米单元网格)"),
        ("deadline", {"type": "string", "enum": ["normal", "near", "overdue"]}, "open cases by deadline stage: "
                                                                               "正常 / 即将超期 / 超期"),
        ("supervised", {"type": "string", "enum": ["1", "0", "true", "false"]}, "督办 or not"),
        ("from", {"type": "string", "format": "date"}, "reported on or after this day (site timezone)"),
        ("to", {"type": "string", "format": "date"}, "reported on or before this day (site timezone)"),
        ("sort", {"type": "string", "enum": ["newest", "oldest", "deadline"], "default": "newest"}, "order"),
        ("cursor", {"type": "string", "maxLength": 400}, "next_cursor of the previous page (keyset paging)"))]
PATHS["/api/cases"]["get"]["description"] = (
    "`state` may list several states (comma-separated). `q` searches case number, title, address and description. "
    "Unit users (role unit) get only their units' cases. The answer adds `counts` (per state, the state filter "
    "left out) and `next_cursor` (null on the last page); each case carries `deadline_stage`.")
PATHS["/api/case-filters"] = {"get": {
    "summary": "What the case list can be filtered by: states, categories, units, streets, communities, cameras",
    "description": "A unit user gets only their own units.", "security": _SESSION,
    "responses": {"200": _json({"type": "object"}, "the filter options (Chinese labels)"), "401": _UNAUTHORIZED}}}
PATHS["/api/work-calendar"] = {"get": {
    "summary": "The work calendar's working periods between two times (deadline countdowns in working time)",
    "security": _SESSION, "parameters": [
        {"name": n, "in": "query", "required": True, "description": d,
         "schema": {"type": "number", "minimum": 0, "maximum": 1e11}}
        for n, d in (("from", "Unix time, seconds"), ("to", "Unix time, seconds; at most 800 days after from"))],
    "responses": {"200": _json({"type": "object", "properties": {
        "calendar": {"type": "string"}, "timezone": {"type": "string"},
        "periods": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}},
        "the working periods [start, end] overlapping from..to, in order"),
        "400": _error("from or to missing, malformed, reversed or too far apart (the field is named)"),
        "401": _UNAUTHORIZED}}}
_PICTURE_ANSWER = _json({"type": "object", "properties": {"photo": {"type": "object"}, "case": _ref("Case")}},
                        "the picture as kept (url, taken_at) and the case")
PATHS["/api/cases/{id}/photos"] = {"post": {
    "summary": "A field photo for an open case (unit users, watch officers): resized, EXIF time kept",
    "security": _SESSION, "parameters": [_CASE_ID],
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["photo"], "properties": {
            "photo": {"type": "string", "format": "binary"}, "note": {"type": "string", "maxLength": MAX_NOTE}}}}}},
    "responses": {"201": _PICTURE_ANSWER, "400": _error("not an image (error_zh says so in Chinese)"),
                  "401": _UNAUTHORIZED, "404": _error("unknown case, or another unit's"),
                  "409": _error("the case is finished"), "413": _error("over cases.field_photos.max_mb"),
                  "429": _error("over cases.field_photos.per_user_per_hour")}}}
PATHS["/api/cases/{id}/snapshot"] = {"post": {
    "summary": "现场抓拍: the case camera's current picture kept as evidence (for 核查)",
    "security": _SESSION, "parameters": [_CASE_ID],
    "responses": {"201": _PICTURE_ANSWER, "400": _error("malformed id"), "401": _UNAUTHORIZED,
                  "404": _error("unknown case"),
                  "409": _error("the case is finished, or this server has no live video of its camera"),
                  "503": _error("the camera gave no picture now (offline, timed out)")}}}

_STATS_ROW = {"type": "object", "properties": {
    "key": {"type": "string"}, "label": {"type": "string"},
    **{k: {"type": "integer", "description": d} for k, d in (
        ("registered", "立案数"), ("due", "应结案数"), ("closed", "结案数"), ("closed_on_time", "按期结案数"),
        ("to_handle", "应处置数"), ("handled", "处置数"), ("reworked", "返工数"))},
    **{k: {"type": ["number", "null"], "description": d} for k, d in (
        ("close_rate", "结案率 = 结案数/应结案数"), ("on_time_rate", "按期结案率 = 按期结案数/应结案数"),
        ("handle_rate", "处置率 = 处置数/应处置数"), ("rework_rate", "返工率 = 返工数/处置数"))},
}}
SCHEMAS["StatsRow"] = _STATS_ROW
PATHS["/api/stats"] = {
    "get": {
        "summary": "Case statistics per unit, grid, category or period (JSON, CSV or XLSX)",
        "description": "Over cases reported from `from` to `to` (dates in the site timezone, inclusive; default the "
                       "last 30 days). Definitions in cases/stats.py. CSV is UTF-8 with a BOM; both exports have "
                       "Chinese headers (责任单位, 立案数, 应结案数, 结案数, 按期结案数, 应处置数, 处置数, 返工数, "
                       "结案率, 按期结案率, 处置率, 返工率) and a 合计 row.",
        "security": _SESSION,
        "parameters": [
            _query("by", {"type": "string", "enum": ["unit", "grid", "category", "period", "total"],
                          "default": "unit"}, "grouping"),
            _query("period", {"type": "string", "enum": ["day", "week", "month"], "default": "day"},
                   "bucket size when by=period"),
            _query("from", {"type": "string", "format": "date"}, "first day (inclusive)"),
            _query("to", {"type": "string", "format": "date"}, "last day (inclusive)"),
            _query("category", {"type": "string"}, "only this category (kind/code); unknown: 400"),
            _query("format", {"type": "string", "enum": ["json", "csv", "xlsx"], "default": "json"}, "output"),
        ],
        "responses": {
            "200": {"description": "the statistics", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "by": {"type": "string"}, "rows": {"type": "array", "items": _ref("StatsRow")},
                    "total": _ref("StatsRow"), "from": {"type": "string"}, "to": {"type": "string"},
                    "cases": {"type": "integer"}}}},
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            }},
            "400": _error("a parameter is malformed (the error names it)"),
            "401": _UNAUTHORIZED,
        },
    },
}

PATHS["/api/webhooks"] = {
    "get": {
        "summary": "Outbound webhook targets with pending/delivered counts, and the oldest pending deliveries",
        "description": "Each case event is POSTed to every target with an Idempotency-Key header, retried with "
                       "exponential backoff until delivered, in order per target.",
        "security": _SESSION,
        "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                              "pending deliveries to list")],
        "responses": {
            "200": _json({"type": "object", "properties": {
                "targets": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "url": {"type": "string"}, "pending": {"type": "integer"},
                    "delivered": {"type": "integer"}, "oldest_pending_seq": {"type": ["integer", "null"]}}}},
                "pending": {"type": "array", "items": {"type": "object", "properties": {
                    "target": {"type": "string"}, "case_id": {"type": "string"}, "case_no": {"type": "string"},
                    "action": {"type": "string"}, "idempotency_key": {"type": "string"},
                    "attempts": {"type": "integer"}, "next_at": {"type": "number"},
                    "last_error": {"type": "string"}}}},
            }}, "webhook delivery status"),
            "400": _error("limit out of range"),
            "401": _UNAUTHORIZED,
        },
    },
}

SCHEMAS["AuditEntry"] = {"type": "object", "properties": {
    "seq": {"type": "integer"}, "at": {"type": "number", "description": "unix time"},
    "actor": {"type": "string"}, "role": {"type": "string"},
    "action": {"type": "string", "description": "login, logout, screen.layout, screen.tile, tour.start|pause|resume|"
                                                "stop, alarm.ack, plan.invoke, broadcast.manual, clip.upload, "
                                                "review.claim, review.decision, case.<action>"},
    "target": {"type": "string"}, "outcome": {"type": "integer", "description": "HTTP status answered (403: refused)"},
    "client": {"type": "string", "description": "client address"},
    "details": {"type": "object", "description": "the request body (never passwords) and what the handler added"}}}

PATHS["/api/audit"] = {
    "get": {
        "summary": "Search the append-only audit log of control actions (admin only), newest first",
        "security": _SESSION,
        "parameters": [
            _query("actor", {"type": "string"}, "username, exact"),
            _query("action", {"type": "string"}, "action name, exact (e.g. plan.invoke)"),
            _query("target", {"type": "string"}, "target prefix (screen id, case id, alarm id …)"),
            _query("since", {"type": "string"}, "from this time: epoch seconds or ISO time (site timezone)"),
            _query("until", {"type": "string"}, "before this time: epoch seconds or ISO time (site timezone)"),
            _query("q", {"type": "string"}, "text anywhere in actor, action, target or details"),
            _query("outcome", {"type": "integer"}, "HTTP status answered, e.g. 403 for refusals"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT_PAGE, "default": 100}, "page size"),
            _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "entries to skip"),
        ],
        "responses": {
            "200": _json({"type": "object", "properties": {
                "entries": {"type": "array", "items": _ref("AuditEntry")}, "total": {"type": "integer"},
                "limit": {"type": "integer"}, "offset": {"type": "integer"}}}, "a page of entries"),
            "400": _error("a filter is malformed (the error names it)"),
            "401": _UNAUTHORIZED,
        },
    },
}
PATHS["/api/audit/verify"] = {
    "get": {
        "summary": "Verify the audit log's hash chain (admin only): each row carries sha256(previous hash + row)",
        "security": _SESSION,
        "responses": {
            "200": _json({"type": "object", "required": ["ok", "rows"], "properties": {
                "ok": {"type": "boolean"}, "rows": {"type": "integer", "description": "chained rows checked"},
                "unchained": {"type": "integer", "description": "rows written before the chain existed"},
                "first_bad_seq": {"type": ["integer", "null"]}, "reason": {"type": "string"}}},
                "the result; ok false names the first row removed or changed"),
            "401": _UNAUTHORIZED,
        },
    },
}

_CAMERA = {"name": "camera_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TIME = {"type": "string", "description": "epoch seconds or an ISO date/time (site timezone)"}
WS_FRAMES["/api/recordings/{camera_id}/play"] = {
    "server": {
        "init": {"type": "init", "mime": 'video/mp4; codecs="..."', "transcoded": None, "playback": True},
        "binary": "the init segment, then one fragment (moof+mdat) per frame, paced in real time on the output "
                  "timeline (retimed for the speed; at 4x and 8x keyframes only)",
        "time": {"type": "time", "at": "recorded unix time of the next keyframe", "media": "its output time (s)"},
        "end": {"type": "end"},
        "error": {"type": "error", "error": "nothing recorded at or after this time | a bad control message, "
                                            "naming the field"},
    },
    "client": {"pause": {"type": "pause"}, "resume": {"type": "resume"}, "step": {"type": "step"},
               "speed": {"type": "speed", "speed": "1 | 2 | 4 | 8"}},
}
PATHS["/api/system-alarms"] = {
    "get": {
        "summary": "Faults of citywall itself raised and not yet cleared (the recorder cannot write: disk full, "
                   "write errors), newest first; live as system_alarm frames on /api/ws",
        "security": _SESSION,
        "responses": {
            "200": _json({"type": "object", "properties": {"alarms": {"type": "array", "items": {
                "type": "object", "properties": {
                    "alarm_id": {"type": "string"}, "kind": {"enum": ["recording_disk_full", "recording_write_error"]},
                    "phase": {"const": "raised"}, "at": {"type": "number"}, "node": {"type": "string"},
                    "label": {"type": "string"}, "detail": {"type": "string"},
                    "cameras": {"type": "array", "items": {"type": "string"}}, "id": {"type": "string"}}}},
                "last_id": {"type": "string", "description": "the newest entry of stream system_alarms ('0-0' when "
                            "there is none): resume the event socket's system_alarms from it"}}},
                "the raised system alarms"),
            "401": _UNAUTHORIZED, "503": _error("event bus unavailable"),
        },
    },
}
PATHS["/api/recordings/{camera_id}"] = {
    "get": {
        "summary": "A camera's recording timeline: recorded spans, gaps and alarm markers (cases, held alarms)",
        "security": _SESSION,
        "parameters": [_CAMERA, _query("since", _TIME, "from (default: 24 h ago)"),
                       _query("until", _TIME, "to (default: now; later is cut to now)")],
        "responses": {
            "200": _json({"type": "object", "properties": {
                "spans": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                          "description": "[start, end] unix times recorded"},
                "gaps": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "markers": {"type": "array", "items": {"type": "object"}}, "segments": {"type": "integer"},
                "bytes": {"type": "integer"}, "recorded_s": {"type": "number"}}}, "the timeline"),
            "400": _error("since/until malformed, until not after since, or more than 7 days"),
            "401": _UNAUTHORIZED, "404": _error("unknown camera"),
            "503": _error("recording not available on this server"),
        },
    },
}
PATHS["/api/recordings/{camera_id}/play"] = {
    "get": {
        "summary": "WebSocket: play a camera's recording from a time at 1x/2x/4x/8x (pause, step, speed)",
        "description": "The live socket's frames (init text, init segment, fragments) so <cw-tile> plays it; "
                       "see x-websocket-frames for the time marks and the control messages.",
        "security": _SESSION,
        "parameters": [_CAMERA, {**_query("at", _TIME, "where to start (the keyframe at or before it)"),
                                 "required": True},
                       _query("speed", {"type": "integer", "enum": [1, 2, 4, 8], "default": 1}, "speed"),
                       _query("hevc", {"type": "integer", "enum": [0, 1], "default": 0},
                              "1: this browser plays H.265 (else H.265 recordings are transcoded to H.264, "
                              "transcoded: hevc in init; at most 2 at once per server, then an error frame)")],
        "x-websocket-frames": WS_FRAMES["/api/recordings/{camera_id}/play"],
        "responses": {"101": {"description": "switching protocols"}, "400": _error("at or speed malformed, or "
                      "not a WebSocket handshake"), "401": _UNAUTHORIZED, "404": _error("unknown camera"),
                      "429": _error("over wall.live_sockets_per_user or wall.live_sockets_total (Retry-After)"),
                      "503": _error("recording not available on this server")},
    },
}
PATHS["/api/recordings/{camera_id}/export"] = {
    "get": {
        "summary": "Download a time range of one camera as one MP4 (remuxed; recorded in the audit log)",
        "security": _SESSION,
        "parameters": [_CAMERA, {**_query("since", _TIME, "from (the keyframe at or before it)"), "required": True},
                       {**_query("until", _TIME, "to (at most recording.max_export_s after since)"),
                        "required": True}],
        "responses": {
            "200": {"description": "the MP4 (Content-Disposition: attachment; X-Recording-Seconds, "
                                   "X-Recording-Start)", "content": {"video/mp4": {}}},
            "400": _error("since/until malformed, until not after since, or the range too long (names the field)"),
            "401": _UNAUTHORIZED, "404": _error("unknown camera, or nothing recorded in the range"),
            "503": _error("recording not available on this server"),
            "507": _error("the export file could not be written on the server"),
        },
    },
}
PATHS["/api/cases/{id}/recordings"] = {
    "get": {
        "summary": "Download the recordings around a case as one ZIP: an MP4 per camera (the case's own and up to 8 "
                   "more) and manifest.json (recorded in the audit log)",
        "security": _SESSION,
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                       _query("cameras", {"type": "string"}, "more cameras, comma-separated (e.g. the neighbours)"),
                       _query("since", _TIME, "from (default: recording.case_pre_s before the report)"),
                       _query("until", _TIME, "to (default: recording.case_post_s after it, at most "
                                              "recording.max_export_s after since)")],
        "responses": {
            "200": {"description": "the ZIP (Content-Disposition: attachment; X-Recording-Cameras: the cameras "
                                   "with a file)", "content": {"application/zip": {}}},
            "400": _error("a bad camera, since or until (names the field)"), "401": _UNAUTHORIZED,
            "404": _error("no such case, or nothing recorded at its cameras in the range"),
            "503": _error("recording not available on this server"),
            "507": _error("the export file could not be written on the server"),
        },
    },
}

SCHEMAS["ReviewAlarm"] = {
    **SCHEMAS["Alarm"],
    "description": "The alarm as the review desk keeps it: no bus stream id (the item id is the alarm id)",
    "required": [name for name in SCHEMAS["Alarm"]["required"] if name != "id"]}
SCHEMAS["ReviewItem"] = {"type": "object", "properties": {
    "id": {"type": "string", "description": "the alarm id"},
    "status": {"type": "string", "enum": ["free", "mine", "claimed", "confirmed", "rejected"]},
    "claimed_by": {"type": ["string", "null"]}, "claim_until": {"type": ["number", "null"]},
    "decision": {"type": ["object", "null"]}, "alarm": _ref("ReviewAlarm"),
    "filing": {"type": ["object", "null"], "description": "the filing policy (cases.auto_file) on this alarm: "
               "{auto, min_confidence, min_dwell_s, reason}; auto false = held: no case until confirmed"},
    "case": {"type": ["object", "null"], "description": "{id, case_no} of the case holding this alarm, if any"}}}
PATHS["/api/review"] = {
    "get": {
        "summary": "Review queue: held alarms (however old) and recent raised alarms still to decide, oldest first, "
                   "with claims",
        "security": _SESSION,
        "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 200}, "items")],
        "responses": {
            "200": _json({"type": "object", "properties": {
                "items": {"type": "array", "items": _ref("ReviewItem")},
                "counts": {"type": "object", "description": "items by status (free, mine, claimed, confirmed, "
                           "rejected); unfiled: open items not yet filed (待复核); auto_filed: open items with a case",
                           "additionalProperties": {"type": "integer"}},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "lease_s": {"type": "number"}}}, "the queue"),
            "400": _error("limit out of range"),
            "401": _UNAUTHORIZED,
            "503": _error("event bus unavailable"),
        },
    },
}
_generated(ClaimBody, DecisionBody)
PATHS["/api/review/claim"] = {
    "post": {
        "summary": "Claim the next (or previous) free item; two reviewers never hold the same item",
        "description": "Releases your other claim. A claim is a lease (120 s) renewed by claiming it again.",
        "security": _SESSION,
        "requestBody": json_body(ClaimBody),
        "responses": {
            "200": _json({"type": "object", "properties": {
                "item": {"oneOf": [_ref("ReviewItem"), {"type": "null"}]},
                "position": {"type": ["integer", "null"]}, "total": {"type": "integer"}}}, "the claimed item"),
            "400": _error("a field is malformed (the error names it)"),
            "401": _UNAUTHORIZED,
            "503": _error("event bus unavailable"),
        },
    },
}
PATHS["/api/review/{id}/decision"] = {
    "post": {
        "summary": "Confirm (→ case) or reject (false positive, with a reason) the item you hold",
        "security": _SESSION,
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": json_body(DecisionBody),
        "responses": {
            "200": _json({"type": "object", "properties": {
                "id": {"type": "string"}, "decision": {"type": "string"}, "reason": {"type": "string"},
                "case": {"oneOf": [_ref("Case"), {"type": "null"}]}}}, "the decision and the case"),
            "400": _error("a field is malformed or a rejection has no reason"),
            "401": _UNAUTHORIZED,
            "404": _error("unknown item"),
            "409": _error("you do not hold this item (claimed by someone else, expired, or decided already)"),
            "422": _error("the alarm cannot be filed as a case (e.g. no category for its event); reject it instead"),
            "503": _error("event bus unavailable"),
        },
    },
}

_LABEL_BOX = {"type": "object", "required": ["class", "box"], "additionalProperties": False, "properties": {
    "class": {"type": "string", "enum": list(CLASS_IDS)},
    "box": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 4, "maxItems": 4,
            "description": "normalised x1, y1, x2, y2"}}}
PATHS["/api/review/{id}/labels"] = {
    "get": {
        "summary": "The label classes, the item's saved label and the boxes a new label starts from (learning/)",
        "security": _SESSION,
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": _json({"type": "object", "properties": {
                "id": {"type": "string"}, "classes": {"type": "array", "items": {"type": "object"}},
                "label": {"type": ["object", "null"]}, "proposed": {"type": "array", "items": _LABEL_BOX},
                "snapshot_clean_url": {"type": ["string", "null"]}}}, "classes, label, proposed boxes"),
            "400": _error("a field is malformed (the error names it)"),
            "401": _UNAUTHORIZED,
            "404": _error("unknown item"),
            "503": _error("event bus unavailable"),
        },
    },
    "put": {
        "summary": "Store the reviewer's boxes and classes on a decided item's clean snapshot (the training data)",
        "security": _SESSION,
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["boxes"], "additionalProperties": False, "properties": {
                "boxes": {"type": "array", "maxItems": 64, "items": _LABEL_BOX}}}}}},
        "responses": {
            "200": _json({"type": "object"}, "the stored label"),
            "400": _error("a field is malformed (the error names it: boxes[1].class)"),
            "401": _UNAUTHORIZED,
            "404": _error("unknown item"),
            "409": _error("the item is not decided yet"),
            "422": _error("the alarm kept no clean snapshot to label"),
            "503": _error("event bus unavailable"),
        },
    },
}

_VERSION_PARAM = [{"name": "version", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": r"^v\d{4}-\d{8}-\d{6}$"}}]
PATHS["/api/admin/models"] = {"get": {
    "summary": "Site models (learning/): versions with their model cards, the live one, history, the shadow run",
    "security": _SESSION,
    "responses": {"200": _json({"type": "object", "properties": {
        "versions": {"type": "array", "items": {"type": "object"}}, "active": {"type": ["string", "null"]},
        "history": {"type": "array", "items": {"type": "object"}}, "shadow": {"type": ["object", "null"]}}},
        "the registry"), "401": _UNAUTHORIZED, "403": _error("admin only")}}}
PATHS["/api/admin/models/{version}/promote"] = {"post": {
    "summary": "Make a site model live (the detection worker swaps it in without restart); the previous one is kept",
    "security": _SESSION, "parameters": _VERSION_PARAM,
    "responses": {"200": _json({"type": "object"}, "the new live version and the history entry"),
                  "400": _error("not a version"), "401": _UNAUTHORIZED, "403": _error("admin only"),
                  "404": _error("unknown version"), "409": _error("live already")}}}
PATHS["/api/admin/models/rollback"] = {"post": {
    "summary": "回退: the site model live before the current one (or none) is live again",
    "security": _SESSION,
    "responses": {"200": _json({"type": "object"}, "the new live version (or null) and the history entry"),
                  "401": _UNAUTHORIZED, "403": _error("admin only"), "409": _error("no site model is live")}}}
PATHS["/api/admin/models/{version}/shadow"] = {"post": {
    "summary": "Run a candidate model in shadow on the live cameras for learning.shadow.duration_s",
    "security": _SESSION, "parameters": _VERSION_PARAM,
    "responses": {"200": _json({"type": "object"}, "the shadow plan"), "400": _error("not a version"),
                  "401": _UNAUTHORIZED, "403": _error("admin only"), "404": _error("unknown version")}}}

for _ops in PATHS.values():  # every JSON body is read under the server's body limit
    for _op in _ops.values():
        if "application/json" in _op.get("requestBody", {}).get("content", {}):
            _op["responses"].setdefault("413", _error(f"body over {MAX_REQUEST_BODY} bytes"))
            _op["responses"].setdefault("408", _error("body not received within wall.body_timeout_s"))


def _with_policy(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with each operation's ``x-roles`` and 403 from the access policy, and the CSRF header."""
    out: dict[str, Any] = {}
    for path, ops in paths.items():
        out[path] = {}
        for method, op in ops.items():
            rule = ROUTES.get((method.upper(), path.replace("{path:.*}", "{path}")))
            op = dict(op)
            if rule is not None:
                op["x-roles"] = rule.needs()
                if rule.public:
                    op["security"] = []
            responses = dict(op.get("responses", {}))
            if method.upper() not in SAFE_METHODS and (method.upper(), path) not in CSRF_EXEMPT:
                op["parameters"] = [*op.get("parameters", []), {
                    "name": CSRF_HEADER, "in": "header", "required": True, "schema": {"type": "string"},
                    "description": "the session's csrf_token (from /api/login or /api/me)"}]
                responses.setdefault("403", _error(f"role not allowed (the error names the role and what it needs), "
                                                   f"or {CSRF_HEADER} missing or wrong"))
            elif rule is not None and not rule.public and rule.roles is not None:
                responses.setdefault("403", _error("role not allowed (the error names the role and what it needs)"))
            op["responses"] = responses
            out[path][method] = op
    return out


# -------------------------------------------------------------------------- administration and the map (issue 17)

_generated(NewUserBody, UserChangeBody, OwnPasswordBody, ProbeBody, ImportBody)
SCHEMAS["ConfigChange"] = {
    "type": "object", "description": "what an accepted change did (admin.running)", "properties": {
    "ok": {"type": "boolean", "description": "false when a part of the system could not apply it (see errors)"},
    "diff": {"type": "array", "items": {"type": "object", "properties": {
        "path": {"type": "string", "description": "key path, lists keyed by id: cameras[cam-a].url"},
        "old": {}, "new": {}}}, "description": "changed keys (passwords masked)"},
    "applied": {"type": "object", "description": "cameras_added/removed/reconnected/reanalysed, users_ended, "
                "users_changed, restart_needed"},
    "errors": {"type": "array", "items": {"type": "string"}}}}
SCHEMAS["ConfigRefused"] = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"},
    "problems": {"type": "array", "items": {"type": "object", "properties": {
        "path": {"type": "string", "description": "the key path that is wrong, e.g. cameras[2].url"},
        "reason": {"type": "string"}}}}}}
_CHANGED = _json(_ref("ConfigChange"), "validated, persisted and applied at once (no restart)")
_REFUSED = _json(_ref("ConfigRefused"), "refused: the settings schema names every wrong key path; nothing changed")
_FORBIDDEN = _error("not an administrator")
_ADMIN = {"security": _SESSION}
_CAMERA_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "a camera as in the YAML (id, name, url, substream_url, analysis_url, position, "
    "zones, enabled, transport, login); a URL sent back masked (***) keeps the stored password"}}}}
_CAM_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "camera id"}
PATHS["/api/admin/cameras"] = {
    "get": {**_ADMIN, "summary": "Cameras as configured, URLs with passwords masked (admin)",
            "responses": {"200": _json({"type": "object", "properties": {"cameras": {"type": "array"}}}, "cameras"),
                          "401": _UNAUTHORIZED, "403": _FORBIDDEN}},
    "post": {**_ADMIN, "summary": "Add a camera: ingest opens it, detection and the wall take it within seconds",
             "requestBody": _CAMERA_BODY,
             "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN}},
}
PATHS["/api/admin/cameras/{id}"] = {
    "put": {**_ADMIN, "summary": "Replace a camera (its id stays)", "parameters": [_CAM_ID],
            "requestBody": _CAMERA_BODY,
            "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                          "404": _error("no such camera")}},
    "patch": {**_ADMIN, "summary": "Change some keys of a camera (enabled, zones, position …)", "parameters": [_CAM_ID],
              "requestBody": _CAMERA_BODY,
              "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                            "404": _error("no such camera")}},
    "delete": {**_ADMIN, "summary": "Delete a camera (refused while the wall's screens or tours name it)",
               "parameters": [_CAM_ID],
               "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                             "404": _error("no such camera")}},
}
PATHS["/api/admin/cameras/{id}/candidates"] = {"get": {
    **_ADMIN, "summary": "The stationary candidates detection sees now on the camera (normalised x1,y1,x2,y2), for "
    "the zone editor's preview; available: false with the reason where detection runs elsewhere or not yet",
    "parameters": [_CAM_ID],
    "responses": {"200": _json({"type": "object", "properties": {
        "available": {"type": "boolean"}, "at": {"type": "number"}, "reason": {"type": "string"},
        "boxes": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}}, "the candidates"),
        "401": _UNAUTHORIZED, "403": _FORBIDDEN, "404": _error("no such camera")}}}
PATHS["/api/admin/cameras/test"] = {"post": {
    **_ADMIN, "summary": "测试连接: open an RTSP URL (or camera id's stored one) with the RTSP client; codec, "
    "resolution, fps, transport and a JPEG snapshot, or the exact error in Chinese (kind: auth, refused, timeout, "
    "no_video, transport, not_found, protocol, bad_url)",
    "requestBody": json_body(ProbeBody),
    "responses": {"200": _json({"type": "object", "properties": {
        "ok": {"type": "boolean"}, "url": {"type": "string"}, "kind": {"type": "string"}, "error": {"type": "string"},
        "codec": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"},
        "fps": {"type": "number"}, "transport": {"type": "string"}, "frames": {"type": "integer"},
        "snapshot_jpeg": {"type": "string"}, "elapsed_s": {"type": "number"}}}, "the test's result"),
        "400": _error("no URL, a demo:// URL, or an unknown camera id"), "401": _UNAUTHORIZED, "403": _FORBIDDEN,
        "503": _error("too many connection tests at once")}}}
PATHS["/api/admin/users"] = {
    "get": {**_ADMIN, "summary": "Users: username, display_name, role, enabled, units (admin)",
            "responses": {"200": _json({"type": "object", "properties": {"users": {"type": "array"}}}, "users"),
                          "401": _UNAUTHORIZED, "403": _FORBIDDEN}},
    "post": {**_ADMIN, "summary": "Create a user (password rules apply)",
             "requestBody": json_body(NewUserBody),
             "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN}},
}
PATHS["/api/admin/users/{username}"] = {"put": {
    **_ADMIN, "summary": "Change a user: disable (their sessions and sockets end at once), role, units, display "
    "name, or reset the password; the last enabled admin cannot be disabled or demoted",
    "parameters": [{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": json_body(UserChangeBody),
    "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                  "404": _error("no such user")}}}
PATHS["/api/me/password"] = {"post": {
    **_ADMIN, "summary": "Change one's own password (rules apply); every session of the user ends",
    "requestBody": json_body(OwnPasswordBody),
    "responses": {"200": _CHANGED, "400": _REFUSED, "401": _UNAUTHORIZED, "403": _error("the old password is wrong")}}}
PATHS["/api/admin/config"] = {"get": {
    **_ADMIN, "summary": "The running configuration as YAML (the site file's form, admin changes included)",
    "responses": {"200": {"description": "YAML", "content": {"application/yaml": {"schema": {
        "type": "object", "description": "the whole configuration (the site file's keys)"}}}},
                  "401": _UNAUTHORIZED, "403": _FORBIDDEN}}}
PATHS["/api/admin/config/import"] = {"post": {
    **_ADMIN, "summary": "Import a whole configuration (YAML text): validated, the diff shown; with apply: true its "
    "cameras and users are applied (other sections that differ are listed in restart_needed)",
    "requestBody": json_body(ImportBody),
    "responses": {"200": _json({"type": "object", "properties": {
        "diff": {"type": "array"}, "actions": {"type": "object"}, "restart_needed": {"type": "array"},
        "applied": {"type": "boolean"}}}, "the preview (and whether it was applied)"),
        "400": _REFUSED, "401": _UNAUTHORIZED, "403": _FORBIDDEN}}}
PATHS["/api/map/basemap"] = {"get": {
    **_ADMIN, "summary": "The situation map's tile source (map: settings; offline: the server's own tiles) and the "
    "grid cells and cameras in the tiles' coordinate system (GCJ-02 sources get shifted points)",
    "responses": {"200": _json({"type": "object", "properties": {
        "tiles": {"type": "object", "description": "url (Leaflet template), offline, attribution, subdomains, "
                  "min_zoom, max_zoom, crs"},
        "cells": {"type": "array"}, "cameras": {"type": "array"}}}, "the basemap"), "401": _UNAUTHORIZED}}}
PATHS["/api/map/convert"] = {"get": {
    **_ADMIN, "summary": "A point between WGS-84 (stored) and the basemap's coordinate system (map.crs)",
    "parameters": [_query("lon", {"type": "number", "minimum": -180, "maximum": 180}, "longitude"),
                   _query("lat", {"type": "number", "minimum": -90, "maximum": 90}, "latitude"),
                   _query("to", {"enum": ["display", "wgs84"]}, "display: onto the basemap; wgs84: back")],
    "responses": {"200": _json({"type": "object", "properties": {"lon": {"type": "number"}, "lat": {"type": "number"},
                                                                 "crs": {"type": "string"}}}, "the point"),
                  "400": _error("lon, lat or to missing or out of range (the error names it)"),
                  "401": _UNAUTHORIZED}}}
PATHS["/api/map/tiles/{z}/{x}/{y}.png"] = {"get": {
    **_ADMIN, "summary": "An offline basemap tile (Web Mercator, 256 px) drawn from cases.grid_file, cached",
    "parameters": [{"name": n, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
                   for n in ("z", "x", "y")],
    "responses": {"200": {"description": "PNG", "content": {"image/png": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}},
                  "400": _error("z, x or y out of range (the error says which)"), "401": _UNAUTHORIZED}}}


def build_document(site_name: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"citywall wall server — {site_name}",
            "version": "1",
            "description": "REST and WebSocket API of the citywall video wall. Log in with POST /api/login.",
        },
        "paths": _with_policy(PATHS),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "cw_session"}},
        },
        "security": _SESSION,
    }


async def openapi(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``."""
    return web.json_response(build_document(request.app[state.SETTINGS].site_name))


def add_routes(app: web.Application) -> None:
    """Register ``/api/openapi.json``."""
    app.router.add_get("/api/openapi.json", openapi)
