"""The WebSocket event hub (/api/ws) on a real bus: live alarms, garbage frames, resume without duplicates or
gaps, a stalled client dropped while another keeps receiving, logout closing sockets, and the live socket's
answer when this server has no live video."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

import aiohttp
import pytest

from messages.camera import CameraStatus
from messages.case_event import CaseEvent
from messages.system import SystemAlarm
from tests.fixtures.factories import make_alarm, make_deadline_alarm
from tests.fixtures.wall import login, make_settings, wall_client
from wall import state
from wall.app import create_app
from wall.hub import parse_stream_id

TIMEOUT = 10


async def _start(tmp_path, bus, store, evidence_dir, **wall):
    app = create_app(make_settings(tmp_path, **wall), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    return app


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str | None = None) -> dict:
    """The next JSON frame (of ``kind`` if given, skipping others)."""
    while True:
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        if kind is None or frame["type"] == kind:
            return frame


@pytest.fixture
async def client(tmp_path, bus, store, evidence_dir):
    app = await _start(tmp_path, bus, store, evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        await asyncio.wait_for(app[state.HUB].ready.wait(), TIMEOUT)
        yield c


async def test_hello_then_live_alarm_status_and_case_frames(client, bus):
    async with client.ws_connect("/api/ws", compress=15) as ws:  # offered as browsers do; declined
        assert ws.compress == 0
        hello = await _next(ws)
        assert hello == {"type": "hello", "user": {"username": "admin", "display_name": "管理员", "role": "admin"}}
        alarm_id = await bus.publish(make_alarm(1))
        frame = await _next(ws)
        assert frame["type"] == "alarm" and frame["id"] == alarm_id
        assert frame["alarm"]["alarm_id"] == "alarm-1" and frame["alarm"]["camera_id"] == "cam-a"
        assert frame["alarm"]["snapshot_url"] == "/evidence/cam-a/2026/alarm-1.jpg"

        await bus.publish(CameraStatus(camera_id="cam-b", state="reconnecting", at=5.0, reconnects=2,
                                       error="rtsp://u:pw@127.0.0.1:1/b refused"))
        frame = await _next(ws)
        assert frame["type"] == "camera_status"
        assert frame["status"]["camera_id"] == "cam-b" and frame["status"]["state"] == "reconnecting"
        assert "pw@" not in frame["status"]["error"]

        event = CaseEvent(case_id="case-1", case_no="CW-1", action="filed", state="dispatched", at=6.0,
                          actor="system", case={"id": "case-1", "evidence": ["cam-a/x.jpg"]})
        event_id = await bus.publish(event)
        frame = await _next(ws)
        assert frame["type"] == "case" and frame["id"] == event_id
        assert frame["event"]["case_no"] == "CW-1" and frame["event"]["action"] == "filed"
        assert frame["event"]["case"]["evidence_urls"] == ["/evidence/cam-a/x.jpg"]

        deadline_id = await bus.publish(make_deadline_alarm(1))
        frame = await _next(ws)
        assert frame["type"] == "case_deadline" and frame["id"] == deadline_id
        assert frame["alarm"] == make_deadline_alarm(1).to_dict()


@pytest.mark.parametrize(
    "send, error_start",
    [
        ("not json {", "not JSON"),
        ("[1, 2]", "message must be a JSON object"),
        ('{"hello": 1}', "type: missing"),
        ('{"type": "dance"}', "type: unknown message type 'dance'"),
        ('{"type": "resume"}', "last_ids: required"),
        ('{"type": "resume", "last_ids": {"alarms": 5}}', "last_ids.alarms: must be a stream id"),
        ('{"type": "resume", "last_ids": {"alarms": "yesterday"}}', "last_ids.alarms: 'yesterday' is not a stream id"),
        ('{"type": "resume", "last_ids": {"camera_status": "0-0"}}', "last_ids.camera_status: unknown stream"),
        (b"\x00\x01binary", "binary frames are not accepted"),
    ],
)
async def test_garbage_gets_error_frame_and_socket_stays_open(client, send, error_start):
    async with client.ws_connect("/api/ws") as ws:
        await _next(ws, "hello")
        if isinstance(send, bytes):
            await ws.send_bytes(send)
        else:
            await ws.send_str(send)
        frame = await _next(ws)
        assert frame["type"] == "error" and frame["error"].startswith(error_start), frame
        await ws.send_str('{"type": "ping"}')
        assert await _next(ws) == {"type": "pong"}


async def test_resume_sends_exactly_the_missed_alarms_deadline_alarms_and_case_events(client, bus):
    ids = [await bus.publish(make_alarm(n)) for n in range(6)]
    deadline_ids = [await bus.publish(make_deadline_alarm(n)) for n in range(3)]
    case_ids = [
        await bus.publish(CaseEvent(case_id=f"c{n}", case_no=f"N{n}", action="filed", state="reported", at=n,
                                    actor="system"))
        for n in range(3)
    ]
    async with client.ws_connect("/api/ws") as ws:
        await _next(ws, "hello")
        await ws.send_json({"type": "resume", "last_ids": {"alarms": ids[2], "case_events": case_ids[0],
                                                           "case_deadlines": deadline_ids[1]}})
        await ws.send_json({"type": "ping"})  # answered after everything the resume queued
        got = []
        while (frame := await _next(ws))["type"] != "pong":
            got.append((frame["type"], frame["id"]))
        assert [i for t, i in got if t == "alarm"] == ids[3:]
        assert [i for t, i in got if t == "case"] == case_ids[1:]
        assert [i for t, i in got if t == "case_deadline"] == deadline_ids[2:]
        # Live delivery continues after the resume, with nothing repeated.
        new_id = await bus.publish(make_alarm(99))
        frame = await _next(ws)
        assert frame["type"] == "alarm" and frame["id"] == new_id


async def test_system_alarms_resume_from_the_id_their_rest_read_returned(client, bus):
    def fault(n: int, phase: str) -> SystemAlarm:
        return SystemAlarm(alarm_id="recording_write_error@up", kind="recording_write_error", phase=phase,
                           at=float(n), node="up", label="录像写入失败", cameras=["cam-a"])

    assert (await (await client.get("/api/system-alarms")).json()) == {"alarms": [], "last_id": "0-0"}
    first = await bus.publish(fault(1, "raised"))
    body = await (await client.get("/api/system-alarms")).json()  # what a wall page reads before its socket opens
    assert body["last_id"] == first and [a["id"] for a in body["alarms"]] == [first]
    # While the page has no socket (opening, or a network outage) the fault clears and comes back.
    missed = [await bus.publish(fault(2, "cleared")), await bus.publish(fault(3, "raised"))]
    async with client.ws_connect("/api/ws") as ws:
        await _next(ws, "hello")
        await ws.send_json({"type": "resume", "last_ids": {"system_alarms": body["last_id"]}})
        await ws.send_json({"type": "ping"})
        got = []
        while (frame := await _next(ws))["type"] != "pong":
            got.append((frame["type"], frame["id"], frame["alarm"]["phase"]))
        assert got == [("system_alarm", missed[0], "cleared"), ("system_alarm", missed[1], "raised")]
        live = await bus.publish(fault(4, "cleared"))
        frame = await _next(ws)
        assert (frame["type"], frame["id"]) == ("system_alarm", live)


@pytest.mark.slow
async def test_resume_while_alarms_keep_arriving_has_no_duplicates_or_gaps(client, bus):
    before = [await bus.publish(make_alarm(n)) for n in range(300)]
    resume_from = before[100]
    async with client.ws_connect("/api/ws") as ws:
        await _next(ws, "hello")

        async def publish_more() -> list[str]:
            out = []
            for n in range(300, 400):
                out.append(await bus.publish(make_alarm(n)))
                if n % 10 == 0:
                    await asyncio.sleep(0)
            return out

        publisher = asyncio.create_task(publish_more())
        await asyncio.sleep(0.01)  # some live alarms reach the socket before the resume is read
        await ws.send_json({"type": "resume", "last_ids": {"alarms": resume_from}})
        after = await publisher
        expected = before[101:] + after
        got: list[str] = []
        while len(got) < len(expected) or after[-1] not in got:
            frame = await _next(ws, "alarm")
            got.append(frame["id"])
        await ws.send_json({"type": "ping"})
        while (frame := await _next(ws))["type"] != "pong":
            got.append(frame["id"])
        assert len(got) == len(set(got)), "duplicate frames"
        assert set(got) == set(expected), f"missing {sorted(set(expected) - set(got))[:5]}"
        # Anything delivered out of id order can only be live frames that overtook the resume.
        assert sorted(got, key=parse_stream_id)[-1] == after[-1]


def _raw_ws_connect(port: int, cookie: str, path: str = "/api/ws") -> socket.socket:
    """A WebSocket client that will never read: tiny receive buffer, handshake done by hand."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nCookie: cw_session={cookie}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until_close(sock: socket.socket) -> tuple[int, str, int]:
    """Read server frames until a close frame; returns (close code, reason, text frames seen)."""
    buf = b""
    texts = 0

    def need(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    while True:
        b0, b1 = need(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", need(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", need(8))[0]
        payload = need(length)
        opcode = b0 & 0x0F
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode(), texts
        if opcode == 0x1:
            texts += 1


async def test_stalled_client_is_dropped_while_another_keeps_receiving(tmp_path, bus, store, evidence_dir):
    app = await _start(tmp_path, bus, store, evidence_dir, client_queue=16)
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        await asyncio.wait_for(app[state.HUB].ready.wait(), TIMEOUT)
        cookie = c.session.cookie_jar.filter_cookies(c.make_url("/"))["cw_session"].value
        stalled = await asyncio.to_thread(_raw_ws_connect, c.port, cookie)
        try:
            async with c.ws_connect("/api/ws", max_msg_size=0) as healthy:
                await _next(healthy, "hello")
                # ~16 MB of alarms: more than the kernel buffers and a 16-frame queue hold for a silent peer.
                payload = os.urandom(100_000).hex()
                n = 80

                async def read_all() -> list[str]:
                    return [(await _next(healthy, "alarm"))["id"] for _ in range(n)]

                reader = asyncio.create_task(read_all())
                ids = [await bus.publish(make_alarm(i, extra={"blob": payload})) for i in range(n)]
                assert await reader == ids

                hub = app[state.HUB]
                for _ in range(100):
                    if hub.stats()["dropped_clients"]:
                        break
                    await asyncio.sleep(0.05)
                health = await (await c.get("/api/health")).json()
                assert health["hub"]["dropped_clients"] == 1
                assert health["hub"]["clients"] == 1  # the healthy one

                code, reason, texts = await asyncio.to_thread(_read_until_close, stalled)
                assert code == 1013 and "too slow" in reason
                assert 0 < texts < n

                # The healthy client is still served.
                await healthy.send_json({"type": "ping"})
                assert await _next(healthy) == {"type": "pong"}
        finally:
            stalled.close()


async def test_logout_closes_the_sessions_sockets(client):
    async with client.ws_connect("/api/ws") as ws:
        await _next(ws, "hello")
        assert (await client.post("/api/logout")).status == 200
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4401


async def test_live_socket_without_live_hub_says_so(client):
    async with client.ws_connect("/api/live/cam-a") as ws:
        frame = await _next(ws)
        assert frame == {"type": "error", "error": "live video not available on this server"}
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_server_shutdown_closes_sockets_promptly(tmp_path, bus, store, evidence_dir):
    app = await _start(tmp_path, bus, store, evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        ws = await c.ws_connect("/api/ws")
        await _next(ws, "hello")
        loop = asyncio.get_running_loop()
        started = loop.time()
        closing = asyncio.create_task(c.server.close())  # runs on_shutdown, then cleanup_ctx
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        await closing
        assert loop.time() - started < 3
        assert app[state.HUB]._task is None


async def test_hub_keeps_delivering_after_redis_restarts(tmp_path, store, evidence_dir):
    from broker.bus import Bus
    from broker.embedded import EmbeddedRedis

    redis = EmbeddedRedis(tmp_path / "redis")
    url = await asyncio.to_thread(redis.start)
    try:
        bus = await Bus.connect(url, prefix="restart")
        app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
        async with wall_client(app) as c:
            assert (await login(c)).status == 200
            await asyncio.wait_for(app[state.HUB].ready.wait(), TIMEOUT)
            async with c.ws_connect("/api/ws") as ws:
                await _next(ws, "hello")
                first = await bus.publish(make_alarm(1))
                assert (await _next(ws, "alarm"))["id"] == first
                await asyncio.to_thread(redis.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(redis.start)  # same port, empty (no persistence)
                second = None
                for _ in range(50):  # the bus client reconnects with backoff
                    try:
                        second = await bus.publish(make_alarm(2))
                        break
                    except ConnectionError:
                        await asyncio.sleep(0.2)
                assert second is not None
                frame = await _next(ws, "alarm")
                assert frame["id"] == second and frame["alarm"]["alarm_id"] == "alarm-2"
                await ws.send_json({"type": "ping"})
                assert await _next(ws) == {"type": "pong"}
        await bus.close()
    finally:
        await asyncio.to_thread(redis.stop)
