"""Several processes on loopback: camera workers, two wall servers, a case worker and two MQTT bridges sharing one
real Redis, a real Mosquitto and a real PostgreSQL (the cases).

Twelve cameras (three per demo scene, from the real RTSP server) are split 6/6 by leases; one login serves both
wall servers; a live socket opened on either wall server is proxied to whichever worker holds the camera; a worker
killed with SIGKILL loses its cameras to the other within the lease TTL plus a round; a new worker takes a fair
share; a Redis restart is survived by every role; every alarm raised ends in exactly one case and on MQTT (two
bridges, one active); a logout on one wall server ends the session on the other.
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
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.embedded import EmbeddedRedis
from cases.store import CaseStore
from tests import signin
from tests.fixtures.brokers import Subscriber
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
SCENES = {"vending": "cam-vending", "bin_overflow": "cam-bin", "road_occupation": "cam-road",
          "quiet_street": "cam-street"}
TTL = 3.0
TOKEN = "cluster-test-token"

pytestmark = pytest.mark.timeout(240)


def _config(tmp: Path, redis_url: str, mqtt_url: str, cases_url: str, demo_rtsp, prefix: str) -> Path:
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
        "brokers": {"redis_url": redis_url, "mqtt_url": mqtt_url, "topic_prefix": prefix},
        "storage": {"data_dir": str(tmp / "var"), "cases_url": cases_url},
        "guidance": {"enabled": False},
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
        with open(self.log, "wb") as err:  # the child keeps its own copy
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "citywall.cli", *args, "--config", str(config)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)

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
def cluster(tmp_path, mqtt_url, demo_rtsp, postgres_url):
    # A private, persistent redis-server: this test restarts it.
    redis = EmbeddedRedis(tmp_path / "redis", persistent=True)
    redis_url = redis.start()
    prefix = f"c{uuid.uuid4().hex[:10]}"
    config = _config(tmp_path, redis_url, mqtt_url, postgres_url, demo_rtsp, prefix)
    procs: list[Proc] = []

    def start(*args: str) -> Proc:
        proc = Proc(tmp_path, config, *args)
        procs.append(proc)
        return proc

    yield {"start": start, "prefix": prefix, "config": config, "tmp": tmp_path, "redis": redis,
           "redis_url": redis_url, "mqtt_url": mqtt_url, "cases_url": postgres_url}
    for proc in procs:
        proc.stop()
    redis.stop()


async def _holders(client: aioredis.Redis, prefix: str) -> dict[str, str]:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:cameras:lease:*")]
    values = await client.mget(keys) if keys else []
    return {k.rsplit(":", 1)[1]: v for k, v in zip(keys, values, strict=False) if v}


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


async def _login(session: aiohttp.ClientSession, url: str) -> None:
    resp = await signin.login(session, "admin", "citywall", base=url)
    assert resp.status == 200, await resp.text()


async def test_a_cluster_shares_cameras_fails_over_survives_redis_and_files_every_alarm_once(cluster):
    start, prefix = cluster["start"], cluster["prefix"]
    # The bridges first: a bridge that has never run starts at the stream's end, so an alarm raised before the first
    # one is up would never reach MQTT (on a loaded machine the workers can raise one before the bridges start).
    bridges = [start("bridge", "--name", f"b{i}") for i in (1, 2)]
    bridge_ops = []
    for b in bridges:
        banner = b.first_line()
        assert "→" in banner
        bridge_ops.append(re.search(r"health at (http://\S+)/health", banner).group(1))
    mqtt_alarms = await asyncio.to_thread(Subscriber, cluster["mqtt_url"], f"{prefix}/alarms/#")
    w1 = start("worker", "--name", "w1")
    w2 = start("worker", "--name", "w2")
    banner = w1.first_line()
    assert "joined" in banner and "joined" in w2.first_line()
    w1_live = re.search(r"live video at (http://\S+)", banner).group(1)
    walls = [start("wall", "--port", "0") for _ in range(2)]
    url_a, url_b = (re.search(r"(http://\S+)/wall", w.first_line()).group(1) for w in walls)
    cases = start("cases", "--name", "cases-test")
    banner = cases.first_line()
    assert "consuming alarms" in banner
    cases_ops = re.search(r"health at (http://\S+)/health", banner).group(1)

    # The test's own reader rides through the Redis restart below like the roles do.
    client = aioredis.Redis.from_url(cluster["redis_url"], decode_responses=True,
                                     retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 20),
                                     retry_on_error=[RedisConnectionError])
    try:
        async def split(expected: dict[str, int]):
            holders = await _holders(client, prefix)
            counts = {w: list(holders.values()).count(w) for w in expected}
            return holders if counts == expected and len(holders) == 12 else None

        holders = await eventually(lambda: split({"w1": 6, "w2": 6}), timeout=30, what="a 6/6 split")
        async with aiohttp.ClientSession() as plain:
            async with plain.get(f"{w1_live}/health") as resp:
                health = await resp.json()
                assert resp.status == 200 and len(health["cameras"]) == 6, health
            async with plain.get(f"{w1_live}/metrics") as resp:
                assert "citywall_leases_held 6.0" in await resp.text()
            async with plain.get(f"{w1_live}/internal/live/{health['cameras'][0]}") as resp:
                assert resp.status == 401  # the cluster token is required
            # Every role answers /health; exactly one bridge is active.
            async with plain.get(f"{cases_ops}/health") as resp:
                assert resp.status == 200 and (await resp.json())["cases"] == "ok"
            async with plain.get(f"{cases_ops}/metrics") as resp:
                assert "# TYPE citywall_cases gauge" in await resp.text()
            active = []
            for ops in bridge_ops:
                async with plain.get(f"{ops}/health") as resp:
                    assert resp.status == 200
                    active.append((await resp.json())["active"])
            assert sorted(active) == [False, True]
        bridge_holder = await client.get(f"{prefix}:bridge:lease:bridge")
        assert bridge_holder in ("b1", "b2")

        async def all_online():
            states = await client.hgetall(f"{prefix}:state:cameras")
            rows = [json.loads(v) for v in states.values()]
            return len(rows) == 12 and all(r["state"] == "online" for r in rows)

        await eventually(all_online, timeout=40, what="all 12 cameras online")

        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            # One login serves both wall servers (sessions in Redis).
            await _login(session, url_a)
            cookie = next(c for c in jar if c.key == "cw_session").value
            for url in (url_a, url_b):
                resp = await session.get(f"{url}/api/me", cookies={"cw_session": cookie})
                assert resp.status == 200, (url, await resp.text())
            # A layout changed through one wall server is what the other serves (and pushes) too.
            resp = await session.put(f"{url_a}/api/screens/main/layout", json={"layout": "3x3"},
                                     headers={"Origin": url_a})
            assert resp.status == 200, await resp.text()

            async def followed():
                async with session.get(f"{url_b}/api/screens/main") as r:
                    return (await r.json())["screen"]["layout"]["name"] == "3x3" or None

            await eventually(followed, timeout=10, what="wall server B showing A's layout")
            on_w1 = sorted(c for c, w in holders.items() if w == "w1")
            mime, size = await _live_fragment(session, url_b, on_w1[0])
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
                    return await _live_fragment(session, url_a, on_w1[0])
                except (TimeoutError, AssertionError, aiohttp.ClientError):
                    return None

            await eventually(served_again, timeout=30, what=f"live video of {on_w1[0]} from w2")

            w3 = start("worker", "--name", "w3")
            assert "joined" in w3.first_line()
            await eventually(lambda: split({"w2": 6, "w3": 6}), timeout=30, what="w3 taking a fair share")

            # Redis restarts (persistent): every role reconnects by itself and the cluster settles again.
            restarted_at = time.time()
            await asyncio.to_thread(cluster["redis"].restart)
            await eventually(lambda: split({"w2": 6, "w3": 6}), timeout=30, what="the split after a Redis restart")
            await eventually(all_online, timeout=40, what="all cameras online after the Redis restart")

            # Count in = count out: every raised alarm ends in exactly one case, and reached MQTT.
            async def raised_alarms():
                entries = await client.xrange(f"{prefix}:alarms")
                rows = [json.loads(f["data"]) for _, f in entries]
                ids = {r["alarm_id"] for r in rows if r["phase"] == "raised"}
                return ids if len(ids) >= 3 else None

            raised = await eventually(raised_alarms, timeout=90, what="three raised alarms")
            store = CaseStore.open(cluster["cases_url"])
            try:
                async def all_filed():
                    with store.transaction() as tx:
                        missing = [a for a in raised if tx.case_for_alarm(a) is None]
                    return not missing or None

                await eventually(all_filed, timeout=20, what="a case for every raised alarm")
            finally:
                store.close()

            seen_on_mqtt: set[str] = set()

            async def all_on_mqtt():
                while not mqtt_alarms.messages.empty():
                    seen_on_mqtt.add(mqtt_alarms.messages.get_nowait()[1]["alarm_id"])
                return raised <= seen_on_mqtt or None

            try:
                await eventually(all_on_mqtt, timeout=40, what="every raised alarm on MQTT")
            except AssertionError:
                logs = "\n".join(f"--- {b.log.name}\n{b.log.read_text()[-3000:]}" for b in bridges)
                entries = await client.xrange(f"{prefix}:alarms")
                rows = [(eid, json.loads(f["data"])) for eid, f in entries]
                table = "\n".join(f"{eid} {r['camera_id']} {r['phase']} at={r['at'] - restarted_at:+.1f}s "
                                  f"{'seen' if r['alarm_id'] in seen_on_mqtt else 'MISSING'}" for eid, r in rows)
                raise AssertionError(f"missing on MQTT:\n{table}\n{logs}") from None

            # Logout through one wall server ends the session on the other.
            resp = await session.post(f"{url_b}/api/logout", cookies={"cw_session": cookie},
                                      headers={"Origin": url_b})
            assert resp.status == 200
            resp = await session.get(f"{url_a}/api/me", cookies={"cw_session": cookie})
            assert resp.status == 401
    finally:
        await client.aclose()
        mqtt_alarms.close()
    for proc in (w2, w3, *walls, cases, *bridges):
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
