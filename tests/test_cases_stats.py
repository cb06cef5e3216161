"""Case statistics, pure: hand-computed 立案数/应结案数/结案数/按期结案数/应处置数/处置数/返工数 and the four rates per
unit, grid, category and period on a fixed set of cases with a given ``now``; CSV and XLSX exports."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from cases.export import to_csv, to_xlsx
from cases.stats import case_figures, compute_stats, period_key

SH = ZoneInfo("Asia/Shanghai")
D1 = datetime(2026, 3, 9, 10, 0, tzinfo=SH).timestamp()  # a Monday (ISO week 11)
D2 = datetime(2026, 3, 10, 10, 0, tzinfo=SH).timestamp()
H = 3600.0
NOW = D1 + 10 * 24 * H

FULL = ["report", "accept", "register", "dispatch"]


def case(n, unit, grid, code, reported, deadline, state, actions, closed_at=None):
    return {
        "id": f"c{n}", "unit_id": unit, "unit_name": {"u1": "湖滨中队", "u2": "清波中队"}[unit], "grid_code": grid,
        "kind": "事件", "code": code, "category_name": {"0501": "无照经营游商", "0504": "占道经营"}[code],
        "reported_at": reported, "deadline_at": deadline, "state": state, "closed_at": closed_at,
        "timeline": [{"action": a} for a in actions],
    }


CASES = [
    # 1: closed on time
    case(1, "u1", "g1", "0501", D1, D1 + 4 * H, "closed", FULL + ["feedback", "verify", "close"], D1 + 3 * H),
    # 2: reworked once, closed late
    case(2, "u1", "g1", "0501", D1, D1 + 4 * H, "closed",
         FULL + ["feedback", "verify", "rework", "feedback", "verify", "close"], D1 + 30 * H),
    # 3: dispatched, no feedback, past its deadline
    case(3, "u1", "g2", "0504", D1, D1 + 4 * H, "dispatched", FULL),
    # 4: being handled, deadline after now; reported 23:30 local on 3-9
    case(4, "u1", "g2", "0504", datetime(2026, 3, 9, 23, 30, tzinfo=SH).timestamp(), NOW + H, "handling",
         FULL + ["start"]),
    # 5: fed back, not yet verified, deadline after now; reported 07:00 local on 3-10 (23:00 UTC on 3-9)
    case(5, "u2", "g2", "0501", datetime(2026, 3, 10, 7, 0, tzinfo=SH).timestamp(), NOW + H, "handled",
         FULL + ["feedback"]),
    # 6: suspended (挂账), deadline passed
    case(6, "u2", "g1", "0501", D2, D2 + H, "suspended", FULL + ["suspend"]),
    # 7: voided after registering, deadline passed
    case(7, "u2", "g1", "0504", D2, D2 + H, "voided", FULL + ["void"]),
    # 8: only reported; 9: rejected before registering — neither counts
    case(8, "u2", "g1", "0504", D2, D2 + H, "reported", ["report"]),
    case(9, "u2", "g1", "0504", D2, D2 + H, "rejected", ["report", "accept", "reject"]),
]

COUNTS = ("registered", "due", "closed", "closed_on_time", "to_handle", "handled", "reworked")
RATES = ("close_rate", "on_time_rate", "handle_rate", "rework_rate")


def figures(row):
    return tuple(row[k] for k in COUNTS), tuple(None if row[k] is None else round(row[k], 4) for k in RATES)


def test_per_case_contributions():
    got = [tuple(getattr(case_figures(c, NOW), k) for k in COUNTS) for c in CASES]
    assert got == [
        (1, 1, 1, 1, 1, 1, 0),
        (1, 1, 1, 0, 1, 1, 1),
        (1, 1, 0, 0, 1, 0, 0),
        (1, 0, 0, 0, 0, 0, 0),
        (1, 0, 0, 0, 1, 1, 0),
        (1, 0, 0, 0, 0, 0, 0),
        (1, 0, 0, 0, 0, 0, 0),
        (0, 0, 0, 0, 0, 0, 0),
        (0, 0, 0, 0, 0, 0, 0),
    ]
    # Before case 3's deadline it is not yet due (and not yet to be handled).
    early = case_figures(CASES[2], D1 + H)
    assert (early.due, early.to_handle) == (0, 0)


def test_by_unit_and_total():
    table = compute_stats(CASES, now=NOW, by="unit", tz=SH).to_dict()
    rows = {r["key"]: r for r in table["rows"]}
    assert list(rows) == ["u1", "u2"] and rows["u1"]["label"] == "湖滨中队"
    assert figures(rows["u1"]) == ((4, 3, 2, 1, 3, 2, 1), (0.6667, 0.3333, 0.6667, 0.5))
    assert figures(rows["u2"]) == ((3, 0, 0, 0, 1, 1, 0), (None, None, 1.0, 0.0))
    assert figures(table["total"]) == ((7, 3, 2, 1, 4, 3, 1), (0.6667, 0.3333, 0.75, 0.3333))
    assert table["by_label"] == "责任单位"


def test_by_grid_and_category():
    grids = {r["key"]: r for r in compute_stats(CASES, now=NOW, by="grid").to_dict()["rows"]}
    assert figures(grids["g1"]) == ((4, 2, 2, 1, 2, 2, 1), (1.0, 0.5, 1.0, 0.5))
    assert figures(grids["g2"]) == ((3, 1, 0, 0, 2, 1, 0), (0.0, 0.0, 0.5, 0.0))
    cats = {r["key"]: r for r in compute_stats(CASES, now=NOW, by="category").to_dict()["rows"]}
    assert cats["事件/0501"]["label"] == "事件/0501 无照经营游商"
    assert figures(cats["事件/0501"]) == ((4, 2, 2, 1, 3, 3, 1), (1.0, 0.5, 1.0, 0.3333))
    assert figures(cats["事件/0504"]) == ((3, 1, 0, 0, 1, 0, 0), (0.0, 0.0, 0.0, None))


def test_by_period_in_the_site_timezone():
    days = {r["key"]: r for r in compute_stats(CASES, now=NOW, by="period", period="day", tz=SH).to_dict()["rows"]}
    assert list(days) == ["2026-03-09", "2026-03-10"]
    assert figures(days["2026-03-09"])[0] == (4, 3, 2, 1, 3, 2, 1)  # case 4 at 23:30 counts on the 9th
    assert figures(days["2026-03-10"])[0] == (3, 0, 0, 0, 1, 1, 0)
    utc_days = compute_stats(CASES, now=NOW, by="period", period="day", tz="UTC").to_dict()["rows"]
    assert [r["key"] for r in utc_days] == ["2026-03-09", "2026-03-10"]
    assert [r["registered"] for r in utc_days] == [5, 2]  # in UTC case 5 falls on the 9th
    weeks = compute_stats(CASES, now=NOW, by="period", period="week", tz=SH).to_dict()["rows"]
    assert [(r["key"], r["registered"]) for r in weeks] == [("2026-W11", 7)]
    months = compute_stats(CASES, now=NOW, by="period", period="month", tz=SH).to_dict()["rows"]
    assert [(r["key"], r["registered"]) for r in months] == [("2026-03", 7)]
    assert period_key(datetime(2027, 1, 1, tzinfo=SH).timestamp(), "week", SH) == "2026-W53"


def test_bad_dimension_and_period_are_named():
    with pytest.raises(ValueError, match="unknown dimension 'street'"):
        compute_stats(CASES, now=NOW, by="street")
    with pytest.raises(ValueError, match="unknown period 'year'"):
        compute_stats(CASES, now=NOW, by="period", period="year")
    empty = compute_stats([], now=NOW).to_dict()
    assert empty["rows"] == [] and empty["total"]["close_rate"] is None


HEADERS = ["责任单位", "立案数", "应结案数", "结案数", "按期结案数", "应处置数", "处置数", "返工数", "结案率",
           "按期结案率", "处置率", "返工率"]


def test_csv_has_chinese_headers_a_bom_and_percentages():
    data = to_csv(compute_stats(CASES, now=NOW, by="unit"))
    assert data.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0] == HEADERS
    assert table[1] == ["湖滨中队", "4", "3", "2", "1", "3", "2", "1", "66.7%", "33.3%", "66.7%", "50.0%"]
    assert table[2] == ["清波中队", "3", "0", "0", "0", "1", "1", "0", "", "", "100.0%", "0.0%"]
    assert table[3][0] == "合计" and table[3][1] == "7"


def test_xlsx_opens_in_openpyxl_with_headers_numbers_and_percent_format():
    data = to_xlsx(compute_stats(CASES, now=NOW, by="grid"), sheet="案件统计")
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb["案件统计"]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0] == ["单元网格", *HEADERS[1:]]
    assert values[1][:8] == ["g1", 4, 2, 2, 1, 2, 2, 1] and values[1][8:] == [1.0, 0.5, 1.0, 0.5]
    assert values[2][11] == 0.0 and values[3][0] == "合计"
    assert ws["I2"].number_format == "0.0%" and ws["A1"].font.b
