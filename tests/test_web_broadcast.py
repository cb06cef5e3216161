"""人工喊话 (/broadcast) in real headless Chromium on the real wall server with real voice guidance (real Redis,
Mosquitto and simulated speakers): a leader says a text to a group and the speakers play it, uploads a recording
and plays it on one speaker; the log and the guidance statistics are on the page; a watch officer may look, not
speak."""

from __future__ import annotations

import pytest

from tests.fixtures.guidance import sine_wav
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


async def open_page(page, client, user: str):
    base = str(client.make_url("")).rstrip("/")
    resp = await page.request.post(f"{base}/api/login", data={"username": user, "password": "citywall"})
    assert resp.ok, await resp.text()
    await page.goto(f"{base}/broadcast")
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    return base


async def test_a_leader_broadcasts_text_to_a_group_and_a_recording_to_one_speaker(page, broadcast_api, tmp_path):
    client, runtime, sims = broadcast_api
    await open_page(page, client, "leader")
    assert await page.locator("#speakers li").count() == 2
    clip = tmp_path / "notice.wav"
    clip.write_bytes(sine_wav(1.0))
    await page.check("input[name=kind][value=speaker]")
    await page.select_option("#speaker", "spk-road")
    await page.check("input[name=source][value=clip]")
    await page.set_input_files("#clip-file", str(clip))
    before = len(sims["spk-road"].played)
    await page.click("#send")
    await eventually(lambda: page.evaluate("/已向|未/.test(document.getElementById('result').textContent)"),
                     timeout=20, what="the recording broadcast's answer")
    assert "ok" in await page.get_attribute("#result", "class"), await page.text_content("#result")
    await eventually(lambda: _more(sims["spk-road"], before), timeout=15, what="spk-road played the recording")
    await page.check("input[name=source][value=text]")
    await page.check("input[name=kind][value=group]")
    await page.select_option("#group", "hubin")
    await page.fill("#text", "请勿在人行道摆摊，谢谢配合")
    await page.click("#send")
    await eventually(lambda: page.evaluate("/hubin|未/.test(document.getElementById('result').textContent)"),
                     timeout=15, what="the group broadcast's answer")
    assert "已向分组 hubin喊话" in await page.text_content("#result"), await page.text_content("#result")
    await eventually(lambda: _played(sims, ("spk-vending",)), timeout=15, what="the hubin speaker played")
    await eventually(lambda: page.evaluate("document.querySelectorAll('#log tbody tr').length >= 1"), timeout=10,
                     what="the log row")
    row = await page.text_content("#log tbody tr")
    assert "人工" in row and "请勿在人行道摆摊" in row and "已播放" in row

    # The statistics: the log's figures count both manual broadcasts.
    figures = await page.text_content("#log-figures")
    assert "人工喊话" in figures and "引导消除率" in await page.text_content("#outcomes")
    manual = await page.evaluate("""() => [...document.querySelectorAll('#log-figures .kpi')]
        .find(k => k.textContent.includes('人工喊话')).querySelector('.v').textContent""")
    assert manual == "2"


async def _played(sims, ids) -> bool:
    return all(sims[i].played for i in ids)


async def _more(sim, before: int) -> bool:
    return len(sim.played) > before


async def test_a_watch_officer_sees_the_log_but_may_not_speak(page, broadcast_api):
    client, runtime, sims = broadcast_api
    await open_page(page, client, "duty")
    assert await page.is_disabled("#send")
    assert "只有指挥长可以喊话" in await page.text_content("#result")
    hrefs = await page.locator("nav.cw-nav a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert "/broadcast" not in hrefs
