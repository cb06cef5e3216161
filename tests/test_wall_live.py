"""Live video over /api/live/{camera}: the real ingest LiveHub remuxing a real RTSP demo camera.

Skipped until ``video_ingest.service`` (the ingest room) is importable. Checks the frame sequence (JSON init,
binary ftyp+moov, binary moof+mdat fragments), the unknown-camera answer and the offline-camera answer.
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from tests.fixtures.wall import login, make_settings, wall_client
from wall.app import create_app
from wall.live_protocol import LiveHub

service = pytest.importorskip("video_ingest.service", reason="video_ingest.service (IngestService) not built yet")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _box_type(data: bytes) -> bytes:
    return data[4:8]


@pytest.fixture
async def ingest(demo_rtsp):
    svc = service.IngestService({
        "cam-a": demo_rtsp.url("vending"),
        "cam-b": f"rtsp://127.0.0.1:{_closed_port()}/nothing",
    }, open_timeout_s=2.0, read_timeout_s=2.0)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


@pytest.fixture
async def client(tmp_path, bus, store, evidence_dir, ingest):
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=ingest.live, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        yield c


async def _text(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def test_ingest_live_hub_satisfies_the_wall_protocol(ingest):
    assert isinstance(ingest.live, LiveHub)


async def test_live_socket_sends_init_then_fragments(client):
    # Offer permessage-deflate as every browser does: the server must decline it for video (deflating H.264
    # costs CPU per fragment per viewer and saves nothing).
    async with client.ws_connect("/api/live/cam-a", compress=15) as ws:
        assert ws.compress == 0, "live video socket negotiated compression"
        init = await _text(ws)
        assert init["type"] == "init" and init["mime"].startswith("video/mp4") and init["transcoded"] is None
        msg = await ws.receive(timeout=20)
        assert msg.type == aiohttp.WSMsgType.BINARY and _box_type(msg.data) == b"ftyp"
        assert b"moov" in msg.data
        for _ in range(5):
            msg = await ws.receive(timeout=20)
            assert msg.type == aiohttp.WSMsgType.BINARY
            assert _box_type(msg.data) == b"moof" and b"mdat" in msg.data
    health = await (await client.get("/api/health")).json()
    assert health["live"]["available"] is True and health["live"]["fragments_sent"] >= 5
    cams = {c["id"]: c for c in (await (await client.get("/api/cameras")).json())["cameras"]}
    assert cams["cam-a"]["live"] is True


async def test_unknown_camera_gets_error_frame_and_close(client):
    async with client.ws_connect("/api/live/nope") as ws:
        assert await _text(ws) == {"type": "error", "error": "unknown camera nope"}
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_offline_camera_gets_camera_offline(client):
    async with client.ws_connect("/api/live/cam-b") as ws:
        frame = await asyncio.wait_for(_text(ws, timeout=30), 30)
        assert frame == {"type": "error", "error": "camera offline"}
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_browser_that_stops_reading_is_bounded_and_holds_back_nobody(client, ingest, monkeypatch):
    # Fragments are written straight to each socket; one that does not drain its send buffer beyond the bound
    # skips to the next keyframe (counted) while the other viewer of the same camera gets every fragment.
    import wall.live_ws
    monkeypatch.setattr(wall.live_ws, "MAX_SEND_BUFFER", 64 * 1024)
    cookies = "; ".join(f"{c.key}={c.value}" for c in client.session.cookie_jar)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a browser tab that froze
    sock.connect(("127.0.0.1", client.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write((f"GET /api/live/cam-a HTTP/1.1\r\nHost: 127.0.0.1:{client.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\nCookie: {cookies}\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        async with client.ws_connect("/api/live/cam-a") as ws:
            assert (await _text(ws))["type"] == "init"
            received = 0
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while loop.time() - t0 < 8:
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY
                received += 1
            drops = ingest.live.stats()["cam-a"]["viewer_drops"]
            assert received >= 8 * 25 * 0.8, received  # the reading viewer kept real time
            assert sorted(drops)[0] == 0 and sorted(drops)[-1] > 0, drops  # only the stalled one dropped
    finally:
        writer.close()
