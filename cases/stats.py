"""Case statistics (综合评价): 立案数, 结案率, 按期结案率, 处置率, 返工率 per unit, grid, category or period. Pure: a
function of case dicts (as the store returns them) and a given ``now``.

Definitions (DESIGN.md; CJJ/T 106 evaluation practice), counted per case:

- 立案数 — cases that were registered (立案 in the timeline);
- 应结案数 — registered cases that are closed, or still open with their deadline passed at ``now``; cases voided or
  rejected after registering and cases suspended (挂账) right now are not counted as due;
- 结案数 — registered cases in state 结案; 按期结案数 — of those, closed no later than their deadline;
- 应处置数 — dispatched cases (派遣 in the timeline) that have had feedback (反馈) or are past their deadline at
  ``now``, not voided, not suspended right now; 处置数 — of those, the ones with feedback;
- 返工数 — handled cases sent back at least once (返工 in the timeline);
- 结案率 = 结案数/应结案数, 按期结案率 = 按期结案数/应结案数, 处置率 = 处置数/应处置数, 返工率 = 返工数/处置数
  (``None`` when the denominator is 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

Dimension = Literal["unit", "grid", "category", "period", "total"]
Period = Literal["day", "week", "month"]
DIMENSIONS: tuple[str, ...] = ("unit", "grid", "category", "period", "total")
PERIODS: tuple[str, ...] = ("day", "week", "month")
DIMENSION_LABELS = {"unit": "责任单位", "grid": "单元网格", "category": "案件类别", "period": "时段", "total": "合计"}

# (key, Chinese header, English) in column order; the export writes these headers.
COUNT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("registered", "立案数", "registered"),
    ("due", "应结案数", "due to close"),
    ("closed", "结案数", "closed"),
    ("closed_on_time", "按期结案数", "closed on time"),
    ("to_handle", "应处置数", "due to handle"),
    ("handled", "处置数", "handled"),
    ("reworked", "返工数", "reworked"),
)
RATE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("close_rate", "结案率", "close rate"),
    ("on_time_rate", "按期结案率", "on-time close rate"),
    ("handle_rate", "处置率", "handling rate"),
    ("rework_rate", "返工率", "rework rate"),
)


@dataclass
class StatsRow:
    key: str
    label: str
    registered: int = 0
    due: int = 0
    closed: int = 0
    closed_on_time: int = 0
    to_handle: int = 0
    handled: int = 0
    reworked: int = 0

    @staticmethod
    def _rate(num: int, den: int) -> float | None:
        return None if den == 0 else num / den

    @property
    def close_rate(self) -> float | None:
        return self._rate(self.closed, self.due)

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.closed_on_time, self.due)

    @property
    def handle_rate(self) -> float | None:
        return self._rate(self.handled, self.to_handle)

    @property
    def rework_rate(self) -> float | None:
        return self._rate(self.reworked, self.handled)

    def add(self, other: StatsRow) -> None:
        for key, _, _ in COUNT_COLUMNS:
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "label": self.label}
        out.update({k: getattr(self, k) for k, _, _ in COUNT_COLUMNS})
        out.update({k: getattr(self, k) for k, _, _ in RATE_COLUMNS})
        return out


@dataclass
class StatsTable:
    by: str
    period: str | None
    now: float
    rows: list[StatsRow] = field(default_factory=list)
    total: StatsRow = field(default_factory=lambda: StatsRow("total", "合计"))

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "by_label": DIMENSION_LABELS[self.by], "period": self.period, "now": self.now,
                "rows": [r.to_dict() for r in self.rows], "total": self.total.to_dict()}


def case_figures(case: dict[str, Any], now: float) -> StatsRow:
    """One case's contribution (each count 0 or 1)."""
    actions = {e.get("action") for e in case.get("timeline") or []}
    state = case.get("state")
    row = StatsRow("", "")
    if "register" not in actions:
        return row
    row.registered = 1
    cancelled = state in ("voided", "rejected")
    suspended = state == "suspended"
    past_deadline = float(case["deadline_at"]) <= now
    if state == "closed":
        row.closed = row.due = 1
        closed_at = case.get("closed_at")
        row.closed_on_time = int(closed_at is not None and float(closed_at) <= float(case["deadline_at"]))
    elif not cancelled and not suspended and past_deadline:
        row.due = 1
    if "dispatch" in actions and not cancelled:
        fed_back = "feedback" in actions
        if fed_back:
            row.to_handle = row.handled = 1
            row.reworked = int("rework" in actions)
        elif not suspended and past_deadline:
            row.to_handle = 1
    return row


def period_key(ts: float, period: str, tz: ZoneInfo) -> str:
    """``2026-03-11`` (day), ``2026-W11`` (ISO week) or ``2026-03`` (month) of ``ts`` in ``tz``."""
    d = datetime.fromtimestamp(ts, tz)
    if period == "day":
        return d.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return d.strftime("%Y-%m")
    raise ValueError(f"unknown period {period!r}; known: {', '.join(PERIODS)}")


def _group(case: dict[str, Any], by: str, period: str, tz: ZoneInfo) -> tuple[str, str]:
    if by == "unit":
        return str(case.get("unit_id") or ""), str(case.get("unit_name") or case.get("unit_id") or "（未派遣）")
    if by == "grid":
        code = str(case.get("grid_code") or "")
        return code, code or "（网格外）"
    if by == "category":
        ref = f"{case.get('kind')}/{case.get('code')}"
        return ref, f"{ref} {case.get('category_name') or ''}".strip()
    if by == "period":
        key = period_key(float(case["reported_at"]), period, tz)
        return key, key
    if by == "total":
        return "total", "合计"
    raise ValueError(f"unknown dimension {by!r}; known: {', '.join(DIMENSIONS)}")


def compute_stats(cases: Iterable[dict[str, Any]], *, now: float, by: str = "unit", period: str = "day",
                  tz: ZoneInfo | str = "Asia/Shanghai") -> StatsTable:
    """Figures per ``by`` group (rows sorted by key) and in total, judged at ``now``."""
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; known: {', '.join(DIMENSIONS)}")
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; known: {', '.join(PERIODS)}")
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    table = StatsTable(by=by, period=period if by == "period" else None, now=now)
    groups: dict[str, StatsRow] = {}
    for case in cases:
        figures = case_figures(case, now)
        if not figures.registered:
            continue  # never registered (still 上报/受理, or 不予立案): not part of the evaluation
        key, label = _group(case, by, period, zone)
        row = groups.get(key)
        if row is None:
            row = groups[key] = StatsRow(key, label)
        row.add(figures)
        table.total.add(figures)
    table.rows = [groups[k] for k in sorted(groups)]
    return table


__all__ = ["COUNT_COLUMNS", "DIMENSIONS", "PERIODS", "RATE_COLUMNS", "StatsRow", "StatsTable", "case_figures",
           "compute_stats", "period_key"]
