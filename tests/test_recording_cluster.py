"""Recording in several-worker mode: two camera workers (their real lease loops on a real Redis, the demo RTSP
server) record the cameras they hold into one recording directory and one case store's index; when a worker stops,
the other takes its camera over, repairs that camera's index and records on; a wall server without cameras serves
the timeline and an export from the shared directory — and none where the directory cannot be read."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from broker.bus import Bus
from cases.store import CaseStore
from citywall.roles import CameraWorker
from config import parse_settings
from recording.service import build_library
from tests import signin
from tests.fixtures.wall import PASSWORD, PASSWORD_HASH, wall_client
from tests.test_recording import decode
from tests.waiting import eventually
from wall.app import create_app

pytestmark = pytest.mark.timeout(180)
SCENES = {"cam-1": "vending", "cam-2": "bin_overflow"}


def _settings(tmp_path, redis_url, prefix, demo_rtsp, data_dir=None):
    return parse_settings({
        "brokers": {"redis_url": redis_url, "topic_prefix": prefix},
        "storage": {"data_dir": str(data_dir or tmp_path / "var"), "cases_url": f"sqlite:///{tmp_path}/cases.db"},
        "cluster": {"token": "cluster-test-token", "lease_ttl_s": 3, "lease_interval_s": 0.5},
        "users": [{"username": "monitor", "role": "monitor", "password_hash": PASSWORD_HASH}],
        "cameras": [{"id": cid, "name": cid, "url": demo_rtsp.url(scene), "position": {"lon": 120.15, "lat": 30.27}}
                    for cid, scene in SCENES.items()],
        "recording": {"mode": "continuous", "segment_s": 2},
    })


async def test_workers_record_the_cameras_they_hold_and_a_wall_server_plays_them(
        tmp_path, redis_url, demo_rtsp, evidence_dir):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = _settings(tmp_path, redis_url, prefix, demo_rtsp)
    url = settings.storage.resolved_cases_url()
    stores = [CaseStore.open(url) for _ in range(3)]
    buses = [await Bus.connect(redis_url, prefix=prefix) for _ in range(3)]
    workers = [CameraWorker(settings, buses[i], name=f"w{i + 1}", store=stores[i]) for i in range(2)]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(w.run(s)) for w, s in zip(workers, stops, strict=True)]
    library = build_library(settings, stores[2])
    assert library is not None
    try:
        def holder(cid):
            held = [w for w in workers if cid in w.cameras]
            return held[0] if len(held) == 1 else None

        async def recorded(cid, since, seconds):
            rows = await asyncio.to_thread(library.index.segments, cid, since, time.time() + 60)
            return sum(r.end_at - r.start_at for r in rows if r.complete and r.start_at >= since) >= seconds

        began = time.time()
        for cid in SCENES:
            await eventually(lambda cid=cid: recorded(cid, began - 1, 4.0), timeout=60, what=f"{cid} recorded")
        first = holder("cam-1")
        assert first is not None and first.recording is not None
        assert "cam-1" in first.recording.recorders and all(
            "cam-1" not in w.recording.recorders for w in workers if w is not first)

        # the holder of cam-1 stops: the other takes it over within the lease TTL and records it on
        stops[workers.index(first)].set()
        await tasks[workers.index(first)]
        other = workers[1 - workers.index(first)]
        handed = time.time()

        async def taken():
            return "cam-1" in other.cameras
        await eventually(taken, timeout=30, what="cam-1 taken over")
        await eventually(lambda: recorded("cam-1", handed, 4.0), timeout=60, what="cam-1 recorded after the handover")
        assert "cam-1" in other.recording.recorders
        # The new holder's recording starts at the first keyframe of its connection, a lease round or so after the
        # old holder let go (measured from the old holder's exit, which may be quicker than that).
        rows = await asyncio.to_thread(library.index.segments, "cam-1", handed, time.time() + 60)
        resumed = min(r.start_at for r in rows if r.complete and r.start_at >= handed)
        assert resumed - handed < 5.0, f"cam-1's recording resumed {resumed - handed:.1f} s after the handover"

        # a wall server without cameras serves both workers' recordings from the shared directory
        app = create_app(settings, bus=buses[2], cases=stores[2], live=None, evidence_dir=evidence_dir,
                         recordings=library)
        async with wall_client(app) as client:
            assert (await signin.login(client, "monitor", PASSWORD)).status == 200
            body = await (await client.get("/api/recordings/cam-1", params={"since": f"{began - 5}"})).json()
            assert body["spans"][0][0] <= handed - 3 and body["spans"][-1][1] >= handed + 3, body
            resp = await client.get("/api/recordings/cam-1/export",
                                    params={"since": f"{resumed + 0.5}", "until": f"{resumed + 3.5}"})
            assert resp.status == 200, await resp.text()
            frames, duration = decode(await resp.read())
            assert frames >= 50 and duration >= 2.9
    finally:
        for s in stops:
            s.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in buses:
            await bus.close()
        for store in stores:
            store.close()
    # where the directory cannot be used, the wall server serves no recordings (503), and says so
    (tmp_path / "elsewhere").write_text("a file where the data directory should be")
    assert build_library(_settings(tmp_path, redis_url, prefix, demo_rtsp, data_dir=tmp_path / "elsewhere"),
                         stores[2]) is None
