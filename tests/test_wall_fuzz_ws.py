"""Hostile WebSocket clients on both sockets, against a real wall server (real Redis; real ingest on the demo RTSP
server for live video). A deterministic generated corpus (fixed seed) of garbage text, binary frames, JSON of every
type, ``type`` and ``last_ids`` of the wrong type, unknown message types, deeply nested JSON, oversized and
invalid-UTF-8 frames.

The event socket (``/api/ws``) answers every message that fits in a frame with exactly one error frame and keeps
the connection (ping still answers pong); a frame over the size limit closes it with 1009 (message too big) and
invalid UTF-8 with 1007 (invalid text). The live socket ignores what the browser sends and keeps streaming; an
oversized frame closes it with 1009. Afterwards the server still serves others (a fresh client gets its hello, a
published alarm, a pong; a fresh viewer gets video), and no handler crashed (no "internal error" frame, nothing
logged at ERROR).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import struct
from typing import Any

import aiohttp
import pytest

from tests.fixtures.factories import make_alarm
from tests.fixtures.wall import login, make_settings, wall_client
from tests.test_wall_hub import _raw_ws_connect, _read_until_close
from wall import state
from wall.app import create_app
from wall.hub import MAX_CLIENT_MESSAGE
from wall.live_ws import MAX_CLIENT_MESSAGE as MAX_LIVE_MESSAGE

SEED = 20261201
CORPUS_SIZE = 400
TIMEOUT = 15

HOSTILE_STRINGS = ["", "ping", "resume", "PING", "alarms", "case_events", "camera_status", "0", "0-0", "-1",
                   "99999999999999999999-0", "18446744073709551616-1", "١٢٣-٠", "1-2-3", "\x00", "\u202e",
                   "<script>alert(1)</script>", "../../etc/passwd", "%s%n", "'; DROP TABLE cases;--", "🧨" * 20,
                   "x" * 5000]


def _hostile_json(rnd: random.Random, depth: int = 0) -> Any:
    """A random JSON value, biased towards the protocol's own keys and values in the wrong places."""
    kind = rnd.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.choice([True, False])
    if kind == 2:
        return rnd.choice([0, -1, 2**63, -(2**64), 10**40, 1.5, 1e308, -0.0])
    if kind in (3, 4, 5):
        return rnd.choice(HOSTILE_STRINGS)
    if kind == 6:
        return [_hostile_json(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    keys = ["type", "last_ids", "alarms", "case_events", "camera_status", "wall", "__proto__", ""]
    return {rnd.choice(keys): _hostile_json(rnd, depth + 1) for _ in range(rnd.randrange(1, 4))}


def _message(rnd: random.Random) -> dict[str, Any]:
    """A protocol-shaped message with wrong parts: a valid or hostile type, a hostile last_ids."""
    message: dict[str, Any] = {"type": rnd.choice(["ping", "resume", "Resume", "dance", 5, None, [], {}, True])}
    if rnd.random() < 0.7:
        message["last_ids"] = rnd.choice([
            _hostile_json(rnd),
            {rnd.choice(["alarms", "case_events", "wall", "x"]): _hostile_json(rnd)},
            {"alarms": rnd.choice(HOSTILE_STRINGS), "case_events": rnd.choice(HOSTILE_STRINGS)},
        ])
    if rnd.random() < 0.3:
        message[rnd.choice(HOSTILE_STRINGS[:8])] = _hostile_json(rnd)
    return message


def corpus(seed: int = SEED, size: int = CORPUS_SIZE) -> list[str | bytes]:
    """Frames that each fit the event socket's size limit: text (JSON or not) and binary."""
    rnd = random.Random(seed)
    out: list[str | bytes] = [
        "[" * 20_000 + "]" * 20_000,  # nesting deeper than the JSON parser's recursion limit
        '{"type": "resume", "last_ids": ' + "{" * 5000 + "}" * 5000 + "}",
        '{"type": "ping", "type": "dance"}',  # duplicate keys: the last one wins
        '{"type": NaN}', '{"type": Infinity}', "1e999", '"ping"', "null", "  ", "\ufeff{}",
        "\x00" * 100, bytes(range(256)), b"", b'{"type": "ping"}',
    ]
    while len(out) < size:
        r = rnd.random()
        if r < 0.6:
            out.append(json.dumps(_message(rnd), ensure_ascii=rnd.random() < 0.5))
        elif r < 0.8:
            out.append(json.dumps(_hostile_json(rnd)))
        elif r < 0.9:
            out.append("".join(chr(rnd.randrange(1, 0xD7FF)) for _ in range(rnd.randrange(1, 200))))
        else:
            out.append(rnd.randbytes(rnd.randrange(1, 2000)))
    return out


def _is_ping(frame: str | bytes) -> bool:
    try:
        message = json.loads(frame) if isinstance(frame, str) else None
    except (ValueError, RecursionError):
        return False
    return isinstance(message, dict) and message.get("type") == "ping"


async def _frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(json.loads(msg.data))
    return out


@pytest.fixture
async def hub_client(tmp_path, bus, store, evidence_dir):
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as c:
        assert (await login(c)).status == 200
        await asyncio.wait_for(app[state.HUB].ready.wait(), TIMEOUT)
        yield c


async def test_event_socket_answers_every_hostile_frame_with_an_error_and_stays_open(hub_client, bus, caplog):
    caplog.set_level(logging.WARNING, logger="citywall")
    frames = corpus()
    async with hub_client.ws_connect("/api/ws", max_msg_size=0) as ws:
        assert (await _frames(ws, 1))[0]["type"] == "hello"
        replies: list[dict[str, Any]] = []
        for i, frame in enumerate(frames):
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
            await ws.send_str('{"type": "ping"}')
            pongs, answer = 1 + _is_ping(frame), []
            while pongs:
                got = (await _frames(ws, 1))[0]
                if got == {"type": "pong"}:
                    pongs -= 1
                else:
                    answer.append(got)
            # At most one answer per frame: an error, or nothing for a valid resume with nothing to replay.
            assert len(answer) <= 1, (i, frame, answer)
            replies.extend(answer)
        errors = [r for r in replies if r.get("type") == "error"]
        assert all(r["type"] == "error" for r in replies), [r for r in replies if r["type"] != "error"][:3]
        assert len(replies) > len(frames) * 0.8  # nearly all of the corpus is wrong (a few are valid resumes)
        internal = [e for e in errors if "internal" in e["error"]]
        assert not [e for e in internal if "internal error" in e["error"]], internal
        # Every error names what was wrong (no bare "error"), in a bounded length.
        assert all(5 < len(e["error"]) <= 300 for e in errors), max(errors, key=lambda e: len(e["error"]))
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not [r for r in caplog.records if "event bus unavailable" in r.getMessage()]

        # The same connection still gets live alarms.
        alarm_id = await bus.publish(make_alarm(1))
        frame = (await _frames(ws, 1))[0]
        assert frame["type"] == "alarm" and frame["id"] == alarm_id


@pytest.mark.parametrize("stream_id", ["99999999999999999999-0", "18446744073709551616-0", "1-18446744073709551616",
                                       "١٢٣-٠"])
async def test_resume_from_an_id_redis_cannot_hold_is_a_field_error_not_a_bus_outage(hub_client, stream_id):
    async with hub_client.ws_connect("/api/ws") as ws:
        await _frames(ws, 1)
        await ws.send_json({"type": "resume", "last_ids": {"alarms": stream_id}})
        frame = (await _frames(ws, 1))[0]
        assert frame["type"] == "error" and frame["error"].startswith("last_ids.alarms: "), frame


@pytest.mark.parametrize("path", ["/api/ws", "/api/live/cam-a"])
async def test_a_plain_get_on_a_websocket_endpoint_is_a_400_naming_upgrade(hub_client, path):
    """Regression (found by the schema fuzz): the answer was aiohttp's own 'No WebSocket UPGRADE hdr: None'."""
    resp = await hub_client.get(path)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("Upgrade: this is a WebSocket endpoint")


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _raw_close_code(port: int, cookie: str, path: str, frame: bytes) -> int:
    """Open ``path`` by hand, send ``frame`` (already encoded), return the server's close code."""
    sock = _raw_ws_connect(port, cookie, path)
    try:
        sock.sendall(frame)
        return _read_until_close(sock)[0]
    finally:
        sock.close()


def _cookie(client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["cw_session"].value


@pytest.mark.parametrize("frame, code", [
    (_masked_frame(0x1, b"x" * (MAX_CLIENT_MESSAGE + 1)), 1009),  # over the size limit: message too big
    (_masked_frame(0x2, os.urandom(MAX_CLIENT_MESSAGE * 4)), 1009),
    (_masked_frame(0x1, b'{"type": "ping", "x": "\xff\xfe"}'), 1007),  # invalid UTF-8 in a text frame
    (_masked_frame(0x9, b"p" * 200), 1002),  # a control frame over 125 bytes: protocol error
    (bytes([0x83, 0x80]) + os.urandom(4), 1002),  # reserved opcode
], ids=["text-too-big", "binary-too-big", "bad-utf8", "long-control", "reserved-opcode"])  # stable under xdist
async def test_event_socket_closes_broken_frames_with_a_clear_code_and_serves_others(hub_client, bus, frame, code):
    assert await asyncio.to_thread(_raw_close_code, hub_client.port, _cookie(hub_client), "/api/ws", frame) == code
    async with hub_client.ws_connect("/api/ws") as ws:
        assert (await _frames(ws, 1))[0]["type"] == "hello"
        await ws.send_json({"type": "ping"})
        assert (await _frames(ws, 1))[0] == {"type": "pong"}
    health = await (await hub_client.get("/api/health")).json()
    assert health["hub"]["clients"] == 0


# ------------------------------------------------------------------------------------------------ live socket

service = pytest.importorskip("video_ingest.service")


@pytest.fixture
async def live_client(tmp_path, bus, store, evidence_dir, demo_rtsp):
    ingest = service.IngestService({"cam-a": demo_rtsp.url("vending")}, open_timeout_s=5.0, read_timeout_s=5.0)
    await ingest.start()
    app = create_app(make_settings(tmp_path), bus=bus, cases=store, live=ingest.live, evidence_dir=evidence_dir)
    try:
        async with wall_client(app) as c:
            assert (await login(c)).status == 200
            yield c
    finally:
        await ingest.stop()


async def _fragments(ws: aiohttp.ClientWebSocketResponse, n: int) -> None:
    for _ in range(n):
        msg = await ws.receive(timeout=30)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        assert msg.data[4:8] in (b"ftyp", b"moof"), msg.data[:8]


async def test_live_socket_ignores_garbage_closes_oversized_frames_and_keeps_serving(live_client):
    async with live_client.ws_connect("/api/live/cam-a") as ws:
        init = await ws.receive(timeout=30)
        assert json.loads(init.data)["type"] == "init"
        await _fragments(ws, 2)
        for frame in corpus(size=60):
            data = frame if isinstance(frame, bytes) else frame.encode()
            if len(data) <= MAX_LIVE_MESSAGE:
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        await _fragments(ws, 3)  # still streaming
    big = _masked_frame(0x2, os.urandom(MAX_LIVE_MESSAGE + 1))
    assert await asyncio.to_thread(_raw_close_code, live_client.port, _cookie(live_client), "/api/live/cam-a",
                                   big) == 1009
    for camera in ("..%2F..%2Fetc", "%00", "x" * 300, "cam-a%20", "<svg onload=alert(1)>"):
        async with live_client.ws_connect(f"/api/live/{camera}") as ws:
            frame = json.loads((await ws.receive(timeout=TIMEOUT)).data)
            assert frame["type"] == "error" and frame["error"].startswith("unknown camera"), (camera, frame)
    async with live_client.ws_connect("/api/live/cam-a") as ws:  # a fresh viewer still gets video
        assert json.loads((await ws.receive(timeout=30)).data)["type"] == "init"
        await _fragments(ws, 2)
    health = await (await live_client.get("/api/health")).json()
    assert health["live"]["viewers"] == 0
