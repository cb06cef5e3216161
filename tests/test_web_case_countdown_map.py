"""Deadline countdowns in working time and the case page's map, in real headless Chromium on the real wall server
(real Redis bus, real SQLite case store): the pure countdown functions (workcal.js) over a table; the list, the case
page and the phone page count working hours on the server's work calendar and stop off hours (the browser's clock
set to a Wednesday morning, then the lunch break); the case page's map shows the case and its camera on the offline
basemap, with every request staying on the wall server."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests import signin
from tests.fixtures.wall import PASSWORD, wall_client
from tests.test_wall_case_office import office_settings, put_case
from wall.app import create_app

pytestmark = pytest.mark.timeout(180)
SH = ZoneInfo("Asia/Shanghai")
H = 3600
SCREENSHOT = "/tmp/case-detail-map.png"
PHONE_SCREENSHOT = "/tmp/field-phone-countdown.png"


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


async def test_countdown_functions_count_working_time_and_pause_off_hours(page, tmp_path, bus, store):
    (tmp_path / "evidence").mkdir()
    app = create_app(office_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        await page.goto(str(client.make_url("/login")))
        out = await page.evaluate("""async (H) => {
          const w = await import('/static/workcal.js');
          const periods = [[0, 4 * H], [8 * H, 12 * H]];
          const span = { from: -H, to: 20 * H, periods };
          const c = { deadline_at: 10 * H, time_limit: { unit: 'work_days' }, state: 'dispatched' };
          const at = (t, k = c, s = span) => { const r = w.workCountdown(k, s, t); return r && r.zh; };
          return {
            between: [w.workSeconds(periods, 2 * H, 9 * H), w.workSeconds(periods, 9 * H, 2 * H),
                      w.workSeconds(periods, 5 * H, 6 * H)],
            inWork: [w.inWorkTime(periods, 3 * H), w.inWorkTime(periods, 4 * H), w.inWorkTime(periods, 6 * H)],
            morning: at(2 * H), gap: at(6 * H), gapLater: at(7.5 * H), late: at(11 * H), lateOff: at(13 * H),
            natural: at(2 * H, { ...c, time_limit: { unit: 'hours' } }),
            uncovered: at(2 * H, c, { ...span, to: 9 * H }),
            hours: [w.hoursText(0.05 * H), w.hoursText(3.57 * H), w.hoursText(12.7 * H)],
          };
        }""", H)
    assert out["between"] == [3 * H, -3 * H, 0]
    assert out["inWork"] == [True, False, False]
    assert out["morning"] == "剩余 4.0 工作时"                       # 2 h this period + 2 h of the next
    assert out["gap"] == out["gapLater"] == "剩余 2.0 工作时（非工作时间，暂停计时）"  # off hours: it stands still
    assert out["late"] == "超期 1.0 工作时"
    assert out["lateOff"] == "超期 2.0 工作时（非工作时间，暂停计时）"
    assert out["natural"] is None and out["uncovered"] is None      # the caller counts natural time then
    assert out["hours"] == ["不足0.1", "3.5", "12"]


async def test_list_case_and_phone_pages_count_down_in_working_hours(page, tmp_path, bus, store):
    # dispatched Wednesday 2026-03-11 09:00, due 15:00 the same day (the calendar: 08:30-12:00, 13:30-17:30)
    put_case(store, 1, unit="hubin-squad", reported=sh("2026-03-11 09:00").timestamp(), deadline_s=6 * H)
    (tmp_path / "evidence").mkdir()
    app = create_app(office_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await page.clock.set_fixed_time(sh("2026-03-11 10:00"))
        await signin.sign_in_page(page, base, "/cases", "duty", PASSWORD)
        await page.locator("body[data-ready='1']").wait_for(timeout=20_000)
        row = page.locator("tr", has_text="CW20260311-00001")
        await row.wait_for(timeout=20_000)
        assert "剩余 3.5 工作时" in await row.text_content()          # 10:00-12:00 and 13:30-15:00
        # an empty list says why: a search that matches nothing, and how to clear it
        await page.fill("#q", "河坊街")
        await page.locator("#empty:not([hidden])").wait_for(timeout=10_000)
        assert "没有符合条件的案件，按 C 清除筛选" in await page.text_content("#empty")
        await page.goto(f"{base}/cases/case-00001")
        await page.locator("body[data-case-id=case-00001]").wait_for(timeout=20_000)
        await page.wait_for_function("document.querySelector('.cd-head .cd-count').textContent.includes('工作时')")
        assert await page.text_content(".cd-head .cd-count") == "剩余 3.5 工作时"
        # the lunch break: 1.5 working hours left, standing still until 13:30
        for at in ("2026-03-11 12:10", "2026-03-11 13:20"):
            await page.clock.set_fixed_time(sh(at))
            await page.wait_for_function(
                "document.querySelector('.cd-head .cd-count').textContent === "
                "'剩余 1.5 工作时（非工作时间，暂停计时）'", timeout=10_000)
        # the unit's phone page says the same
        context = await page.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                         has_touch=True)
        try:
            phone = await context.new_page()
            await phone.clock.set_fixed_time(sh("2026-03-11 16:00"))
            await signin.sign_in_page(phone, base, "/field", "squad", PASSWORD)
            card = phone.locator(".fd-card[data-case-id=case-00001]")
            await card.wait_for(timeout=20_000)
            await phone.wait_for_function(
                "document.querySelector('.fd-card').textContent.includes('超期 1.0 工作时')", timeout=10_000)
            await phone.click("#tabs button[data-tab=done]")
            await phone.locator("#none:not([hidden])").wait_for(timeout=10_000)
            assert await phone.text_content("#none") == "暂无已反馈、待核查的案件"
            await phone.click("#tabs button[data-tab=todo]")
            await card.click()
            await phone.wait_for_function("document.getElementById('c-due').textContent.startsWith('超期 1.0 工作时')",
                                          timeout=10_000)
            # the phone's case view keeps within its 390 px (the longer countdown wraps, nothing scrolls sideways)
            assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
            await phone.screenshot(path=PHONE_SCREENSHOT)
        finally:
            await context.close()


async def test_case_page_map_shows_the_case_and_its_camera_offline(page, tmp_path, bus, store):
    put_case(store, 1, unit="hubin-squad")
    (tmp_path / "evidence").mkdir()
    app = create_app(office_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url.split(":")[0]))
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, "/cases/case-00001", "duty", PASSWORD)
        await page.locator("#map-panel:not([hidden])").wait_for(timeout=20_000)
        await page.locator("#case-map path.cd-map-case").wait_for(timeout=10_000)
        await page.locator("#case-map path.cd-map-camera").wait_for(timeout=10_000)
        await page.locator("#case-map img.leaflet-tile-loaded").first.wait_for(timeout=20_000)
        tile = await page.get_attribute("#case-map img.leaflet-tile-loaded", "src")
        assert "/api/map/tiles/" in tile                               # the wall server's own offline tiles
        assert "摄像头 解放路人行道" in await page.text_content("#map-legend")
        # the case's point is where the camera stands (the camera's position, as the facts' geo: link says)
        centre = "p => { const b = p.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }"
        case_xy = await page.eval_on_selector("#case-map path.cd-map-case", centre)
        cam_xy = await page.eval_on_selector("#case-map path.cd-map-camera", centre)
        assert all(abs(a - b) < 1 for a, b in zip(case_xy, cam_xy, strict=True)), (case_xy, cam_xy)
        assert await page.get_attribute(".cd-facts a[href^='geo:']", "href") == "geo:30.27,120.15"
        await page.screenshot(path=SCREENSHOT, full_page=True)
    assert hosts <= {"127.0.0.1", "localhost", "data", "blob"}, hosts


async def test_the_walls_case_panel_counts_working_hours(page, tmp_path, bus, store):
    # the same case as the list's test: due 15:00, 3.5 working hours left at 10:00, standing still over lunch
    put_case(store, 1, unit="hubin-squad", reported=sh("2026-03-11 09:00").timestamp(), deadline_s=6 * H)
    (tmp_path / "evidence").mkdir()
    app = create_app(office_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await page.clock.set_fixed_time(sh("2026-03-11 10:00"))
        await signin.sign_in_page(page, base, "/wall", "duty", PASSWORD)
        left = "document.querySelector(\".case-row[data-case-id='case-00001'] .left\")"
        await page.wait_for_function(f"{left} && {left}.textContent === '剩余 3.5 工作时'", timeout=20_000)
        await page.clock.set_fixed_time(sh("2026-03-11 12:30"))
        await page.evaluate("window.citywall.cases.render(Date.now() / 1000)")  # the panel's 30 s tick, now
        assert await page.evaluate(f"{left}.textContent") == "剩余 1.5 工作时（非工作时间，暂停计时）"


async def test_a_unit_user_sees_the_case_map_on_the_phone(page, tmp_path, bus, store):
    put_case(store, 1, unit="hubin-squad")
    (tmp_path / "evidence").mkdir()
    app = create_app(office_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    hosts: set[str] = set()
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        context = await page.context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                         has_touch=True)
        try:
            phone = await context.new_page()
            phone.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url.split(":")[0]))
            await signin.sign_in_page(phone, base, "/field", "squad", PASSWORD)
            await phone.locator(".fd-card[data-case-id=case-00001]").click(timeout=20_000)
            await phone.locator("#c-map-panel:not([hidden])").wait_for(timeout=20_000)
            await phone.locator("#c-map path.cd-map-case").wait_for(timeout=10_000)
            await phone.locator("#c-map img.leaflet-tile-loaded").first.wait_for(timeout=20_000)
            assert "/api/map/tiles/" in await phone.get_attribute("#c-map img.leaflet-tile-loaded", "src")
            # the camera is drawn from the case's own location: the basemap lists no cameras to a unit user
            assert "摄像头 解放路人行道" in await phone.text_content("#c-map-legend")
            basemap = await phone.evaluate("fetch('/api/map/basemap').then(r => r.json())")
            assert basemap["cameras"] == [] and basemap["cells"] and basemap["tiles"]["offline"]
            box = await phone.eval_on_selector("#c-map", "m => { const b = m.getBoundingClientRect(); "
                                               "return [b.width, b.height]; }")
            assert 300 <= box[0] <= 390 and box[1] >= 200, box
            assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
            await phone.screenshot(path="/tmp/field-phone-map.png")
            # the case page a unit user opens shows it too
            await phone.goto(f"{base}/cases/case-00001")
            await phone.locator("#map-panel:not([hidden]) path.cd-map-case").wait_for(timeout=20_000)
        finally:
            await context.close()
    assert hosts <= {"127.0.0.1", "localhost", "data", "blob"}, hosts
