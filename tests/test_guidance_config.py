"""Guidance config: defaults, strictness, errors that name the bad key, and the cross-checks in ``parse_settings``."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from config import ConfigError, load_settings, parse_settings
from guidance.clips import ClipFormat
from guidance.config import GuidanceConfig, PolicySettings, formats, policy_config, template_book

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"


def test_defaults_and_conversion() -> None:
    cfg = GuidanceConfig.model_validate({"enabled": True, "policy": {"quiet_start": "23:30", "max_per_hour": 3},
                                         "templates": {"vending": "{place}禁止摆摊。"},
                                         "speakers": [{"id": "spk-1", "name": "喇叭", "camera_ids": ["cam-1"]}]})
    policy = policy_config(cfg.policy, "Asia/Shanghai")
    assert (policy.quiet_start, policy.quiet_end, policy.max_per_hour) == (time(23, 30), time(7, 0), 3)
    assert formats(cfg)["mqtt"] is ClipFormat.MP3 and cfg.speakers[0].adapter == "mqtt"
    assert template_book(cfg).render("vending", place="东门") == "东门禁止摆摊。"
    assert not GuidanceConfig().enabled
    assert cfg.defers_filing("cam-1", "vending") and not cfg.defers_filing("cam-2", "vending")
    assert not cfg.defers_filing("cam-1", "bin_overflow")


@pytest.mark.parametrize(("data", "where"), [
    ({"speed": 150}, "speed"),
    ({"policy": {"quiet_start": "25:00"}}, "quiet_start"),
    ({"policy": {"max_per_hour": 0}}, "max_per_hour"),
    ({"policy": {"quiet": "x"}}, "quiet"),
    ({"templates": {"vending": "{place.x}"}}, "template 'vending'"),
    ({"templates": {"vending": "{street}"}}, "unknown variable {street}"),
    ({"formats": {"sip": "mp3"}}, "unknown adapter kind 'sip'"),
    ({"formats": {"mqtt": "aac"}}, "formats.mqtt"),
    ({"speakers": [{"id": "a", "name": "x", "cameras": []}]}, "speakers.0.cameras"),
    ({"schedules": [{"id": "s", "at": "8:30", "text": "x", "targets": ["all"]}]}, "HH:MM"),
    ({"closed_loop": {"recheck_after_s": 0}}, "recheck_after_s"),
])
def test_bad_config_names_the_key(data: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        GuidanceConfig.model_validate(data)


def test_policy_settings_frozen() -> None:
    with pytest.raises(ValidationError):
        PolicySettings().max_per_hour = 2  # type: ignore[misc]


def _demo_with(mutate) -> dict:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8").replace("${CITYWALL_REDIS_URL:-}", "")
                          .replace("${CITYWALL_MQTT_URL:-}", ""))
    mutate(data["guidance"])
    return data


def test_demo_config_has_guidance() -> None:
    s = load_settings(DEMO)
    g = s.guidance
    assert g.enabled and {sp.id for sp in g.speakers} == {"spk-vending", "spk-road"}
    assert g.groups()["all-street"] == ["spk-vending", "spk-road"]
    assert g.schedules and g.schedules[0].targets == ["group:all-street"]
    assert g.defers_filing("cam-vending", "vending") and not g.defers_filing("cam-bin", "bin_overflow")


@pytest.mark.parametrize(("mutate", "path", "reason"), [
    (lambda g: g["speakers"][0].update(camera_ids=["cam-nowhere"]), "guidance.speakers[0].camera_ids[0]",
     "unknown camera 'cam-nowhere'"),
    (lambda g: g["speakers"][1].update(zone="no-zone"), "guidance.speakers[1].zone", "unknown zone 'no-zone'"),
    (lambda g: g["speakers"][1].update(id="spk-vending"), "guidance.speakers[1].id", "used twice"),
    (lambda g: g["speakers"][0].update(adapter="http"), "guidance.speakers[0].url", "needs its control url"),
    (lambda g: g["schedules"][0].update(targets=["group:nope"]), "guidance.schedules[0].targets[0]",
     "unknown group 'nope'"),
    (lambda g: g["schedules"][0].update(targets=["all", "spk-x"]), "guidance.schedules[0].targets[1]",
     "unknown speaker 'spk-x'"),
    (lambda g: g["closed_loop"].update(events=["fire"]), "guidance.closed_loop.events[0]", "unknown event 'fire'"),
])
def test_cross_checks_name_the_key_path(mutate, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(_demo_with(mutate), "demo")
    assert any(p == path and reason in r for p, r in info.value.problems), info.value.problems
    assert f"{path}: " in str(info.value)


def test_only_alarms_someone_can_act_on_wait_for_the_loudspeaker():
    """Goods left alone, a parked bike or rubbish: nobody on site hears the message, the case is filed at once; a
    stall with its seller (the judgement's ``actionable``) is spoken to first. Alarms without a judgement (a site
    model's, older ones) keep the event rule."""
    g = load_settings(DEMO).guidance
    stall = {"judgement": {"kind": "stall", "actionable": True}}
    goods = {"judgement": {"kind": "goods", "actionable": False}}
    assert g.defers_filing("cam-vending", "vending", stall)
    assert not g.defers_filing("cam-road", "road_occupation", goods)
    assert g.defers_filing("cam-vending", "vending", {}) and g.defers_filing("cam-vending", "vending")
