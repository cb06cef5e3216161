"""The whole loop, as a newcomer runs it: ``citywall up`` on the demo config, the wall in headless Chromium.

One stack is started for the module (private redis-server, mosquitto and RTSP server as child processes,
ephemeral ports everywhere) with the four demo scenes plus one camera that points at a closed port. Checks:
tiles play, alarms for the vending / bin / road scenes reach the wall within dwell + 15 s, each files a case with
the standard code and an evidence snapshot, the quiet street files nothing, the unreachable camera is offline
and retried, a wrong password gets 401, and SIGTERM stops every child process.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import time
from pathlib import Path

import aiohttp
import av
import pytest
import yaml

from demo.scenes import make_scene
from tests import signin
from tests.stack import run_up
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {  # camera → (scene, event, case code)
    "cam-vending": ("vending", "vending", "0501"),
    "cam-bin": ("bin_overflow", "bin_overflow", "0305"),
    "cam-road": ("road_occupation", "road_occupation", "0507"),
}
QUIET = "cam-street"
OFFLINE = "cam-offline"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc), so the test can prove none outlives the stack."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_media):
    tmp = tmp_path_factory.mktemp("stack")
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text(encoding="utf-8").replace(
        "${CITYWALL_REDIS_URL:-}", "").replace("${CITYWALL_MQTT_URL:-}", ""))
    data["storage"]["data_dir"] = str(tmp / "var")
    data["demo"]["media_dir"] = str(next(iter(demo_media.values())).parent)
    data["cameras"].append({
        "id": OFFLINE, "name": "断线测试点", "url": f"rtsp://user:secret@127.0.0.1:{_closed_port()}/nothing",
        "position": {"lon": 120.1601, "lat": 30.2720, "address": "测试路1号"},
        "zones": [],
    })
    config = tmp / "e2e.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    yield from run_up(config, tmp)


async def _login(session: aiohttp.ClientSession, url: str, password: str = "citywall") -> aiohttp.ClientResponse:
    return await signin.login(session, "admin", password, base=url)


def test_banner_prints_address_and_demo_login(stack):
    assert "admin / citywall" in stack["banner"]


async def test_wrong_password_gets_401(stack):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        resp = await _login(session, stack["url"], password="wrong")
        assert resp.status == 401
        assert "error" in await resp.json()
        resp = await session.get(f"{stack['url']}/api/cameras")
        assert resp.status == 401


async def test_metrics_report_every_room(stack):
    async def scrape() -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{stack['url']}/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            return await resp.text()

    async def cameras_up() -> str | None:
        text = await scrape()
        up = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
              for line in text.splitlines() if line.startswith("citywall_camera_up{")}
        demo = [v for k, v in up.items() if OFFLINE not in k]
        offline = up[f'citywall_camera_up{{camera="{OFFLINE}"}}']
        return text if len(demo) == 4 and set(demo) == {"1.0"} and offline == "0.0" else None

    text = await eventually(cameras_up, timeout=60, what="four demo cameras up, the unreachable one down")
    for name in ("citywall_camera_fps", "citywall_detector_frames_analysed_total", "citywall_ws_clients",
                 "citywall_case_worker_received_total", "citywall_bus_published_total",
                 "citywall_relay_viewer_drops_total", "citywall_cases_overdue",
                 "citywall_recording_bytes_written_total", "citywall_recording_gaps_total"):  # the demo records
        assert f"# TYPE {name} " in text, name
    assert "citywall_metrics_provider_errors_total 0.0" in text
    assert "rtsp://" not in text


async def test_wall_plays_every_tile(stack, page):
    url = stack["url"]
    await page.goto(f"{url}/wall")
    await page.wait_for_url(re.compile(r".*/login.*"))
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", "citywall")
    await page.press("input[name=password]", "Enter")
    await page.wait_for_url(re.compile(r".*/wall$"))
    tiles = page.locator("cw-tile")
    await tiles.first.wait_for(timeout=20_000)
    assert await tiles.count() == 4

    async def playing() -> list[dict]:
        return await page.evaluate(
            """() => [...document.querySelectorAll('cw-tile')].map(t => {
                   const v = t.querySelector('video') || (t.shadowRoot && t.shadowRoot.querySelector('video'));
                   return {camera: t.getAttribute('camera'), w: v ? v.videoWidth : 0, t: v ? v.currentTime : 0};
               })"""
        )

    deadline = time.monotonic() + 60
    first = await playing()
    while time.monotonic() < deadline and not all(s["w"] > 0 for s in first):
        await asyncio.sleep(1)
        first = await playing()
    await asyncio.sleep(3)
    second = await playing()
    for a, b in zip(first, second, strict=False):
        assert a["w"] > 0, f"tile {a['camera']} has no picture: {first}"
        assert b["t"] > a["t"] + 1.0, f"tile {a['camera']} is not advancing: {a} → {b}"
    await page.screenshot(path=str(stack["stderr"].parent / "wall.png"))

    # The hall clock shows the site's time (Asia/Shanghai in the demo), whatever the browser machine's zone.
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    shown = await page.locator("#clock-time").text_content()
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    assert shown[:5] in {(now + timedelta(minutes=d)).strftime("%H:%M") for d in (-1, 0, 1)}, shown
    title = await page.locator("#site-name").text_content()
    assert title == "示范区城市运行管理中心"


async def test_alarms_and_cases_for_each_scene(stack, page):
    url = stack["url"]
    dwell = 10.0
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert (await _login(session, url)).status == 200
        latest_start = max(
            g.start_s for scene, _, _ in EXPECTED.values() for g in make_scene(scene, 7).ground_truth
        )
        # The scenes start when ingest first connects (≈ stack start); allow connection set-up on top.
        deadline = stack["started"] + latest_start + dwell + 15 + 10
        raised: dict[str, dict] = {}
        while time.monotonic() < deadline and set(raised) != set(EXPECTED):
            alarms = (await (await session.get(f"{url}/api/alarms?limit=200")).json())["alarms"]
            for a in alarms:
                if a["phase"] == "raised" and a["camera_id"] in EXPECTED:
                    raised.setdefault(a["camera_id"], a)
            await asyncio.sleep(1)
        assert set(raised) == set(EXPECTED), f"alarms raised only for {sorted(raised)}"
        for cam, alarm in raised.items():
            assert alarm["event"] == EXPECTED[cam][1]
            snap = await session.get(f"{url}{alarm['snapshot_url']}")
            assert snap.status == 200 and snap.headers["Content-Type"] == "image/jpeg"
            assert len(await snap.read()) > 10_000

        # Evidence clips: seconds before and after each alarm, remuxed from the camera's own packets.
        async def clips_ready() -> dict[str, float] | None:
            durations = {}
            for cam, alarm in raised.items():
                assert alarm.get("clip_url"), alarm
                resp = await session.get(f"{url}{alarm['clip_url']}")
                if resp.status != 200:
                    return None
                assert resp.headers["Content-Type"] == "video/mp4"
                with av.open(io.BytesIO(await resp.read())) as clip:
                    video = clip.streams.video[0]
                    assert video.codec_context.name == "h264" and video.width == 1280
                    durations[cam] = float(clip.duration or 0) / av.time_base
            return durations

        durations = await eventually(clips_ready, timeout=40, interval=1, what="an evidence clip for every alarm")
        assert all(d >= 8.0 for d in durations.values()), durations

        # Cases: one per scene, standard code, responsible unit, deadline, evidence.
        cases: dict[str, dict] = {}
        case_deadline = time.monotonic() + 10
        while time.monotonic() < case_deadline and set(cases) != set(EXPECTED):
            listed = (await (await session.get(f"{url}/api/cases?limit=100")).json())["cases"]
            cases = {c["camera_id"]: c for c in listed if c["camera_id"] in EXPECTED}
            await asyncio.sleep(0.5)
        assert set(cases) == set(EXPECTED), f"cases only for {sorted(cases)}"
        for cam, summary in cases.items():
            detail = await (await session.get(f"{url}/api/cases/{summary['id']}")).json()
            assert detail["code"] == EXPECTED[cam][2], detail
            assert detail["unit_name"], detail
            assert detail["deadline_at"] > detail["reported_at"], detail
            assert detail["address"], detail
            assert detail["evidence_urls"], detail
            ev = await session.get(f"{url}{detail['evidence_urls'][0]}")
            assert ev.status == 200

        # The wall shows them: a live alarm card naming each camera.
        await page.goto(f"{url}/login")
        await page.fill("input[name=username]", "admin")
        await page.fill("input[name=password]", "citywall")
        await page.press("input[name=password]", "Enter")
        await page.wait_for_url(re.compile(r".*/wall$"))
        cameras = (await (await session.get(f"{url}/api/cameras")).json())["cameras"]
        names = {c["id"]: c["name"] for c in cameras}
        for cam in EXPECTED:
            card = page.locator(f'.alarm-card[data-camera="{cam}"]').first
            await card.wait_for(state="attached", timeout=10_000)
            assert names[cam] in await card.text_content()
        await page.locator(".alarm-card").first.wait_for(state="visible", timeout=5_000)
        await page.screenshot(path=str(stack["stderr"].parent / "wall-alarms.png"))

        # The negative: the quiet street raised nothing and filed nothing.
        alarms = (await (await session.get(f"{url}/api/alarms?limit=500")).json())["alarms"]
        assert not [a for a in alarms if a["camera_id"] == QUIET]
        listed = (await (await session.get(f"{url}/api/cases?camera_id={QUIET}")).json())
        assert listed["total"] == 0


async def test_unreachable_camera_is_offline_and_retried(stack):
    url = stack["url"]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert (await _login(session, url)).status == 200
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cams = {c["id"]: c for c in (await (await session.get(f"{url}/api/cameras")).json())["cameras"]}
            status = cams[OFFLINE]["status"]
            seen.append(status)
            if status.get("state") in ("offline", "reconnecting") and status.get("reconnects", 0) >= 2:
                break
            await asyncio.sleep(1)
        assert seen[-1].get("state") in ("offline", "reconnecting"), seen[-3:]
        assert seen[-1].get("reconnects", 0) >= 2, seen[-3:]
        assert "secret" not in str(cams[OFFLINE]), "camera credentials must not leave the server"
        assert all(cams[c]["status"].get("state") == "online" for c in EXPECTED)
        health = await session.get(f"{url}/api/health")
        assert health.status == 200


def test_sigterm_stops_every_child(stack):
    proc = stack["proc"]
    children = _children(proc.pid)
    assert len(children) >= 3, f"expected redis, mosquitto and the RTSP server as children, got {children}"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.1)
    assert not [p for p in children if _alive(p)], "child processes outlived citywall"
