"""Issue 22: the wall server against a hostile network — each red-team finding as a test on a real server (loopback,
real Redis), bounded loops, condition-based waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fixtures.cases import insert_case
from tests.fixtures.wall import PASSWORD, login, make_settings, wall_client
from wall import state
from wall.app import create_app
from wall.connections import GUARD
from wall.exposure import start_site
from wall.limits import RedisLimiter, SlidingWindows, Window
from wall.sessions import RedisSessions

# ------------------------------------------------------------------------------------------------ login limits


def test_sliding_windows_record_all_or_nothing_and_give_back():
    w = SlidingWindows()
    a, b = Window("ua", 2, 60), Window("all", 3, 60)
    assert w.acquire([a, b], 0.0, "1") == 0 and w.acquire([a, b], 1.0, "2") == 0
    assert w.acquire([a, b], 2.0, "3") == pytest.approx(58.0)  # "ua" is full: nothing recorded anywhere
    assert w.acquire([Window("other", 2, 60), b], 2.0, "4") == 0  # so "all" still had room for one
    assert w.acquire([Window("other", 2, 60), b], 2.0, "5") > 0
    w.release([a, b], "2")  # a right password gives its attempt back
    assert w.acquire([a, b], 3.0, "6") == 0
    assert w.acquire([a, b], 60.5, "7") == 0  # the first left the window


async def _burst(clients, n: int, username: str = "admin", password: str = "wrong") -> list[int]:
    async def one(i: int) -> int:
        c = clients[i % len(clients)]
        async with c.post("/api/login", json={"username": username, "password": password}) as resp:
            return resp.status

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_600_parallel_wrong_passwords_check_at_most_the_limit(tmp_path, bus, store, evidence_dir):
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as attacker, wall_client(app) as other:
        assert (await login(other, "duty")).status == 200
        before = app[state.AUTHENTICATOR].checked
        burst = asyncio.create_task(_burst([attacker], 600))
        # Another user's request is served during the burst (hashing has its own pool, not the default one).
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert (await other.get("/api/cases")).status == 200
        cases_s = time.perf_counter() - started
        statuses = await burst
    checked = app[state.AUTHENTICATOR].checked - before
    assert checked <= 10, checked
    assert statuses.count(401) == checked and statuses.count(429) == 600 - checked, sorted(set(statuses))
    assert cases_s < 5.0, cases_s
    print(f"600 parallel wrong logins: {checked} checked, {statuses.count(429)} x 429; "
          f"another user's GET /api/cases during the burst: {cases_s * 1000:.0f} ms")


async def test_limits_hold_across_two_wall_servers_sharing_redis(tmp_path, bus, store, evidence_dir):
    apps = [create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir,
                       limiter=RedisLimiter(bus.redis, bus.prefix)) for _ in range(2)]
    async with wall_client(apps[0]) as one, wall_client(apps[1]) as two:
        statuses = await _burst([one, two], 200)
        checked = sum(a[state.AUTHENTICATOR].checked for a in apps)
        assert checked <= 10 and statuses.count(429) == 200 - checked, (checked, sorted(set(statuses)))
        # Per address as well: other usernames from the same address stop at failures_per_address (30).
        for i in range(40):
            await _burst([one, two], 1, username=f"nobody{i}")
        checked = sum(a[state.AUTHENTICATOR].checked for a in apps)
        assert checked <= 30, checked


async def test_unknown_accounts_and_every_address_share_the_global_limit(tmp_path, bus, store, evidence_dir):
    settings = make_settings(tmp_path, login={"failures_total": 15, "failures_per_address": 1000})
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        statuses = [(await login(c, f"ghost{i}", "x")).status for i in range(20)]
        assert statuses.count(401) == 15 and statuses.count(429) == 5, statuses
        metrics = await (await c.get("/metrics")).text()
    from cases.audit import AuditQuery

    rows = store.search_audit(AuditQuery(action="login", limit=500))[0]
    assert sorted({r.outcome for r in rows}) == [401] and len(rows) == 15  # refused floods are counted, not rows
    assert "citywall_login_refused_total 5.0" in metrics and "citywall_login_checked_total 15.0" in metrics


async def test_right_password_costs_no_failure_and_logins_cannot_evict_others(tmp_path, bus, store, evidence_dir):
    settings = make_settings(tmp_path, login={"successes_per_user": 8, "sessions_per_user": 3})
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as wall_screen, wall_client(app) as churn:
        assert (await login(wall_screen, "admin")).status == 200
        statuses = []
        for _ in range(12):
            churn.session.cookie_jar.clear()  # a new browser each time (a login ends the browser's own old session)
            statuses.append((await login(churn, "duty")).status)
        assert statuses == [200] * 8 + [429] * 4, statuses  # successful logins are limited per user
        assert app[state.SESSIONS].count() == 4  # duty keeps its 3 newest sessions; admin's is untouched
        assert (await wall_screen.get("/api/me")).status == 200
        for _ in range(9):  # a right password never counts towards the failure limit (10)
            assert (await login(wall_screen, "admin", "wrong")).status == 401
        assert (await login(wall_screen, "admin")).status == 200
        assert (await login(wall_screen, "admin", "wrong")).status == 401


async def test_redis_sessions_are_capped_per_user(bus):
    from config import Role, User
    from tests.test_wall_auth import USER

    sessions = RedisSessions(bus.redis, bus.prefix, 100, max_per_user=2)
    other = await sessions.create(User(username="li", role=Role.LEADER, password_hash=USER.password_hash), 0.0)
    mine = [await sessions.create(USER, float(i)) for i in range(1, 5)]
    assert await sessions.get(other.token, 5.0) is not None
    assert [await sessions.get(s.token, 5.0) is not None for s in mine] == [False, False, True, True]
    assert sessions.take_evicted() == [mine[0].token, mine[1].token]


# ------------------------------------------------------------------------------------------------ connections


@contextlib.asynccontextmanager
async def guarded_server(app):
    """The app behind its connection guard on 127.0.0.1 (as ``citywall up`` runs it); yields the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await start_site(runner, app, "127.0.0.1", 0)
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _read_all(reader: asyncio.StreamReader, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except (ConnectionError, TimeoutError):
        return b""


@pytest.mark.slow  # 1,000 sockets: a stress test, load-sensitive
async def test_1000_idle_connections_are_capped_and_timed_out_while_logins_are_served(tmp_path, bus, store,
                                                                                       evidence_dir):
    settings = make_settings(tmp_path, header_timeout_s=1.5, idle_timeout_s=2.0, max_connections_per_address=100)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with guarded_server(app) as base:
        port = int(base.rsplit(":", 1)[1])
        conns = []
        for i in range(1000):  # from 127.0.0.2: another "host" on the loopback network
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            if i % 2:
                writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # a head never finished
            conns.append((reader, writer))
        started = time.perf_counter()
        async with (aiohttp.ClientSession() as browser,
                    browser.post(f"{base}/api/login", json={"username": "admin", "password": PASSWORD}) as resp):
            assert resp.status == 200
        login_s = time.perf_counter() - started
        answers = await asyncio.gather(*(_read_all(r, 15.0) for r, _ in conns))
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 900 and b"too many connections from 127.0.0.2" in refused[0], len(refused)
        assert all(a == b"" or a.startswith(b"HTTP/1.1 503") for a in answers)  # the held ones: closed, no answer
        for _, writer in conns:
            writer.close()
        guard = app[GUARD]
        deadline = time.monotonic() + 10
        while guard.stats()["open"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert guard.stats()["open"] == 0 and guard.stats()["timed_out"] >= 90, guard.stats()
    assert login_s < 5.0, login_s
    print(f"1000 idle connections: {len(refused)} refused (503), login from another address in "
          f"{login_s * 1000:.0f} ms, {guard.stats()}")


async def test_half_sent_body_gets_408_and_global_cap_refuses(tmp_path, bus, store, evidence_dir):
    settings = make_settings(tmp_path, body_timeout_s=1.0, max_connections=8)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with guarded_server(app) as base:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"user")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 408"), head
        writer.close()
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(12)]
        answers = await asyncio.gather(*(_read_all(r, 0.5) for r, _ in held))
        assert sum(a.startswith(b"HTTP/1.1 503") for a in answers) >= 4, answers
        for _, w in held:
            w.close()


# ------------------------------------------------------------------------------------------------ bus and brokers


@pytest.mark.parametrize("field, value", [
    ("snapshot", "../../../../etc/passwd"), ("snapshot", "/etc/passwd"), ("snapshot_clean", "a\\..\\..\\x.jpg"),
    ("snapshot", "cam/\x00.jpg"), ("extra", {"clip": "../../secret.mp4"}), ("snapshot", "x" * 600),
])
async def test_forged_alarm_with_a_hostile_evidence_path_is_counted_and_dropped(bus, tmp_path, field, value):
    from cases.filing import build_filer
    from cases.store import CaseStore
    from cases.worker import CaseWorker
    from config import CONFIG_DIR, load_settings
    from tests.test_cases_worker import T0, _alarm
    from tests.waiting import run_until

    store = CaseStore.open(f"sqlite:///{tmp_path}/cases.sqlite")
    try:
        worker = CaseWorker(store, build_filer(load_settings(CONFIG_DIR / "demo.yaml"), store), bus,
                            consumer="cases-t", block_ms=100)
        forged = {**_alarm("f-1", "cam-vending", "pavement", "vending", T0).to_dict(), field: value}
        await bus.publish_raw("alarms", forged)
        await bus.publish(_alarm("ok-1", "cam-bin", "bin-1", "bin_overflow", T0 + 1))
        await run_until(worker.run, lambda: worker.stats.received == 2)  # the worker survives and goes on
        assert worker.stats.rejected == 1 and worker.stats.outcomes == {"filed": 1}, worker.stats
        assert store.list_cases()[1] == 1
        assert (await bus.redis.xpending(f"{bus.prefix}:alarms", worker.group))["pending"] == 0  # acked: no re-run
    finally:
        store.close()


@pytest.mark.slow
async def test_private_brokers_need_their_generated_credentials(tmp_path):
    import os
    import stat
    import threading

    import paho.mqtt.client as mqtt
    import redis as redis_sync
    from yarl import URL as Y

    from broker.embedded import EmbeddedMosquitto, EmbeddedRedis, generate_secret

    with EmbeddedRedis(tmp_path / "redis", password=generate_secret()) as r, \
            EmbeddedMosquitto(tmp_path / "mqtt", username="citywall", password=generate_secret()) as m:
        url = Y(r.url)
        anonymous = redis_sync.Redis(host="127.0.0.1", port=url.port)
        with pytest.raises(redis_sync.AuthenticationError):
            anonymous.xadd("citywall:alarms", {"forged": "1"})
        assert redis_sync.Redis.from_url(r.url).ping()
        mq = Y(m.url)
        assert mq.user == "citywall" and mq.password

        def connect(user: str | None, password: str | None) -> str:
            seen: list[str] = []
            done = threading.Event()
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            if user:
                c.username_pw_set(user, password)
            c.on_connect = lambda cl, u, f, reason, p: (seen.append(str(reason)), done.set())
            c.connect("127.0.0.1", mq.port)
            deadline = time.monotonic() + 5
            while not done.is_set() and time.monotonic() < deadline:
                c.loop(0.1)
            c.disconnect()
            return seen[0] if seen else "no answer"

        assert connect(None, None) == "Not authorized"
        assert connect("citywall", "wrong") == "Not authorized"
        assert connect("citywall", mq.password) == "Success"
        for path in (r.config_path, m.config_path, m.password_path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        if os.geteuid() == 0:  # never root: mosquitto runs as an unprivileged account
            status = Path(f"/proc/{m.pid}/status").read_text()
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            assert uid != 0


async def test_forged_speaker_messages_are_counted_and_dropped(mqtt_url):
    import paho.mqtt.publish as publish
    from yarl import URL as Y

    from guidance.speakers import MqttSpeakerAdapter, parse_mqtt_url

    assert parse_mqtt_url("mqtts://u:p%2Fw@broker.example")[1:] == (8883, "u", "p/w")
    adapter = MqttSpeakerAdapter(mqtt_url, "sec")
    await adapter.start()
    try:
        port = Y(mqtt_url).port
        for topic, payload in [("sec/speakers/spk-1/status", b"{not json"),
                               ("sec/speakers/spk-1/status", b'{"online": "yes"}'),
                               ("sec/speakers/spk-1/ack", b"[1]"),
                               ("sec/speakers/spk-1/ack", b'{"command_id": 1, "ok": "x"}'),
                               ("sec/speakers/spk 1/status", b'{"online": true}'),
                               ("sec/speakers/spk-1/ack", b"x" * 20000)]:
            await asyncio.to_thread(publish.single, topic, payload, hostname="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while adapter.malformed < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert adapter.malformed == 6 and adapter.online("spk-1") is None
    finally:
        await adapter.close()


# ------------------------------------------------------------------------------------------------ upload bombs


def _flac(rate: int, seconds: float) -> bytes:
    """Silence as FLAC: 119 s at 384 kHz is ~27 KB on the wire and 183 MB as float samples."""
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        stream.codec_context.format = "s16"
        silence = np.zeros((1, 4096), dtype=np.int16)
        pts = 0
        while pts < rate * seconds:
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            for packet in stream.encode(frame):
                out.mux(packet)
            pts += 4096
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


async def test_four_parallel_upload_bombs_cost_under_100_mib(fuzz_target):  # noqa: F811
    from tests.fixtures.fuzz import login_session

    bomb = _flac(384_000, 119)
    long_one = _flac(48_000, 125)
    assert len(bomb) < 40_000
    sessions = [await asyncio.to_thread(login_session, fuzz_target.base_url, user) for user in ("admin", "leader")]
    baseline = peak = _rss_mib()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_mib())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    url = f"{fuzz_target.base_url}/api/clips"
    answers = await asyncio.gather(*(asyncio.to_thread(sessions[i % 2].post, url, data=body, timeout=60)
                                     for i, body in enumerate([bomb, bomb, bomb, long_one])))
    done.set()
    await sampler
    for resp in answers:
        assert resp.status_code == 400 and resp.json()["error"].startswith("body: "), resp.text
    assert "384000 Hz" in answers[0].json()["error"] and "125.0 s" in answers[3].json()["error"]
    assert peak - baseline <= 100, (baseline, peak)
    print(f"4 parallel upload bombs: RSS {baseline:.0f} -> peak {peak:.0f} MiB (+{peak - baseline:.0f})")


# ------------------------------------------------------------------------------------------------ socket caps


async def _ws_attempts(client, path: str, n: int) -> tuple[list, list[int]]:
    async def one():
        try:
            return await client.ws_connect(path)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status

    results = await asyncio.gather(*(one() for _ in range(n)))
    return [r for r in results if not isinstance(r, int)], [r for r in results if isinstance(r, int)]


async def test_300_sockets_from_one_user_are_refused_past_the_cap(tmp_path, bus, store, evidence_dir):
    from wall.socket_quota import SOCKET_QUOTA

    settings = make_settings(tmp_path, live_sockets_per_user=20, live_sockets_total=30)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as duty, wall_client(app) as admin:
        assert (await login(duty, "duty")).status == 200 and (await login(admin, "admin")).status == 200
        opened, refused = await _ws_attempts(duty, "/api/ws", 300)  # never read: stalled sockets
        assert len(opened) == 20 and refused == [429] * 280
        resp = await duty.get("/api/live/cam-a", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                          "Sec-WebSocket-Version": "13",
                                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert resp.status == 429 and "live_sockets_per_user=20" in (await resp.json())["error"]
        others, refused = await _ws_attempts(admin, "/api/ws", 15)  # another user: up to the server's total
        assert len(others) == 10 and refused == [429] * 5
        for ws in opened + others:
            await ws.close()
        quota = app[SOCKET_QUOTA]
        deadline = time.monotonic() + 10
        while quota.open_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert quota.open_count() == 0  # every slot given back
        again, refused = await _ws_attempts(duty, "/api/ws", 1)
        assert len(again) == 1 and not refused
        await again[0].close()


# ------------------------------------------------------------------------------------------------ no 5xx, audit


async def test_deep_json_and_far_dates_are_400_not_500(tmp_path, bus, store, evidence_dir):

    case_id = insert_case(store, 1)
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    deep_array, deep_object = "[" * 30000 + "]" * 30000, '{"a":' * 10000 + "1" + "}" * 10000
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        for method, path in (("POST", "/api/login"), ("POST", f"/api/cases/{case_id}/actions"),
                             ("PUT", "/api/screens/main/layout")):
            for body in (deep_array, deep_object):
                resp = await c.request(method, path, data=body, headers={"Content-Type": "application/json"})
                assert resp.status == 400 and (await resp.json())["error"].startswith("body"), (path, resp.status)
        for path, field in (("/api/stats?from=9999-12-30&to=9999-12-31", "from"),
                            ("/api/stats?from=2026-01-01&to=9999-12-31", "to"),
                            ("/report/daily?date=9999-12-31", "date"), ("/report/daily?date=0001-01-01", "date")):
            resp = await c.get(path)
            assert resp.status == 400 and (await resp.json())["error"].startswith(f"{field}: "), path


async def test_audit_records_what_was_executed_whatever_the_content_type(tmp_path, bus, store, evidence_dir):
    import json

    from cases.audit import AuditQuery

    case_id = insert_case(store, 1, state="dispatched")
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c, "duty")).status == 200
        padded = json.dumps({"action": "start", "note": "到场处置"}) + " " * 20_000  # past the old 8 KiB cut
        resp = await c.post(f"/api/cases/{case_id}/actions", data=padded, headers={"Content-Type": "text/plain"})
        assert resp.status == 200  # executed (as aiohttp parses any body as JSON)…
        async with aiohttp.ClientSession(base_url=str(c.make_url("/"))) as anon:
            resp = await anon.post("/api/login", data=json.dumps({"username": "admin", "password": "nope"}),
                                   headers={"Content-Type": "text/plain"})
            assert resp.status == 401
    entries, _ = store.search_audit(AuditQuery(action="case.start"))
    [row] = entries  # …so recorded as executed, with its note
    assert row.details["request"] == {"action": "start", "note": "到场处置"}
    [failed] = [e for e in store.search_audit(AuditQuery(action="login"))[0] if e.outcome == 401]
    assert failed.actor == "admin" and "nope" not in json.dumps(failed.details)


# ------------------------------------------------------------------------------------------------ sessions end sockets


async def test_sockets_close_when_their_session_expires_or_is_revoked(tmp_path, bus, store, evidence_dir):
    from cases.audit import AuditQuery
    from wall.app import sweep_sessions

    now = [1_800_000_000.0]
    settings = make_settings(tmp_path, session_ttl_s=60)
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir, clock=lambda: now[0])
    async with wall_client(app) as c:
        assert (await login(c, "duty")).status == 200
        ws = await c.ws_connect("/api/ws")
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        now[0] += 61  # expired: the next message is not served, the socket closes
        await ws.send_json({"type": "ack", "alarm_id": "alarm-1", "screen": "main"})
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4401, msg
        assert store.search_audit(AuditQuery(action="alarm.ack"))[1] == 0  # nothing was executed

        assert (await login(c, "duty")).status == 200
        ws = await c.ws_connect("/api/ws")
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        token = c.session.cookie_jar.filter_cookies(c.make_url("/"))["cw_session"].value
        await app[state.SESSIONS].revoke(token)  # revoked elsewhere (another wall server, an admin)
        assert await sweep_sessions(app) == 1  # the periodic sweep closes it without waiting for a message
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4401


# ------------------------------------------------------------------------------------------------ Host, TLS, proxies


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True), ("10.1.2.3", True),
    ("wall.city.example", True), ("WALL.city.example.:443", True), ("evil.example", False),
    ("127.0.0.1.evil.example", False), ("", False), ("wall.city.example.evil", False),
])
def test_host_allow_list(host, ok):
    from wall.exposure import host_allowed

    assert host_allowed(host, frozenset({"wall.city.example"})) is ok


async def test_dns_rebinding_host_is_refused(tmp_path, bus, store, evidence_dir):
    app = create_app(make_settings(tmp_path, allowed_hosts=["wall.city.example"]), bus=bus, cases=store, live=None,
                     evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        for path in ("/metrics", "/api/health", "/login"):
            resp = await c.get(path, headers={"Host": "rebind.evil.example"})
            assert resp.status == 400 and (await resp.json())["error"].startswith("Host: "), path
        resp = await c.post("/api/login", json={"username": "admin", "password": PASSWORD},
                            headers={"Host": "rebind.evil.example:8080"})
        assert resp.status == 400
        assert (await c.get("/api/health", headers={"Host": "wall.city.example:8080"})).status == 200
        assert (await login(c)).status == 200


def _self_signed(tmp_path):
    import subprocess

    cert, key = tmp_path / "wall.crt", tmp_path / "wall.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_tls_from_config_serves_https_with_secure_cookies(tmp_path, bus, store, evidence_dir):
    import ssl

    cert, key = _self_signed(tmp_path)
    app = create_app(make_settings(tmp_path, tls_cert=str(cert), tls_key=str(key)), bus=bus, cases=store,
                     live=None, evidence_dir=evidence_dir)
    async with guarded_server(app) as base:
        https = base.replace("http://", "https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as browser:
            async with browser.post(f"{https}/api/login", json={"username": "admin", "password": PASSWORD},
                                    ssl=ctx) as resp:
                assert resp.status == 200
                cookie = resp.headers["Set-Cookie"]
                assert "Secure" in cookie and "HttpOnly" in cookie
            with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port is not served
                async with browser.get(f"{base}/api/health") as resp:
                    await resp.read()


async def test_forwarded_proto_counts_only_from_trusted_proxies(tmp_path, bus, store, evidence_dir):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.8.7"}
    for proxies, secure in (([], False), (["127.0.0.0/8"], True)):
        app = create_app(make_settings(tmp_path, trusted_proxies=proxies), bus=bus, cases=store, live=None,
                         evidence_dir=evidence_dir)
        async with wall_client(app) as c:
            resp = await c.post("/api/login", json={"username": "admin", "password": PASSWORD}, headers=forwarded)
            assert resp.status == 200
            assert ("Secure" in resp.headers["Set-Cookie"]) is secure, proxies
        from cases.audit import AuditQuery

        [row] = store.search_audit(AuditQuery(action="login", limit=1))[0]
        assert row.client == ("10.9.8.7" if secure else "127.0.0.1")


def test_demo_passwords_beyond_loopback_stop_start_up(tmp_path):
    from config import parse_settings
    from wall.exposure import ExposureError, check_exposure
    from wall.passwords import hash_password

    def settings(password: str, **wall):
        return parse_settings({"storage": {"data_dir": str(tmp_path)}, "wall": wall, "users": [
            {"username": "admin", "role": "admin", "password_hash": hash_password(password, n=2**10)}]})

    assert check_exposure(settings("citywall"), "127.0.0.1") == ["admin"]
    for host in ("0.0.0.0", "", "10.1.2.3", "wall.city.example"):
        with pytest.raises(ExposureError, match="admin.*demo password"):
            check_exposure(settings("citywall"), host)
    assert check_exposure(settings("citywall", allow_demo_users_beyond_loopback=True), "0.0.0.0") == ["admin"]
    assert check_exposure(settings("a-real-password"), "0.0.0.0") == []


# ------------------------------------------------------------------------------------------------ redaction

SECRET = "Zq7s3cr3tPW"


@pytest.mark.parametrize("text", [
    f"rtsp://admin:a/{SECRET}@10.0.0.1/a", f"rtsp://admin:a {SECRET}@10.0.0.1/a", f"rtsp://h/x?psw={SECRET}",
    f"rtsp://h/x?user=a&authbasic={SECRET}", f"rtsp://h/x?loginpass={SECRET}&c=1", f"rtsp://h/x;password={SECRET}",
    f"rtsp://h/x?PassWd={SECRET}", f"error opening 'rtsp://u:p/{SECRET}@h/x': refused",
])
def test_redaction_by_parsing_masks_slashes_spaces_and_query_forms(text):
    from config import redact_url

    out = redact_url(text)
    assert SECRET not in out and "***" in out, out


@pytest.mark.parametrize("url, words", [
    (f"rtsp://admin:a/{SECRET}@10.0.0.1/a", "%2F"), (f"rtsp://admin:a {SECRET}@10.0.0.1/a", "%20"),
    ("rtsp://10.0.0.1:99999/a", "cannot be parsed"), ("rtsp:///a", "no host"),
])
def test_check_config_rejects_a_camera_url_that_does_not_parse(url, words):
    from config import ConfigError, parse_settings

    with pytest.raises(ConfigError) as info:
        parse_settings({"cameras": [{"id": "c", "name": "x", "url": url, "position": {"lon": 1, "lat": 2}}]})
    assert words in str(info.value) and SECRET not in str(info.value) and "cameras[0].url" in str(info.value)


# ------------------------------------------------------------------------------------------------ audit chain


def test_audit_hash_chain_detects_drop_trigger_then_delete_or_update(cases_url):
    from cases.audit import AuditEntry
    from cases.store import CaseStore

    store = CaseStore.open(cases_url)
    try:
        for i in range(5):
            store.append_audit(AuditEntry(at=1000.0 + i, actor="duty", role="watch_officer", action="screen.layout",
                                          target="main", details={"request": {"layout": "3x3"}, "n": i}))
        check = store.verify_audit(batch=2)
        assert check.ok and check.rows == 5, check
        with store.transaction() as tx:  # a local attacker with the database file
            if store.backend == "sqlite":
                tx._c.execute("DROP TRIGGER audit_log_no_delete")
                tx._c.execute("DROP TRIGGER audit_log_no_update")
            else:
                tx._c.execute("DROP TRIGGER audit_log_no_change ON audit_log")
            tx._c.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = (SELECT MIN(seq) + 3 FROM audit_log)")
        check = store.verify_audit()
        assert not check.ok and "changed" in check.reason and check.rows == 3, check
        with store.transaction() as tx:
            tx._c.execute("UPDATE audit_log SET actor = 'duty' WHERE actor = 'nobody'")  # put it back …
            tx._c.execute("DELETE FROM audit_log WHERE seq = (SELECT MIN(seq) + 1 FROM audit_log)")  # … and remove one
        check = store.verify_audit()
        assert not check.ok and "removed" in check.reason and check.rows == 1, check
    finally:
        store.close()


async def test_audit_verify_endpoint_is_admin_only(tmp_path, bus, store, evidence_dir):
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c, "duty")).status == 200
        assert (await c.get("/api/audit/verify")).status == 403
        assert (await login(c, "admin")).status == 200
        body = await (await c.get("/api/audit/verify")).json()
        assert body["ok"] is True and body["rows"] >= 2 and body["first_bad_seq"] is None


async def test_evidence_live_and_export_reads_are_audited(tmp_path, bus, store, evidence_dir):
    from cases.audit import AuditQuery

    (evidence_dir / "cam-a").mkdir()
    (evidence_dir / "cam-a" / "x.jpg").write_bytes(b"\xff\xd8jpeg")
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c, "duty")).status == 200
        assert (await c.get("/evidence/cam-a/x.jpg")).status == 200
        assert (await c.get("/api/stats", params={"format": "xlsx", "from": "2026-03-01"})).status == 200
        assert (await c.get("/api/stats")).status == 200  # viewing on screen is not an export
        ws = await c.ws_connect("/api/live/cam-a")
        await ws.receive(timeout=10)  # "live video not available" here; the view is still recorded
        await ws.close()

        async def rows(action):
            deadline = time.monotonic() + 10
            while True:
                found = store.search_audit(AuditQuery(action=action))[0]
                if found or time.monotonic() > deadline:
                    return found
                await asyncio.sleep(0.05)

        [read] = await rows("evidence.read")
        assert (read.actor, read.target, read.outcome) == ("duty", "cam-a/x.jpg", 200)
        [export] = await rows("stats.export")
        assert export.details["query"] == {"format": "xlsx", "from": "2026-03-01"}
        [live] = await rows("live.view")
        assert live.target == "cam-a" and live.actor == "duty"


# ------------------------------------------------------------------------------------------------ external brokers


@contextlib.contextmanager
def _tls_broker(argv_for, ready_port: int, tmp_path):
    import socket
    import subprocess

    with open(tmp_path / f"broker-{ready_port}.log", "wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(argv_for, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (tmp_path / f"broker-{ready_port}.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", ready_port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "broker did not listen"
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


async def test_external_redis_over_tls_with_a_password(tmp_path):
    from broker.bus import Bus, BusUnavailable
    from broker.embedded import find_binary, free_port

    cert, key = _self_signed(tmp_path)
    port = free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(f"bind 127.0.0.1\nport 0\ntls-port {port}\ntls-cert-file {cert}\ntls-key-file {key}\n"
                    f"tls-ca-cert-file {cert}\ntls-auth-clients no\nrequirepass s3cretRedis\nsave \"\"\n"
                    f"dir {tmp_path}\n")
    with _tls_broker([find_binary("redis-server", "redis-server"), str(conf)], port, tmp_path):
        bus = await Bus.connect(f"rediss://:s3cretRedis@127.0.0.1:{port}/0?ssl_ca_certs={cert}", prefix="tls")
        try:
            await bus.ping()
        finally:
            await bus.close()
        with pytest.raises(BusUnavailable) as info:  # a wrong password is refused, and not shown
            await Bus.connect(f"rediss://:wrongPass@127.0.0.1:{port}/0?ssl_ca_certs={cert}", prefix="tls")
        assert "wrongPass" not in str(info.value)


async def test_external_mqtt_over_tls_with_a_password(tmp_path, monkeypatch):
    from broker.embedded import find_binary, free_port, mosquitto_password_line
    from guidance.speakers import MqttSpeakerAdapter

    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the default context trusts our test CA
    port = free_port()
    (tmp_path / "passwd").write_text(mosquitto_password_line("citywall", "s3cretMqtt"))
    (tmp_path / "passwd").chmod(0o600)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"per_listener_settings false\nlistener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
                    f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
                    + ("user root\n" if __import__("os").geteuid() == 0 else ""))
    with _tls_broker([find_binary("mosquitto", "mosquitto"), "-c", str(conf)], port, tmp_path):
        adapter = MqttSpeakerAdapter(f"mqtts://citywall:s3cretMqtt@127.0.0.1:{port}", "tls", connect_timeout_s=10)
        await adapter.start()  # TLS (certificate verified) and the login both accepted
        await adapter.close()
        wrong = MqttSpeakerAdapter(f"mqtts://citywall:nope@127.0.0.1:{port}", "tls", connect_timeout_s=2)
        with pytest.raises(ConnectionError):
            await wrong.start()


def test_data_dir_is_private_to_the_service_account(tmp_path):
    import os
    import stat

    from cases.store import CaseStore
    from citywall.up import private_data_dir

    data = tmp_path / "var"
    (data).mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        private_data_dir(data, data / "evidence")
        store = CaseStore.open(f"sqlite:///{data}/cases.sqlite")
        store.close()
        (data / "evidence" / "a.jpg").write_bytes(b"x")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (data, data / "evidence", data / "cases.sqlite",
                                                                   data / "evidence" / "a.jpg")}
    finally:
        os.umask(old)
    assert modes == {"var": 0o700, "evidence": 0o700, "cases.sqlite": 0o600, "a.jpg": 0o600}, modes
