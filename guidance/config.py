"""Runtime objects from the ``guidance:`` settings section, whose schema lives in ``config.guidance``.

``GuidanceConfig`` is the settings model (re-exported under this package's old name); the helpers here turn it into
the policy's config, the template book and the clip format per adapter kind.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

from config.guidance import (
    ClosedLoopSettings,
    GuidanceSettings,
    ManualSettings,
    PolicySettings,
    ScheduleSettings,
    SpeakerSettings,
)
from guidance.clips import ClipFormat
from guidance.policy import PolicyConfig
from guidance.templates import TemplateBook

GuidanceConfig = GuidanceSettings


def _hhmm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


def policy_config(policy: PolicySettings, timezone: str) -> PolicyConfig:
    """The pure policy's config from ``guidance.policy`` and the site time zone."""
    return PolicyConfig(_hhmm(policy.quiet_start), _hhmm(policy.quiet_end), timezone, policy.max_per_hour,
                        policy.min_repeat_interval_s)


def template_book(cfg: GuidanceSettings) -> TemplateBook:
    """The templates: defaults plus the config's overrides."""
    return TemplateBook(cfg.templates)


def formats(cfg: GuidanceSettings) -> dict[str, ClipFormat]:
    """Clip format per adapter kind."""
    return {kind: ClipFormat(f) for kind, f in cfg.formats.items()}


def clip_dir(cfg: GuidanceSettings, data_dir: Path) -> Path:
    """Where clips live: ``guidance.clip_dir`` or ``<data_dir>/guidance-clips``."""
    return cfg.clip_dir if cfg.clip_dir is not None else Path(data_dir) / "guidance-clips"


__all__ = ["ClosedLoopSettings", "GuidanceConfig", "GuidanceSettings", "ManualSettings", "PolicySettings",
           "ScheduleSettings", "SpeakerSettings", "clip_dir", "formats", "policy_config", "template_book"]
