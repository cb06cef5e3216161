"""站点模型 (/admin/models) in real headless Chromium on the real wall server: the versions with their validation
figures and comparison, 启用 makes one live (active.json, audited), 回退 brings back the one before, and only the
admin may."""

from __future__ import annotations

import json

import aiohttp
import pytest

from cases.audit import AuditQuery
from learning import learning_root
from learning.classes import class_map
from learning.registry import ModelRegistry
from tests import signin
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(120)


def _version(registry: ModelRegistry, now: float, precision: float) -> str:
    path = registry.new_version(now)
    (path / "model.onnx").write_bytes(b"onnx")  # the page and the registry never load it; the worker's switch does
    card = {"version": path.name, "created_at": now, "command": "citywall model train --dataset d",
            "classes": [{"id": "vendor_stall", "zh": "摊位"}], "class_map": class_map(["vendor_stall"]),
            "metrics_val": {"vendor_stall": {"precision": precision, "recall": 0.5, "map50": 0.4}},
            "metrics_val_overall": {"precision": precision, "recall": 0.5, "map50": 0.4},
            "data": {"dataset": "d"}, "training": {"seconds": 10},
            "compare": {"reviews": {"alarms": 12, "kept": 5, "false_removed": 4, "true_lost": 1}}}
    (path / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return path.name


async def test_promote_and_roll_back_from_the_admin_page(page, tmp_path, bus, store):
    settings = settings_with_roles(tmp_path)
    registry = ModelRegistry(learning_root(settings) / "models")
    first = _version(registry, 1_773_198_000.0, 0.6)
    second = _version(registry, 1_773_198_600.0, 0.9)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence")
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(base_url=base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)) as m:
            assert (await signin.login(m, "monitor", PASSWORD)).status == 200
            assert (await m.get("/api/admin/models")).status == 403
        await signin.sign_in_page(page, base, "/admin/models", "admin", PASSWORD)
        await page.locator("body[data-ready='1']").wait_for(timeout=10_000)
        rows = await page.eval_on_selector_all("#models tbody tr", "rs => rs.map(r => r.dataset.version)")
        assert rows == [second, first]  # newest first
        text = await page.text_content(f"#models tr[data-version='{second}']")
        assert "90%" in text and "去掉误报 4" in text
        assert "未启用站点模型" in await page.text_content("#live")
        await page.click(f"#models tr[data-version='{first}'] button.primary")
        await page.locator(f"#live[data-active='{first}']").wait_for(timeout=10_000)
        await page.click(f"#models tr[data-version='{second}'] button.primary")
        await page.locator(f"#live[data-active='{second}']").wait_for(timeout=10_000)
        assert registry.state().active == second
        await page.screenshot(path="/tmp/admin-models.png")
        await page.click("#rollback")  # 回退: the one live before
        await page.locator(f"#live[data-active='{first}']").wait_for(timeout=10_000)
        assert "回退" in await page.text_content("#history")
    assert registry.state().active == first
    entries = await eventually(lambda: store.search_audit(AuditQuery(action="model.promote"))[0],
                               what="promotions audited")
    assert sorted(e.actor for e in entries) == ["admin", "admin"]
    assert [e.actor for e in store.search_audit(AuditQuery(action="model.rollback"))[0]] == ["admin"]
