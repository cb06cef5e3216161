"""Wall screens as first-class objects: layouts, tile → camera assignments, tours, alarm pop-ups and plans.

A pure core: no I/O, no clock of its own — every operation that depends on time takes ``now`` (Unix seconds).
The server adapter (``wall.screen_service``) persists what :meth:`Wall.snapshot` returns, drives
:meth:`Wall.tick` and pushes the changed screens' :meth:`Wall.view` to the browsers.

Vocabulary:

* **layout** — a grid of ``rows`` × ``cols`` cells; a *tile* is one rectangle on it (a single cell, or a span of
  cells). Tiles are numbered row-major by their top-left cell. Presets: ``1``, ``2x2``, ``3x3``, ``4x4``,
  ``1+5`` (a 2×2 main tile and five small ones on a 3×3 grid), ``1+7`` (a 3×3 main tile and seven on 4×4), plus
  custom grids given as ``rows``/``cols`` and ``spans`` (``[row, col, rowspan, colspan]``).
* **base tiles** — what the operator (or a tour, or a plan) put on each tile. An alarm pop-up does not
  overwrite them: it covers the screen's alarm tile until it is acknowledged or times out, then the base
  camera shows again.
* **tour** (轮巡) — a named camera group cycling through a set of tiles every ``dwell_s`` (≥ 3 s); step *k*
  puts camera ``(k·n + i) mod len(cameras)`` on the *i*-th of the *n* tiles. Pausable: the remaining dwell is
  kept and resumes where it stopped.
* **plan** (预案) — a named preset of layouts, tiles and tours for several screens, applied at once.

Every operation validates its input and raises :class:`ScreenError` (``field`` names what was wrong → HTTP
400), :class:`NotFound` (unknown screen, camera, tour, plan, alarm → 404) or :class:`Conflict` (the operation
does not fit the current state, e.g. pausing a screen with no tour → 409).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from messages.deadline import CASE_OVERDUE

MIN_DWELL_S = 3.0
MAX_DWELL_S = 3600.0
MAX_GRID = 8
MAX_PENDING_ALARMS = 16
MAX_REPEATS = 64
"""Alarms that lost the tile to a higher priority wait here (bounded; the lowest is dropped and counted)."""


class ScreenError(ValueError):
    """Invalid input; ``field`` names what was wrong."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class NotFound(KeyError):
    """An unknown screen, camera, tour, plan or alarm."""

    def __init__(self, what: str, ident: object):
        self.what = what
        self.ident = ident
        super().__init__(f"unknown {what} {str(ident)[:64]!r}")

    def __str__(self) -> str:
        return self.args[0]


class Conflict(RuntimeError):
    """The operation does not fit the current state; the message says the current state."""


# ------------------------------------------------------------------------------------------------------ layouts


@dataclass(frozen=True)
class Layout:
    """A grid and its tiles: ``tiles[i] = (row, col, rowspan, colspan)``, row-major by top-left cell."""

    name: str
    rows: int
    cols: int
    tiles: tuple[tuple[int, int, int, int], ...]

    def __len__(self) -> int:
        return len(self.tiles)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "cols": self.cols, "tiles": [list(t) for t in self.tiles]}

    def spec(self) -> str | dict[str, Any]:
        """What :func:`parse_layout` accepts to rebuild this layout."""
        if self.name in PRESETS:
            return self.name
        spans = [list(t) for t in self.tiles if t[2] > 1 or t[3] > 1]
        return {"rows": self.rows, "cols": self.cols, "spans": spans}


def grid_layout(name: str, rows: int, cols: int, spans: Iterable[Iterable[int]] = (), *,
                field: str = "layout") -> Layout:
    """A ``rows`` × ``cols`` grid where each span (``[row, col, rowspan, colspan]``) merges cells into one tile."""
    for key, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_GRID:
            raise ScreenError(f"{field}.{key}", f"must be an integer 1..{MAX_GRID}, got {value!r}")
    owner: dict[tuple[int, int], int] = {}
    merged: list[tuple[int, int, int, int]] = []
    for i, span in enumerate(spans):
        where = f"{field}.spans[{i}]"
        values = list(span) if isinstance(span, (list, tuple)) else None
        integers = values is not None and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        if values is None or len(values) != 4 or not integers:
            raise ScreenError(where, "must be [row, col, rowspan, colspan] (integers)")
        r, c, rs, cs = values
        if r < 0 or c < 0 or rs < 1 or cs < 1 or r + rs > rows or c + cs > cols:
            raise ScreenError(where, f"[{r}, {c}, {rs}, {cs}] does not fit a {rows}x{cols} grid")
        for rr in range(r, r + rs):
            for cc in range(c, c + cs):
                if (rr, cc) in owner:
                    raise ScreenError(where, f"overlaps spans[{owner[(rr, cc)]}] at row {rr}, col {cc}")
                owner[(rr, cc)] = i
        merged.append((r, c, rs, cs))
    tiles = list(merged)
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in owner:
                tiles.append((r, c, 1, 1))
    tiles.sort(key=lambda t: (t[0], t[1]))
    return Layout(name, rows, cols, tuple(tiles))


PRESETS: dict[str, Layout] = {
    "1": grid_layout("1", 1, 1),
    "2x2": grid_layout("2x2", 2, 2),
    "3x3": grid_layout("3x3", 3, 3),
    "4x4": grid_layout("4x4", 4, 4),
    "1+5": grid_layout("1+5", 3, 3, [[0, 0, 2, 2]]),
    "1+7": grid_layout("1+7", 4, 4, [[0, 0, 3, 3]]),
}


def parse_layout(spec: object, *, field: str = "layout") -> Layout:
    """A preset name (``"2x2"``) or a custom grid ``{"rows": 2, "cols": 3, "spans": [[0, 0, 2, 1]]}``."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]
        raise ScreenError(field, f"unknown layout {spec[:40]!r}; presets are {', '.join(PRESETS)} or a custom "
                                 "{rows, cols, spans}")
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"rows", "cols", "spans", "name"}
        if unknown:
            raise ScreenError(f"{field}.{sorted(unknown)[0]}", "unknown key; a custom layout has rows, cols, spans")
        spans = spec.get("spans", [])
        if not isinstance(spans, list):
            raise ScreenError(f"{field}.spans", "must be a list of [row, col, rowspan, colspan]")
        rows, cols = spec.get("rows"), spec.get("cols")
        return grid_layout(f"{rows}x{cols}*" if spans else f"{rows}x{cols}", rows, cols, spans, field=field)  # type: ignore[arg-type]
    raise ScreenError(field, "must be a preset name or an object {rows, cols, spans}")


# ------------------------------------------------------------------------------------------------------ definitions


@dataclass(frozen=True)
class TourDef:
    """A named camera group that cycles (轮巡)."""

    id: str
    name: str
    cameras: tuple[str, ...]
    dwell_s: float = 10.0


@dataclass(frozen=True)
class PlanScreen:
    """What a plan does to one screen: a layout, tiles (None leaves a tile as it is) and optionally a tour."""

    layout: str | dict[str, Any]
    tiles: tuple[str | None, ...] = ()
    tour: str | None = None
    tour_tiles: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PlanDef:
    """An emergency plan (预案): presets for several screens, switched at once."""

    id: str
    name: str
    screens: Mapping[str, PlanScreen]


@dataclass(frozen=True)
class ScreenDef:
    """A configured physical screen: its start layout, tiles and designated alarm tile (None: no pop-ups)."""

    id: str
    name: str
    layout: str | dict[str, Any] = "2x2"
    tiles: tuple[str | None, ...] = ()
    alarm_tile: int | None = None
    alarm_timeout_s: float = 120.0


# ------------------------------------------------------------------------------------------------------ state


@dataclass
class TourRun:
    tour: str
    tiles: list[int]
    dwell_s: float
    step: int = 0
    next_at: float | None = None
    """When the next step is due (None while paused)."""
    remaining_s: float | None = None
    """Dwell left when paused (None while running)."""

    @property
    def paused(self) -> bool:
        return self.next_at is None


@dataclass
class AlarmPop:
    alarm_id: str
    camera_id: str
    priority: int
    at: float
    expires_at: float
    payload: dict[str, Any] = field(default_factory=dict)
    repeats: list[str] = field(default_factory=list)
    """Later alarms of the same place (camera, zone, event) folded into this pop-up instead of queueing one each;
    an ack of any of them acknowledges the group. Bounded by ``MAX_REPEATS`` (the count keeps going)."""
    count: int = 1
    """How many alarms of this place the pop-up stands for (the badge)."""

    @property
    def place(self) -> tuple[str, Any, Any, Any]:
        return (self.camera_id, self.payload.get("zone_id"), self.payload.get("event"), self.payload.get("kind"))

    def holds(self, alarm_id: str) -> bool:
        return alarm_id == self.alarm_id or alarm_id in self.repeats


@dataclass
class Screen:
    id: str
    name: str
    layout: Layout
    tiles: list[str | None]
    alarm_tile: int | None
    alarm_timeout_s: float
    tour: TourRun | None = None
    alarm: AlarmPop | None = None
    pending: list[AlarmPop] = field(default_factory=list)
    version: int = 0
    changed_at: float = 0.0
    plan: ActivePlan | None = None
    """The emergency plan this screen shows, with what it showed before (restored when the plan ends)."""


@dataclass
class ActivePlan:
    plan_id: str
    name: str
    at: float
    saved: dict[str, Any]
    """The screen before the first plan took it: layout spec, tiles, alarm tile, tour (``Wall._before_plan``)."""


# ------------------------------------------------------------------------------------------------------ the wall


def _pop_dict(pop: AlarmPop) -> dict[str, Any]:
    return {"alarm_id": pop.alarm_id, "camera_id": pop.camera_id, "priority": pop.priority, "at": pop.at,
            "expires_at": pop.expires_at, "payload": pop.payload, "repeats": list(pop.repeats), "count": pop.count}


def _pop_from(data: Mapping[str, Any]) -> AlarmPop:
    return AlarmPop(str(data["alarm_id"]), str(data["camera_id"]), int(data["priority"]), float(data["at"]),
                    float(data["expires_at"]), dict(data.get("payload") or {}),
                    [str(r) for r in data.get("repeats") or []][:MAX_REPEATS], int(data.get("count") or 1))


class Wall:
    """Every screen's state and the operations on it. Methods return the ids of the screens they changed."""

    def __init__(self, screens: Iterable[ScreenDef], cameras: Iterable[str], *, tours: Iterable[TourDef] = (),
                 plans: Iterable[PlanDef] = (), priorities: Mapping[str, int] | None = None, now: float = 0.0):
        self.cameras = tuple(dict.fromkeys(cameras))
        self._camera_set = set(self.cameras)
        self.tours = {t.id: t for t in tours}
        self.plans = {p.id: p for p in plans}
        self.priorities = dict(priorities or {})
        self.dropped_alarms = 0
        self.screens: dict[str, Screen] = {}
        for i, d in enumerate(screens):
            if d.id in self.screens:
                raise ScreenError(f"screens[{i}].id", f"{d.id!r} is used twice")
            self.screens[d.id] = self._build(d, f"screens[{i}]", now)
        if not self.screens:
            raise ScreenError("screens", "at least one screen is needed")
        for tour in self.tours.values():
            if not tour.cameras:
                raise ScreenError(f"tours.{tour.id}.cameras", "needs at least one camera")
            for cam in tour.cameras:
                if cam not in self._camera_set:
                    raise ScreenError(f"tours.{tour.id}.cameras", f"unknown camera {cam!r}")
            _check_dwell(tour.dwell_s, f"tours.{tour.id}.dwell_s")
        for plan in self.plans.values():  # a plan that cannot be applied should fail at start, not in an emergency
            trial = copy.deepcopy(self.screens)
            saved, self.screens = self.screens, trial
            try:
                self._apply_plan(plan, now, f"plans.{plan.id}")
            finally:
                self.screens = saved

    # -------------------------------------------------------------------------------------- building, lookup


    def set_cameras(self, cameras: Iterable[str]) -> None:
        """The running configuration changed the cameras (``admin.running``): tiles and pop-ups may use these.
        Tiles already showing a removed camera keep it until reassigned (they show it offline)."""
        self.cameras = tuple(dict.fromkeys(cameras))
        self._camera_set = set(self.cameras)
    def _build(self, d: ScreenDef, where: str, now: float) -> Screen:
        layout = parse_layout(d.layout, field=f"{where}.layout")
        if len(d.tiles) > len(layout):
            raise ScreenError(f"{where}.tiles", f"{len(d.tiles)} cameras for a layout of {len(layout)} tiles")
        tiles: list[str | None] = []
        for i in range(len(layout)):
            cam = d.tiles[i] if i < len(d.tiles) else None
            if cam is not None and cam not in self._camera_set:
                raise ScreenError(f"{where}.tiles[{i}]", f"unknown camera {cam!r}")
            tiles.append(cam)
        if d.alarm_tile is not None:
            self._check_tile(layout, d.alarm_tile, f"{where}.alarm_tile")
        if not d.alarm_timeout_s > 0:
            raise ScreenError(f"{where}.alarm_timeout_s", "must be positive")
        return Screen(d.id, d.name or d.id, layout, tiles, d.alarm_tile, float(d.alarm_timeout_s), changed_at=now)

    def screen(self, screen_id: str) -> Screen:
        try:
            return self.screens[screen_id]
        except KeyError:
            raise NotFound("screen", screen_id) from None

    def camera(self, camera_id: object, field: str = "camera") -> str:
        if not isinstance(camera_id, str):
            raise ScreenError(field, "must be a camera id string")
        if camera_id not in self._camera_set:
            raise NotFound("camera", camera_id)
        return camera_id

    @staticmethod
    def _check_tile(layout: Layout, tile: object, field: str = "tile") -> int:
        if not isinstance(tile, int) or isinstance(tile, bool):
            raise ScreenError(field, f"must be an integer tile index, got {tile!r}")
        if not 0 <= tile < len(layout):
            raise ScreenError(field, f"tile {tile} is outside the layout {layout.name} (tiles 0..{len(layout) - 1})")
        return tile

    def _touch(self, screen: Screen, now: float) -> str:
        screen.version += 1
        screen.changed_at = now
        return screen.id

    # -------------------------------------------------------------------------------------- layout and tiles

    def set_layout(self, screen_id: str, spec: object, now: float) -> list[str]:
        """Switch the layout; tiles keep their cameras in order, a running tour keeps the tiles that still exist."""
        screen = self.screen(screen_id)
        layout = parse_layout(spec)
        self._relayout(screen, layout)
        return [self._touch(screen, now)]

    def _relayout(self, screen: Screen, layout: Layout) -> None:
        n = len(layout)
        screen.tiles = (screen.tiles + [None] * n)[:n]
        screen.layout = layout
        if screen.alarm_tile is not None and screen.alarm_tile >= n:
            # Why: the alarm tile is a promise to the hall that pop-ups appear; keep it on the last tile.
            screen.alarm_tile = n - 1
        if screen.tour is not None:
            screen.tour.tiles = [t for t in screen.tour.tiles if t < n]
            if not screen.tour.tiles:
                screen.tour = None

    def assign(self, screen_id: str, tile: object, camera_id: object, now: float) -> list[str]:
        """Put ``camera_id`` (None: nothing) on ``tile``; a tour stops driving that tile."""
        screen = self.screen(screen_id)
        index = self._check_tile(screen.layout, tile)
        cam = None if camera_id is None else self.camera(camera_id)
        screen.tiles[index] = cam
        if screen.tour is not None and index in screen.tour.tiles:
            screen.tour.tiles.remove(index)
            if not screen.tour.tiles:
                screen.tour = None
        return [self._touch(screen, now)]

    # -------------------------------------------------------------------------------------- tours

    def start_tour(self, screen_id: str, tour_id: object, now: float, *, tiles: object = None,
                   dwell_s: object = None) -> list[str]:
        """Start tour ``tour_id`` on ``tiles`` (default: every tile but the alarm tile); step 0 shows at once."""
        screen = self.screen(screen_id)
        if not isinstance(tour_id, str):
            raise ScreenError("tour", "must be a tour id string")
        tour = self.tours.get(tour_id)
        if tour is None:
            raise NotFound("tour", tour_id)
        if tiles is None:
            chosen = [i for i in range(len(screen.layout)) if i != screen.alarm_tile]
            if not chosen:
                chosen = list(range(len(screen.layout)))
        else:
            if not isinstance(tiles, list) or not tiles:
                raise ScreenError("tiles", "must be a non-empty list of tile indexes")
            chosen = []
            for i, t in enumerate(tiles):
                index = self._check_tile(screen.layout, t, f"tiles[{i}]")
                if index in chosen:
                    raise ScreenError(f"tiles[{i}]", f"tile {index} is listed twice")
                chosen.append(index)
        dwell = tour.dwell_s if dwell_s is None else _check_dwell(dwell_s, "dwell_s")
        screen.tour = TourRun(tour.id, chosen, float(dwell), step=0, next_at=now + dwell)
        self._show_step(screen)
        return [self._touch(screen, now)]

    def _show_step(self, screen: Screen) -> None:
        run = screen.tour
        assert run is not None
        cams = self.tours[run.tour].cameras
        n = len(run.tiles)
        for i, tile in enumerate(run.tiles):
            screen.tiles[tile] = cams[(run.step * n + i) % len(cams)]

    def pause_tour(self, screen_id: str, now: float) -> list[str]:
        screen = self.screen(screen_id)
        run = self._running(screen)
        if run.paused:
            raise Conflict(f"the tour {run.tour} on screen {screen.id} is already paused")
        run.remaining_s = max(0.0, (run.next_at or now) - now)
        run.next_at = None
        return [self._touch(screen, now)]

    def resume_tour(self, screen_id: str, now: float) -> list[str]:
        screen = self.screen(screen_id)
        run = self._running(screen)
        if not run.paused:
            raise Conflict(f"the tour {run.tour} on screen {screen.id} is running, not paused")
        run.next_at = now + (run.remaining_s if run.remaining_s is not None else run.dwell_s)
        run.remaining_s = None
        return [self._touch(screen, now)]

    def stop_tour(self, screen_id: str, now: float) -> list[str]:
        """Stop the tour; its tiles keep the cameras they show."""
        screen = self.screen(screen_id)
        self._running(screen)
        screen.tour = None
        return [self._touch(screen, now)]

    @staticmethod
    def _running(screen: Screen) -> TourRun:
        if screen.tour is None:
            raise Conflict(f"no tour on screen {screen.id}; start one first")
        return screen.tour

    # -------------------------------------------------------------------------------------- time

    def next_due(self) -> float | None:
        """The earliest time :meth:`tick` has something to do (a tour step or an alarm timeout)."""
        times: list[float] = []
        for s in self.screens.values():
            if s.tour is not None and s.tour.next_at is not None:
                times.append(s.tour.next_at)
            if s.alarm is not None:
                times.append(s.alarm.expires_at)
        return min(times) if times else None

    def tick(self, now: float) -> list[str]:
        """Advance tours whose dwell is over and time out alarm pop-ups; returns the changed screens."""
        changed: list[str] = []
        for s in self.screens.values():
            moved = False
            run = s.tour
            if run is not None and run.next_at is not None and now >= run.next_at:
                # A late tick (machine busy) advances one step and re-anchors, rather than flashing through several.
                run.step += 1
                run.next_at = max(run.next_at + run.dwell_s, now + run.dwell_s / 2)
                self._show_step(s)
                moved = True
            if s.alarm is not None and now >= s.alarm.expires_at:
                self._next_pop(s, now)
                moved = True
            if moved:
                changed.append(self._touch(s, now))
        return changed

    # -------------------------------------------------------------------------------------- alarms

    def priority(self, alarm: Mapping[str, Any]) -> int:
        extra = alarm.get("extra")
        if isinstance(extra, Mapping) and isinstance(extra.get("priority"), int):
            return int(extra["priority"])
        return int(self.priorities.get(str(alarm.get("event", "")), 0))

    def raise_alarm(self, alarm: Mapping[str, Any], now: float) -> list[str]:
        """A raised alarm: on every screen with an alarm tile it pops up, or waits if a higher priority holds the
        tile (equal priority: the newer wins — the hall should see the latest). A repeat of a place already
        shown or waiting (same camera, zone, event) is folded into that pop-up (its count goes up, its picture is
        the newest) rather than queueing another. A cleared alarm leaves the wall: it never pops up later, and a
        pop-up it holds ends (the alarm list keeps its card). Unknown-camera alarms change nothing."""
        if alarm.get("phase", "raised") == "cleared":
            return self.clear_alarm(alarm.get("alarm_id"), now)
        if alarm.get("phase", "raised") != "raised":
            return []
        alarm_id, camera_id = alarm.get("alarm_id"), alarm.get("camera_id")
        if not isinstance(alarm_id, str) or not alarm_id:
            raise ScreenError("alarm_id", "required, a string")
        if camera_id not in self._camera_set:
            return []
        priority = self.priority(alarm)
        payload = {k: alarm.get(k) for k in ("event", "zone_id", "zone_name", "camera_name", "boxes", "zone_polygon",
                                             "snapshot", "dwell_s", "confidence", "case_no", "unit_name",
                                             "deadline_at") if alarm.get(k) is not None}
        changed: list[str] = []
        for s in self.screens.values():
            if s.alarm_tile is None:
                continue
            if any(p.holds(alarm_id) for p in ([s.alarm] if s.alarm else []) + s.pending):
                continue  # at-least-once bus delivery: the same alarm twice is one pop-up
            pop = AlarmPop(alarm_id, str(camera_id), priority, now, now + s.alarm_timeout_s, payload)
            same = next((p for p in ([s.alarm] if s.alarm else []) + s.pending if p.place == pop.place), None)
            if same is not None:
                same.count += 1
                same.repeats = (same.repeats + [alarm_id])[-MAX_REPEATS:]
                same.payload = payload           # the newest picture of the place
                same.priority = max(same.priority, priority)
                same.at, same.expires_at = now, max(same.expires_at, now + s.alarm_timeout_s)
                changed.append(self._touch(s, now))
                continue
            if s.alarm is None or priority >= s.alarm.priority:
                if s.alarm is not None:
                    self._queue(s, s.alarm)
                s.alarm = pop
                changed.append(self._touch(s, now))
            else:
                self._queue(s, pop)
                changed.append(self._touch(s, now))
        return changed

    def raise_deadline(self, alarm: Mapping[str, Any], now: float) -> list[str]:
        """A case deadline alarm (stream ``case_deadlines``): only ``case_overdue`` of a case with a camera pops, like
        a detector alarm of that camera (priority ``alarm_priority.case_overdue``, default 0: below every detector
        event); near-deadline warnings are alarm-list cards only, so a morning of due cases does not take the tile."""
        if alarm.get("event") != CASE_OVERDUE:
            return []
        return self.raise_alarm(alarm, now)

    def clear_alarm(self, alarm_id: object, now: float) -> list[str]:
        """The detector says the scene is clear again: the alarm leaves every pop-up and queue it is in (a group
        keeps showing while another of its alarms is still raised)."""
        if not isinstance(alarm_id, str) or not alarm_id:
            return []
        changed: list[str] = []
        for s in self.screens.values():
            hit = False
            for pop in ([s.alarm] if s.alarm else []) + list(s.pending):
                if not pop.holds(alarm_id):
                    continue
                hit = True
                gone = pop.alarm_id == alarm_id and not pop.repeats
                if not gone:
                    if pop.alarm_id == alarm_id:  # the first of a group cleared: the next one names it
                        pop.alarm_id, pop.repeats = pop.repeats[0], pop.repeats[1:]
                    else:
                        pop.repeats = [r for r in pop.repeats if r != alarm_id]
                if gone:
                    if pop is s.alarm:
                        self._next_pop(s, now)
                    else:
                        s.pending = [p for p in s.pending if p is not pop]
            if hit:
                changed.append(self._touch(s, now))
        return changed

    def _queue(self, screen: Screen, pop: AlarmPop) -> None:
        screen.pending.append(pop)
        screen.pending.sort(key=lambda p: (-p.priority, -p.at))
        while len(screen.pending) > MAX_PENDING_ALARMS:
            screen.pending.pop()
            self.dropped_alarms += 1

    def _next_pop(self, screen: Screen, now: float) -> None:
        screen.alarm = None
        screen.pending = [p for p in screen.pending if p.expires_at > now]
        if screen.pending:
            screen.alarm = screen.pending.pop(0)

    def ack(self, alarm_id: object, now: float) -> list[str]:
        """Acknowledge an alarm everywhere: its pop-up reverts (the next waiting alarm, if any, takes the tile)."""
        if not isinstance(alarm_id, str) or not alarm_id:
            raise ScreenError("alarm_id", "required, a string")
        changed: list[str] = []
        for s in self.screens.values():
            hit = False
            if s.alarm is not None and s.alarm.holds(alarm_id):
                self._next_pop(s, now)
                hit = True
            elif any(p.holds(alarm_id) for p in s.pending):
                s.pending = [p for p in s.pending if not p.holds(alarm_id)]
                hit = True
            if hit:
                changed.append(self._touch(s, now))
        if not changed:
            raise NotFound("alarm", alarm_id)
        return changed

    @staticmethod
    def pop_tile(screen: Screen) -> int | None:
        """Where the alarm pop-up shows: the alarm tile — unless the alarm's camera is already on a tile at least
        as large, which is then highlighted in place (no duplicate picture, no second stream for the same camera).
        Computed, not stored, so it follows the camera through tours and layout changes."""
        if screen.alarm is None or screen.alarm_tile is None:
            return None
        tiles = screen.layout.tiles
        _, _, ars, acs = tiles[screen.alarm_tile]
        for i, cam in enumerate(screen.tiles):
            if cam == screen.alarm.camera_id and tiles[i][2] * tiles[i][3] >= ars * acs:
                return i
        return screen.alarm_tile

    # -------------------------------------------------------------------------------------- plans

    def invoke_plan(self, plan_id: object, now: float) -> list[str]:
        """Apply a plan to all its screens at once (validated before any screen changes)."""
        if not isinstance(plan_id, str):
            raise ScreenError("plan", "must be a plan id string")
        plan = self.plans.get(plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        trial = copy.deepcopy(self.screens)
        saved, self.screens = self.screens, trial
        try:
            changed = self._apply_plan(plan, now, f"plans.{plan.id}")
        except Exception:
            self.screens = saved
            raise
        return changed

    def _apply_plan(self, plan: PlanDef, now: float, where: str) -> list[str]:
        changed: list[str] = []
        for screen_id, ps in plan.screens.items():
            if screen_id not in self.screens:
                raise ScreenError(f"{where}.screens", f"unknown screen {screen_id!r}")
            s = self.screens[screen_id]
            # A second plan over the first keeps what the screen showed before any plan: ending it goes home.
            saved = s.plan.saved if s.plan is not None else self._before_plan(s)
            s.plan = ActivePlan(plan.id, plan.name, now, saved)
            s.tour = None
            self._relayout(s, parse_layout(ps.layout, field=f"{where}.screens.{screen_id}.layout"))
            if len(ps.tiles) > len(s.layout):
                raise ScreenError(f"{where}.screens.{screen_id}.tiles",
                                  f"{len(ps.tiles)} cameras for a layout of {len(s.layout)} tiles")
            for i, cam in enumerate(ps.tiles):
                if cam is not None:
                    if cam not in self._camera_set:
                        raise ScreenError(f"{where}.screens.{screen_id}.tiles[{i}]", f"unknown camera {cam!r}")
                    s.tiles[i] = cam
            if ps.tour is not None:
                if ps.tour not in self.tours:
                    raise ScreenError(f"{where}.screens.{screen_id}.tour", f"unknown tour {ps.tour!r}")
                self.start_tour(screen_id, ps.tour, now,
                                tiles=list(ps.tour_tiles) if ps.tour_tiles is not None else None)
            changed.append(self._touch(s, now))
        return changed

    @staticmethod
    def _before_plan(s: Screen) -> dict[str, Any]:
        tour = None
        if s.tour is not None:
            t = s.tour
            tour = {"tour": t.tour, "tiles": list(t.tiles), "dwell_s": t.dwell_s, "step": t.step,
                    "paused": t.paused, "remaining_s": t.remaining_s}
        return {"layout": s.layout.spec(), "tiles": list(s.tiles), "alarm_tile": s.alarm_tile, "tour": tour}

    def end_plan(self, plan_id: object, now: float) -> list[str]:
        """End an active plan: every screen it holds gets back the layout, cameras and tour it had before the plan
        (a running tour resumes with a fresh dwell; alarm pop-ups stay as they are). 404 for an unknown plan,
        Conflict when it is not active on any screen."""
        if not isinstance(plan_id, str):
            raise ScreenError("plan", "must be a plan id string")
        if plan_id not in self.plans:
            raise NotFound("plan", plan_id)
        held = [(s, s.plan.saved) for s in self.screens.values() if s.plan is not None and s.plan.plan_id == plan_id]
        if not held:
            raise Conflict(f"plan {plan_id} is not active on any screen")
        changed = []
        for s, saved in held:
            s.plan = None
            try:
                layout = parse_layout(saved["layout"], field="layout")
                self._relayout(s, layout)
                s.tiles = [c if c in self._camera_set else None for c in saved["tiles"]][:len(layout)]
                s.tiles += [None] * (len(layout) - len(s.tiles))
                if saved.get("alarm_tile") is not None and saved["alarm_tile"] < len(layout):
                    s.alarm_tile = saved["alarm_tile"]
                s.tour = None
                t = saved.get("tour")
                if t and t["tour"] in self.tours:
                    run = TourRun(t["tour"], [i for i in t["tiles"] if i < len(layout)], float(t["dwell_s"]),
                                  int(t["step"]))
                    if run.tiles:
                        if t.get("paused"):
                            run.remaining_s = t.get("remaining_s") or run.dwell_s
                        else:
                            run.next_at = now + run.dwell_s
                        s.tour = run
                        self._show_step(s)
            except (ScreenError, KeyError, TypeError, ValueError):
                pass  # what was saved no longer fits the configuration: the plan's picture stays, the plan ends
            changed.append(self._touch(s, now))
        return changed

    # -------------------------------------------------------------------------------------- views, persistence

    def view(self, screen_id: str) -> dict[str, Any]:
        """What a browser shows: the layout, each tile's camera (the alarm pop-up applied) and why."""
        s = self.screen(screen_id)
        tour_tiles = set(s.tour.tiles) if s.tour else set()
        pop_tile = self.pop_tile(s)
        tiles = []
        for i, cam in enumerate(s.tiles):
            tile: dict[str, Any] = {"index": i, "camera": cam, "source": "tour" if i in tour_tiles else "assigned"}
            if s.alarm is not None and i == pop_tile:
                tile.update(camera=s.alarm.camera_id, source="alarm", base_camera=cam)
            tiles.append(tile)
        tour = None
        if s.tour is not None:
            t = s.tour
            tour = {"tour": t.tour, "name": self.tours[t.tour].name, "tiles": list(t.tiles), "dwell_s": t.dwell_s,
                    "step": t.step, "paused": t.paused, "next_at": t.next_at, "remaining_s": t.remaining_s}
        return {
            "id": s.id, "name": s.name, "version": s.version, "changed_at": s.changed_at,
            "layout": s.layout.to_dict(), "tiles": tiles, "alarm_tile": s.alarm_tile, "pop_tile": pop_tile,
            "alarm": _pop_dict(s.alarm) if s.alarm else None,
            "pending_alarms": [_pop_dict(p) for p in s.pending],
            "tour": tour,
            "plan": {"id": s.plan.plan_id, "name": s.plan.name, "at": s.plan.at} if s.plan else None,
        }

    def snapshot(self, screen_id: str) -> dict[str, Any]:
        """The persisted form of one screen (what :meth:`restore` reads back)."""
        s = self.screen(screen_id)
        tour = None
        if s.tour is not None:
            t = s.tour
            tour = {"tour": t.tour, "tiles": t.tiles, "dwell_s": t.dwell_s, "step": t.step, "next_at": t.next_at,
                    "remaining_s": t.remaining_s}
        return {"layout": s.layout.spec(), "tiles": list(s.tiles), "alarm_tile": s.alarm_tile, "tour": tour,
                "alarm": _pop_dict(s.alarm) if s.alarm else None, "pending": [_pop_dict(p) for p in s.pending],
                "plan": {"plan_id": s.plan.plan_id, "name": s.plan.name, "at": s.plan.at, "saved": s.plan.saved}
                if s.plan else None,
                "version": s.version, "changed_at": s.changed_at}

    def restore(self, screen_id: str, data: Mapping[str, Any]) -> None:
        """Bring back a persisted screen; anything that no longer fits the configuration raises and leaves the
        configured state in place (a renamed camera must not break the wall after a restart)."""
        s = self.screen(screen_id)
        layout = parse_layout(data.get("layout"), field="layout")
        tiles = list(data.get("tiles") or [])
        if len(tiles) != len(layout):
            raise ScreenError("tiles", f"{len(tiles)} tiles stored for a layout of {len(layout)}")
        for i, cam in enumerate(tiles):
            if cam is not None and cam not in self._camera_set:
                raise ScreenError(f"tiles[{i}]", f"unknown camera {cam!r}")
        alarm_tile = data.get("alarm_tile")
        if alarm_tile is not None:
            self._check_tile(layout, alarm_tile, "alarm_tile")
        tour = None
        if data.get("tour"):
            t = data["tour"]
            if t["tour"] not in self.tours:
                raise ScreenError("tour", f"unknown tour {t['tour']!r}")
            tour = TourRun(t["tour"], [self._check_tile(layout, x, "tour.tiles") for x in t["tiles"]],
                           float(t["dwell_s"]), int(t["step"]), t.get("next_at"), t.get("remaining_s"))
        alarm = _pop_from(data["alarm"]) if data.get("alarm") else None
        if alarm is not None and alarm.camera_id not in self._camera_set:
            alarm = None
        pending = [_pop_from(p) for p in data.get("pending") or [] if p.get("camera_id") in self._camera_set]
        plan = data.get("plan")
        if plan and plan.get("plan_id") in self.plans and isinstance(plan.get("saved"), dict):
            s.plan = ActivePlan(str(plan["plan_id"]), str(plan.get("name", "")), float(plan.get("at", 0.0)),
                                dict(plan["saved"]))
        else:
            s.plan = None
        s.layout, s.tiles, s.alarm_tile, s.tour, s.alarm, s.pending = layout, tiles, alarm_tile, tour, alarm, pending
        s.version = int(data.get("version", 0))
        s.changed_at = float(data.get("changed_at", 0.0))


def _check_dwell(value: object, field: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not MIN_DWELL_S <= value <= MAX_DWELL_S:
        raise ScreenError(field, f"must be a number of seconds {MIN_DWELL_S:g}..{MAX_DWELL_S:g}, got {value!r}")
    return float(value)
