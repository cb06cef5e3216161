"""A small aiohttp server that serves a clip cache directory, so network speakers can fetch clips by URL.

Production may serve the same directory from the wall server instead; this one is for the embedded/demo setup,
tests and the bench. Only plain file names are served (no sub-paths, no dot files), with the audio MIME type.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

CLIP_NAME = _NAME = re.compile(r"^[0-9a-f]{8,64}\.(wav|mp3|opus)$")
CLIP_MIME = _MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg; codecs=opus"}


def clip_routes(directory: Path, prefix: str = "/clips") -> list[web.RouteDef]:
    """Routes serving ``GET {prefix}/{name}`` from ``directory`` (404 for anything that is not a cached clip)."""
    directory = Path(directory)

    async def get_clip(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not _NAME.match(name) or not (directory / name).is_file():
            raise web.HTTPNotFound(text=f"no clip {name!r}")
        response = web.FileResponse(directory / name)
        response.content_type = _MIME[name.rsplit(".", 1)[1]].split(";")[0]
        return response

    return [web.get(prefix + "/{name}", get_clip)]


class ClipServer:
    """Serves ``directory`` on ``host``:``port`` (0 = free port); ``url(name)`` is what a PlayCommand carries."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Start listening; returns the base URL (``http://127.0.0.1:PORT/clips``)."""
        app = web.Application()
        app.add_routes(clip_routes(self.directory))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    @property
    def base_url(self) -> str:
        """``http://host:port/clips``."""
        return f"http://{self.host}:{self.port}/clips"

    def url(self, name: str) -> str:
        """The URL of clip file ``name``."""
        return f"{self.base_url}/{name}"

    async def stop(self) -> None:
        """Close the listener and open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
