"""GCJ-02 ↔ WGS-84 (pure): the shift's size and direction inside China, none outside, the inverse round-trips,
CGCS2000 is WGS-84 at map scale."""

from __future__ import annotations

import math

import pytest

from maps.coords import (
    from_display,
    gcj02_to_wgs84,
    outside_china,
    to_display,
    wgs84_to_gcj02,
)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[1] + b[1]) / 2)
    dx = (a[0] - b[0]) * 111_320 * math.cos(lat)
    dy = (a[1] - b[1]) * 110_540
    return math.hypot(dx, dy)


@pytest.mark.parametrize("lon, lat", [
    (120.1552, 30.2741),   # 杭州 解放路 (the demo site)
    (116.3975, 39.9087),   # 北京 天安门
    (121.4737, 31.2304),   # 上海
    (113.2644, 23.1291),   # 广州
    (87.6168, 43.8256),    # 乌鲁木齐
])
def test_inside_china_the_shift_is_a_few_hundred_metres_and_the_inverse_round_trips(lon, lat):
    gcj = wgs84_to_gcj02(lon, lat)
    assert 100 < metres(gcj, (lon, lat)) < 700
    back = gcj02_to_wgs84(*gcj)
    assert metres(back, (lon, lat)) < 0.01  # a centimetre
    assert gcj[0] > lon  # eastern China: the published offset moves points east


def test_known_reference_point():
    # Tiananmen: WGS-84 (116.391349, 39.907375) shows at about (116.397590, 39.908775) on GCJ-02 maps.
    gcj = wgs84_to_gcj02(116.391349, 39.907375)
    assert metres(gcj, (116.397590, 39.908775)) < 15


@pytest.mark.parametrize("lon, lat", [(2.3522, 48.8566), (-74.006, 40.7128), (151.2093, -33.8688)])
def test_outside_china_nothing_moves(lon, lat):
    assert outside_china(lon, lat)
    assert wgs84_to_gcj02(lon, lat) == (lon, lat) == gcj02_to_wgs84(lon, lat)


@pytest.mark.parametrize("crs", ["wgs84", "cgcs2000"])
def test_wgs84_and_cgcs2000_basemaps_show_stored_points_as_they_are(crs):
    assert to_display(120.1552, 30.2741, crs) == (120.1552, 30.2741) == from_display(120.1552, 30.2741, crs)


def test_display_round_trip_for_gcj02_basemaps():
    shown = to_display(120.1552, 30.2741, "gcj02")
    assert shown != (120.1552, 30.2741)
    assert metres(from_display(*shown, "gcj02"), (120.1552, 30.2741)) < 0.01
