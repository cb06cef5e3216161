"""Wall screens on the real wall server (real Redis bus, real SQLite case store): REST, push over /api/ws,
persistence across a restart, tours ticking on the server, alarm pop-up from the bus and ack, plans by role."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests import signin
from tests.fixtures.factories import make_alarm, make_deadline_alarm
from tests.fixtures.wall import CAMS, PASSWORD, make_app, wall_client, wall_settings
from tests.waiting import eventually
from wall import state
from wall.app import create_app
from wall.screens_api import SCREENS

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10
async def login(client, username: str = "admin"):
    resp = await signin.login(client, username, PASSWORD)
    assert resp.status == 200
    return resp


@pytest.fixture
async def app(tmp_path, bus, store, evidence_dir):
    return make_app(tmp_path, bus, store, evidence_dir)


@pytest.fixture
async def client(app):
    async with wall_client(app) as c:
        await login(c)
        await asyncio.wait_for(app[SCREENS].ready.wait(), TIMEOUT)
        await asyncio.wait_for(app[state.HUB].ready.wait(), TIMEOUT)
        yield c


async def screen(client, screen_id: str = "main") -> dict:
    resp = await client.get(f"/api/screens/{screen_id}")
    assert resp.status == 200, await resp.text()
    return (await resp.json())["screen"]


def cams(view: dict) -> list:
    return [t["camera"] for t in view["tiles"]]


async def _next(ws, kind: str) -> dict:
    while True:
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if frame["type"] == kind:
            return frame


async def test_list_screens_with_presets_tours_and_plans(client):
    body = await (await client.get("/api/screens")).json()
    assert [s["id"] for s in body["screens"]] == ["main", "aux"]
    assert body["layouts"] == ["1", "2x2", "3x3", "4x4", "1+5", "1+7"]
    assert body["tours"][0]["id"] == "patrol"
    assert body["plans"] == [{"id": "flood", "name": "防汛应急", "roles": ["leader"], "screens": ["main", "aux"],
                              "allowed": True}]
    main = body["screens"][0]
    assert cams(main) == CAMS[:4] and main["alarm_tile"] == 3 and main["layout"]["name"] == "2x2"


async def test_layout_change_is_pushed_and_survives_a_restart(client, app, tmp_path, bus, store, evidence_dir):
    async with client.ws_connect("/api/ws") as ws:
        await _next(ws, "hello")
        # Garbage on the socket: an error frame, and the connection stays usable.
        await ws.send_str("{{not json")
        assert (await _next(ws, "error"))["error"].startswith("not JSON")
        resp = await client.put("/api/screens/main/layout", json={"layout": "3x3"})
        assert resp.status == 200
        frame = await _next(ws, "wall_screen")
        assert frame["screen"]["id"] == "main" and frame["screen"]["layout"]["name"] == "3x3"
        assert cams(frame["screen"]) == CAMS[:4] + [None] * 5
    resp = await client.put("/api/screens/main/tiles/8", json={"camera": "cam-e"})
    assert resp.status == 200 and cams((await resp.json())["screen"])[8] == "cam-e"
    before = await screen(client)

    # A second server on the same bus (a restart) comes back with the same screen.
    again = make_app(tmp_path, bus, store, evidence_dir)
    async with wall_client(again) as c2:
        await login(c2, "duty")
        after = await screen(c2)
    assert after["layout"] == before["layout"] and cams(after) == cams(before)
    assert after["version"] == before["version"]


@pytest.mark.parametrize("method, path, body, status, needle", [
    ("put", "/api/screens/main/tiles/4", {"camera": "cam-a"}, 400, "tile: tile 4 is outside the layout 2x2"),
    ("put", "/api/screens/main/tiles/x", {"camera": "cam-a"}, 400, "tile:"),
    ("put", "/api/screens/main/tiles/0", {"camera": "cam-zzz"}, 404, "unknown camera"),
    ("put", "/api/screens/main/tiles/0", {}, 400, "camera: required"),
    ("put", "/api/screens/main/tiles/0", {"camera": 5}, 400, "camera:"),
    ("put", "/api/screens/nope/tiles/0", {"camera": "cam-a"}, 404, "unknown screen"),
    ("put", "/api/screens/main/layout", {"layout": "7x7"}, 400, "layout: unknown layout"),
    ("put", "/api/screens/main/layout", {"layout": {"rows": 2, "cols": 2, "spans": [[0, 0, 3, 3]]}}, 400,
     "layout.spans[0]"),
    ("put", "/api/screens/main/layout", "[1]", 400, "body: must be a JSON object"),
    ("put", "/api/screens/main/layout", {}, 400, "layout: required"),
    ("get", "/api/screens/nope", None, 404, "unknown screen"),
    ("post", "/api/screens/main/tour/start", {"tour": "nope"}, 404, "unknown tour"),
    ("post", "/api/screens/main/tour/start", {"tour": "patrol", "dwell_s": 1}, 400, "dwell_s:"),
    ("post", "/api/screens/main/tour/start", {"tour": "patrol", "tiles": [0, 7]}, 400, "tiles[1]:"),
    ("post", "/api/screens/main/tour/pause", None, 409, "no tour on screen main"),
    ("post", "/api/plans/nope/invoke", None, 404, "unknown plan"),
    ("post", "/api/alarms/nothing-here/ack", None, 404, "unknown alarm"),
])
async def test_bad_input_named(client, method, path, body, status, needle):
    kwargs = {"data": body} if isinstance(body, str) else ({"json": body} if body is not None else {})
    resp = await getattr(client, method)(path, **kwargs)
    text = await resp.text()
    assert resp.status == status and needle in json.loads(text)["error"], text
    assert cams(await screen(client)) == CAMS[:4]


@pytest.mark.slow
async def test_tour_ticks_on_the_server_and_pauses(client):
    resp = await client.post("/api/screens/main/tour/start", json={"tour": "patrol", "tiles": [0, 1]})
    view = (await resp.json())["screen"]
    assert resp.status == 200 and cams(view)[:2] == ["cam-a", "cam-b"] and view["tour"]["dwell_s"] == 3

    async def stepped():
        v = await screen(client)
        return v if v["tour"]["step"] >= 1 else None

    v = await eventually(stepped, timeout=8, what="the tour's first step")
    assert cams(v)[:2] == ["cam-c", "cam-d"]
    assert (await client.post("/api/screens/main/tour/pause")).status == 200
    assert (await client.post("/api/screens/main/tour/pause")).status == 409
    paused = await screen(client)
    await asyncio.sleep(3.5)  # adapter test: the server's own clock must not move a paused tour
    assert (await screen(client))["tour"]["step"] == paused["tour"]["step"]
    assert (await client.post("/api/screens/main/tour/resume")).status == 200
    assert (await client.post("/api/screens/main/tour/stop")).status == 200
    assert (await screen(client))["tour"] is None


async def test_alarm_pops_up_from_the_bus_and_ack_reverts_everywhere(client, bus):
    await bus.publish(make_alarm(1, camera="cam-e"))

    async def popped():
        v = await screen(client)
        return v if v["alarm"] else None

    v = await eventually(popped, timeout=TIMEOUT, what="the alarm pop-up on main")
    assert v["tiles"][3] == {"index": 3, "camera": "cam-e", "source": "alarm", "base_camera": "cam-d"}
    assert v["alarm"]["payload"]["boxes"] == [[0.1, 0.6, 0.2, 0.8]]
    assert (await screen(client, "aux"))["alarm"] is None  # aux has no alarm tile
    resp = await client.post("/api/alarms/alarm-1/ack")
    assert resp.status == 200
    assert cams(await screen(client)) == CAMS[:4]
    actions = await bus.history("wall_actions", count=1)
    assert actions[0].data["action"] == "ack" and actions[0].data["username"] == "admin"


async def test_an_overdue_case_pops_up_from_its_own_stream_a_near_deadline_one_does_not(client, app, bus):
    service = app[SCREENS]
    await bus.publish(make_deadline_alarm(1, stage="near_deadline", camera="cam-e"))
    await eventually(lambda: service.stats.alarms_seen >= 1, timeout=TIMEOUT, what="the near-deadline alarm read")
    assert (await screen(client))["alarm"] is None
    await bus.publish(make_deadline_alarm(2, camera="cam-e"))

    async def popped():
        v = await screen(client)
        return v if v["alarm"] else None

    v = await eventually(popped, timeout=TIMEOUT, what="the overdue case's pop-up on main")
    assert v["alarm"]["alarm_id"] == make_deadline_alarm(2).alarm_id
    assert v["alarm"]["payload"]["case_no"] == "CW20260311-0002" and v["tiles"][3]["camera"] == "cam-e"


@pytest.mark.parametrize("user, status", [("duty", 403), ("monitor", 403), ("leader", 200), ("admin", 200)])
async def test_plan_needs_leader_or_admin_and_is_logged(app, bus, user, status):
    async with wall_client(app) as c:
        await login(c, user)
        resp = await c.post("/api/plans/flood/invoke")
        body = await resp.json()
        assert resp.status == status, body
        if status == 403:
            assert "leader" in body["error"]
            assert cams(await screen(c)) == CAMS[:4]
            return
        assert sorted(s["id"] for s in body["screens"]) == ["aux", "main"]
        assert cams(await screen(c)) == ["cam-e"]
        assert (await screen(c, "aux"))["layout"]["name"] == "3x3"
        audit = (await bus.history("wall_actions", count=1))[0].data
        assert (audit["username"], audit["role"], audit["action"], audit["detail"]["plan"]) == (
            user, app[state.SETTINGS].users[[u.username for u in app[state.SETTINGS].users].index(user)].role.value,
            "plan", "flood")
        assert sorted(audit["screens"]) == ["aux", "main"] and audit["at"] > 0


async def test_pages_unknown_screen_is_a_readable_404(client):
    resp = await client.get("/wall/nope")
    text = await resp.text()
    assert resp.status == 404 and "未定义" in text and "not defined" in text and "/wall/main" in text
    assert (await client.get("/wall/main")).status == 200
    assert (await client.get("/console")).status == 200
    assert (await client.get("/situation")).status == 200
    evil = await client.get("/wall/%3Cscript%3E")
    assert evil.status == 404 and "<script>" not in await evil.text()


async def test_pages_need_login(app):
    async with wall_client(app) as c:
        for path in ("/console", "/situation", "/wall/main"):
            resp = await c.get(path, allow_redirects=False)
            assert resp.status == 302 and resp.headers["Location"].startswith("/login?next="), path


async def test_map_has_grid_cells_and_camera_positions(client):
    body = await (await client.get("/api/map")).json()
    assert len(body["cells"]) >= 10 and len(body["cells"][0]["ring"]) >= 4
    assert [c["id"] for c in body["cameras"]] == CAMS and body["cameras"][0]["lon"] == 120.15


async def test_bus_outage_is_503_and_the_change_is_undone(tmp_path, store, evidence_dir):
    from broker.bus import Bus
    from broker.embedded import EmbeddedRedis

    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    try:
        bus = await Bus.connect(url, prefix="outage")
        app = create_app(wall_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
        async with wall_client(app) as c:
            await login(c)
            assert (await c.put("/api/screens/main/layout", json={"layout": "3x3"})).status == 200
            redis.stop()
            resp = await c.put("/api/screens/main/layout", json={"layout": "1"})
            assert resp.status == 503 and (await resp.json())["error"].startswith("event bus unavailable")
            view = await screen(c)
            assert view["layout"]["name"] == "3x3" and len(view["tiles"]) == 9  # what the 503 said: not changed
        await bus.close()
    finally:
        redis.stop()


async def test_saved_state_that_no_longer_fits_is_replaced_with_a_newer_version(tmp_path, bus, store, evidence_dir):
    await bus.put_state("wall_screens", "main", {"layout": "2x2", "tiles": ["cam-a", "gone", None, None],
                                                 "version": 41})
    app = make_app(tmp_path, bus, store, evidence_dir)
    async with wall_client(app) as c:
        await login(c)
        view = await screen(c)
        assert cams(view) == CAMS[:4] and view["version"] == 42
        assert app[SCREENS].stats.restore_errors == 1
    assert (await bus.get_state("wall_screens"))["main"]["version"] == 42
