"""Evidence files (``/evidence/{path}``, login required): snapshots and clips from the evidence directory.

Only regular files strictly inside the evidence directory are served (no ``..``, no absolute paths, no symlink
that leads outside) and only image/video types; anything else is a 404 that reveals nothing about the disk.
Evidence files are written once and never changed, so browsers may cache them (privately: they show people).
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

from aiohttp import web

from wall import state
from wall.auth import current_session
from wall.errors import json_error

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}
CACHE_CONTROL = "private, max-age=86400, immutable"


def resolve_evidence(root: Path, rel: str) -> Path | None:
    """The file ``rel`` names inside ``root``, or None if it is outside, missing, or not an evidence type."""
    if not rel or "\x00" in rel or "\\" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):  # absolute, "//", "./" or "../" anywhere
        return None
    if PurePosixPath(rel).suffix.lower() not in CONTENT_TYPES:
        return None
    try:
        base = root.resolve(strict=True)
        target = (base / Path(*parts)).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


async def evidence(request: web.Request) -> web.StreamResponse:
    """``GET /evidence/{path}``: one evidence file, or 404 JSON."""
    rel = request.match_info["path"]
    target = resolve_evidence(request.app[state.EVIDENCE_DIR], rel)
    if target is None or not await _unit_may_read(request, rel):
        return json_error(404, f"no evidence file {rel[:200]}")
    return web.FileResponse(
        target,
        headers={
            "Content-Type": CONTENT_TYPES[target.suffix.lower()],
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _unit_may_read(request: web.Request, rel: str) -> bool:
    """A unit user reads only the evidence of their units' cases; everyone else reads every file."""
    from wall.case_office import unit_scope  # the case office owns unit scope

    session = current_session(request)
    scope = unit_scope(request, session) if session is not None else None
    if scope is None:
        return True
    units = await asyncio.to_thread(request.app[state.CASES].evidence_case_units, rel)
    return bool(units & set(scope))


def add_routes(app: web.Application) -> None:
    """Register ``/evidence/{path}``."""
    app.router.add_get("/evidence/{path:.*}", evidence)
