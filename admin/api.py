"""The wall server's admin API and pages: cameras, users, the running configuration as YAML, 测试连接.

Every change goes through ``admin.running.RunningConfig.change`` (validated by the settings schema, persisted,
applied, announced); this module turns requests into whole new ``cameras``/``users`` lists, answers a refused
change with 400 ``{"error", "problems": [{"path", "reason"}]}`` naming the key path, and puts the diff on the
request's audit entry (``wall.access.note``). ``wall_applier`` is the wall server's part of applying a change:
the login check's users, the sessions of users who were disabled (their sockets close at once), the screens'
camera list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from admin.changes import ConfigChange
from admin.passwords import PASSWORD_RULES, password_problem
from admin.probe import probe_camera
from admin.running import Applier, Outcome, RunningConfig
from config.settings import ConfigError, Role, Settings, redact_url
from wall import state
from wall.access import note
from wall.auth import require_session
from wall.errors import BadRequest, json_error, parsed_json
from wall.models import MAX_PASSWORD, MAX_USERNAME, Body, read_body
from wall.pages import login_first, static_page
from wall.passwords import hash_password
from wall.review_api import REVIEW
from wall.screens_api import SCREENS

log = logging.getLogger("citywall.admin.api")

PROBE_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("admin_probe_slots")
MAX_PROBES = 4
"""Connection tests at once (each holds an RTSP connection for a few seconds)."""


# ------------------------------------------------------------------------------------------------ bodies

ROLE_NAMES = [r.value for r in Role]


class NewUserBody(Body):
    """``POST /api/admin/users``: a user as in the YAML, with a password instead of its hash. ``role`` and ``units``
    are checked by the settings schema, whose 400 names the key path (``users[2].role``)."""

    username: str = Field(min_length=1, max_length=MAX_USERNAME)
    password: str = Field(max_length=MAX_PASSWORD, description=PASSWORD_RULES)
    display_name: str | None = None
    role: str | None = Field(None, json_schema_extra={"enum": [*ROLE_NAMES]})
    units: list[str] | None = None
    enabled: bool | None = None


class UserChangeBody(Body):
    """``PUT /api/admin/users/{username}``: what changes (false ``enabled`` ends their sessions now; ``password`` is
    a reset by the administrator)."""

    display_name: str | None = None
    role: str | None = Field(None, json_schema_extra={"enum": [*ROLE_NAMES]})
    enabled: bool | None = None
    units: list[str] | None = None
    password: str | None = Field(None, max_length=MAX_PASSWORD, description=PASSWORD_RULES)


class OwnPasswordBody(Body):
    """``POST /api/me/password``."""

    old_password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: str = Field(max_length=MAX_PASSWORD, description=PASSWORD_RULES)


class ProbeBody(Body):
    """``POST /api/admin/cameras/test``: a URL, or a camera whose stored URL (``which``) is tested."""

    url: str | None = None
    id: str | None = None
    transport: Literal["auto", "tcp", "udp"] | None = Field(None, description="default: ingest.transport")
    which: Literal["url", "substream_url"] | None = None


class ImportBody(Body):
    """``POST /api/admin/config/import``."""

    yaml: str = Field(description="the whole configuration, as YAML text")
    apply: bool = False


# ------------------------------------------------------------------------------------------------ helpers


def _running(request: web.Request) -> RunningConfig:
    return request.app[state.RUNNING]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await parsed_json(request)
    except ValueError as exc:
        raise BadRequest("body", str(exc)) from None
    if not isinstance(body, dict):
        raise BadRequest("body", "expected a JSON object")
    return body


def refused(exc: ConfigError) -> web.Response:
    """400 naming every key path that is wrong."""
    problems = [{"path": p, "reason": r} for p, r in exc.problems]
    text = "; ".join(f"{p}: {r}" for p, r in exc.problems)
    return web.json_response({"error": f"配置无效 invalid change: {text}", "problems": problems}, status=400)


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", exclude_defaults=True) for i in items]


async def _apply(request: web.Request, changes: dict[str, Any]) -> web.Response:
    session = require_session(request)
    try:
        outcome = await _running(request).change(changes, actor=session.username)
    except ConfigError as exc:
        note(request, refused_change=[f"{p}: {r}" for p, r in exc.problems][:20])
        return refused(exc)
    note(request, diff=outcome.diff[:50], applied=outcome.change.to_dict(), **({"errors": outcome.errors}
                                                                              if outcome.errors else {}))
    return web.json_response(_outcome_view(outcome))


def _outcome_view(outcome: Outcome) -> dict[str, Any]:
    return {"ok": not outcome.errors, "diff": outcome.diff, "applied": outcome.change.to_dict(),
            "errors": outcome.errors}


def _camera_view(cam: Any) -> dict[str, Any]:
    data = cam.model_dump(mode="json", exclude_defaults=True)
    for key in ("url", "substream_url", "analysis_url"):
        if data.get(key):
            data[key] = redact_url(data[key])
    data.setdefault("enabled", True)
    data.setdefault("zones", [])
    return data


def _keep_secrets(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """A URL sent back as shown (password masked ``***``) keeps the stored password."""
    if old is None:
        return new
    out = dict(new)
    for key in ("url", "substream_url", "analysis_url"):
        value, before = out.get(key), old.get(key)
        if isinstance(value, str) and before and "***" in value and redact_url(before) == value:
            out[key] = before
    return out


# ------------------------------------------------------------------------------------------------ cameras


async def list_cameras(request: web.Request) -> web.Response:
    """Every configured camera as the admin edits it (passwords masked), with its zones."""
    cams = _running(request).settings.cameras
    return web.json_response({"cameras": [_camera_view(c) for c in cams]})


async def add_camera(request: web.Request) -> web.Response:
    """Add one camera (the whole camera object, as in the YAML)."""
    body = await _body(request)
    current = _dump(_running(request).settings.cameras)
    note(request, target=str(body.get("id", ""))[:64])
    if any(c["id"] == body.get("id") for c in current):
        raise BadRequest("id", f"camera {str(body.get('id'))[:64]!r} exists already")
    return await _apply(request, {"cameras": current + [body]})


async def update_camera(request: web.Request) -> web.Response:
    """Replace one camera (its id stays); a URL sent back masked keeps its password."""
    cam_id = request.match_info["id"]
    body = await _body(request)
    current = _dump(_running(request).settings.cameras)
    old = next((c for c in current if c["id"] == cam_id), None)
    if old is None:
        return json_error(404, f"no camera {cam_id!r}")
    if body.get("id", cam_id) != cam_id:
        raise BadRequest("id", "a camera's id cannot be changed (delete it and add a new one)")
    new = _keep_secrets({**body, "id": cam_id}, old)
    return await _apply(request, {"cameras": [new if c["id"] == cam_id else c for c in current]})


async def patch_camera(request: web.Request) -> web.Response:
    """Change some keys of one camera (``enabled``, ``zones``, ``position`` …), the rest kept."""
    cam_id = request.match_info["id"]
    body = await _body(request)
    current = _dump(_running(request).settings.cameras)
    old = next((c for c in current if c["id"] == cam_id), None)
    if old is None:
        return json_error(404, f"no camera {cam_id!r}")
    if body.get("id", cam_id) != cam_id:
        raise BadRequest("id", "a camera's id cannot be changed (delete it and add a new one)")
    new = _keep_secrets({**old, **body}, old)
    return await _apply(request, {"cameras": [new if c["id"] == cam_id else c for c in current]})


async def delete_camera(request: web.Request) -> web.Response:
    cam_id = request.match_info["id"]
    current = _dump(_running(request).settings.cameras)
    if not any(c["id"] == cam_id for c in current):
        return json_error(404, f"no camera {cam_id!r}")
    return await _apply(request, {"cameras": [c for c in current if c["id"] != cam_id]})


async def test_camera(request: web.Request) -> web.Response:
    """测试连接: open ``url`` (or camera ``id``'s stored URL) with ``transport`` and report what it sends."""
    body = await read_body(request, ProbeBody)
    url, cam_id = body.url, body.id
    settings = _running(request).settings
    if isinstance(cam_id, str) and cam_id:
        try:
            cam = settings.camera(cam_id)
        except KeyError:
            raise BadRequest("id", f"no camera {cam_id[:64]!r}") from None
        stored = cam.substream_url if body.which == "substream_url" and cam.substream_url else cam.url
        if not url or ("***" in url and redact_url(stored) == url):
            url = stored
    if not url:
        raise BadRequest("url", "give the stream URL to test (rtsp://…)")
    if url.startswith("demo://"):
        if running_url := _running(request).stream_url:
            url = running_url(url)  # the demo scene on the private RTSP server
        else:
            raise BadRequest("url", "demo:// 演示场景只能在 citywall up 中测试 (a built-in demo scene)")
    transport = body.transport or settings.ingest.transport
    slots = request.app[PROBE_SLOTS]
    if slots.locked():
        return json_error(503, f"{MAX_PROBES} connection tests are running; try again shortly")
    async with slots:
        result = await probe_camera(url, transport=transport)
    note(request, target=str(cam_id or "")[:64], probe={"url": result.url, "ok": result.ok, "kind": result.kind})
    return web.json_response(result.to_dict())


async def camera_candidates(request: web.Request) -> web.Response:
    """The stationary candidates detection sees now on a camera (normalised boxes), for the zone preview; says
    so when detection does not run in this process or has not analysed the camera yet."""
    cam_id = request.match_info["id"]
    running = _running(request)
    if not any(c.id == cam_id for c in running.settings.cameras):
        return json_error(404, f"no camera {cam_id!r}")
    if running.candidates is None:
        return web.json_response({"available": False, "boxes": [],
                                  "reason": "检测不在本服务器上运行（分布式部署），无法预览 "
                                            "(detection runs elsewhere)"})
    latest = running.candidates(cam_id)
    if latest is None:
        return web.json_response({"available": False, "boxes": [],
                                  "reason": "该摄像机尚未分析（未启用、离线或刚接入） (not analysed yet)"})
    at, boxes = latest
    return web.json_response({"available": True, "at": at, "boxes": boxes})


# ------------------------------------------------------------------------------------------------ users


def _user_view(user: Any) -> dict[str, Any]:
    return {"username": user.username, "display_name": user.display_name, "role": user.role.value,
            "enabled": user.enabled, "units": list(user.units)}


def _password(value: str, key: str, username: str) -> str:
    problem = password_problem(username, value)
    if problem:
        raise BadRequest(key, problem)
    return value


def _admins_left(users: list[dict[str, Any]]) -> bool:
    return any(u.get("role") == Role.ADMIN.value and u.get("enabled", True) for u in users)


async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"users": [_user_view(u) for u in _running(request).settings.users]})


async def add_user(request: web.Request) -> web.Response:
    """Create a user: ``username``, ``display_name``, ``role``, ``password`` (rules), ``units``."""
    body = await read_body(request, NewUserBody)
    username = body.username
    note(request, target=username[:64])
    current = _dump(_running(request).settings.users)
    if any(u["username"] == username for u in current):
        raise BadRequest("username", f"user {username[:64]!r} exists already")
    password = _password(body.password, "password", username)
    user = body.model_dump(exclude={"password"}, exclude_unset=True)
    user["password_hash"] = await asyncio.to_thread(hash_password, password)
    return await _apply(request, {"users": current + [user]})


async def update_user(request: web.Request) -> web.Response:
    """Change a user: ``display_name``, ``role``, ``enabled`` (false ends their sessions now), ``units``,
    ``password`` (a reset by the administrator)."""
    username = request.match_info["username"]
    body = await read_body(request, UserChangeBody)
    current = _dump(_running(request).settings.users)
    old = next((u for u in current if u["username"] == username), None)
    if old is None:
        return json_error(404, f"no user {username!r}")
    new = {**old, **body.model_dump(exclude={"password"}, exclude_unset=True)}
    if body.password is not None:
        new["password_hash"] = await asyncio.to_thread(hash_password, _password(body.password, "password", username))
    users = [new if u["username"] == username else u for u in current]
    if not _admins_left(users):
        raise BadRequest("role" if body.role is not None else "enabled", "至少保留一个启用的管理员 (the last admin)")
    return await _apply(request, {"users": users})


async def change_own_password(request: web.Request) -> web.Response:
    """A user changes their own password: ``old_password``, ``new_password`` (rules); their other sessions end."""
    session = require_session(request)
    body = await read_body(request, OwnPasswordBody)
    new = _password(body.new_password, "new_password", session.username)
    if await request.app[state.AUTHENTICATOR].check(session.username, body.old_password) is None:
        return json_error(403, "原密码不正确 (old password wrong)")
    current = _dump(_running(request).settings.users)
    digest = await asyncio.to_thread(hash_password, new)
    users = [{**u, "password_hash": digest} if u["username"] == session.username else u for u in current]
    return await _apply(request, {"users": users})


# ------------------------------------------------------------------------------------------------ YAML


async def export_config(request: web.Request) -> web.Response:
    """The running configuration as YAML (the site file's form)."""
    text = _running(request).export_yaml()
    return web.Response(text=text, content_type="application/yaml", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="citywall-running.yaml"'})


async def import_config(request: web.Request) -> web.Response:
    """``{"yaml": text, "apply": false}``: validate and show the diff; with ``apply: true`` apply it too."""
    body = await read_body(request, ImportBody)
    text = body.yaml
    if not text.strip():
        raise BadRequest("yaml", "the configuration to import, as YAML text")
    running = _running(request)
    try:
        new, restart = running.parse_import(text)
    except ConfigError as exc:
        return refused(exc)
    change, diff = running.preview(new)
    answer: dict[str, Any] = {"diff": diff, "actions": change.to_dict(), "restart_needed": restart, "applied": False}
    if body.apply:
        response = await _apply(request, {"cameras": _dump(new.cameras), "users": _dump(new.users)})
        if response.status != 200:
            return response
        answer["applied"] = True
    return web.json_response(answer)


# ------------------------------------------------------------------------------------------------ pages


async def cameras_page(request: web.Request) -> web.StreamResponse:
    login_first(request)
    return static_page("admin-cameras.html")


async def users_page(request: web.Request) -> web.StreamResponse:
    login_first(request)
    return static_page("admin-users.html")


# ------------------------------------------------------------------------------------------------ applying


def wall_applier(app: web.Application) -> Applier:
    """The wall server's part of a change: users for the login check, sessions of disabled users end (their
    sockets close now, here; other wall servers' within their session sweep), the screens' camera list."""

    async def apply_to_wall(old: Settings, new: Settings, change: ConfigChange) -> None:
        if change.users_changed:
            app[state.AUTHENTICATOR].set_users(new.users)
        for username in change.users_ended:
            await app[state.SESSIONS].revoke_user(username)
        if change.users_ended:
            ended = set(change.users_ended)
            tokens = {s.token for s, _ in app[state.HUB].sessions() + app[state.LIVE_SOCKETS].sessions()
                      if s.username in ended}
            for token in tokens:
                app[state.HUB].disconnect_session(token)
                app[state.LIVE_SOCKETS].disconnect_session(token)
        if change.camera_list_changed:
            screens = app.get(SCREENS)
            if screens is not None:
                screens.wall.set_cameras(c.id for c in new.cameras)
            live = app[state.LIVE]
            # a cluster wall server's proxy to the workers (citywall wall)
            if live is not None and hasattr(live, "set_cameras"):
                live.set_cameras(c.id for c in new.cameras if c.enabled)
            desk = app.get(REVIEW)
            if desk is not None:  # a confirmed alarm of a new camera is filed with its address and grid
                desk.filer.cameras = {c.id: c for c in new.cameras}

    return apply_to_wall


async def _follow(app: web.Application) -> AsyncIterator[None]:
    """Adopt the changes other processes announce (several wall servers)."""
    running = app[state.RUNNING]
    stop = asyncio.Event()
    task = None
    if running.bus is not None:
        task = asyncio.create_task(running.follow(stop), name="config-follow")
    yield
    stop.set()
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def add_routes(app: web.Application, running: RunningConfig) -> None:
    """Register the admin API and pages; ``running`` becomes ``app[state.RUNNING]``."""
    app[state.RUNNING] = running
    app[PROBE_SLOTS] = asyncio.Semaphore(MAX_PROBES)
    running.add_applier(wall_applier(app))
    r = app.router
    r.add_get("/api/admin/cameras", list_cameras)
    r.add_post("/api/admin/cameras", add_camera)
    r.add_put("/api/admin/cameras/{id}", update_camera)
    r.add_patch("/api/admin/cameras/{id}", patch_camera)
    r.add_delete("/api/admin/cameras/{id}", delete_camera)
    r.add_post("/api/admin/cameras/test", test_camera)
    r.add_get("/api/admin/cameras/{id}/candidates", camera_candidates)
    r.add_get("/api/admin/users", list_users)
    r.add_post("/api/admin/users", add_user)
    r.add_put("/api/admin/users/{username}", update_user)
    r.add_post("/api/me/password", change_own_password)
    r.add_get("/api/admin/config", export_config)
    r.add_post("/api/admin/config/import", import_config)
    r.add_get("/admin/cameras", cameras_page)
    r.add_get("/admin/users", users_page)
    app.cleanup_ctx.append(_follow)
