"""The login page and the wall page in real headless Chromium against a small server that speaks the wall protocol.

The server (``ProtocolServer``) serves ``web/static`` and the HTTP/WS protocol of the brief — login with a
session cookie, cameras, alarms, cases, the event socket (hello, alarm, camera_status, case frames; resume) and
live video (a real H.264 fMP4 stream). Tests push frames and check what a watch officer would see.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

import web as web_assets
from tests.fixtures.browser import Fmp4Clip, LiveFeed
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

EVIL = '<img src=x onerror="window.__pwned=1">河坊街'
SCREENSHOT = Path("/tmp/wall.png")


def _camera(cam_id: str, name: str, state: str = "online") -> dict:
    return {
        "id": cam_id, "name": name, "enabled": True,
        "position": {"lon": 120.15, "lat": 30.27, "address": "测试路", "street": "湖滨街道", "community": "东坡社区"},
        "zones": [], "status": {"camera_id": cam_id, "state": state, "at": time.time()}, "url": "demo://x",
        "live": True,
    }


def _alarm(alarm_id: str, camera_id: str, camera_name: str, event: str, *, phase: str = "raised",
           at: float | None = None, dwell: float = 125.0) -> dict:
    at = time.time() if at is None else at
    return {
        "alarm_id": alarm_id, "phase": phase, "camera_id": camera_id, "zone_id": "pavement", "event": event,
        "started_at": at - dwell, "at": at, "dwell_s": dwell, "confidence": 0.9, "boxes": [],
        "snapshot": "snap.jpg", "snapshot_url": "/evidence/snap.jpg", "camera_name": camera_name,
        "zone_name": "人行道禁止摆摊区", "detector": "stationary-bg/1",
    }


def _case(n: int, camera_id: str, *, state: str = "dispatched", label: str = "已派遣", deadline_in: float = 3 * 3600,
          code: str = "0501", category: str = "无照经营游商", unit: str = "湖滨街道城管中队") -> dict:
    now = time.time()
    return {
        "id": f"case-{n}", "case_no": f"CG20261122{n:04d}", "source": "camera", "kind": "事件", "code": code,
        "category_name": category, "title": category, "state": state, "state_label": label, "urgency": "一般",
        "camera_id": camera_id, "camera_name": "", "unit_id": "u1", "unit_name": unit, "reported_at": now - 600,
        "deadline_at": now + deadline_in, "overdue": deadline_in < 0, "evidence": [], "evidence_urls": [],
    }


class ProtocolServer:
    """The wall server's HTTP/WS protocol over in-memory data; tests edit the data and push frames."""

    def __init__(self, clip: Fmp4Clip) -> None:
        self.feed = LiveFeed(clip)
        self.cameras = [
            _camera("cam-vending", "解放路人行道"),
            _camera("cam-bin", "延安路垃圾箱"),
            _camera("cam-road", "中山路机动车道"),
            _camera("cam-street", EVIL),
            _camera("cam-extra", "第五路口", state="offline"),
        ]
        self.alarms: list[dict] = []      # newest first, each with "id"
        self.system_alarms: dict = {"alarms": [], "last_id": "0-0"}  # GET /api/system-alarms
        self.me: dict = {"user": {"username": "admin"}}                # GET /api/me
        self.cases: list[dict] = []
        self.sessions: set[str] = set()
        self.sockets: list[web.WebSocketResponse] = []
        self.received: list[dict] = []    # client → server frames on /api/ws
        self.case_requests = 0
        self.locked_users = {"locked"}
        self.url = ""
        self._runner: web.AppRunner | None = None
        ok, jpeg = cv2.imencode(".jpg", np.full((180, 320, 3), (40, 90, 200), np.uint8))
        self.snapshot = jpeg.tobytes()

    # -------------------------------------------------------------------------------------------- control

    async def push(self, frame: dict) -> None:
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_str(json.dumps(frame))

    async def drop_sockets(self) -> None:
        for ws in list(self.sockets):
            await ws.close()

    async def wait_for_clients(self, n: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while sum(not ws.closed for ws in self.sockets) < n:
            assert time.monotonic() < deadline, "the wall never opened /api/ws"
            await asyncio.sleep(0.05)

    # -------------------------------------------------------------------------------------------- http

    def _authed(self, request: web.Request) -> bool:
        return request.cookies.get("cw_session") in self.sessions

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        path = request.path
        public = path in ("/login", "/api/login") or path.startswith("/static/")
        if not public and not self._authed(request):
            if path.startswith("/api/") or path.startswith("/evidence/"):
                return web.json_response({"error": "login required"}, status=401)
            raise web.HTTPFound(f"/login?next={path}")
        return await handler(request)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        static = web_assets.STATIC_DIR
        def page(name: str):
            async def handler(request: web.Request) -> web.FileResponse:
                return web.FileResponse(static / name)
            return handler

        def json_of(value):
            async def handler(request: web.Request) -> web.Response:
                return web.json_response(value())
            return handler

        app.router.add_get("/login", page("login.html"))
        app.router.add_get("/wall", page("wall.html"))
        app.router.add_post("/api/login", self._login)
        app.router.add_get("/api/me", json_of(lambda: self.me))
        app.router.add_get("/api/cameras", json_of(lambda: {"cameras": self.cameras}))
        app.router.add_get("/api/alarms", json_of(lambda: {"alarms": self.alarms}))
        app.router.add_get("/api/case-deadlines", json_of(lambda: {"deadlines": []}))
        app.router.add_get("/api/system-alarms", json_of(lambda: self.system_alarms))
        app.router.add_get("/api/cases", self._cases)
        app.router.add_get("/api/ws", self._ws)
        app.router.add_get("/api/live/{camera_id}", self.feed.handle)
        app.router.add_get("/evidence/snap.jpg", self._snapshot)
        app.router.add_static("/static/", static)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self.drop_sockets()
        if self._runner:
            await self._runner.cleanup()

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("username") in self.locked_users:
            return web.json_response({"error": "too many failed logins"}, status=429, headers={"Retry-After": "42"})
        if body.get("username") != "admin" or body.get("password") != "citywall":
            return web.json_response({"error": "wrong username or password"}, status=401)
        token = secrets.token_urlsafe(16)
        self.sessions.add(token)
        resp = web.json_response({"user": {"username": "admin", "display_name": "系统管理员", "role": "admin"}})
        resp.set_cookie("cw_session", token, httponly=True, samesite="Strict", path="/")
        return resp

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.Response(body=self.snapshot, content_type="image/jpeg")

    async def _cases(self, request: web.Request) -> web.Response:
        self.case_requests += 1
        return web.json_response({"cases": self.cases, "total": len(self.cases)})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "user": {"username": "admin"}})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.received.append(json.loads(msg.data))
        return ws


@pytest_asyncio.fixture
async def server(fmp4_clip: Fmp4Clip) -> AsyncIterator[ProtocolServer]:
    srv = ProtocolServer(fmp4_clip)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def sign_in(page, srv: ProtocolServer) -> None:
    await page.goto(f"{srv.url}/wall")
    await page.wait_for_url(re.compile(r".*/login\?next=.*"))
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", "citywall")
    await page.press("input[name=password]", "Enter")
    await page.wait_for_url(re.compile(r".*/wall$"))
    await srv.wait_for_clients()




async def test_login_page_messages_and_redirect(page, server):
    await page.goto(f"{server.url}/wall")
    await page.wait_for_url(re.compile(r".*/login\?next=/wall$"))
    assert "登录" in await page.text_content("h2")
    await page.fill("#username", "admin")
    await page.fill("#password", "nope")
    await page.click("#submit")
    await page.locator("#error", has_text="用户名或密码错误").wait_for(timeout=5000)
    assert "Wrong username or password" in await page.text_content("#error")
    await page.fill("#username", "locked")
    await page.click("#submit")
    await page.locator("#error", has_text="42 秒后再试").wait_for(timeout=5000)
    # Big type for the hall: the form's input text is at least 28 px.
    size = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('#username')).fontSize)")
    assert size >= 28
    await page.fill("#username", "admin")
    await page.fill("#password", "citywall")
    await page.press("#password", "Enter")
    await page.wait_for_url(re.compile(r".*/wall$"))


async def test_login_ignores_an_offsite_next(page, server):
    await page.goto(f"{server.url}/login?next=//evil.example/x")
    await page.fill("#username", "admin")
    await page.fill("#password", "citywall")
    await page.click("#submit")
    await page.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/wall$"))


async def tile_stats(page) -> list[dict]:
    return await page.evaluate("[...document.querySelectorAll('cw-tile')].map(t => t.stats)")


async def test_wall_plays_tiles_shows_history_and_live_alarms(page, server):
    now = time.time()
    yesterday = datetime.datetime.now().replace(hour=0, minute=0, second=0).timestamp() - 3600
    server.alarms = [
        {**_alarm("a-old", "cam-bin", "延安路垃圾箱", "bin_overflow", at=yesterday), "id": "1700000000000-0"},
    ]
    server.cases = [
        _case(1, "cam-vending"),
        _case(2, "cam-road", code="0507", category="乱堆物堆料", deadline_in=-2 * 3600, label="处置中",
              state="handling"),
        _case(3, "cam-bin", code="0305", category="垃圾箱", state="closed", label="已结案"),
    ]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, server)

    # The grid: the first four cameras, each playing real video.
    tiles = page.locator("cw-tile")
    assert await tiles.count() == 4
    assert [await tiles.nth(i).get_attribute("camera") for i in range(4)] == [c["id"] for c in server.cameras[:4]]
    first = await eventually(
        lambda: _all_live(page), timeout=30, what="every tile live with a picture")
    await asyncio.sleep(2.0)
    second = await tile_stats(page)
    for a, b in zip(first, second, strict=False):
        assert b["currentTime"] > a["currentTime"] + 1.0, (a, b)

    # Counters: 4 of 5 cameras online, 1 open case overdue, 2 open cases.
    assert (await page.text_content("#count-cameras .value")).replace(" ", "") == "4/5"
    assert await page.text_content("#count-open .num") == "2"
    assert await page.text_content("#count-overdue .num") == "1"
    assert "alert" in (await page.get_attribute("#count-overdue", "class"))

    # History card from GET /api/alarms; cases with overdue first and red.
    assert await page.locator(".alarm-card").count() == 1
    assert "垃圾箱满溢" in await page.text_content(".alarm-card")
    rows = page.locator(".case-row")
    assert await rows.count() == 3
    assert "超期" in await rows.nth(0).text_content() and "0507" in await rows.nth(0).text_content()
    assert "overdue" in await rows.nth(0).get_attribute("class")
    colour = await page.evaluate(
        "getComputedStyle(document.querySelector('.case-row.overdue .deadline .left')).color")
    assert colour == "rgb(255, 107, 107)"
    assert "剩余" in await rows.nth(1).text_content() and "湖滨街道城管中队" in await rows.nth(1).text_content()

    # A live alarm: a new card on top with the Chinese label; the camera's tile gets the alarm border.
    raised = _alarm("a-1", "cam-vending", "解放路人行道", "vending")
    await server.push({"type": "alarm", "id": "1700000000001-0", "alarm": raised})
    card = page.locator(".alarm-card").first
    await card.locator(".zh", has_text="无照经营游商").wait_for(timeout=5000)
    text = await card.text_content()
    assert "解放路人行道" in text and "人行道禁止摆摊区" in text and "停留 2分05秒" in text
    assert "fresh" in await card.get_attribute("class")
    assert await page.get_attribute("cw-tile[camera=cam-vending]", "alarm") == ""
    assert await page.get_attribute("cw-tile[camera=cam-road]", "alarm") is None
    def border_of(camera: str) -> str:
        return f"getComputedStyle(document.querySelector('cw-tile[camera={camera}]')).borderTopColor"

    border = await page.evaluate(border_of("cam-vending"))
    assert border != await page.evaluate(border_of("cam-road"))
    assert await page.text_content("#count-alarms .num") == "1"  # the other one was raised yesterday
    snap = await card.locator("img").evaluate("img => img.complete && img.naturalWidth")
    assert snap == 320

    # Cleared: the same card, marked 已消除.
    await server.push({"type": "alarm", "id": "1700000000002-0", "alarm": {**raised, "phase": "cleared"}})
    await page.locator(".alarm-card[data-alarm-id=a-1] .cleared-tag").wait_for(timeout=5000)
    assert await page.locator(".alarm-card").count() == 2

    # Camera status frames move the badge source and the online count.
    await server.push({"type": "camera_status", "status": {"camera_id": "cam-road", "state": "offline", "at": now}})
    await eventually(lambda: _text(page, "#count-cameras .value", "3/5"), what="3/5 online")
    assert await page.get_attribute("cw-tile[camera=cam-road]", "camera-state") == "offline"

    # A case frame → the list is fetched again.
    before = server.case_requests
    server.cases.insert(0, _case(4, "cam-vending", category="无照经营游商"))
    await server.push({"type": "case", "id": "1700000000003-0", "event": {"case_id": "case-4", "action": "filed"}})
    await eventually(lambda: _count(page, ".case-row", 4), what="4 case rows")
    assert server.case_requests > before

    await page.screenshot(path=str(SCREENSHOT))
    assert errors == [], errors

    # A smaller screen shows the same 16:9 stage scaled down, centred, without scrollbars.
    await page.set_viewport_size({"width": 1280, "height": 800})
    await asyncio.sleep(0.3)
    stage = await page.locator("#stage").bounding_box()
    assert stage and abs(stage["width"] - 1280) < 2 and abs(stage["height"] - 720) < 2 and abs(stage["y"] - 40) < 2
    assert await page.evaluate("document.scrollingElement.scrollHeight <= innerHeight")
    await page.screenshot(path=str(SCREENSHOT.with_name("wall-1280x800.png")))


async def _all_live(page):
    s = await tile_stats(page)
    return s if all(t["state"] == "live" and t["videoWidth"] > 0 for t in s) else None


async def _text(page, selector: str, expected: str):
    return (await page.text_content(selector) or "").replace(" ", "") == expected


async def _count(page, selector: str, n: int):
    return await page.locator(selector).count() == n


async def test_stored_text_never_becomes_markup(page, server):
    server.alarms = [{**_alarm("a-x", "cam-street", EVIL, "vending"), "zone_name": EVIL, "id": "1700000000000-0"}]
    server.cases = [_case(9, "cam-street", category=EVIL, unit=EVIL)]
    await sign_in(page, server)
    await page.locator(".case-row").first.wait_for()
    tile_name = await page.evaluate(
        "document.querySelector('cw-tile[camera=cam-street]').shadowRoot.querySelector('.name').textContent")
    assert tile_name == EVIL
    assert EVIL in await page.text_content(".alarm-card .where")
    assert EVIL in await page.text_content(".case-row .category")
    await server.push({"type": "alarm", "id": "1700000000001-0", "alarm": {
        **_alarm("a-y", "cam-street", EVIL, "road_occupation"), "event": EVIL}})
    await page.locator(".alarm-card[data-alarm-id=a-y]").wait_for()
    await asyncio.sleep(0.5)
    # Only the snapshot thumbnails are <img>; nothing from the text was parsed as markup.
    assert await page.evaluate("document.querySelectorAll('img:not(.thumb img)').length") == 0
    assert await page.evaluate("window.__pwned") is None


async def test_event_socket_reconnects_and_resumes_without_duplicates(page, server):
    server.alarms = [{**_alarm("a-0", "cam-bin", "延安路垃圾箱", "bin_overflow"), "id": "1700000000005-0"}]
    fault = {"alarm_id": "recording_disk_full@up", "kind": "recording_disk_full", "phase": "raised", "at": 1700000004,
             "node": "up", "label": "录像磁盘已满", "detail": "No space left on device", "cameras": ["cam-bin"]}
    server.system_alarms = {"alarms": [{**fault, "id": "1700000000004-0"}], "last_id": "1700000000004-1"}
    await sign_in(page, server)
    first = await eventually(lambda: _resume(server), what="first resume")
    assert first["last_ids"] == {"alarms": "1700000000005-0", "case_deadlines": "0-0",
                                 "system_alarms": "1700000000004-1"}
    strip = page.locator("#system-alarms .sys-alarm[data-kind=recording_disk_full]")
    await strip.wait_for()
    await server.push({"type": "alarm", "id": "1700000000006-0",
                       "alarm": _alarm("a-1", "cam-vending", "解放路人行道", "vending")})
    await page.locator(".alarm-card[data-alarm-id=a-1]").wait_for()
    await server.push({"type": "case", "id": "1700000000007-3", "event": {"case_id": "c"}})
    await server.push({"type": "case_deadline", "id": "1700000000007-4", "alarm": {
        "alarm_id": "case-c-overdue-1", "stage": "overdue", "event": "case_overdue", "phase": "raised",
        "at": 1700000007, "case_id": "c", "case_no": "CW20231114-0001", "unit_name": "湖滨中队",
        "deadline_at": 1700000000, "camera_id": "cam-vending"}})
    card = page.locator(".alarm-card.case-overdue[data-kind=case_overdue]")
    await card.wait_for()
    assert "CW20231114-0001" in await card.text_content() and "openable" not in await card.get_attribute("class")
    await server.push({"type": "system_alarm", "id": "1700000000007-5", "alarm": {**fault, "phase": "cleared"}})
    await strip.wait_for(state="detached")

    server.received.clear()
    await server.drop_sockets()
    await page.locator("#link[data-state=closed]").wait_for(timeout=5000)
    resumed = await eventually(lambda: _resume(server), timeout=10, what="resume after reconnect")
    assert resumed["last_ids"] == {"alarms": "1700000000006-0", "case_events": "1700000000007-3",
                                   "case_deadlines": "1700000000007-4", "system_alarms": "1700000000007-5"}
    await page.locator("#link[data-state=open]").wait_for(timeout=5000)
    # The fault raised again while the page was away comes in the resume (no REST read after a reconnect);
    # the clear frame already seen, replayed, changes nothing.
    await server.push({"type": "system_alarm", "id": "1700000000007-5", "alarm": {**fault, "phase": "cleared"}})
    await server.push({"type": "system_alarm", "id": "1700000000007-6", "alarm": fault})
    await strip.wait_for(timeout=5000)
    # The server replays an alarm the page already has, then the one it missed.
    await server.push({"type": "alarm", "id": "1700000000006-0",
                       "alarm": _alarm("a-1", "cam-vending", "解放路人行道", "vending")})
    await server.push({"type": "alarm", "id": "1700000000008-0",
                       "alarm": _alarm("a-2", "cam-road", "中山路机动车道", "road_occupation")})
    await page.locator(".alarm-card[data-alarm-id=a-2]").wait_for(timeout=5000)
    assert await page.locator(".alarm-card").count() == 4
    assert "乱堆物堆料" in await page.locator(".alarm-card").first.text_content()


async def _resume(server: ProtocolServer):
    return next((m for m in server.received if m.get("type") == "resume"), None)


async def test_lapsed_session_sends_the_wall_to_login(page, server):
    await sign_in(page, server)
    server.sessions.clear()
    await server.drop_sockets()
    await page.wait_for_url(re.compile(r".*/login\?next=%2Fwall$"), timeout=10000)


async def test_double_click_enlarges_a_tile_over_the_grid(page, server):
    await sign_in(page, server)
    tile = page.locator("cw-tile[camera=cam-bin]")
    await tile.dblclick()
    box = await tile.bounding_box()
    grid = await page.locator("#grid").bounding_box()
    assert box and grid
    assert abs(box["width"] - grid["width"]) < 2 and abs(box["height"] - grid["height"]) < 2
    await tile.dblclick()
    assert (await tile.bounding_box())["width"] < grid["width"] / 2


async def test_tile_menu_time_picker_uses_the_site_timezone_and_a_24_hour_clock(browser, server):
    from zoneinfo import ZoneInfo

    from playwright.async_api import async_playwright

    site = ZoneInfo("Asia/Shanghai")
    server.me = {"user": {"username": "admin", "role": "monitor"}, "timezone": "Asia/Shanghai"}
    async with async_playwright() as pw:
        connected = await pw.chromium.connect_over_cdp(browser.cdp_url)
        # The display PC is set to New York and US English: datetime-local would show 12-hour New York time.
        context = await connected.new_context(viewport={"width": 1600, "height": 900}, timezone_id="America/New_York",
                                              locale="en-US")
        try:
            page = await context.new_page()
            await sign_in(page, server)
            tile = page.locator("#grid cw-tile[camera='cam-vending']")
            await tile.click(button="right")
            menu = page.locator(".tile-menu[data-camera='cam-vending']")
            field = menu.locator("input[name='playback-at']")
            shown = await field.input_value()
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", shown), shown  # no AM/PM
            at = datetime.datetime.strptime(shown, "%Y-%m-%d %H:%M:%S").replace(tzinfo=site).timestamp()
            assert abs(at - (time.time() - 300)) < 30, (shown, at)  # 5 minutes ago on the site's clock
            zone = await menu.locator(".tm-zone").text_content()
            assert "24小时制" in zone and "Asia/Shanghai" in zone, zone

            await field.fill("2026-03-11 8:00 PM")
            await menu.locator("button[data-action='playback-at']").click()
            assert "24小时制" in await menu.locator(".tm-note").text_content()
            await field.fill("2026-13-11 20:00:05")
            await field.press("Enter")
            assert "时间格式" in await menu.locator(".tm-note").text_content()

            await field.fill("2026-03-11 20:00:05")  # 20:00:05 in Shanghai (12:00:05 UTC)
            await field.press("Enter")
            asked = await page.wait_for_function(
                "() => { const v = document.querySelector('.pb-view');"
                " return v && v.tile.getAttribute('playback-at'); }", timeout=5_000)
            expected = datetime.datetime(2026, 3, 11, 20, 0, 5, tzinfo=site).timestamp()
            assert float(await asked.json_value()) == expected
        finally:
            await context.close()
            await connected.close()
