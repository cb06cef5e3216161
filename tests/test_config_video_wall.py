"""The ``video_wall`` settings section: the demo's screens, tours and plans; defaults when absent; bad input named."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings, parse_settings
from tests.test_config import DEMO, demo_data


def test_demo_has_two_screens_a_tour_and_two_leader_plans():
    vw = load_settings(DEMO).video_wall
    assert [(s.id, s.layout, s.alarm_tile) for s in vw.screens] == [("main", "2x2", 3), ("aux", "1+5", 0)]
    assert [t.id for t in vw.tours] == ["patrol"] and vw.tours[0].dwell_s >= 3
    assert {p.name: p.roles for p in vw.plans} == {"防汛应急": ["leader"], "市容整治": ["leader"]}


def test_absent_section_gives_no_screens_here_and_the_server_defaults():
    data = demo_data()
    data.pop("video_wall")
    vw = parse_settings(data).video_wall
    assert vw.screens == [] and vw.plans == [] and vw.alarm_priority["road_occupation"] == 3


@pytest.mark.parametrize("mutate, path, reason", [
    (lambda v: v["screens"][0].update(layout="5x5"), "video_wall.screens[0].layout.preset", "unknown layout '5x5'"),
    (lambda v: v["screens"][0].update(colour="red"), "video_wall.screens[0].colour", "Extra inputs"),
    (lambda v: v["screens"][0].update(tiles=["cam-nope"]), "video_wall.screens[0].tiles[0]", "unknown camera"),
    (lambda v: v["tours"][0].update(dwell_s=2), "video_wall.tours[0].dwell_s", "greater than or equal to 3"),
    (lambda v: v["tours"][0].update(cameras=["cam-bin", "cam-x"]), "video_wall.tours[0].cameras[1]", "unknown camera"),
    (lambda v: v["plans"][0].update(roles=["janitor"]), "video_wall.plans[0].roles", "unknown role"),
    (lambda v: v["plans"][0]["screens"].update(ghost={"layout": "1"}), "plans[flood].screens.ghost", "unknown screen"),
    (lambda v: v["plans"][1]["screens"]["aux"].update(tour="nope"), "plans[cityscape].screens.aux.tour",
     "unknown tour"),
    (lambda v: v["screens"][1].update(id="main"), "video_wall", "repeated: main"),
    (lambda v: v["screens"][0].update(layout={"rows": 9, "cols": 2}), "video_wall.screens[0].layout.custom.rows",
     "less than or equal to 8"),
])
def test_bad_video_wall_named(mutate, path, reason):
    data = demo_data()
    mutate(data["video_wall"])
    with pytest.raises(ConfigError) as info:
        parse_settings(data, "test.yaml")
    text = str(info.value)
    assert path in text and reason in text, text


@pytest.mark.parametrize("targets, path, reason", [
    (["spk-nowhere"], "video_wall.plans[0].broadcast.targets[0]", "unknown speaker 'spk-nowhere'"),
    (["all", "group:nope"], "video_wall.plans[0].broadcast.targets[1]", "unknown group 'nope'"),
])
def test_a_plan_broadcast_must_name_known_speakers(targets, path, reason):
    data = demo_data()
    data["video_wall"]["plans"][0]["broadcast"] = {"targets": targets, "text": "测试"}
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    assert (path, reason) in [(p, r[:len(reason)]) for p, r in err.value.problems]


def test_a_plan_broadcast_needs_guidance_on():
    data = demo_data()
    data["guidance"]["enabled"] = False
    with pytest.raises(ConfigError, match="video_wall.plans\\[0\\].broadcast: needs guidance.enabled"):
        parse_settings(data)
