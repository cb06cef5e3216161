"""Signing in from tests, one way for every HTTP client: ``POST /api/login``, then send the session's CSRF token;
and one way for a browser page: the login form, as a person fills it.

After a successful login the client (an aiohttp ``TestClient`` or ``ClientSession``) sends ``X-CSRF-Token`` with
every later request, as the wall pages do (``web/static/api.js``); a failed login leaves the client as it was.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from wall.access import CSRF_HEADER


async def login(client: TestClient | aiohttp.ClientSession, username: str, password: str, *,
                base: str = "") -> aiohttp.ClientResponse:
    """Log ``client`` in as ``username``; ``base`` is the server URL for a ``ClientSession`` without ``base_url``."""
    resp = await client.post(f"{base}/api/login", json={"username": username, "password": password})
    if resp.status == 200:
        session = client.session if isinstance(client, TestClient) else client
        session.headers[CSRF_HEADER] = (await resp.json())["csrf_token"]
    return resp


async def csrf_headers(request: Any, base: str) -> dict[str, str]:
    """The CSRF header for a Playwright ``APIRequestContext`` (``page.request``) already signed in."""
    resp = await request.get(f"{base}/api/me")
    return {CSRF_HEADER: (await resp.json())["csrf_token"]}


async def sign_in_page(page: Any, base: str, path: str, username: str, password: str) -> None:
    """Open ``path`` on a Playwright ``page``, sign in through the login form it is sent to, and wait until the
    page is back on ``path`` and ready (``body[data-ready='1']`` where the page sets it)."""
    await page.goto(f"{base}/login?next={path}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.press("input[name=password]", "Enter")
    await page.wait_for_url(re.compile(rf".*{re.escape(path)}$"))
