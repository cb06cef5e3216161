"""HTTP speakers: a real aiohttp speaker on 127.0.0.1 that fetches the clip it is told to play and decodes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from guidance.clip_server import ClipServer
from guidance.clips import AudioInfo, ClipCache, ClipFormat, probe_audio
from guidance.http_speaker import HttpSpeakerAdapter
from guidance.speakers import PlayCommand, SpeakerAdapter, SpeakerConfig, SpeakerRegistry
from guidance.tts import EspeakTts

TEXT = "您好，此处为解放路，禁止占用道路堆放物品，请立即清理。"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def speaker_server() -> AsyncIterator[tuple[str, list[tuple[dict[str, Any], AudioInfo]]]]:
    played: list[tuple[dict[str, Any], AudioInfo]] = []

    async def play(request: web.Request) -> web.Response:
        command = await request.json()
        async with aiohttp.ClientSession() as s, s.get(command["clip_url"]) as r:
            if r.status != 200:
                return web.json_response({"ok": False, "reason": f"clip http {r.status}"})
            info = probe_audio(await r.read())
        played.append((command, info))
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.add_routes([web.post("/play", play), web.post("/slow", slow), web.post("/broken", broken)])
    runner, base = await _serve(app)
    yield base, played
    await runner.cleanup()


@pytest.fixture
async def clips(tmp_path: Path) -> AsyncIterator[tuple[ClipCache, ClipServer]]:
    cache = ClipCache(tmp_path, EspeakTts())
    server = ClipServer(tmp_path)
    await server.start()
    yield cache, server
    await server.stop()


async def test_http_speaker_plays_the_clip(speaker_server, clips) -> None:  # type: ignore[no-untyped-def]
    base, played = speaker_server
    cache, server = clips
    registry = SpeakerRegistry.from_config([
        SpeakerConfig(id="h1", name="厂商喇叭", adapter="http", url=f"{base}/play"),
        SpeakerConfig(id="h2", name="慢喇叭", adapter="http", url=f"{base}/slow"),
        SpeakerConfig(id="h3", name="坏喇叭", adapter="http", url=f"{base}/broken"),
        SpeakerConfig(id="m1", name="MQTT喇叭"),
    ])
    adapter = HttpSpeakerAdapter.from_registry(registry, timeout_s=5.0)
    assert isinstance(adapter, SpeakerAdapter) and set(adapter.urls) == {"h1", "h2", "h3"}
    await adapter.start()
    try:
        clip = cache.get(TEXT, ClipFormat.MP3)
        ack = await adapter.play(PlayCommand("h1", server.url(clip.name), text=TEXT))
        assert ack.ok, ack.reason
        command, info = played[-1]
        assert command["text"] == TEXT
        assert info.duration_s == pytest.approx(probe_audio(cache.engine.render_wav(TEXT)).duration_s, rel=0.10)
        assert info.rms_dbfs > -35
        missing = await adapter.play(PlayCommand("h1", server.url("0" * 32 + ".mp3")))
        assert (missing.ok, missing.reason) == (False, "clip http 404")
        impatient = HttpSpeakerAdapter({"h2": adapter.urls["h2"]}, timeout_s=0.3)
        await impatient.start()
        try:
            slow = await impatient.play(PlayCommand("h2", server.url(clip.name)))
            assert (slow.ok, slow.reason) == (False, "timeout")
        finally:
            await impatient.close()
        broken = await adapter.play(PlayCommand("h3", server.url(clip.name)))
        assert (broken.ok, broken.reason) == (False, "http 500")
        unknown = await adapter.play(PlayCommand("m1", server.url(clip.name)))
        assert not unknown.ok and "no http url for speaker 'm1'" in unknown.reason
        assert adapter.stats() == {"sent": 3, "failed": 2}
    finally:
        await adapter.close()


async def test_unreachable_speaker_and_missing_url() -> None:
    adapter = HttpSpeakerAdapter({"h": "http://127.0.0.1:1/play"}, timeout_s=1.0)
    await adapter.start()
    try:
        ack = await adapter.play(PlayCommand("h", "http://127.0.0.1:1/x.mp3"))
        assert not ack.ok and ack.reason.startswith("unreachable")
    finally:
        await adapter.close()
    with pytest.raises(ValueError, match="'h9' has adapter 'http' but no url"):
        HttpSpeakerAdapter.from_registry(SpeakerRegistry.from_config([SpeakerConfig(id="h9", name="x",
                                                                                    adapter="http")]))


async def test_http_speakers_authenticate_with_a_bearer_token_or_basic() -> None:
    seen: list[str | None] = []

    async def play(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"ok": request.headers.get("Authorization") is not None})

    app = web.Application()
    app.add_routes([web.post("/play", play)])
    runner, base = await _serve(app)
    host = base.removeprefix("http://")
    try:
        registry = SpeakerRegistry.from_config([
            SpeakerConfig(id="tok", name="t", adapter="http", url=f"{base}/play", auth_token="s3cret-token-1"),
            SpeakerConfig(id="basic", name="b", adapter="http", url=f"http://admin:p%40ss@{host}/play"),
            SpeakerConfig(id="open", name="o", adapter="http", url=f"{base}/play"),
        ])
        adapter = HttpSpeakerAdapter.from_registry(registry)
        assert "p%40ss" not in adapter.urls["basic"] and "admin" not in adapter.urls["basic"]
        assert "s3cret" not in repr(registry.get("tok"))
        await adapter.start()
        try:
            acks = [await adapter.play(PlayCommand(command_id=f"c-{sid}", speaker_id=sid, clip_url="http://x/c.mp3",
                                                   text="t", volume=50)) for sid in ("tok", "basic", "open")]
        finally:
            await adapter.close()
        assert seen == ["Bearer s3cret-token-1", "Basic YWRtaW46cEBzcw==", None]
        assert [a.ok for a in acks] == [True, True, False]
    finally:
        await runner.cleanup()
