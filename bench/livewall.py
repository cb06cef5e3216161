"""A real wall server with real live video, for the live benchmarks: Redis, case store, IngestService, wall app
(``wall.app.create_app``) on a loopback port, and a logged-in page in headless Chromium.

    async with LiveWall({"cam-1": "rtsp://127.0.0.1:8554/clock"}) as wall:
        page = await wall.new_page()
        await wall.show_tiles(page, ["cam-1"])

``show_tiles`` puts ``<cw-tile>`` elements (the real web/static/video-tile.js) on a same-origin page of the wall
server; the tiles talk to the real ``/api/live/<camera>`` socket. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from playwright.async_api import Browser, Page, Playwright, async_playwright  # noqa: E402

from broker.bus import Bus  # noqa: E402
from broker.embedded import EmbeddedRedis  # noqa: E402
from cases.store import CaseStore  # noqa: E402
from config import parse_settings  # noqa: E402
from tests.fixtures.browser import ChromiumProcess, start_chromium  # noqa: E402
from tests.live_page import login_page, show_tiles  # noqa: E402,F401
from video_ingest.service import IngestService  # noqa: E402
from wall.app import create_app  # noqa: E402
from wall.passwords import hash_password  # noqa: E402

PASSWORD = "bench-pw"


class LiveWall:
    """Everything from camera URL to a Chromium page, started in order and stopped in reverse."""

    def __init__(self, sources: dict[str, str], *, open_timeout_s: float = 5.0, read_timeout_s: float = 3.0,
                 chromium_args: tuple[str, ...] = ()) -> None:
        self.sources = sources
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.chromium_args = chromium_args
        self.url = ""
        self.ingest: IngestService | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="citywall-bench-"))
        self._redis: EmbeddedRedis | None = None
        self._bus: Bus | None = None
        self._store: CaseStore | None = None
        self._runner: web.AppRunner | None = None
        self._chromium: ChromiumProcess | None = None
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._contexts: list[Any] = []

    async def __aenter__(self) -> LiveWall:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._redis = EmbeddedRedis(self._tmp / "redis")
        redis_url = self._redis.start()
        self._bus = await Bus.connect(redis_url, prefix="bench")
        self._store = CaseStore.open(f"sqlite:///{self._tmp}/cases.sqlite")
        settings = parse_settings({
            "site_name": "基准测试",
            "storage": {"data_dir": str(self._tmp / "var")},
            "users": [{"username": "admin", "display_name": "管理员", "role": "admin",
                       "password_hash": hash_password(PASSWORD, n=2**10)}],
            "cameras": [{"id": cid, "name": cid, "url": url, "position": {"lon": 120.15, "lat": 30.27}}
                        for cid, url in self.sources.items()],
        })
        self.ingest = IngestService(self.sources, open_timeout_s=self.open_timeout_s,
                                    read_timeout_s=self.read_timeout_s, sample_keyframes=False)
        await self.ingest.start()
        evidence = self._tmp / "evidence"
        evidence.mkdir()
        app = create_app(settings, bus=self._bus, cases=self._store, live=self.ingest.live, evidence_dir=evidence)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # (aiohttp keeps the listening server private)
        assert isinstance(server, asyncio.Server)  # started
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._chromium = start_chromium(extra_args=self.chromium_args)
        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.connect_over_cdp(self._chromium.cdp_url)

    async def new_page(self, width: int = 1920, height: int = 1080) -> Page:
        """A page in a fresh context, logged in as admin, on a same-origin document of the wall server."""
        assert self._browser is not None
        context = await self._browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        self._contexts.append(context)
        return await login_page(context, self.url, "admin", PASSWORD)

    async def show_tiles(self, page: Page, cameras: list[str], **kwargs: Any) -> None:
        """See :func:`tests.live_page.show_tiles`."""
        await show_tiles(page, cameras, **kwargs)

    async def stop(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):
                await context.close()
        if self._browser is not None:
            await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()
        if self._chromium is not None:
            self._chromium.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.ingest is not None:
            await self.ingest.stop()
        if self._store is not None:
            self._store.close()
        if self._bus is not None:
            try:
                await self._bus.purge()
            finally:
                await self._bus.close()
        if self._redis is not None:
            self._redis.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


async def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    """Poll an async or plain predicate until it holds (True) or ``timeout`` passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(interval)
    return False
