"""Recordings on the wall server (录像回放): the timeline, playback over a WebSocket, and MP4 export.

Small handlers over the recording library (``recording.playback.RecordingLibrary``, handed to ``create_app`` as
``recordings``; duck-typed, so ``wall`` does not import the recording room). Its exceptions are matched by
behaviour: ``LookupError`` means nothing recorded (404), a ``ValueError`` with ``field`` a bad range (400 naming it).

- ``GET /api/recordings/{camera_id}?since=&until=`` — spans, gaps and alarm markers (default: the last 24 h).
- ``GET /api/recordings/{camera_id}/play?at=&speed=&hevc=`` — WebSocket, the live socket's frames (``init`` text,
  init segment, one fragment per frame; an H.265 recording transcoded to H.264 unless ``hevc=1`` says the browser
  plays H.265, ``transcoded: "hevc"`` in its ``init``) paced in real time on the output timeline (the library
  retimes for the speed),
  plus ``{"type":"time","at":<recorded unix time>,"media":<output seconds>}`` before each keyframe and
  ``{"type":"end"}`` when nothing more is recorded. The browser may send ``{"type":"pause"}``, ``resume``,
  ``step`` (one frame while paused) and ``{"type":"speed","speed":1|2|4|8}``; a bad message gets an error frame
  naming the field and the socket stays open.
- ``GET /api/recordings/{camera_id}/export?since=&until=`` — one MP4 download (audited as ``recording.export``).
- ``GET /api/cases/{id}/recordings?cameras=&since=&until=`` — the case's camera(s) around its report time, one
  ZIP of MP4s and ``manifest.json`` (audited as ``recording.export_case``). Exports are written to a file on disk
  (``RecordingLibrary.export_dir``, nameless) and streamed from it: memory stays bounded whatever the length.
- ``GET /playback?camera=&at=`` — the playback page (``web/static/playback.html``; ``camera`` repeated up to 4
  times: the synchronised view), the target of "录像" links at an alarm's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web

from wall import state
from wall.access import note
from wall.auth import require_session
from wall.errors import BadRequest, json_error, require_websocket_handshake
from wall.pages import login_first, static_page
from wall.socket_quota import SOCKET_QUOTA

log = logging.getLogger("citywall.wall.recordings")

RECORDINGS: web.AppKey[Any] = web.AppKey("recordings")
"""The recording library (``recording.playback.RecordingLibrary``), or None where this server has none."""
SPEEDS = (1, 2, 4, 8)
LEAD_S = 0.5
"""Fragments are sent this far ahead of their time, so the tile has a little buffer."""
FRAMES_PER_READ = 25
"""Frames read from the files per worker-thread hop."""
FOLLOW_S = 15.0
"""At the end of what is recorded, how long to wait for more (a segment being written) before ``end``."""
POLL_S = 0.5
MAX_CLIENT_MESSAGE = 4096


def _library(request: web.Request) -> Any:
    library = request.app.get(RECORDINGS)
    if library is None:
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": "recording not available on this server"}),
                                         content_type="application/json")
    camera_id = request.match_info["camera_id"]
    # The running configuration's cameras (admin changes add some while running), as the camera list does.
    if camera_id not in {c.id for c in request.app[state.RUNNING].settings.cameras}:
        raise web.HTTPNotFound(text=json.dumps({"error": f"unknown camera {camera_id[:64]}"}),
                               content_type="application/json")
    return library


def _time(request: web.Request, name: str, default: float | None = None) -> float:
    raw = request.query.get(name, "").strip()
    if not raw:
        if default is None:
            raise BadRequest(name, "required: epoch seconds or an ISO date/time like 2026-03-11T08:00")
        return default
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(name, f"must be epoch seconds or an ISO date/time like 2026-03-11T08:00, got {raw[:40]!r}") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(request.app[state.SETTINGS].timezone))
    return when.timestamp()


def _speed(raw: Any, field: str = "speed") -> int:
    text = str(raw).strip()
    if text not in {str(s) for s in SPEEDS}:
        raise BadRequest(field, f"must be one of {', '.join(map(str, SPEEDS))}, got {text[:20]!r}")
    return int(text)


def _range_error(exc: ValueError) -> BadRequest:
    field = getattr(exc, "field", None)
    if field:
        return BadRequest(field, getattr(exc, "reason", str(exc)))
    return BadRequest("range", str(exc))


async def timeline(request: web.Request) -> web.Response:
    """``GET /api/recordings/{camera_id}``: spans, gaps and markers between ``since`` and ``until``."""
    library = _library(request)
    now = request.app[state.CLOCK]()
    since = _time(request, "since", now - 86400.0)
    until = _time(request, "until", now)
    try:
        result = await asyncio.to_thread(library.timeline, request.match_info["camera_id"], since, until)
    except ValueError as exc:
        raise _range_error(exc) from None
    return web.json_response(result)


EXPORT_CHUNK = 1 << 20
"""Bytes per read when an export file is sent."""
MAX_CASE_CAMERAS = 8


async def _send_file(request: web.Request, file: Any, size: int, content_type: str, name: str,
                     headers: dict[str, str]) -> web.StreamResponse:
    """Stream an export from its file on disk (closed after), a chunk at a time: memory stays bounded."""
    try:
        resp = web.StreamResponse(headers={"Content-Disposition": f'attachment; filename="{name}"', **headers})
        resp.content_type = content_type
        resp.content_length = size
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(file.read, EXPORT_CHUNK):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        file.close()


def _cannot_write(exc: OSError) -> web.Response:
    log.error("recording export: cannot write the export file: %s", exc)
    return json_error(507, f"export: cannot write the export file on the server ({exc.strerror or exc})")


async def _write_export(where: str, make: Any, *args: Any, check: Any = None) -> Any:
    """``make(*args)`` (an export written to a file) off the loop, after ``check()``; its faults as answers: nothing
    recorded → 404, a bad range → 400 naming the field, the file not writable → 507."""
    try:
        if check is not None:
            check()
        return await asyncio.to_thread(make, *args)
    except LookupError:
        return json_error(404, f"nothing recorded at {where} between since and until")
    except ValueError as exc:
        raise _range_error(exc) from None
    except OSError as exc:
        return _cannot_write(exc)


async def export(request: web.Request) -> web.StreamResponse:
    """``GET /api/recordings/{camera_id}/export``: one MP4 of ``[since, until]``, written to a file on disk and
    streamed from it."""
    library = _library(request)
    camera_id = request.match_info["camera_id"]
    since = _time(request, "since")
    until = _time(request, "until")
    made = await _write_export(f"camera {camera_id}", library.export_file, camera_id, since, until,
                               check=lambda: library.check_export(since, until))
    if isinstance(made, web.Response):
        return made
    result, file = made
    note(request, frames=result.frames, seconds=round(result.seconds, 3), bytes=result.size,
         start_at=result.start_at, end_at=result.end_at)
    stamp = datetime.fromtimestamp(result.start_at, ZoneInfo(request.app[state.SETTINGS].timezone))
    name = f"{camera_id}-{stamp.strftime('%Y%m%d-%H%M%S')}.mp4"
    return await _send_file(request, file, result.size, "video/mp4", name, {
        "X-Recording-Seconds": f"{result.seconds:.3f}", "X-Recording-Start": f"{result.start_at:.3f}",
        "X-Recording-Cut": "1" if result.cut_at_new_session else "0"})


async def export_case(request: web.Request) -> web.StreamResponse:
    """``GET /api/cases/{id}/recordings?cameras=&since=&until=``: the case's camera (and up to 8 more named in
    ``cameras``, comma-separated: its neighbours) around the case — by default ``case_pre_s`` before its report
    to ``case_post_s`` after, at most ``max_export_s`` — one MP4 each and ``manifest.json`` in one ZIP."""
    library = request.app.get(RECORDINGS)
    if library is None:
        return json_error(503, "recording not available on this server")
    case_id = request.match_info["id"]
    case = await asyncio.to_thread(request.app[state.CASES].get_case, case_id)
    if case is None:
        return json_error(404, f"no case {case_id[:64]}")
    known = {c.id for c in request.app[state.RUNNING].settings.cameras}
    cameras = [case["camera_id"]] if case.get("camera_id") else []
    for raw in request.query.get("cameras", "").split(","):
        cid = raw.strip()
        if not cid or cid in cameras:
            continue
        if cid not in known:
            raise BadRequest("cameras", f"unknown camera {cid[:64]!r}")
        cameras.append(cid)
    if not cameras:
        raise BadRequest("cameras", "the case has no camera: name one or more")
    if len(cameras) > 1 + MAX_CASE_CAMERAS:
        raise BadRequest("cameras", f"at most {MAX_CASE_CAMERAS} besides the case's own")
    rec = request.app[state.SETTINGS].recording
    reported = float(case["reported_at"])
    since = _time(request, "since", reported - rec.case_pre_s)
    until = _time(request, "until", min(reported + rec.case_post_s, since + library.max_export_s))
    case_no = str(case.get("case_no") or case_id)
    files = [(cid, f"{case_no}-{cid}.mp4") for cid in cameras]
    manifest = {"case_id": case_id, "case_no": case_no, "reported_at": reported}
    made = await _write_export(", ".join(cameras), library.export_zip, files, since, until, manifest)
    if isinstance(made, web.Response):
        return made
    listed, file = made
    size = await asyncio.to_thread(lambda: file.seek(0, 2))
    file.seek(0)
    note(request, cameras=cameras, files=sum("file" in c for c in listed), bytes=size, since=since, until=until)
    return await _send_file(request, file, size, "application/zip", f"{case_no}-recordings.zip", {
        "X-Recording-Cameras": ",".join(c["camera_id"] for c in listed if "file" in c)})


class _Control:
    """What the browser asked for on a playback socket."""

    def __init__(self) -> None:
        self.paused = False
        self.steps = 0
        self.speed: int | None = None
        self.changed = asyncio.Event()


async def play(request: web.Request) -> web.StreamResponse:
    """``GET /api/recordings/{camera_id}/play``: the playback WebSocket (see the module docstring)."""
    library = _library(request)
    camera_id = request.match_info["camera_id"]
    at = _time(request, "at")
    speed = _speed(request.query.get("speed", "1"))
    transcode = request.query.get("hevc", "0").strip() != "1"
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_CLIENT_MESSAGE, compress=False)
    require_websocket_handshake(ws, request)
    username = require_session(request).username
    quota = request.app[SOCKET_QUOTA]  # playback sockets count with the live ones
    refused = quota.refusal(username)
    if refused is not None:
        return refused
    with quota.slot(username):
        return await _serve(request, ws, library, camera_id, at, speed, transcode)


async def _serve(request: web.Request, ws: web.WebSocketResponse, library: Any, camera_id: str, at: float,
                 speed: int, transcode: bool) -> web.WebSocketResponse:
    await ws.prepare(request)
    task = asyncio.create_task(_play(ws, library, camera_id, at, speed, transcode))
    # Tracked with the live sockets: logout, an expired session and shutdown end it the same way.
    with request.app[state.LIVE_SOCKETS].tracked(require_session(request), task) as conn:
        try:
            await task
        except (ConnectionError, RuntimeError) as exc:  # the browser went away mid-send
            log.debug("playback socket for %s ended: %r", camera_id, exc)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if conn.close_code is None or (current is not None and current.cancelling()):
                raise
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            code = conn.close_code if conn.close_code is not None else WSCloseCode.OK
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                await asyncio.wait_for(ws.close(code=code, message=conn.close_reason.encode()[:120]), 5)
    return ws


async def _play(ws: web.WebSocketResponse, library: Any, camera_id: str, at: float,
                speed: int, transcode: bool) -> web.WebSocketResponse:
    try:
        cursor = await asyncio.to_thread(library.cursor, camera_id, at, speed, transcode=transcode)
    except LookupError:
        await ws.send_json({"type": "error", "error": "nothing recorded at or after this time"})
        return ws
    control = _Control()
    reader = asyncio.create_task(_read_control(ws, control))
    pump = asyncio.create_task(_pump(ws, cursor, control))
    try:
        await asyncio.wait({reader, pump}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, pump):
            task.cancel()
        await asyncio.gather(reader, pump, return_exceptions=True)
        close = getattr(cursor, "close", None)
        if close is not None:  # a transcode gives its slot back
            close()
    return ws


async def _read_control(ws: web.WebSocketResponse, control: _Control) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            data = json.loads(msg.data)
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "pause":
                control.paused = True
            elif kind == "resume":
                control.paused = False
            elif kind == "step":
                control.steps += 1
            elif kind == "speed":
                control.speed = _speed(data.get("speed"))
            else:
                raise BadRequest("type", f"must be pause, resume, step or speed, got {str(kind)[:20]!r}")
        except BadRequest as exc:
            await ws.send_json({"type": "error", "error": str(exc)})
            continue
        except ValueError:
            await ws.send_json({"type": "error", "error": "message: not JSON"})
            continue
        control.changed.set()


async def _pump(ws: web.WebSocketResponse, cursor: Any, control: _Control) -> None:
    loop = asyncio.get_running_loop()
    base = loop.time()
    paused_at: float | None = None
    idle_since: float | None = None

    def read() -> list[Any]:
        out: list[Any] = []
        for _ in range(FRAMES_PER_READ):
            items = cursor.next()
            if items is None:
                break
            out += items
        return out

    async def wait_control(timeout: float) -> None:
        control.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(control.changed.wait(), timeout)

    while True:
        if control.speed is not None:
            cursor.speed, control.speed = control.speed, None
        try:
            batch = await asyncio.to_thread(read)
        except RuntimeError as exc:  # recording.playback.TranscodeBusy: no H.265 transcode slot free
            await ws.send_json({"type": "error", "error": str(exc)})
            return
        if not batch:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > FOLLOW_S:
                await ws.send_json({"type": "end"})
                return
            await asyncio.sleep(POLL_S)
            continue
        idle_since = None
        for item in batch:
            if item.kind == "init":
                await ws.send_json({"type": "init", "mime": item.mime, "transcoded": item.transcoded or None,
                                    "playback": True})
                await ws.send_bytes(item.data)
                base = loop.time()
                continue
            if item.kind == "time":
                await ws.send_json({"type": "time", "at": round(item.at, 3), "media": round(item.due_s, 3)})
                continue
            while True:
                if control.paused:
                    paused_at = paused_at or loop.time()
                    if control.steps:
                        control.steps -= 1
                        break
                    await wait_control(1.0)
                    continue
                if paused_at is not None:
                    base += loop.time() - paused_at
                    paused_at = None
                delay = base + item.due_s - LEAD_S - loop.time()
                if delay <= 0:
                    break
                await wait_control(delay)
            await ws.send_bytes(item.data)


async def playback_page(request: web.Request) -> web.StreamResponse:
    """``/playback``: the playback page (one camera, or up to 4 in step); the page reads its query itself."""
    login_first(request)
    return static_page("playback.html")


def add_routes(app: web.Application, recordings: Any = None) -> None:
    """Register the recording routes; ``recordings`` is the library (None: they answer 503)."""
    app[RECORDINGS] = recordings
    app.router.add_get("/api/recordings/{camera_id}", timeline)
    app.router.add_get("/api/recordings/{camera_id}/play", play)
    app.router.add_get("/api/recordings/{camera_id}/export", export)
    app.router.add_get("/api/cases/{id}/recordings", export_case)
    app.router.add_get("/playback", playback_page)
