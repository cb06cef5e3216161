"""The pure wall-screen core: layouts, tile assignment, tours, alarm pop-ups, plans, persistence. No I/O, no sleeps:
every operation gets ``now``."""

from __future__ import annotations

import pytest

from wall.screens import (
    PRESETS,
    Conflict,
    NotFound,
    PlanDef,
    PlanScreen,
    ScreenDef,
    ScreenError,
    TourDef,
    Wall,
    parse_layout,
)

CAMS = ["c1", "c2", "c3", "c4", "c5", "c6"]


def make_wall(now: float = 1000.0, **kw) -> Wall:
    screens = kw.pop("screens", [
        ScreenDef("main", "主屏", "2x2", ("c1", "c2", "c3", "c4"), alarm_tile=3, alarm_timeout_s=60),
        ScreenDef("aux", "副屏", "1+5", ("c5",)),
    ])
    tours = kw.pop("tours", [TourDef("t", "巡逻", ("c1", "c2", "c3", "c4", "c5"), dwell_s=5)])
    plans = kw.pop("plans", [PlanDef("flood", "防汛应急", {
        "main": PlanScreen("1", ("c6",)),
        "aux": PlanScreen("3x3", ("c1", "c2"), tour="t", tour_tiles=(8,)),
    })])
    return Wall(screens, CAMS, tours=tours, plans=plans,
                priorities=kw.pop("priorities", {"road_occupation": 3, "vending": 2}), now=now, **kw)


def shown(wall: Wall, screen: str) -> list:
    return [t["camera"] for t in wall.view(screen)["tiles"]]


@pytest.mark.parametrize("name, rows, cols, tiles, first", [
    ("1", 1, 1, 1, (0, 0, 1, 1)),
    ("2x2", 2, 2, 4, (0, 0, 1, 1)),
    ("3x3", 3, 3, 9, (0, 0, 1, 1)),
    ("4x4", 4, 4, 16, (0, 0, 1, 1)),
    ("1+5", 3, 3, 6, (0, 0, 2, 2)),
    ("1+7", 4, 4, 8, (0, 0, 3, 3)),
])
def test_presets(name, rows, cols, tiles, first):
    layout = parse_layout(name)
    assert (layout.rows, layout.cols, len(layout), layout.tiles[0]) == (rows, cols, tiles, first)
    cells = sum(rs * cs for _, _, rs, cs in layout.tiles)
    assert cells == rows * cols  # every cell belongs to exactly one tile


def test_custom_layout_with_span_is_row_major():
    layout = parse_layout({"rows": 2, "cols": 3, "spans": [[0, 1, 2, 2]]})
    assert layout.tiles == ((0, 0, 1, 1), (0, 1, 2, 2), (1, 0, 1, 1))
    assert parse_layout(layout.spec()) == layout


@pytest.mark.parametrize("spec, field", [
    ("5x5", "layout"),
    (42, "layout"),
    ({"rows": 0, "cols": 2}, "layout.rows"),
    ({"rows": 2, "cols": 9}, "layout.cols"),
    ({"rows": 2, "cols": True}, "layout.cols"),
    ({"rows": 2, "cols": 2, "spans": [[0, 0, 3, 1]]}, "layout.spans[0]"),
    ({"rows": 2, "cols": 2, "spans": [[0, 0, 2]]}, "layout.spans[0]"),
    ({"rows": 3, "cols": 3, "spans": [[0, 0, 2, 2], [1, 1, 2, 2]]}, "layout.spans[1]"),
    ({"rows": 2, "cols": 2, "spans": "x"}, "layout.spans"),
    ({"rows": 2, "cols": 2, "colour": "red"}, "layout.colour"),
])
def test_bad_layouts_name_the_field(spec, field):
    with pytest.raises(ScreenError) as err:
        parse_layout(spec)
    assert err.value.field == field


def test_layout_change_keeps_cameras_in_order_and_bumps_version():
    wall = make_wall()
    v = wall.view("main")["version"]
    assert wall.set_layout("main", "3x3", 1001) == ["main"]
    view = wall.view("main")
    assert shown(wall, "main") == ["c1", "c2", "c3", "c4", None, None, None, None, None]
    assert view["version"] == v + 1 and view["layout"]["name"] == "3x3"
    wall.set_layout("main", "1", 1002)
    assert shown(wall, "main") == ["c1"] and wall.view("main")["alarm_tile"] == 0  # alarm tile kept on the screen


@pytest.mark.parametrize("screen, tile, camera, error, field", [
    ("main", 4, "c1", ScreenError, "tile"),
    ("main", -1, "c1", ScreenError, "tile"),
    ("main", "0", "c1", ScreenError, "tile"),
    ("main", 0, "nope", NotFound, None),
    ("main", 0, 7, ScreenError, "camera"),
    ("nope", 0, "c1", NotFound, None),
])
def test_assign_validates(screen, tile, camera, error, field):
    wall = make_wall()
    with pytest.raises(error) as err:
        wall.assign(screen, tile, camera, 1001)
    if field:
        assert err.value.field == field
    assert shown(wall, "main") == ["c1", "c2", "c3", "c4"]  # nothing changed


def test_assign_and_clear_tile():
    wall = make_wall()
    wall.assign("main", 1, "c6", 1001)
    wall.assign("main", 2, None, 1001)
    assert shown(wall, "main") == ["c1", "c6", None, "c4"]


def test_tour_cycles_pauses_resumes_and_stops():
    wall = make_wall()
    wall.start_tour("main", "t", 1000, tiles=[0, 1])
    assert shown(wall, "main")[:2] == ["c1", "c2"]
    assert wall.tick(1004.9) == []
    assert wall.tick(1005) == ["main"]
    assert shown(wall, "main")[:2] == ["c3", "c4"]
    wall.tick(1010)
    assert shown(wall, "main")[:2] == ["c5", "c1"]  # wraps around the group
    wall.pause_tour("main", 1012)  # 3 s of dwell left
    assert wall.tick(1100) == [] and shown(wall, "main")[:2] == ["c5", "c1"]
    assert wall.view("main")["tour"]["paused"] is True
    wall.resume_tour("main", 1200)
    assert wall.tick(1202.9) == []
    assert wall.tick(1203) == ["main"] and shown(wall, "main")[:2] == ["c2", "c3"]
    wall.stop_tour("main", 1204)
    assert wall.tick(2000) == [] and shown(wall, "main")[:2] == ["c2", "c3"] and wall.view("main")["tour"] is None


def test_tour_default_tiles_skip_the_alarm_tile_and_assign_takes_a_tile_back():
    wall = make_wall()
    wall.start_tour("main", "t", 1000)
    assert wall.view("main")["tour"]["tiles"] == [0, 1, 2]
    wall.assign("main", 1, "c6", 1001)
    assert wall.view("main")["tour"]["tiles"] == [0, 2]
    wall.tick(1005)
    assert shown(wall, "main")[1] == "c6"


@pytest.mark.parametrize("kwargs, error, field", [
    ({"tour_id": "nope"}, NotFound, None),
    ({"tour_id": 3}, ScreenError, "tour"),
    ({"tour_id": "t", "dwell_s": 2.9}, ScreenError, "dwell_s"),
    ({"tour_id": "t", "dwell_s": "5"}, ScreenError, "dwell_s"),
    ({"tour_id": "t", "tiles": [0, 9]}, ScreenError, "tiles[1]"),
    ({"tour_id": "t", "tiles": [1, 1]}, ScreenError, "tiles[1]"),
    ({"tour_id": "t", "tiles": []}, ScreenError, "tiles"),
])
def test_start_tour_validates(kwargs, error, field):
    wall = make_wall()
    with pytest.raises(error) as err:
        wall.start_tour("main", now=1000, **kwargs)
    if field:
        assert err.value.field == field
    assert wall.view("main")["tour"] is None


@pytest.mark.parametrize("op", ["pause_tour", "resume_tour", "stop_tour"])
def test_tour_controls_without_a_tour_conflict(op):
    with pytest.raises(Conflict, match="no tour"):
        getattr(make_wall(), op)("main", 1000)


def test_pause_twice_and_resume_running_conflict():
    wall = make_wall()
    wall.start_tour("main", "t", 1000)
    with pytest.raises(Conflict, match="running"):
        wall.resume_tour("main", 1001)
    wall.pause_tour("main", 1001)
    with pytest.raises(Conflict, match="already paused"):
        wall.pause_tour("main", 1002)


def test_tour_dwell_below_three_seconds_is_refused_in_config():
    with pytest.raises(ScreenError) as err:
        make_wall(tours=[TourDef("fast", "快", ("c1",), dwell_s=1)])
    assert err.value.field == "tours.fast.dwell_s"


def alarm(alarm_id: str, camera: str, event: str = "vending", **kw) -> dict:
    return {"alarm_id": alarm_id, "phase": "raised", "camera_id": camera, "event": event,
            "boxes": [[0.1, 0.2, 0.3, 0.4]], "zone_name": "人行道", **kw}


def test_alarm_pops_onto_the_alarm_tile_and_reverts_on_ack():
    wall = make_wall()
    assert wall.raise_alarm(alarm("a1", "c6"), 1000) == ["main"]  # aux has no alarm tile
    view = wall.view("main")
    assert view["tiles"][3] == {"index": 3, "camera": "c6", "source": "alarm", "base_camera": "c4"}
    assert view["alarm"]["payload"]["boxes"] == [[0.1, 0.2, 0.3, 0.4]]
    assert wall.raise_alarm(alarm("a1", "c6"), 1001) == []  # the same alarm delivered twice
    assert wall.ack("a1", 1002) == ["main"]
    assert shown(wall, "main") == ["c1", "c2", "c3", "c4"]
    with pytest.raises(NotFound):
        wall.ack("a1", 1003)


@pytest.mark.parametrize("first, second, winner, waiting", [
    (("a1", "vending"), ("a2", "road_occupation"), "a2", ["a1"]),      # higher priority takes the tile
    (("a1", "road_occupation"), ("a2", "vending"), "a1", ["a2"]),      # lower waits
    (("a1", "vending"), ("a2", "vending"), "a2", ["a1"]),              # equal: the newer wins
    (("a1", "bin_overflow"), ("a2", "vending"), "a2", ["a1"]),         # unlisted event: priority 0
])
def test_alarm_priority_decides_the_tile(first, second, winner, waiting):
    wall = make_wall()
    wall.raise_alarm(alarm(first[0], "c5", first[1]), 1000)
    wall.raise_alarm(alarm(second[0], "c6", second[1]), 1001)
    view = wall.view("main")
    assert view["alarm"]["alarm_id"] == winner
    assert [p["alarm_id"] for p in view["pending_alarms"]] == waiting
    wall.ack(winner, 1002)  # the waiting one takes the tile next
    assert wall.view("main")["alarm"]["alarm_id"] == waiting[0]


def test_case_deadline_alarms_pop_only_when_overdue_with_a_camera_and_below_detections():
    wall = make_wall()
    case = {"stage": "overdue", "case_no": "CW20260311-0001", "unit_name": "湖滨街道城管中队", "deadline_at": 900.0}
    assert wall.raise_deadline(alarm("near", "c6", "case_near_deadline", stage="near_deadline"), 1000) == []
    assert wall.raise_deadline(alarm("nocam", "", "case_overdue", **case), 1000) == []   # no camera: a card only
    assert wall.raise_deadline(alarm("over", "c6", "case_overdue", **case), 1000) == ["main"]
    payload = wall.view("main")["alarm"]["payload"]
    assert (payload["event"], payload["case_no"], payload["unit_name"]) == ("case_overdue", "CW20260311-0001",
                                                                           "湖滨街道城管中队")
    wall.raise_alarm(alarm("v1", "c5", "vending"), 1001)   # a detection outranks it (priority 0)
    view = wall.view("main")
    assert view["alarm"]["alarm_id"] == "v1" and [p["alarm_id"] for p in view["pending_alarms"]] == ["over"]


@pytest.mark.parametrize("layout, tiles, camera, pop_tile", [
    ("2x2", ("c1", "c2", "c3", "c4"), "c2", 1),     # already on an equal tile: highlighted in place
    ("2x2", ("c1", "c2", "c3", "c4"), "c6", 3),     # not on screen: popped onto the alarm tile
    ("1+5", ("c1", "c2", "c3"), "c2", 0),           # only on a small tile: popped onto the big alarm tile
    ("1+5", ("c1", "c2", "c3"), "c1", 0),           # already on the big alarm tile
])
def test_pop_up_goes_to_the_alarm_tile_or_stays_in_place(layout, tiles, camera, pop_tile):
    wall = make_wall(screens=[ScreenDef("m", "m", layout, tiles, alarm_tile=0 if layout == "1+5" else 3)], plans=[])
    wall.raise_alarm(alarm("a1", camera), 1000)
    view = wall.view("m")
    assert view["pop_tile"] == pop_tile
    assert [t["index"] for t in view["tiles"] if t["source"] == "alarm"] == [pop_tile]
    assert view["tiles"][pop_tile]["camera"] == camera and view["tiles"][pop_tile]["base_camera"] == (
        tiles[pop_tile] if pop_tile < len(tiles) else None)


def test_alarm_priority_from_the_alarm_itself():
    wall = make_wall()
    wall.raise_alarm(alarm("a1", "c5", "road_occupation"), 1000)
    wall.raise_alarm(alarm("a2", "c6", "vending", extra={"priority": 9}), 1001)
    assert wall.view("main")["alarm"]["alarm_id"] == "a2"


def test_alarm_times_out():
    wall = make_wall()
    wall.raise_alarm(alarm("a1", "c6"), 1000)
    assert wall.next_due() == 1060
    assert wall.tick(1059) == []
    assert wall.tick(1060) == ["main"]
    assert wall.view("main")["alarm"] is None and shown(wall, "main")[3] == "c4"


@pytest.mark.parametrize("msg", [
    {"alarm_id": "a1", "phase": "cleared", "camera_id": "c1"},
    {"alarm_id": "a1", "phase": "raised", "camera_id": "unknown-cam"},
])
def test_alarms_that_change_nothing(msg):
    wall = make_wall()
    assert wall.raise_alarm(msg, 1000) == []


def test_ack_validates():
    with pytest.raises(ScreenError) as err:
        make_wall().ack("", 1000)
    assert err.value.field == "alarm_id"


def test_pending_alarms_are_bounded_and_dropped_counted():
    wall = make_wall()
    wall.raise_alarm(alarm("top", "c1", "road_occupation"), 1000)
    for i in range(20):
        wall.raise_alarm(alarm(f"low{i}", "c2", zone_id=f"z{i}"), 1000 + i)  # 20 different places
    assert len(wall.view("main")["pending_alarms"]) == 16 and wall.dropped_alarms == 4


def test_repeats_of_one_place_are_one_pop_up_with_a_count():
    wall = make_wall()
    wall.raise_alarm(alarm("top", "c1", "road_occupation"), 1000)          # holds the tile
    for i in range(11):                                                       # 11 repeats of one place wait
        wall.raise_alarm(alarm(f"rep{i}", "c2", zone_id="pavement", snapshot=f"s{i}.jpg"), 1001 + i)
    wall.raise_alarm(alarm("other", "c2", zone_id="corner"), 1020)          # another zone: its own pop-up
    view = wall.view("main")
    assert [(p["alarm_id"], p["count"]) for p in view["pending_alarms"]] == [("other", 1), ("rep0", 11)]
    group = view["pending_alarms"][1]
    assert group["payload"]["snapshot"] == "s10.jpg" and group["repeats"] == [f"rep{i}" for i in range(1, 11)]
    # Acknowledging any alarm of the group acknowledges the place.
    assert wall.ack("rep7", 1030) == ["main"]
    assert [p["alarm_id"] for p in wall.view("main")["pending_alarms"]] == ["other"]
    # A repeat of the place on screen raises its count, it does not queue.
    wall.raise_alarm(alarm("top2", "c1", "road_occupation"), 1031)
    assert (wall.view("main")["alarm"]["alarm_id"], wall.view("main")["alarm"]["count"]) == ("top", 2)


def test_a_cleared_alarm_never_pops_up_and_ends_its_pop_up():
    wall = make_wall()
    wall.raise_alarm(alarm("top", "c1", "road_occupation"), 1000)
    wall.raise_alarm(alarm("gone", "c2"), 1001)                              # waits behind "top"
    assert wall.raise_alarm({"alarm_id": "gone", "phase": "cleared", "camera_id": "c2"}, 1002) == ["main"]
    assert wall.view("main")["pending_alarms"] == []
    wall.ack("top", 1003)
    assert wall.view("main")["alarm"] is None                                # "gone" never took the tile
    # The one on screen clears: its pop-up ends (the next waiting one takes the tile).
    wall.raise_alarm(alarm("w", "c3", zone_id="z"), 1004)
    wall.raise_alarm(alarm("shown", "c6", "road_occupation"), 1005)
    wall.raise_alarm({"alarm_id": "shown", "phase": "cleared", "camera_id": "c6"}, 1006)
    assert wall.view("main")["alarm"]["alarm_id"] == "w"
    # A group ends only when its last raised alarm clears.
    wall.raise_alarm(alarm("g1", "c3", zone_id="z"), 1007)                  # folded into "w"
    wall.raise_alarm({"alarm_id": "w", "phase": "cleared", "camera_id": "c3"}, 1008)
    assert wall.view("main")["alarm"]["alarm_id"] == "g1"
    wall.raise_alarm({"alarm_id": "g1", "phase": "cleared", "camera_id": "c3"}, 1009)
    assert wall.view("main")["alarm"] is None and shown(wall, "main") == ["c1", "c2", "c3", "c4"]


def test_plan_switches_every_screen_at_once():
    wall = make_wall()
    wall.start_tour("main", "t", 1000)
    changed = wall.invoke_plan("flood", 1001)
    assert sorted(changed) == ["aux", "main"]
    assert shown(wall, "main") == ["c6"] and wall.view("main")["tour"] is None
    aux = wall.view("aux")
    assert aux["layout"]["name"] == "3x3" and shown(wall, "aux")[:2] == ["c1", "c2"]
    assert aux["tour"]["tiles"] == [8] and shown(wall, "aux")[8] == "c1"


def test_plan_unknown_is_not_found_and_a_broken_plan_fails_at_start():
    wall = make_wall()
    with pytest.raises(NotFound):
        wall.invoke_plan("nope", 1000)
    with pytest.raises(ScreenError) as err:
        make_wall(plans=[PlanDef("bad", "坏", {"main": PlanScreen("2x2", ("c1", "zzz"))})])
    assert err.value.field == "plans.bad.screens.main.tiles[1]"
    with pytest.raises(ScreenError) as err:
        make_wall(plans=[PlanDef("bad", "坏", {"ghost": PlanScreen("2x2")})])
    assert err.value.field == "plans.bad.screens"


@pytest.mark.parametrize("screens, field", [
    ([ScreenDef("m", "m", "2x2", ("c1", "c1", "c1", "c1", "c1"))], "screens[0].tiles"),
    ([ScreenDef("m", "m", "2x2", ("c9",))], "screens[0].tiles[0]"),
    ([ScreenDef("m", "m", "2x2", alarm_tile=4)], "screens[0].alarm_tile"),
    ([ScreenDef("m", "m", "2x2"), ScreenDef("m", "m")], "screens[1].id"),
    ([], "screens"),
])
def test_screen_definitions_validated(screens, field):
    with pytest.raises(ScreenError) as err:
        make_wall(screens=screens, plans=[])
    assert err.value.field == field


def test_snapshot_and_restore_round_trip():
    wall = make_wall()
    wall.set_layout("main", {"rows": 2, "cols": 3, "spans": [[0, 0, 2, 1]]}, 1000)
    wall.assign("main", 4, "c6", 1000)
    wall.start_tour("aux", "t", 1000, tiles=[1, 2], dwell_s=7)
    wall.pause_tour("aux", 1002)
    wall.raise_alarm(alarm("a1", "c5"), 1003)
    other = make_wall()
    for sid in ("main", "aux"):
        other.restore(sid, wall.snapshot(sid))
        assert other.view(sid) == wall.view(sid)
    other.resume_tour("aux", 1010)  # paused at 1002 with 5 s of dwell left
    assert other.tick(1014.9) == []
    assert other.tick(1015) == ["aux"]


@pytest.mark.parametrize("patch, field", [
    ({"layout": "9x9"}, "layout"),
    ({"tiles": ["c1"]}, "tiles"),
    ({"tiles": ["c1", "c2", "c3", "gone"]}, "tiles[3]"),
])
def test_restore_refuses_what_no_longer_fits(patch, field):
    wall = make_wall()
    data = {**wall.snapshot("main"), **patch}
    with pytest.raises(ScreenError) as err:
        wall.restore("main", data)
    assert err.value.field == field
    assert shown(wall, "main") == ["c1", "c2", "c3", "c4"]


def test_every_preset_listed():
    assert list(PRESETS) == ["1", "2x2", "3x3", "4x4", "1+5", "1+7"]


def test_ending_a_plan_restores_what_each_screen_showed_before():
    wall = make_wall()
    wall.set_layout("main", "3x3", 999)
    wall.assign("main", 8, "c6", 999)
    before_main, before_aux = shown(wall, "main"), shown(wall, "aux")
    wall.start_tour("aux", "t", 1000)
    aux_tour, dwell = wall.view("aux")["tour"]["tiles"], wall.view("aux")["tour"]["dwell_s"]
    wall.invoke_plan("flood", 1001)
    assert wall.view("main")["plan"] == {"id": "flood", "name": wall.plans["flood"].name, "at": 1001}
    assert wall.view("aux")["plan"]["id"] == "flood"
    wall.invoke_plan("flood", 1002)                      # invoked twice: ending still goes back to before the first
    with pytest.raises(NotFound):
        wall.end_plan("nope", 1003)
    assert sorted(wall.end_plan("flood", 1003)) == ["aux", "main"]
    main = wall.view("main")
    assert main["plan"] is None and main["layout"]["name"] == "3x3" and shown(wall, "main") == before_main
    aux = wall.view("aux")
    assert aux["tour"]["tiles"] == aux_tour and not aux["tour"]["paused"] and aux["tour"]["next_at"] == 1003 + dwell
    assert len(shown(wall, "aux")) == len(before_aux)
    with pytest.raises(Conflict):
        wall.end_plan("flood", 1004)                     # not active any more
    # The plan survives a restart (persisted with what it saved).
    wall.invoke_plan("flood", 1005)
    again = make_wall()
    again.restore("main", wall.snapshot("main"))
    assert again.view("main")["plan"]["id"] == "flood"
    again.end_plan("flood", 1006)
    assert again.view("main")["layout"]["name"] == "3x3"
