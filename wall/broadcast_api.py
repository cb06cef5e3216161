"""Voice guidance on the wall server: speakers, manual broadcasts, the broadcast log, uploaded clips, clip files.

- ``GET /api/speakers``: every speaker with its online status (retained MQTT status / last ack).
- ``POST /api/broadcasts``: a leader's (or admin's) manual broadcast — text spoken now or an uploaded clip — to a
  speaker, ``group:<name>`` or ``all``; pre-empts automatic and scheduled audio. Other roles get 403 (``wall.access``;
  the refusal is still logged here), too many per user 429 (counted in the limiter the wall servers share: Redis in
  a cluster), text over the limit 400, an unknown speaker/group/clip 404. Offline speakers are listed in the answer.
  Every attempt, refused ones included, is logged on the ``broadcasts`` stream.
- ``GET /api/broadcasts``: that log, newest first.
- ``GET /api/guidance/stats``: closed-loop outcomes (resolved by guidance / not resolved / not broadcast).
- ``POST /api/clips``: upload a recording (raw body); decoded to validate it, size and duration limited.
- ``GET /clips/{name}``: clip files for speakers and the hall; read-only, plain names only, clip dir only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Annotated, Any

from aiohttp import web
from pydantic import Field

from guidance.clip_server import CLIP_MIME, CLIP_NAME
from guidance.library import CLIP_ID_PATTERN
from messages import streams
from wall import state
from wall.access import ON_REFUSED, note
from wall.api import int_param
from wall.auth import Session, require_session
from wall.errors import BadRequest, json_error, parsed_json
from wall.limits import Window
from wall.models import MAX_BROADCAST_REPEAT, TARGET_PATTERN, Body, Clean, parse
from wall.views import broadcast_view

if TYPE_CHECKING:
    from guidance.runtime import GuidanceRuntime

log = logging.getLogger("citywall.wall.broadcast")

MAX_LOG = 500
MINUTE_S = 60.0
DECODES: web.AppKey[asyncio.Semaphore] = web.AppKey("upload_decodes")


class BroadcastBody(Body):
    """``POST /api/broadcasts``: text spoken now, or an uploaded clip, to a speaker, a group or all."""

    target: str = Field(pattern=TARGET_PATTERN, description="a speaker id, group:<name> or all")
    text: Annotated[str, Clean] | None = Field(None, description="spoken by TTS; at most "
                                               "guidance.manual.max_text_chars (a clip's description with clip_id)")
    clip_id: str | None = Field(None, pattern=CLIP_ID_PATTERN, description="the 32-hex id POST /api/clips returned")
    repeat: int = Field(1, ge=1, le=MAX_BROADCAST_REPEAT)


def _runtime(request: web.Request) -> GuidanceRuntime:
    rt = request.app.get(state.GUIDANCE)
    if rt is None:
        raise web.HTTPServiceUnavailable(text='{"error": "voice guidance is not enabled (guidance.enabled)"}',
                                         content_type="application/json")
    return rt


async def speakers(request: web.Request) -> web.Response:
    """``GET /api/speakers``."""
    require_session(request)
    rt = _runtime(request)
    out = []
    for s in rt.registry:
        st = rt.speaker_status(s.id)
        out.append({"id": s.id, "name": s.name, "adapter": s.adapter, "camera_ids": list(s.camera_ids),
                    "zone": s.zone, "area": s.area, "groups": list(s.groups), "volume": s.volume,
                    "online": st["online"], "status_at": st["at"], "last_ack_at": st["last_ack_at"]})
    return web.json_response({"speakers": out, "groups": rt.settings.guidance.groups()})


async def list_broadcasts(request: web.Request) -> web.Response:
    """``GET /api/broadcasts?limit=N``: the log, newest first."""
    require_session(request)
    limit = int_param(request, "limit", default=100, lo=1, hi=MAX_LOG)
    entries = await request.app[state.BUS].history(streams.BROADCASTS, count=limit)
    return web.json_response({"broadcasts": [{"id": e.id, **broadcast_view(e.data)} for e in entries]})


async def stats(request: web.Request) -> web.Response:
    """``GET /api/guidance/stats``."""
    from guidance.loop import outcome_counts

    require_session(request)
    _runtime(request)
    return web.json_response({"outcomes": await outcome_counts(request.app[state.BUS])})


def _shown(body: dict[str, Any]) -> tuple[str, str]:
    """(target, text) of a broadcast request as the log shows them, whatever their types."""
    target, text, clip_id = body.get("target"), body.get("text"), body.get("clip_id")
    shown_text = text if isinstance(text, str) else (f"[录音 {clip_id}]" if isinstance(clip_id, str) else "")
    return (target if isinstance(target, str) else ""), shown_text


async def post_broadcast(request: web.Request) -> web.Response:
    """``POST /api/broadcasts`` ``{target, text?, clip_id?, repeat?}``."""
    session = require_session(request)
    rt = _runtime(request)
    limits = rt.settings.guidance.manual
    try:
        body = await parsed_json(request)
    except ValueError:
        raise BadRequest("body", f"must be a JSON object {BroadcastBody.shape()}") from None
    shown_target, shown_text = _shown(body if isinstance(body, dict) else {})

    async def refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
        await rt.broadcaster.refused(requested_by=session.username, target=shown_target, text=shown_text,
                                     reason=reason)
        log.warning("manual broadcast by %s refused: %s", session.username, reason)
        return json_error(status, reason, headers=headers)

    try:
        req = parse(BroadcastBody, body)
    except BadRequest as exc:
        return await refuse(400, str(exc))
    target, text, clip_id = req.target, (req.text or "").strip(), req.clip_id
    if clip_id is None:
        if not text:
            return await refuse(400, "text: required (or clip_id of an uploaded recording)")
        if len(text) > limits.max_text_chars:
            return await refuse(400, f"text: {len(text)} characters, over the limit of "
                                     f"max_text_chars={limits.max_text_chars}")
    else:
        if not rt.library.exists(clip_id):
            return await refuse(404, f"unknown clip {clip_id!r}")
        if len(text) > limits.max_text_chars:
            return await refuse(400, f"text: a description of at most max_text_chars={limits.max_text_chars}")
        text = text or shown_text
    try:
        rt.broadcaster.resolve(target)
    except KeyError as exc:
        return await refuse(404, str(exc.args[0]))
    # Counted before speaking, in the limiter all wall servers share (Redis in a cluster): N servers, one limit.
    window = Window(f"broadcast:u:{session.username}", limits.per_user_per_minute, MINUTE_S)
    wait, _ = await request.app[state.LOGIN_LIMITER].acquire([window], request.app[state.CLOCK]())
    if wait > 0:
        retry = max(1, math.ceil(wait))
        return await refuse(429, f"rate limited: at most {limits.per_user_per_minute} manual broadcasts per minute "
                                 f"per user; try again in {retry} s", {"Retry-After": str(retry)})
    record = await rt.broadcaster.manual(target, text=text, requested_by=session.username, clip_id=clip_id,
                                         repeat=req.repeat)
    offline = [r["speaker_id"] for r in record.results if r["outcome"] != "played"]
    note(request, broadcast_id=record.broadcast_id, status=record.status, not_played=offline)
    log.info("manual broadcast by %s to %s: %s", session.username, target, record.status)
    return web.json_response({"broadcast": broadcast_view(record.to_dict()), "not_played": offline})


async def _log_refused(request: web.Request, session: Session, problem: str) -> None:
    """A broadcast the access policy refused (wrong role) is still an attempt: log it like the handler's refusals."""
    rt = request.app.get(state.GUIDANCE)
    if rt is None:
        return
    try:
        body = await parsed_json(request)
    except ValueError:
        body = {}
    shown_target, shown_text = _shown(body if isinstance(body, dict) else {})
    await rt.broadcaster.refused(requested_by=session.username, target=shown_target, text=shown_text, reason=problem)
    log.warning("manual broadcast by %s refused: %s", session.username, problem)


async def post_clip(request: web.Request) -> web.Response:
    """``POST /api/clips``: the raw audio file as the body → ``{clip_id, duration_s, ...}`` (201)."""
    session = require_session(request)
    rt = _runtime(request)
    limits = rt.settings.guidance.manual
    if request.content_length is not None and request.content_length > limits.max_upload_bytes:
        return json_error(413, f"upload is {request.content_length} bytes, over max_upload_bytes="
                               f"{limits.max_upload_bytes}")
    window = Window(f"upload:u:{session.username}", limits.uploads_per_user_per_minute, MINUTE_S)
    wait, _ = await request.app[state.LOGIN_LIMITER].acquire([window], request.app[state.CLOCK]())
    if wait > 0:
        retry = max(1, math.ceil(wait))
        return json_error(429, f"too many uploads by {session.username}; try again in {retry} s",
                          headers={"Retry-After": str(retry)})
    data = bytearray()

    async def receive() -> web.Response | None:
        async for chunk in request.content.iter_chunked(65536):
            data.extend(chunk)
            if len(data) > limits.max_upload_bytes:
                return json_error(413, f"upload is over max_upload_bytes={limits.max_upload_bytes}")
        return None

    try:
        refused = await asyncio.wait_for(receive(), request.app[state.SETTINGS].wall.body_timeout_s)
    except TimeoutError:
        return json_error(408, "upload not received within wall.body_timeout_s")
    if refused is not None:
        return refused
    try:
        async with request.app[DECODES]:  # one decode at a time per server: parallel uploads cannot add up
            clip_id, info = await asyncio.to_thread(rt.library.save, bytes(data),
                                                    max_bytes=limits.max_upload_bytes,
                                                    max_duration_s=limits.max_upload_s)
    except ValueError as exc:
        raise BadRequest("body", str(exc)) from None
    note(request, target=clip_id, duration_s=round(info.duration_s, 2))
    log.info("clip %s uploaded by %s (%.1f s, %s)", clip_id, session.username, info.duration_s, info.codec)
    return web.json_response({"clip_id": clip_id, "duration_s": round(info.duration_s, 2), "codec": info.codec,
                              "size_bytes": info.size_bytes, "url": f"/clips/{clip_id}.opus"}, status=201)


def add_routes(app: web.Application) -> None:
    """Register the guidance routes (503 answers while guidance is off) and the clip files."""
    app[DECODES] = asyncio.Semaphore(1)
    app.setdefault(ON_REFUSED, {})[("POST", "/api/broadcasts")] = _log_refused
    app.router.add_get("/api/speakers", speakers)
    app.router.add_get("/api/broadcasts", list_broadcasts)
    app.router.add_post("/api/broadcasts", post_broadcast)
    app.router.add_get("/api/guidance/stats", stats)
    app.router.add_post("/api/clips", post_clip)
    app.router.add_get("/broadcast", broadcast_page)
    app.router.add_get("/clips/{name}", get_clip)


async def broadcast_page(request: web.Request) -> web.StreamResponse:
    """``/broadcast``: 人工喊话 and the guidance statistics (its script goes to /login without a session)."""
    from wall.pages import static_page

    return static_page("broadcast.html")


async def get_clip(request: web.Request) -> web.StreamResponse:
    """``GET /clips/{name}``: public (speakers have no session) but read-only, plain hex names of the clip dir only
    (no sub-paths, no dot files); uploaded clips' names are random, rendered ones are hashes of the text."""
    rt = request.app.get(state.GUIDANCE)
    name = request.match_info["name"]
    if rt is None or not CLIP_NAME.match(name) or not (rt.cache.directory / name).is_file():
        raise web.HTTPNotFound(text=f"no clip {name!r}")
    response = web.FileResponse(rt.cache.directory / name)
    response.content_type = CLIP_MIME[name.rsplit(".", 1)[1]].split(";")[0]
    return response
