"""Guidance service end to end on real Mosquitto: alarm → template → policy → cached clip → simulated speakers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from guidance.clip_server import ClipServer
from guidance.clips import ClipCache
from guidance.policy import BroadcastPolicy, PolicyConfig
from guidance.service import GuidanceService
from guidance.simulator import SpeakerSimulator
from guidance.speakers import MqttSpeakerAdapter, SpeakerConfig, SpeakerRegistry
from guidance.templates import TemplateBook
from guidance.tts import EspeakTts
from messages.alarm import Alarm

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def alarm(phase: str = "raised", event: str = "vending", camera: str = "cam-1") -> Alarm:
    return Alarm(alarm_id=uuid.uuid4().hex, phase=phase, camera_id=camera, zone_id="z1", event=event,  # type: ignore[arg-type]
                 started_at=NOON - 300, at=NOON, dwell_s=300, confidence=0.9, camera_name="人民路口",
                 zone_name="人民路东侧人行道")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def setup(mqtt_url: str, tmp_path: Path) -> AsyncIterator[tuple[GuidanceService, Clock, list[SpeakerSimulator]]]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    registry = SpeakerRegistry.from_config([
        SpeakerConfig(id="spk-a", name="东侧喇叭", camera_ids=["cam-1"]),
        SpeakerConfig(id="spk-b", name="西侧喇叭", camera_ids=["cam-1", "cam-2"]),
        SpeakerConfig(id="spk-off", name="坏喇叭", camera_ids=["cam-3"]),
        SpeakerConfig(id="spk-http", name="厂商喇叭", camera_ids=["cam-4"], adapter="http"),
    ])
    cache = ClipCache(tmp_path / "clips", EspeakTts())
    server = ClipServer(cache.directory)
    await server.start()
    adapter = MqttSpeakerAdapter(mqtt_url, prefix, ack_timeout_s=0.5)
    await adapter.start()
    sims = [SpeakerSimulator(mqtt_url, sid, prefix) for sid in ("spk-a", "spk-b")]
    for s in sims:
        s.start()
    clock = Clock(NOON)
    service = GuidanceService(registry, TemplateBook(), cache, BroadcastPolicy(PolicyConfig()), {"mqtt": adapter},
                              server.url, clock=clock)
    try:
        yield service, clock, sims
    finally:
        for s in sims:
            s.stop()
        await adapter.close()
        await server.stop()


async def test_alarm_plays_at_every_covering_speaker_then_policy_applies(setup) -> None:  # type: ignore[no-untyped-def]
    service, clock, sims = setup
    a = alarm()
    results = await service.on_alarm(a)
    assert [(r.speaker_id, r.outcome) for r in results] == [("spk-a", "played"), ("spk-b", "played")]
    expected = "您好，此处为人民路东侧人行道，禁止占道经营，请立即离开。"
    for r, sim in zip(results, sims, strict=False):
        assert r.text == expected and r.alarm_id == a.alarm_id and r.ack is not None and r.ack.ok
        played = sim.played[-1]
        assert played.command["text"] == expected and played.command["repeat"] == 2
        assert played.info is not None and played.info.rms_dbfs > -35 and played.info.duration_s > 3
    clock.t += 5  # still playing (2 × ~8 s)
    again = await service.on_alarm(alarm())
    assert [r.outcome for r in again] == ["refused", "refused"] and again[0].reason.startswith("busy")
    boss = await service.manual("spk-a", "请大家注意安全。", requested_by="leader")
    assert boss.outcome == "played" and boss.requested_by == "leader"
    assert sims[0].played[-1].command["priority"] == 30
    clock.t += 60
    assert [r.reason.split(":")[0] for r in await service.on_alarm(alarm())] == ["repeat_too_soon"] * 2
    assert service.cache.stats()["misses"] == 2 and service.cache.stats()["hits"] >= 3


async def test_no_speakers_cleared_phase_offline_and_missing_adapter(setup) -> None:  # type: ignore[no-untyped-def]
    service, clock, _ = setup
    assert await service.on_alarm(alarm(phase="cleared")) == []
    assert await service.on_alarm(alarm(camera="cam-9")) == []
    [offline] = await service.on_alarm(alarm(camera="cam-3", event="bin_overflow"))
    assert (offline.outcome, offline.reason) == ("failed", "timeout")
    # A failed play neither blocks the site nor counts: the same warning may be retried at once.
    [retry] = await service.on_alarm(alarm(camera="cam-3", event="bin_overflow"))
    assert (retry.outcome, retry.reason) == ("failed", "timeout")
    [http] = await service.on_alarm(alarm(camera="cam-4"))
    assert (http.outcome, http.reason) == ("skipped", "no adapter for kind 'http'")
    [unknown] = await service.on_alarm(alarm(camera="cam-3", event="parking"))
    assert unknown.outcome == "skipped" and "no template for event 'parking'" in unknown.reason
    with pytest.raises(KeyError, match="spk-zz"):
        await service.manual("spk-zz", "x", requested_by="leader")


async def test_prerender_fills_the_cache(setup) -> None:  # type: ignore[no-untyped-def]
    service, _, _ = setup
    clips = await service.prerender([TemplateBook().render("vending", place="人民路东侧人行道")])
    assert [c.format.value for c in clips] == ["mp3"]
    await service.on_alarm(alarm())
    assert service.cache.stats() == {"hits": 2, "misses": 1, "hit_rate": pytest.approx(2 / 3)}
