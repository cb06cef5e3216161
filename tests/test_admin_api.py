"""The admin API on a real wall server (real Redis bus, real SQLite case store, the demo RTSP server): cameras
added, edited, disabled and deleted without a restart; an invalid change refused naming the field and changing
nothing; users created, disabled (their open wall socket closes at once), reset, and changing their own password;
the YAML export/import; 测试连接 against a real RTSP server and bad URLs; the audit entry with the diff."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from admin.running import OVERLAY_NAME, ConfigChanged, load_running
from cases.audit import AuditQuery
from tests import signin
from tests.fixtures.wall import PASSWORD, make_settings, wall_client
from tests.waiting import eventually
from wall import state
from wall.app import create_app
from wall.review_api import REVIEW
from wall.screens_api import SCREENS

pytestmark = pytest.mark.timeout(120)
NEW_PASSWORD = "风雨桥-East-7"


@pytest.fixture
async def setup(tmp_path, bus, store, evidence_dir):  # noqa: F811
    settings = make_settings(tmp_path)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as admin:
        assert (await signin.login(admin, "admin", PASSWORD)).status == 200
        yield app, admin, settings


async def _ids(client) -> list[str]:
    return [c["id"] for c in (await (await client.get("/api/cameras")).json())["cameras"]]


async def test_add_edit_disable_delete_a_camera_without_restart(setup, tmp_path, store):  # noqa: F811
    app, admin, _ = setup
    cam = {"id": "cam-c", "name": "新摄像机", "url": "rtsp://viewer:pw123@127.0.0.1:2/c",
           "position": {"lon": 120.17, "lat": 30.28}}
    resp = await admin.post("/api/admin/cameras", json=cam)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["applied"]["cameras_added"] == ["cam-c"]
    assert {"path": "cameras[cam-c].url", "new": "rtsp://viewer:***@127.0.0.1:2/c"} in body["diff"]
    assert await _ids(admin) == ["cam-a", "cam-b", "cam-c"]
    assert "cam-c" in app[REVIEW].filer.cameras  # a confirmed alarm of it is filed with its position
    assert "cam-c" in app[SCREENS].wall.cameras  # the wall may show it
    # the admin list shows URLs masked; sending one back unchanged keeps the stored password
    shown = {c["id"]: c for c in (await (await admin.get("/api/admin/cameras")).json())["cameras"]}["cam-c"]
    assert shown["url"] == "rtsp://viewer:***@127.0.0.1:2/c"
    resp = await admin.put("/api/admin/cameras/cam-c", json={**shown, "name": "改名"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["applied"]["cameras_reanalysed"] == ["cam-c"]
    assert load_running(make_settings(tmp_path)).camera("cam-c").url == cam["url"]  # persisted, password kept
    resp = await admin.patch("/api/admin/cameras/cam-c", json={"enabled": False})
    assert (await resp.json())["applied"]["cameras_removed"] == ["cam-c"]
    resp = await admin.delete("/api/admin/cameras/cam-c")
    assert resp.status == 200 and await _ids(admin) == ["cam-a", "cam-b"]
    entries, _ = await asyncio.to_thread(store.search_audit, AuditQuery(action="camera.add"))
    assert entries and entries[0].details["diff"] and "pw123" not in str(entries[0].details)


async def test_an_invalid_change_is_refused_naming_the_field_and_changes_nothing(setup, tmp_path):
    _, admin, settings = setup
    bad = {"id": "cam-c", "name": "坏", "url": "http://127.0.0.1/c", "position": {"lon": 500, "lat": 30}}
    resp = await admin.post("/api/admin/cameras", json=bad)
    assert resp.status == 400
    body = await resp.json()
    paths = [p["path"] for p in body["problems"]]
    assert "cameras[2].url" in paths and "cameras[2].position.lon" in paths, body
    zone = {"id": "z", "events": ["vending"], "polygon": [[0, 0], [2, 0], [1, 1]]}
    resp = await admin.patch("/api/admin/cameras/cam-b", json={"zones": [zone]})
    assert resp.status == 400 and (await resp.json())["problems"][0]["path"] == "cameras[1].zones[0].polygon"
    assert await _ids(admin) == ["cam-a", "cam-b"]
    assert not (settings.storage.data_dir / OVERLAY_NAME).exists()
    resp = await admin.put("/api/admin/cameras/cam-b", json={"id": "other"})
    assert resp.status == 400 and "id" in (await resp.json())["error"]


async def test_a_disabled_user_s_open_wall_socket_closes_at_once(setup):
    _, admin, _ = setup
    async with aiohttp.ClientSession(base_url=str(admin.make_url("/")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as duty:
        assert (await signin.login(duty, "duty", PASSWORD)).status == 200
        async with duty.ws_connect("/api/ws") as ws:
            hello = await ws.receive_json(timeout=10)
            assert hello["type"] == "hello"
            resp = await admin.put("/api/admin/users/duty", json={"enabled": False})
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["applied"]["users_ended"] == ["duty"]
            while True:  # frames already queued may come first; the close follows at once, not after a sweep
                msg = await ws.receive(timeout=2)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
            assert ws.close_code == 4401
        assert (await duty.get("/api/me")).status == 401
        assert (await signin.login(duty, "duty", PASSWORD)).status == 401  # disabled: cannot log in again
        resp = await admin.put("/api/admin/users/duty", json={"enabled": True, "password": NEW_PASSWORD})
        assert resp.status == 200
        assert (await signin.login(duty, "duty", NEW_PASSWORD)).status == 200


async def test_users_created_with_password_rules_and_own_password_change(setup):
    _, admin, _ = setup
    user = {"username": "zhang", "display_name": "张三", "role": "monitor", "units": []}
    resp = await admin.post("/api/admin/users", json={**user, "password": "zhang12345"})
    assert resp.status == 400 and "用户名" in (await resp.json())["error"]
    resp = await admin.post("/api/admin/users", json={**user, "password": "short"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("password:")
    resp = await admin.post("/api/admin/users", json={**user, "role": "boss", "password": NEW_PASSWORD})
    assert resp.status == 400 and (await resp.json())["problems"][0]["path"] == "users[2].role"
    resp = await admin.post("/api/admin/users", json={**user, "password": NEW_PASSWORD})
    assert resp.status == 200, await resp.text()
    listed = {u["username"]: u for u in (await (await admin.get("/api/admin/users")).json())["users"]}
    assert listed["zhang"] == {**user, "enabled": True}
    async with aiohttp.ClientSession(base_url=str(admin.make_url("/")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as zhang:
        assert (await signin.login(zhang, "zhang", NEW_PASSWORD)).status == 200
        assert (await zhang.get("/api/admin/users")).status == 403
        resp = await zhang.post("/api/me/password",
                                json={"old_password": "wrong-one-x", "new_password": "另一个-新密码-99"})
        assert resp.status == 403
        resp = await zhang.post("/api/me/password",
                                json={"old_password": NEW_PASSWORD, "new_password": "另一个-新密码-99"})
        assert resp.status == 200, await resp.text()
        assert (await zhang.get("/api/me")).status == 401  # a changed password ends the old sessions
        assert (await signin.login(zhang, "zhang", "另一个-新密码-99")).status == 200
    resp = await admin.put("/api/admin/users/admin", json={"role": "monitor"})
    assert resp.status == 400 and "管理员" in (await resp.json())["error"]


async def test_yaml_export_import_preview_then_apply(setup):
    _, admin, _ = setup
    resp = await admin.get("/api/admin/config")
    assert resp.status == 200 and resp.content_type == "application/yaml"
    text = await resp.text()
    assert "cam-a" in text
    resp = await admin.post("/api/admin/config/import", json={"yaml": text})
    body = await resp.json()
    assert body["diff"] == [] and body["applied"] is False
    edited = text.replace("name: 延安路垃圾箱", "name: 延安路垃圾箱二号")
    body = await (await admin.post("/api/admin/config/import", json={"yaml": edited})).json()
    assert body["diff"] == [{"path": "cameras[cam-b].name", "old": "延安路垃圾箱", "new": "延安路垃圾箱二号"}]
    assert (await _ids(admin)) == ["cam-a", "cam-b"]
    names = [c["name"] for c in (await (await admin.get("/api/cameras")).json())["cameras"]]
    assert names[1] == "延安路垃圾箱"  # only previewed
    body = await (await admin.post("/api/admin/config/import", json={"yaml": edited, "apply": True})).json()
    assert body["applied"] is True
    names = [c["name"] for c in (await (await admin.get("/api/cameras")).json())["cameras"]]
    assert names[1] == "延安路垃圾箱二号"
    resp = await admin.post("/api/admin/config/import", json={"yaml": "cameras: [\n"})
    assert resp.status == 400 and (await resp.json())["problems"][0]["path"].startswith("line ")


async def test_a_change_is_announced_on_the_bus_and_another_wall_server_adopts_it(setup, bus, store,  # noqa: F811
                                                                                  evidence_dir, tmp_path):  # noqa: F811
    _, admin, _ = setup
    other = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(other) as second:
        assert (await signin.login(second, "admin", PASSWORD)).status == 200
        await asyncio.sleep(0.3)  # the second server's follower starts at the stream's end
        cam = {"id": "cam-c", "name": "新", "url": "rtsp://127.0.0.1:2/c", "position": {"lon": 120, "lat": 30}}
        assert (await admin.post("/api/admin/cameras", json=cam)).status == 200
        entries = await bus.history(ConfigChanged.STREAM)
        assert entries and entries[-1].data["overlay"]["cameras"][-1]["id"] == "cam-c"

        async def adopted():
            return "cam-c" in await _ids(second)

        await eventually(adopted, timeout=10, what="the second wall server to list cam-c")


async def test_connection_test_reports_stream_facts_or_the_exact_error(setup, demo_rtsp):
    app, admin, _ = setup
    resp = await admin.post("/api/admin/cameras/test", json={"url": demo_rtsp.url("mat_vendor")})
    body = await resp.json()
    assert body["ok"] and body["codec"] == "h264" and (body["width"], body["height"]) == (1280, 720)
    assert body["transport"] == "tcp" and 20 <= body["fps"] <= 30
    assert body["snapshot_jpeg"].startswith("data:image/jpeg;base64,")
    body = await (await admin.post("/api/admin/cameras/test", json={"url": demo_rtsp.url("no_such_scene")})).json()
    assert not body["ok"] and body["kind"] == "not_found" and "404" in body["error"]
    body = await (await admin.post("/api/admin/cameras/test", json={"url": "rtsp://u:secret@127.0.0.1:1/x"})).json()
    assert body["kind"] == "refused" and "连接被拒绝" in body["error"] and "secret" not in str(body)
    body = await (await admin.post("/api/admin/cameras/test", json={"url": "rtsp://h/a b"})).json()
    assert body["kind"] == "bad_url" and "space" in body["error"]
    resp = await admin.post("/api/admin/cameras/test", json={"url": "demo://vending"})
    assert resp.status == 400 and "citywall up" in (await resp.json())["error"]
    # Under citywall up demo:// is the private RTSP server (RunningConfig.stream_url), so demo cameras test too.
    app[state.RUNNING].stream_url = lambda url: demo_rtsp.url(url.removeprefix("demo://"))
    body = await (await admin.post("/api/admin/cameras/test", json={"url": "demo://vending"})).json()
    assert body["ok"] and body["codec"] == "h264", body
