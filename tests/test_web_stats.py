"""The leader's statistics page in real headless Chromium on the real wall server: login redirect, KPI tiles,
one pair of bars per unit, the table equal to the API's figures, export links for the same query."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cases.desk import CaseDesk
from cases.filing import build_filer
from messages.alarm import Alarm
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)
SH = ZoneInfo("Asia/Shanghai")
WED_11 = datetime(2026, 3, 11, 11, 0, tzinfo=SH).timestamp()


async def test_stats_page(page, tmp_path, bus, store):
    settings = settings_with_roles(tmp_path)
    filer = build_filer(settings, store)
    first = filer.file(Alarm(**{**make_alarm(1).to_dict(), "at": WED_11})).case
    filer.file(Alarm(**{**make_alarm(2).to_dict(), "at": WED_11 + 60, "camera_id": "cam-b", "zone_id": "z"}))
    desk = CaseDesk(filer.config, store)
    for step in ("feedback", "verify", "close"):
        desk.act(first["id"], step, role="admin", user="admin", now=WED_11 + 600)
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence",
                     clock=lambda: WED_11 + 30 * 86400)
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await page.goto(f"{base}/stats?by=unit&from=2026-03-01&to=2026-03-31")
        await page.wait_for_url(re.compile(r".*/login\?next=.*"))
        await page.fill("input[name=username]", "leader")
        await page.fill("input[name=password]", PASSWORD)
        await page.press("input[name=password]", "Enter")
        await page.wait_for_url(re.compile(r".*/stats\?.*"))
        await page.locator("body[data-ready='1']").wait_for(timeout=10_000)
        kpis = await page.eval_on_selector_all("#kpis .kpi", "ks => ks.map(k => [k.querySelector('.k').textContent, "
                                                             "k.querySelector('.v').textContent])")
        assert kpis == [["立案数", "2"], ["结案率", "50.0%"], ["按期结案率", "50.0%"], ["处置率", "50.0%"],
                        ["返工率", "0.0%"]]
        api = await (await client.session.get(f"{base}/api/stats?by=unit&from=2026-03-01&to=2026-03-31",
                                              cookies=await _cookies(page))).json()
        rows = await page.eval_on_selector_all("#table tbody tr",
                                               "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
        assert [r[0] for r in rows] == [r["label"] for r in api["rows"]] + ["合计"]
        assert rows[-1][1:4] == ["2", "2", "1"]
        assert await page.locator("rect.bar").count() == 2 * len(api["rows"])
        assert await page.get_attribute("#csv", "href") == (
            "/api/stats?by=unit&period=day&from=2026-03-01&to=2026-03-31&format=csv")
        assert await page.get_attribute("#daily", "href") == "/report/daily?date=2026-03-31"
        # The bars have a legend; alarms, false positives and broadcasts of the period beside the case figures.
        assert "结案率" in await page.text_content("#legend") and "按期结案率" in await page.text_content("#legend")
        events = await page.eval_on_selector_all("#event-kpis .kpi", "ks => ks.map(k => [k.dataset.k, "
                                                 "k.querySelector('.v').textContent])")
        assert dict(events)["alarms"] == "0" and "false positives (recent)" in dict(events)
        # Dates are typed as the site writes them, whatever the browser's locale; a wrong one is said.
        assert await page.get_attribute("input[name=from]", "type") is None
        await page.fill("input[name=from]", "03/01/2026")
        await page.click("#filters button[type=submit]")
        assert "年-月-日" in await page.text_content("#message")
        await page.fill("input[name=from]", "2026-03-01")
        await page.select_option("select[name=by]", "category")
        await page.locator("#table thead th:first-child:text('案件类别')").wait_for(timeout=10_000)
        await page.screenshot(path="/tmp/stats.png")


async def _cookies(page) -> dict:
    return {c["name"]: c["value"] for c in await page.context.cookies()}
