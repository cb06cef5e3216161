"""The AI filing policy (cases.policy, settings ``cases.auto_file``): pure decisions by confidence and dwell with
per-event overrides, and the config errors an operator sees for a bad policy."""

from __future__ import annotations

import pytest

from cases.policy import filing_decision
from config import AutoFile, ConfigError, parse_settings

USERS = [{"username": "admin", "role": "admin",
          "password_hash": "scrypt$16384$8$1$00$00"}]

POLICY = AutoFile.model_validate({"min_confidence": 0.6, "min_dwell_s": 60,
                                  "events": {"bin_overflow": {"min_dwell_s": 300},
                                             "road_occupation": {"min_confidence": 0.8, "min_dwell_s": 0}}})


@pytest.mark.parametrize("event, confidence, dwell_s, auto, why", [
    ("vending", 0.6, 60, True, "达到自动立案阈值"),          # exactly at both thresholds: filed
    ("vending", 0.95, 600, True, "达到自动立案阈值"),
    ("vending", 0.59, 600, False, "置信度 0.59 低于 0.60"),
    ("vending", 0.9, 59, False, "持续 59 秒少于 60 秒"),
    ("vending", 0.1, 5, False, "置信度 0.10 低于 0.60，持续 5 秒少于 60 秒"),
    ("bin_overflow", 0.9, 120, False, "持续 120 秒少于 300 秒"),   # own dwell, global confidence
    ("bin_overflow", 0.5, 300, False, "置信度 0.50 低于 0.60"),
    ("bin_overflow", 0.6, 300, True, "达到自动立案阈值"),
    ("road_occupation", 0.7, 0, False, "置信度 0.70 低于 0.80"),   # own confidence, own dwell 0
    ("road_occupation", 0.8, 0, True, "达到自动立案阈值"),
    ("juggling", 0.6, 60, True, "达到自动立案阈值"),              # unknown event: the global thresholds
])
def test_decision_by_confidence_and_dwell(event, confidence, dwell_s, auto, why):
    decision = filing_decision(POLICY, event, confidence, dwell_s)
    assert decision.auto is auto
    assert decision.reason.startswith(why)
    if not auto:
        assert decision.reason.endswith("待人工复核后立案")


def test_the_thresholds_that_applied_are_reported():
    d = filing_decision(POLICY, "bin_overflow", 0.9, 10)
    assert (d.min_confidence, d.min_dwell_s) == (0.6, 300)
    assert d.to_dict() == {"auto": False, "min_confidence": 0.6, "min_dwell_s": 300,
                           "reason": "持续 10 秒少于 300 秒：待人工复核后立案"}


def test_the_default_policy_files_everything():
    assert filing_decision(AutoFile(), "vending", 0.0, 0.0).auto


@pytest.mark.parametrize("auto_file, where, what", [
    ({"min_confidence": 1.5}, "cases.auto_file.min_confidence", "less than or equal to 1"),
    ({"min_dwell_s": -1}, "cases.auto_file.min_dwell_s", "greater than or equal to 0"),
    ({"events": {"juggling": {"min_confidence": 0.5}}}, "cases.auto_file.events.juggling", "vending"),
    ({"events": {"vending": {"min_confidence": 2}}}, "cases.auto_file.events.vending.min_confidence", "1"),
    ({"events": {"vending": {"confidence": 0.5}}}, "cases.auto_file.events.vending.confidence", "not permitted"),
    ({"min_conf": 0.5}, "cases.auto_file.min_conf", "not permitted"),
])
def test_a_bad_policy_names_the_key(auto_file, where, what):
    with pytest.raises(ConfigError) as err:
        parse_settings({"users": USERS, "cases": {"auto_file": auto_file}})
    text = str(err.value)
    assert where in text and what in text, text


@pytest.mark.parametrize("watch, where", [
    ({"near_fraction": 1.0}, "cases.deadline_watch.near_fraction"),
    ({"near_fraction": 0}, "cases.deadline_watch.near_fraction"),
    ({"near_remaining_s": -5}, "cases.deadline_watch.near_remaining_s"),
    ({"interval_s": 0.1}, "cases.deadline_watch.interval_s"),
])
def test_a_bad_deadline_watch_names_the_key(watch, where):
    with pytest.raises(ConfigError) as err:
        parse_settings({"users": USERS, "cases": {"deadline_watch": watch}})
    assert where in str(err.value)
