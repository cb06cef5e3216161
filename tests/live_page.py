"""Helpers for live-tile pages in Chromium: log a page into a wall server and lay out ``<cw-tile>`` elements.

Used by tests/test_live_tiles.py and the live benchmarks (bench/livewall.py). The tiles are the real
web/static/video-tile.js on a same-origin document of the real wall server, talking to its ``/api/live``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from playwright.async_api import BrowserContext, Page


async def login_page(context: BrowserContext, base_url: str, username: str, password: str) -> Page:
    """Log ``context`` in (cookie) and return a new page on the wall server's login document."""
    resp = await context.request.post(f"{base_url}/api/login", data=json.dumps(
        {"username": username, "password": password}),
        headers={"Content-Type": "application/json", "Origin": base_url})
    if resp.status != 200:
        raise RuntimeError(f"login failed: {resp.status} {await resp.text()}")
    page = await context.new_page()
    await page.goto(f"{base_url}/login")
    return page


async def show_tiles(page: Page, cameras: list[str], *, width: int = 640, height: int = 360, columns: int = 4,
                     spacer_px: int = 0) -> None:
    """Replace the page's document with a grid of ``<cw-tile>`` elements (after a spacer of ``spacer_px``)."""
    cells = "".join(
        f'<cw-tile camera="{html.escape(c)}" name="{html.escape(c)}" '
        f'style="width:{width}px;height:{height}px"></cw-tile>' for c in cameras)
    await page.evaluate(
        """([cells, columns, spacer]) => {
             document.head.innerHTML = '<meta charset="utf-8">';
             document.body.innerHTML = `<div id="spacer" style="height:${spacer}px"></div>
               <div id="grid" style="display:grid;gap:0;grid-template-columns:repeat(${columns}, max-content)">
               ${cells}</div>`;
             document.body.style.cssText = 'margin:0;background:#000';
             return import('/static/video-tile.js');
           }""", [cells, columns, spacer_px])
    await page.wait_for_function("() => !!customElements.get('cw-tile')")


async def tile_stats(page: Page) -> list[dict[str, Any]]:
    """Every tile's ``stats`` in document order."""
    return await page.evaluate("() => [...document.querySelectorAll('cw-tile')].map(t => t.stats)")


async def overlay_shown(page: Page, index: int = 0) -> bool:
    """Whether tile ``index`` shows its offline overlay (信号中断)."""
    return await page.evaluate(
        "i => !document.querySelectorAll('cw-tile')[i].shadowRoot.querySelector('.overlay').hidden", index)
