"""Site models on the admin pages (``/admin/models``, ``/api/admin/models``): the versions with their model cards,
which is live, the shadow run, promotion and 回退 (rollback). Admin only; every promotion, rollback and shadow start
is an audited action (``wall.access``). Promotion writes the registry's ``active.json``; the detection worker's
``learning.switch.ModelSwitch`` swaps the model in within seconds, without a restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from learning import learning_root
from learning.registry import VERSION, ModelRegistry, RegistryError
from learning.shadow import ShadowPlan
from wall import state
from wall.auth import require_session
from wall.errors import BadRequest, json_error
from wall.pages import static_page

REGISTRY: web.AppKey[ModelRegistry] = web.AppKey("model_registry")


def _summary(registry: ModelRegistry, version: str) -> dict[str, Any]:
    card = registry.card(version)
    return {"version": version, "created_at": card["created_at"], "command": card["command"],
            "classes": card["classes"], "metrics_val": card["metrics_val"],
            "metrics_val_overall": card["metrics_val_overall"], "data": card["data"],
            "training": card["training"], "compare": card.get("compare")}


def _listing(registry: ModelRegistry, now: float) -> dict[str, Any]:
    st = registry.state()
    plan = ShadowPlan.read(registry.root)
    return {"versions": [_summary(registry, v) for v in reversed(registry.versions())], "active": st.active,
            "history": list(st.history)[-50:], "shadow": plan.to_dict(now) if plan else None}


def _version(request: web.Request) -> str:
    version = request.match_info["version"]
    if not VERSION.fullmatch(version):
        raise BadRequest("version", f"{version[:40]!r} is not a model version (vNNNN-YYYYMMDD-HHMMSS)")
    return version


async def list_models(request: web.Request) -> web.Response:
    require_session(request)
    registry = request.app[REGISTRY]
    return web.json_response(await asyncio.to_thread(_listing, registry, request.app[state.CLOCK]()))


async def promote(request: web.Request) -> web.Response:
    session = require_session(request)
    version = _version(request)
    registry = request.app[REGISTRY]
    try:
        st = await asyncio.to_thread(registry.promote, version, by=session.username, now=request.app[state.CLOCK]())
    except RegistryError as exc:
        return json_error(409 if "live already" in str(exc) else 404, str(exc))
    return web.json_response({"active": st.active, "entry": st.history[-1]})


async def rollback(request: web.Request) -> web.Response:
    session = require_session(request)
    registry = request.app[REGISTRY]
    try:
        st = await asyncio.to_thread(registry.rollback, by=session.username, now=request.app[state.CLOCK]())
    except RegistryError as exc:
        return json_error(409, str(exc))
    return web.json_response({"active": st.active, "entry": st.history[-1]})


async def shadow(request: web.Request) -> web.Response:
    session = require_session(request)
    version = _version(request)
    registry = request.app[REGISTRY]
    try:
        await asyncio.to_thread(registry.card, version)
    except RegistryError as exc:
        return json_error(404, str(exc))
    settings = request.app[state.SETTINGS].learning.shadow
    now = request.app[state.CLOCK]()
    plan = ShadowPlan(version=version, started_at=now, until=now + settings.duration_s, interval_s=settings.interval_s,
                      by=session.username)
    await asyncio.to_thread(plan.write, registry.root)
    return web.json_response(plan.to_dict(now))


async def models_page(request: web.Request) -> web.StreamResponse:
    return static_page("admin-models.html")


def add_routes(app: web.Application) -> None:
    app[REGISTRY] = ModelRegistry(learning_root(app[state.SETTINGS]) / "models")
    app.router.add_get("/admin/models", models_page)
    app.router.add_get("/api/admin/models", list_models)
    app.router.add_post("/api/admin/models/rollback", rollback)
    app.router.add_post("/api/admin/models/{version}/promote", promote)
    app.router.add_post("/api/admin/models/{version}/shadow", shadow)
