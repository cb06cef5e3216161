"""Builds the guidance room from settings: TTS, clip cache and library, registry, policy, adapters (MQTT, HTTP,
hall), service, broadcaster, closed loop and schedule ticker. ``citywall.up`` and the tests use it, so both run the
same wiring.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config import Settings
from guidance.broadcaster import Broadcaster
from guidance.clips import ClipCache
from guidance.config import clip_dir, formats, policy_config, template_book
from guidance.hall import HallAdapter
from guidance.http_speaker import HttpSpeakerAdapter
from guidance.library import ClipLibrary
from guidance.loop import GuidanceLoop
from guidance.policy import BroadcastPolicy
from guidance.schedule import ScheduleTicker
from guidance.service import GuidanceService
from guidance.speakers import MqttSpeakerAdapter, SpeakerRegistry
from guidance.tts import EspeakTts, TtsEngine

if TYPE_CHECKING:
    from broker.bus import Bus

log = logging.getLogger("citywall.guidance")


@dataclass
class GuidanceRuntime:
    """Everything the guidance room runs; ``start()`` connects the adapters and pre-renders, ``close()`` undoes."""

    settings: Settings
    registry: SpeakerRegistry
    cache: ClipCache
    library: ClipLibrary
    service: GuidanceService
    broadcaster: Broadcaster
    loop: GuidanceLoop
    ticker: ScheduleTicker
    mqtt: MqttSpeakerAdapter | None
    http: HttpSpeakerAdapter | None
    extras: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.start()
        if self.http is not None:
            await self.http.start()
        texts = await asyncio.to_thread(self._template_texts)
        clips = await self.service.prerender(texts)
        fmts = {self.broadcaster.hall_format}
        await asyncio.to_thread(self.cache.prerender, texts, list(fmts))  # the hall copy
        log.info("guidance: %d speakers, %d clips pre-rendered", len(self.registry), len(clips) + len(texts))

    def _template_texts(self) -> list[str]:
        """Each event's message at each speaker's place (the places alarms there will name)."""
        g = self.settings.guidance
        texts: list[str] = []
        for cam in self.settings.cameras:
            if not g.speakers_for(cam.id):
                continue
            for zone in cam.zones:
                for ev in zone.events:
                    template = self.service.templates.templates.get(ev.value)
                    if template is None or "time" in template.variables:
                        continue  # a message with the time in it cannot be rendered ahead
                    text = template.render({"place": zone.name or cam.name} if "place" in template.variables else {})
                    if text not in texts:
                        texts.append(text)
        return texts

    def speaker_status(self, speaker_id: str) -> dict[str, Any]:
        """``{"online": True/False/None, "at", "last_ack_at"}`` from the speaker's adapter."""
        s = self.registry.get(speaker_id)
        if s.adapter == "mqtt" and self.mqtt is not None:
            return self.mqtt.status(speaker_id)
        if s.adapter == "hall":
            return {"online": True, "at": None, "last_ack_at": None}
        return {"online": None, "at": None, "last_ack_at": None}  # HTTP speakers are only known when asked

    async def close(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.close()
        if self.http is not None:
            await self.http.close()


def build_guidance(settings: Settings, bus: Bus, *, mqtt_url: str | None, clip_url: Callable[[str], str],
                   tts: TtsEngine | None = None, consumer: str | None = None) -> GuidanceRuntime:
    """The guidance room for ``settings`` (``settings.guidance.enabled`` is the caller's check)."""
    g = settings.guidance
    directory = clip_dir(g, settings.storage.data_dir)
    engine = tts or EspeakTts(g.voice, speed_wpm=g.speed_wpm)
    cache = ClipCache(directory, engine)
    library = ClipLibrary(directory)
    registry = SpeakerRegistry.from_config(g.speakers)
    kinds = {s.adapter for s in registry}
    adapters: dict[str, Any] = {"hall": HallAdapter()}
    mqtt = None
    if "mqtt" in kinds:
        if mqtt_url is None:
            raise ValueError("guidance.speakers has MQTT speakers but there is no MQTT broker")
        mqtt = MqttSpeakerAdapter(mqtt_url, settings.brokers.topic_prefix, ack_timeout_s=g.ack_timeout_s)
        adapters["mqtt"] = mqtt
    http = None
    if "http" in kinds:
        http = HttpSpeakerAdapter.from_registry(registry, timeout_s=g.ack_timeout_s)
        adapters["http"] = http
    policy = BroadcastPolicy(policy_config(g.policy, settings.timezone))
    service = GuidanceService(registry, template_book(g), cache, policy, adapters, clip_url, formats=formats(g),
                              repeat=g.repeat)
    broadcaster = Broadcaster(service, bus.publish, library=library)
    loop = GuidanceLoop(bus, broadcaster, g.defers_filing, recheck_after_s=g.closed_loop.recheck_after_s,
                        consumer=consumer or f"guidance-{socket.gethostname()}")
    ticker = ScheduleTicker(broadcaster, list(g.schedules), settings.timezone)
    return GuidanceRuntime(settings, registry, cache, library, service, broadcaster, loop, ticker, mqtt, http)


__all__ = ["GuidanceRuntime", "build_guidance"]
