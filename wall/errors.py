"""JSON errors for the API: every failure an API client sees is ``{"error": "<what was wrong>"}``.

The middleware turns aiohttp's own HTTP errors (unknown route, wrong method) and unexpected exceptions on
``/api/*`` and ``/evidence/*`` into that shape, so a client never has to parse an HTML error page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("citywall.wall")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_REQUEST_BODY = 64 * 1024
"""Largest request body the server reads (aiohttp ``client_max_size``): a bigger one is a 413 naming the limit.
Uploads (``POST /api/clips``) stream their body and have their own limit."""


class BadRequest(ValueError):
    """Invalid client input; ``field`` names what was wrong (turned into a 400 by the middleware)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


_PARSED = web.RequestKey("parsed_json_body", tuple)


async def parsed_json(request: web.Request) -> Any:
    """The request body parsed as JSON, once per request (whatever its Content-Type, as aiohttp's ``json()`` does):
    the handler, the access policy and the audit log all see the same value. ValueError when it is not JSON,
    including JSON nested too deeply for the parser (a RecursionError would otherwise be a 500)."""
    cached = request.get(_PARSED)
    if cached is None:
        try:
            cached = (True, json.loads(await request.text()))
        except RecursionError:
            cached = (False, "not JSON: nested too deeply")
        except (ValueError, UnicodeDecodeError) as exc:
            cached = (False, f"not JSON: {exc}")
        request[_PARSED] = cached
    ok, value = cached
    if not ok:
        raise ValueError(value)
    return value


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error response ``{"error": message}`` with ``status``."""
    return web.json_response({"error": message}, status=status, headers=headers)


def require_websocket_handshake(ws: web.WebSocketResponse, request: web.Request) -> None:
    """A 400 naming the ``Upgrade`` header when ``request`` is a plain HTTP request to a WebSocket endpoint (instead
    of aiohttp's own handshake message)."""
    if not ws.can_prepare(request).ok:
        raise BadRequest("Upgrade", "this is a WebSocket endpoint; open it with a WebSocket client "
                                    "(Connection: Upgrade, Upgrade: websocket)")


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/api" or path.startswith("/evidence/")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map :class:`BadRequest` to 400 everywhere, and HTTP errors/crashes on API paths to JSON bodies."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_error(400, str(exc))
    except web.HTTPException as exc:
        if not _is_api(request.path) or exc.status < 400 or exc.content_type == "application/json":
            raise
        reason = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 404:
            reason = f"no such resource {request.path}"
        elif exc.status == 405:
            reason = f"method {request.method} not allowed on {request.path}"
        return json_error(exc.status, reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except Exception:
        if not _is_api(request.path):
            raise
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal server error (logged on the server)")
