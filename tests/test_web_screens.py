"""Wall screens end to end in headless Chromium against the real wall server (real Redis bus, real SQLite case
store, in-process ``create_app``): layout sync between two wall pages and the console, drag-and-drop, reload,
tour cycling and pause, alarm pop-up and acknowledgement, an emergency plan switching two screens (leader yes,
duty no), and the page for a screen nobody defined. No live video here (``live=None``): tiles show offline."""

from __future__ import annotations

import time

import pytest

from messages.camera import CameraStatus
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import CAMS, PASSWORD, wall_client, wall_settings
from tests.waiting import eventually
from wall import state
from wall.app import create_app
from wall.screens_api import SCREENS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def site(tmp_path, bus, store, evidence_dir):
    app = create_app(wall_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as client:
        await app[SCREENS].ready.wait()
        await app[state.HUB].ready.wait()
        client.base = str(client.make_url("")).rstrip("/")
        assert (await signin.login(client, "admin", PASSWORD)).status == 200
        yield client


async def signed_in(page, site, username: str = "admin"):
    resp = await page.request.post(f"{site.base}/api/login", data={"username": username, "password": PASSWORD})
    assert resp.ok, await resp.text()
    return page


async def open_wall(page, site, screen: str = "main"):
    await page.goto(f"{site.base}/wall/{screen}")
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    return page


async def open_console(page, site):
    await page.goto(f"{site.base}/console")
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    return page


async def tiles(page) -> list:
    """Camera per tile index as the wall shows it (None for an empty tile)."""
    return await page.evaluate("""() => [...document.querySelectorAll('#grid > [data-tile]:not(.pop)')]
        .sort((a, b) => a.dataset.tile - b.dataset.tile).map(t => t.getAttribute('camera'))""")


def showing(page, expected: list):
    async def check():
        got = await tiles(page)
        return got if got == expected else None
    return check


async def test_layout_follows_the_console_on_two_walls_and_survives_reload(page, site):
    await signed_in(page, site)
    wall_a = await open_wall(page, site)
    wall_b = await open_wall(await page.context.new_page(), site)
    console = await open_console(await page.context.new_page(), site)
    assert await tiles(wall_a) == CAMS[:4]
    # A camera that stays on screen keeps its <cw-tile> (its stream is not restarted by a layout change).
    await wall_a.evaluate("""() => {
        document.querySelector('cw-tile[camera=cam-a]').__mark = 1;
        window.__removed = [];
        new MutationObserver((records) => records.forEach((r) => r.removedNodes.forEach(
            (n) => window.__removed.push(n.getAttribute && n.getAttribute('camera'))))
        ).observe(document.getElementById('grid'), {childList: true});
    }""")

    await console.keyboard.press("?")
    await console.locator("#help").wait_for(state="visible")
    await console.keyboard.press("Escape")
    await console.locator("#help").wait_for(state="hidden")
    await console.keyboard.press("3")  # 3x3
    nine = CAMS[:4] + [None] * 5
    for wall in (wall_a, wall_b):
        await eventually(showing(wall, nine), timeout=10, what="the 3x3 layout on both walls")
    assert await wall_a.get_attribute("#grid", "data-layout") == "3x3"
    assert await wall_a.evaluate("document.querySelector('cw-tile[camera=cam-a]').__mark") == 1
    assert "cam-a" not in await wall_a.evaluate("window.__removed")  # never detached: its stream went on

    # Drag a camera from the console's list onto tile 9.
    await console.drag_and_drop("li.camera[data-camera=cam-e]", ".ptile[data-tile='8']")
    for wall in (wall_a, wall_b):
        await eventually(showing(wall, CAMS[:4] + [None] * 4 + ["cam-e"]), timeout=10, what="cam-e on tile 8")
    assert await console.text_content(".ptile[data-tile='8'] .cam-id") == "cam-e"

    # 1+5 puts tile 0 over a 2x2 area.
    await console.keyboard.press("5")
    await eventually(showing(wall_b, CAMS[:4] + [None, None]), timeout=10, what="1+5 on wall b")
    big = await wall_b.locator("[data-tile='0']").bounding_box()
    small = await wall_b.locator("[data-tile='1']").bounding_box()
    assert big["width"] > 1.8 * small["width"] and big["height"] > 1.8 * small["height"]

    await wall_a.reload()
    await eventually(showing(wall_a, CAMS[:4] + [None, None]), timeout=10, what="the same layout after reload")


async def test_tour_cycles_and_pauses(page, site):
    await signed_in(page, site)
    wall = await open_wall(page, site)
    console = await open_console(await page.context.new_page(), site)
    await console.fill("#tour-dwell", "3")
    await console.click("#tour-start")
    start = await eventually(showing(wall, ["cam-a", "cam-b", "cam-c", "cam-d"]), timeout=10, what="tour step 0")
    assert start
    # Step 1 after 3 s: the three tour tiles (all but the alarm tile) show the next cameras of the group.
    await eventually(showing(wall, ["cam-d", "cam-e", "cam-a", "cam-d"]), timeout=10, what="tour step 1")
    assert "轮巡中" in await wall.text_content("#tour-state")
    await console.keyboard.press("t")  # pause
    await wall.locator("#tour-state", has_text="轮巡暂停").wait_for(timeout=10_000)
    view = (await (await site.get("/api/screens/main")).json())["screen"]
    assert view["tour"]["paused"] and view["tour"]["next_at"] is None
    step = view["tour"]["step"]
    await console.keyboard.press("t")  # resume
    await wall.locator("#tour-state", has_text="轮巡中").wait_for(timeout=10_000)

    async def advanced():
        v = (await (await site.get("/api/screens/main")).json())["screen"]
        return v["tour"]["step"] > step
    await eventually(advanced, timeout=10, what="the resumed tour stepping again")
    await console.keyboard.press("s")
    await wall.locator("#tour-state").wait_for(state="hidden", timeout=10_000)


async def test_alarm_pops_up_with_overlay_and_ack_reverts_everywhere(page, site, bus):
    await signed_in(page, site)
    wall = await open_wall(page, site)
    console = await open_console(await page.context.new_page(), site)
    await bus.publish(CameraStatus(camera_id="cam-e", state="online", at=time.time()))
    await bus.publish(make_alarm(5, camera="cam-e"))  # cam-e is not on main: it pops onto the alarm tile
    await eventually(showing(wall, ["cam-a", "cam-b", "cam-c", "cam-e"]), timeout=10, what="cam-e on the alarm tile")
    tile = wall.locator("cw-tile[data-tile='3']")
    assert await tile.get_attribute("alarm") == "" and await tile.get_attribute("data-source") == "alarm"
    pop = wall.locator(".pop[data-tile='3']")
    assert await pop.locator("rect.box").count() == 1 and await pop.locator("polygon.zone").count() == 1
    assert "无照经营游商" in await pop.text_content()
    cues = await wall.evaluate("window.citywall.cues")
    assert cues["played"] + cues["skipped"] >= 1
    # The highlight is red and the overlay covers the alarm tile.
    colour = await wall.evaluate(
        "getComputedStyle(document.querySelector('.pop-label')).backgroundColor")
    assert colour.startswith("rgba(122, 20, 32")
    tb, pb = await tile.bounding_box(), await pop.bounding_box()
    assert abs(tb["x"] - pb["x"]) < 2 and abs(tb["width"] - pb["width"]) < 2
    await console.locator(".alarm[data-alarm-id=alarm-5]").wait_for(timeout=10_000)
    assert await console.get_attribute(".ptile[data-tile='3']", "class") == "ptile src-alarm"
    # 回看30秒 on the pop-up: the camera's recording from 30 s before the alarm (录像回放 panel; Esc closes it)
    await console.click(".alarm[data-alarm-id=alarm-5] .replay")
    replay = console.locator(".pb-view cw-tile")
    assert await replay.get_attribute("camera") == "cam-e"
    assert float(await replay.get_attribute("playback-at")) == pytest.approx(time.time() - 30, abs=15)
    await console.keyboard.press("Escape")
    await console.locator(".pb-view").wait_for(state="detached", timeout=5_000)

    await wall.click(".pop .ack")  # acknowledge on the wall
    await eventually(showing(wall, CAMS[:4]), timeout=10, what="the alarm tile back to cam-d")
    await console.locator(".alarm[data-alarm-id=alarm-5]").wait_for(state="detached", timeout=10_000)
    assert await wall.locator(".pop").count() == 0

    # A camera already on the screen is highlighted where it is (no duplicate); acknowledged from the console.
    await bus.publish(make_alarm(6, camera="cam-b"))
    await wall.locator(".pop[data-tile='1']").wait_for(timeout=10_000)
    assert await tiles(wall) == CAMS[:4]
    assert await wall.get_attribute("cw-tile[data-tile='1']", "data-source") == "alarm"
    await console.locator(".alarm[data-alarm-id=alarm-6]").wait_for(timeout=10_000)
    await console.keyboard.press("a")
    await wall.locator(".pop").wait_for(state="detached", timeout=10_000)
    assert await wall.get_attribute("cw-tile[data-tile='1']", "data-source") == "assigned"


async def test_plan_switches_two_screens_for_the_leader_only(page, site):
    await signed_in(page, site, "leader")
    main = await open_wall(page, site, "main")
    aux = await open_wall(await page.context.new_page(), site, "aux")
    console = await open_console(await page.context.new_page(), site)
    before_main, before_aux = await tiles(main), await tiles(aux)
    await console.click("button.plan[data-plan=flood]")
    # One click asks first: nothing switches until 确认启动 (and 取消 leaves everything as it was).
    await console.locator(".plan-confirm").wait_for(timeout=5_000)
    assert "主屏" in await console.text_content(".plan-confirm")
    await console.click(".plan-no")
    assert await console.locator(".plan-confirm").count() == 0
    await console.wait_for_timeout(500)
    assert await tiles(main) == before_main
    await console.click("button.plan[data-plan=flood]")
    await console.click(".plan-yes")
    await eventually(showing(main, ["cam-e"]), timeout=10, what="main switched by the plan")
    await eventually(showing(aux, ["cam-a", "cam-b"] + [None] * 7), timeout=10, what="aux switched by the plan")
    # The wall says a plan is active; the console offers to end it.
    await main.locator("#plan-state:not([hidden])").wait_for(timeout=10_000)
    assert "防汛应急" in await main.text_content("#plan-state")
    await console.locator(".plan-row.active .plan-end").wait_for(timeout=10_000)
    await console.click(".plan-row.active .plan-end")
    await eventually(showing(main, before_main), timeout=10, what="main back to what it showed before the plan")
    await eventually(showing(aux, before_aux), timeout=10, what="aux back too")
    await main.locator("#plan-state").wait_for(state="hidden", timeout=10_000)
    await console.click("button.plan[data-plan=flood]")   # again, for the duty officer's view below
    await console.click(".plan-yes")
    await eventually(showing(main, ["cam-e"]), timeout=10, what="main switched by the plan again")

    duty_context = await page.context.browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        duty = await signed_in(await duty_context.new_page(), site, "duty")
        await open_console(duty, site)
        button = duty.locator("button.plan[data-plan=flood]")
        assert await button.is_disabled() and "Leader only" in await button.text_content()
        resp = await duty.request.post(f"{site.base}/api/plans/flood/invoke",
                                       headers=await signin.csrf_headers(duty.request, site.base))
        assert resp.status == 403 and "role watch_officer" in (await resp.json())["error"]
        resp = await duty.request.post(f"{site.base}/api/plans/flood/end",
                                       headers=await signin.csrf_headers(duty.request, site.base))
        assert resp.status == 403
        assert await duty.locator(".plan-end").count() == 0
    finally:
        await duty_context.close()


async def test_unknown_screen_page_says_so(page, site):
    await signed_in(page, site)
    resp = await page.goto(f"{site.base}/wall/lobby")
    assert resp.status == 404
    text = await page.text_content("body")
    assert "未定义" in text and "not defined" in text and "lobby" in text
    size = await page.evaluate("parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")
    assert size >= 48
    await page.click("a[href='/wall/aux']")
    await page.wait_for_url("**/wall/aux")


async def test_situation_panel_counts_and_map_markers(page, site, bus):
    online = CameraStatus(camera_id="cam-a", state="online", at=time.time())
    await bus.put_state("cameras", "cam-a", online.to_dict())  # what /api/cameras reads (as citywall up does)
    await signed_in(page, site)
    await page.goto(f"{site.base}/situation?map=grid")  # the SVG grid diagram (the basemap: test_web_map.py)
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    await page.locator("#link[data-state=open]").wait_for(timeout=15_000)
    assert await page.locator("#map polygon.cell").count() >= 10  # config/grid.geojson, drawn offline
    assert await page.locator("#map g.cam").count() == len(CAMS)
    assert await page.text_content("#fig-online .num") == f"1/{len(CAMS)}"
    assert await page.text_content("#fig-offline .num") == str(len(CAMS) - 1)
    import dataclasses

    now = time.time()
    raised = dataclasses.replace(make_alarm(9, camera="cam-c"), at=now, started_at=now - 10)  # a live alarm
    await bus.publish(raised)
    await page.locator("#map .hot[data-camera=cam-c]").wait_for(timeout=10_000)
    assert await page.text_content("#fig-alarms .num") == "1"
    await bus.publish(dataclasses.replace(raised, phase="cleared", at=now + 1))
    await page.locator("#map .hot").wait_for(state="detached", timeout=10_000)
    await bus.publish(CameraStatus(camera_id="cam-a", state="offline", at=time.time()))
    await eventually(lambda: _text_is(page, "#fig-online .num", f"0/{len(CAMS)}"), what="0 online")
    assert "offline" in await page.get_attribute("#map g.cam[data-camera=cam-a]", "class")


async def _text_is(page, selector: str, expected: str) -> bool:
    return await page.text_content(selector) == expected
