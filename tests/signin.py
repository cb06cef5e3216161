"""Signing in from tests, one way for every HTTP client: ``POST /api/login``, then send the session's CSRF token.

After a successful login the client (an aiohttp ``TestClient`` or ``ClientSession``) sends ``X-CSRF-Token`` with
every later request, as the wall pages do (``web/static/api.js``); a failed login leaves the client as it was.
"""

from __future__ import annotations

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
