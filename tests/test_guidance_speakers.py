"""Speakers over real Mosquitto: adapter → simulated speaker (fetches the clip over HTTP, decodes it) → ack.

The simulator is a separate MQTT client that downloads the clip from a ClipServer on 127.0.0.1 and measures it
with PyAV; the test checks what the speaker actually received: non-silent audio of the expected length.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError

from guidance.clip_server import ClipServer
from guidance.clips import ClipCache, ClipFormat, probe_audio
from guidance.simulator import SpeakerSimulator
from guidance.speakers import (
    Ack,
    MqttSpeakerAdapter,
    PlayCommand,
    SpeakerAdapter,
    SpeakerConfig,
    SpeakerRegistry,
    check_unique_speakers,
)
from guidance.templates import TemplateBook
from guidance.tts import EspeakTts


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ClipCache:
    return ClipCache(tmp_path_factory.mktemp("clips"), EspeakTts())


@pytest.fixture
async def clip_server(cache: ClipCache) -> AsyncIterator[ClipServer]:
    server = ClipServer(cache.directory)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def adapter(mqtt_url: str, prefix: str) -> AsyncIterator[MqttSpeakerAdapter]:
    a = MqttSpeakerAdapter(mqtt_url, prefix, ack_timeout_s=3.0)
    await a.start()
    yield a
    await a.close()


@pytest.fixture
def simulator(mqtt_url: str, prefix: str) -> Iterator[SpeakerSimulator]:
    sim = SpeakerSimulator(mqtt_url, "spk-renmin-1", prefix)
    sim.start()
    yield sim
    sim.stop()


@pytest.mark.parametrize("fmt", [ClipFormat.ALAW_WAV, ClipFormat.MP3])
async def test_play_reaches_speaker_with_audible_clip_of_expected_length(
        cache: ClipCache, clip_server: ClipServer, adapter: MqttSpeakerAdapter, simulator: SpeakerSimulator,
        fmt: ClipFormat) -> None:
    assert isinstance(adapter, SpeakerAdapter)
    text = TemplateBook().render("vending", place="人民路与解放路交叉口")
    clip = cache.get(text, fmt)
    expected_s = probe_audio(cache.engine.render_wav(text)).duration_s
    command = PlayCommand("spk-renmin-1", clip_server.url(clip.name), text=text, volume=70, repeat=2, priority=20)
    ack = await adapter.play(command)
    assert ack == Ack(command.command_id, True, "", ack.latency_s)
    assert 0 < ack.latency_s < 3.0
    played = simulator.played[-1]
    assert played.error == ""
    assert played.command == command.to_dict()
    assert played.info is not None
    assert played.info.duration_s == pytest.approx(expected_s, rel=0.10)
    assert played.info.rms_dbfs > -35.0  # speech, not silence
    assert adapter.stats()["acked"] == 1 and adapter.stats()["pending"] == 0


async def test_speaker_reports_a_clip_it_cannot_fetch(clip_server: ClipServer, adapter: MqttSpeakerAdapter,
                                                      simulator: SpeakerSimulator) -> None:
    ack = await adapter.play(PlayCommand("spk-renmin-1", clip_server.url("0" * 32 + ".wav")))
    assert not ack.ok and "404" in ack.reason


async def test_timeout_when_no_speaker_answers(mqtt_url: str, prefix: str, clip_server: ClipServer) -> None:
    a = MqttSpeakerAdapter(mqtt_url, prefix, ack_timeout_s=0.4)
    await a.start()
    try:
        ack = await a.play(PlayCommand("spk-offline", clip_server.url("0" * 32 + ".mp3")))
        assert (ack.ok, ack.reason) == (False, "timeout")
        assert 0.35 < ack.latency_s < 2.0
        assert a.stats()["timeouts"] == 1 and a.stats()["pending"] == 0
    finally:
        await a.close()


async def test_timeout_after_the_simulator_is_switched_off(mqtt_url: str, prefix: str, cache: ClipCache,
                                                           clip_server: ClipServer) -> None:
    a = MqttSpeakerAdapter(mqtt_url, prefix, ack_timeout_s=0.4)
    await a.start()
    sim = SpeakerSimulator(mqtt_url, "spk-2", prefix)
    sim.start()
    try:
        url = clip_server.url(cache.get("您好，请勿乱扔垃圾。", ClipFormat.MP3).name)
        assert (await a.play(PlayCommand("spk-2", url))).ok
        sim.stop()
        ack = await a.play(PlayCommand("spk-2", url))
        assert (ack.ok, ack.reason) == (False, "timeout")
    finally:
        sim.stop()
        await a.close()


async def test_adapter_refuses_unreachable_broker_and_bad_url() -> None:
    with pytest.raises(ValueError, match="mqtt://"):
        MqttSpeakerAdapter("http://127.0.0.1:1")
    a = MqttSpeakerAdapter("mqtt://127.0.0.1:1", connect_timeout_s=0.5)
    with pytest.raises(ConnectionError, match="127.0.0.1:1"):
        await a.start()


async def test_clip_server_serves_only_clips(clip_server: ClipServer, cache: ClipCache) -> None:
    import aiohttp

    clip = cache.get("您好，请勿乱扔垃圾。", ClipFormat.OPUS)
    async with aiohttp.ClientSession() as s:
        async with s.get(clip_server.url(clip.name)) as r:
            assert r.status == 200 and r.content_type == "audio/ogg"
            assert await r.read() == clip.path.read_bytes()
        for bad in ("..%2Fetc%2Fpasswd", ".hidden.wav", "f" * 32 + ".exe"):
            async with s.get(f"{clip_server.base_url}/{bad}") as r:
                assert r.status == 404


def test_speaker_config_and_registry() -> None:
    configs = [SpeakerConfig(id="spk-1", name="人民路口喇叭", camera_ids=["cam-1", "cam-2"], area="东城"),
               SpeakerConfig(id="spk-2", name="解放路喇叭", camera_ids=["cam-2"], area="西城", adapter="http",
                             url="http://10.0.0.5/api/play")]
    reg = SpeakerRegistry.from_config(check_unique_speakers(configs))
    assert [s.id for s in reg.for_camera("cam-2")] == ["spk-1", "spk-2"]
    assert reg.for_camera("cam-9") == [] and [s.id for s in reg.in_area("东城")] == ["spk-1"]
    assert reg.get("spk-2").adapter == "http" and len(reg) == 2
    with pytest.raises(KeyError, match="unknown speaker 'nope'"):
        reg.get("nope")
    with pytest.raises(ValueError, match="duplicate id 'spk-1'"):
        check_unique_speakers([configs[0], configs[0]])


@pytest.mark.parametrize(("data", "field"), [
    ({"id": "s", "name": "n", "colour": "red"}, "colour"),
    ({"id": "s/1", "name": "n"}, "id"),
    ({"id": "s", "name": "n", "adapter": "sip"}, "adapter"),
    ({"id": "s", "name": "n", "volume": 101}, "volume"),
    ({"id": "s", "name": "n", "url": "ftp://x"}, "url"),
])
def test_speaker_config_rejects(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        SpeakerConfig(**data)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"volume": 101}, "volume"), ({"repeat": 0}, "repeat"), ({"clip_url": ""}, "clip_url"),
])
def test_play_command_rejects(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"speaker_id": "s", "clip_url": "http://127.0.0.1/x.wav"} | kwargs
    with pytest.raises(ValueError, match=message):
        PlayCommand(**args)  # type: ignore[arg-type]
