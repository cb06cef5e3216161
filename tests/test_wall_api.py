"""Wall server REST API on a real bus (Redis) and a real SQLite case store: cameras, alarms, cases, evidence,
health and the OpenAPI document (the shared builders live in tests/fixtures/wall.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from messages.camera import CameraStatus
from tests.fixtures.cases import insert_case
from tests.fixtures.factories import make_alarm, make_deadline_alarm
from tests.fixtures.wall import login, make_settings, wall_client
from wall.app import create_app
from wall.evidence import resolve_evidence


@pytest.fixture
async def client(tmp_path, bus, store, evidence_dir) -> AsyncIterator[TestClient]:
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        yield c


# ------------------------------------------------------------------------------------------------ cameras


async def test_cameras_merge_config_and_latest_status_with_urls_redacted(client, bus):
    status = CameraStatus(camera_id="cam-a", state="offline", at=1.0, reconnects=3,
                          error="cannot open rtsp://viewer:topsecret@127.0.0.1:1/a")
    await bus.put_state("cameras", "cam-a", status.to_dict())
    resp = await client.get("/api/cameras")
    assert resp.status == 200
    cams = {c["id"]: c for c in (await resp.json())["cameras"]}
    assert list(cams) == ["cam-a", "cam-b"]
    assert cams["cam-a"]["status"]["state"] == "offline" and cams["cam-a"]["status"]["reconnects"] == 3
    assert cams["cam-b"]["status"] == {"camera_id": "cam-b", "state": "unknown"}
    assert cams["cam-a"]["url"] == "rtsp://viewer:***@127.0.0.1:1/a"
    assert "topsecret" not in str(cams)
    assert cams["cam-a"]["zones"][0]["id"] == "pavement" and cams["cam-a"]["zones"][0]["polygon"][0] == [0, 0.6]
    assert cams["cam-a"]["position"]["street"] == "湖滨街道"
    assert cams["cam-a"]["live"] is False


# ------------------------------------------------------------------------------------------------ alarms


async def test_alarms_newest_first_with_ids_and_snapshot_urls(client, bus):
    ids = [await bus.publish(make_alarm(n)) for n in range(5)]
    body = await (await client.get("/api/alarms?limit=3")).json()
    got = body["alarms"]
    assert [a["id"] for a in got] == ids[::-1][:3]
    assert [a["alarm_id"] for a in got] == ["alarm-4", "alarm-3", "alarm-2"]
    assert got[0]["snapshot_url"] == "/evidence/cam-a/2026/alarm-4.jpg"
    assert got[0]["boxes"] == [[0.1, 0.6, 0.2, 0.8]]


async def test_deadline_alarms_are_their_own_page_not_in_the_alarms(client, bus):
    alarm_id = await bus.publish(make_alarm(1))
    ids = [await bus.publish(make_deadline_alarm(n)) for n in range(3)]
    body = await (await client.get("/api/case-deadlines?limit=2")).json()
    assert [d["id"] for d in body["deadlines"]] == ids[::-1][:2] and body["older"] == ids[1]
    assert body["deadlines"][0]["case_no"] == "CW20260311-0002" and body["deadlines"][0]["event"] == "case_overdue"
    older = await (await client.get(f"/api/case-deadlines?before={body['older']}")).json()
    assert [d["id"] for d in older["deadlines"]] == ids[:1] and older["older"] is None
    assert [a["id"] for a in (await (await client.get("/api/alarms")).json())["alarms"]] == [alarm_id]
    resp = await client.get("/api/case-deadlines?limit=0")
    assert resp.status == 400 and (await resp.json())["error"].startswith("limit:")


async def test_alarm_history_pages_with_a_cursor(client, bus):
    ids = [await bus.publish(make_alarm(n)) for n in range(12)]          # oldest first
    newest = ids[::-1]

    async def page(query: str) -> dict:
        resp = await client.get(f"/api/alarms?{query}")
        assert resp.status == 200, await resp.text()
        return await resp.json()

    first = await page("limit=5")
    assert [a["id"] for a in first["alarms"]] == newest[:5] and first["older"] == newest[4]
    second = await page(f"limit=5&before={first['older']}")             # 更早
    assert [a["id"] for a in second["alarms"]] == newest[5:10] and second["older"] == newest[9]
    last = await page(f"limit=5&before={second['older']}")
    assert [a["id"] for a in last["alarms"]] == newest[10:] and last["older"] is None   # no more
    # Forward from an id: the 5 just after it, newest first, and whether more newer ones exist.
    fwd = await page(f"limit=5&after={ids[2]}")
    assert [a["id"] for a in fwd["alarms"]] == ids[3:8][::-1] and fwd["more_newer"] is True
    assert fwd["newer"] == ids[7]
    end = await page(f"limit=5&after={ids[8]}")
    assert [a["id"] for a in end["alarms"]] == ids[9:][::-1] and end["more_newer"] is False
    # A time window (unix seconds of the stream ids), inclusive, and combined with a cursor.
    t = [int(i.split("-")[0]) for i in ids]
    window = await page(f"since={t[3] / 1000}&until={t[6] / 1000}&limit=100")
    assert [a["id"] for a in window["alarms"]] == [i for i, ms in zip(ids, t, strict=False) if t[3] <= ms <= t[6]][::-1]
    both = await page(f"before={ids[5]}&after={ids[1]}")
    assert [a["id"] for a in both["alarms"]] == ids[2:5][::-1]


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"), ("limit=1.5", "limit"),
    ("before=abc", "before"), ("after=1-2-3", "after"), ("before=99999999999999999999-0", "before"),
    ("since=yesterday", "since"), ("until=-5", "until"), ("since=200&until=100", "until"),
])
async def test_alarms_limit_validated(client, query, field):
    resp = await client.get(f"/api/alarms?{query}")
    assert resp.status == 400 and (await resp.json())["error"].startswith(f"{field}:")


# ------------------------------------------------------------------------------------------------ cases


async def test_cases_list_filters_pages_and_detail(client, store):
    for n in range(1, 8):
        insert_case(store, n, camera="cam-a" if n % 2 else "cam-b", state="closed" if n == 3 else "dispatched")
    body = await (await client.get("/api/cases?limit=3&offset=1")).json()
    assert body["total"] == 7 and [c["id"] for c in body["cases"]] == ["case-006", "case-005", "case-004"]
    body = await (await client.get("/api/cases?camera_id=cam-b")).json()
    assert body["total"] == 3 and {c["camera_id"] for c in body["cases"]} == {"cam-b"}
    body = await (await client.get("/api/cases?state=closed")).json()
    assert [c["id"] for c in body["cases"]] == ["case-003"]
    detail = await (await client.get("/api/cases/case-003")).json()
    assert detail["code"] == "0501" and detail["state"] == "closed"
    assert detail["evidence"] == ["cam-a/2026/case 3.jpg"]
    assert detail["evidence_urls"] == ["/evidence/cam-a/2026/case%203.jpg"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"), ("limit=9999", "limit"), ("limit=x", "limit"),
        ("offset=-1", "offset"), ("offset=y", "offset"),
        ("state=lost", "state"), ("state=DROP%20TABLE", "state"),
        ("camera_id=a%20b", "camera_id"),
    ],
)
async def test_cases_query_validated_naming_the_field(client, query, field):
    resp = await client.get(f"/api/cases?{query}")
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(f"{field}: ")


async def test_unknown_case_is_404_json(client):
    resp = await client.get("/api/cases/case-999")
    assert resp.status == 404
    assert "case-999" in (await resp.json())["error"]
    resp = await client.get("/api/cases/" + "x" * 200)
    assert resp.status == 400 and (await resp.json())["error"].startswith("id: ")


async def test_unknown_api_route_and_method_are_json(client):
    resp = await client.get("/api/nothing")
    assert resp.status == 404 and "error" in await resp.json()
    resp = await client.delete("/api/cameras")
    assert resp.status == 405 and "DELETE" in (await resp.json())["error"]


# ------------------------------------------------------------------------------------------------ evidence


async def test_evidence_served_and_traversal_refused(client, tmp_path, evidence_dir):
    (evidence_dir / "cam-a").mkdir()
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(2000)
    (evidence_dir / "cam-a" / "a b.jpg").write_bytes(jpeg)
    (evidence_dir / "notes.txt").write_text("not evidence")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"outside")
    (evidence_dir / "link.jpg").symlink_to(secret)

    resp = await client.get("/evidence/cam-a/a%20b.jpg")
    assert resp.status == 200 and await resp.read() == jpeg
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert "max-age" in resp.headers["Cache-Control"]

    for path in ["/evidence/%2e%2e/secret.jpg", "/evidence/cam-a/%2e%2e/%2e%2e/secret.jpg", "/evidence/link.jpg",
                 "/evidence/notes.txt", "/evidence/cam-a/missing.jpg", "/evidence/%2Fetc%2Fpasswd",
                 "/evidence/cam-a%5C..%5C..%5Csecret.jpg", "/evidence/"]:
        resp = await client.get(URL(path, encoded=True))
        assert resp.status == 404, path
        assert "error" in await resp.json()


def test_resolve_evidence_rules(tmp_path):
    root = tmp_path / "ev"
    (root / "x").mkdir(parents=True)
    (root / "x" / "a.PNG").write_bytes(b"png")
    (tmp_path / "out.jpg").write_bytes(b"out")
    (root / "x" / "up").symlink_to(tmp_path)
    assert resolve_evidence(root, "x/a.PNG") == (root / "x" / "a.PNG").resolve()
    for bad in ["../out.jpg", "/etc/x.jpg", "x/../../out.jpg", "x/up/out.jpg", "x\\a.PNG", "x/a.PNG\x00.jpg",
                "", "x", "./x/a.PNG"]:
        assert resolve_evidence(root, bad) is None, bad


async def test_evidence_needs_login(tmp_path, bus, store, evidence_dir):
    (evidence_dir / "a.jpg").write_bytes(b"\xff\xd8")
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as anon:
        resp = await anon.get("/evidence/a.jpg")
        assert resp.status == 401


# ------------------------------------------------------------------------------------------------ health, openapi


async def test_health_without_login_reports_checks_and_hub(tmp_path, bus, store, evidence_dir):
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as anon:
        resp = await anon.get("/api/health")
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ok"
        assert body["checks"]["bus"]["ok"] and body["checks"]["cases"]["ok"]
        assert body["hub"]["clients"] == 0 and body["hub"]["dropped_clients"] == 0
        assert body["live"]["available"] is False
        store.close()  # a broken dependency shows as degraded with a 503, naming the failing check
        resp = await anon.get("/api/health")
        body = await resp.json()
        assert resp.status == 503 and body["status"] == "degraded"
        assert body["checks"]["bus"]["ok"] and not body["checks"]["cases"]["ok"]
        assert "closed" in body["checks"]["cases"]["error"]


async def test_openapi_describes_every_api_route(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    registered = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if path and (path.startswith("/api/") or path.startswith("/evidence/")) and route.method != "HEAD":
            registered.add((path, route.method.lower()))
    assert len(registered) >= 11
    for path, method in registered:
        assert method in doc["paths"].get(path, {}), f"{method.upper()} {path} missing from openapi.json"
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert described == registered, f"described but not routed: {described - registered}"
    # Every $ref resolves.
    text = str(doc)
    for name in doc["components"]["schemas"]:
        assert name in text
    import re
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in doc["components"]["schemas"], ref


async def test_bus_outage_is_503_json_not_a_crash(tmp_path, store, evidence_dir):
    from broker.bus import Bus
    from broker.embedded import EmbeddedRedis

    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    try:
        bus = await Bus.connect(url, prefix="outage")
        app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
        async with wall_client(app) as c:
            assert (await login(c)).status == 200
            assert (await c.get("/api/cameras")).status == 200
            redis.stop()
            resp = await c.get("/api/health")
            body = await resp.json()
            assert resp.status == 503 and body["status"] == "degraded"
            assert not body["checks"]["bus"]["ok"] and body["checks"]["cases"]["ok"]
            for path in ("/api/cameras", "/api/alarms"):
                resp = await c.get(path)
                assert resp.status == 503, path
                assert (await resp.json())["error"].startswith("event bus unavailable")
            assert (await c.get("/api/cases")).status == 200  # the case store does not depend on the bus
        await bus.close()
    finally:
        redis.stop()
