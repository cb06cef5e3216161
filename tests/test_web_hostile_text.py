"""Stored hostile text cannot become script on any page, in real headless Chromium against the real wall server
(real Redis bus, real SQLite case store, voice guidance on real Mosquitto).

Markup is stored everywhere a user or an integrator can put text: a camera name and a zone name (configuration),
an alarm's camera/zone name (the bus), a case title and a case action note, a review reject reason, a manual
broadcast text. Every payload would set ``window.__pwned`` if it ever reached an HTML parser (innerHTML, an
attribute, a ``javascript:`` link). The wall, console, review, situation and stats pages and the daily report are
opened; none may run it, and the wall, console, review and situation pages show the text literally.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cases.store import CaseStore
from guidance.runtime import build_guidance
from tests.fixtures.factories import demo_settings, make_alarm
from tests.fixtures.wall import wall_client
from tests.live_page import login_page
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(240)


def payload(label: str) -> str:
    """Markup that sets ``window.__pwned`` to ``label`` through three different parser paths."""
    return (f'<img src=x onerror="window.__pwned=\'{label}\'">"><svg onload="window.__pwned=\'{label}\'">'
            f"<script>window.__pwned='{label}'</script>{label}")


CAMERA = payload("CAMNAME")
ZONE = payload("ZONENAME")
NOTE = payload("CASENOTE")
TITLE = payload("CASETITLE")
REASON = payload("REJECT")[:190]
BROADCAST = payload("BCAST")
VISIBLE = {  # page → a label that must be on it as text (proof the stored text is rendered, literally)
    "/wall/main": "CAMNAME",
    "/console": "CAMNAME",
    "/review": "ZONENAME",
    "/situation": "CAMNAME",
}
PAGES = [*VISIBLE, "/stats", "/report/daily"]

DEEP_TEXT = """() => {
  const parts = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) parts.push(node.textContent);
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(document.body);
  return parts.join(" ");
}"""


@pytest.fixture
async def hostile_wall(bus, mqtt_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    s = demo_settings(tmp_path)
    first = s.cameras[0]
    zones = [first.zones[0].model_copy(update={"name": ZONE}), *first.zones[1:]] if first.zones else []
    s = s.model_copy(update={"cameras": [first.model_copy(update={"name": CAMERA, "zones": zones}), *s.cameras[1:]]})
    runtime = build_guidance(s, bus, mqtt_url=mqtt_url, clip_url=lambda n: f"http://127.0.0.1:1/clips/{n}")
    await runtime.start()
    store = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    for n in (1, 2, 3):  # one confirmed, one rejected, one left in the review queue
        alarm = dataclasses.replace(make_alarm(n, camera=first.id), camera_name=CAMERA, zone_name=ZONE)
        await bus.publish(alarm)
    app = create_app(s, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence", guidance=runtime)
    try:
        async with wall_client(app) as client:
            base = str(client.make_url("")).rstrip("/")
            async with aiohttp.ClientSession(base_url=base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)) as api:
                headers = await _login(api)
                stored = await _store_hostile_text(api, headers, first.id)
            yield base, stored
    finally:
        await runtime.close()
        store.close()


async def _login(api: aiohttp.ClientSession) -> dict[str, str]:
    resp = await api.post("/api/login", json={"username": "admin", "password": "citywall"})
    assert resp.status == 200, await resp.text()
    token = (await resp.json()).get("csrf_token")
    return {"X-CSRF-Token": token} if token else {}


async def _store_hostile_text(api: aiohttp.ClientSession, headers: dict[str, str], camera: str) -> dict[str, Any]:
    """Confirm one alarm (a case) and note on it, reject the other with a hostile reason, broadcast markup."""
    claim = await (await api.post("/api/review/claim", json={}, headers=headers)).json()
    resp = await api.post(f"/api/review/{claim['item']['id']}/decision", json={"decision": "confirm"}, headers=headers)
    assert resp.status == 200, await resp.text()
    case = (await resp.json())["case"]
    detail = await (await api.get(f"/api/cases/{case['id']}")).json()
    action = detail["allowed_actions"][0]["action"]
    resp = await api.post(f"/api/cases/{case['id']}/actions", json={"action": action, "note": NOTE}, headers=headers)
    assert resp.status == 200, await resp.text()
    claim = await (await api.post("/api/review/claim", json={}, headers=headers)).json()
    resp = await api.post(f"/api/review/{claim['item']['id']}/decision", json={"decision": "reject", "reason": REASON},
                          headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await api.post("/api/broadcasts", json={"target": "all", "text": BROADCAST}, headers=headers)
    assert resp.status == 200, await resp.text()
    return {"case_id": case["id"], "camera": camera}


async def test_stored_markup_never_runs_on_any_page(page, hostile_wall) -> None:
    base, stored = hostile_wall
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))
    page = await login_page(page.context, base, "admin", "citywall")
    for path in PAGES:
        await page.goto(f"{base}{path}")
        await page.wait_for_load_state("networkidle")
        label = VISIBLE.get(path)
        if label:
            text = await eventually(lambda label=label: _text_with(page, label), timeout=20,
                                    what=f"{label} shown on {path}")
            assert "<img src=x onerror=" in text or "<svg onload=" in text, (path, text[:300])
        assert await page.evaluate("() => window.__pwned") is None, path
        # No element the payloads would have created exists anywhere (shadow roots included).
        created = await page.evaluate("""() => {
          const found = [];
          const walk = (root) => {
            for (const n of root.querySelectorAll('img[src="x"], svg[onload], script:not([src]), [onerror], [onload]'))
              found.push(n.outerHTML.slice(0, 80));
            for (const n of root.querySelectorAll('*')) if (n.shadowRoot) walk(n.shadowRoot);
          };
          walk(document);
          return found;
        }""")
        assert [c for c in created if "__pwned" in c] == [], (path, created)


async def _text_with(page, label: str) -> str | None:
    text = await page.evaluate(DEEP_TEXT)
    return text if label in text else None
