"""Voice guidance end to end, as a newcomer runs it: ``citywall up`` on the demo config (simulated speakers at
cam-vending and cam-road). The demo vending alarm is answered by an acknowledged broadcast that shows up in
GET /api/broadcasts; the vendor stays, so after the re-check the case is filed with the broadcast on its timeline;
a leader's manual broadcast reaches a speaker; SIGTERM stops everything."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from demo.scenes import make_scene
from tests import signin
from tests.stack import run_up

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_media):
    tmp = tmp_path_factory.mktemp("guidance-stack")
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text(encoding="utf-8").replace(
        "${CITYWALL_REDIS_URL:-}", "").replace("${CITYWALL_MQTT_URL:-}", ""))
    data["storage"]["data_dir"] = str(tmp / "var")
    data["demo"]["media_dir"] = str(next(iter(demo_media.values())).parent)
    data["cameras"] = [c for c in data["cameras"] if c["id"] in ("cam-vending", "cam-road")]
    data.pop("video_wall", None)  # the demo screens name all four cameras; the default screen takes these two
    # never in quiet hours, whenever the test runs
    data["guidance"]["policy"].update(quiet_start="00:00", quiet_end="00:00")
    config = tmp / "e2e-guidance.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    yield from run_up(config, tmp)


async def _session(url: str, user: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await signin.login(session, user, "citywall", base=url)
    assert resp.status == 200
    return session


def test_banner_names_the_simulated_speakers(stack):
    assert "guidance: 2 speakers (simulated)" in stack["banner"]


async def test_vending_alarm_is_broadcast_acked_logged_and_then_filed_with_it(stack):
    url = stack["url"]
    start = max(g.start_s for g in make_scene("vending", 7).ground_truth)
    async with await _session(url, "leader") as session:
        deadline = stack["started"] + start + 10 + 30
        record = None
        while time.monotonic() < deadline and record is None:
            log = (await (await session.get(f"{url}/api/broadcasts?limit=50")).json())["broadcasts"]
            record = next((b for b in log if b["source"] == "alarm" and b["camera_id"] == "cam-vending"), None)
            await asyncio.sleep(0.5)
        assert record is not None, "no broadcast for the vending alarm:\n" + stack["stderr"].read_text()[-3000:]
        assert record["status"] == "played" and record["requested_by"] == "system"
        [row] = record["results"]
        assert row["speaker_id"] == "spk-vending" and row["acked"] is True and row["latency_ms"] < 2000
        assert "禁止占道经营" in record["text"] and record["hall_url"].endswith(".opus")
        clip = await session.get(f"{url}{record['hall_url']}")
        assert clip.status == 200 and len(await clip.read()) > 2000
        speakers = (await (await session.get(f"{url}/api/speakers")).json())["speakers"]
        assert {s["id"]: s["online"] for s in speakers} == {"spk-vending": True, "spk-road": True}

        # the vendor stays past the 5 s re-check: not resolved → the case is filed with the broadcast
        case = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and case is None:
            listed = (await (await session.get(f"{url}/api/cases?camera_id=cam-vending")).json())["cases"]
            case = listed[0] if listed else None
            await asyncio.sleep(0.5)
        assert case is not None, "no vending case after the re-check"
        detail = await (await session.get(f"{url}/api/cases/{case['id']}")).json()
        notes = [t["note"] for t in detail["timeline"] if t["action"] == "guidance_broadcast"]
        assert notes and record["broadcast_id"] in notes[0] and "已应答" in notes[0]
        stats = (await (await session.get(f"{url}/api/guidance/stats")).json())["outcomes"]
        assert stats.get("not_resolved", 0) >= 1


async def test_leader_manual_broadcast_and_duty_refused(stack):
    url = stack["url"]
    async with await _session(url, "duty") as duty:
        resp = await duty.post(f"{url}/api/broadcasts", json={"target": "spk-road", "text": "请注意。"})
        assert resp.status == 403
    async with await _session(url, "leader") as leader:
        resp = await leader.post(f"{url}/api/broadcasts", json={"target": "spk-road", "text": "请立即清理机动车道。"})
        body = await resp.json()
        assert resp.status == 200 and body["broadcast"]["status"] == "played", body
        log = (await (await leader.get(f"{url}/api/broadcasts?limit=50")).json())["broadcasts"]
        mine = [(b["requested_by"], b["status"]) for b in log if b["source"] == "manual"]
        assert mine[:2] == [("leader", "played"), ("duty", "refused")]


def test_sigterm_stops_the_stack(stack):
    proc = stack["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
