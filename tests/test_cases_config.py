"""The shipped case config (categories, grid, dispatch) loads; lookups resolve to exactly one unit; bad files are
refused naming the file and the key path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cases.bundle import load_case_config
from cases.grid import polygons_overlap
from config import CONFIG_DIR, ConfigError, load_settings

FILES = ("categories.yaml", "dispatch.yaml", "calendar.yaml", "grid.geojson")


@pytest.fixture(scope="module")
def cfg():
    return load_case_config()


def test_shipped_categories(cfg):
    cat = cfg.catalog
    assert [c.ref for c in cat.categories] == ["事件/0501", "事件/0504", "事件/0506", "事件/0507", "事件/0102",
                                                  "部件/0305"]
    assert cat.for_event("vending").ref == "事件/0501"
    assert cat.for_event("road_occupation").ref == "事件/0507"
    assert cat.for_event("bin_overflow").ref == "部件/0305"
    assert cat.get("事件/0102").limit("一般").describe() == "4 工作时"
    assert cat.get("事件/0102").limit("紧急").describe() == "1 工作时"
    assert cat.get("事件/0501").limit().describe() == "2 工作时"
    assert cat.get("事件/0507").limit().describe() == "1 工作日"
    assert cat.get("部件/0305").limit().describe() == "1 工作日"
    with pytest.raises(KeyError, match="unknown category '事件/9999'"):
        cat.get("事件/9999")


def test_every_demo_camera_stands_in_a_cell(cfg):
    settings = load_settings(CONFIG_DIR / "demo.yaml")
    for cam in settings.cameras:
        cell = cfg.grid.locate(cam.position.lon, cam.position.lat)
        assert cell is not None, cam.id
        assert cell.street == cam.position.street and cell.community == cam.position.community, cam.id
        assert len(cell.grid_code) == 14 and cell.grid_code.startswith("330102")
    assert len(cfg.grid.cells) == 16
    assert cfg.grid.streets() == ["清波街道", "湖滨街道"]


@pytest.mark.parametrize(
    "lon, lat, ref, unit, grid",
    [
        (120.1552, 30.2741, "事件/0501", "hubin-squad", "33010200100101"),  # 解放路 vending
        (120.1552, 30.2741, "事件/0504", "hubin-squad", "33010200100101"),
        (120.1618, 30.2702, "部件/0305", "sanitation", "33010200100201"),  # 延安路 bin
        (120.1618, 30.2702, "事件/0102", "sanitation", "33010200100201"),
        (120.1689, 30.2655, "事件/0507", "municipal", "33010200200101"),  # 中山路 carriageway: longest prefix
        (120.1689, 30.2655, "事件/0501", "qingbo-squad", "33010200200101"),
        (120.1661, 30.2440, "事件/0507", "qingbo-squad", "33010200200201"),  # 河坊街: street rule
        (120.1547, 30.2730, "事件/0501", "hubin-squad", "33010200100104"),  # a neighbouring cell of the block
        (120.1601, 30.2720, "事件/0501", "district-center", ""),  # outside the grid: fallback
        (120.1601, 30.2720, "部件/0305", "district-center", ""),
    ],
)
def test_dispatch_lookup(cfg, lon, lat, ref, unit, grid):
    got = cfg.dispatcher.assign(ref, lon, lat)
    assert (got.unit.id, got.grid_code) == (unit, grid), got.reason


def test_dispatch_without_a_cell_uses_the_camera_street(cfg):
    got = cfg.dispatcher.assign("事件/0501", None, None, street="清波街道", community="某社区")
    assert got.unit.name == "清波街道城管中队" and got.cell is None and got.community == "某社区"
    got = cfg.dispatcher.assign("事件/0501", 0.0, 0.0, street="西湖街道")
    assert got.unit.id == "district-center" and "fallback" in got.reason


@pytest.mark.parametrize(
    "a, b, overlap",
    [
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(1, 0), (2, 0), (2, 1), (1, 1)], False),  # shared edge
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(1, 1), (2, 1), (2, 2), (1, 2)], False),  # shared corner
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(3, 3), (4, 3), (4, 4), (3, 4)], False),
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (1, 0), (1, 1), (0, 1)], True),  # identical
        ([(0, 0), (4, 0), (4, 4), (0, 4)], [(1, 1), (2, 1), (2, 2), (1, 2)], True),  # nested
        ([(0, 0), (2, 0), (2, 2), (0, 2)], [(1, 1), (3, 1), (3, 3), (1, 3)], True),  # crossing
        ([(0, 0), (2, 0), (2, 1), (0, 1)], [(1, 0), (3, 0), (3, 1), (1, 1)], True),  # collinear edges, shifted
        ([(0, 0), (2, 0), (2, 2), (0, 2)], [(0, 0), (2, 0), (2, 1), (0, 1)], True),  # half of it
    ],
)
def test_polygons_overlap(a, b, overlap):
    assert polygons_overlap(a, b) is overlap
    assert polygons_overlap(b, a) is overlap


# -- refusals ---------------------------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    for name in FILES:
        shutil.copy(CONFIG_DIR / name, tmp_path / name)
    return {name: tmp_path / name for name in FILES}


def _load(files: dict[str, Path]):
    return load_case_config(files["categories.yaml"], files["dispatch.yaml"], files["calendar.yaml"],
                            files["grid.geojson"])


def _edit_yaml(path: Path, mutate) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutate(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _edit_json(path: Path, mutate) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    mutate(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _square(x: float, y: float, size: float = 0.001) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


@pytest.mark.parametrize(
    "name, mutate, where, reason",
    [
        ("categories.yaml", lambda d: d["categories"][0].update(colour="red"), "categories[0].colour",
         "Extra inputs are not permitted"),
        ("categories.yaml", lambda d: d["categories"][2].update(code=321), "categories[2].code",
         'quote codes in YAML, e.g. "0501"'),
        ("categories.yaml", lambda d: d["categories"][1].update(code="05a4"), "categories[1].code", "pattern"),
        ("categories.yaml", lambda d: d["categories"][0]["time_limits"].pop("紧急"), "categories[0]",
         "missing: 紧急"),
        ("categories.yaml", lambda d: d["categories"][0]["time_limits"]["一般"].update(unit="fortnights"),
         "categories[0].time_limits.一般.unit", "work_hours"),
        ("categories.yaml", lambda d: d["categories"][5].update(detector_events=[]), "(top level)",
         "detector events with no category (alarms could not be filed): bin_overflow"),
        ("categories.yaml", lambda d: d["categories"][3].update(detector_events=["vending"]), "categories[3]",
         "'vending' already files into 事件/0501"),
        ("categories.yaml", lambda d: d["categories"][1].update(code="0501"), "categories[1]",
         "事件/0501 is already defined at categories[0]"),
        ("dispatch.yaml", lambda d: d["rules"][0].update(unit="ghost-squad"), "rules[0].unit",
         "unknown unit 'ghost-squad'"),
        ("dispatch.yaml", lambda d: d["rules"][1]["categories"].append("事件/0999"), "rules[1].categories[4]",
         "unknown category '事件/0999'"),
        ("dispatch.yaml", lambda d: d["rules"].append({"categories": ["事件/0501"], "street": "湖滨街道",
                                                       "unit": "municipal"}),
         "rules[4].categories[0]", "事件/0501 at street 湖滨街道 already goes to rules[0]"),
        ("dispatch.yaml", lambda d: d["rules"][0].update(grid_prefix="330102001"), "rules[0]",
         "exactly one of street or grid_prefix"),
        ("dispatch.yaml", lambda d: d.update(fallback_unit="nobody"), "fallback_unit", "unknown unit 'nobody'"),
        ("dispatch.yaml", lambda d: (d.pop("fallback_unit"), d["rules"].pop(1)), "rules",
         "事件/0501 has no unit for street 清波街道 (cell 33010200200101) and there is no fallback_unit"),
        ("dispatch.yaml", lambda d: d["units"].append({"id": "sanitation", "name": "重复"}), "(top level)",
         "repeated: sanitation"),
        ("grid.geojson", lambda d: d["features"][5]["geometry"].update(coordinates=[_square(120.1549, 30.2739)]),
         "(top level)", "grid cells must not overlap: 33010200100101 overlaps 33010200100202"),
        ("grid.geojson", lambda d: d["features"][0]["geometry"].update(
            coordinates=[[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]),
         "features[0].geometry.coordinates", "crosses itself"),
        ("grid.geojson", lambda d: d["features"][0]["geometry"].update(coordinates=[[[0, 0], [1, 0], [1, 1]]]),
         "features[0].geometry.coordinates", "closed"),
        ("grid.geojson", lambda d: d["features"][2]["properties"].update(grid_code="3301020010"),
         "features[2].properties.grid_code", "pattern"),
        ("grid.geojson", lambda d: d["features"][3]["properties"].update(grid_code="33010200100101"),
         "features[3]", "grid_code 33010200100101 is already used by features[0]"),
        ("grid.geojson", lambda d: d["features"][0]["geometry"].update(type="MultiPolygon"),
         "features[0].geometry.type", "Polygon"),
    ],
)
def test_bad_case_config_names_file_and_key(files, name, mutate, where, reason):
    path = files[name]
    (_edit_json if name.endswith(".geojson") else _edit_yaml)(path, mutate)
    with pytest.raises(ConfigError) as info:
        _load(files)
    text = str(info.value)
    assert str(path) in text, text
    assert f"{where}:" in text and reason in text, text


def test_unreadable_files(files):
    files["grid.geojson"].write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        _load(files)
    files["grid.geojson"].unlink()
    with pytest.raises(ConfigError, match="no such file"):
        _load(files)
