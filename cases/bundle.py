"""The four case config files loaded and cross-checked together: categories, work calendar, grid, dispatch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cases.calendar import CalendarConfig, WorkCalendar
from cases.categories import CategoryCatalog
from cases.dispatch import DispatchConfig, Dispatcher, check_dispatch
from cases.grid import Grid, GridConfig
from cases.loader import load
from config import CONFIG_DIR


@dataclass(frozen=True)
class CaseConfig:
    """Everything the filer needs that comes from files."""

    catalog: CategoryCatalog
    calendar: WorkCalendar
    grid: Grid
    dispatcher: Dispatcher


def load_case_config(
    categories_file: Path = CONFIG_DIR / "categories.yaml",
    dispatch_file: Path = CONFIG_DIR / "dispatch.yaml",
    calendar_file: Path = CONFIG_DIR / "calendar.yaml",
    grid_file: Path = CONFIG_DIR / "grid.geojson",
) -> CaseConfig:
    """Load and validate all four files; raises :class:`config.ConfigError` naming the file and the key path."""
    catalog = load(CategoryCatalog, Path(categories_file))
    calendar = WorkCalendar(load(CalendarConfig, Path(calendar_file)))
    grid = Grid(load(GridConfig, Path(grid_file)))
    dispatcher = check_dispatch(load(DispatchConfig, Path(dispatch_file)), catalog, grid, str(dispatch_file))
    return CaseConfig(catalog=catalog, calendar=calendar, grid=grid, dispatcher=dispatcher)
