"""The guidance service: a raised alarm (or an operator) → message → policy → cached clip → speakers → acks.

It wires the pure parts (templates, policy) to the effectful ones (clip cache, speaker adapters) and returns one
``BroadcastResult`` per speaker, which the caller logs on the case ("log every broadcast on the case"). Alarms are
duck-typed (``AlarmLike``), so this package does not import ``detectors``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from guidance.clips import Clip, ClipCache, ClipFormat
from guidance.policy import Broadcast, BroadcastPolicy, BroadcastRequest, Priority
from guidance.speakers import Ack, PlayCommand, Speaker, SpeakerAdapter, SpeakerRegistry
from guidance.templates import TemplateBook, TemplateError

Outcome = Literal["played", "refused", "failed", "skipped"]
ClipSource = Callable[[ClipFormat], Clip]
"""A clip in a given format (an uploaded recording); the text-to-speech path uses the cache instead."""

# Which clip format each adapter kind plays. GB/T 28181 speakers would take ALAW_WAV.
DEFAULT_FORMATS: dict[str, ClipFormat] = {"mqtt": ClipFormat.MP3, "http": ClipFormat.MP3, "hall": ClipFormat.OPUS}


class AlarmLike(Protocol):
    """What the service reads from an alarm (``messages.Alarm`` fits; read-only, so a narrower type does too)."""

    @property
    def alarm_id(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def camera_id(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def camera_name(self) -> str: ...
    @property
    def zone_name(self) -> str: ...
    @property
    def extra(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BroadcastResult:
    """What happened at one speaker: ``outcome`` with a ``reason`` (refusal code, ack reason or error)."""

    speaker_id: str
    outcome: Outcome
    reason: str
    text: str
    at: float
    alarm_id: str | None = None
    clip_url: str | None = None
    ack: Ack | None = None
    requested_by: str = "system"

    def to_dict(self) -> dict[str, Any]:
        """For the case timeline / the bus."""
        return asdict(self)


def default_place(alarm: AlarmLike) -> str:
    """The spoken place: ``extra["place"]``, else the zone name, else the camera name, else "此处"."""
    return str(alarm.extra.get("place") or alarm.zone_name or alarm.camera_name or "此处")


class GuidanceService:
    """Plays guidance at the speakers covering an alarm's camera, within the broadcast policy.

    ``adapters`` maps an adapter kind ("mqtt", "http", "hall") to its ``SpeakerAdapter``; ``clip_url(name)`` turns a
    cached clip's file name into the URL speakers fetch. ``clock`` is injectable for tests.
    """

    def __init__(self, registry: SpeakerRegistry, templates: TemplateBook, cache: ClipCache, policy: BroadcastPolicy,
                 adapters: Mapping[str, SpeakerAdapter], clip_url: Callable[[str], str], *,
                 formats: Mapping[str, ClipFormat] | None = None, repeat: int = 2,
                 place_of: Callable[[AlarmLike], str] = default_place,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.templates = templates
        self.cache = cache
        self.policy = policy
        self.adapters = dict(adapters)
        self.clip_url = clip_url
        self.formats = dict(DEFAULT_FORMATS if formats is None else formats)
        self.repeat = repeat
        self.place_of = place_of
        self.clock = clock
        self._tz = ZoneInfo(policy.config.timezone)

    async def on_alarm(self, alarm: AlarmLike) -> list[BroadcastResult]:
        """Warn at every speaker covering ``alarm.camera_id`` (only for phase "raised"; [] otherwise)."""
        if alarm.phase != "raised":
            return []
        speakers = self.registry.for_camera(alarm.camera_id)
        if not speakers:
            return []
        now = self.clock()
        try:
            text = self.alarm_text(alarm, now)
        except TemplateError as exc:
            return [BroadcastResult(s.id, "skipped", str(exc), "", now, alarm.alarm_id) for s in speakers]
        return list(await asyncio.gather(*(
            self._broadcast(s, text, Priority.AUTOMATIC, self.repeat, alarm.alarm_id, "system") for s in speakers)))

    def alarm_text(self, alarm: AlarmLike, now: float) -> str:
        """The spoken warning for ``alarm``: its event's template with ``place`` and local ``time`` (TemplateError)."""
        template = self.templates.templates.get(alarm.event)
        if template is None:
            return self.templates.render(alarm.event)  # raises, naming the known events
        values = {"place": self.place_of(alarm), "time": datetime.fromtimestamp(now, self._tz).strftime("%H:%M")}
        return template.render({k: v for k, v in values.items() if k in template.variables})

    async def manual(self, speaker_id: str, text: str, *, requested_by: str, repeat: int = 1,
                     clip: ClipSource | None = None) -> BroadcastResult:
        """A leader/operator broadcast: pre-empts automatic ones, passes quiet hours and limits. KeyError if unknown.

        ``clip`` plays an uploaded recording instead of speaking ``text`` (which then only describes it)."""
        speaker = self.registry.get(speaker_id)
        return await self._broadcast(speaker, text, Priority.MANUAL, repeat, None, requested_by, clip)

    async def scheduled(self, speaker_id: str, text: str, *, requested_by: str = "schedule",
                        repeat: int = 1) -> BroadcastResult:
        """A timetabled policy message: the lowest priority, refused in quiet hours and while anything plays."""
        speaker = self.registry.get(speaker_id)
        return await self._broadcast(speaker, text, Priority.SCHEDULED, repeat, None, requested_by)

    async def prerender(self, texts: list[str]) -> list[Clip]:
        """Render ``texts`` in every format the configured adapters use (start-up), so alarms hit the cache."""
        kinds = {s.adapter for s in self.registry}
        fmts = sorted({self.formats[k] for k in kinds if k in self.formats}, key=lambda f: f.value)
        return await asyncio.to_thread(self.cache.prerender, texts, fmts)

    async def _broadcast(self, speaker: Speaker, text: str, priority: Priority, repeat: int, alarm_id: str | None,
                         requested_by: str, clip_source: ClipSource | None = None) -> BroadcastResult:
        now = self.clock()

        def result(outcome: Outcome, reason: str, **kw: Any) -> BroadcastResult:
            return BroadcastResult(speaker.id, outcome, reason, text, now, alarm_id, requested_by=requested_by, **kw)

        adapter = self.adapters.get(speaker.adapter)
        fmt = self.formats.get(speaker.adapter)
        if adapter is None or fmt is None:
            return result("skipped", f"no adapter for kind {speaker.adapter!r}")
        online = getattr(adapter, "online", None)
        if callable(online) and online(speaker.id) is False:
            # Known offline (its last will / status said so): report it rather than wait out the ack timeout.
            return result("failed", "offline")
        try:
            if clip_source is not None:
                clip = await asyncio.to_thread(clip_source, fmt)
            else:
                clip = await asyncio.to_thread(self.cache.get, text, fmt)
        except Exception as exc:  # TTS/encode failure must not stop the other speakers
            return result("failed", f"clip: {exc}")
        decision = self.policy.decide(
            BroadcastRequest(speaker.id, text, clip.info.duration_s, priority, repeat, alarm_id, requested_by), now)
        if not isinstance(decision, Broadcast):
            return result("refused", f"{decision.reason}: {decision.detail}")
        url = self.clip_url(clip.name)
        command = PlayCommand(speaker.id, url, text=text, volume=speaker.volume, repeat=repeat,
                              priority=int(priority))
        ack = await adapter.play(command)
        if not ack.ok:
            self.policy.finished(speaker.id, self.clock(), played=False)  # nothing is playing there
            return result("failed", ack.reason, clip_url=url, ack=ack)
        return result("played", "", clip_url=url, ack=ack)
