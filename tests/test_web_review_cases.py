"""Review and cases in real headless Chromium on the real wall server (real Redis bus, real SQLite case store):
误报驳回 of an auto-filed alarm voids its case with a timeline entry; 待复核 counts only what is not filed yet;
a click on a queue row selects it; 延期 asks for the new time limit and succeeds; 督办 takes a note; timelines
show alarm labels and Chinese role names instead of ids and codes."""

from __future__ import annotations

import re

import pytest

from cases.filing import build_filer
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)


async def _item(page) -> str:
    return await page.evaluate("document.body.dataset.item || ''")


async def test_reject_voids_an_auto_filed_case_and_rows_select(page, tmp_path, bus, store):
    settings = settings_with_roles(tmp_path)
    filer = build_filer(settings, store)
    auto = make_alarm(1)                                   # confidence 0.9: the worker filed it at once
    case = filer.file(auto).case
    for n in (1, 2, 3):
        await bus.publish(make_alarm(n) if n > 1 else auto)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, "/review", "monitor", PASSWORD)
        await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
        assert await _item(page) == "alarm-1"
        # 待复核: alarm-2 and alarm-3 wait to be filed; alarm-1 already is (counted apart).
        await eventually(lambda: page.evaluate(
            "document.querySelector('#counts [data-k=unfiled] b').textContent === '2'"), what="待复核 2")
        assert await page.text_content("#counts [data-k=auto_filed] b") == "1"
        # A click on a row selects that item.
        await page.click(".q-row[data-id=alarm-3]")
        await eventually(lambda: _is(page, "alarm-3"), what="the clicked row is the current item")
        await page.click(".q-row[data-id=alarm-1]")
        await eventually(lambda: _is(page, "alarm-1"), what="back to alarm-1 by clicking")
        assert "已立案" in await page.text_content(".q-row[data-id=alarm-1]")
        # 误报驳回 of the auto-filed alarm: the case is voided, with a timeline entry.
        await page.keyboard.press("r")
        await page.locator("#reasons:not([hidden])").wait_for(timeout=5_000)
        await page.keyboard.press("1")
        await eventually(lambda: _not(page, "alarm-1"), what="moved on after rejecting")
    stored = store.get_case(case["id"], now=auto.at + 60)
    assert stored["state"] == "voided"
    assert [e["action"] for e in stored["timeline"]][-2:] == ["review_reject", "void"]
    assert stored["timeline"][-1]["note"].startswith("误报驳回，案件作废：")
    assert stored["timeline"][-1]["actor"].startswith("monitor")


async def _is(page, item):
    return await _item(page) == item


async def _not(page, item):
    return await _item(page) != item


async def test_extend_asks_for_the_limit_and_supervise_takes_a_note(page, tmp_path, bus, store):
    settings = settings_with_roles(tmp_path)
    filer = build_filer(settings, store)
    first = make_alarm(1)
    await bus.publish(first)
    filed = filer.file(first).case
    # A repeat of the same place is attached (并案) with the alarm id in its note.
    again = make_alarm(2)
    filer.file(again)
    await bus.publish(again)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, f"/review?case={filed['id']}", "leader", PASSWORD)
        await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
        await page.locator(f"#case[data-case-id='{filed['id']}']").wait_for(timeout=10_000)
        before = store.get_case(filed["id"], now=first.at)["deadline_at"]
        timeline = await page.text_content("#timeline")
        assert "alarm-2" not in timeline and "第2次报警" in timeline, timeline
        assert not re.search(r"\((watch_officer|monitor|leader|admin)\)", timeline), timeline

        await page.click(".case-action[data-action=extend]")
        await page.locator("#act-dialog[open]").wait_for(timeout=5_000)
        await page.fill("#act-value", "2")
        await page.select_option("#act-unit", "work_days")
        await page.fill("#act-note", "商户需协调")
        await page.click("#act-submit")
        await eventually(lambda: page.evaluate("document.getElementById('message').dataset.kind === 'ok'"),
                         what="延期 succeeded")
        message = await page.text_content("#message")
        assert "延期" in message and "完成" in message, message
        after = store.get_case(filed["id"], now=first.at)
        assert after["deadline_at"] > before
        assert after["timeline"][-1]["action"] == "extend" and "2 工作日" in after["timeline"][-1]["note"]
        assert "商户需协调" in after["timeline"][-1]["note"]

        await page.click(".case-action[data-action=supervise]")
        await page.locator("#act-dialog[open]").wait_for(timeout=5_000)
        assert "督办要求" in await page.text_content("#act-dialog")
        await page.fill("#act-note", "今日 17 时前处置完毕")
        await page.click("#act-submit")
        await eventually(lambda: page.evaluate("document.getElementById('message').dataset.kind === 'ok'"),
                         what="督办 succeeded")
        done = store.get_case(filed["id"], now=first.at)
        assert done["timeline"][-1]["action"] == "supervise" and "今日 17 时前处置完毕" in done["timeline"][-1]["note"]
