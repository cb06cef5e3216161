"""The case office (案件办理): the desk's case list query, unit users' scope, field photos, 现场抓拍, and the pages
``/cases``, ``/cases/{id}``, ``/cases/{id}/print`` and ``/field``.

- ``GET /api/cases`` filters by state (one or several, comma-separated), category, unit, street, community, grid
  code prefix, camera, deadline stage (``normal`` 正常 / ``near`` 即将超期 / ``overdue`` 超期), 督办, reporting
  dates (``from``/``to``, site timezone, inclusive) and search text (``q``: case number, title, address,
  description); sorts ``newest`` / ``oldest`` / ``deadline``; pages by keyset (``cursor`` = the previous answer's
  ``next_cursor``; ``offset`` still works for short lists); answers the counts per state of the same filters.
  Every bad parameter is a 400 naming it.
- A ``unit`` user (``users[].units``) sees only their units' cases: the list is narrowed to them, another unit's
  case (detail, actions, pictures, evidence files) answers 404 as if it did not exist.
- ``POST /api/cases/{id}/photos``: one picture (multipart field ``photo``) from the field page; over
  ``cases.field_photos.max_mb`` 413, not an image 400 (Chinese message in ``error_zh``), more than
  ``per_user_per_hour`` 429; resized to ``max_side_px`` and kept as case evidence with the EXIF time.
- ``POST /api/cases/{id}/snapshot``: 现场抓拍 — the camera's current picture (a keyframe from the live relay,
  decoded once) kept as evidence beside the alarm's, for 核查.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import re
import uuid
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from cases.desk import CaseNotFound, PhotoRefused
from cases.listing import DEADLINE_LABELS, DEADLINE_STAGES, MAX_SEARCH, SORTS, CaseQuery, CursorError, deadline_stage
from cases.photos import PhotoRejected, prepare_photo
from cases.workflow import Action, State
from config import ConfigError, Role
from maps.coords import to_display
from wall import state
from wall.access import ROUTES, note
from wall.api import _ID, MAX_CASES_PAGE, check_text, int_param, str_param
from wall.auth import LoginLimiter, Session, require_session
from wall.errors import BadRequest, json_error
from wall.models import MAX_NOTE
from wall.pages import login_first, static_page
from wall.recordings_api import RECORDINGS
from wall.views import evidence_url

log = logging.getLogger("citywall.wall.case_office")

PHOTO_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("field_photo_limiter")
PHOTO_WORK: web.AppKey[asyncio.Semaphore] = web.AppKey("field_photo_work")
SNAPSHOT_TIMEOUT_S = 8.0
_PLACE = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_GRID = re.compile(r"^\d{1,20}$")


# ------------------------------------------------------------------------------------------------ unit scope


def unit_scope(request: web.Request, session: Session) -> tuple[str, ...] | None:
    """The units a unit user may see (from ``users[].units``); None for every other role (no narrowing)."""
    if session.role is not Role.UNIT:
        return None
    user = next((u for u in request.app[state.SETTINGS].users if u.username == session.username), None)
    return tuple(user.units) if user is not None else ()


def in_scope(case: dict[str, Any] | None, scope: tuple[str, ...] | None) -> bool:
    return case is not None and (scope is None or str(case.get("unit_id") or "") in scope)


# ------------------------------------------------------------------------------------------------ the list


def _day_bounds(request: web.Request, tz: ZoneInfo) -> tuple[float | None, float | None]:
    from wall.case_api import _date_param  # the stats' date parameter (same rules and messages)

    first = _date_param(request, "from", None, tz) if request.query.get("from") else None  # type: ignore[arg-type]
    last = _date_param(request, "to", None, tz) if request.query.get("to") else None  # type: ignore[arg-type]
    if first and last and last < first:
        raise BadRequest("to", f"{last} is before from ({first})")
    start = datetime.combine(first, dt_time(0), tz).timestamp() if first else None
    end = datetime.combine(last + timedelta(days=1), dt_time(0), tz).timestamp() if last else None
    return start, end


def parse_query(request: web.Request, scope: tuple[str, ...] | None) -> CaseQuery:
    """The list's query parameters as a :class:`CaseQuery`; :class:`BadRequest` naming the first bad one."""
    from wall.case_api import CASE_CONFIG, category_param

    app = request.app
    config = app[CASE_CONFIG]
    q = request.query
    states: tuple[str, ...] = ()
    if q.get("state"):
        raw = q["state"].split(",")
        known = {s.value for s in State}
        bad = [s for s in raw if s not in known]
        if bad:
            raise BadRequest("state", f"unknown case state {bad[0][:40]!r}; known: {', '.join(sorted(known))}")
        states = tuple(dict.fromkeys(raw))
    unit_id = str_param(request, "unit_id", _ID, "a unit id")
    if unit_id is not None and unit_id not in config.dispatcher.units:
        choices = ", ".join(sorted(config.dispatcher.units))
        raise BadRequest("unit_id", f"unknown unit {unit_id[:40]!r}; known: {choices}")
    units: tuple[str, ...] | None = (unit_id,) if unit_id else None
    if scope is not None:
        if unit_id is not None and unit_id not in scope:
            raise BadRequest("unit_id", f"{unit_id} is not one of your units ({', '.join(scope)})")
        units = units or scope
    deadline = q.get("deadline") or None
    if deadline is not None and deadline not in DEADLINE_STAGES:
        raise BadRequest("deadline", f"must be one of {', '.join(DEADLINE_STAGES)}, got {deadline[:40]!r}")
    supervised_raw = q.get("supervised") or None
    supervised = None
    if supervised_raw is not None:
        if supervised_raw not in ("1", "0", "true", "false"):
            raise BadRequest("supervised", f"must be 1 or 0 (true/false), got {supervised_raw[:40]!r}")
        supervised = supervised_raw in ("1", "true")
    sort = q.get("sort") or "newest"
    if sort not in SORTS:
        raise BadRequest("sort", f"must be one of {', '.join(SORTS)}, got {sort[:40]!r}")
    text = (q.get("q") or "").strip() or None
    if text is not None:
        if len(text) > MAX_SEARCH:
            raise BadRequest("q", f"search text must be at most {MAX_SEARCH} characters")
        check_text("q", text)
    street = str_param(request, "street", _PLACE, "a street name (at most 64 characters)")
    community = str_param(request, "community", _PLACE, "a community name (at most 64 characters)")
    grid = str_param(request, "grid", _GRID, "a grid code or its leading digits")
    camera_id = str_param(request, "camera_id", _ID, "a camera id")
    limit = int_param(request, "limit", default=100, lo=1, hi=MAX_CASES_PAGE)
    offset = int_param(request, "offset", default=0, lo=0, hi=10_000_000)
    cursor = q.get("cursor") or None
    if cursor is not None and (len(cursor) > 400 or offset):
        raise BadRequest("cursor", "a cursor from next_cursor (and no offset with it)")
    reported_from, reported_to = _day_bounds(request, ZoneInfo(app[state.SETTINGS].timezone))
    watch = app[state.SETTINGS].cases.deadline_watch
    try:
        return CaseQuery(states=states, category=category_param(request, config), unit_ids=units, street=street,
                         community=community, grid_code=grid, camera_id=camera_id, deadline=deadline,
                         supervised=supervised, reported_from=reported_from, reported_to=reported_to, q=text,
                         sort=sort, limit=limit, offset=offset, cursor=cursor, near_fraction=watch.near_fraction,
                         near_remaining_s=watch.near_remaining_s)
    except CursorError as exc:
        raise BadRequest("cursor", str(exc)) from None


async def list_cases(request: web.Request) -> web.Response:
    """``GET /api/cases``: a page of cases, the total and per-state counts, and the next page's cursor."""
    from wall.views import case_view

    session = require_session(request)
    query = parse_query(request, unit_scope(request, session))
    app = request.app
    now = app[state.CLOCK]()
    try:
        page = await asyncio.to_thread(app[state.CASES].query_cases, query, now=now)
    except Exception as exc:  # the database went away (closed, PostgreSQL down): a 503 the pages can say
        log.warning("case store unavailable for the case list: %r", exc)
        return json_error(503, f"case store unavailable: {type(exc).__name__}")
    watch = app[state.SETTINGS].cases.deadline_watch
    cases = [{**case_view(c), "deadline_stage": deadline_stage(c, now, watch.near_fraction, watch.near_remaining_s)}
             for c in page.cases]
    return web.json_response({"cases": cases, "total": page.total, "counts": page.counts,
                              "next_cursor": page.next_cursor, "limit": query.limit, "offset": query.offset,
                              "sort": query.sort})


async def filters(request: web.Request) -> web.Response:
    """``GET /api/case-filters``: the choices of the list's filters, with Chinese labels (a unit user: their units)."""
    from wall.case_api import CASE_CONFIG

    session = require_session(request)
    scope = unit_scope(request, session)
    config = request.app[CASE_CONFIG]
    cells = config.grid.cells
    return web.json_response({
        "states": [{"value": s.value, "label": s.label} for s in State],
        "deadline": [{"value": k, "label": DEADLINE_LABELS[k]} for k in DEADLINE_STAGES],
        "categories": [{"value": c.ref, "label": f"{c.code} {c.name}"} for c in config.catalog.categories],
        "units": [{"value": u.id, "label": u.name} for u in config.dispatcher.units.values()
                  if scope is None or u.id in scope],
        "streets": sorted({c.street for c in cells if c.street}),
        "communities": sorted({c.community for c in cells if c.community}),
        "cameras": [{"value": c.id, "label": c.name or c.id} for c in request.app[state.SETTINGS].cameras],
        "sorts": [{"value": "newest", "label": "最新上报"}, {"value": "oldest", "label": "最早上报"},
                  {"value": "deadline", "label": "截止时间最近"}],
    })


WORK_CALENDAR_MAX_DAYS = 800


def _instant_param(request: web.Request, name: str) -> float:
    raw = request.query.get(name, "")
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(name, f"must be a Unix time in seconds, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not 0 <= value < 1e11:
        raise BadRequest(name, f"must be a Unix time in seconds, got {raw[:40]!r}")
    return value


async def work_calendar(request: web.Request) -> web.Response:
    """``GET /api/work-calendar?from=&to=``: the working periods of the calendar the deadlines are computed with,
    between two Unix times (at most 800 days apart) — the pages' countdowns count working time with them."""
    from wall.case_api import CASE_CONFIG

    require_session(request)
    first, last = _instant_param(request, "from"), _instant_param(request, "to")
    if last < first:
        raise BadRequest("to", "must not be before from")
    if last - first > WORK_CALENDAR_MAX_DAYS * 86400:
        raise BadRequest("to", f"at most {WORK_CALENDAR_MAX_DAYS} days after from")
    cal = request.app[CASE_CONFIG].calendar
    return web.json_response({"calendar": cal.name, "timezone": str(cal.tz), "from": first, "to": last,
                              "periods": cal.work_periods(first, last)})


# ------------------------------------------------------------------------------------------------ the detail


def detail_extras(request: web.Request, case: dict[str, Any]) -> dict[str, Any]:
    """What the case page shows beyond the case itself: where the camera is, the deadline stage, the pictures
    people added, the broadcasts made, whether the caller may download the case's evidence package (the ZIP of
    ``GET /api/cases/{id}/recordings``: the access table's row says who, and this server must record), and for a
    dispatch the units to choose from (the case's own first)."""
    from wall.case_api import CASE_CONFIG

    app = request.app
    settings = app[state.SETTINGS]
    now = app[state.CLOCK]()
    cam = next((c for c in settings.cameras if c.id == case.get("camera_id")), None)
    pos = cam.position if cam is not None else None
    location = None
    if pos is not None:
        # ``display``: the point in the basemap's coordinate system (the case page's map; GCJ-02 sources shifted)
        location = {"lon": pos.lon, "lat": pos.lat, "address": pos.address or case.get("address") or "",
                    "geo": f"geo:{pos.lat},{pos.lon}", "camera_id": cam.id if cam is not None else None,
                    "camera_name": cam.name if cam is not None else None,
                    "display": list(to_display(pos.lon, pos.lat, settings.map.crs))}
    watch = settings.cases.deadline_watch
    photos = [{**p, "url": evidence_url(p.get("path"))} for p in case.get("photos") or [] if isinstance(p, dict)]
    broadcasts = [t for t in case.get("timeline") or [] if t.get("action") == "guidance_broadcast"]
    out: dict[str, Any] = {"location": location, "deadline_stage": deadline_stage(case, now, watch.near_fraction,
                                                                                  watch.near_remaining_s),
                           "photos": photos, "broadcasts": broadcasts,
                           "can_export_recordings": app.get(RECORDINGS) is not None and bool(case.get("camera_id"))
                           and ROUTES[("GET", "/api/cases/{id}/recordings")].allowed(require_session(request)),
                           "alarm_evidence_urls": [evidence_url(p) for p in case.get("evidence") or []
                                                   if p not in {x.get("path") for x in photos}]}
    if any(a["action"] == Action.DISPATCH.value for a in case.get("allowed_actions") or []):
        units = app[CASE_CONFIG].dispatcher.units
        first = [units[case["unit_id"]]] if case.get("unit_id") in units else []
        out["dispatch_units"] = [{"id": u.id, "name": u.name, "suggested": u.id == case.get("unit_id")}
                                 for u in [*first, *(u for u in units.values() if u not in first)]]
    return out


# ------------------------------------------------------------------------------------------------ pictures


async def _scoped_case(request: web.Request, session: Session) -> dict[str, Any] | None:
    from wall.case_api import _case_id

    case_id = _case_id(request)
    case = await asyncio.to_thread(request.app[state.CASES].get_case, case_id, now=request.app[state.CLOCK]())
    return case if in_scope(case, unit_scope(request, session)) else None


async def _store_picture(request: web.Request, session: Session, case: dict[str, Any], jpeg: bytes, *, kind: str,
                         taken_at: str | None, note_text: str) -> web.Response:
    from wall.case_api import DESK, _detail

    app = request.app
    now = app[state.CLOCK]()
    rel = f"{'field' if kind == 'field_photo' else 'snapshots'}/{case['id']}/{uuid.uuid4().hex}.jpg"
    target = app[state.EVIDENCE_DIR] / rel

    def write() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        tmp.write_bytes(jpeg)
        tmp.replace(target)

    await asyncio.to_thread(write)
    try:
        event = await asyncio.to_thread(app[DESK].add_photo, case["id"], rel, kind=kind, role=session.role.value,
                                        user=session.username, now=now, taken_at=taken_at, note=note_text)
    except (PhotoRefused, CaseNotFound) as exc:
        await asyncio.to_thread(_remove, target)
        if isinstance(exc, CaseNotFound):
            return json_error(404, f"unknown case {case['id']}")
        return web.json_response({"error": str(exc), "error_zh": "案件已办结，不能再添加照片",
                                  "case": _detail(exc.case, session.role.value)}, status=409)
    note(request, case_no=case["case_no"], photo=rel, taken_at=taken_at)
    return web.json_response({"photo": {"path": rel, "url": evidence_url(rel), "taken_at": taken_at, "kind": kind},
                              "case": _detail(event.case, session.role.value)}, status=201)


class _TooBig(Exception):
    """A multipart body over the photo limit."""


async def _read_form(request: web.Request, max_bytes: int, out: dict[str, Any]) -> None:
    """The upload's ``photo`` (bytes) and ``note`` into ``out``; :class:`_TooBig` past ``max_bytes``."""
    try:
        # Our own reader: the server's client_max_size (64 KiB, for JSON bodies) would refuse every photo.
        reader = MultipartReader(request.headers, request.content, client_max_size=max_bytes + 64 * 1024,
                                 max_size_error_cls=_TooBig)
        async for part in reader:
            if not isinstance(part, BodyPartReader):  # a multipart nested in a part
                raise BadRequest("part", "nested multipart; allowed: photo, note")
            if part.name == "photo" and "photo" not in out:
                data = out["photo"] = bytearray()
                while chunk := await part.read_chunk(65536):
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise _TooBig(max_bytes)
            elif part.name == "note":
                out["note"] = (await part.text())[:MAX_NOTE + 1]
            else:
                raise BadRequest(str(part.name or "part")[:40], "unknown field; allowed: photo, note")
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # a malformed part header, boundary, charset
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest("body", f"not readable multipart/form-data: {type(exc).__name__}") from None


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def post_photo(request: web.Request) -> web.Response:
    """``POST /api/cases/{id}/photos`` (multipart ``photo``, optional ``note``): a field photo, resized, kept."""
    session = require_session(request)
    app = request.app
    limits = app[state.SETTINGS].cases.field_photos
    max_bytes = int(limits.max_mb * 1024 * 1024)
    too_big = {"error": f"photo: over cases.field_photos.max_mb={limits.max_mb:g}",
               "error_zh": f"照片太大（超过 {limits.max_mb:g} MB），请降低分辨率后重拍"}
    if request.content_length is not None and request.content_length > max_bytes + 64 * 1024:
        return web.json_response(too_big, status=413)
    case = await _scoped_case(request, session)
    if case is None:
        return json_error(404, f"unknown case {request.match_info['id'][:40]}")
    now = app[state.CLOCK]()
    budget = app[PHOTO_LIMITER]
    wait = budget.retry_after(session.username, now)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        return web.json_response({"error": f"too many uploads by {session.username}; at most "
                                           f"{limits.per_user_per_hour} photos an hour, try again in {retry} s",
                                  "error_zh": f"上传过于频繁（每小时最多 {limits.per_user_per_hour} 张），"
                                              f"请 {retry} 秒后再试"},
                                 status=429, headers={"Retry-After": str(retry)})
    budget.failure(session.username, now)  # every attempt counts (a sliding window per user)
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("body", "must be multipart/form-data with a file field 'photo'")
    form: dict[str, Any] = {}
    try:
        await asyncio.wait_for(_read_form(request, max_bytes, form), app[state.SETTINGS].wall.body_timeout_s)
    except TimeoutError:
        return json_error(408, "upload not received within wall.body_timeout_s")
    except _TooBig:
        return web.json_response(too_big, status=413)
    data, note_text = form.get("photo"), form.get("note", "")
    if data is None:
        raise BadRequest("photo", "no file field 'photo' in the form")
    if len(note_text) > MAX_NOTE:
        raise BadRequest("note", f"must be a string of at most {MAX_NOTE} characters")
    check_text("note", note_text)
    try:
        async with app[PHOTO_WORK]:  # one decode at a time per server: parallel uploads cannot add up in memory
            photo = await asyncio.to_thread(prepare_photo, bytes(data), max_side=limits.max_side_px)
    except PhotoRejected as exc:
        return web.json_response({"error": f"photo: {exc}", "error_zh": exc.zh}, status=400)
    return await _store_picture(request, session, case, photo.jpeg, kind="field_photo", taken_at=photo.taken_at,
                                note_text=note_text.strip())


async def post_snapshot(request: web.Request) -> web.Response:
    """``POST /api/cases/{id}/snapshot``: 现场抓拍 — the case camera's current picture kept as evidence (201);
    409 when this server has no live video of the camera, 503 when the camera gives no picture now."""
    session = require_session(request)
    case = await _scoped_case(request, session)
    if case is None:
        return json_error(404, f"unknown case {request.match_info['id'][:40]}")
    live = request.app[state.LIVE]
    camera_id = str(case.get("camera_id") or "")
    if live is None or not camera_id or not live.has_camera(camera_id):
        # not a passing failure of the server: this case's camera has no live video here (409, like a finished case)
        return web.json_response({"error": f"no live video of camera {camera_id or '-'} on this server",
                                  "error_zh": "该摄像头没有实时画面，无法抓拍"}, status=409)
    try:
        jpeg = await asyncio.wait_for(_grab(live, camera_id), SNAPSHOT_TIMEOUT_S)
    except Exception as exc:  # offline, ended, timed out, undecodable: the camera cannot give a picture now
        log.info("snapshot of %s failed: %r", camera_id, exc)
        return web.json_response({"error": f"camera {camera_id} gave no picture: {type(exc).__name__}",
                                  "error_zh": "摄像头暂时无法取得画面，请稍后再试"}, status=503)
    return await _store_picture(request, session, case, jpeg, kind="site_snapshot", taken_at=None, note_text="")


async def _grab(live: Any, camera_id: str) -> bytes:
    """The first keyframe a new live viewer gets, decoded and encoded as JPEG (one frame, then the viewer closes)."""
    viewer = await live.open(camera_id, queue_size=4)
    try:
        fragment = await viewer.next_fragment()
        init = viewer.init_segment
    finally:
        viewer.close()
    return await asyncio.to_thread(_decode_first, init + fragment)


def _decode_first(mp4: bytes) -> bytes:
    import av
    import cv2

    from video_ingest.frames import to_bgr

    with av.open(io.BytesIO(mp4), mode="r", format="mp4") as container:
        for frame in container.decode(video=0):
            ok, jpeg = cv2.imencode(".jpg", to_bgr(frame), [cv2.IMWRITE_JPEG_QUALITY, 88])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            return jpeg.tobytes()
    raise RuntimeError("no decodable frame in the first fragment")


# ------------------------------------------------------------------------------------------------ pages


async def cases_page(request: web.Request) -> web.StreamResponse:
    login_first(request)
    return static_page("cases.html")


async def case_page(request: web.Request) -> web.StreamResponse:
    login_first(request)
    return static_page("case.html")


async def print_page(request: web.Request) -> web.StreamResponse:
    login_first(request)
    return static_page("case-print.html")


async def field_page(request: web.Request) -> web.StreamResponse:
    login_first(request)
    return static_page("field.html")


def check_unit_users(settings: Any, units: Any, source: str) -> None:
    """Every unit user's ``units`` exist in the dispatch file; :class:`ConfigError` naming the key otherwise."""
    problems = [(f"users[{i}].units[{j}]", f"unknown unit {unit!r}; known: {', '.join(sorted(units))}")
                for i, user in enumerate(settings.users) for j, unit in enumerate(user.units) if unit not in units]
    if problems:
        raise ConfigError(source, problems)


def add_routes(app: web.Application) -> None:
    """Register the case office's routes (``GET /api/cases`` is registered by ``wall.case_api`` with our handler)."""
    from wall.case_api import CASE_CONFIG

    settings = app[state.SETTINGS]
    check_unit_users(settings, app[CASE_CONFIG].dispatcher.units, str(settings.cases.dispatch_file))
    limits = settings.cases.field_photos
    app[PHOTO_LIMITER] = LoginLimiter(max_failures=limits.per_user_per_hour, window_s=3600.0)
    app[PHOTO_WORK] = asyncio.Semaphore(1)
    app.router.add_get("/api/case-filters", filters)
    app.router.add_get("/api/work-calendar", work_calendar)
    app.router.add_post("/api/cases/{id}/photos", post_photo)
    app.router.add_post("/api/cases/{id}/snapshot", post_snapshot)
    app.router.add_get("/cases", cases_page)
    app.router.add_get("/cases/{id}", case_page)
    app.router.add_get("/cases/{id}/print", print_page)
    app.router.add_get("/field", field_page)


__all__ = ["add_routes", "detail_extras", "in_scope", "list_cases", "parse_query", "unit_scope"]
