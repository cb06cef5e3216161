"""Case deadline alarms and 督办 on the real wall page: real headless Chromium, the real wall server
(``create_app``), a real Redis bus and SQLite case store. The deadline loop publishes an overdue case's alarm while
the wall is open; it arrives over the event socket as an alarm card naming the case, its unit and deadline, and the
supervised case is marked in the case list."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cases.deadlines import DeadlineAlarmLoop, DeadlineWatcher
from cases.desk import CaseDesk
from cases.filing import build_filer
from config import DeadlineWatch
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)
SCREENSHOT = Path("/tmp/wall-case-overdue.png")


async def test_an_overdue_case_alarm_appears_on_the_wall(page, tmp_path, bus, store):
    settings = settings_with_roles(tmp_path)
    filer = build_filer(settings, store)
    case = filer.file(make_alarm(1)).case           # reported 2026-03-11: long past its deadline now
    CaseDesk(filer.config, store).supervise(case["id"], role="leader", user="leader", now=time.time(), note="今日办结")
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, "/wall", "duty", PASSWORD)
        row = page.locator(f".case-row.supervised[data-case-id='{case['id']}']")
        await row.wait_for(timeout=20_000)
        assert "督办 ×1" in await row.text_content()
        await eventually(lambda: page.evaluate("window.citywall && window.citywall.socket.connects >= 1"),
                         what="the event socket is open", timeout=20)

        loop = DeadlineAlarmLoop(store, bus, DeadlineWatch(), timezone=settings.timezone, clock=time.time)
        [alarm] = await loop.step(DeadlineWatcher(loop.rule))
        assert alarm.event == "case_overdue"
        card = page.locator(".alarm-card[data-kind=case_overdue]")
        await card.wait_for(timeout=20_000)
        text = await card.text_content()
        assert "案件超期" in text and case["case_no"] in text and case["unit_name"] in text and "截止" in text
        assert await card.get_attribute("data-case-no") == case["case_no"]
        # Not a detection: the header's "alarms today" counter does not count it.
        assert await page.text_content("#count-alarms .num") == "0"
        await page.screenshot(path=str(SCREENSHOT))

        # A reload shows it again from GET /api/case-deadlines (the same card, once).
        await page.reload()
        await page.locator(".alarm-card[data-kind=case_overdue]").wait_for(timeout=20_000)
        assert await page.locator(".alarm-card").count() == 1


async def test_a_held_alarm_is_confirmed_and_the_leader_supervises_it_with_the_keyboard(page, tmp_path, bus, store):
    from config import AutoFile
    from messages.alarm import Alarm

    settings = settings_with_roles(tmp_path)
    settings = settings.model_copy(update={"cases": settings.cases.model_copy(
        update={"auto_file": AutoFile(min_confidence=0.8)})})
    await bus.publish(Alarm(**{**make_alarm(1).to_dict(), "confidence": 0.5}))   # held: no case yet
    (tmp_path / "evidence").mkdir()
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, "/review", "leader", PASSWORD)
        await page.locator("body[data-ready='1']").wait_for(timeout=20_000)
        row = page.locator(".q-row[data-id=alarm-1][data-filing=held]")
        await row.wait_for(timeout=10_000)
        assert "待复核立案" in await row.text_content()
        assert "置信度 0.50 低于 0.80" in await page.text_content("#meta")
        assert store.list_cases()[1] == 0

        await page.keyboard.press("Enter")   # confirm → the case is filed now
        await page.locator("#case[data-state=dispatched]").wait_for(timeout=20_000)
        await page.locator(".case-action[data-action=supervise]").wait_for(timeout=10_000)
        await page.keyboard.press("d")       # 督办: the note dialog (the note is optional), Enter sends
        await page.locator("#act-dialog[open]").wait_for(timeout=5_000)
        await page.keyboard.type("今日办结")
        await page.keyboard.press("Enter")
        await eventually(lambda: page.evaluate("document.getElementById('case-facts').textContent.includes('1 次')"),
                         what="the case view shows one 督办", timeout=20)
        assert "督办" in await page.text_content("#timeline")
    [case] = store.list_cases()[0]
    assert case["supervise_count"] == 1 and case["last_supervision"]["actor"] == "leader(leader)"
    assert case["state"] == "dispatched"
