"""The case office in real headless Chromium on the real wall server (real Redis bus, real SQLite case store), by
role: a desk monitor filters the list and opens a case with the keyboard; a full cycle from an auto-filed alarm to
结案 through the pages only (unit 回退 on a 390x844 phone, desk 改派 with urgency, unit 开始处置 and 处置反馈 with a
photo uploaded from the phone, desk 核查 and 结案); a unit user opening another unit's case is refused; a non-image
upload is refused with a Chinese message; a concurrent change shows the case as it is now (409)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from cases.desk import CaseDesk
from cases.filing import build_filer
from cases.store import CaseStore
from config import parse_settings
from tests import signin
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import PASSWORD, wall_client
from tests.fixtures.wall import PASSWORD_HASH as _HASH
from tests.test_wall_case_office import put_case
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(180)
PHONE = {"width": 390, "height": 844}


def settings(tmp_path):
    users = [
        {"username": "duty", "display_name": "值班员", "role": "watch_officer", "password_hash": _HASH},
        {"username": "monitor", "display_name": "监控员", "role": "monitor", "password_hash": _HASH},
        {"username": "leader", "display_name": "指挥长", "role": "leader", "password_hash": _HASH},
        {"username": "squad", "display_name": "湖滨中队", "role": "unit", "password_hash": _HASH,
         "units": ["hubin-squad"]},
    ]
    return parse_settings({
        "site_name": "测试中心", "storage": {"data_dir": str(tmp_path / "var")}, "users": users,
        "cameras": [{"id": "cam-a", "name": "解放路人行道", "url": "rtsp://127.0.0.1:1/a",
                     "position": {"lon": 120.1612, "lat": 30.2508, "address": "解放路88号", "street": "湖滨街道"},
                     "zones": [{"id": "pavement", "name": "人行道", "events": ["vending"],
                                "polygon": [[0, 0.6], [1, 0.6], [1, 1], [0, 1]]}]}],
    })


@pytest.fixture
def store(tmp_path):
    s = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    yield s
    s.close()


def _jpeg(path, w=2400, h=1800):
    Image.new("RGB", (w, h), (120, 120, 120)).save(path, "JPEG", quality=60)


async def phone_page(page):
    context = await page.context.browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                                     has_touch=True)
    return context, await context.new_page()


async def ready(page):
    await page.locator("body[data-ready='1']").wait_for(timeout=20_000)


async def test_desk_monitor_filters_and_opens_a_case_with_the_keyboard(page, tmp_path, bus, store):
    import time

    now = time.time()
    for n in range(1, 13):
        put_case(store, n, unit=("hubin-squad", "qingbo-squad", "sanitation")[n % 3], reported=now - 3600 * n,
                 state="handling" if n % 4 == 0 else "dispatched", deadline_s=7200 if n < 6 else 86400 * 3)
    (tmp_path / "evidence").mkdir()
    app = create_app(settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, "/cases", "monitor", PASSWORD)
        await ready(page)
        assert await page.get_attribute("body", "data-total") == "12"
        assert "案件办理" in await page.text_content(".cw-nav")
        # the 处置 tab (handling): 3 cases, counts on every tab
        await page.click(".co-tab[data-state=handling]")
        await eventually(lambda: _attr(page, "data-total", "3"), what="handling tab")
        assert "3" in await page.text_content(".co-tab[data-state=handling] b")
        await page.click(".co-tab[data-state='']")
        # unit filter, then overdue only
        await page.select_option("select[name=unit_id]", "qingbo-squad")
        await eventually(lambda: _attr(page, "data-total", "4"), what="unit filter")
        await page.select_option("select[name=deadline]", "overdue")
        # qingbo: n = 1, 4, 7, 10; overdue: 4
        await eventually(lambda: _attr(page, "data-total", "1"), what="overdue filter")
        assert "deadline=overdue" in page.url and "unit_id=qingbo-squad" in page.url
        await page.click("#clear")
        # search by address, from the keyboard
        await eventually(lambda: _attr(page, "data-total", "12"), what="cleared")
        await page.keyboard.press("/")
        await page.keyboard.type("解放路7号")
        await eventually(lambda: _attr(page, "data-total", "1"), what="search")
        await page.keyboard.press("Escape")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r".*/cases/case-00007$"))
        await ready(page)
        assert await page.text_content(".cd-head .no") == "CW20260311-00007"
        # a monitor may not act on a dispatched case: no buttons, said so
        assert await page.locator("#actions button").count() == 0
        assert "无可办理操作" in await page.text_content("#actions")
        # back to the list with Esc, then j/k + Enter opens the second row
        await page.keyboard.press("Escape")
        await page.wait_for_url(re.compile(r".*/cases\?q=.*$"), wait_until="commit")  # the list as it was
        await ready(page)
        await page.keyboard.press("c")  # clear the search: all 12 again, newest first
        await eventually(lambda: _attr(page, "data-total", "12"), what="cleared by key")
        await page.keyboard.press("j")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r".*/cases/case-00002$"))


async def _attr(page, name, value):
    return await page.get_attribute("body", name) == value


async def test_full_cycle_from_an_auto_filed_alarm_to_closed_through_the_pages(page, tmp_path, bus, store):
    cfg = settings(tmp_path)
    filer = build_filer(cfg, store)
    alarm = make_alarm(1)
    case = filer.file(alarm).case
    assert case["unit_id"] == "hubin-squad" and case["state"] == "dispatched", case["unit_id"]
    evidence = tmp_path / "evidence"
    (evidence / "cam-a" / "2026").mkdir(parents=True)
    _jpeg(evidence / "cam-a" / "2026" / "alarm-1.jpg", 640, 360)
    photo = tmp_path / "现场.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:03:11 10:42:00"
    Image.new("RGB", (3000, 2000), (40, 160, 60)).save(photo, "JPEG", quality=60, exif=exif)
    app = create_app(cfg, bus=bus, cases=store, live=None, evidence_dir=evidence)
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        context, phone = await phone_page(page)
        try:
            # the unit, on the phone: its case is listed; 回退 with a reason (the desk will send it again)
            await signin.sign_in_page(phone, base, "/field", "squad", PASSWORD)
            await ready(phone)
            await phone.click(f".fd-card[data-case-id='{case['id']}']")
            await phone.locator("body[data-state=dispatched] #start:not([hidden])").wait_for(timeout=10_000)
            assert (await phone.get_attribute("#c-nav", "href")) == "geo:30.2508,120.1612"
            box = await phone.locator("#start").bounding_box()
            assert box["height"] >= 56 and box["width"] >= 300  # a thumb-sized target on a 390 px screen
            await phone.click("#return")
            await phone.locator("dialog[open]").wait_for(timeout=5_000)
            await phone.click("dialog button[data-role=submit]")  # no reason: refused in the dialog
            assert "请填写退回原因" in await phone.text_content("dialog .error")
            await phone.fill("dialog textarea", "需先协调商户，请重新派遣")
            await phone.click("dialog button[data-role=submit]")
            await phone.locator("body[data-state=returned]").wait_for(timeout=10_000)

            # the desk: 改派 with urgency 紧急 and instructions
            await signin.sign_in_page(page, base, f"/cases/{case['id']}", "duty", PASSWORD)
            await ready(page)
            await page.click("#actions button[data-action=dispatch]")
            await page.locator("dialog[open]").wait_for(timeout=5_000)
            assert "建议" in await page.text_content("dialog select[name=unit] option:first-child")
            await page.select_option("dialog select[name=unit]", "hubin-squad")
            await page.select_option("dialog select[name=urgency]", "紧急")
            await page.fill("dialog textarea", "商户已约谈，今日清理")
            await page.click("dialog button[data-role=submit]")
            await page.locator("body[data-state=dispatched]").wait_for(timeout=10_000)
            assert "紧急" in await page.text_content("#facts")

            # the unit: 开始处置, then 处置反馈 with a photo taken on the phone and a note
            await phone.reload()
            await ready(phone)
            await phone.locator("#start:not([hidden])").wait_for(timeout=10_000)
            assert "商户已约谈" in await phone.text_content("#c-instructions")
            await phone.click("#start")
            await phone.locator("body[data-state=handling]").wait_for(timeout=10_000)
            await phone.set_input_files("#photo", str(photo))
            await phone.locator("#previews img").wait_for(timeout=5_000)
            await phone.fill("#fb-note", "已劝离，现场已清理")
            await phone.click("#submit")
            await phone.locator("body[data-state=handled]").wait_for(timeout=20_000)
        finally:
            await context.close()

        # the desk: the field photo beside the evidence, 核查 then 结案
        await page.reload()
        await ready(page)
        await page.locator("#photos img").wait_for(timeout=10_000)
        assert "拍摄 2026-03-11 10:42:00" in await page.text_content("#photos")
        natural = await page.evaluate("document.querySelector('#photos img').naturalWidth")
        assert natural == 1600
        # 现场抓拍 without live video on this server: said plainly
        await page.keyboard.press("s")
        await eventually(lambda: _message_has(page, "抓拍失败"), what="snapshot refusal shown")
        await page.click("#actions button[data-action=verify]")
        await page.locator("dialog[open]").wait_for(timeout=5_000)
        await page.fill("dialog textarea", "照片与现场画面一致")
        await page.click("dialog button[data-role=submit]")
        await page.locator("body[data-state=verifying]").wait_for(timeout=10_000)
        await page.keyboard.press("1")  # 结案 is the first action now
        await page.locator("dialog[open]").wait_for(timeout=5_000)
        await page.keyboard.press("Control+Enter")
        await page.locator("body[data-state=closed]").wait_for(timeout=10_000)
        assert "案件已办结" in await page.text_content("#actions")
        timeline = await page.text_content("#timeline")
        for step in ("回退", "派遣", "签收处置", "照片", "处置反馈", "核查", "结案"):
            assert step in timeline, step
        assert "squad（责任单位）" in timeline and "duty（值班员）" in timeline

        # the case sheet prints with the photos
        await page.keyboard.press("p")
        await page.wait_for_url(re.compile(rf".*/cases/{case['id']}/print$"))
        await ready(page)
        assert await page.locator(".photos img").count() == 2
        assert "城市管理案件单" in await page.text_content("h1")
    done = store.get_case(case["id"])
    assert done["state"] == "closed" and done["urgency"] == "紧急"
    assert [e["action"] for e in done["timeline"]][-7:] == ["return", "dispatch", "start", "photo", "feedback",
                                                            "verify", "close"]


async def _message_has(page, text):
    return text in (await page.text_content("#message") or "")


async def test_unit_user_is_refused_another_units_case_and_a_non_image(page, tmp_path, bus, store):
    theirs = put_case(store, 1, unit="qingbo-squad")
    mine = put_case(store, 2, unit="hubin-squad")
    (tmp_path / "evidence").mkdir()
    (tmp_path / "not-a-photo.jpg").write_bytes(b"%PDF-1.4 this is a document")
    app = create_app(settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        context, phone = await phone_page(page)
        try:
            await signin.sign_in_page(phone, base, "/field", "squad", PASSWORD)
            await ready(phone)
            cards = await phone.eval_on_selector_all(".fd-card", "els => els.map(e => e.dataset.caseId)")
            assert cards == [mine]
            await phone.goto(f"{base}/field#{theirs}")
            await eventually(lambda: _field_message_has(phone, "不属于本单位"), what="refused")
            assert await phone.is_hidden("#case-view")
            await phone.goto(f"{base}/cases/{theirs}")  # the desk page too
            await eventually(lambda: _message_has(phone, "不属于您的单位"), what="refused on the desk page")
            # a non-image picked as the photo: refused with the reason, nothing fed back
            await phone.goto(f"{base}/field#{mine}")
            await phone.locator("#feedback:not([hidden])").wait_for(timeout=10_000)
            await phone.set_input_files("#photo", str(tmp_path / "not-a-photo.jpg"))
            await phone.click("#submit")
            await eventually(lambda: _text_has(phone, "#fb-error", "只能上传照片"), what="non-image refused")
        finally:
            await context.close()
    assert store.get_case(mine)["state"] == "dispatched" and not store.get_case(mine).get("photos")


async def _field_message_has(page, text):
    return text in (await page.text_content("#message") or "")


async def _text_has(page, selector, text):
    return text in (await page.text_content(selector) or "")


async def test_a_concurrent_change_shows_the_case_as_it_is_now(page, tmp_path, bus, store):
    cfg = settings(tmp_path)
    filer = build_filer(cfg, store)
    case = filer.file(make_alarm(1)).case
    (tmp_path / "evidence").mkdir()
    app = create_app(cfg, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        await signin.sign_in_page(page, base, f"/cases/{case['id']}", "duty", PASSWORD)
        await ready(page)
        # someone else feeds back meanwhile (no event reaches this page: no worker publishes in this test)
        CaseDesk(filer.config, store).act(case["id"], "feedback", role="watch_officer", user="duty2",
                                          now=case["reported_at"] + 60)
        await page.click("#actions button[data-action=start]")
        await page.locator("#conflict:not([hidden])").wait_for(timeout=10_000)
        assert "已被他人处理" in await page.text_content("#conflict")
        await page.locator("body[data-state=handled]").wait_for(timeout=10_000)
        assert await page.locator("#actions button[data-action=verify]").count() == 1
