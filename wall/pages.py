"""Pages: ``/`` → ``/wall``, ``/login``, ``/wall`` (login required) and the static files under ``/static/``.

The pages themselves live in ``web/static`` (owned by the web room). If a page is missing — e.g. a server
installed without the browser files — a minimal built-in page is served so login still works and says so.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

import web as web_assets
from wall import state
from wall.auth import SESSION

log = logging.getLogger("citywall.wall.pages")

PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

_FALLBACK_LOGIN = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>登录 — {site}</title></head>
<body>
<h1>{site}</h1>
<form id="login">
  <label>用户名 <input name="username" autocomplete="username" required></label>
  <label>密码 <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">登录</button>
  <p id="error" role="alert"></p>
</form>
<script>
document.getElementById('login').addEventListener('submit', async (ev) => {{
  ev.preventDefault();
  const form = new FormData(ev.target);
  const resp = await fetch('/api/login', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
    body: JSON.stringify({{username: form.get('username'), password: form.get('password')}})}});
  if (resp.ok) {{
    const next = new URLSearchParams(location.search).get('next') || '/wall';
    location.href = next.startsWith('/') && !next.startsWith('//') ? next : '/wall';
  }} else {{
    document.getElementById('error').textContent = (await resp.json()).error || resp.statusText;
  }}
}});
</script>
</body></html>
"""

_FALLBACK_WALL = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{site}</title></head>
<body><h1>{site}</h1>
<p>The wall page (web/static/wall.html) is not installed on this server. The API is available at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></body></html>
"""


def _page(request: web.Request, name: str, fallback: str) -> web.StreamResponse:
    path: Path = web_assets.STATIC_DIR / name
    if path.is_file():
        return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"})
    site = html.escape(request.app[state.SETTINGS].site_name)
    return web.Response(text=fallback.format(site=site), content_type="text/html", headers=PAGE_HEADERS)


def static_page(name: str) -> web.StreamResponse:
    """A page of ``web/static`` (500 naming it when the server was installed without it)."""
    path = web_assets.STATIC_DIR / name
    if not path.is_file():
        return web.Response(status=500, text=f"{name} is not installed on this server", headers=PAGE_HEADERS)
    return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"})


def login_first(request: web.Request) -> None:
    """Send a browser without a session to ``/login?next=<this page>``."""
    if request.get(SESSION) is None:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")


async def index(request: web.Request) -> web.StreamResponse:
    """``/`` → ``/wall``."""
    raise web.HTTPFound("/wall")


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login page (public)."""
    return _page(request, "login.html", _FALLBACK_LOGIN)


async def wall_page(request: web.Request) -> web.StreamResponse:
    """The big-screen wall (the auth middleware redirects to ``/login`` without a session)."""
    return _page(request, "wall.html", _FALLBACK_WALL)


def add_routes(app: web.Application) -> None:
    """Register the pages and ``/static/``."""
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_get("/wall", wall_page)
    static_dir = web_assets.STATIC_DIR
    if static_dir.is_dir():
        app.router.add_static("/static/", static_dir, append_version=False)
    else:
        log.warning("no static files at %s; /static/ is not served", static_dir)
