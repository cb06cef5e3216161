"""The admin's audit log page in real headless Chromium on the real wall server: login redirect, the rows of what
people did (refused actions marked), filters that go to the URL, and a non-admin told it is not theirs."""

from __future__ import annotations

import re

import pytest

from tests import signin
from tests.fixtures.wall import PASSWORD, make_app, wall_client

pytestmark = pytest.mark.timeout(90)


async def _sign_in_on_page(page, base: str, path: str, username: str) -> None:
    await page.goto(f"{base}{path}")
    await page.wait_for_url(re.compile(r".*/login\?next=.*"))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.press("input[name=password]", "Enter")
    await page.wait_for_url(re.compile(rf".*{re.escape(path)}.*"))
    await page.locator("body[data-ready='1']").wait_for(timeout=15_000)


async def _rows(page) -> list[list[str]]:
    return await page.eval_on_selector_all("#table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")


async def test_audit_page(page, tmp_path, bus, store, evidence_dir):
    app = make_app(tmp_path, bus, store, evidence_dir)
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        assert (await signin.login(client, "duty", PASSWORD)).status == 200
        assert (await client.put("/api/screens/main/layout", json={"layout": "3x3"})).status == 200
        assert (await client.post("/api/plans/flood/invoke")).status == 403

        await _sign_in_on_page(page, base, "/audit", "admin")
        rows = await _rows(page)
        # Action names, outcomes and roles in words; details readable; time with its date.
        assert [(r[1], r[3], r[5]) for r in rows[:3]] == [("admin", "登录", "成功"), ("duty", "启动预案", "无权限被拒"),
                                                          ("duty", "改变布局", "成功")]
        assert rows[1][2] == "值班员" and "布局：3x3" in rows[2][7] and "{" not in rows[2][7]
        assert "拒绝原因：当前角色（值班员）无权执行此操作" in rows[1][7]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", rows[0][0]), rows[0][0]
        # The action filter offers the case actions; the time filters are plain text in the site's format.
        assert await page.locator("select[name=action] option[value='case.close']").count() == 1
        assert await page.get_attribute("input[name=since]", "type") is None
        assert await page.locator("#table tr.refused").count() == 1
        await page.select_option("select[name=outcome]", "403")
        await page.click("#filters button[type=submit]")
        await page.wait_for_url(re.compile(r".*outcome=403.*"))
        await page.wait_for_function("document.querySelectorAll('#table tbody tr').length === 1")
        assert (await _rows(page))[0][3] == "启动预案"
        await page.screenshot(path="/tmp/audit.png")

        await page.context.clear_cookies()
        await _sign_in_on_page(page, base, "/audit", "leader")
        assert "只有管理员" in await page.text_content("#message")
        assert await _rows(page) == []
