"""Config models for voice guidance (pydantic, ``extra="forbid"``), for the lead to mount in ``config.settings``.

``GuidanceConfig`` is the ``guidance:`` section (TTS voice, clip dir, templates, policy); ``speakers:`` is a list
of ``guidance.speakers.SpeakerConfig``. Templates are parsed here, so a bad template stops start-up with the event
named, not at the first alarm.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guidance.clips import ClipFormat
from guidance.policy import PolicyConfig
from guidance.speakers import SpeakerConfig, check_unique_speakers
from guidance.templates import TemplateBook

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _parse_hhmm(value: str) -> time:
    m = _HHMM.match(value)
    if not m:
        raise ValueError(f"time must be HH:MM (00:00-23:59), got {value!r}")
    return time(int(m.group(1)), int(m.group(2)))


class PolicySettings(BaseModel):
    """``guidance.policy``: quiet hours (site-local ``HH:MM``; equal = none) and per-site limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quiet_start: str = "22:00"
    quiet_end: str = "07:00"
    max_per_hour: int = Field(default=6, ge=1)
    min_repeat_interval_s: float = Field(default=300.0, ge=0)

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _parse_hhmm(v)
        return v

    def to_policy(self, timezone: str) -> PolicyConfig:
        """The policy's own config, with the site time zone (from the detection/site settings)."""
        return PolicyConfig(_parse_hhmm(self.quiet_start), _parse_hhmm(self.quiet_end), timezone,
                            self.max_per_hour, self.min_repeat_interval_s)


class GuidanceConfig(BaseModel):
    """``guidance:``: off by default; when on, alarms at cameras with speakers are answered by voice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    voice: str = "cmn-latn-pinyin"
    speed_wpm: int = Field(default=150, ge=80, le=450)
    clip_dir: Path = Path("var/guidance-clips")
    repeat: int = Field(default=2, ge=1, le=10)
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)
    formats: dict[str, ClipFormat] = Field(default_factory=lambda: {"mqtt": ClipFormat.MP3,
                                                                    "http": ClipFormat.MP3,
                                                                    "hall": ClipFormat.OPUS})
    templates: dict[str, str] = Field(default_factory=dict)  # overrides/additions to the defaults, by event
    policy: PolicySettings = Field(default_factory=PolicySettings)
    speakers: list[SpeakerConfig] = Field(default_factory=list)

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        TemplateBook(v)  # TemplateError (a ValueError) names the event and the bad field
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: dict[str, ClipFormat]) -> dict[str, ClipFormat]:
        unknown = sorted(set(v) - {"mqtt", "http", "hall"})
        if unknown:
            raise ValueError(f"unknown adapter kind {unknown[0]!r} (known: hall, http, mqtt)")
        return v

    @field_validator("speakers")
    @classmethod
    def _speakers(cls, v: list[SpeakerConfig]) -> list[SpeakerConfig]:
        return check_unique_speakers(v)

    def template_book(self) -> TemplateBook:
        """The templates: defaults plus this config's overrides."""
        return TemplateBook(self.templates)
