"""The wall's voice-guidance API on real Redis + Mosquitto with simulated speakers: roles (only leader/admin may
broadcast), 400/404/429 naming what was wrong, offline speakers reported, uploads validated by decoding, clip files
read-only, and every attempt — refused ones too — in the broadcast log."""

from __future__ import annotations

import asyncio

from cases.store import CaseStore
from tests.fixtures.factories import raised
from tests.fixtures.guidance import login_demo, sine_wav
from tests.fixtures.wall import wall_client
from tests.waiting import eventually
from wall.app import create_app
from wall.limits import RedisLimiter


async def test_only_leader_and_admin_may_broadcast_and_refusals_are_logged(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    for user in ("duty", "monitor"):
        await login_demo(client, user)
        resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "text": "请离开"})
        assert resp.status == 403, user
        assert "needs admin, leader" in (await resp.json())["error"]
    assert not sims["spk-vending"].played
    await login_demo(client, "leader")
    resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "text": "请立即离开人行道。"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["broadcast"]["status"] == "played" and body["not_played"] == []
    assert body["broadcast"]["results"][0]["acked"] is True
    assert body["broadcast"]["hall_url"].startswith("/clips/") and body["broadcast"]["hall_url"].endswith(".opus")
    played = sims["spk-vending"].played[-1]
    assert played.command["text"] == "请立即离开人行道。" and played.command["priority"] == 30
    assert played.info is not None and played.info.rms_dbfs > -35 and played.info.duration_s > 1
    hall = await client.get(body["broadcast"]["hall_url"])
    assert hall.status == 200 and hall.headers["Content-Type"] == "audio/ogg"

    log = (await (await client.get("/api/broadcasts")).json())["broadcasts"]
    assert [(b["requested_by"], b["status"]) for b in log] == [("leader", "played"), ("monitor", "refused"),
                                                                ("duty", "refused")]
    assert "role watch_officer may not 人工广播 manual broadcast" in log[2]["reason"]


async def test_an_emergency_plan_speaks_at_its_sites(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    await login_demo(client, "leader")
    resp = await client.post("/api/plans/flood/invoke")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert {s["id"] for s in body["screens"]} == {"main", "aux"}
    assert [(b["target"], b["status"]) for b in body["broadcasts"]] == [("all", "played")]
    for sim in sims.values():
        assert sim.played[-1].command["text"].startswith("防汛应急预案已启动") and sim.played[-1].info.duration_s > 2
    log = (await (await client.get("/api/broadcasts")).json())["broadcasts"]
    assert log[0]["requested_by"] == "leader (预案 防汛应急)" and log[0]["status"] == "played"


async def test_bad_requests_name_what_was_wrong(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    await login_demo(client, "admin")
    cases = [
        ({"target": "spk-vending", "text": "长" * 201}, 400, "over the limit of max_text_chars=200"),
        ({"target": "spk-nowhere", "text": "你好"}, 404, "unknown speaker 'spk-nowhere'"),
        ({"target": "group:nope", "text": "你好"}, 404, "unknown group 'nope'"),
        ({"text": "你好"}, 400, "target: required"),
        ({"target": "all"}, 400, "text: required"),
        ({"target": "all", "text": "你好", "repeat": 9}, 400, "repeat"),
        ({"target": "all", "clip_id": "0" * 32}, 404, "unknown clip"),
    ]
    for payload, status, message in cases:
        resp = await client.post("/api/broadcasts", json=payload)
        assert resp.status == status, (payload, await resp.text())
        assert message in (await resp.json())["error"], payload
    resp = await client.post("/api/broadcasts", data=b"not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert not sims["spk-vending"].played and not sims["spk-road"].played
    assert len((await (await client.get("/api/broadcasts")).json())["broadcasts"]) == len(cases)


async def test_offline_speaker_is_reported_not_dropped(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    await asyncio.to_thread(sims["spk-road"].stop)
    await login_demo(client, "leader")

    async def road_offline():
        speakers = (await (await client.get("/api/speakers")).json())["speakers"]
        return {s["id"]: s["online"] for s in speakers}.get("spk-road") is False

    await eventually(road_offline, what="spk-road shown offline")
    resp = await client.post("/api/broadcasts", json={"target": "group:all-street", "text": "注意安全。"})
    body = await resp.json()
    assert resp.status == 200 and body["not_played"] == ["spk-road"]
    assert body["broadcast"]["status"] == "partial"
    rows = {r["speaker_id"]: r for r in body["broadcast"]["results"]}
    assert rows["spk-road"]["outcome"] == "failed" and rows["spk-road"]["reason"] == "offline"
    assert rows["spk-vending"]["acked"] is True
    await asyncio.to_thread(sims["spk-road"].start)  # the fixture stops it


async def test_rate_limit_per_user(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    await login_demo(client, "leader")
    for i in range(4):
        resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "text": f"第{i}次提醒。"})
        assert resp.status == 200
    resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "text": "再一次。"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert "at most 4 manual broadcasts per minute" in (await resp.json())["error"]
    await login_demo(client, "admin")  # another user is not limited by the leader's count
    assert (await client.post("/api/broadcasts", json={"target": "spk-vending", "text": "管理员。"})).status == 200


async def test_manual_preempts_an_automatic_warning(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    auto = await runtime.broadcaster.for_alarm(raised())
    assert auto is not None and auto.status == "played"
    await login_demo(client, "leader")
    resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "text": "指挥中心通知。"})
    assert (await resp.json())["broadcast"]["status"] == "played"  # not refused as "busy"
    # a second automatic warning while the manual one plays is refused as busy
    again = await runtime.broadcaster.for_alarm(raised())
    assert again.status == "refused" and "busy" in again.results[0]["reason"]


async def test_upload_is_validated_by_decoding_and_can_be_broadcast(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    await login_demo(client, "duty")
    assert (await client.post("/api/clips", data=sine_wav())).status == 403
    await login_demo(client, "leader")
    resp = await client.post("/api/clips", data=b"%PDF-1.4 this is not audio" * 20)
    assert resp.status == 400 and "not an audio file" in (await resp.json())["error"]
    resp = await client.post("/api/clips", data=b"\0" * 500_000)
    assert resp.status == 413 and "max_upload_bytes=400000" in (await resp.json())["error"]
    resp = await client.post("/api/clips", data=sine_wav(1.5))
    assert resp.status == 201, await resp.text()
    clip = await resp.json()
    assert abs(clip["duration_s"] - 1.5) < 0.05 and len(clip["clip_id"]) == 32
    resp = await client.post("/api/broadcasts", json={"target": "spk-vending", "clip_id": clip["clip_id"]})
    body = await resp.json()
    assert resp.status == 200 and body["broadcast"]["status"] == "played", body
    played = sims["spk-vending"].played[-1]
    assert played.info is not None and abs(played.info.duration_s - 1.5) < 0.15 and played.info.rms_dbfs > -20


async def test_clip_files_are_read_only_and_confined(broadcast_api) -> None:
    client, runtime, sims = broadcast_api
    for path in ("/clips/..%2F..%2Fetc%2Fpasswd", "/clips/.hidden.mp3", "/clips/abc.mp3",
                 "/clips/" + "0" * 32 + ".mp3"):
        assert (await client.get(path)).status == 404, path
    name = next(p.name for p in runtime.cache.directory.glob("*.mp3"))
    resp = await client.get(f"/clips/{name}")
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/mpeg"
    assert (await client.post(f"/clips/{name}", data=b"x")).status in (403, 405)


async def test_the_broadcast_limit_holds_across_wall_servers_sharing_redis(broadcast_api, bus, tmp_path) -> None:
    """Two wall servers on one Redis (the cluster's RedisLimiter): the leader's four broadcasts a minute are four in
    all, not four per server; uploads likewise."""
    client, runtime, sims = broadcast_api
    settings = runtime.settings
    store = CaseStore.open(f"sqlite:///{tmp_path}/two.sqlite")
    apps = [create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path / "evidence",
                       guidance=runtime, limiter=RedisLimiter(bus.redis, bus.prefix)) for _ in range(2)]
    try:
        async with wall_client(apps[0]) as a, wall_client(apps[1]) as b:
            for c in (a, b):
                await login_demo(c, "leader")
            statuses = [(await c.post("/api/broadcasts", json={"target": "spk-vending", "text": f"第{i}次。"})).status
                        for i, c in enumerate((a, b, a, b, a, b))]
            assert statuses == [200, 200, 200, 200, 429, 429]
            uploads = [(await c.post("/api/clips", data=b"not audio")).status for c in (a, b, a, b)]
            assert uploads.count(429) == 4 - settings.guidance.manual.uploads_per_user_per_minute, uploads
    finally:
        store.close()
