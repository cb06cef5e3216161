"""Several-worker mode: a camera added, changed or disabled from a wall server's admin API (announced on the bus)
reaches two camera workers running their lease loops on a real Redis with the demo RTSP server: the new camera is
leased and opened by one of them without a restart, a disabled one is closed, and the cluster's recorded
configuration follows (a worker started later with the new configuration may join)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from admin.running import RunningConfig, settings_data
from broker.bus import Bus
from broker.leases import ClusterMismatch, LeaseKeeper
from citywall.roles import CameraWorker
from config import parse_settings
from config.fingerprint import fingerprint
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def _settings(tmp_path, redis_url, prefix, cameras):
    return parse_settings({
        "brokers": {"redis_url": redis_url, "topic_prefix": prefix},
        "storage": {"data_dir": str(tmp_path / "var")},
        "cluster": {"token": "cluster-test-token", "lease_ttl_s": 3, "lease_interval_s": 0.5},
        "users": [{"username": "admin", "role": "admin", "password_hash": "scrypt$2$1$1$00$00"}],
        "cameras": cameras,
    })


def _cam(cid, url):
    return {"id": cid, "name": cid, "url": url, "position": {"lon": 120.15, "lat": 30.27}}


async def test_two_workers_follow_a_camera_change_made_on_a_wall_server(tmp_path, redis_url, demo_rtsp):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    base = _settings(tmp_path, redis_url, prefix, [_cam("cam-1", demo_rtsp.url("quiet_street"))])
    buses = [await Bus.connect(redis_url, prefix=prefix) for _ in range(3)]
    workers = [CameraWorker(base, buses[i], name=f"w{i + 1}") for i in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        def holding(cid):
            return [w for w in workers if cid in w.cameras]

        async def held_once(cid):
            return len(holding(cid)) == 1

        await eventually(lambda: held_once("cam-1"), timeout=20, what="cam-1 leased by one worker")
        await asyncio.sleep(0.5)  # both followers tail the config stream from now on

        wall = RunningConfig(base, bus=buses[2])
        cams = [_cam("cam-1", demo_rtsp.url("quiet_street")), _cam("cam-2", demo_rtsp.url("vending"))]
        outcome = await wall.change({"cameras": cams}, actor="admin")
        assert outcome.change.cameras_added == ["cam-2"] and not outcome.errors

        await eventually(lambda: held_once("cam-2"), timeout=20, what="cam-2 leased and opened by one worker")

        async def online():
            return holding("cam-2") and holding("cam-2")[0].role.ingest.status("cam-2").state == "online"

        await eventually(online, timeout=20, what="cam-2 online on its worker")
        assert all(w.settings.camera("cam-2").url == demo_rtsp.url("vending") for w in workers)
        # A worker joining now with the new configuration is let in; one with the old site file is refused.
        joiner = LeaseKeeper(buses[2].redis, prefix=prefix, worker="w3", items=[], ttl_s=3, interval_s=0.5)
        await joiner.check_config(fingerprint(wall.settings))
        with pytest.raises(ClusterMismatch, match="cameras.cam-2"):
            await joiner.check_config(fingerprint(base))

        data = settings_data(wall.settings)["cameras"]
        data[0]["enabled"] = False
        await wall.change({"cameras": data}, actor="admin")

        async def closed():
            return not holding("cam-1")

        await eventually(closed, timeout=20, what="the disabled cam-1 closed")
        assert len(holding("cam-2")) == 1
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in buses:
            await bus.close()
