"""Dispatch: camera position → unit grid cell → (category, grid/street) → exactly one responsible unit.

属地管理、责任主体唯一: a rule names a category (or several) and a place — a street, or a grid-code prefix — and one
unit. Resolution for a case: the rule with the longest matching grid prefix, else the rule for the street, else the
fallback unit. Two rules for the same category and the same place are refused at load, so the answer is always
exactly one unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cases.categories import CategoryCatalog
from cases.grid import Grid, GridCell
from config import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unit(_Strict):
    """A responsible unit (责任单位): a street law-enforcement squad, the sanitation office, ..."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: str = Field(min_length=1)
    phone: str = ""


class Rule(_Strict):
    """Categories × one place → one unit. Exactly one of ``street`` and ``grid_prefix``."""

    categories: list[str] = Field(min_length=1, description='category refs, e.g. "事件/0501"')
    street: str | None = None
    grid_prefix: Annotated[str, Field(pattern=r"^\d{1,14}$")] | None = None
    unit: str
    note: str = ""

    @model_validator(mode="after")
    def _one_place(self) -> Rule:
        if (self.street is None) == (self.grid_prefix is None):
            raise ValueError("give exactly one of street or grid_prefix")
        return self

    @property
    def place(self) -> str:
        return f"street {self.street}" if self.street is not None else f"grid prefix {self.grid_prefix}"


class DispatchConfig(_Strict):
    """The dispatch file: units, rules, and the unit for places no rule covers."""

    units: list[Unit] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    fallback_unit: str | None = Field(default=None,
                                      description="unit for unmapped places; required unless rules cover all")

    @model_validator(mode="after")
    def _units(self) -> DispatchConfig:
        ids = [u.id for u in self.units]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"unit ids must be unique; repeated: {', '.join(dupes)}")
        return self


@dataclass(frozen=True)
class Assignment:
    """The answer for one case: where it is and who must handle it, and why."""

    unit: Unit
    cell: GridCell | None
    street: str
    community: str
    reason: str

    @property
    def grid_code(self) -> str:
        return self.cell.grid_code if self.cell else ""


class Dispatcher:
    """Resolves the responsible unit; built only from a config that :func:`check_dispatch` accepted."""

    def __init__(self, cfg: DispatchConfig, catalog: CategoryCatalog, grid: Grid):
        self.units = {u.id: u for u in cfg.units}
        self.rules = cfg.rules
        self.fallback = self.units[cfg.fallback_unit] if cfg.fallback_unit else None
        self.catalog = catalog
        self.grid = grid

    def resolve(self, category: str, *, grid_code: str = "", street: str = "") -> tuple[Unit, str] | None:
        """(unit, reason) from the rules alone, or None when no rule applies."""
        best: Rule | None = None
        for rule in self.rules:
            if (category in rule.categories and rule.grid_prefix and grid_code.startswith(rule.grid_prefix)
                    and (best is None or len(rule.grid_prefix) > len(best.grid_prefix or ""))):
                best = rule
        if best is None and street:
            best = next((r for r in self.rules if category in r.categories and r.street == street), None)
        if best is None:
            return None
        return self.units[best.unit], f"{category} × {best.place} → {best.unit}"

    def unit_for(self, category: str, *, grid_code: str = "", street: str = "") -> tuple[Unit, str]:
        """The one responsible unit; the fallback when no rule covers the place."""
        found = self.resolve(category, grid_code=grid_code, street=street)
        if found:
            return found
        if self.fallback is None:
            raise LookupError(f"no unit for {category} at grid {grid_code or '-'} / street {street or '-'} "
                              f"and no fallback_unit")
        return self.fallback, (f"{category}: no rule for grid {grid_code or '-'} / street {street or '-'} "
                               f"→ fallback {self.fallback.id}")

    def assign(self, category: str, lon: float | None, lat: float | None, *, street: str = "",
               community: str = "") -> Assignment:
        """Camera lon/lat → grid cell → unit. The cell's street and community win over the camera's own labels;
        a camera outside the grid keeps its configured street (or none) and may end at the fallback unit."""
        cell = self.grid.locate(lon, lat) if lon is not None and lat is not None else None
        if cell is not None:
            street, community = cell.street, cell.community
        unit, reason = self.unit_for(category, grid_code=cell.grid_code if cell else "", street=street)
        return Assignment(unit=unit, cell=cell, street=street, community=community, reason=reason)


def check_dispatch(cfg: DispatchConfig, catalog: CategoryCatalog, grid: Grid, source: str) -> Dispatcher:
    """Cross-file checks (units, categories, uniqueness, coverage); :class:`ConfigError` naming the key path."""
    problems: list[tuple[str, str]] = []
    units = {u.id for u in cfg.units}
    refs = set(catalog.refs())
    if cfg.fallback_unit is not None and cfg.fallback_unit not in units:
        problems.append(("fallback_unit", f"unknown unit {cfg.fallback_unit!r}; known: {', '.join(sorted(units))}"))
    places: dict[tuple[str, str], int] = {}
    for i, rule in enumerate(cfg.rules):
        if rule.unit not in units:
            problems.append((f"rules[{i}].unit", f"unknown unit {rule.unit!r}; known: {', '.join(sorted(units))}"))
        for j, ref in enumerate(rule.categories):
            if ref not in refs:
                problems.append((f"rules[{i}].categories[{j}]",
                                 f"unknown category {ref!r}; known: {', '.join(sorted(refs))}"))
                continue
            key = (ref, rule.place)
            if key in places:
                problems.append((f"rules[{i}].categories[{j}]",
                                 f"{ref} at {rule.place} already goes to rules[{places[key]}]; "
                                 f"exactly one unit per place"))
            else:
                places[key] = i
    if problems:
        raise ConfigError(source, problems)
    dispatcher = Dispatcher(cfg, catalog, grid)
    if dispatcher.fallback is None:
        for cell in grid.cells:
            for ref in catalog.refs():
                if dispatcher.resolve(ref, grid_code=cell.grid_code, street=cell.street) is None:
                    problems.append(("rules", f"{ref} has no unit for street {cell.street} (cell {cell.grid_code}) "
                                              "and there is no fallback_unit"))
        if problems:
            raise ConfigError(source, problems)
    return dispatcher
