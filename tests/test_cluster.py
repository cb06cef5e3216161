"""Several processes on loopback: two camera workers, a wall server and a case worker sharing one real Redis.

Twelve cameras (three per demo scene, from the real RTSP server) are split 6/6 by leases; a browser-side live
socket opened on the wall server is proxied to whichever worker holds the camera; a worker killed with SIGKILL loses
its cameras to the other within the lease TTL plus a round; a new worker takes a fair share; every alarm raised
ends in exactly one case (count in = count out).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml

from cases.store import CaseStore
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
SCENES = {"vending": "cam-vending", "bin_overflow": "cam-bin", "road_occupation": "cam-road",
          "quiet_street": "cam-street"}
TTL = 3.0
TOKEN = "cluster-test-token"

pytestmark = pytest.mark.timeout(240)


def _config(tmp: Path, redis_url: str, demo_rtsp, prefix: str) -> Path:
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in demo["cameras"]}
    cameras = []
    for scene, template in SCENES.items():
        for n in range(3):
            cam = dict(by_id[template])
            cam.update(id=f"{template}-{n}", name=f"{cam['name']}{n}", url=demo_rtsp.url(scene))
            cameras.append(cam)
    data = {
        "site_name": demo["site_name"],
        "timezone": demo["timezone"],
        "brokers": {"redis_url": redis_url, "topic_prefix": prefix},
        "storage": {"data_dir": str(tmp / "var")},
        "cluster": {"token": TOKEN, "lease_ttl_s": TTL, "lease_interval_s": 0.5},
        "users": demo["users"],
        "cameras": cameras,
    }
    path = tmp / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Proc:
    def __init__(self, tmp: Path, config: Path, *args: str) -> None:
        self.log = tmp / f"{'-'.join(args)}.log"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "citywall.cli", *args, "--config", str(config)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.log, "wb"), text=True)

    def first_line(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.popen.stdout.readline()
            if line:
                return line
            if self.popen.poll() is not None:
                break
        raise AssertionError(f"no banner from {self.log.name}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@pytest.fixture
def cluster(tmp_path, redis_url, demo_rtsp):
    prefix = f"c{uuid.uuid4().hex[:10]}"
    config = _config(tmp_path, redis_url, demo_rtsp, prefix)
    procs: list[Proc] = []

    def start(*args: str) -> Proc:
        proc = Proc(tmp_path, config, *args)
        procs.append(proc)
        return proc

    yield {"start": start, "prefix": prefix, "config": config, "tmp": tmp_path}
    for proc in procs:
        proc.stop()


async def _holders(client: aioredis.Redis, prefix: str) -> dict[str, str]:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:lease:*")]
    values = await client.mget(keys) if keys else []
    return {k.rsplit(":", 1)[1]: v for k, v in zip(keys, values) if v}


async def _live_fragment(session: aiohttp.ClientSession, url: str, camera: str) -> tuple[str, int]:
    """Open the wall's live socket for ``camera``: (mime, bytes of the first fragment after the init segment)."""
    async with session.ws_connect(f"{url}/api/live/{camera}") as ws:
        head = await ws.receive_json(timeout=20)
        assert head.get("type") == "init", head
        init = await ws.receive(timeout=20)
        assert init.type == aiohttp.WSMsgType.BINARY and init.data[4:8] == b"ftyp"
        frag = await ws.receive(timeout=20)
        assert frag.type == aiohttp.WSMsgType.BINARY and frag.data[4:8] == b"moof", frag
        return head["mime"], len(frag.data)


async def test_workers_share_cameras_fail_over_and_every_alarm_becomes_one_case(cluster, redis_url):
    start, prefix = cluster["start"], cluster["prefix"]
    w1 = start("worker", "--name", "w1")
    w2 = start("worker", "--name", "w2")
    assert "joined" in w1.first_line() and "joined" in w2.first_line()
    wall = start("wall", "--port", "0")
    url = re.search(r"(http://\S+)/wall", wall.first_line()).group(1)
    cases = start("cases", "--name", "cases-test")
    assert "consuming alarms" in cases.first_line()

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async def split(expected: dict[str, int]):
            holders = await _holders(client, prefix)
            counts = {w: list(holders.values()).count(w) for w in expected}
            return holders if counts == expected and len(holders) == 12 else None

        holders = await eventually(lambda: split({"w1": 6, "w2": 6}), timeout=30, what="a 6/6 split")

        async def all_online():
            states = await client.hgetall(f"{prefix}:state:cameras")
            rows = [json.loads(v) for v in states.values()]
            return len(rows) == 12 and all(r["state"] == "online" for r in rows)

        await eventually(all_online, timeout=40, what="all 12 cameras online")

        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            resp = await session.post(f"{url}/api/login", json={"username": "admin", "password": "citywall"})
            assert resp.status == 200
            on_w1 = sorted(c for c, w in holders.items() if w == "w1")
            mime, size = await _live_fragment(session, url, on_w1[0])
            assert mime.startswith("video/mp4") and size > 0

            # SIGKILL w1: no clean leave, its heartbeat and leases just stop being renewed.
            w1.popen.send_signal(signal.SIGKILL)
            w1.popen.wait()
            t0 = time.monotonic()
            await eventually(lambda: split({"w2": 12}), timeout=20, what="w2 holding all 12")
            moved_s = time.monotonic() - t0
            assert moved_s <= 10.0, f"cameras took {moved_s:.1f} s to move"
            print(f"\ncameras of a killed worker moved in {moved_s:.1f} s (lease TTL {TTL} s)")

            async def served_again():
                try:
                    return await _live_fragment(session, url, on_w1[0])
                except (AssertionError, asyncio.TimeoutError, aiohttp.ClientError):
                    return None

            await eventually(served_again, timeout=30, what=f"live video of {on_w1[0]} from w2")

            w3 = start("worker", "--name", "w3")
            assert "joined" in w3.first_line()
            await eventually(lambda: split({"w2": 6, "w3": 6}), timeout=30, what="w3 taking a fair share")

            # Count in = count out: every raised alarm ends in exactly one case.
            async def raised_alarms():
                entries = await client.xrange(f"{prefix}:alarms")
                ids = {json.loads(f["data"])["alarm_id"] for _, f in entries if json.loads(f["data"])["phase"] == "raised"}
                return ids if len(ids) >= 3 else None

            raised = await eventually(raised_alarms, timeout=90, what="three raised alarms")
            store = CaseStore.open(f"sqlite:///{cluster['tmp'] / 'var' / 'cases.sqlite'}")
            try:
                async def all_filed():
                    with store.transaction() as tx:
                        missing = [a for a in raised if tx.case_for_alarm(a) is None]
                    return not missing or None

                await eventually(all_filed, timeout=20, what="a case for every raised alarm")
            finally:
                store.close()
    finally:
        await client.aclose()
    for proc in (w2, wall, cases):
        proc.stop()
        assert proc.popen.returncode == 0, proc.log.read_text()[-2000:]
    assert w1.popen.returncode == -signal.SIGKILL


async def test_a_worker_with_a_different_configuration_is_refused(cluster, tmp_path):
    start, config = cluster["start"], cluster["config"]
    w1 = start("worker", "--name", "w1")
    assert "joined" in w1.first_line()
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["cameras"][0]["name"] = "改过的名字"
    data["detection"] = {"interval_s": 2.0}
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "citywall.cli", "worker", "--config", str(other), "--name", "w9"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cameras.{data['cameras'][0]['id']}: differs" in proc.stderr
    assert "detection: differs" in proc.stderr
