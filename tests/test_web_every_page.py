"""What every page shares, in real headless Chromium against the real wall server (real Redis bus, real SQLite
case store): page links and 交接班 (logout ends the session: the API answers 401 and the page goes to /login),
role names in Chinese without codes, the plain offline banner with the last known state greyed when the event
socket drops, an unreadable case list said as such (not an empty panel), and server errors in Chinese only
(``web/static/messages.js``)."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.wall import PASSWORD, sign_in
from wall import state

pytestmark = pytest.mark.timeout(120)
OFFLINE = "与服务器的连接已中断，正在重连"
PAGES = ["/wall", "/console", "/review", "/cases", "/situation", "/stats", "/audit", "/admin/cameras", "/admin/users"]


async def test_every_page_links_the_others_and_names_the_role_in_chinese(page, site):
    await sign_in(page, site, "admin")
    for path in PAGES:
        await page.goto(f"{site.base}{path}")
        nav = page.locator("nav.cw-nav")
        await nav.wait_for(state="attached", timeout=15_000)
        hrefs = await nav.locator("a.cw-link").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert set(PAGES) <= set(hrefs), (path, hrefs)
        assert await nav.locator("a[aria-current=page]").get_attribute("href") == path
        user = await page.evaluate("(document.querySelector('nav.cw-nav .cw-user') || "
                                   "document.getElementById('user')).textContent")
        assert user == "admin · 管理员", (path, user)
        assert await page.locator("button.cw-logout").count() == 1
        # No role code in any header.
        assert "admin）" not in await page.text_content("body") and "(admin)" not in await page.text_content("body")
    # Pages a role may not use are not offered.
    await page.request.post(f"{site.base}/api/logout", headers=await _csrf(page, site))
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}/console")
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    hrefs = await page.locator("nav.cw-nav a.cw-link").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert "/audit" not in hrefs and "/review" not in hrefs and "/wall" in hrefs and "/situation" in hrefs
    assert await page.text_content("#user") == "duty · 值班员"
    # A unit user is offered only its own page (the centre's pages would answer 403 to it).
    await page.goto("about:blank")  # the console would notice the logout and go to /login meanwhile
    await page.request.post(f"{site.base}/api/logout", headers=await _csrf(page, site))
    await sign_in(page, site, "squad")
    await page.goto(f"{site.base}/cases")
    await page.locator("nav.cw-nav").wait_for(state="attached", timeout=15_000)
    hrefs = await page.locator("nav.cw-nav a.cw-link").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert hrefs == ["/field"], hrefs


async def _csrf(page, site) -> dict:
    body = await (await page.request.get(f"{site.base}/api/me")).json()
    return {"X-CSRF-Token": body["csrf_token"]}


@pytest.mark.parametrize("path", ["/console", "/wall"])
async def test_logout_ends_the_session_and_goes_to_login(page, site, path):
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}{path}")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    if path == "/wall":
        await page.click("button.cw-menu")   # the wall keeps its links in a drop-down
    await page.click("button.cw-logout")
    await page.wait_for_url(re.compile(r".*/login(\?next=.*)?$"), timeout=10_000)
    assert (await page.request.get(f"{site.base}/api/me")).status == 401
    assert (await page.request.get(f"{site.base}/api/cameras")).status == 401
    # Back to the page: the login form, not the page.
    await page.goto(f"{site.base}{path}")
    await page.wait_for_url(re.compile(r".*/login\?next="), timeout=10_000)


@pytest.mark.parametrize("path", ["/wall", "/console", "/situation"])
async def test_a_dropped_event_socket_is_announced_and_the_last_state_greyed(page, site, path):
    await sign_in(page, site, "admin")
    await page.goto(f"{site.base}{path}")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    assert await page.locator("#offline").is_hidden()
    # The network goes (no reconnect can get through) and the server's side of the socket with it.
    await page.context.set_offline(True)
    token = next(c["value"] for c in await page.context.cookies() if c["name"] == "cw_session")
    site.app[state.HUB].disconnect_session(token)
    try:
        await page.locator("#offline").wait_for(state="visible", timeout=15_000)
        assert OFFLINE in await page.text_content("#offline")
        assert await page.evaluate("document.body.classList.contains('offline')")
        # The last known state stays on screen, greyed (not blanked, not shown as live).
        greyed = await page.evaluate("getComputedStyle(document.querySelector('main')).filter")
        assert "grayscale" in greyed
        if path == "/wall":
            assert "grayscale" in await page.evaluate("getComputedStyle(document.querySelector('.counters')).filter")
    finally:
        await page.context.set_offline(False)
    await page.locator("#offline").wait_for(state="hidden", timeout=20_000)
    assert not await page.evaluate("document.body.classList.contains('offline')")


async def test_an_unreadable_case_list_is_said_not_shown_empty(page, site):
    await sign_in(page, site, "admin")
    await page.goto(f"{site.base}/wall")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    await page.locator("#case-list .empty").wait_for(timeout=10_000)   # no cases yet: "暂无案件"
    site.store.close()                                                  # the case store goes away
    assert (await page.request.get(f"{site.base}/api/cases")).status == 503
    await page.evaluate("window.citywall.refreshCases()")
    note = page.locator("#case-list .case-problem")
    await note.wait_for(timeout=10_000)
    text = await note.text_content()
    assert "案件列表暂时无法读取" in text and "案件库暂时不可用" in text and "正在重试" in text, text
    assert await page.locator("#case-list .empty").count() == 0
    assert not re.search(r"[A-Za-z]{4,}", text), f"English reached the page: {text}"


async def test_server_errors_reach_the_page_in_chinese_only(page, site):
    # A watch officer invokes a plan (leaders only) from the console by hand: 403 with the server's English text.
    await sign_in(page, site, "duty")
    await page.goto(f"{site.base}/console")
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    texts = await page.evaluate("""async () => {
        const { sendJSON, getJSON, ApiError } = await import('/static/api.js');
        const out = [];
        for (const call of [
            () => sendJSON('POST', '/api/plans/flood/invoke'),                       // 403 role
            () => sendJSON('PUT', '/api/screens/main/tiles/99', { camera: 'cam-a' }), // 400 tile
            () => sendJSON('PUT', '/api/screens/nope/layout', { layout: '2x2' }),    // 404 screen
            () => sendJSON('POST', '/api/screens/main/tour/pause'),                  // 409 no tour
            () => getJSON('/api/cases?limit=0'),                                     // 400 limit
            () => getJSON('/api/cases/nope-1'),                                      // 404 case
        ]) {
            try { await call(); out.push(['ok', '', '']); }
            catch (err) { out.push([String(err.status), err.message, err.raw]); }
        }
        return out;
    }""")
    assert [t[0] for t in texts] == ["403", "400", "404", "409", "400", "404"], texts
    for status, message, raw in texts:
        assert raw and raw not in message, (status, message, raw)
        assert re.search(r"[\u4e00-\u9fff]", message) and not re.search(r"[A-Za-z]{3,}", message), (status, message)
    assert texts[0][1] == "当前角色（值班员）无权执行此操作，需要：指挥长、管理员", texts[0]
    assert "画面" in texts[1][1] and "条数" in texts[4][1]
    # And through the console's own button path: the status line shows the Chinese text only.
    await page.keyboard.press("s")  # stop a tour that is not running: refused client-side (nothing to say)
    await page.evaluate("""async () => {
        const { sendJSON } = await import('/static/api.js');
        try { await sendJSON('POST', '/api/screens/main/tour/resume'); } catch (err) {
            document.getElementById('status').textContent = err.message; }
    }""")
    status = await page.text_content("#status")
    assert status and not re.search(r"[A-Za-z]{3,}", status), status


@pytest.mark.parametrize("width, height", [(1920, 1080), (3840, 2160)])
async def test_wall_layout_captions_banner_and_mute_button(page, site, bus, width, height):
    context = await page.context.browser.new_context(viewport={"width": width, "height": height})
    try:
        wall = await context.new_page()
        resp = await wall.request.post(f"{site.base}/api/login", data={"username": "duty", "password": PASSWORD})
        assert resp.ok
        await wall.goto(f"{site.base}/wall/main")
        await wall.locator("#link[data-state=open]").wait_for(timeout=15_000)
        # English captions: at least 20 px on the 1920-wide stage, i.e. 40 px at 4K.
        sizes = await wall.evaluate("""() => {
            const scale = document.getElementById('stage').getBoundingClientRect().width / 1920;
            return [...document.querySelectorAll('#stage .en')].filter(e => e.offsetParent !== null)
              .map(e => [e.textContent, parseFloat(getComputedStyle(e).fontSize) * scale]); }""")
        assert sizes and min(s for _, s in sizes) >= 20 * width / 1920 - 0.5, sizes
        # A broadcast banner stays clear of the header counters and big enough; the mute button clear of the cases.
        await wall.evaluate("""() => window.citywall.socket.onFrame({ type: 'broadcast', broadcast: {
            status: 'played', text: '请勿在人行道摆摊，请将货物搬离人行道，谢谢配合，违者将依法处理',
            place: '解放路人行道喇叭',
            target: 'spk-1', broadcast_id: 'b1', hall_url: null } })""")
        banner = wall.locator(".hall-banner")
        await banner.wait_for(timeout=5_000)
        b = await banner.bounding_box()
        counters = await wall.locator(".counters").bounding_box()
        cases = await wall.locator(".panel.cases").bounding_box()
        mute = await wall.locator(".hall-mute").bounding_box()
        assert b["y"] >= counters["y"] + counters["height"], (b, counters)
        assert float(await banner.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 28 * width / 1920 * 0.95
        assert mute["y"] + mute["height"] <= counters["y"] + counters["height"] + 1, (mute, counters)  # in the header
        assert mute["x"] + mute["width"] <= counters["x"], (mute, counters)
        assert cases["y"] > mute["y"] + mute["height"]
        assert await wall.evaluate("(() => { const t = document.querySelector('.hall-banner .text');"
                                   " return t.scrollWidth <= t.clientWidth + 1; })()")
    finally:
        await context.close()
