"""The situation screen (/situation) in real headless Chromium on the real wall server: map labels never drawn
over each other, cameras clickable (their live tile opens over the map), cameras with open cases marked; and the
wall's case rows open the case."""

from __future__ import annotations

import pytest

from tests.fixtures.cases import insert_case
from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import sign_in

pytestmark = pytest.mark.timeout(120)


async def test_map_labels_do_not_overlap_cameras_open_and_cases_are_marked(page, site, bus):
    import time

    from messages.alarm import Alarm

    insert_case(site.store, 1, camera="cam-b")
    insert_case(site.store, 2, camera="cam-b")
    for n, cam in enumerate(("cam-a", "cam-b", "cam-c")):   # live alarms: their event names go on the map too
        await bus.publish(Alarm(**{**make_alarm(n + 1, camera=cam).to_dict(), "at": time.time()}))
    await sign_in(page, site, "leader")
    await page.goto(f"{site.base}/situation?map=grid")  # the SVG grid diagram (the basemap: test_web_map.py)
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)
    await page.locator("#map .cam[data-camera=cam-b] .case-mark").wait_for(timeout=10_000)
    assert await page.text_content("#map .cam[data-camera=cam-b] .case-mark text") == "案2"
    assert await page.locator("#map .cam[data-camera=cam-a] .case-mark").count() == 0
    await page.locator("#map .hot text").first.wait_for(timeout=10_000)
    boxes = await page.evaluate("""() => [
        ...document.querySelectorAll('#map .areas text, #map .cams text, #map .hot text')]
        .filter(t => !t.closest('.case-mark')).map(t => { const b = t.getBoundingClientRect();
        return [t.textContent, b.left, b.top, b.right, b.bottom]; })""")
    assert len(boxes) >= 5
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[1] < b[3] - 1 and a[3] > b[1] + 1 and a[2] < b[4] - 1 and a[4] > b[2] + 1
            assert not overlap, f"labels overlap: {a} / {b}"
    await page.click("#map .cam[data-camera=cam-c] circle")
    tile = page.locator("#live-view cw-tile[camera=cam-c]")
    await tile.wait_for(timeout=10_000)
    assert await tile.get_attribute("name") == "摄像头c"
    await page.keyboard.press("Escape")
    assert await page.locator("#live-view").count() == 0
    # On the wall, a case row opens the case (the case office's case page, a new tab).
    await page.goto(f"{site.base}/wall/main")
    await page.locator("#case-list .case-row[data-case-id=case-001]").wait_for(timeout=10_000)
    async with page.context.expect_page() as opened:
        await page.click("#case-list .case-row[data-case-id=case-001]")
    case_page = await opened.value
    await case_page.wait_for_load_state()
    assert case_page.url.endswith("/cases/case-001")
    await case_page.locator("body[data-case-id=case-001]").wait_for(timeout=10_000)
