"""Guidance config: defaults, strictness, and errors that name the bad key."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from guidance.clips import ClipFormat
from guidance.config import GuidanceConfig, PolicySettings


def test_defaults_and_conversion() -> None:
    cfg = GuidanceConfig.model_validate({"enabled": True, "policy": {"quiet_start": "23:30", "max_per_hour": 3},
                                         "templates": {"vending": "{place}禁止摆摊。"},
                                         "speakers": [{"id": "spk-1", "name": "喇叭", "camera_ids": ["cam-1"]}]})
    policy = cfg.policy.to_policy("Asia/Shanghai")
    assert (policy.quiet_start, policy.quiet_end, policy.max_per_hour) == (time(23, 30), time(7, 0), 3)
    assert cfg.formats["mqtt"] is ClipFormat.MP3 and cfg.speakers[0].adapter == "mqtt"
    assert cfg.template_book().render("vending", place="东门") == "东门禁止摆摊。"
    assert not GuidanceConfig().enabled


@pytest.mark.parametrize(("data", "where"), [
    ({"speed": 150}, "speed"),
    ({"policy": {"quiet_start": "25:00"}}, "quiet_start"),
    ({"policy": {"max_per_hour": 0}}, "max_per_hour"),
    ({"policy": {"quiet": "x"}}, "quiet"),
    ({"templates": {"vending": "{place.x}"}}, "template 'vending'"),
    ({"formats": {"sip": "mp3"}}, "unknown adapter kind 'sip'"),
    ({"formats": {"mqtt": "aac"}}, "formats.mqtt"),
    ({"speakers": [{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]}, "duplicate id 'a'"),
    ({"speakers": [{"id": "a", "name": "x", "cameras": []}]}, "speakers.0.cameras"),
])
def test_bad_config_names_the_key(data: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        GuidanceConfig.model_validate(data)


def test_policy_settings_frozen() -> None:
    with pytest.raises(ValidationError):
        PolicySettings().max_per_hour = 2  # type: ignore[misc]
